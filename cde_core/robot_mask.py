"""The robot taken out of a before/after pair: one function for training, evaluation, every runtime and the node.

A manipulator is in view in both frames at different poses, so left alone every delta carries the arm's
motion. A self-mask (255 = robot; the simulator renders it from segmentation, a real robot's URDF filter
such as realtime_urdf_filter's `~output_mask` publishes it) removes it by the union rule: a pixel that is
robot in either frame gets the same neutral fill (the normalisation mean, so it is 0 after normalising)
in both frames, and a patch that is mostly robot never enters Top-K (its patch delta is zeroed).

Everything happens at the model's input size S: frames are resized to S x S first (the compact form the
node keeps for a command's before frame), masks are resized conservatively (a model pixel is robot when any
camera pixel under its resize filter is), then the union is filled.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

MASK_MODES = ("none", "union")
MASK_ENCODINGS = ("mono8", "8UC1")  # how self-filters publish a mask (sensor_msgs/Image), live or recorded
MOSTLY_MASKED = 0.5  # a patch with more robot pixels than this fraction never enters Top-K
NEARLY_ALL_MASKED = 0.9  # a union covering more of the frame than this leaves nothing to compare


class RobotMaskError(ValueError):
    """A mask cannot be used with its frame (size, type, or it covers nearly everything)."""


@dataclass
class MaskedPair:
    """A pair ready for `preprocess_rgb`: both frames S x S with the union filled, and which patches count."""

    before: np.ndarray  # S x S x 3 uint8
    after: np.ndarray  # S x S x 3 uint8
    robot: np.ndarray  # S x S bool, the union
    patch_valid: np.ndarray  # [rows * cols] float32, 1 = may enter Top-K (row-major like the patch tokens)


def prepare_frame(rgb: np.ndarray, size: int) -> np.ndarray:
    """HxWx3 uint8 -> S x S x 3 uint8 (bilinear, as `preprocess_rgb` resizes; no-op at size S)."""
    from PIL import Image

    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got shape {rgb.shape} dtype {rgb.dtype}")
    if rgb.shape[0] == size and rgb.shape[1] == size:
        return np.ascontiguousarray(rgb)
    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.BILINEAR))


def prepare_mask(mask: np.ndarray, size: int, frame_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """HxW mask (bool, or uint8 with nonzero = robot) -> S x S bool; a model pixel is robot when any camera
    pixel that the frame's bilinear resize reads for it is. `frame_shape` (the frame's HxW...) must match."""
    from PIL import Image

    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise RobotMaskError(f"a robot mask is one channel HxW, got shape {mask.shape}")
    if frame_shape is not None and tuple(mask.shape) != tuple(frame_shape[:2]):
        raise RobotMaskError(f"robot mask is {mask.shape[1]}x{mask.shape[0]} but its frame is "
                             f"{frame_shape[1]}x{frame_shape[0]}")
    robot = mask > 0
    if robot.shape == (size, size):
        return robot
    # The same filter as the frame's resize: a model pixel whose bilinear support touches a robot pixel is
    # robot, so no arm colour leaks into the pixels left unfilled (float image: no weight rounds to 0).
    scaled = Image.fromarray(robot.astype(np.float32), mode="F").resize((size, size), Image.BILINEAR)
    return np.asarray(scaled) > 1e-6


def union_coverage(before_mask: np.ndarray, after_mask: np.ndarray, size: int) -> float:
    """The fraction of the S x S model frame that is robot in either mask (what `mask_pair` refuses above
    NEARLY_ALL_MASKED), from the masks alone: a dataset can leave such pairs out before decoding frames."""
    return float((prepare_mask(before_mask, size) | prepare_mask(after_mask, size)).mean())


def neutral_fill(mean: tuple[float, float, float]) -> np.ndarray:
    """The uint8 colour that normalises to ~0: the preprocessing mean."""
    return np.clip(np.round(np.asarray(mean, np.float64) * 255.0), 0, 255).astype(np.uint8)


def patch_validity(robot: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """[rows * cols] float32: 1 where at most MOSTLY_MASKED of the patch's pixels are robot."""
    rows, cols = int(grid[0]), int(grid[1])
    height, width = robot.shape
    ys = (np.arange(height) * rows) // height
    xs = (np.arange(width) * cols) // width
    cell = ys[:, None] * cols + xs[None, :]
    counts = np.bincount(cell.ravel(), minlength=rows * cols)
    masked = np.bincount(cell.ravel(), weights=robot.ravel().astype(np.float64), minlength=rows * cols)
    fraction = masked / np.maximum(counts, 1)
    return (fraction <= MOSTLY_MASKED).astype(np.float32)


def mask_pair(before_rgb: np.ndarray, after_rgb: np.ndarray, before_mask: np.ndarray | None,
              after_mask: np.ndarray | None, size: int, mean: tuple[float, float, float],
              grid: tuple[int, int], mode: str = "union") -> MaskedPair:
    """The union rule on one pair (see the module docstring); mode "none" only resizes.

    Frames may be at camera size or already at S (the node's compact before frame); each mask must have
    its frame's size. RobotMaskError when a mask is unusable or the union covers nearly the whole frame."""
    if mode not in MASK_MODES:
        raise RobotMaskError(f"robot mask mode {mode!r} not in {MASK_MODES}")
    before, after = prepare_frame(before_rgb, size), prepare_frame(after_rgb, size)
    rows, cols = int(grid[0]), int(grid[1])
    if mode == "none":
        return MaskedPair(before, after, np.zeros((size, size), bool), np.ones(rows * cols, np.float32))
    if before_mask is None or after_mask is None:
        raise RobotMaskError("the model takes the robot out of its frames (robot_mask 'union') but "
                             f"{'the before' if before_mask is None else 'the after'} frame has no robot mask")
    robot = prepare_mask(before_mask, size, before_rgb.shape) | prepare_mask(after_mask, size, after_rgb.shape)
    covered = float(robot.mean())
    if covered > NEARLY_ALL_MASKED:
        raise RobotMaskError(f"the robot covers {covered:.0%} of the frames (> {NEARLY_ALL_MASKED:.0%}): nothing "
                             "left to compare")
    fill = neutral_fill(mean)
    before, after = before.copy(), after.copy()
    before[robot] = fill
    after[robot] = fill
    return MaskedPair(before, after, robot, patch_validity(robot, (rows, cols)))


def suppress_masked_patches(before_patches: Any, after_patches: Any, patch_valid: Any | None) -> Any:
    """After-patch tokens with the masked patches replaced by the before ones, so their delta is exactly 0 and
    they rank last in Top-K. Works on numpy arrays and torch tensors alike ([B,N,L] tokens, [B,N] validity),
    so training and the runtimes share it."""
    if patch_valid is None:
        return after_patches
    valid = patch_valid[..., None]
    return after_patches * valid + before_patches * (1 - valid)
