"""L1 sparsity of deltas: an intervention should change few latent mechanisms (SMS hypothesis)."""
from __future__ import annotations

import torch


def l1_sparsity(deltas: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """(1/B) sum_i ||delta_i||_1 over the last dim (the paper's form, `reduction="sum"`), or the mean
    absolute value per dimension (`"mean"`, independent of the latent size)."""
    per_item = deltas.abs().flatten(0, -2)
    if reduction == "sum":
        return per_item.sum(dim=-1).mean()
    if reduction == "mean":
        return per_item.mean()
    raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
