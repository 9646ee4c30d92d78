"""Command events + camera frames (+ robot masks) -> pairs to verify, or the reason a command cannot be.

Pure logic, no ROS: the node feeds it events and polls it from its worker; the property tests drive it with
random event and frame sequences. What it guarantees:
- exactly one outcome per command id that had a STARTED or an end (FINISHED/ABORTED) or an invalid event,
  whatever the order or repetition of events; a later event for an answered id is a duplicate (a note, no
  second outcome), as long as the id is among the last `max_remembered_ids` answered;
- bounded state: at most `max_open_commands` commands and `max_open_bytes` of kept before frames; the
  oldest open command beyond either bound is answered at once ("evicted") and counted;
- no callback can stop it: a failure while capturing a before frame ends that command with the reason.

Timeline (the camera's clock, header stamps): the before frame is the last one at or before the start,
taken once a frame at or after the start has arrived (frames of one topic arrive in order) or after
`after_frame_timeout_s`; the after frame is the first at or after end + `settle_s`, waited for up to
`settle_s + after_frame_timeout_s` of wall time. With masks on, each frame also needs the mask with its
exact stamp (masks come on their own topic and may arrive a moment later).
"""
from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from cde_ros.command_events import CommandEvent, Phase
from cde_ros.frame_buffer import BufferedFrame


class FrameLookup(Protocol):
    """What the pairing needs of a FrameBuffer (frames, and masks when they are on)."""

    def latest_stamp(self) -> int | None: ...

    def before(self, stamp_ns: int) -> BufferedFrame | None: ...

    def first_after(self, stamp_ns: int) -> BufferedFrame | None: ...


@dataclass(frozen=True)
class PairingLimits:
    """Every bound and wait of the pairing (node parameters of the same names)."""

    settle_s: float = 0.3
    after_frame_timeout_s: float = 3.0
    max_before_frame_age_s: float = 2.0
    max_command_duration_s: float = 300.0
    max_open_commands: int = 256
    max_open_bytes: int = 64 * 1024 * 1024
    max_remembered_ids: int = 4096


@dataclass
class Captured:
    """A before frame as the node keeps it: its stamp, whatever compact form the model needs (`data`), and
    what that costs (`nbytes`). The full message is kept only when the episode will be recorded: holding it
    for every open command is what made 5,000 open commands cost 1.3 GB."""

    stamp_ns: int
    data: Any
    nbytes: int
    message: Any = None
    mask_message: Any = None  # its robot mask's message, likewise only for recording


class OutcomeKind(enum.Enum):
    READY = "ready"  # both frames are there: verify
    UNVERIFIABLE = "unverifiable"  # answer UNCERTAIN with the reason
    NOTE = "note"  # nothing to answer; a line for the log (a duplicate, a refusal already answered)


@dataclass
class Outcome:
    kind: OutcomeKind
    command_id: str
    action: str = ""
    reason: str = ""
    start: CommandEvent | None = None
    end_ns: int = 0
    end_event: CommandEvent | None = None
    before: Captured | None = None
    after: BufferedFrame | None = None
    after_mask: BufferedFrame | None = None
    finished_wall: float = 0.0


@dataclass
class PairingStats:
    """Counters since creation, for /diagnostics."""

    answered: int = 0
    duplicates: int = 0  # events for an id already answered or already running
    evicted: int = 0  # open commands answered early because a bound was reached
    expired: int = 0  # no end within max_command_duration (its end was lost, or the arm's driver died)
    ends_without_start: int = 0  # an end whose STARTED never came (lost in a burst, or never sent)
    capture_failures: int = 0  # a before frame that could not be converted / embedded
    forgotten_ids: int = 0  # answered ids dropped from memory (a later event for one would be new)


@dataclass
class _Open:
    command_id: str
    start: CommandEvent | None
    received_wall: float
    end: CommandEvent | None = None
    finished_wall: float = 0.0
    before: Captured | None = None
    before_taken: bool = False
    problem: str = ""
    nbytes: int = 0


class CommandPairing:
    """See the module docstring. `capture(frame, mask)` turns a buffered frame (and its mask or None) into a
    Captured; any exception it raises ends that command with the reason."""

    def __init__(self, limits: PairingLimits, frames: FrameLookup, capture: Callable[[BufferedFrame, Any], Captured],
                 masks: FrameLookup | None = None, known_actions: frozenset[str] | None = None) -> None:
        self.limits = limits
        self.frames = frames
        self.masks = masks
        self.capture = capture
        self.known_actions = known_actions
        self.stats = PairingStats()
        self._open: OrderedDict[str, _Open] = OrderedDict()
        self._answered: OrderedDict[str, str] = OrderedDict()  # id -> how it was answered (for the duplicate note)
        self._open_bytes = 0

    # ------------------------------------------------------------------ state for diagnostics
    @property
    def open_count(self) -> int:
        return len(self._open)

    @property
    def open_bytes(self) -> int:
        return self._open_bytes

    def is_answered(self, command_id: str) -> bool:
        return command_id in self._answered

    # ------------------------------------------------------------------ events
    def on_event(self, event: CommandEvent, now: float) -> list[Outcome]:
        """A STARTED, FINISHED or ABORTED event; returns outcomes due at once (notes, evictions, orphans)."""
        cid = event.command_id
        if cid in self._answered:
            self.stats.duplicates += 1
            return [Outcome(OutcomeKind.NOTE, cid, reason=f"{event.phase.name} for command {cid}, which was already "
                                                         f"answered ({self._answered[cid]}): ignored")]
        if event.phase == Phase.STARTED:
            return self._on_start(event, now)
        return self._on_end(event, now)

    def on_invalid(self, command_id: str, action: str, reason: str, stamp_ns: int) -> list[Outcome]:
        """A command message that could not become an event (empty action, zero stamp, unknown phase): its id
        is answered now with the reason, so a later valid event for it gets no second verdict."""
        if command_id in self._answered:
            self.stats.duplicates += 1
            return [Outcome(OutcomeKind.NOTE, command_id, reason=f"invalid message for command {command_id}, "
                                                                 f"already answered: {reason}")]
        pending = self._open.pop(command_id, None)
        if pending is not None:
            self._release(pending)
        start = pending.start if pending is not None else None
        return [self._answer(command_id, OutcomeKind.UNVERIFIABLE, action or (start.action if start else ""), reason,
                             start, max(stamp_ns, 0), pending.before if pending else None)]

    def _on_start(self, event: CommandEvent, now: float) -> list[Outcome]:
        cid = event.command_id
        if cid in self._open:
            self.stats.duplicates += 1
            existing = self._open[cid]
            what = "already running" if existing.start is not None else "its end came first"
            return [Outcome(OutcomeKind.NOTE, cid, reason=f"duplicate STARTED for command {cid} ({what}): ignored")]
        pending = _Open(cid, event, now)
        if self.known_actions is not None and event.action not in self.known_actions:
            pending.problem = (f"unknown action '{event.action}' for command {cid}: the model knows "
                               f"{', '.join(sorted(self.known_actions))}")
            pending.before_taken = True  # nothing to capture; answered with the reason at its end
        self._open[cid] = pending
        self._try_take_before(pending, now)  # at once when the camera is there: a backlog must not age it out
        return self._enforce_bounds()

    def _on_end(self, event: CommandEvent, now: float) -> list[Outcome]:
        cid = event.command_id
        pending = self._open.get(cid)
        if pending is None:  # an end without a start: answered at once, with the reason
            self.stats.ends_without_start += 1
            return [self._answer(cid, OutcomeKind.UNVERIFIABLE, event.action,
                                 f"{event.phase.name} without STARTED for command {cid}", None, event.stamp_ns)]
        if pending.end is not None:
            self.stats.duplicates += 1
            return [Outcome(OutcomeKind.NOTE, cid, reason=f"duplicate {event.phase.name} for command {cid}: ignored")]
        pending.end, pending.finished_wall = event, now
        if not pending.before_taken:
            self._try_take_before(pending, now)
        start = pending.start
        if start is not None and event.stamp_ns < start.stamp_ns and not pending.problem:
            pending.problem = (f"command {cid} ends ({event.stamp_ns}) before it starts ({start.stamp_ns}): "
                               "clocks disagree")
        return []

    # ------------------------------------------------------------------ polling
    def poll(self, now: float) -> list[Outcome]:
        """Take due before frames, emit pairs whose after frame is there, answer what timed out."""
        outcomes: list[Outcome] = []
        for pending in list(self._open.values()):
            if not pending.before_taken:
                self._try_take_before(pending, now)
            if pending.end is not None and pending.before_taken:
                outcome = self._try_finish(pending, now)
                if outcome is not None:
                    outcomes.append(outcome)
            elif pending.end is None and now - pending.received_wall > self.limits.max_command_duration_s:
                self.stats.expired += 1
                outcomes.append(self._close(pending, OutcomeKind.UNVERIFIABLE, f"no end seen within "
                                            f"max_command_duration {self.limits.max_command_duration_s:.0f} s"))
        outcomes += self._enforce_bounds()
        return outcomes

    def _mask_of(self, frame: BufferedFrame, waited: float) -> tuple[BufferedFrame | None, bool]:
        """(the mask stamped like `frame` or None, whether to keep waiting for it)."""
        if self.masks is None:
            return None, False
        mask = self.masks.before(frame.stamp_ns)
        if mask is not None and mask.stamp_ns == frame.stamp_ns:
            return mask, False
        latest = self.masks.latest_stamp()
        missing = (latest is not None and latest > frame.stamp_ns) or waited > self.limits.after_frame_timeout_s
        return None, not missing

    def _try_take_before(self, pending: _Open, now: float) -> None:
        start = pending.start
        if start is None:
            pending.before_taken = True
            return
        waited = now - pending.received_wall
        latest = self.frames.latest_stamp()
        if not ((latest is not None and latest >= start.stamp_ns) or waited > self.limits.after_frame_timeout_s
                or pending.end is not None):
            return
        frame = self.frames.before(start.stamp_ns)
        if frame is None:
            pending.problem = pending.problem or "no camera frame at or before the command start"
            pending.before_taken = True
            return
        age = (start.stamp_ns - frame.stamp_ns) / 1e9
        if age > self.limits.max_before_frame_age_s:
            pending.problem = pending.problem or (f"the last frame before the start is {age:.2f} s old "
                                                  "(> max_before_frame_age)")
            pending.before_taken = True
            return
        mask, wait = self._mask_of(frame, waited)
        if wait and pending.end is None:
            return
        pending.before_taken = True
        try:
            pending.before = self.capture(frame, mask)
        except Exception as exc:  # noqa: BLE001 - any failure of one frame ends that command, never the loop
            self.stats.capture_failures += 1
            pending.problem = pending.problem or f"before frame: {_describe(exc)}"
            return
        pending.nbytes = int(pending.before.nbytes)
        self._open_bytes += pending.nbytes

    def _try_finish(self, pending: _Open, now: float) -> Outcome | None:
        assert pending.end is not None
        if pending.problem:
            return self._close(pending, OutcomeKind.UNVERIFIABLE, pending.problem)
        settle, timeout = self.limits.settle_s, self.limits.after_frame_timeout_s
        frame = self.frames.first_after(pending.end.stamp_ns + int(settle * 1e9))
        late = now - pending.finished_wall > settle + timeout
        if frame is None:
            if late:
                return self._close(pending, OutcomeKind.UNVERIFIABLE,
                                   f"no camera frame at or after end + settle ({settle:.2f} s) within {timeout:.1f} s "
                                   "(after_frame_timeout)")
            return None
        mask, wait = self._mask_of(frame, now - pending.finished_wall - settle)
        if wait and not late:
            return None
        outcome = self._close(pending, OutcomeKind.READY, "", after=frame)
        outcome.after_mask = mask
        return outcome

    # ------------------------------------------------------------------ bookkeeping
    def _enforce_bounds(self) -> list[Outcome]:
        outcomes = []
        limits = self.limits
        while self._open and (len(self._open) > limits.max_open_commands or self._open_bytes > limits.max_open_bytes):
            oldest = next(iter(self._open.values()))
            bound = ("max_open_commands" if len(self._open) > limits.max_open_commands else "max_open_bytes")
            self.stats.evicted += 1
            outcomes.append(self._close(oldest, OutcomeKind.UNVERIFIABLE,
                                        f"evicted before its end: more than {limits.max_open_commands} commands or "
                                        f"{limits.max_open_bytes / 2**20:.0f} MB of before frames open at once "
                                        f"({bound}); a later end for it is ignored"))
        return outcomes

    def _release(self, pending: _Open) -> None:
        self._open_bytes -= pending.nbytes
        pending.nbytes = 0

    def _close(self, pending: _Open, kind: OutcomeKind, reason: str, after: BufferedFrame | None = None) -> Outcome:
        self._open.pop(pending.command_id, None)
        self._release(pending)
        start, end = pending.start, pending.end
        action = start.action if start is not None else (end.action if end is not None else "")
        end_ns = end.stamp_ns if end is not None else (start.stamp_ns if start is not None else 0)
        outcome = self._answer(pending.command_id, kind, action, reason, start, end_ns, pending.before, after)
        outcome.finished_wall, outcome.end_event = pending.finished_wall, end
        return outcome

    def _answer(self, command_id: str, kind: OutcomeKind, action: str, reason: str, start: CommandEvent | None,
                end_ns: int, before: Captured | None = None, after: BufferedFrame | None = None) -> Outcome:
        self.stats.answered += 1
        self._answered[command_id] = "verified" if kind == OutcomeKind.READY else (reason[:80] or "uncertain")
        while len(self._answered) > self.limits.max_remembered_ids:
            self._answered.popitem(last=False)
            self.stats.forgotten_ids += 1
        return Outcome(kind, command_id, action=action, reason=reason, start=start, end_ns=end_ns, before=before,
                       after=after)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, ValueError) else f"{type(exc).__name__}: {text}"
