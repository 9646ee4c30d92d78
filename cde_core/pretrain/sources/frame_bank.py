"""All pretraining frames in memory: one uint8 tensor [N, 3, S, S] (S = data.cache_size).

Frames are resized once (bilinear, whole view, no crop); the multi-crop augmentation then cuts its crops
from this bank on every step, so decoding costs nothing after the first pass.
"""
from __future__ import annotations

import logging
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


def build_frame_bank(sources: Sequence[FrameSource], size: int, max_frames: int = 0, seed: int = 0,
                     progress: bool = True) -> torch.Tensor:
    """Read every source once into a uint8 [N, 3, size, size] tensor; keep a seeded subset if max_frames."""
    from tqdm import tqdm

    if not sources:
        raise FrameSourceError("no frame sources configured: set data.sources (folder, manifest, sim or bag)")
    frames: list[np.ndarray] = []
    for source in sources:
        before = len(frames)
        for index, rgb in enumerate(tqdm(source.frames(), desc="frames", unit="img", disable=not progress,
                                         leave=False)):
            if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
                raise FrameSourceError(f"{source.describe()}: frame {index} is {rgb.shape} {rgb.dtype}, "
                                       "not HxWx3 uint8")
            frames.append(resize_square(rgb, size))
        _LOG.info("%s: %d frames", source.describe(), len(frames) - before)
    if not frames:
        raise FrameSourceError("the frame sources yielded no frames")
    bank = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()
    if max_frames and len(bank) > max_frames:
        keep = torch.randperm(len(bank), generator=torch.Generator().manual_seed(seed))[:max_frames]
        bank = bank[keep.sort().values]
    _LOG.info("frame bank: %d frames at %d px (%.0f MB)", len(bank), size, bank.numel() / 2**20)
    return bank
