"""Unlabelled frames from a folder of images (recursive), e.g. footage exported from a robot camera."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from cde_core.pretrain.sources.base import Frame, FrameSourceError, read_rgb

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

    def frames(self) -> Iterator[Frame]:
        for path in self.paths:  # one clip per directory
            yield str(path.parent.relative_to(self.root)), read_rgb(str(path))
