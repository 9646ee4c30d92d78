"""How the teacher's logits become targets, shared by DINO's and iBOT's losses.

- `ema` (DINO, iBOT): subtract an EMA of the teacher's mean logits (averaged over ranks under DDP), then
  sharpen with a low temperature. Centring alone collapses to uniform, sharpening alone to one prototype.
  The first update sets the centre to the first batch's mean (from zero, the first targets would be
  uncentred and their loss artificially low).
- `sinkhorn` (SwAV, DINOv2): a few Sinkhorn-Knopp iterations make the batch's targets use every prototype
  equally (equipartition), which prevents the uniform collapse that small, low-diversity frame sets (one
  robot scene, a few thousand frames) push EMA centring into.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


CENTERING_MODES = ("ema", "sinkhorn")


@torch.no_grad()
def sinkhorn_knopp(scores: torch.Tensor, iterations: int = 3) -> torch.Tensor:
    """[n, K] scores -> [n, K] rows that sum to 1, with prototype totals equalised over the batch (all ranks)."""
    q = torch.exp(scores - scores.max()).T  # [K, n]; the shift cancels in the normalisations
    n = torch.tensor(float(q.shape[1]))
    total = q.sum()
    if dist.is_initialized():
        dist.all_reduce(n)
        dist.all_reduce(total)
    q /= total
    k = q.shape[0]
    for _ in range(iterations):
        rows = q.sum(dim=1, keepdim=True)
        if dist.is_initialized():
            dist.all_reduce(rows)
        q /= rows.clamp(min=1e-30) * k
        q /= q.sum(dim=0, keepdim=True).clamp(min=1e-30) * n
    return (q * n).T


class TeacherCenter(nn.Module):
    def __init__(self, dim: int, momentum: float, mode: str = "ema", sinkhorn_iterations: int = 3) -> None:
        super().__init__()
        if mode not in CENTERING_MODES:
            raise ValueError(f"centering {mode!r} not in {CENTERING_MODES}")
        self.mode = mode
        self.sinkhorn_iterations = sinkhorn_iterations
        self.momentum = momentum
        self.register_buffer("center", torch.zeros(dim))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    def teacher_probs(self, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
        """Centred, sharpened teacher distribution (no gradient), same shape as the logits."""
        if self.mode == "sinkhorn":
            flat = teacher_logits.detach().float().reshape(-1, teacher_logits.shape[-1])
            return sinkhorn_knopp(flat / temperature, self.sinkhorn_iterations).view_as(teacher_logits)
        return torch.softmax((teacher_logits.float() - self.center) / temperature, dim=-1).detach()

    @staticmethod
    @torch.no_grad()
    def entropies(probs: torch.Tensor) -> tuple[float, float]:
        """(mean per-sample entropy, entropy of the mean): collapse monitors. Per-sample entropy near
        ln K = uniform collapse; entropy of the mean near 0 = one-prototype collapse."""
        flat = probs.reshape(-1, probs.shape[-1])
        per_sample = -(flat * torch.log(flat + 1e-12)).sum(dim=-1).mean()
        mean = flat.mean(dim=0)
        return float(per_sample), float(-(mean * torch.log(mean + 1e-12)).sum())

    @torch.no_grad()
    def update(self, teacher_logits: torch.Tensor) -> None:
        flat = teacher_logits.detach().float().reshape(-1, teacher_logits.shape[-1])
        total = flat.sum(dim=0)
        count = torch.tensor(float(flat.shape[0]))
        if dist.is_initialized():
            dist.all_reduce(total)
            dist.all_reduce(count)
        if not bool(self.initialized):
            self.center.copy_(total / count)
            self.initialized.fill_(True)
        else:
            self.center.mul_(self.momentum).add_(total / count, alpha=1 - self.momentum)
