"""sensor_msgs/Image and CompressedImage -> HxWx3 uint8 RGB, from the messages' plain fields.

Our own conversion covers the encodings cameras publish for RGB models; the PyPI cv-bridge is a broken
ROS 1 port (ignores `step`, wrong 16UC1, fails on NumPy 2) and the ROS 2 one is not installable from
PyPI. Where a ROS 2 cv_bridge IS installed (registered in the ament index), `message_to_rgb` hands it
the encodings our table lacks (bayer, yuv422, ...). Depth/float encodings are scaled to 8 bits for the
model (min-max over finite values; NaN/inf become 0).
"""
from __future__ import annotations

import io
import logging
from functools import lru_cache
from typing import Any, Callable, Optional

import numpy as np

_log = logging.getLogger(__name__)

MAX_PIXELS = 50_000_000  # refuse absurd headers before allocating

# encoding -> (channels, numpy dtype, channel order to RGB)
ENCODINGS: dict[str, tuple[int, str, tuple[int, ...] | None]] = {
    "rgb8": (3, "u1", (0, 1, 2)), "bgr8": (3, "u1", (2, 1, 0)),
    "rgba8": (4, "u1", (0, 1, 2)), "bgra8": (4, "u1", (2, 1, 0)),
    "mono8": (1, "u1", None), "8UC1": (1, "u1", None),
    "mono16": (1, "u2", None), "16UC1": (1, "u2", None),
    "32FC1": (1, "f4", None),
}


class ImageConversionError(ValueError):
    """The image cannot be converted; the message says what is wrong and what is supported."""


def _to_uint8(values: np.ndarray, encoding: str) -> np.ndarray:
    if values.dtype == np.uint8:
        return values
    if encoding == "mono16":  # intensity image: keep the top byte
        return (values >> 8).astype(np.uint8)
    data = values.astype(np.float64)
    finite = np.isfinite(data)
    if not finite.any():
        return np.zeros(values.shape, np.uint8)
    lo, hi = float(data[finite].min()), float(data[finite].max())
    scaled = np.zeros(values.shape, np.float64)
    if hi > lo:
        scaled[finite] = (data[finite] - lo) / (hi - lo) * 255.0
    return scaled.astype(np.uint8)


def image_to_rgb(width: int, height: int, encoding: str, step: int, is_bigendian: bool, data: Any) -> np.ndarray:
    """sensor_msgs/Image fields -> HxWx3 uint8 RGB (a copy). `data`: bytes or any buffer (array.array)."""
    if encoding not in ENCODINGS:
        raise ImageConversionError(f"unsupported encoding {encoding!r}; supported: {', '.join(ENCODINGS)} "
                                   "(publish one of these or a CompressedImage)")
    if width <= 0 or height <= 0:
        raise ImageConversionError(f"image has no pixels ({width}x{height})")
    if width * height > MAX_PIXELS:
        raise ImageConversionError(f"image {width}x{height} exceeds {MAX_PIXELS} pixels")
    channels, kind, order = ENCODINGS[encoding]
    dtype = np.dtype(kind).newbyteorder(">" if is_bigendian else "<") if kind != "u1" else np.dtype("u1")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ImageConversionError(f"step {step} < width*channels*bytes = {row_bytes} for {encoding}")
    data = memoryview(data).cast("B")
    if len(data) < step * (height - 1) + row_bytes:
        raise ImageConversionError(f"data has {len(data)} bytes; {height} rows of step {step} need "
                                   f"{step * (height - 1) + row_bytes}")
    buffer = np.frombuffer(data, dtype=np.uint8, count=step * (height - 1) + row_bytes)
    rows = np.lib.stride_tricks.as_strided(buffer, shape=(height, row_bytes), strides=(step, 1))
    pixels = np.ascontiguousarray(rows).view(dtype).reshape(height, width, channels)
    if order is not None:
        return np.ascontiguousarray(pixels[:, :, list(order)])
    gray = _to_uint8(pixels[:, :, 0].astype(dtype.newbyteorder("=")), encoding)
    return np.repeat(gray[:, :, None], 3, axis=2)


def compressed_to_rgb(fmt: str, data: Any) -> np.ndarray:
    """JPEG/PNG (what image_transport's compressed plugin publishes) -> RGB."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageConversionError(f"compressed image ({fmt or 'no format'}) has no data")
    try:
        with Image.open(io.BytesIO(bytes(data))) as img:
            if img.width * img.height > MAX_PIXELS:
                raise ImageConversionError(f"compressed image {img.width}x{img.height} exceeds {MAX_PIXELS} pixels")
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ImageConversionError(f"compressed image ({fmt or 'no format'}) does not decode: {exc}") from exc


def rgb_to_image_fields(rgb: np.ndarray) -> dict:
    """HxWx3 uint8 -> the fields of an rgb8 sensor_msgs/Image (for publishers: sim camera, overlays)."""
    height, width = rgb.shape[:2]
    return {"height": height, "width": width, "encoding": "rgb8", "is_bigendian": 0, "step": width * 3,
            "data": np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()}


@lru_cache(maxsize=1)
def _ros2_cv_bridge() -> Optional[Callable[[Any], np.ndarray]]:
    """A converter backed by ROS 2's cv_bridge if one is installed (found in the ament index, which the
    broken PyPI ROS 1 port is not), else None."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_prefix
        from cv_bridge import CvBridge
    except ImportError:
        return None
    try:
        get_package_prefix("cv_bridge")
    except (PackageNotFoundError, KeyError, ValueError):
        return None
    bridge = CvBridge()
    _log.info("ROS 2 cv_bridge found: used for encodings outside %s", ", ".join(ENCODINGS))
    return lambda msg: np.ascontiguousarray(bridge.imgmsg_to_cv2(msg, desired_encoding="rgb8"))


def message_to_rgb(msg: Any) -> np.ndarray:
    """A sensor_msgs/Image or CompressedImage (told apart by the `format` field) -> HxWx3 uint8 RGB."""
    if hasattr(msg, "format"):
        return compressed_to_rgb(msg.format, msg.data)
    if msg.encoding not in ENCODINGS:
        bridge = _ros2_cv_bridge()
        if bridge is not None:
            try:
                return bridge(msg)
            except Exception as exc:  # noqa: BLE001 - cv_bridge raises CvBridgeError or cv2.error
                raise ImageConversionError(f"cv_bridge cannot convert encoding {msg.encoding!r}: {exc}") from exc
    return image_to_rgb(msg.width, msg.height, msg.encoding, msg.step, bool(msg.is_bigendian), msg.data)
