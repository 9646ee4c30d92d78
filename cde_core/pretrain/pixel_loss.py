"""Masked patch pixel regression (SimMIM, Xie et al. 2022; targets normalised per patch as MAE's norm_pix).

The student sees the mask token at the masked patches of its global crops and a linear head predicts those
patches' pixels. Unlike self-distillation this target cannot collapse: it is the image itself. On a few
thousand frames of one robot scene DINO's teacher drifted to uniform outputs (README "Pretraining");
reconstruction keeps the patch tokens tied to what is in the patch, which is what patch deltas read.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """[B, 3, H, W] -> [B, N, patch * patch * 3], patches in row-major order (the ViT token order)."""
    b, c, h, w = images.shape
    if h % patch or w % patch:
        raise ValueError(f"image {h}x{w} is not a multiple of the patch size {patch}")
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // patch) * (w // patch), patch * patch * c)


def masked_pixel_loss(predicted: torch.Tensor, images: torch.Tensor, masks: torch.Tensor, patch: int,
                      eps: float = 1e-6) -> torch.Tensor:
    """Mean squared error at the masked patches. predicted [M, P*P*3] in mask order; images [B, 3, H, W];
    masks [B, N] bool with M True entries. Each target patch is normalised to zero mean, unit variance."""
    target = patchify(images.float(), patch)[masks]
    mean = target.mean(dim=-1, keepdim=True)
    var = target.var(dim=-1, keepdim=True)
    target = (target - mean) / (var + eps).sqrt()
    return F.mse_loss(predicted.float(), target)
