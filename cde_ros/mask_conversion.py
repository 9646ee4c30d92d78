"""sensor_msgs/Image robot self-mask -> HxW uint8 (nonzero = robot), from the message's plain fields.

Self-filters publish their mask as mono8 (realtime_urdf_filter's `~output_mask`, jsk_perception's
RobotToMaskImage: 255 = robot); 8UC1 is the same bytes. Anything else is refused with the reason, so a
wrong topic is reported instead of being read as a mask.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from cde_core.robot_mask import MASK_ENCODINGS

MAX_PIXELS = 50_000_000


class MaskConversionError(ValueError):
    """The mask message cannot be read as a robot mask (the message says why)."""


def mask_from_image(width: int, height: int, encoding: str, step: int, data: Any) -> np.ndarray:
    """Image fields -> HxW uint8 copy; MaskConversionError for another encoding or inconsistent fields."""
    if encoding not in MASK_ENCODINGS:
        raise MaskConversionError(f"robot mask encoding {encoding!r} is not one of {MASK_ENCODINGS} (255 = robot)")
    if width <= 0 or height <= 0 or width * height > MAX_PIXELS:
        raise MaskConversionError(f"robot mask of {width}x{height} pixels is empty or too large")
    if step < width:
        raise MaskConversionError(f"robot mask step {step} < width {width}")
    buffer = memoryview(data).cast("B") if not isinstance(data, (bytes, bytearray)) else data
    if len(buffer) < step * height:
        raise MaskConversionError(f"robot mask has {len(buffer)} bytes, {step}x{height} = {step * height} expected")
    rows = np.frombuffer(bytes(buffer[:step * height]), np.uint8).reshape(height, step)
    return np.ascontiguousarray(rows[:, :width])


def mask_from_message(msg: Any) -> np.ndarray:
    """A sensor_msgs/Image (or anything with its fields) -> HxW uint8 mask."""
    return mask_from_image(int(msg.width), int(msg.height), str(msg.encoding), int(msg.step), msg.data)
