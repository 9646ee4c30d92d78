"""The backbone being pretrained: a timm model plus iBOT's learnable mask token.

Built from the same names as cde's Backbone (timm names and BACKBONE_ALIASES) so the weights saved from
`encoder.model` load into `Backbone(name, pretrained_file=...)` unchanged. ViTs are built with
`dynamic_img_size` so local crops (smaller than the global size) go through the same weights with the
position embedding resampled; that flag changes no weight name.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from cde_core.models.backbone import BACKBONE_ALIASES, BackboneError


def timm_spec(backbone: str, img_size: int, backbone_kwargs: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """(timm name, create kwargs) of a cde backbone name, exactly as Backbone builds it (num_classes=0)."""
    timm_name, alias_kwargs = BACKBONE_ALIASES.get(backbone, (backbone, {}))
    kwargs: dict[str, Any] = {**alias_kwargs, **(backbone_kwargs or {}), "num_classes": 0}
    if is_vit_name(timm_name):
        kwargs["img_size"] = img_size
    return timm_name, kwargs


def is_vit_name(timm_name: str) -> bool:
    return "vit" in timm_name or "deit" in timm_name


class SSLEncoder(nn.Module):
    """`forward(images, mask=None) -> (pooled [B, D], patches [B, N, D])`; mask [B, N] bool (ViT only)."""

    def __init__(self, backbone: str, img_size: int, backbone_kwargs: dict[str, Any] | None = None,
                 drop_path_rate: float = 0.0, with_mask_token: bool = False) -> None:
        super().__init__()
        import timm

        self.timm_name, self.timm_kwargs = timm_spec(backbone, img_size, backbone_kwargs)
        self.is_vit = is_vit_name(self.timm_name)
        create = dict(self.timm_kwargs)
        if self.is_vit:
            create["dynamic_img_size"] = True
        if drop_path_rate > 0:
            create["drop_path_rate"] = drop_path_rate
        try:
            self.model = timm.create_model(self.timm_name, pretrained=False, **create)
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise BackboneError(f"cannot build backbone {backbone!r} ({self.timm_name}): {exc}") from exc
        if with_mask_token and not self.is_vit:
            raise BackboneError(f"masked patch tokens (iBOT) need a ViT; {backbone!r} is not one: "
                                "set method.ibot_weight=0 for a CNN")
        self.embed_dim = int(self.model.num_features)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, self.embed_dim)) if with_mask_token else None
        if self.mask_token is not None:
            nn.init.trunc_normal_(self.mask_token, std=0.02)

    def grid_size(self, img_size: int) -> tuple[int, int]:
        patch = self.model.patch_embed.patch_size
        return img_size // patch[0], img_size // patch[1]

    def forward(self, images: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_vit:
            features = self.model.forward_features(images)
            patches = features.flatten(2).transpose(1, 2)
            return patches.mean(dim=1), patches
        vit = self.model
        x = vit.patch_embed(images)  # [B, H, W, D] (dynamic size)
        if mask is not None:
            if self.mask_token is None:
                raise BackboneError("a mask was given but the encoder has no mask token (ibot_weight is 0)")
            x = torch.where(mask.view(*x.shape[:-1], 1), self.mask_token.to(x.dtype).view(1, 1, 1, -1), x)
        x = vit._pos_embed(x)
        x = vit.patch_drop(x)
        x = vit.norm_pre(x)
        x = vit.blocks(x)
        x = vit.norm(x)
        pooled = vit.forward_head(x, pre_logits=True)
        return pooled, x[:, vit.num_prefix_tokens:]
