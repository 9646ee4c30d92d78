"""iBOT's masked image modelling input: block-wise patch masks for the student's global crops.

A fraction `probability` of the images get a mask; each masked image hides a ratio drawn from
`ratio` of its patches as random rectangles (blocks hide whole object parts, which single patches
would leave guessable from their neighbours).
"""
from __future__ import annotations

import math

import torch

_CANDIDATES = 32  # rectangles proposed per image (drawn at once so one RNG call serves the batch)


def block_masks(batch: int, grid: tuple[int, int], probability: float, ratio: tuple[float, float],
                generator: torch.Generator) -> torch.Tensor:
    """Boolean [batch, rows * cols]: True = the student sees the mask token instead of this patch."""
    rows, cols = grid
    n = rows * cols
    masks = torch.zeros(batch, rows, cols, dtype=torch.bool)
    chosen = torch.rand(batch, generator=generator) < probability
    target = (ratio[0] + (ratio[1] - ratio[0]) * torch.rand(batch, generator=generator)) * n
    proposals = torch.rand(batch, _CANDIDATES, 4, generator=generator)
    for i in range(batch):
        if not bool(chosen[i]):
            continue
        goal = max(1, int(round(float(target[i]))))
        for area_u, aspect_u, top_u, left_u in proposals[i].tolist():
            remaining = goal - int(masks[i].sum())
            if remaining <= 0:
                break
            area = 1 + area_u * (remaining - 1)
            aspect = math.exp(math.log(0.3) + aspect_u * (math.log(1 / 0.3) - math.log(0.3)))
            h = max(1, min(rows, int(round(math.sqrt(area * aspect)))))
            w = max(1, min(cols, int(round(math.sqrt(area / aspect)))))
            top = int(top_u * (rows - h + 1))
            left = int(left_u * (cols - w + 1))
            masks[i, top:top + h, left:left + w] = True
    return masks.view(batch, n)
