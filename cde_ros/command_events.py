"""Manipulator commands, whatever their source, normalised into one CommandEvent.

Sources: the package's ManipulatorCommand topic (carries the semantic action), and the status topic
every ROS 2 action server publishes (`<action>/_action/status`, action_msgs/GoalStatusArray), with a
configured action server -> semantic action mapping. `CommandTracker` pairs starts with ends.
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
    command_id: str
    action: str
    object: str
    phase: Phase
    stamp_ns: int
    source: str  # "topic" or the action server name


def event_from_command(command_id: str, action: str, obj: str, phase: int, stamp_ns: int) -> CommandEvent:
    if not command_id:
        raise CommandEventError("command_id is empty: every command needs an id to pair its start and end")
    try:
        phase_ = Phase(phase)
    except ValueError as exc:
        raise CommandEventError(f"command {command_id}: unknown phase {phase} (0 started, 1 finished, 2 aborted)") from exc
    if phase_ == Phase.STARTED and not action:
        raise CommandEventError(f"command {command_id}: STARTED without a semantic action")
    if stamp_ns <= 0:
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

    Status messages repeat every goal's current state; we remember what we saw per goal id. The start
    stamp is the goal's acceptance stamp (GoalStatus.stamp); status messages carry no end time, so the
    end is stamped with the time the terminal status was received (`now_ns`).
    """

    def __init__(self, server: str, action: str, max_goals: int = 256) -> None:
        self.server = server
        self.action = action
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._max_goals = max_goals

    def update(self, statuses: Iterable[tuple[bytes, int, int]], now_ns: int) -> list[CommandEvent]:
        """statuses: (goal uuid bytes, status code, accept stamp ns) for every goal in the message."""
        events: list[CommandEvent] = []
        for uuid, status, accept_ns in statuses:
            goal = bytes(uuid).hex()
            previous = self._seen.get(goal)
            command_id = f"{self.server}/{goal}"
            if status == STATUS_EXECUTING and previous in (None, STATUS_ACCEPTED):
                events.append(CommandEvent(command_id, self.action, "", Phase.STARTED, accept_ns or now_ns, self.server))
            elif status in _TERMINAL and previous not in _TERMINAL:  # also when EXECUTING was missed
                events.append(CommandEvent(command_id, self.action, "", _TERMINAL[status], now_ns, self.server))
            if previous != status:
                self._seen[goal] = status
                self._seen.move_to_end(goal)
                while len(self._seen) > self._max_goals:
                    self._seen.popitem(last=False)
        return events


@dataclass(frozen=True)
class CommandPair:
    start: CommandEvent | None
    end: CommandEvent
    problem: str = ""  # why this pair cannot be verified normally ("" = fine)


class CommandTracker:
    """Pairs STARTED with FINISHED/ABORTED by id; bounded, rejects what cannot be paired."""

    def __init__(self, max_open: int = 64) -> None:
        self._open: OrderedDict[str, CommandEvent] = OrderedDict()
        self._closed: OrderedDict[str, None] = OrderedDict()
        self.max_open = max_open

    def start(self, event: CommandEvent) -> str:
        """Register a start; returns "" or the reason it was refused."""
        if event.command_id in self._open or event.command_id in self._closed:
            return f"duplicate STARTED for command {event.command_id}"
        self._open[event.command_id] = event
        while len(self._open) > self.max_open:
            self._open.popitem(last=False)
        return ""

    def finish(self, event: CommandEvent) -> CommandPair:
        if event.command_id in self._closed:
            return CommandPair(None, event, f"duplicate {event.phase.name} for command {event.command_id}")
        start = self._open.pop(event.command_id, None)
        self._closed[event.command_id] = None
        while len(self._closed) > 4 * self.max_open:
            self._closed.popitem(last=False)
        if start is None:
            return CommandPair(None, event, f"{event.phase.name} without STARTED for command {event.command_id}")
        if event.stamp_ns < start.stamp_ns:
            return CommandPair(start, event, f"command {event.command_id} ends ({event.stamp_ns}) before it starts "
                                             f"({start.stamp_ns}): clocks disagree")
        return CommandPair(start, event)

    def is_open(self, command_id: str) -> bool:
        return command_id in self._open

    def open_count(self) -> int:
        return len(self._open)
