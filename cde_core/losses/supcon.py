"""Supervised contrastive loss (Khosla et al., 2020) on delta embeddings: the invariance term.

Deltas of the same action are pulled together whatever the object, others pushed apart. Deltas are
L2-normalised first, so the term constrains directions, not magnitudes (magnitudes are left to the
L1 term and to the no-effect calibration).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


MIN_NORM = 1e-6


def supervised_contrastive_loss(features: torch.Tensor, labels: torch.Tensor,
                                temperature: float = 0.1, min_norm: float = MIN_NORM) -> torch.Tensor:
    """Mean over anchors that have at least one positive of -mean_p log softmax_a(sim(a, p) / T).

    features [N, L], labels [N]. Rows shorter than `min_norm` are left out: a delta of (almost) no length has
    no direction, and normalising it multiplies its gradient by up to 1/eps (1e12). Masked-out patches have
    exactly zero deltas (robot_mask.py), and with them in the term training collapsed to one class.
    Returns 0 (with a graph) when no anchor has a positive.
    """
    if features.ndim != 2 or labels.shape != features.shape[:1]:
        raise ValueError(f"features [N,L] and labels [N] expected, got {tuple(features.shape)}, "
                         f"{tuple(labels.shape)}")
    keep = features.float().norm(dim=-1) > min_norm
    if not bool(keep.all()):
        if int(keep.sum()) < 2:
            return features.sum() * 0.0
        features, labels = features[keep], labels[keep]
    z = F.normalize(features.float(), dim=-1)
    logits = z @ z.T / temperature
    n = z.shape[0]
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (labels.unsqueeze(0) == labels.unsqueeze(1)) & ~self_mask
    pos_count = positives.sum(dim=1)
    has_pos = pos_count > 0
    if not bool(has_pos.any()):
        return features.sum() * 0.0
    pos_log_prob = log_prob.masked_fill(~positives, 0.0).sum(dim=1)
    return -(pos_log_prob[has_pos] / pos_count[has_pos]).mean()
