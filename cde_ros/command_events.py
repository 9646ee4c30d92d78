"""Manipulator commands, whatever their source, normalised into one CommandEvent.

Sources: the package's ManipulatorCommand topic (carries the semantic action), and the status topic
every ROS 2 action server publishes (`<action>/_action/status`, action_msgs/GoalStatusArray), with a
configured action server -> semantic action mapping. `cde_ros.command_pairing` pairs starts with ends
and with camera frames.
"""
from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterable


class Phase(enum.IntEnum):
    """Same values as ManipulatorCommand.PHASE_*."""

    STARTED = 0
    FINISHED = 1
    ABORTED = 2


# action_msgs/GoalStatus values (fixed by the ROS 2 interface definition).
STATUS_ACCEPTED = 1
STATUS_EXECUTING = 2
STATUS_SUCCEEDED = 4
STATUS_CANCELED = 5
STATUS_ABORTED = 6
_TERMINAL = {STATUS_SUCCEEDED: Phase.FINISHED, STATUS_CANCELED: Phase.ABORTED, STATUS_ABORTED: Phase.ABORTED}


class CommandEventError(ValueError):
    """A command message cannot be turned into an event (the message says why)."""


@dataclass(frozen=True)
class CommandEvent:
    """One phase of one command, whatever announced it; stamp_ns is on the robot's (camera's) clock."""

    command_id: str
    action: str
    object: str
    phase: Phase
    stamp_ns: int
    source: str  # "topic" or the action server name


def event_from_command(command_id: str, action: str, obj: str, phase: int, stamp_ns: int) -> CommandEvent:
    """ManipulatorCommand fields -> CommandEvent; CommandEventError says what the publisher got wrong."""
    if not command_id:
        raise CommandEventError("command_id is empty: every command needs an id to pair its start and end")
    try:
        phase_ = Phase(phase)
    except ValueError as exc:
        raise CommandEventError(f"command {command_id}: unknown phase {phase} "
                                "(0 started, 1 finished, 2 aborted)") from exc
    if phase_ == Phase.STARTED and not action:
        raise CommandEventError(f"command {command_id}: STARTED without a semantic action")
    if stamp_ns < 0:
        raise CommandEventError(f"command {command_id}: header stamp is negative ({stamp_ns} ns); stamp commands "
                                "with the robot clock")
    if stamp_ns == 0:
        raise CommandEventError(f"command {command_id}: header stamp is zero; stamp commands with the robot clock")
    return CommandEvent(command_id, action, obj, phase_, stamp_ns, "topic")


def parse_action_mapping(entries: Iterable[str]) -> dict[str, str]:
    """["/arm/open_drawer=open", ...] -> {"/arm/open_drawer": "open"} (ROS parameters have no dicts)."""
    mapping: dict[str, str] = {}
    for entry in entries:
        if not entry:
            continue
        name, sep, action = entry.partition("=")
        if not sep or not name.strip() or not action.strip():
            raise CommandEventError(f"action server mapping {entry!r} is not 'server_name=semantic_action'")
        mapping[name.strip()] = action.strip()
    return mapping


class GoalStatusTracker:
    """Turns one action server's GoalStatusArray messages into start/end events, each exactly once.

    Status messages repeat every goal the server still holds, finished ones included until their result
    expires (rcl's default: 15 minutes), so we remember each goal exactly as long as the server lists it: a
    goal absent from the latest message is forgotten, and one listed is never mistaken for a new one. The
    start stamp is the goal's acceptance stamp (GoalStatus.stamp); status messages carry no end time, so the
    end is stamped with the time the terminal status was received (`now_ns`).
    The status topic keeps only the last message, so a short goal may go from ACCEPTED straight to a
    terminal state: then STARTED (at acceptance) and the end are emitted together. A terminal goal
    accepted before `since_ns` (when we began watching; the transient-local status replays old goals)
    is history: remembered, not emitted.

    `max_goals` caps the goals tracked at once. Over it, a finished goal (oldest first) is let go, or, when
    every tracked goal is still running, the new goal is not tracked; either way `overflow` counts it and
    `forgotten_before_ns` rises to its acceptance stamp, so an untracked goal accepted no later than that is
    ignored from then on instead of being taken for a new one (no second answer; at worst, counted, none).
    """

    def __init__(self, server: str, action: str, since_ns: int = 0, max_goals: int = 256) -> None:
        if max_goals < 1:
            raise ValueError(f"max_goals must be >= 1 (got {max_goals})")
        self.server = server
        self.action = action
        self.since_ns = since_ns
        self.max_goals = max_goals
        self.overflow = 0  # goals let go of or never tracked because max_goals were tracked already
        self.forgotten_before_ns = -1  # untracked goals accepted at or before this are old, not new
        self._goals: OrderedDict[str, _TrackedGoal] = OrderedDict()  # goal uuid hex -> state, in first-seen order

    def command_id(self, uuid: bytes) -> str:
        """Action server name + goal UUID hex: unique per goal and readable in logs."""
        return f"{self.server}/{bytes(uuid).hex()}"

    def tracked_count(self) -> int:
        return len(self._goals)

    def update(self, statuses: Iterable[tuple[bytes, int, int]], now_ns: int) -> list[CommandEvent]:
        """statuses: (goal uuid bytes, status code, accept stamp ns) for every goal in the message, which
        lists every goal the server still holds (goals not in it are gone from the server)."""
        statuses = [(bytes(uuid), status, accept_ns) for uuid, status, accept_ns in statuses]
        listed = {uuid.hex() for uuid, _, _ in statuses}
        for gone in [goal for goal in self._goals if goal not in listed]:
            del self._goals[gone]
        events: list[CommandEvent] = []
        for uuid, status, accept_ns in statuses:
            goal = uuid.hex()
            state = self._goals.get(goal)
            if state is None:
                if 0 < accept_ns <= self.forgotten_before_ns or not self._make_room(accept_ns):
                    continue
                state = self._goals[goal] = _TrackedGoal(accept_ns)
            events.extend(self._transition(uuid, state, status, accept_ns, now_ns))
        return events

    def _make_room(self, accept_ns: int) -> bool:
        """Room for one more goal: let the oldest finished goal go, else refuse this one; both are counted."""
        if len(self._goals) < self.max_goals:
            return True
        self.overflow += 1
        finished = next((goal for goal, state in self._goals.items() if state.status in _TERMINAL), None)
        if finished is None:  # every tracked goal is running: this one is not tracked
            self.forgotten_before_ns = max(self.forgotten_before_ns, accept_ns)
            return False
        self.forgotten_before_ns = max(self.forgotten_before_ns, self._goals.pop(finished).accept_ns)
        return True

    def _transition(self, uuid: bytes, state: "_TrackedGoal", status: int, accept_ns: int,
                    now_ns: int) -> list[CommandEvent]:
        previous = state.status
        if previous in _TERMINAL:  # a goal ends once; its later listings change nothing
            return []
        state.status = status
        command_id = self.command_id(uuid)
        start_ns = accept_ns or now_ns
        if status == STATUS_EXECUTING and not state.started:
            state.started = True
            return [CommandEvent(command_id, self.action, "", Phase.STARTED, start_ns, self.server)]
        if status not in _TERMINAL:
            return []
        events: list[CommandEvent] = []
        if state.started or accept_ns >= self.since_ns:  # else: ended before we watched
            if not state.started:  # EXECUTING never reached us (status is keep-last-1)
                events.append(CommandEvent(command_id, self.action, "", Phase.STARTED, start_ns, self.server))
            events.append(CommandEvent(command_id, self.action, "", _TERMINAL[status], now_ns, self.server))
        return events


@dataclass
class _TrackedGoal:
    """What GoalStatusTracker keeps per listed goal."""

    accept_ns: int
    status: int = 0  # STATUS_UNKNOWN until the first message that lists it has been applied
    started: bool = False
