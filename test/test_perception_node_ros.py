"""The real perception node in its own process, driven over DDS (localhost, its own domain).

Commands come over the ManipulatorCommand topic and over an action server's status topic. No action type
with a goal is installable here (no example_interfaces/control_msgs wheels), so the tests publish
action_msgs/GoalStatusArray on `<server>/_action/status` with the action-status QoS, exactly what
rclpy's ActionServer publishes for its goals; the node only ever sees that topic.
"""
from __future__ import annotations

import json
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cde_core.runtime import load_runtime
from conftest import write_tiny_node_model
from ros_harness import REPO_ROOT, TestNode, fresh_domain, start_node, stop_node, wait_for

pytestmark = pytest.mark.ros
S = 1_000_000_000


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_node_model(tmp_path_factory.mktemp("model"))


def _frame(value: int, stamp_ns: int):
    from sensor_msgs.msg import Image

    rng = np.random.default_rng(value)
    rgb = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    msg = Image(height=24, width=32, encoding="rgb8", step=96, data=rgb.tobytes())
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, S)
    msg.header.frame_id = "test_cam"
    return msg, rgb


def allow_dirs_args(model_dirs: list[str], recording_dirs: list[str]) -> list[str]:
    """`-p` overrides of the node's read-only path allow-lists (JSON lists are valid YAML flow lists)."""
    return ["-p", f"allowed_model_dirs:={json.dumps(model_dirs)}",
            "-p", f"allowed_recording_dirs:={json.dumps(recording_dirs)}"]


class Harness:
    """The node in its own process plus a test node talking to it. The node's path allow-lists default to
    the model's directory, `tmp` and the system temp directory (where pytest's tmp paths live); tests of
    confinement pass narrower ones with `allowed_dirs`."""

    def __init__(self, model: str, tmp: Path, extra: list[str] = (), allowed_dirs: list[str] | None = None) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_action_status_default

        from action_msgs.msg import GoalStatusArray
        from cde_ros.msg import ActionRecognition, EffectVerification, ManipulatorCommand
        from sensor_msgs.msg import Image

        domain = fresh_domain()
        self.log = tmp / "node.log"
        if allowed_dirs is None:
            allowed_dirs = [str(Path(model).parent), str(tmp), tempfile.gettempdir()]
        self.proc = start_node("cde_ros.perception_node", domain, [
            "--params-file", str(REPO_ROOT / "config" / "perception.yaml"), "-p", f"model_path:={model}",
            "-p", "action_servers:=['/arm/open=open']", "-p", "settle_time:=0.2", "-p", "after_frame_timeout:=2.0",
            *allow_dirs_args(allowed_dirs, allowed_dirs), "-r", "__node:=cde_perception", *extra], self.log)
        self.newest_ns = 0
        self.t = TestNode("perception_test")
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        # keep-last deep enough for a test's burst of frames: a reliable writer overwrites unacknowledged ones
        self.image_pub = self.t.node.create_publisher(Image, "image", reliable)
        self.command_pub = self.t.node.create_publisher(ManipulatorCommand, "commands", reliable)
        self.status_pub = self.t.node.create_publisher(GoalStatusArray, "/arm/open/_action/status",
                                                       qos_profile_action_status_default)
        self.recognitions = self.t.collect(ActionRecognition, "/cde_perception/action_recognition", reliable)
        self.verifications = self.t.collect(EffectVerification, "/cde_perception/effect_verification", reliable)
        try:  # readiness waits, generous because a loaded machine starts the node slowly; they end when it is up
            wait_for(lambda: self.command_pub.get_subscription_count() > 0
                     and self.image_pub.get_subscription_count() > 0, 60, "the node's subscriptions")
            self._prime()
        except BaseException:  # a node that never came up is stopped here, not left running past the test
            self.close()
            raise

    def _prime(self) -> None:
        """Best-effort images published before both sides have matched are lost: publish old-stamped
        frames until the node's diagnostics count one (then the image path is up)."""
        from diagnostic_msgs.msg import DiagnosticArray

        diagnostics = self.t.collect(DiagnosticArray, "/diagnostics")

        def frames_received() -> int:
            values = [{kv.key: kv.value for kv in s.values} for d in list(diagnostics) for s in d.status]
            return max([int(v.get("frames_received", 0)) for v in values], default=0)

        deadline = time.monotonic() + 60
        while frames_received() == 0 and time.monotonic() < deadline:
            self.image_pub.publish(_frame(0, time.time_ns() - 3000 * S)[0])
            time.sleep(0.1)
        assert frames_received() > 0, "the node never counted a frame"

    def command(self, cid: str, action: str, phase: int, stamp_ns: int) -> None:
        from cde_ros.msg import ManipulatorCommand

        msg = ManipulatorCommand(command_id=cid, action=action, phase=phase)
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, S)
        self.command_pub.publish(msg)

    def fresh_base(self) -> int:
        """A stamp after every frame this harness has published: the node's buffer is shared by the tests,
        so each test's frames must not interleave with an earlier test's."""
        return max(time.time_ns(), self.newest_ns + S // 2)

    def call(self, srv_type: Any, name: str, request: Any) -> Any:
        """Call one of the node's services and wait for the answer (30 s deadline)."""
        client = self.t.node.create_client(srv_type, f"/cde_perception/{name}")
        assert client.wait_for_service(timeout_sec=10), f"service {name} never appeared"
        future = client.call_async(request)
        wait_for(future.done, 30, name)  # activating loads a model (torch: ~20 s on a loaded machine)
        return future.result()

    def set_parameter(self, name: str, value: str) -> Any:
        from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
        from rcl_interfaces.srv import SetParameters

        param = Parameter(name=name, value=ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value))
        return self.call(SetParameters, "set_parameters", SetParameters.Request(parameters=[param])).results[0]

    def set_parameter_bool(self, name: str, value: bool) -> Any:
        from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
        from rcl_interfaces.srv import SetParameters

        param = Parameter(name=name, value=ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value))
        return self.call(SetParameters, "set_parameters", SetParameters.Request(parameters=[param])).results[0]

    def state(self) -> str:
        from lifecycle_msgs.srv import GetState

        return self.call(GetState, "get_state", GetState.Request()).current_state.label

    def transition(self, transition_id: int) -> bool:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        request = ChangeState.Request(transition=Transition(id=transition_id))
        return self.call(ChangeState, "change_state", request).success

    def verification(self, cid: str, timeout: float = 10.0):
        wait_for(lambda: any(v.command_id == cid for v in self.verifications), timeout, f"verification of {cid}")
        return next(v for v in self.verifications if v.command_id == cid)

    def close(self) -> None:
        self.t.close()
        stop_node(self.proc)


@pytest.fixture(scope="module")
def harness(model_path: Path, tmp_path_factory: pytest.TempPathFactory):
    # Reliable images with a deep queue: the tests assert which frame was picked, so none may be dropped
    # (also exercises the QoS override; the missing-model node keeps the sensor-data default).
    h = Harness(str(model_path), tmp_path_factory.mktemp("node"),
                ["-p", "image_qos:=reliable", "-p", "image_qos_depth:=50",
                 "-p", "compressed_image_topic:=camera/compressed"])
    yield h
    h.close()


@pytest.fixture
def no_model_node(tmp_path: Path):
    h = Harness(str(tmp_path / "missing.onnx"), tmp_path)
    yield h
    h.close()  # the child is killed here whatever the test did


def _publish_frames(h: Harness, base_ns: int, count: int, seed: int) -> dict[int, np.ndarray]:
    frames = {}
    for i in range(count):
        stamp = base_ns + i * 100_000_000  # 10 Hz by header stamp
        msg, rgb = _frame(seed + i, stamp)
        frames[stamp] = rgb
        h.newest_ns = max(h.newest_ns, stamp)
        h.image_pub.publish(msg)
        time.sleep(0.01)
    return frames


def test_topic_command_pairs_frames_by_stamp_and_matches_the_model(harness: Harness, model_path: Path) -> None:
    base = harness.fresh_base()
    frames = _publish_frames(harness, base, 20, seed=100)
    start, end = base + 450_000_000, base + 1_000_000_000  # before = frame 4; after = first >= end + 0.2 s
    harness.command("c-topic", "open", 0, start)
    harness.command("c-topic", "", 1, end)
    ver = harness.verification("c-topic")
    wait_for(lambda: any(r.command_id == "c-topic" for r in harness.recognitions), 5, "recognition")
    rec = next(r for r in harness.recognitions if r.command_id == "c-topic")
    before_ns, after_ns = base + 400_000_000, base + 1_200_000_000
    assert rec.before_stamp.sec * S + rec.before_stamp.nanosec == before_ns
    assert rec.after_stamp.sec * S + rec.after_stamp.nanosec == after_ns
    assert rec.header.stamp == rec.after_stamp and rec.header.frame_id == "test_cam"
    assert ver.header.stamp == rec.after_stamp
    assert ver.command_start.sec * S + ver.command_start.nanosec == start
    assert ver.command_end.sec * S + ver.command_end.nanosec == end
    # The node's scores are what the same model gives on the same two frames.
    rt = load_runtime(model_path)
    expected = rt.compare(rt.embed(frames[before_ns]), rt.embed(frames[after_ns]))
    np.testing.assert_allclose(rec.scores, expected.scores, atol=1e-5)
    assert rec.action == expected.action and set(rec.changed_patches) == set(expected.changed_patches.tolist())
    assert (rec.patch_grid_rows, rec.patch_grid_cols) == (4, 4)
    assert ver.observed_action == expected.action and ver.commanded_action == "open"
    assert ver.verdict_name == ("succeeded" if expected.action == "open" else "failed" if expected.action != "none"
                                else "no_effect")


def test_action_server_status_drives_a_command(harness: Harness) -> None:
    from action_msgs.msg import GoalStatus, GoalStatusArray

    base = harness.fresh_base()
    done, aborted = bytes(range(16)), bytes(range(16, 32))
    statuses = []
    for goal, accepted in ((done, base + 250_000_000), (aborted, base + 350_000_000)):
        status = GoalStatus(status=GoalStatus.STATUS_EXECUTING)
        status.goal_info.goal_id.uuid = list(goal)
        status.goal_info.stamp.sec, status.goal_info.stamp.nanosec = divmod(accepted, S)
        statuses.append(status)
    _publish_frames(harness, base, 5, seed=300)
    harness.status_pub.publish(GoalStatusArray(status_list=statuses))  # as ActionServer does: all goals
    # The status carries no end time: the node stamps the end on receipt (its clock = the camera's here).
    # So end the goals only once the clock has passed the frames above, then be a live camera.
    wait_for(lambda: time.time_ns() > harness.newest_ns, 5, "the clock to pass the published frames")
    ended_before = time.time_ns()
    statuses[0].status, statuses[1].status = GoalStatus.STATUS_SUCCEEDED, GoalStatus.STATUS_ABORTED
    harness.status_pub.publish(GoalStatusArray(status_list=statuses))  # EXECUTING may be overwritten
    ids = [f"/arm/open/{goal.hex()}" for goal in (done, aborted)]
    deadline, seed = time.monotonic() + 10, 400
    while not all(any(v.command_id == cid for v in harness.verifications) for cid in ids) \
            and time.monotonic() < deadline:
        _publish_frames(harness, time.time_ns(), 1, seed=seed)  # a camera: frames stamped now
        seed += 1
        time.sleep(0.05)
    for goal, accepted in ((done, base + 250_000_000), (aborted, base + 350_000_000)):
        ver = harness.verification(f"/arm/open/{goal.hex()}")
        assert ver.commanded_action == "open" and ver.verdict_name != "uncertain", ver.reason
        assert ver.command_start.sec * S + ver.command_start.nanosec == accepted
        assert ver.command_end.sec * S + ver.command_end.nanosec >= ended_before - S
        assert ver.header.frame_id == "test_cam"
    # the status is repeated (transient local, every goal every time): no second verdict
    harness.status_pub.publish(GoalStatusArray(status_list=statuses))
    cid = f"c-after-status-{base}"
    harness.command(cid, "open", 0, base - 3600 * S)
    harness.command(cid, "", 1, base - 3599 * S)
    harness.verification(cid)  # handled after the repeated status (one worker, in order)
    assert sum(v.command_id == f"/arm/open/{done.hex()}" for v in harness.verifications) == 1


def test_unknown_action_is_uncertain_and_overlay_and_diagnostics_are_published(harness: Harness) -> None:
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image

    overlays = harness.t.collect(Image, "/cde_perception/overlay")
    diagnostics = harness.t.collect(DiagnosticArray, "/diagnostics")
    base = harness.fresh_base()
    harness.command("c-fly", "fly", 0, base + 50_000_000)
    harness.command("c-fly", "", 1, base + 100_000_000)
    _publish_frames(harness, base, 6, seed=800)
    ver = harness.verification("c-fly")
    assert ver.verdict_name == "uncertain" and "unknown action 'fly'" in ver.reason and ver.commanded_action == "fly"
    # The overlay is rendered for verified commands while someone subscribes. The node may not have matched
    # our new subscription yet when the first verdict is made, so repeat commands until one comes (10 s).
    deadline, overlay, attempt = time.monotonic() + 10, None, 0
    while overlay is None and time.monotonic() < deadline:
        base, attempt = harness.fresh_base(), attempt + 1
        _publish_frames(harness, base, 8, seed=850 + attempt)
        harness.command(f"c-overlay-{attempt}", "open", 0, base + 150_000_000)
        harness.command(f"c-overlay-{attempt}", "", 1, base + 300_000_000)
        ver = harness.verification(f"c-overlay-{attempt}")
        until = time.monotonic() + 1.0
        while overlay is None and time.monotonic() < until:
            overlay = next((o for o in list(overlays) if o.header.stamp == ver.header.stamp), None)
            time.sleep(0.02)
    assert overlay is not None, "no overlay within 10 s while subscribed"
    assert (overlay.width, overlay.encoding, overlay.header.frame_id) == (64, "rgb8", "test_cam")
    wait_for(lambda: len(diagnostics) > 0, 10, "diagnostics")
    values = {kv.key: kv.value for kv in diagnostics[-1].status[0].values}
    assert values["backend"] == "onnxruntime" and int(values["buffer_frames"]) > 0
    assert {"input_rate_hz", "buffer_mb", "buffer_dropped", "latency_ms_p50"} <= set(values)


def test_compressed_images_are_decoded_and_verified(harness: Harness, model_path: Path) -> None:
    import io

    from PIL import Image as PILImage
    from sensor_msgs.msg import CompressedImage

    pub = harness.t.node.create_publisher(CompressedImage, "camera/compressed", 50)
    wait_for(lambda: pub.get_subscription_count() > 0, 10, "the node's compressed-image subscription")
    base, frames = harness.fresh_base(), {}
    for i in range(8):
        _, rgb = _frame(1000 + i, 0)
        png = io.BytesIO()
        PILImage.fromarray(rgb).save(png, format="PNG")
        msg = CompressedImage(format="png", data=png.getvalue())
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(base + i * 100_000_000, S)
        msg.header.frame_id = "compressed_cam"
        frames[base + i * 100_000_000] = rgb
        harness.newest_ns = max(harness.newest_ns, base + i * 100_000_000)
        pub.publish(msg)
        time.sleep(0.01)
    harness.command("c-png", "open", 0, base + 150_000_000)
    harness.command("c-png", "", 1, base + 300_000_000)
    ver = harness.verification("c-png")
    wait_for(lambda: any(r.command_id == "c-png" for r in harness.recognitions), 5, "recognition")
    rec = next(r for r in harness.recognitions if r.command_id == "c-png")
    assert rec.header.frame_id == "compressed_cam" and ver.verdict_name != "uncertain", ver.reason
    rt = load_runtime(model_path)
    expected = rt.compare(rt.embed(frames[base + 100_000_000]), rt.embed(frames[base + 500_000_000]))
    np.testing.assert_allclose(rec.scores, expected.scores, atol=1e-5)


def test_missing_before_frame_is_uncertain_with_reason(harness: Harness) -> None:
    long_ago = time.time_ns() - 3600 * S
    cid = f"c-old-{long_ago}"
    harness.command(cid, "open", 0, long_ago)
    harness.command(cid, "", 1, long_ago + S)
    ver = harness.verification(cid)
    assert ver.verdict_name == "uncertain" and "no camera frame" in ver.reason


def test_after_frame_deadline_and_orphan_finish(harness: Harness) -> None:
    base = harness.fresh_base()
    _publish_frames(harness, base, 3, seed=500)
    harness.command("c-late", "open", 0, base + 150_000_000)
    harness.command("c-late", "", 1, base + 60 * S)  # no frame will ever come after this
    ver = harness.verification("c-late", timeout=10)
    assert ver.verdict_name == "uncertain" and "within" in ver.reason
    harness.command("c-orphan", "", 1, base + S)
    assert "without STARTED" in harness.verification("c-orphan").reason


def test_parameter_change_rejected(harness: Harness) -> None:
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    client = harness.t.node.create_client(SetParameters, "/cde_perception/set_parameters")
    assert client.wait_for_service(timeout_sec=10)
    bad = Parameter(name="settle_time", value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=-1.0))
    good = Parameter(name="settle_time", value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=0.2))
    future = client.call_async(SetParameters.Request(parameters=[bad, good]))
    wait_for(future.done, 10, "set_parameters")
    bad_result, good_result = future.result().results
    assert not bad_result.successful and "must be in" in bad_result.reason
    assert good_result.successful
    structural = Parameter(name="image_topic",
                           value=ParameterValue(type=ParameterType.PARAMETER_STRING, string_value="/elsewhere"))
    future = client.call_async(SetParameters.Request(parameters=[structural]))
    wait_for(future.done, 10, "set_parameters")
    (result,) = future.result().results
    assert not result.successful and "unconfigured" in result.reason


def test_missing_model_fails_activation_and_node_stays_up(no_model_node: Harness, model_path: Path,
                                                          tmp_path: Path) -> None:
    from lifecycle_msgs.msg import Transition

    h = no_model_node
    assert h.state() == "inactive"  # autostart: configure succeeded, activate failed
    wait_for(lambda: "activation failed" in h.log.read_text() and "does not exist" in h.log.read_text(), 10,
             "the logged activation failure")
    base = time.time_ns()
    _publish_frames(h, base, 12, seed=700)
    h.command("c-nomodel", "open", 0, base + 150_000_000)
    h.command("c-nomodel", "", 1, base + 400_000_000)
    ver = h.verification("c-nomodel")
    assert ver.verdict_name == "uncertain" and "no model loaded" in ver.reason and "does not exist" in ver.reason
    # A corrupt model fails activation too, with what is wrong; the node stays inactive.
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07 this is not a model")
    assert h.set_parameter("model_path", str(corrupt)).successful  # allowed while inactive
    assert not h.transition(Transition.TRANSITION_ACTIVATE)
    assert h.state() == "inactive"
    wait_for(lambda: "not a cde ONNX index" in h.log.read_text(), 10, "the logged corrupt-model reason")
    # Fixing the path recovers without a restart (here the PyTorch checkpoint beside the ONNX export, so the
    # torch backend is exercised too); then the model is locked while active.
    checkpoint = model_path.with_suffix(".safetensors")
    assert checkpoint.exists()
    assert h.set_parameter("model_path", str(checkpoint)).successful
    assert h.transition(Transition.TRANSITION_ACTIVATE)
    assert h.state() == "active"
    wait_for(lambda: f"model {checkpoint}: torch" in h.log.read_text(), 10, "the torch backend's load message")
    locked = h.set_parameter("model_path", str(corrupt))
    assert not locked.successful and "deactivate first" in locked.reason
    # SIGTERM (what a process manager sends) ends the node cleanly.
    h.proc.send_signal(signal.SIGTERM)
    assert h.proc.wait(timeout=15) == 0
    assert "terminate called" not in h.log.read_text() and "Traceback" not in h.log.read_text()


def test_bad_images_and_commands_give_reasons_and_the_node_survives(harness: Harness) -> None:
    from sensor_msgs.msg import Image

    from cde_ros.msg import ManipulatorCommand

    base = harness.fresh_base()
    bad = [dict(encoding="yuv422", step=64), dict(encoding="rgb8", step=10), dict(encoding="rgb8", step=96, data=b"x")]
    cids = []
    for i, fields in enumerate(bad):
        stamp = base + i * S
        msg = Image(height=24, width=32, encoding=fields["encoding"], step=fields["step"],
                    data=fields.get("data", bytes(24 * 96)))
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, S)
        harness.image_pub.publish(msg)
        time.sleep(0.05)
        cid = f"c-bad-{i}"
        harness.command(cid, "open", 0, stamp + 1)
        harness.command(cid, "", 1, stamp + 2)
        cids.append(cid)
    harness.command("", "open", 0, base)  # no id: logged and ignored
    bad_phase = ManipulatorCommand(command_id="c-phase", action="open", phase=9)
    bad_phase.header.stamp.sec = 5
    harness.command_pub.publish(bad_phase)
    # frames after the commands, so the after-frame lookups resolve (to the next bad frame or these)
    _publish_frames(harness, base + 3 * S, 5, seed=900)
    reasons = [harness.verification(cid).reason for cid in cids]
    assert all(harness.verification(cid).verdict_name == "uncertain" for cid in cids)
    assert "unsupported encoding" in reasons[0] and "step" in reasons[1] and "bytes" in reasons[2]
    assert "unknown phase" in harness.verification("c-phase").reason
    assert harness.proc.poll() is None
    # and it still works afterwards
    test_missing_before_frame_is_uncertain_with_reason(harness)
