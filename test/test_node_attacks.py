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
