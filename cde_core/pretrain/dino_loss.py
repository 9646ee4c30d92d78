"""DINO's self-distillation loss on the pooled (CLS) token.

Cross-entropy between the centred, sharpened teacher distribution of each global crop and the student's
distribution of every other crop (global and local): local-to-global correspondence teaches features
that describe the whole scene from a part of it.
"""
from __future__ import annotations

import torch
from torch import nn

from cde_core.pretrain.centering import TeacherCenter


class DINOLoss(nn.Module):
    def __init__(self, out_dim: int, student_temp: float = 0.1, center_momentum: float = 0.9,
                 centering: str = "ema") -> None:
        super().__init__()
        self.student_temp = student_temp
        self.centering = TeacherCenter(out_dim, center_momentum, centering)
        self.last_entropies: tuple[float, float] = (0.0, 0.0)  # teacher (per image, of the mean), for logs

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                teacher_temp: float) -> torch.Tensor:
        """student_logits [V, B, K] (the 2 global crops first), teacher_logits [2, B, K] -> scalar."""
        first = not bool(self.centering.initialized)
        if first:  # centre the very first targets too
            self.centering.update(teacher_logits)
        targets = self.centering.teacher_probs(teacher_logits, teacher_temp)
        self.last_entropies = self.centering.entropies(targets)
        log_probs = torch.log_softmax(student_logits.float() / self.student_temp, dim=-1)
        total = student_logits.new_zeros((), dtype=torch.float32)
        terms = 0
        for t in range(targets.shape[0]):
            for v in range(log_probs.shape[0]):
                if v == t:
                    continue  # the same view: nothing to learn
                total = total + (-(targets[t] * log_probs[v]).sum(dim=-1)).mean()
                terms += 1
        if not first:
            self.centering.update(teacher_logits)
        return total / max(terms, 1)
