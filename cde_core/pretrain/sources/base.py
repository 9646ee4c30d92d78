"""What every unlabelled-frame source provides: a description and an iterator of (clip, RGB frame).

A clip names the recording a frame comes from (a simulator episode and camera, a bag topic, a folder, a
pair): the time-contrastive objective draws several frames of one clip into a batch, so the other moments
of the same scene are the negatives that only its changing state tells apart.
"""
from __future__ import annotations

from typing import Iterator, Protocol

import numpy as np


class FrameSourceError(RuntimeError):
    """A frame source is misconfigured or its data cannot be read (the message names the file)."""


Frame = tuple[str, np.ndarray]  # (clip name, HxWx3 uint8 RGB)


class FrameSource(Protocol):
    """Yields (clip, HxWx3 uint8 RGB frame); sizes may differ (the frame bank resizes them)."""

    def describe(self) -> str: ...

    def frames(self) -> Iterator[Frame]: ...


def read_rgb(path: str) -> np.ndarray:
    """An image file as HxWx3 uint8 RGB (grey and RGBA are converted)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise FrameSourceError(f"cannot decode image {path}: {exc}") from exc
