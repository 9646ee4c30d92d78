"""Per-step schedules of DINO/iBOT: warmup + cosine learning rate, cosine weight decay and teacher
momentum (towards 1: the teacher freezes as the student converges), linear teacher-temperature warmup."""
from __future__ import annotations

import math


def cosine(start: float, end: float, step: int, total: int) -> float:
    if total <= 0:
        return end
    progress = min(max(step / total, 0.0), 1.0)
    return end + 0.5 * (start - end) * (1 + math.cos(math.pi * progress))


def warmup_cosine(base: float, final: float, step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    return cosine(base, final, step - warmup, total - warmup)


def linear_warmup(start: float, end: float, step: int, warmup: int) -> float:
    if warmup <= 0 or step >= warmup:
        return end
    return start + (end - start) * step / warmup
