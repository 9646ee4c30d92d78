"""The debug overlay: before | after side by side, the Top-K changed patches boxed, the verdict written."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def render_overlay(before: np.ndarray, after: np.ndarray, grid: tuple[int, int], patches: Sequence[int],
                   text: str, colour: tuple[int, int, int] = (255, 40, 40)) -> np.ndarray:
    from PIL import Image, ImageDraw

    height = max(before.shape[0], after.shape[0])
    width = before.shape[1] + after.shape[1]
    canvas = Image.new("RGB", (width, height + 22), (0, 0, 0))
    canvas.paste(Image.fromarray(before), (0, 0))
    canvas.paste(Image.fromarray(after), (before.shape[1], 0))
    draw = ImageDraw.Draw(canvas)
    rows, cols = grid
    for offset, img in ((0, before), (before.shape[1], after)):
        ph, pw = img.shape[0] / rows, img.shape[1] / cols
        for index in patches:
            r, c = divmod(int(index), cols)
            if 0 <= r < rows:
                draw.rectangle([offset + c * pw, r * ph, offset + (c + 1) * pw - 1, (r + 1) * ph - 1],
                               outline=colour, width=2)
    draw.text((4, height + 4), text, fill=(255, 255, 255))
    return np.asarray(canvas)
