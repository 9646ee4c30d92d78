"""Two camera frames (and their robot masks) -> the model's verdict inputs, the same way everywhere.

The node, the demo's tests and offline checks call `compare_frames`; it applies the model's robot-mask
rule (`cde_core.robot_mask.mask_pair`, as training did), embeds both frames and compares them. For a model
without masks the before frame's embedding may be computed early (while the arm moves) and passed in; with
masks it cannot, since the union depends on the after frame's mask too.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cde_core.robot_mask import MaskedPair, mask_pair, prepare_frame, prepare_mask, suppress_masked_patches
from cde_core.runtime.base import Embedding, PairResult, Runtime


@dataclass
class CompactFrame:
    """What is kept of a before frame until its command ends: the frame at the model's input size and its
    robot mask at that size (None without one). ~12 KB at 64 px instead of a full-resolution copy."""

    rgb: np.ndarray
    mask: np.ndarray | None


def compact_frame(rgb: np.ndarray, mask: np.ndarray | None, size: int) -> CompactFrame:
    """RobotMaskError/ValueError when the frame or the mask is unusable (a mask of another size)."""
    small_mask = None if mask is None else prepare_mask(mask, size, rgb.shape)
    return CompactFrame(prepare_frame(rgb, size), small_mask)


@dataclass
class FrameComparison:
    """The model's answer and the pair it saw (model-size frames with the robot filled, for overlays)."""

    result: PairResult
    pair: MaskedPair


def mask_mode(runtime: Runtime, allow_unmasked: bool, have_masks: bool) -> str:
    """The rule to apply: the model's; "none" for a masked model only when masks are missing and allowed."""
    mode = runtime.metadata.preprocessing.robot_mask
    return "none" if mode != "none" and not have_masks and allow_unmasked else mode


def compare_frames(runtime: Runtime, before: CompactFrame, after_rgb: np.ndarray, after_mask: np.ndarray | None,
                   mode: str | None = None, before_embedding: Embedding | None = None) -> FrameComparison:
    """Mask (by `mode`, default the model's), embed, compare. RobotMaskError when masks are needed but
    missing or unusable; `before_embedding` is used only when no mask is applied."""
    meta = runtime.metadata
    prep = meta.preprocessing
    mode = prep.robot_mask if mode is None else mode
    after = compact_frame(after_rgb, after_mask, prep.img_size)
    pair = mask_pair(before.rgb, after.rgb, before.mask, after.mask, prep.img_size, prep.mean, meta.grid_size, mode)
    if mode != "none" or before_embedding is None:
        before_embedding = runtime.embed(pair.before)
    after_embedding = runtime.embed(pair.after)
    patches = suppress_masked_patches(before_embedding.patches[None], after_embedding.patches[None],
                                      pair.patch_valid[None])[0]
    result = runtime.compare(before_embedding, Embedding(after_embedding.global_, patches.astype(np.float32)))
    return FrameComparison(result, pair)
