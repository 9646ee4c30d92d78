"""The pure pairing of command events with camera frames and masks (cde_ros/command_pairing.py)."""
from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cde_ros.command_events import CommandEvent, Phase
from cde_ros.command_pairing import Captured, CommandPairing, OutcomeKind, PairingLimits
from cde_ros.frame_buffer import BufferedFrame, FrameBuffer

S = 1_000_000_000


def _event(cid: str, phase: Phase, stamp: int, action: str = "open") -> CommandEvent:
    return CommandEvent(cid, action, "", phase, stamp, "topic")


def _capture(frame: BufferedFrame, mask: Any) -> Captured:
    if frame.message == "bad":
        raise ValueError("cannot decode this frame")
    return Captured(frame.stamp_ns, (frame.message, mask.message if mask is not None else None), 1000)


def _pairing(limits: PairingLimits | None = None, masks: bool = False, **kw: Any) -> tuple[CommandPairing, FrameBuffer,
                                                                                         FrameBuffer | None]:
    frames = FrameBuffer(60.0, 10**9)
    mask_buffer = FrameBuffer(60.0, 10**9) if masks else None
    return CommandPairing(limits or PairingLimits(), frames, _capture, mask_buffer, **kw), frames, mask_buffer


def _answers(outcomes: list) -> list:
    return [o for o in outcomes if o.kind != OutcomeKind.NOTE]


def test_before_is_the_last_frame_at_or_before_the_start_and_after_the_first_after_end_plus_settle() -> None:
    pairing, frames, _ = _pairing(PairingLimits(settle_s=0.2))
    for i in range(20):
        frames.add(i * S // 10, f"f{i}", 10)
    assert pairing.on_event(_event("c", Phase.STARTED, 450_000_000), now=0.0) == []
    assert pairing.on_event(_event("c", Phase.FINISHED, S), now=0.1) == []
    (ready,) = pairing.poll(now=0.2)
    assert ready.kind == OutcomeKind.READY
    assert ready.before.data[0] == "f4" and ready.after.message == "f12"
    assert pairing.open_count == 0 and pairing.poll(now=0.3) == []


@pytest.mark.parametrize("first", [
    ("invalid", "STARTED without a semantic action"),
    ("invalid", "header stamp is zero"),
    ("invalid", "unknown phase 255"),
])
def test_an_invalid_message_answers_its_id_once_and_later_events_are_duplicates(first: tuple[str, str]) -> None:
    pairing, frames, _ = _pairing()
    frames.add(S, "f", 10)
    out = pairing.on_invalid("c", "", first[1], 0)
    assert [o.kind for o in out] == [OutcomeKind.UNVERIFIABLE] and first[1] in out[0].reason
    later = pairing.on_event(_event("c", Phase.STARTED, S), 0.0) + pairing.on_event(_event("c", Phase.FINISHED, 2 * S), 0.1)
    frames.add(3 * S, "g", 10)
    later += pairing.poll(10.0)
    assert _answers(later) == [] and pairing.stats.duplicates == 2


def test_an_invalid_message_for_a_running_command_closes_it_once() -> None:
    pairing, frames, _ = _pairing()
    frames.add(S, "f", 10)
    pairing.on_event(_event("c", Phase.STARTED, S), 0.0)
    assert len(_answers(pairing.on_invalid("c", "open", "unknown phase 255", S))) == 1
    assert _answers(pairing.on_event(_event("c", Phase.FINISHED, 2 * S), 0.1) + pairing.poll(10.0)) == []
    assert pairing.open_count == 0


def test_repeated_starts_and_ends_give_one_verdict() -> None:
    pairing, frames, _ = _pairing(PairingLimits(settle_s=0.0))
    frames.add(S, "f", 10)
    out = pairing.on_event(_event("c", Phase.STARTED, S), 0.0) + pairing.on_event(_event("c", Phase.STARTED, S), 0.0)
    out += pairing.on_event(_event("c", Phase.FINISHED, S), 0.1) + pairing.on_event(_event("c", Phase.FINISHED, S), 0.1)
    out += pairing.poll(0.2) + pairing.on_event(_event("c", Phase.FINISHED, S), 0.3) + pairing.poll(0.4)
    assert [o.kind for o in _answers(out)] == [OutcomeKind.READY]
    assert pairing.stats.duplicates == 3


def test_an_end_without_start_is_answered_at_once() -> None:
    pairing, _, _ = _pairing()
    (out,) = pairing.on_event(_event("x", Phase.FINISHED, S), 0.0)
    assert out.kind == OutcomeKind.UNVERIFIABLE and "FINISHED without STARTED" in out.reason


def test_open_commands_beyond_the_bound_are_evicted_with_a_reason_and_their_end_is_a_duplicate() -> None:
    pairing, frames, _ = _pairing(PairingLimits(max_open_commands=4))
    frames.add(S, "f", 10)
    out = []
    for i in range(6):
        out += pairing.on_event(_event(f"c{i}", Phase.STARTED, S), 0.0)
    evicted = _answers(out)
    assert [o.command_id for o in evicted] == ["c0", "c1"] and pairing.open_count == 4
    assert all("max_open_commands" in o.reason for o in evicted)
    late = pairing.on_event(_event("c0", Phase.FINISHED, 2 * S), 0.1)
    assert _answers(late) == [] and "already answered" in late[0].reason  # not "FINISHED without STARTED"
    assert pairing.stats.evicted == 2


def test_before_frames_are_bounded_by_bytes() -> None:
    pairing, frames, _ = _pairing(PairingLimits(max_open_bytes=2500, max_open_commands=100))
    frames.add(S, "f", 10)
    out = []
    for i in range(4):
        out += pairing.on_event(_event(f"c{i}", Phase.STARTED, S), 0.0)
        out += pairing.poll(0.0)  # each capture costs 1000 bytes
    assert pairing.open_bytes <= 2500 and [o.command_id for o in _answers(out)] == ["c0", "c1"]
    assert "max_open_bytes" in _answers(out)[0].reason


def test_a_capture_failure_ends_that_command_with_the_reason_and_the_next_one_is_verified() -> None:
    pairing, frames, _ = _pairing(PairingLimits(settle_s=0.0))
    frames.add(S, "bad", 10)
    frames.add(2 * S, "good", 10)
    pairing.on_event(_event("a", Phase.STARTED, S), 0.0)
    pairing.on_event(_event("a", Phase.FINISHED, 2 * S), 0.0)
    pairing.on_event(_event("b", Phase.STARTED, 2 * S), 0.0)
    pairing.on_event(_event("b", Phase.FINISHED, 2 * S), 0.0)
    out = {o.command_id: o for o in pairing.poll(0.1)}
    assert out["a"].kind == OutcomeKind.UNVERIFIABLE and "cannot decode this frame" in out["a"].reason
    assert out["b"].kind == OutcomeKind.READY and pairing.stats.capture_failures == 1


def test_unknown_actions_are_refused_at_the_end_once() -> None:
    pairing, frames, _ = _pairing(known_actions=frozenset({"open", "close"}))
    frames.add(S, "f", 10)
    assert pairing.on_event(_event("c", Phase.STARTED, S, action="juggle"), 0.0) == []
    (out,) = pairing.on_event(_event("c", Phase.FINISHED, S), 0.1) + pairing.poll(0.2)
    assert out.kind == OutcomeKind.UNVERIFIABLE and "unknown action 'juggle'" in out.reason


def test_a_command_without_end_expires() -> None:
    pairing, frames, _ = _pairing(PairingLimits(max_command_duration_s=5.0))
    frames.add(S, "f", 10)
    pairing.on_event(_event("c", Phase.STARTED, S), 0.0)
    assert _answers(pairing.poll(1.0)) == []
    (out,) = pairing.poll(6.0)
    assert "max_command_duration" in out.reason and pairing.stats.expired == 1


def test_masks_pair_by_exact_stamp_and_are_waited_for() -> None:
    pairing, frames, masks = _pairing(PairingLimits(settle_s=0.0, after_frame_timeout_s=1.0), masks=True)
    frames.add(S, "f1", 10)
    frames.add(2 * S, "f2", 10)
    pairing.on_event(_event("c", Phase.STARTED, S), 0.0)
    assert pairing.poll(0.1) == []  # the before frame's mask has not come yet: wait
    masks.add(S, "m1", 1)
    pairing.on_event(_event("c", Phase.FINISHED, 2 * S), 0.2)
    assert pairing.poll(0.3) == []  # the after frame's mask has not come yet: wait
    masks.add(2 * S, "m2", 1)
    (ready,) = pairing.poll(0.4)
    assert ready.before.data == ("f1", "m1") and ready.after_mask.message == "m2"


def test_a_missing_mask_is_given_up_on_once_a_later_mask_arrives() -> None:
    pairing, frames, masks = _pairing(PairingLimits(settle_s=0.0), masks=True)
    frames.add(S, "f1", 10)
    frames.add(2 * S, "f2", 10)
    masks.add(3 * S, "m3", 1)  # masks of S and 2S were lost
    pairing.on_event(_event("c", Phase.STARTED, S), 0.0)
    pairing.on_event(_event("c", Phase.FINISHED, 2 * S), 0.0)
    (ready,) = pairing.poll(0.1)
    assert ready.before.data == ("f1", None) and ready.after_mask is None  # the node decides what that means


ops = st.lists(st.one_of(
    st.tuples(st.just("frame"), st.integers(0, 40), st.sampled_from(["ok", "ok", "bad"])),
    st.tuples(st.just("event"), st.sampled_from("abcdefgh"), st.sampled_from(list(Phase)), st.integers(0, 40)),
    st.tuples(st.just("invalid"), st.sampled_from("abcdefgh")),
    st.tuples(st.just("tick"), st.floats(0.0, 2.0)),
), max_size=80)


@settings(max_examples=400, deadline=None)
@given(ops=ops, max_open=st.integers(1, 5))
def test_exactly_one_verdict_per_id_and_bounded_state_whatever_the_sequence(ops: list, max_open: int) -> None:
    limits = PairingLimits(settle_s=0.1, after_frame_timeout_s=1.0, max_command_duration_s=30.0,
                           max_open_commands=max_open, max_open_bytes=3000)
    pairing, frames, _ = _pairing(limits)
    now, seen, answers = 0.0, set(), []
    for op in ops:
        if op[0] == "frame":
            frames.add(op[1] * S // 4, "bad" if op[2] == "bad" else f"f{op[1]}", 10)
        elif op[0] == "event":
            seen.add(op[1])
            answers += _answers(pairing.on_event(_event(op[1], op[2], op[3] * S // 4), now))
        elif op[0] == "invalid":
            seen.add(op[1])
            answers += _answers(pairing.on_invalid(op[1], "", "bad message", 0))
        else:
            now += op[1]
        answers += _answers(pairing.poll(now))
        assert pairing.open_count <= max_open and pairing.open_bytes <= 3000
    answers += _answers(pairing.poll(now + 1000.0))  # everything still open ends by a deadline
    assert sorted(o.command_id for o in answers) == sorted(seen)
    assert pairing.open_count == 0 and pairing.open_bytes == 0
