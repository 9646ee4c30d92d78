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
    The status topic keeps only the last message, so a short goal may go from ACCEPTED straight to a
    terminal state: then STARTED (at acceptance) and the end are emitted together. A terminal goal
    accepted before `since_ns` (when we began watching; the transient-local status replays old goals)
    is history: remembered, not emitted.
    """

    def __init__(self, server: str, action: str, since_ns: int = 0, max_goals: int = 256) -> None:
        self.server = server
        self.action = action
        self.since_ns = since_ns
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._started: set[str] = set()
        self._max_goals = max_goals

    def command_id(self, uuid: bytes) -> str:
        """Action server name + goal UUID hex: unique per goal and readable in logs."""
        return f"{self.server}/{bytes(uuid).hex()}"

    def update(self, statuses: Iterable[tuple[bytes, int, int]], now_ns: int) -> list[CommandEvent]:
        """statuses: (goal uuid bytes, status code, accept stamp ns) for every goal in the message."""
        events: list[CommandEvent] = []
        for uuid, status, accept_ns in statuses:
            goal = bytes(uuid).hex()
            previous = self._seen.get(goal)
            command_id = self.command_id(uuid)
            start_ns = accept_ns or now_ns
            if status == STATUS_EXECUTING and goal not in self._started and previous not in _TERMINAL:
                events.append(CommandEvent(command_id, self.action, "", Phase.STARTED, start_ns, self.server))
                self._started.add(goal)
            elif status in _TERMINAL and previous not in _TERMINAL:
                if goal in self._started or accept_ns >= self.since_ns:  # else: ended before we watched
                    if goal not in self._started:  # EXECUTING never reached us (status is keep-last-1)
                        events.append(CommandEvent(command_id, self.action, "", Phase.STARTED, start_ns,
                                                   self.server))
                    events.append(CommandEvent(command_id, self.action, "", _TERMINAL[status], now_ns, self.server))
                self._started.discard(goal)
            if previous != status:
                self._seen[goal] = status
                self._seen.move_to_end(goal)
                while len(self._seen) > self._max_goals:
                    old, _ = self._seen.popitem(last=False)
                    self._started.discard(old)
        return events


@dataclass(frozen=True)
class CommandPair:
    """A command's start (None when it never came) and end; `problem` says why it cannot be verified
    normally ("" = fine; a refused start comes back with its refusal reason)."""

    start: CommandEvent | None
    end: CommandEvent
    problem: str = ""
    duplicate: bool = False  # this end repeats one already handled: answer nothing new


class CommandTracker:
    """Pairs STARTED with FINISHED/ABORTED by id; bounded, rejects what cannot be paired with a reason.

    `known_actions` (the model's class names, None = not known yet) refuses starts the model cannot
    verify; the refusal reason is kept so the command's end is answered with it.
    """

    def __init__(self, max_open: int = 64, known_actions: Iterable[str] | None = None) -> None:
        self._open: OrderedDict[str, CommandEvent] = OrderedDict()
        self._closed: OrderedDict[str, None] = OrderedDict()
        self._refused: OrderedDict[str, tuple[CommandEvent, str]] = OrderedDict()
        self.max_open = max_open
        self.known_actions: frozenset[str] | None = None if known_actions is None else frozenset(known_actions)

    def _remember(self, table: OrderedDict, key: str, value: object) -> None:
        table[key] = value
        while len(table) > 4 * self.max_open:
            table.popitem(last=False)

    def start(self, event: CommandEvent) -> str:
        """Register a start; returns "" or the reason it was refused."""
        cid = event.command_id
        if event.phase != Phase.STARTED:
            return f"{event.phase.name} passed as a start for command {cid}"
        if cid in self._open:
            return f"duplicate STARTED for command {cid} (already running)"
        if cid in self._closed or cid in self._refused:
            return f"duplicate STARTED for command {cid} (id already used)"
        if self.known_actions is not None and event.action not in self.known_actions:
            reason = (f"unknown action '{event.action}' for command {cid}: the model knows "
                      f"{', '.join(sorted(self.known_actions))}")
            self._remember(self._refused, cid, (event, reason))
            return reason
        self._open[cid] = event
        while len(self._open) > self.max_open:
            self._open.popitem(last=False)
        return ""

    def finish(self, event: CommandEvent) -> CommandPair:
        """Close a command with its FINISHED/ABORTED event; the pair says what was wrong, if anything."""
        cid = event.command_id
        if event.phase == Phase.STARTED:
            return CommandPair(None, event, f"STARTED passed as an end for command {cid}")
        if cid in self._closed:
            return CommandPair(None, event, f"duplicate {event.phase.name} for command {cid}", duplicate=True)
        start = self._open.pop(cid, None)
        self._remember(self._closed, cid, None)
        refused_start, refused = self._refused.pop(cid, (None, ""))
        if refused:
            return CommandPair(refused_start, event, refused)
        if start is None:
            return CommandPair(None, event, f"{event.phase.name} without STARTED for command {cid}")
        if event.stamp_ns < start.stamp_ns:
            return CommandPair(start, event, f"command {cid} ends ({event.stamp_ns}) before it starts "
                                             f"({start.stamp_ns}): clocks disagree")
        return CommandPair(start, event)

    def is_open(self, command_id: str) -> bool:
        return command_id in self._open

    def open_count(self) -> int:
        return len(self._open)
