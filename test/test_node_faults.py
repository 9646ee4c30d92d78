"""Faults a perception node meets on a robot that runs for days, against the real node in its own process
over DDS (localhost, its own domain): the camera stalls mid-command and comes back; a command never
ends; the camera restarts (its stamps jump back an hour, then forward after a gap); the model file is
replaced by a corrupt one between activations; a model path outside `allowed_model_dirs` (directly,
through '..', through a link re-pointed after the check) and a recording directory outside
`allowed_recording_dirs`; SIGTERM mid-episode while recording. Each case ends with the node answering
the next command normally. Every wait has a deadline; frames are paced, never waited for by sleeping.
"""
from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest

from conftest import write_tiny_node_model
from ros_harness import REPO_ROOT, fresh_domain, start_node, stop_node, wait_for
from test_perception_node_ros import Harness, _publish_frames, allow_dirs_args

pytestmark = pytest.mark.ros
S = 1_000_000_000
MS = 1_000_000
RELIABLE_IMAGES = ["-p", "image_qos:=reliable", "-p", "image_qos_depth:=50", "-p", "diagnostics_period:=0.2"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The node's only allowed model directory: a checkpoint and its ONNX export (m.onnx + graphs)."""
    allowed = tmp_path_factory.mktemp("allowed_models")
    write_tiny_node_model(allowed)
    return allowed


@pytest.fixture(scope="module")
def node(model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    h = Harness(str(model_dir / "m.onnx"), tmp_path_factory.mktemp("faults_node"), RELIABLE_IMAGES,
                allowed_dirs=[str(model_dir)])
    yield h
    h.close()


def _diagnostics(h: Harness) -> list:
    from diagnostic_msgs.msg import DiagnosticArray

    return h.t.collect(DiagnosticArray, "/diagnostics")


def _latest(diagnostics: list) -> dict[str, str]:
    values = [{kv.key: kv.value for kv in s.values} for d in list(diagnostics) for s in d.status]
    return values[-1] if values else {}


def _stamp(t: Any) -> int:
    return t.sec * S + t.nanosec


def _verify_one(h: Harness, cid: str, seed: int, base: int | None = None) -> Any:
    """Frames at 10 Hz from `base`, a command inside them; returns its EffectVerification."""
    base = h.fresh_base() if base is None else base
    _publish_frames(h, base, 8, seed=seed)
    h.command(cid, "open", 0, base + 150 * MS)
    h.command(cid, "", 1, base + 300 * MS)  # after = first frame >= end + settle 0.2 s = base + 0.5 s
    return h.verification(cid)


def _recognition(h: Harness, cid: str) -> Any:
    wait_for(lambda: any(r.command_id == cid for r in h.recognitions), 5, f"recognition of {cid}")
    return next(r for r in h.recognitions if r.command_id == cid)


def _set(h: Harness, name: str, value: Any) -> Any:
    """Set one parameter over the node's service (string, string array or double)."""
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    if isinstance(value, list):
        pv = ParameterValue(type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=value)
    elif isinstance(value, float):
        pv = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
    else:
        pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
    request = SetParameters.Request(parameters=[Parameter(name=name, value=pv)])
    return h.call(SetParameters, "set_parameters", request).results[0]


def _logged(h: Harness, *parts: str) -> None:
    wait_for(lambda: any(all(p in line for p in parts) for line in h.log.read_text().splitlines()), 10,
             f"a log line with {parts}")


def test_camera_stalls_mid_command_then_resumes(node: Harness) -> None:
    base = node.fresh_base()
    _publish_frames(node, base, 10, seed=10)  # frames up to base + 0.9 s, then the camera stops
    node.command("stall", "open", 0, base + S)
    node.command("stall", "", 1, base + 1500 * MS)
    ver = node.verification("stall", timeout=15)
    assert ver.verdict_name == "uncertain"
    assert "no camera frame at or after end + settle" in ver.reason and "after_frame_timeout" in ver.reason
    # the camera comes back (its frames now lie after the stalled command's end): the next command is
    # verified normally, and the stalled one is not answered a second time
    ver = _verify_one(node, "after-stall", seed=20)
    assert ver.verdict_name != "uncertain", ver.reason
    rec = _recognition(node, "after-stall")
    assert _stamp(rec.after_stamp) - _stamp(rec.before_stamp) == 400 * MS
    assert sum(v.command_id == "stall" for v in node.verifications) == 1
    assert node.proc.poll() is None


def test_command_whose_end_never_comes_expires_with_a_reason(node: Harness) -> None:
    """The arm's driver dies mid-command: no FINISHED ever. The command is answered, once."""
    assert _set(node, "max_command_duration", 1.0).successful
    try:
        base = node.fresh_base()
        _publish_frames(node, base, 5, seed=25)
        node.command("no-end", "open", 0, base + 150 * MS)
        ver = node.verification("no-end", timeout=10)
        assert ver.verdict_name == "uncertain" and "no end seen within max_command_duration" in ver.reason
    finally:
        assert _set(node, "max_command_duration", 300.0).successful
    node.command("no-end", "", 1, base + 400 * MS)  # a very late end is a duplicate, not a second verdict
    assert _verify_one(node, "after-no-end", seed=26).verdict_name != "uncertain"
    assert sum(v.command_id == "no-end" for v in node.verifications) == 1


def test_camera_restart_stamps_jump_back_then_forward(node: Harness) -> None:
    diagnostics = _diagnostics(node)
    assert _verify_one(node, "before-restart", seed=30).verdict_name != "uncertain"
    # the driver restarts and stamps from a clock an hour behind (device clock, simulator or bag reset)
    restarted = node.fresh_base() - 3600 * S
    ver = _verify_one(node, "after-restart", seed=40, base=restarted)
    assert ver.verdict_name != "uncertain", ver.reason
    rec = _recognition(node, "after-restart")  # still paired by header stamp, on the new timeline
    assert (_stamp(rec.before_stamp), _stamp(rec.after_stamp)) == (restarted + 100 * MS, restarted + 500 * MS)
    wait_for(lambda: _latest(diagnostics).get("buffer_clock_resets") == "1", 10, "the clock reset in diagnostics")
    _logged(node, "camera stamps jumped back")
    # then a gap: the camera is silent and comes back with stamps 30 s later
    gap = restarted + 30 * S
    ver = _verify_one(node, "after-gap", seed=50, base=gap)
    assert ver.verdict_name != "uncertain", ver.reason
    rec = _recognition(node, "after-gap")
    assert (_stamp(rec.before_stamp), _stamp(rec.after_stamp)) == (gap + 100 * MS, gap + 500 * MS)
    # and back to the live clock (a forward jump of an hour): still verified
    assert _verify_one(node, "live-again", seed=60).verdict_name != "uncertain"


def test_corrupt_model_between_activations_fails_cleanly_then_recovers(node: Harness, model_dir: Path) -> None:
    from lifecycle_msgs.msg import Transition

    index, encoder, ckpt = model_dir / "m.onnx", model_dir / "m.encoder.onnx", model_dir / "m.safetensors"
    originals = {p: p.read_bytes() for p in (index, encoder, ckpt)}
    cases = [  # (file damaged, its new content, model_path, what the error says)
        (index, b"\x00\xff garbage where the index was " * 8, index, "not a cde ONNX index"),
        (encoder, originals[encoder][: len(originals[encoder]) // 2], index, "cannot load the graph"),
        (ckpt, originals[ckpt][: len(originals[ckpt]) // 2], ckpt, ""),
    ]
    try:
        assert node.transition(Transition.TRANSITION_DEACTIVATE) and node.state() == "inactive"
        for i, (damaged, content, model_path, message) in enumerate(cases):
            damaged.write_bytes(content)
            assert _set(node, "model_path", str(model_path)).successful
            assert not node.transition(Transition.TRANSITION_ACTIVATE)
            assert node.state() == "inactive"
            _logged(node, "activation failed", f"cannot load model {model_path}", os.path.realpath(damaged), message)
            ver = _verify_one(node, f"corrupt-{i}", seed=70 + i)  # the node still answers, saying why
            assert ver.verdict_name == "uncertain" and "no model loaded" in ver.reason
            assert os.path.realpath(damaged) in ver.reason
            damaged.write_bytes(originals[damaged])
        assert _set(node, "model_path", str(index)).successful
        assert node.transition(Transition.TRANSITION_ACTIVATE) and node.state() == "active"
        assert _verify_one(node, "restored", seed=80).verdict_name != "uncertain"
    finally:
        for path, data in originals.items():
            path.write_bytes(data)
        if node.state() != "active":
            _set(node, "model_path", str(index))
            node.transition(Transition.TRANSITION_ACTIVATE)
    assert node.proc.poll() is None


def test_model_path_outside_the_allowed_dirs_is_refused(node: Harness, model_dir: Path, tmp_path: Path) -> None:
    from lifecycle_msgs.msg import Transition

    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("m.onnx", "m.encoder.onnx", "m.head.onnx", "m.safetensors"):
        shutil.copy(model_dir / name, outside / name)  # a valid model: refused for where it is, not what
    link = model_dir / "link.onnx"
    try:
        assert node.transition(Transition.TRANSITION_DEACTIVATE)
        dotdot = model_dir / os.path.relpath(outside / "m.onnx", model_dir)
        for path in (outside / "m.onnx", dotdot, outside / "m.safetensors"):
            result = _set(node, "model_path", str(path))
            assert not result.successful and "outside allowed_model_dirs" in result.reason, (path, result.reason)
        pickled = _set(node, "model_path", str(model_dir / "m.pt"))
        assert not pickled.successful and "never loaded" in pickled.reason
        widen = _set(node, "allowed_model_dirs", ["/"])
        assert not widen.successful and "read-only" in widen.reason
        # a link inside pointing inside is fine; re-pointed outside after the check, activation refuses it
        link.symlink_to(model_dir / "m.onnx")
        assert _set(node, "model_path", str(link)).successful
        link.unlink()
        link.symlink_to(outside / "m.onnx")
        assert not node.transition(Transition.TRANSITION_ACTIVATE) and node.state() == "inactive"
        _logged(node, "activation failed", "outside allowed_model_dirs", os.path.realpath(outside / "m.onnx"))
        ver = _verify_one(node, "outside", seed=90)
        assert ver.verdict_name == "uncertain" and "outside allowed_model_dirs" in ver.reason
    finally:
        link.unlink(missing_ok=True)
        _set(node, "model_path", str(model_dir / "m.onnx"))
        node.transition(Transition.TRANSITION_ACTIVATE)
    assert node.state() == "active"
    assert _verify_one(node, "inside-again", seed=95).verdict_name != "uncertain"


def test_recording_dir_outside_the_allowed_dirs_fails_configure(model_dir: Path, tmp_path: Path) -> None:
    """Bags are never written where the operator did not allow: configure fails, saying what to change."""
    allowed, elsewhere = tmp_path / "allowed", tmp_path / "allowed" / ".." / "elsewhere"
    allowed.mkdir()
    log = tmp_path / "node.log"
    proc = start_node("cde_ros.perception_node", fresh_domain(), [
        "--params-file", str(REPO_ROOT / "config" / "perception.yaml"), "-p", f"model_path:={model_dir / 'm.onnx'}",
        *allow_dirs_args([str(model_dir)], [str(allowed)]), "-p", "recording_enabled:=true",
        "-p", f"recording_dir:={elsewhere}"], log)
    try:
        wait_for(lambda: "configure failed: recording: recording_dir" in log.read_text(), 20, "the configure error")
        assert "outside allowed_recording_dirs" in log.read_text() and proc.poll() is None
    finally:
        stop_node(proc)
    assert proc.returncode == 0 and not (tmp_path / "elsewhere").exists()


def test_sigterm_mid_episode_while_recording_keeps_every_completed_episode(model_dir: Path, tmp_path: Path) -> None:
    from cde_ros.episode_recorder import TOPICS
    from test_episode_recorder import bags_under, read_rosbags

    bags = tmp_path / "bags"
    h = Harness(str(model_dir / "m.onnx"), tmp_path, [*RELIABLE_IMAGES, "-p", "recording_enabled:=true",
                                                      "-p", f"recording_dir:={bags}"],
                allowed_dirs=[str(model_dir), str(tmp_path)])
    try:
        diagnostics = _diagnostics(h)
        done = [f"done-{i}" for i in range(3)]
        for i, cid in enumerate(done):
            assert _verify_one(h, cid, seed=100 + i).verdict_name != "uncertain"
        base = h.fresh_base()  # one more command starts (its before frame is taken) and never finishes
        _publish_frames(h, base, 5, seed=110)
        h.command("in-flight", "open", 0, base + 150 * MS)
        wait_for(lambda: (_latest(diagnostics).get("open_commands"), _latest(diagnostics).get("recording_episodes"))
                 == ("1", "3"), 10, "3 recorded episodes and 1 open command in diagnostics")
        h.proc.send_signal(signal.SIGTERM)
        assert h.proc.wait(timeout=15) == 0
    finally:
        h.close()
    log = h.log.read_text()
    assert "recording closed: 3 episodes" in log and "Traceback" not in log, log[-3000:]
    assert "terminate called" not in log
    messages = read_rosbags(bags_under(bags))
    assert sorted(m.command_id for t, _, m in messages if t == TOPICS["verification"]) == done
    topics = [t for t, _, _ in messages]
    assert topics.count(TOPICS["before"]) == 3 and topics.count(TOPICS["after"]) == 3
    assert topics.count(TOPICS["recognition"]) == 3 and topics.count(TOPICS["command"]) == 6
    assert not [m for t, _, m in messages if getattr(m, "command_id", "") == "in-flight"]
    assert not list(bags.rglob(".*.partial"))
