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


def declared_size(data: bytes) -> tuple[str, int, int] | None:
    """(format, width, height) as a PNG, JPEG or Netpbm (PPM/PGM/PBM) header declares it, read from the bytes
    without decoding, so a decompression bomb is refused before any image library allocates for it.
    None when the header is not one of these or does not parse (the decoder then says what is wrong)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        return "PNG", int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    if len(data) >= 2 and data[:1] == b"P" and data[1:2] in b"123456":
        return _netpbm_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[str, int, int] | None:
    """The frame size from the first SOFn segment (the markers that carry it: C0-CF but DHT, JPG, DAC)."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # standalone markers carry no length
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if pos + 9 > len(data):
                return None
            return "JPEG", int.from_bytes(data[pos + 7:pos + 9], "big"), int.from_bytes(data[pos + 5:pos + 7], "big")
        if marker == 0xDA or length < 2:  # scan data before any frame header: not a JPEG we can size
            return None
        pos += 2 + length
    return None


def _netpbm_size(data: bytes) -> tuple[str, int, int] | None:
    """Width and height: the two whitespace-separated tokens after the magic, '#' comments skipped."""
    tokens: list[int] = []
    for line in data[2:512].split(b"\n"):
        for token in line.split(b"#", 1)[0].split():
            if not token.isdigit():
                return None
            tokens.append(int(token))
            if len(tokens) == 2:
                return "PPM", tokens[0], tokens[1]
    return None


def compressed_to_rgb(fmt: str, data: Any) -> np.ndarray:
    """JPEG/PNG (what image_transport's compressed plugin publishes; other formats PIL reads also work) -> RGB.

    Every failure is an ImageConversionError: PIL's decoders raise far more than OSError (ValueError for a bad
    PPM maxval, DecompressionBombError, struct.error, ...), and a caller that catches only ours must never be
    taken down by a frame off the wire."""
    from PIL import Image

    label = fmt or "no format"
    if not data:
        raise ImageConversionError(f"compressed image ({label}) has no data")
    raw = bytes(data)
    declared = declared_size(raw)
    if declared is not None:
        kind, width, height = declared
        if width * height > MAX_PIXELS:
            raise ImageConversionError(
                f"compressed image ({label}): its {kind} header declares {width}x{height} = {width * height} "
                f"pixels, over the limit of {MAX_PIXELS} pixels (a decompression bomb?); refused before decoding")
    try:
        with Image.open(io.BytesIO(raw)) as img:  # reads the header only; pixels are decoded by convert()
            if img.width <= 0 or img.height <= 0:
                raise ImageConversionError(f"compressed image ({label}) has no pixels ({img.width}x{img.height})")
            if img.width * img.height > MAX_PIXELS:
                raise ImageConversionError(
                    f"compressed image ({label}): its {img.format} header declares {img.width}x{img.height} = "
                    f"{img.width * img.height} pixels, over the limit of {MAX_PIXELS} pixels; refused before decoding")
            return np.asarray(img.convert("RGB"))
    except ImageConversionError:
        raise
    except Image.DecompressionBombError as exc:  # a format declared_size does not read; PIL's own bound hit
        raise ImageConversionError(f"compressed image ({label}) refused before decoding: {exc} "
                                   f"(this module's limit: {MAX_PIXELS} pixels)") from exc
    except Exception as exc:  # noqa: BLE001 - PIL's plugins raise ValueError, struct.error, IndexError, ...
        raise ImageConversionError(f"compressed image ({label}) does not decode: "
                                   f"{type(exc).__name__}: {exc}") from exc


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
