"""Recording from the perception node: the session logic without ROS, then the round trip over DDS
(node records episodes -> label on the label topic -> SIGINT -> bag reads back -> `cde data import` ->
`cde train` -> a second node loads the trained model and verifies commands, while its recording fails)."""
from __future__ import annotations

import errno
import json
import logging
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cde_ros.episode_recorder import TOPICS, EpisodeRecorder, RecorderConfig, RecordingError
from cde_ros.recording_session import RecordingSession
from test_episode_recorder import bags_under, episode, label, listed_files, read_rosbags

S = 1_000_000_000


class _ListLogger:
    """Stands in for the node's logger: keeps (level, message)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, msg: str) -> None:
        self.lines.append(("info", msg))

    def warning(self, msg: str) -> None:
        self.lines.append(("warning", msg))

    def error(self, msg: str) -> None:
        self.lines.append(("error", msg))


def _record(session: RecordingSession, ep: dict[str, Any]) -> Path | None:
    return session.record_episode(**{k: v for k, v in ep.items() if not k.startswith("_")})


def _latest_values(diagnostics: list) -> dict[str, str]:
    """Key/values of the newest DiagnosticArray received (one node per domain publishes them)."""
    values = [{kv.key: kv.value for kv in s.values} for d in list(diagnostics) for s in d.status]
    return values[-1] if values else {}


# ---------------------------------------------------------------- RecordingSession (no ROS)
def test_session_records_rolls_over_and_closes(tmp_path: Path) -> None:
    log = _ListLogger()
    session = RecordingSession(RecorderConfig(str(tmp_path / "rec")), log, known_actions=lambda: ["open", "close"])
    assert _record(session, episode(0)) is not None
    assert session.on_label(label("cmd-000", "close", effect_happened=False))
    values = session.diagnostic_values()
    assert (values["recording"], values["recording_episodes"], values["recording_labels"]) == ("on", "1", "1")
    session.roll_over()  # lifecycle deactivate: the next episode goes to a new bag, counters add up
    assert _record(session, episode(1)) is not None
    values = session.diagnostic_values()
    assert (values["recording_episodes"], values["recording_labels"], session.problem()) == ("2", "1", "")
    session.close()
    session.close()
    assert _record(session, episode(2)) is None  # closed: nothing written, nothing raised
    assert not session.on_label(label("cmd-001", "open"))
    assert session.diagnostic_values()["recording"] == "closed" and session.labels.stats.failed == 1
    bags = bags_under(tmp_path / "rec")
    assert len(bags) == 2 and [len(listed_files(b)) for b in bags] == [2, 1]
    messages = read_rosbags(bags)
    assert sorted(m.command_id for t, _, m in messages if t == TOPICS["verification"]) == ["cmd-000", "cmd-001"]
    assert [(m.command_id, m.true_action) for t, _, m in messages if t == TOPICS["label"]] == [("cmd-000", "close")]


def test_session_write_error_is_logged_once_reported_and_recovers(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the recording directory should be")
    now = [0.0]
    log = _ListLogger()
    session = RecordingSession(RecorderConfig(str(blocker / "rec"), retry_s=30.0), log,
                               recorder_factory=lambda cfg: EpisodeRecorder(cfg, clock=lambda: now[0]))
    with caplog.at_level(logging.ERROR, logger="cde_ros.episode_recorder"):
        assert _record(session, episode(0)) is None  # no exception reaches the node
        assert _record(session, episode(1)) is None  # paused: dropped, not logged again
        assert session.on_label(label("cmd-000", "open"))  # kept in memory while paused
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "ENOTDIR" in errors[0].getMessage()
    assert not [m for level, m in log.lines if level == "error"]  # the recorder logged it; not twice
    assert "recording paused" in session.problem() and "recording_dir" in session.problem()
    values = session.diagnostic_values()
    assert values["recording"] == "paused" and values["recording_dropped"] == "1"
    assert values["recording_labels_waiting"] == "1"
    blocker.unlink()  # the operator fixes the directory; after retry_s the next episode is written
    now[0] += 31.0
    session.refresh()
    assert _record(session, episode(2)) is not None and session.problem() == ""
    assert any(level == "info" and "recording resumed" in m for level, m in log.lines)
    session.close()
    messages = read_rosbags(bags_under(blocker / "rec"))
    assert {m.command_id for t, _, m in messages if t == TOPICS["verification"]} == {"cmd-002"}
    assert [m.command_id for t, _, m in messages if t == TOPICS["label"]] == ["cmd-000"]


def test_session_without_a_recorder_is_off_not_fatal(tmp_path: Path) -> None:
    def missing_definitions(config: RecorderConfig) -> EpisodeRecorder:
        raise RecordingError("cannot find cde_ros's .msg files; install the package", None, errno.ENOENT)

    log = _ListLogger()
    session = RecordingSession(RecorderConfig(str(tmp_path)), log, recorder_factory=missing_definitions)
    assert not session.active and _record(session, episode(0)) is None
    assert not session.on_label(label("cmd-000", "open"))
    assert session.problem().startswith("recording off: cannot find")
    assert session.diagnostic_values()["recording"] == "error"
    assert [level for level, m in log.lines if ".msg files" in m].count("error") == 1
    session.roll_over()  # tries again, fails again: still logged once
    assert [level for level, m in log.lines if ".msg files" in m].count("error") == 1


# ---------------------------------------------------------------- the round trip over DDS
@pytest.mark.ros
def test_node_records_labels_import_train_and_the_model_loads(tmp_path: Path) -> None:
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from cde_core.checkpoint import load_checkpoint
    from cde_core.cli import main as cde_main
    from cde_core.data.manifest import read_manifest
    from cde_ros.msg import EpisodeLabel
    from conftest import write_tiny_node_model
    from ros_harness import REPO_ROOT, wait_for
    from test_bag_import import png
    from test_perception_node_ros import Harness, _publish_frames

    deployed = write_tiny_node_model(tmp_path, "deployed", onnx=False)
    bags_dir = tmp_path / "bags"
    (tmp_path / "node1").mkdir()
    h = Harness(str(deployed), tmp_path / "node1", [
        "-p", "recording_enabled:=true", "-p", f"recording_dir:={bags_dir}", "-p", "recording_image_format:=png",
        "-p", "image_qos:=reliable", "-p", "image_qos_depth:=50", "-p", "diagnostics_period:=0.2"])
    try:
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        diagnostics = h.t.collect(DiagnosticArray, "/diagnostics")
        label_pub = h.t.node.create_publisher(EpisodeLabel, "/cde_perception/episode_label", reliable)
        commanded = ["open", "close", "open", "close", "open", "close"]
        truth = ["open", "close", "none", "close", "open", "none"]  # what an operator saw on the camera
        frames: dict[str, dict[str, np.ndarray]] = {}
        for i, action in enumerate(commanded):
            base = h.fresh_base()
            published = _publish_frames(h, base, 8, seed=2000 + 10 * i)  # 10 Hz by header stamp
            cid = f"rec-{i}"
            h.command(cid, action, 0, base + 150_000_000)
            h.command(cid, "", 1, base + 300_000_000)  # after = first frame >= end + settle 0.2 s
            assert h.verification(cid).commanded_action == action
            frames[cid] = {"before": published[base + 100_000_000], "after": published[base + 500_000_000]}
        wait_for(lambda: label_pub.get_subscription_count() > 0, 10, "the node's label subscription")
        for i, cid in enumerate(frames):  # ground truth after the fact, by command id; rec-2 first mislabelled
            msg = label(cid, "open" if cid == "rec-2" else truth[i], effect_happened=truth[i] == commanded[i])
            label_pub.publish(msg)
        label_pub.publish(label("rec-2", "none", effect_happened=False, annotator="correction"))  # latest wins
        wait_for(lambda: (_latest_values(diagnostics).get("recording_episodes"),
                          _latest_values(diagnostics).get("recording_labels")) == ("6", "7"), 10,
                 "6 episodes and 7 labels in the node's recording diagnostics")
        h.proc.send_signal(signal.SIGINT)
        assert h.proc.wait(timeout=15) == 0
    finally:
        h.close()
    log = h.log.read_text()
    assert "recording closed: 6 episodes, 7 labels" in log and "Traceback" not in log, log[-3000:]

    # the bag reads back: every episode with its frames (PNG, lossless), commands, recognition, verdict, labels
    (bag,) = bags_under(bags_dir)
    messages = read_rosbags([bag])
    topics = [t for t, _, _ in messages]
    for role in ("before", "after"):
        assert topics.count(TOPICS[role] + "/compressed") == 6
    assert topics.count(TOPICS["command"]) == 12 and topics.count(TOPICS["recognition"]) == 6
    assert sorted(m.command_id for t, _, m in messages if t == TOPICS["verification"]) == sorted(frames)
    labels = [(m.command_id, m.true_action, m.annotator) for t, _, m in messages if t == TOPICS["label"]]
    assert len(labels) == 7 and labels[-1] == ("rec-2", "none", "correction")
    recognition = next(m for t, _, m in messages if t == TOPICS["recognition"])
    assert list(recognition.class_names) == ["close", "none", "open"]

    # cde data import -> the pair manifest; the correction conflicts with the first label: reported, and with
    # --label-conflicts latest it wins; the images are the published frames
    data = tmp_path / "dataset"
    assert cde_main(["data", "import", str(bags_dir), "--out", str(data), "--label-conflicts", "latest"]) == 0
    conflicts = json.loads((data / "generation.json").read_text())["label_conflicts"]
    assert "rec-2" in json.dumps(conflicts)
    rows = {r.id: r for r in read_manifest(data)}
    assert {cid: r.action for cid, r in rows.items()} == {f"rec-{i}": truth[i] for i in range(6)}
    for cid, r in rows.items():
        np.testing.assert_array_equal(png(data / r.before), frames[cid]["before"], err_msg=cid)
        np.testing.assert_array_equal(png(data / r.after), frames[cid]["after"], err_msg=cid)

    # cde train (a few steps: it only has to produce a checkpoint)
    run = tmp_path / "run"
    assert cde_main(["train", str(REPO_ROOT / "cde_core" / "configs" / "synthetic_tiny.yaml"), f"data.root={data}",
                     f"out={run}", "optim.steps=3", "optim.batch_size=4", "optim.warmup_steps=1",
                     "progress=false"]) == 0
    trained = run / "model.safetensors"
    _, meta = load_checkpoint(trained)
    assert meta.class_names == ["close", "none", "open"]

    # the trained model loads in a second node, which verifies commands with it; this one records into a
    # path that cannot be a directory: the error is logged once, shown in the diagnostics, and ignored
    (tmp_path / "node2").mkdir()
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    h2 = Harness(str(trained), tmp_path / "node2", [
        "-p", "image_qos:=reliable", "-p", "image_qos_depth:=50", "-p", "diagnostics_period:=0.2",
        "-p", "recording_enabled:=true", "-p", f"recording_dir:={blocker / 'bags'}"])
    try:
        assert h2.state() == "active"
        diagnostics = h2.t.collect(DiagnosticArray, "/diagnostics")
        for attempt in range(2):
            cid = f"after-training-{attempt}"
            base = h2.fresh_base()
            _publish_frames(h2, base, 8, seed=3000 + 10 * attempt)
            h2.command(cid, "open", 0, base + 150_000_000)
            h2.command(cid, "", 1, base + 300_000_000)
            assert "no model" not in h2.verification(cid).reason
            wait_for(lambda: any(r.command_id == cid for r in h2.recognitions), 5, "recognition")
            rec = next(r for r in h2.recognitions if r.command_id == cid)
            assert list(rec.class_names) == meta.class_names
        assert f"model {trained}: torch" in h2.log.read_text()
        wait_for(lambda: _latest_values(diagnostics).get("recording_dropped") == "1", 10,
                 "the dropped episode in diagnostics")
        values = _latest_values(diagnostics)
        assert values["recording"] == "paused" and "ENOTDIR" in values["recording_error"]
        assert h2.proc.poll() is None
        assert h2.log.read_text().count("cannot record episode") == 1
    finally:
        h2.close()
    assert h2.proc.returncode == 0
    assert not list(bags_dir.rglob(".*.partial"))
