"""Any timm image model as a token encoder: one pooled token and a grid of patch tokens.

ViTs give their CLS/pooled token and patch tokens; CNNs give global-average pooling and the cells of
their last feature map as "patches". Pretrained weights come from a local file through timm's
pretrained-config overlay (the route real DINO weights take: `vit_small_patch16_224.dino`).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

_LOG = logging.getLogger(__name__)

# Small named variants built from timm's VisionTransformer with other sizes.
BACKBONE_ALIASES: dict[str, tuple[str, dict[str, Any]]] = {
    # For tests: ~30k parameters, runs in milliseconds.
    "cde_vit_test": ("vit_tiny_patch16_224", dict(patch_size=8, embed_dim=32, depth=2, num_heads=2)),
    # The CPU benchmark's backbone: patch 8 keeps a useful token grid at 64-96 px.
    "cde_vit_small_p8": ("vit_tiny_patch16_224", dict(patch_size=8, embed_dim=192, depth=6, num_heads=3)),
}


class BackboneError(RuntimeError):
    """The backbone could not be built or its weights could not be loaded."""


class Backbone(nn.Module):
    """Wraps a timm model; `forward(x) -> (pooled[B,D], patches[B,N,D])`."""

    def __init__(self, name: str, img_size: int, pretrained_file: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__()
        import timm

        timm_name, alias_kwargs = BACKBONE_ALIASES.get(name, (name, {}))
        create_kwargs: dict[str, Any] = {**alias_kwargs, **kwargs, "num_classes": 0}
        self.is_vit = "vit" in timm_name or "deit" in timm_name
        if self.is_vit:
            create_kwargs["img_size"] = img_size
        if pretrained_file is not None:
            path = Path(pretrained_file)
            if not path.is_file():
                raise BackboneError(f"pretrained_file {path} does not exist; give a .safetensors or .pth "
                                    "state_dict of the backbone (see README: 'Backbone weights')")
            create_kwargs.update(pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
        elif os.environ.get("HF_HUB_OFFLINE") != "1" and kwargs.get("pretrained"):
            _LOG.warning("downloading pretrained weights for %s from the hub", timm_name)
        try:
            self.model = timm.create_model(timm_name, **create_kwargs)
        except (RuntimeError, KeyError, ValueError) as exc:
            raise BackboneError(f"cannot build backbone {name!r} ({timm_name}): {exc}") from exc
        self.embed_dim: int = int(self.model.num_features)
        with torch.no_grad():
            was_training = self.model.training
            self.model.eval()
            _, patches = self._tokens(torch.zeros(1, 3, img_size, img_size))
            self.model.train(was_training)
        self.num_patches: int = int(patches.shape[1])
        self.grid_size: tuple[int, int] = self._grid(self.num_patches)

    def _grid(self, num_patches: int) -> tuple[int, int]:
        patch_embed = getattr(self.model, "patch_embed", None)
        grid = getattr(patch_embed, "grid_size", None)
        if grid is not None and grid[0] * grid[1] == num_patches:
            return int(grid[0]), int(grid[1])
        side = int(round(num_patches ** 0.5))
        return (side, num_patches // side) if side * (num_patches // side) == num_patches else (1, num_patches)

    def _tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.model.forward_features(x)
        if features.ndim == 4:  # CNN: [B, C, H, W] -> cells as patches
            patches = features.flatten(2).transpose(1, 2)
            return patches.mean(dim=1), patches
        prefix = int(getattr(self.model, "num_prefix_tokens", 1))
        pooled = self.model.forward_head(features, pre_logits=True)
        return pooled, features[:, prefix:]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._tokens(x)
