"""The debug overlay: before | after side by side, the Top-K changed patches boxed, the verdict written.

What RViz / rqt_image_view shows of a decision, so an operator can see *where* the model saw a change.
Patch indices are row-major on the model's (rows, cols) grid, laid over each frame as it is (the grid is
scaled to the frame, whatever its size).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

TEXT_BAND = 22  # pixels below the frames for the verdict line
VERDICT_COLOURS: dict[str, tuple[int, int, int]] = {
    "succeeded": (40, 200, 40), "failed": (230, 40, 40), "no_effect": (230, 160, 20), "uncertain": (150, 150, 150),
}
PATCH_COLOUR = (255, 40, 40)


class OverlayError(ValueError):
    """The inputs cannot be drawn (wrong image shape or grid); the message says which."""


def _check_rgb(name: str, image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape[:2]:
        raise OverlayError(f"{name} must be a non-empty HxWx3 uint8 RGB array, got {image.shape} {image.dtype}")


def patch_box(index: int, grid: tuple[int, int], height: int, width: int) -> tuple[float, float, float, float]:
    """Pixel box (x0, y0, x1, y1) of row-major patch `index` on a (rows, cols) grid over an HxW frame."""
    rows, cols = grid
    r, c = divmod(int(index), cols)
    ph, pw = height / rows, width / cols
    return c * pw, r * ph, (c + 1) * pw - 1, (r + 1) * ph - 1


def render_overlay(before: np.ndarray, after: np.ndarray, grid: tuple[int, int], patches: Sequence[int],
                   text: str, verdict: str = "", colour: tuple[int, int, int] = PATCH_COLOUR) -> np.ndarray:
    """-> (max(H) + TEXT_BAND) x (W_before + W_after) x 3 uint8 RGB. Indices outside the grid are skipped
    (a model/grid mismatch must not take the node down); the text line is coloured by `verdict`."""
    from PIL import Image, ImageDraw

    _check_rgb("before", before)
    _check_rgb("after", after)
    rows, cols = int(grid[0]), int(grid[1])
    if rows <= 0 or cols <= 0:
        raise OverlayError(f"patch grid must be positive, got {grid}")
    height = max(before.shape[0], after.shape[0])
    canvas = Image.new("RGB", (before.shape[1] + after.shape[1], height + TEXT_BAND), (0, 0, 0))
    canvas.paste(Image.fromarray(before), (0, 0))
    canvas.paste(Image.fromarray(after), (before.shape[1], 0))
    draw = ImageDraw.Draw(canvas)
    for offset, img in ((0, before), (before.shape[1], after)):
        for index in patches:
            if not 0 <= int(index) < rows * cols:
                continue
            x0, y0, x1, y1 = patch_box(int(index), (rows, cols), img.shape[0], img.shape[1])
            draw.rectangle([offset + x0, y0, offset + x1, y1], outline=colour, width=2)
    draw.text((4, height + 4), text, fill=VERDICT_COLOURS.get(verdict.lower(), (255, 255, 255)))
    return np.asarray(canvas)
