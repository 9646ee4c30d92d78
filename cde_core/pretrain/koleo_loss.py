"""DINOv2's KoLeo regulariser: spread the student's pooled features within a batch.

-mean_i log(min_{j != i} ||x_i - x_j||) on L2-normalised features (the Kozachenko-Leonenko entropy
estimator). Frames from one robot scene look alike, so a random ViT maps them to nearly the same pooled
token and the DINO targets start near uniform; pushing nearest neighbours apart counters that directly.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class KoLeoLoss(nn.Module):
    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features [B, D] (B >= 2) -> scalar."""
        if features.shape[0] < 2:
            raise ValueError("KoLeo needs at least two samples per batch")
        x = F.normalize(features.float(), dim=-1, eps=self.eps)
        with torch.no_grad():
            sims = x @ x.T
            sims.fill_diagonal_(-2.0)
            nearest = sims.argmax(dim=1)
        distances = (x - x[nearest]).norm(dim=-1)
        return -torch.log(distances + self.eps).mean()
