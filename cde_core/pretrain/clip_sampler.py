"""Batches of `frames_per_clip` moments from each of several clips (for the time-contrastive objective).

Deterministic in (seed, step, rank), so a resumed run draws the batches it would have drawn, with no
sampler state to save. A clip shorter than `frames_per_clip` gives all its frames and the batch is filled
from further clips; every batch has exactly `batch` distinct frames.
"""
from __future__ import annotations

from typing import Sequence

import torch


def clip_batch(members: Sequence[torch.Tensor], batch: int, frames_per_clip: int, seed: int) -> torch.Tensor:
    """[batch] frame indices: clips in a seeded random order, up to frames_per_clip random frames of each."""
    total = sum(len(m) for m in members)
    if batch > total:
        raise ValueError(f"a batch of {batch} frames needs more than the bank's {total}")
    if frames_per_clip < 1:
        raise ValueError(f"frames_per_clip must be >= 1, got {frames_per_clip}")
    generator = torch.Generator().manual_seed(seed)
    picked: list[torch.Tensor] = []
    count = 0
    for clip in torch.randperm(len(members), generator=generator).tolist():
        frames = members[clip]
        take = min(frames_per_clip, len(frames), batch - count)
        picked.append(frames[torch.randperm(len(frames), generator=generator)[:take]])
        count += take
        if count == batch:
            break
    return torch.cat(picked)
