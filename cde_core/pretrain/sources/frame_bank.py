"""All pretraining frames in memory: one uint8 tensor [N, 3, S, S] (S = data.cache_size) and the clip of each.

Frames are resized once (bilinear, whole view, no crop); the multi-crop augmentation then cuts its crops
from this bank on every step, so decoding costs nothing after the first pass.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from cde_core.pretrain.sources.bag_frames import BagFrameSource
from cde_core.pretrain.sources.base import FrameSource, FrameSourceError
from cde_core.pretrain.sources.image_folder import ImageFolderSource
from cde_core.pretrain.sources.manifest_frames import ManifestFrameSource
from cde_core.pretrain.sources.sim_frames import SimFrameSource

_LOG = logging.getLogger(__name__)
SOURCE_TYPES = ("folder", "manifest", "sim", "bag")


def build_source(spec: dict[str, Any], progress: bool = True) -> FrameSource:
    """A source from its config dict: `{type: folder|manifest|sim|bag, ...its arguments}`."""
    options = dict(spec)
    kind = options.pop("type", None)
    try:
        if kind == "folder":
            return ImageFolderSource(**options)
        if kind == "manifest":
            return ManifestFrameSource(**options)
        if kind == "sim":
            return SimFrameSource(progress=progress, **options)
        if kind == "bag":
            return BagFrameSource(**options)
    except TypeError as exc:  # unknown/missing arguments
        raise FrameSourceError(f"frame source {spec}: {exc}") from exc
    raise FrameSourceError(f"frame source {spec}: type must be one of {SOURCE_TYPES}")


def resize_square(rgb: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    if rgb.shape[0] == size and rgb.shape[1] == size:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.BILINEAR))


@dataclass
class FrameBank:
    """`images` uint8 [N, 3, S, S]; `clips` int64 [N], the index of each frame's clip in `clip_names`."""

    images: torch.Tensor
    clips: torch.Tensor
    clip_names: list[str]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def clip_members(self) -> list[torch.Tensor]:
        """The frame indices of every clip that has at least one frame, in clip order."""
        order = torch.argsort(self.clips, stable=True)
        counts = torch.bincount(self.clips, minlength=len(self.clip_names)).tolist()
        return [part for part in torch.split(order, counts) if len(part)]


def build_frame_bank(sources: Sequence[FrameSource], size: int, max_frames: int = 0, seed: int = 0,
                     progress: bool = True) -> FrameBank:
    """Read every source once into memory at size x size; keep a seeded subset if max_frames."""
    from tqdm import tqdm

    if not sources:
        raise FrameSourceError("no frame sources configured: set data.sources (folder, manifest, sim or bag)")
    frames: list[np.ndarray] = []
    clips: list[int] = []
    clip_index: dict[str, int] = {}
    for number, source in enumerate(sources):
        before = len(frames)
        for index, (clip, rgb) in enumerate(tqdm(source.frames(), desc="frames", unit="img", disable=not progress,
                                                 leave=False)):
            if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
                raise FrameSourceError(f"{source.describe()}: frame {index} is {rgb.shape} {rgb.dtype}, "
                                       "not HxWx3 uint8")
            frames.append(resize_square(rgb, size))
            clips.append(clip_index.setdefault(f"{number}:{clip}", len(clip_index)))  # sources never share clips
        _LOG.info("%s: %d frames", source.describe(), len(frames) - before)
    if not frames:
        raise FrameSourceError("the frame sources yielded no frames")
    images = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()
    clip_ids = torch.tensor(clips, dtype=torch.int64)
    if max_frames and len(images) > max_frames:
        keep = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:max_frames].sort().values
        images, clip_ids = images[keep], clip_ids[keep]
    _LOG.info("frame bank: %d frames of %d clips at %d px (%.0f MB)", len(images), len(clip_index), size,
              images.numel() / 2**20)
    return FrameBank(images=images, clips=clip_ids, clip_names=list(clip_index))
