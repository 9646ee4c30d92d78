"""Issue 13's attack run, replayed against the real node in its own process over DDS (localhost, its own
domain): hostile compressed frames (a decompression-bomb PNG, a PPM with a malformed header) as the before
frame of commands, and a model whose graph is a symbolic link out of `allowed_model_dirs`.

Each hostile frame must cost only its own command (UNCERTAIN, the reason naming the problem); the node
stays up and verifies the next normal command. Every wait has a deadline; frames are paced by stamps.
"""
from __future__ import annotations

import io
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import write_tiny_node_model
from ros_harness import wait_for
from test_image_conversion import MALFORMED_PPM, bomb_png
from test_perception_node_ros import Harness

pytestmark = pytest.mark.ros
S = 1_000_000_000
MS = 1_000_000


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory):
    model = write_tiny_node_model(tmp_path_factory.mktemp("attack_model"))
    h = Harness(str(model), tmp_path_factory.mktemp("attack_node"),
                ["-p", "image_qos:=reliable", "-p", "image_qos_depth:=50",
                 "-p", "compressed_image_topic:=camera/compressed"])
    yield h
    h.close()


def _png(seed: int) -> bytes:
    from PIL import Image

    rgb = np.random.default_rng(seed).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="PNG")
    return out.getvalue()


def _command_with_before_frame(h: Harness, publisher, cid: str, before: bytes, before_format: str, seed: int):
    """Frames at 10 Hz by stamp from a fresh base, all compressed; frame 1 is `before` and is the command's
    before frame (start at +150 ms); the after frame (first at or after end + settle = +500 ms) is normal."""
    from sensor_msgs.msg import CompressedImage

    base = h.fresh_base()
    for i in range(8):
        data, fmt = (before, before_format) if i == 1 else (_png(seed + i), "png")
        msg = CompressedImage(format=fmt, data=data)
        stamp = base + i * 100 * MS
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, S)
        msg.header.frame_id = "attack_cam"
        h.newest_ns = max(h.newest_ns, stamp)
        publisher.publish(msg)
        time.sleep(0.01)
    h.command(cid, "open", 0, base + 150 * MS)
    h.command(cid, "", 1, base + 300 * MS)
    return h.verification(cid, timeout=15)


def test_hostile_compressed_before_frames_cost_only_their_command(node: Harness) -> None:
    """Before the fix PIL's DecompressionBombError and ValueError escaped the conversion the worker guards."""
    from sensor_msgs.msg import CompressedImage

    pub = node.t.node.create_publisher(CompressedImage, "camera/compressed", 50)
    wait_for(lambda: pub.get_subscription_count() > 0, 10, "the node's compressed-image subscription")
    cases = [("bomb", bomb_png(), "png", ["20000x20000", "refused before decoding", "limit of"])]
    cases += [(f"ppm-{i}", data, "ppm", ["before frame", "does not decode", "ValueError"])
              for i, data in enumerate(MALFORMED_PPM.values())]
    for i, (cid, data, fmt, said) in enumerate(cases):
        ver = _command_with_before_frame(node, pub, cid, data, fmt, seed=500 + 10 * i)
        assert ver.verdict_name == "uncertain", (cid, ver.verdict_name, ver.reason)
        assert all(part in ver.reason for part in said), (cid, ver.reason)
    ver = _command_with_before_frame(node, pub, "normal-after-attacks", _png(999), "png", seed=900)
    assert ver.verdict_name != "uncertain", ver.reason
    assert [v.command_id for v in node.verifications].count("bomb") == 1
    assert "worker error" not in node.log.read_text()
    assert node.proc.poll() is None


def test_a_model_graph_linked_from_outside_the_allowed_dirs_is_not_activated(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """The index lies in allowed_model_dirs, its encoder graph is a link to a file outside:
    activation must fail, saying which graph and where it leads, and commands are answered UNCERTAIN."""
    allowed, outside = tmp_path_factory.mktemp("allowed_models"), tmp_path_factory.mktemp("outside_models")
    index = write_tiny_node_model(allowed)
    encoder = allowed / "m.encoder.onnx"
    shutil.move(encoder, outside / "m.encoder.onnx")
    encoder.symlink_to(outside / "m.encoder.onnx")
    h = Harness(str(index), tmp_path_factory.mktemp("linked_graph_node"), allowed_dirs=[str(allowed)])
    try:
        base = h.fresh_base()
        from test_perception_node_ros import _publish_frames

        _publish_frames(h, base, 8, seed=40)
        h.command("linked", "open", 0, base + 150 * MS)
        h.command("linked", "", 1, base + 300 * MS)
        ver = h.verification("linked", timeout=15)
        assert ver.verdict_name == "uncertain" and "no model loaded" in ver.reason, ver.reason
        assert "encoder graph" in ver.reason and "outside allowed_model_dirs" in ver.reason, ver.reason
        assert "activation failed" in h.log.read_text()
        assert h.proc.poll() is None
    finally:
        h.close()


# ---------------------------------------------------------------- bursts, floods, repeats, shutdown (items 4-6, 8)
class _Camera:
    """A live camera for the attack tests: 320x240 rgb8 frames stamped now at `rate_hz` from a thread, until
    stopped (the attack run's frame size: what a full-resolution copy per open command cost)."""

    def __init__(self, h: Harness, rate_hz: float = 20.0) -> None:
        import threading

        from sensor_msgs.msg import Image

        self._stop = threading.Event()
        images = [np.random.default_rng(i).integers(0, 256, (240, 320, 3), dtype=np.uint8).tobytes() for i in range(7)]

        def run() -> None:
            seed = 0
            while not self._stop.is_set():
                stamp = time.time_ns()
                msg = Image(height=240, width=320, encoding="rgb8", step=960, data=images[seed % 7])
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, S)
                msg.header.frame_id = "test_cam"
                h.newest_ns = max(h.newest_ns, stamp)
                h.image_pub.publish(msg)
                seed += 1
                time.sleep(1.0 / rate_hz)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _diagnostics(h: Harness) -> dict[str, str]:
    from diagnostic_msgs.msg import DiagnosticArray

    seen = h.t.collect(DiagnosticArray, "/diagnostics")
    wait_for(lambda: len(seen) > 0, 10, "diagnostics")
    n = len(seen)
    wait_for(lambda: len(seen) > n, 10, "fresh diagnostics")
    return {kv.key: kv.value for kv in list(seen)[-1].status[0].values}


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from cde_ros.msg import EffectVerification, ManipulatorCommand

    model = write_tiny_node_model(tmp_path_factory.mktemp("burst_model"))
    h = Harness(str(model), tmp_path_factory.mktemp("burst_node"),
                # a long window, bounded by bytes (~14 s of these frames): a loaded machine may take several
                # seconds to work through a burst, and a command's before frame must still be there
                ["-p", "settle_time:=0.05", "-p", "diagnostics_period:=0.5", "-p", "buffer_seconds:=60.0",
                 "-p", "buffer_max_mb:=64.0"])
    # The test's own side must not lose the flood: a reliable keep-last writer overwrites what is not yet
    # acknowledged, so the sender and the collector get deep queues (the node's command queue is its own,
    # command_qos_depth, and its result publishers keep 1000).
    deep = QoSProfile(depth=10000, reliability=ReliabilityPolicy.RELIABLE)
    h.command_pub = h.t.node.create_publisher(ManipulatorCommand, "commands", deep)
    h.verifications = h.t.collect(EffectVerification, "/cde_perception/effect_verification", deep)
    wait_for(lambda: h.command_pub.get_subscription_count() > 0, 10, "the node's command subscription")
    camera = _Camera(h)
    first = int(_diagnostics(h)["frames_received"])
    wait_for(lambda: int(_diagnostics(h)["frames_received"]) > first + 5, 20, "the camera's frames at the node")
    yield h
    camera.stop()
    h.close()


def test_a_burst_of_500_complete_commands_in_a_second_is_verified_once_each(live: Harness) -> None:
    """Before: 37 and 89 of 500 verified, the rest lost at the command subscription (depth 50) silently."""
    base = live.verifications.__len__()
    t0 = time.time_ns()
    for i in range(500):
        stamp = t0 + i * 2 * MS
        live.command(f"burst-{i}", "open", 0, stamp)
        live.command(f"burst-{i}", "", 1, stamp + MS)
        if i % 50 == 49:
            time.sleep(0.1)  # 500 commands (1,000 messages) within ~1 s
    wait_for(lambda: sum(v.command_id.startswith("burst-") for v in live.verifications) >= 500, 90,
             "500 verdicts")
    time.sleep(1.0)  # nothing more may come
    ids = [v.command_id for v in list(live.verifications)[base:] if v.command_id.startswith("burst-")]
    assert sorted(ids) == sorted(f"burst-{i}" for i in range(500))  # every one, exactly once
    assert all(v.verdict_name != "uncertain" for v in live.verifications if v.command_id.startswith("burst-")), \
        [v.reason for v in live.verifications if v.verdict_name == "uncertain"][:3]


def test_repeated_or_invalid_events_give_exactly_one_verdict_per_id(live: Harness) -> None:
    """Before: STARTED with an empty action / stamped 0 / phase 255, then a valid pair, gave two verdicts."""
    now = time.time_ns()
    cases = {"empty-action": [("", 0, now), ("", 1, now + 100 * MS)],
             "zero-stamp": [("open", 0, 0), ("", 1, now + 100 * MS)],
             "phase-255": [("open", 255, now), ("open", 0, now), ("", 1, now + 100 * MS)],
             "negative-stamp": [("open", 0, -5 * S), ("", 1, now + 100 * MS)],
             "twice": [("open", 0, now), ("open", 0, now), ("", 1, now + 100 * MS), ("", 1, now + 100 * MS)]}
    for cid, events in cases.items():
        for action, phase, stamp in events:
            from cde_ros.msg import ManipulatorCommand

            msg = ManipulatorCommand(command_id=cid, action=action, phase=phase)
            if stamp < 0:
                msg.header.stamp.sec, msg.header.stamp.nanosec = -5, 0
            else:
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, S)
            live.command_pub.publish(msg)
    for cid in cases:
        live.verification(cid, timeout=15)
    time.sleep(1.5)  # any second verdict would have come by now (settle 0.05 s)
    counts = {cid: sum(v.command_id == cid for v in live.verifications) for cid in cases}
    assert counts == {cid: 1 for cid in cases}
    reasons = {cid: live.verification(cid).reason for cid in cases}
    assert "without a semantic action" in reasons["empty-action"] and "zero" in reasons["zero-stamp"]
    assert "unknown phase 255" in reasons["phase-255"] and "negative" in reasons["negative-stamp"]
    assert live.verification("twice").verdict_name != "uncertain"


def test_5000_open_commands_are_bounded_and_the_evicted_say_so(live: Harness) -> None:
    """Before: 5,000 STARTED without FINISHED took resident memory 670 -> 1,991 MB (full-resolution before
    frames), /diagnostics said 64 open, and a FINISHED of an evicted one got 'FINISHED without STARTED'."""
    wait_for(lambda: float(_diagnostics(live)["buffer_mb"]) > 60.0, 60, "a full frame buffer (so it adds no memory)")
    rss0 = _rss_mb(live.proc.pid)
    now = time.time_ns()
    for i in range(5000):  # ~1,000 a second
        live.command(f"open-{i}", "open", 0, now + i * MS // 10)
        if i % 200 == 199:
            time.sleep(0.2)
    wait_for(lambda: sum(v.command_id.startswith("open-") for v in live.verifications) >= 5000 - 256, 120,
             "the evicted commands' verdicts")
    diag = _diagnostics(live)
    assert int(diag["open_commands"]) <= 256 and int(diag["commands_evicted"]) >= 5000 - 256
    evicted = live.verification("open-4700")
    assert evicted.verdict_name == "uncertain" and "evicted" in evicted.reason and "max_open_commands" in evicted.reason
    live.command("open-4700", "", 1, time.time_ns())  # its end, late: no second verdict, no 'without STARTED'
    time.sleep(1.0)
    assert sum(v.command_id == "open-4700" for v in live.verifications) == 1
    assert "already answered" in live.log.read_text()
    # the answered-id memory is bounded too (max_remembered_ids 4096): the overflow is counted
    assert int(_diagnostics(live)["forgotten_ids"]) >= 5000 - 256 - 4096
    assert _rss_mb(live.proc.pid) - rss0 < 150  # 256 compact before frames, not 5,000 full copies


def test_a_lifecycle_shutdown_ends_the_process(tmp_path: Path) -> None:
    """Before: a remote `shutdown` left the process running, finalized and deaf."""
    from lifecycle_msgs.msg import Transition

    model = write_tiny_node_model(tmp_path)
    h = Harness(str(model), tmp_path)
    try:
        assert h.state() == "active"
        assert h.transition(Transition.TRANSITION_ACTIVE_SHUTDOWN)
        h.proc.wait(timeout=15)
        assert h.proc.returncode == 0
        assert "lifecycle shutdown: exiting" in h.log.read_text()
    finally:
        h.close()
