"""The SupCon/L1 schedule: off during the warmup, a linear ramp after it, CE never scaled; and training uses it."""
from __future__ import annotations

import pytest

from cde_core.losses import LossWeights
from cde_core.losses.aux_schedule import aux_factor, aux_weights_at


def test_off_during_warmup_then_at_once_without_a_ramp() -> None:
    assert [aux_factor(s, 3, 0) for s in range(5)] == [0.0, 0.0, 0.0, 1.0, 1.0]


def test_linear_ramp_after_warmup_reaches_full_weight_and_stays() -> None:
    assert [aux_factor(s, 2, 4) for s in range(8)] == [0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_weights_scaled_are_only_supcon_and_l1() -> None:
    weights = LossWeights(ce=1.0, contrast=0.5, sparsity=0.01, icm=0.1)
    half = aux_weights_at(weights, step=5, warmup_steps=4, ramp_steps=4)  # factor 0.5
    assert (half.ce, half.contrast, half.sparsity, half.icm) == (1.0, 0.25, 0.005, 0.1)
    assert (weights.contrast, weights.sparsity) == (0.5, 0.01)  # the configured weights are not changed


def test_negative_steps_are_rejected() -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        aux_factor(0, -1, 0)
    with pytest.raises(ValueError, match="must be >= 0"):
        aux_factor(0, 0, -2)
