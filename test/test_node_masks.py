"""Robot self-masks at the real node over DDS: paired to frames by stamp, applied by the model's rule, and every
problem (no mask, a mask of another size, a wrong encoding, a mask over everything) answered with its reason."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from conftest import write_tiny_node_model
from ros_harness import wait_for
from test_perception_node_ros import Harness, _frame

pytestmark = pytest.mark.ros
S = 1_000_000_000
MS = 1_000_000


def _mask_msg(stamp_ns: int, mask: np.ndarray, encoding: str = "mono8"):
    from sensor_msgs.msg import Image

    height, width = mask.shape[:2]
    msg = Image(height=height, width=width, encoding=encoding, step=mask.strides[0], data=mask.tobytes())
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, S)
    msg.header.frame_id = "test_cam"
    return msg


class _MaskedHarness(Harness):
    def __init__(self, model: str, tmp: Path, extra: list[str]) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        super().__init__(model, tmp, ["-p", "image_qos:=reliable", "-p", "image_qos_depth:=50", *extra])
        self.mask_pub = self.t.node.create_publisher(Image, "robot_mask", QoSProfile(
            depth=50, reliability=ReliabilityPolicy.RELIABLE))

    def episode(self, cid: str, masks: dict[int, np.ndarray | None] | None, seed: int):
        """Ten frames at 10 Hz by stamp, with the mask of frame i from `masks` (None: no mask for it); the
        command starts after frame 1 and ends after frame 3 (after frame: 6 with settle 0.2 s)."""
        base = self.fresh_base()
        if masks is not None:
            wait_for(lambda: self.mask_pub.get_subscription_count() > 0, 10, "the node's mask subscription")
        for i in range(10):
            stamp = base + i * 100 * MS
            msg, _ = _frame(seed + i, stamp)
            self.image_pub.publish(msg)
            mask = (masks or {}).get(i, np.zeros((24, 32), np.uint8)) if masks is not None else None
            if mask is not None:
                self.mask_pub.publish(_mask_msg(stamp, mask))
            self.newest_ns = max(self.newest_ns, stamp)
            time.sleep(0.01)
        self.command(cid, "open", 0, base + 150 * MS)
        self.command(cid, "", 1, base + 350 * MS)
        return self.verification(cid, timeout=15)


@pytest.fixture(scope="module")
def masked_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_node_model(tmp_path_factory.mktemp("masked_model"), robot_mask="union")


def test_masks_are_applied_and_bad_masks_get_their_reason(masked_model: Path, tmp_path: Path) -> None:
    h = _MaskedHarness(str(masked_model), tmp_path, ["-p", "robot_mask_topic:=robot_mask"])
    try:
        arm = np.zeros((24, 32), np.uint8)
        arm[:8, :10] = 255
        ok = h.episode("masked", {1: arm, 6: arm}, seed=10)
        assert ok.verdict_name != "uncertain", ok.reason
        rec = next(r for r in h.recognitions if r.command_id == "masked")
        # the arm's patches (4x4 grid on 32 px; the arm covers most of patch 0) never enter Top-K
        assert 0 not in rec.changed_patches
        wrong_size = h.episode("wrong-size", {1: np.zeros((12, 16), np.uint8)}, seed=30)
        assert wrong_size.verdict_name == "uncertain" and "robot mask is 16x12 but its frame is 32x24" in wrong_size.reason
        everything = h.episode("everything", {6: np.full((24, 32), 255, np.uint8)}, seed=50)
        assert everything.verdict_name == "uncertain" and "covers 100%" in everything.reason
        missing = h.episode("missing", {1: None}, seed=70)  # the before frame's mask never came
        assert missing.verdict_name == "uncertain" and "before frame has no robot mask" in missing.reason
        assert h.proc.poll() is None and "Traceback" not in h.log.read_text()
    finally:
        h.close()


def test_a_masked_model_without_masks_is_uncertain_unless_allowed(masked_model: Path, tmp_path: Path) -> None:
    h = _MaskedHarness(str(masked_model), tmp_path, [])
    try:
        wait_for(lambda: "robot_mask_topic is empty" in h.log.read_text(), 10, "the activation warning")
        ver = h.episode("no-masks", None, seed=90)
        assert ver.verdict_name == "uncertain" and "allow_unmasked" in ver.reason
        assert h.set_parameter_bool("allow_unmasked", True).successful
        ver = h.episode("allowed", None, seed=110)
        assert ver.verdict_name != "uncertain", ver.reason
    finally:
        h.close()
