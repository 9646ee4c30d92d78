"""What every unlabelled-frame source provides: a description and an iterator of RGB frames."""
from __future__ import annotations

from typing import Iterator, Protocol

import numpy as np


class FrameSourceError(RuntimeError):
    """A frame source is misconfigured or its data cannot be read (the message names the file)."""


class FrameSource(Protocol):
    """Yields HxWx3 uint8 RGB frames; sizes may differ (the frame bank resizes them)."""

    def describe(self) -> str: ...

    def frames(self) -> Iterator[np.ndarray]: ...


def read_rgb(path: str) -> np.ndarray:
    """An image file as HxWx3 uint8 RGB (grey and RGBA are converted)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise FrameSourceError(f"cannot decode image {path}: {exc}") from exc
