"""iBOT's masked patch-token distillation: the student sees a global crop with some patches replaced by a
mask token and must predict, at those positions, the teacher's distribution for the unmasked patch.

This trains the patch tokens themselves (DINO alone only trains the pooled token), and the CDE head
reads patch tokens: its Top-K patch deltas come from them.
"""
from __future__ import annotations

import torch
from torch import nn

from cde_core.pretrain.centering import TeacherCenter


class IBOTPatchLoss(nn.Module):
    def __init__(self, patch_out_dim: int, student_temp: float = 0.1, center_momentum: float = 0.9,
                 centering: str = "ema") -> None:
        super().__init__()
        self.student_temp = student_temp
        self.centering = TeacherCenter(patch_out_dim, center_momentum, centering)

    def forward(self, student_masked_logits: torch.Tensor, teacher_patch_logits: torch.Tensor,
                masks: torch.Tensor, teacher_temp: float) -> torch.Tensor:
        """student_masked_logits [M, K] (the student's logits at the masked patches, in `masks` order),
        teacher_patch_logits [2, B, N, K] (every patch of the same, unmasked crops), masks [2, B, N] bool.

        Per image: mean cross-entropy over its masked patches; then the mean over all images (an
        unmasked image adds 0, as in iBOT). The centre is updated from every teacher patch.
        """
        first = not bool(self.centering.initialized)
        if first:  # centre the very first targets too
            self.centering.update(teacher_patch_logits)
        targets = self.centering.teacher_probs(teacher_patch_logits, teacher_temp)[masks]     # [M, K]
        log_probs = torch.log_softmax(student_masked_logits.float() / self.student_temp, dim=-1)
        per_patch = -(targets * log_probs).sum(dim=-1)                                        # [M]
        counts = masks.sum(dim=-1, keepdim=True).expand_as(masks)[masks].float()              # [M]
        if not first:
            self.centering.update(teacher_patch_logits)
        return (per_patch / counts).sum() / (masks.shape[0] * masks.shape[1])
