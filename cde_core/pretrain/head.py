"""DINO's projection head: MLP -> L2-normalised bottleneck -> weight-normalised prototypes layer.

The prototypes' weight rows are normalised (DINO's weight norm with its gain fixed to 1), so the output
logits are cosine similarities to `out_dim` learned prototypes; iBOT applies the same head to patch tokens.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DINOHead(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 512, bottleneck_dim: int = 128,
                 layers: int = 3) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"head layers must be >= 1, got {layers}")
        blocks: list[nn.Module] = []
        dim = in_dim
        for _ in range(layers - 1):
            blocks += [nn.Linear(dim, hidden_dim), nn.GELU()]
            dim = hidden_dim
        blocks.append(nn.Linear(dim, bottleneck_dim))
        self.mlp = nn.Sequential(*blocks)
        self.prototypes = nn.Parameter(torch.empty(out_dim, bottleneck_dim))
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.mlp:
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        nn.init.trunc_normal_(self.prototypes, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[..., in_dim] -> logits [..., out_dim] (cosine similarities to the prototypes)."""
        z = F.normalize(self.mlp(x), dim=-1)
        return F.linear(z, F.normalize(self.prototypes, dim=-1))
