"""Causal Triplet's SMS regulariser: before and after embeddings agree on every latent block except
the block of the action that happened."""
from __future__ import annotations

import torch


def block_sparsity_loss(before: torch.Tensor, after: torch.Tensor, labels: torch.Tensor,
                        action_block: torch.Tensor, dim_block: torch.Tensor) -> torch.Tensor:
    """Mean squared difference over the dimensions outside the action's block.

    before/after [B,L]; labels [B] class ids; action_block [C] block per class; dim_block [L] block per
    latent dimension."""
    keep = dim_block.unsqueeze(0) != action_block[labels].unsqueeze(1)  # [B, L]
    sq = (after - before).pow(2) * keep
    return sq.sum() / keep.sum().clamp(min=1)
