"""The shared shape of every pair model: encode each image once, then compare two embeddings.

Splitting `encode` from `head` is what lets the node embed the before frame while the arm moves and
put only the after frame on the critical path; the exported ONNX graphs follow the same split.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from cde_core.models.backbone import Backbone
from cde_core.models.config import ModelConfig
from cde_core.models.effect_magnitude import check_effect_magnitude, effect_magnitude
from cde_core.models.projector import CausalProjector
from cde_core.robot_mask import suppress_masked_patches


class PairOutput(NamedTuple):
    """What inference needs; a tuple of tensors so it exports as graph outputs."""

    logits: torch.Tensor  # [B, C]
    delta_global: torch.Tensor  # [B, L]
    topk_indices: torch.Tensor  # [B, K] int64, row-major patch indices
    effect_magnitude: torch.Tensor  # [B]


def topk_changed_patches(delta_patches: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices [B,K] of the K patch deltas with the largest L2 norm, and those deltas [B,K,L]."""
    k = min(k, delta_patches.shape[1])
    indices = delta_patches.norm(dim=-1).topk(k, dim=1).indices
    selected = torch.gather(delta_patches, 1, indices.unsqueeze(-1).expand(-1, -1, delta_patches.shape[-1]))
    return indices, selected


class PairModel(nn.Module):
    """Backbone + causal projector; subclasses define how two embeddings become logits."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        check_effect_magnitude(config.effect_magnitude)
        self.config = config
        self.backbone = Backbone(config.backbone, config.img_size, config.pretrained_file,
                                 **config.backbone_kwargs)
        self.projector = CausalProjector(self.backbone.embed_dim, config.latent_dim,
                                         config.projector_hidden, config.projector_layers)
        if config.freeze_backbone:
            self.backbone.requires_grad_(False)

    @property
    def grid_size(self) -> tuple[int, int]:
        return self.backbone.grid_size

    @property
    def top_k(self) -> int:
        return min(self.config.top_k, self.backbone.num_patches)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """phi(x): projected pooled token [B,L] and projected patch tokens [B,N,L]."""
        pooled, patches = self.backbone(images)
        return self.projector(pooled), self.projector(patches)

    def head(self, before_global: torch.Tensor, before_patches: torch.Tensor,
             after_global: torch.Tensor, after_patches: torch.Tensor) -> PairOutput:
        out = self.head_train(before_global, before_patches, after_global, after_patches)
        return PairOutput(out["logits"], out["delta_global"], out["topk_indices"], out["effect_magnitude"])

    def head_train(self, before_global: torch.Tensor, before_patches: torch.Tensor,
                   after_global: torch.Tensor, after_patches: torch.Tensor,
                   patch_valid: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Everything the criterion may use; subclasses fill in "logits" and their own terms.

        `patch_valid` [B,N] (1 = may enter Top-K): mostly-robot patches get a zero delta (robot_mask.py); the
        exported head takes tokens already suppressed by the runtime, with the same function."""
        after_patches = suppress_masked_patches(before_patches, after_patches, patch_valid)
        delta_global = after_global - before_global
        topk_indices, delta_topk = topk_changed_patches(after_patches - before_patches, self.top_k)
        out = {
            "delta_global": delta_global,
            "delta_topk": delta_topk,
            "topk_indices": topk_indices,
            "effect_magnitude": effect_magnitude(self.config.effect_magnitude, before_global, after_global,
                                                 delta_topk),
            "before_global": before_global,
            "after_global": after_global,
        }
        out.update(self.classify(out))
        return out

    def classify(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, before: torch.Tensor, after: torch.Tensor, patch_valid: torch.Tensor | None = None) -> PairOutput:
        before_global, before_patches = self.encode(before)
        after_global, after_patches = self.encode(after)
        after_patches = suppress_masked_patches(before_patches, after_patches, patch_valid)
        return self.head(before_global, before_patches, after_global, after_patches)

    def forward_train(self, before: torch.Tensor, after: torch.Tensor,
                      patch_valid: torch.Tensor | None = None) -> dict[str, Any]:
        """Like forward, plus the training-only tensors (per-patch terms, critic, latent blocks).

        Both images go through the backbone as one batch (one pass, same normalisation statistics)."""
        batch = before.shape[0]
        glob, patches = self.encode(torch.cat([before, after], dim=0))
        return self.head_train(glob[:batch], patches[:batch], glob[batch:], patches[batch:], patch_valid)
