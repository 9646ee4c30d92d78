"""The causal projector: a small MLP from backbone tokens into the l-dimensional delta space."""
from __future__ import annotations

import torch
from torch import nn


class CausalProjector(nn.Module):
    """Applied token-wise (to the pooled token and to every patch token) with shared weights, so
    pooled and patch deltas live in the same space and the same classifier reads both."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 256, layers: int = 2) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        dim = in_dim
        for _ in range(max(layers - 1, 0)):
            blocks += [nn.Linear(dim, hidden), nn.GELU()]
            dim = hidden
        blocks.append(nn.Linear(dim, out_dim))
        self.net = nn.Sequential(*blocks)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.net(tokens)
