"""Unlabelled frames from recorded bags (MCAP or sqlite3 rosbag2, ROS 1 .bag): sensor_msgs Image and
CompressedImage topics, read with the pure-Python `rosbags` AnyReader (no ROS installation needed)."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from cde_core.pretrain.sources.base import Frame, FrameSourceError

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8UC1": 1, "8UC3": 3,
             "mono16": 1, "16UC1": 1}


def image_msg_to_rgb(msg: Any) -> np.ndarray:
    """sensor_msgs/Image -> HxWx3 uint8 RGB (honours `step`; 16-bit is scaled to the frame's range)."""
    encoding = str(msg.encoding)
    if encoding not in _CHANNELS:
        raise FrameSourceError(f"image encoding {encoding!r} not supported; supported: {sorted(_CHANNELS)}")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    channels = _CHANNELS[encoding]
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if data.size < height * step:
        raise FrameSourceError(f"image {width}x{height} {encoding}: {data.size} bytes for step {step}")
    rows = data[: height * step].reshape(height, step)
    if encoding in ("mono16", "16UC1"):
        dtype = np.dtype(">u2" if msg.is_bigendian else "<u2")
        depth = rows[:, : width * 2].copy().view(dtype).reshape(height, width).astype(np.float32)
        span = max(float(depth.max() - depth.min()), 1.0)
        grey = ((depth - depth.min()) / span * 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    pixels = rows[:, : width * channels].reshape(height, width, channels)
    if channels == 1:
        return np.ascontiguousarray(np.repeat(pixels, 3, axis=2))
    if encoding.startswith("bgr"):
        pixels = pixels[..., [2, 1, 0]]
    return np.ascontiguousarray(pixels[..., :3])


def compressed_msg_to_rgb(msg: Any) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(bytes(msg.data))) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise FrameSourceError(f"cannot decode CompressedImage (format {msg.format!r}): {exc}") from exc


class BagFrameSource:
    """Every `stride`-th image message of the chosen topics (all image topics if none are named)."""

    def __init__(self, paths: str | Path | Sequence[str | Path], topics: Sequence[str] = (), stride: int = 1,
                 max_frames: int = 0) -> None:
        items = [paths] if isinstance(paths, (str, Path)) else list(paths)
        self.paths = [Path(p) for p in items]
        missing = [str(p) for p in self.paths if not p.exists()]
        if missing:
            raise FrameSourceError(f"bag(s) {missing} do not exist")
        if stride < 1:
            raise FrameSourceError(f"bag source stride must be >= 1, got {stride}")
        self.topics = list(topics)
        self.stride = stride
        self.max_frames = max_frames

    def describe(self) -> str:
        topics = ",".join(self.topics) or "all image topics"
        return f"bags {[str(p) for p in self.paths]} ({topics}, every {self.stride})"

    def frames(self) -> Iterator[Frame]:
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore

        try:
            reader = AnyReader(self.paths, default_typestore=get_typestore(Stores.LATEST))
            reader.open()
        except Exception as exc:  # rosbags raises several reader-specific error types
            raise FrameSourceError(f"cannot open bag(s) {[str(p) for p in self.paths]}: {exc}") from exc
        try:
            connections = [c for c in reader.connections if c.msgtype in IMAGE_TYPES
                           and (not self.topics or c.topic in self.topics)]
            if not connections:
                available = sorted({f"{c.topic} ({c.msgtype})" for c in reader.connections})
                raise FrameSourceError(f"no image topics {self.topics or ''} in {self.paths}; topics: {available}")
            count = 0
            for index, (connection, _, raw) in enumerate(reader.messages(connections=connections)):
                if index % self.stride:
                    continue
                msg = reader.deserialize(raw, connection.msgtype)
                clip = connection.topic  # one clip per topic, across the bags given
                if connection.msgtype.endswith("CompressedImage"):
                    yield clip, compressed_msg_to_rgb(msg)
                else:
                    yield clip, image_msg_to_rgb(msg)
                count += 1
                if self.max_frames and count >= self.max_frames:
                    return
        finally:
            reader.close()
