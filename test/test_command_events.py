"""Command normalisation: topic messages, action status, pairing."""
from __future__ import annotations

import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from cde_ros.command_events import (STATUS_ABORTED, STATUS_ACCEPTED, STATUS_CANCELED, STATUS_EXECUTING,
                                    STATUS_SUCCEEDED, CommandEventError, GoalStatusTracker, Phase,
                                    event_from_command, parse_action_mapping)

ACCEPTED = STATUS_ACCEPTED


def test_status_codes_match_action_msgs() -> None:
    goal_status = pytest.importorskip("action_msgs.msg").GoalStatus
    assert (STATUS_ACCEPTED, STATUS_EXECUTING, STATUS_SUCCEEDED, STATUS_CANCELED, STATUS_ABORTED) == (
        goal_status.STATUS_ACCEPTED, goal_status.STATUS_EXECUTING, goal_status.STATUS_SUCCEEDED,
        goal_status.STATUS_CANCELED, goal_status.STATUS_ABORTED)


def test_topic_event_validation() -> None:
    event = event_from_command("c1", "open", "drawer", 0, 5)
    assert event.phase == Phase.STARTED and event.source == "topic"
    with pytest.raises(CommandEventError, match="empty"):
        event_from_command("", "open", "", 0, 5)
    with pytest.raises(CommandEventError, match="unknown phase"):
        event_from_command("c1", "open", "", 7, 5)
    with pytest.raises(CommandEventError, match="without a semantic action"):
        event_from_command("c1", "", "", 0, 5)
    with pytest.raises(CommandEventError, match="stamp is zero"):
        event_from_command("c1", "open", "", 1, 0)
    with pytest.raises(CommandEventError, match="stamp is negative"):
        event_from_command("c1", "open", "", 1, -5 * 10**9)


def test_status_tracker_emits_each_transition_once() -> None:
    tracker = GoalStatusTracker("/arm/open", "open")
    goal = bytes(range(16))
    assert tracker.update([(goal, ACCEPTED, 10)], now_ns=11) == []
    started = tracker.update([(goal, STATUS_EXECUTING, 10)], now_ns=12)
    assert [(e.phase, e.stamp_ns, e.action) for e in started] == [(Phase.STARTED, 10, "open")]
    assert tracker.update([(goal, STATUS_EXECUTING, 10)], now_ns=13) == []  # repeated status
    finished = tracker.update([(goal, STATUS_SUCCEEDED, 10)], now_ns=20)
    assert [(e.phase, e.stamp_ns) for e in finished] == [(Phase.FINISHED, 20)]
    assert finished[0].command_id == started[0].command_id == f"/arm/open/{goal.hex()}"
    assert tracker.update([(goal, STATUS_SUCCEEDED, 10)], now_ns=21) == []


def test_status_tracker_missed_executing_emits_start_then_end() -> None:
    """The status topic keeps only the last message: a short goal may be seen only when it is over."""
    tracker = GoalStatusTracker("/arm/close", "close", since_ns=5)
    events = tracker.update([(b"\x01" * 16, STATUS_ABORTED, 7)], now_ns=9)
    assert [(e.phase, e.stamp_ns) for e in events] == [(Phase.STARTED, 7), (Phase.ABORTED, 9)]
    assert tracker.update([(b"\x01" * 16, STATUS_ABORTED, 7)], now_ns=10) == []


def test_status_tracker_ignores_goals_that_ended_before_it_watched() -> None:
    """Transient-local replays the last status on subscription: old finished goals are history."""
    tracker = GoalStatusTracker("/arm/open", "open", since_ns=100)
    old, running = b"\x02" * 16, b"\x03" * 16
    events = tracker.update([(old, STATUS_SUCCEEDED, 50), (running, STATUS_EXECUTING, 60)], now_ns=101)
    assert [(e.command_id, e.phase) for e in events] == [(tracker.command_id(running), Phase.STARTED)]
    ended = tracker.update([(old, STATUS_SUCCEEDED, 50), (running, STATUS_CANCELED, 60)], now_ns=120)
    assert [(e.command_id, e.phase, e.stamp_ns) for e in ended] == [(tracker.command_id(running), Phase.ABORTED, 120)]


def test_status_tracker_many_goals_in_one_message() -> None:
    tracker = GoalStatusTracker("/arm/open", "open")
    goals = [bytes([i]) * 16 for i in range(5)]
    started = tracker.update([(g, STATUS_EXECUTING, 10 + i) for i, g in enumerate(goals)], now_ns=20)
    assert len({e.command_id for e in started}) == 5 and all(e.phase == Phase.STARTED for e in started)
    finished = tracker.update([(g, STATUS_SUCCEEDED if i % 2 else STATUS_ABORTED, 10 + i)
                               for i, g in enumerate(goals)], now_ns=30)
    assert [e.phase for e in finished] == [Phase.ABORTED, Phase.FINISHED] * 2 + [Phase.ABORTED]


def _goal(i: int) -> bytes:
    return i.to_bytes(16, "big")


def _ends(events: list) -> dict[str, list[Phase]]:
    phases: dict[str, list[Phase]] = {}
    for e in events:
        phases.setdefault(e.command_id, []).append(e.phase)
    return phases


def test_status_tracker_goals_kept_listed_after_they_end_are_answered_once_each() -> None:
    """Issue 13: action servers list finished goals until their result expires. 300 goals one after another,
    each kept listed: with 256 remembered, the old tracker forgot listed goals, which came back as new
    (14,690 verdicts for 300 goals, one answered 57 times, 16 never)."""
    tracker = GoalStatusTracker("/arm/open", "open", since_ns=1)
    listing: list[tuple[bytes, int, int]] = []  # what the server still holds: every goal so far
    events = []
    now = 10
    for i in range(300):
        accept = now
        for status in (ACCEPTED, STATUS_EXECUTING, STATUS_SUCCEEDED):
            now += 1
            events += tracker.update(listing + [(_goal(i), status, accept)], now_ns=now)
        listing.append((_goal(i), STATUS_SUCCEEDED, accept))
        assert tracker.tracked_count() <= 256
    for _ in range(3):  # the server keeps publishing the full list: nothing new
        now += 1
        assert tracker.update(listing, now_ns=now) == []
    phases = _ends(events)
    assert len(phases) == 300 and all(p == [Phase.STARTED, Phase.FINISHED] for p in phases.values())
    assert tracker.overflow == 300 - 256  # each goal past the bound let the oldest finished one go, counted


def test_status_tracker_forgets_a_goal_only_when_the_server_stops_listing_it() -> None:
    tracker = GoalStatusTracker("/arm/open", "open", max_goals=4)
    done = [(_goal(i), STATUS_SUCCEEDED, 10 + i) for i in range(3)]
    assert len(tracker.update(done, now_ns=20)) == 6
    assert tracker.update(done, now_ns=21) == [] and tracker.tracked_count() == 3
    assert tracker.update(done[1:], now_ns=22) == [] and tracker.tracked_count() == 2  # goal 0's result expired
    assert tracker.update([], now_ns=23) == [] and tracker.tracked_count() == 0
    assert tracker.overflow == 0


def test_status_tracker_full_of_running_goals_counts_and_never_answers_the_untracked_one() -> None:
    """More goals running at once than max_goals: the extra one is not tracked, counted, and when it ends it is
    not taken for a new goal (no start/end pair out of nowhere), while the tracked ones are answered."""
    tracker = GoalStatusTracker("/arm/open", "open", max_goals=2)
    running = [(_goal(i), STATUS_EXECUTING, 10 + i) for i in range(3)]
    started = tracker.update(running, now_ns=20)
    assert [e.command_id for e in started] == [tracker.command_id(_goal(0)), tracker.command_id(_goal(1))]
    assert tracker.overflow == 1 and tracker.tracked_count() == 2
    assert tracker.update(running, now_ns=21) == [] and tracker.overflow == 1  # counted once, not per message
    ended = tracker.update([(_goal(i), STATUS_SUCCEEDED, 10 + i) for i in range(3)], now_ns=30)
    assert _ends(ended) == {tracker.command_id(_goal(i)): [Phase.FINISHED] for i in range(2)}
    assert tracker.update([(_goal(2), STATUS_SUCCEEDED, 12)], now_ns=31) == []  # room now, still not new
    fresh = tracker.update([(_goal(2), STATUS_SUCCEEDED, 12), (_goal(3), STATUS_EXECUTING, 40)], now_ns=41)
    assert [(e.command_id, e.phase) for e in fresh] == [(tracker.command_id(_goal(3)), Phase.STARTED)]


def test_status_tracker_rejects_a_bound_below_one() -> None:
    with pytest.raises(ValueError, match="max_goals"):
        GoalStatusTracker("/arm/open", "open", max_goals=0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(1, 8), st.sampled_from(
    [STATUS_SUCCEEDED, STATUS_ABORTED, STATUS_CANCELED])), min_size=1, max_size=25),
    st.integers(1, 8), st.integers(1, 30))
def test_status_tracker_answers_every_goal_at_most_once(goals: list[tuple[int, int, int]], max_goals: int,
                                                        expiry: int) -> None:
    """Server-like listings (goal i accepted at step 10 i + delay, runs `duration` steps, ends, stays listed `expiry`
    steps): never a second STARTED or end, an end only after a STARTED, memory within max_goals, and
    every goal answered exactly once when the bound is never exceeded."""
    tracker = GoalStatusTracker("/arm/open", "open", max_goals=max_goals)
    events = []
    for step in range(10 * len(goals) + 50):  # the last goal ends (delay + duration < 15) and expires
        listing = []
        for i, (delay, duration, end) in enumerate(goals):
            accepted = 10 * i + delay
            if accepted <= step < accepted + duration + expiry:
                listing.append((_goal(i), ACCEPTED if step == accepted else
                                STATUS_EXECUTING if step < accepted + duration else end, accepted + 1))
        events += tracker.update(listing, now_ns=step + 1)
        assert tracker.tracked_count() <= max_goals
    for phases in _ends(events).values():
        assert phases in ([Phase.STARTED], [Phase.STARTED, Phase.FINISHED], [Phase.STARTED, Phase.ABORTED])
    if tracker.overflow == 0:
        assert len(_ends(events)) == len(goals) and all(len(p) == 2 for p in _ends(events).values())


def test_action_mapping() -> None:
    assert parse_action_mapping(["/a=open", " /b = close ", ""]) == {"/a": "open", "/b": "close"}
    with pytest.raises(CommandEventError, match="server_name=semantic_action"):
        parse_action_mapping(["/a"])
