"""Student and teacher networks of DINO/iBOT: encoder + projection heads, and the EMA teacher update.

The student runs every crop (global crops masked for iBOT) in one forward call, as DDP needs one forward
per backward; the teacher runs the unmasked global crops only and is never trained by gradient: it is an
exponential moving average of the student (momentum -> 1 over training).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cde_core.pretrain.config import MethodConfig, PretrainModelConfig
from cde_core.pretrain.encoder import SSLEncoder
from cde_core.pretrain.head import DINOHead
from cde_core.pretrain.time_contrastive_loss import ContrastiveHead


@dataclass
class StudentOutput:
    cls_logits: torch.Tensor | None             # [2 + L, B, K]: global crops first, then local crops (DINO)
    masked_patch_logits: torch.Tensor | None    # [M, Kp]: logits at the masked patches, in mask order
    masked_pixels: torch.Tensor | None          # [M, P*P*3]: predicted pixels at the masked patches (SimMIM)
    global_pooled: torch.Tensor                 # [2, B, D]: pooled tokens of the global crops (KoLeo)
    projections: torch.Tensor | None = None     # [2, B, d]: the global crops' contrastive projections


@dataclass
class TeacherOutput:
    cls_logits: torch.Tensor | None             # [2, B, K] (DINO)
    patch_logits: torch.Tensor | None           # [2, B, N, Kp]


class SelfDistillationNet(nn.Module):
    """Encoder + DINO head (+ iBOT patch head, or the same head when shared; + SimMIM pixel head)."""

    def __init__(self, model_cfg: PretrainModelConfig, method: MethodConfig, drop_path_rate: float) -> None:
        super().__init__()
        self.use_dino = method.dino_weight > 0
        self.use_ibot = method.ibot_weight > 0
        self.use_pixels = method.pixel_weight > 0
        self.use_contrastive = method.contrastive_weight > 0
        self.use_masks = self.use_ibot or self.use_pixels
        self.encoder = SSLEncoder(model_cfg.backbone, model_cfg.img_size, model_cfg.backbone_kwargs,
                                  drop_path_rate=drop_path_rate, with_mask_token=self.use_masks)
        dim = self.encoder.embed_dim
        self.patch_size = int(self.encoder.model.patch_embed.patch_size[0]) if self.use_pixels else 0
        self.pixel_head = nn.Linear(dim, self.patch_size ** 2 * 3) if self.use_pixels else None
        self.contrastive_head = ContrastiveHead(dim, method.contrastive_hidden, method.contrastive_dim) \
            if self.use_contrastive else None
        # Heads only for the terms that are on: DDP refuses parameters that get no gradient.
        self.head: nn.Module | None = None
        if self.use_dino or (self.use_ibot and method.shared_head):
            self.head = DINOHead(dim, method.out_dim, method.head_hidden, method.head_bottleneck, method.head_layers)
        self.patch_head: nn.Module | None = None
        if self.use_ibot:
            if method.shared_head and method.patch_out_dim != method.out_dim:
                raise ValueError("method.shared_head needs method.patch_out_dim == method.out_dim")
            self.patch_head = self.head if method.shared_head else DINOHead(
                dim, method.patch_out_dim, method.head_hidden, method.head_bottleneck, method.head_layers)

    def forward(self, global_crops: torch.Tensor, local_crops: torch.Tensor,
                masks: torch.Tensor | None = None) -> StudentOutput:
        """Student: global_crops [2, B, 3, G, G], local_crops [L, B, 3, l, l], masks [2, B, N]."""
        n_global, batch = global_crops.shape[:2]
        flat_masks = masks.flatten(0, 1) if masks is not None and self.use_masks else None
        pooled, patches = self.encoder(global_crops.flatten(0, 1), flat_masks)
        cls_logits = None
        if self.use_dino and self.head is not None:
            cls = [self.head(pooled).view(n_global, batch, -1)]
            if local_crops.shape[0]:
                local_pooled, _ = self.encoder(local_crops.flatten(0, 1))
                cls.append(self.head(local_pooled).view(local_crops.shape[0], batch, -1))
            cls_logits = torch.cat(cls)
        # Heads run on every patch, then the masked ones are picked: the number of masked patches changes
        # every step, and under bf16 each new matmul shape leaves oneDNN kernels behind (measured: ~7 MB per
        # step of resident memory, to OOM within an hour); fixed shapes keep memory flat.
        masked_logits = masked_pixels = None
        if flat_masks is not None and self.patch_head is not None:
            masked_logits = self.patch_head(patches)[flat_masks]
        if flat_masks is not None and self.pixel_head is not None:
            masked_pixels = self.pixel_head(patches)[flat_masks]
        projections = self.contrastive_head(pooled).view(n_global, batch, -1) \
            if self.contrastive_head is not None else None
        return StudentOutput(cls_logits=cls_logits, masked_patch_logits=masked_logits,
                             masked_pixels=masked_pixels, global_pooled=pooled.view(n_global, batch, -1),
                             projections=projections)

    @torch.no_grad()
    def teacher_forward(self, global_crops: torch.Tensor) -> TeacherOutput:
        n_global, batch = global_crops.shape[:2]
        pooled, patches = self.encoder(global_crops.flatten(0, 1))
        cls = self.head(pooled).view(n_global, batch, -1) if self.use_dino and self.head is not None else None
        patch_logits = None
        if self.patch_head is not None:
            patch_logits = self.patch_head(patches).view(n_global, batch, patches.shape[1], -1)
        return TeacherOutput(cls_logits=cls, patch_logits=patch_logits)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """teacher <- momentum * teacher + (1 - momentum) * student, parameter by parameter."""
    student_params = dict(student.named_parameters())
    for name, param in teacher.named_parameters():
        param.mul_(momentum).add_(student_params[name].detach(), alpha=1 - momentum)
