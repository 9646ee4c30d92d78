"""When SupCon and L1 count: off for a warmup, then (optionally) a linear ramp to their configured weights.

From scratch the two auxiliary losses stall cross-entropy (ENVIRONMENT.md), hence the warmup; switching them
on at full weight in one step also reshapes the deltas under a classifier that has just found its
directions, hence the ramp (benchmark v2's "schedule" try, README "Benchmark").
"""
from __future__ import annotations

import copy

from cde_core.losses.criterion import LossWeights


def aux_factor(step: int, warmup_steps: int, ramp_steps: int) -> float:
    """0 before `warmup_steps`, then rising linearly to 1 over `ramp_steps` (1 at once when it is 0)."""
    if warmup_steps < 0 or ramp_steps < 0:
        raise ValueError(f"warmup and ramp steps must be >= 0, got {warmup_steps} and {ramp_steps}")
    if step < warmup_steps:
        return 0.0
    if ramp_steps == 0:
        return 1.0
    return min(1.0, (step - warmup_steps + 1) / ramp_steps)


def aux_weights_at(weights: LossWeights, step: int, warmup_steps: int, ramp_steps: int = 0) -> LossWeights:
    """A copy of `weights` with SupCon and L1 scaled by `aux_factor`; CE (and ICM/SMS) untouched."""
    factor = aux_factor(step, warmup_steps, ramp_steps)
    scheduled = copy.copy(weights)
    scheduled.contrast = weights.contrast * factor
    scheduled.sparsity = weights.sparsity * factor
    return scheduled
