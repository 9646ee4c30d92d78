"""Command normalisation: topic messages, action status, pairing."""
from __future__ import annotations

import pytest

from cde_ros.command_events import (STATUS_ABORTED, STATUS_EXECUTING, STATUS_SUCCEEDED, CommandEventError,
                                    CommandTracker, GoalStatusTracker, Phase, event_from_command,
                                    parse_action_mapping)

ACCEPTED = 1


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


def test_status_tracker_aborted_and_late_join() -> None:
    tracker = GoalStatusTracker("/arm/close", "close")
    events = tracker.update([(b"\x01" * 16, STATUS_ABORTED, 5)], now_ns=9)
    assert [e.phase for e in events] == [Phase.ABORTED]


def test_tracker_pairs_and_rejects() -> None:
    tracker = CommandTracker()
    start = event_from_command("c1", "open", "", 0, 10)
    assert tracker.start(start) == ""
    assert "duplicate" in tracker.start(start)
    pair = tracker.finish(event_from_command("c1", "", "", 1, 20))
    assert pair.start == start and pair.problem == ""
    assert "duplicate" in tracker.finish(event_from_command("c1", "", "", 1, 21)).problem
    orphan = tracker.finish(event_from_command("c2", "", "", 1, 20))
    assert orphan.start is None and "without STARTED" in orphan.problem
    tracker.start(event_from_command("c3", "open", "", 0, 50))
    assert "before it starts" in tracker.finish(event_from_command("c3", "", "", 1, 40)).problem


def test_tracker_is_bounded() -> None:
    tracker = CommandTracker(max_open=4)
    for i in range(10):
        tracker.start(event_from_command(f"c{i}", "open", "", 0, 10))
    assert tracker.open_count() == 4 and tracker.is_open("c9") and not tracker.is_open("c0")


def test_action_mapping() -> None:
    assert parse_action_mapping(["/a=open", " /b = close ", ""]) == {"/a": "open", "/b": "close"}
    with pytest.raises(CommandEventError, match="server_name=semantic_action"):
        parse_action_mapping(["/a"])
