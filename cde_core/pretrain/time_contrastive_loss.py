"""Time-contrastive InfoNCE on the pooled token (SimCLR's NT-Xent, Chen et al. 2020, with the multi-frame
negatives of Time-Contrastive Networks, Sermanet et al. 2018).

Each frame is seen through two augmented views; a view must pick out its partner among every other view
in the batch. Batches hold several moments of each clip (`optim.clip_frames`), so the hardest negatives are
the same scene at another time: same table, same colours, same camera; only the arm and the object's
state differ. Telling those apart is exactly what an embedding delta between a before and an after frame
needs, and the pooled token (the one CDE's global delta reads) is trained directly. Measured on
`runs/sim_core` (README "Pretraining"): SimMIM and crop-invariant DINO targets did not beat a random ViT's
pooled token on the delta probe; this objective does.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ContrastiveHead(nn.Module):
    """SimCLR's projection MLP: pooled [.., D] -> [.., out_dim] (dropped after pretraining)."""

    def __init__(self, in_dim: int, hidden_dim: int = 512, out_dim: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def time_contrastive_loss(view_a: torch.Tensor, view_b: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """NT-Xent over 2B views: view_a[i] and view_b[i] [B, d] are the positives, all other views negatives."""
    if view_a.shape != view_b.shape or view_a.ndim != 2:
        raise ValueError(f"views must both be [B, d]; got {tuple(view_a.shape)} and {tuple(view_b.shape)}")
    batch = view_a.shape[0]
    z = F.normalize(torch.cat([view_a, view_b]).float(), dim=-1)
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(2 * batch, dtype=torch.bool, device=z.device), float("-inf"))
    partner = torch.cat([torch.arange(batch, 2 * batch), torch.arange(batch)]).to(z.device)
    return F.cross_entropy(logits, partner)
