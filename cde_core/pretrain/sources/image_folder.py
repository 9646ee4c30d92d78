"""Unlabelled frames from a folder of images (recursive), e.g. footage exported from a robot camera."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from cde_core.pretrain.sources.base import FrameSourceError, read_rgb

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


class ImageFolderSource:
    def __init__(self, root: str | Path, recursive: bool = True) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FrameSourceError(f"image folder {self.root} does not exist")
        pattern = "**/*" if recursive else "*"
        self.paths = sorted(p for p in self.root.glob(pattern) if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not self.paths:
            raise FrameSourceError(f"no {'/'.join(IMAGE_EXTENSIONS)} images under {self.root}")

    def describe(self) -> str:
        return f"folder {self.root} ({len(self.paths)} images)"

    def frames(self) -> Iterator[np.ndarray]:
        for path in self.paths:
            yield read_rgb(str(path))
