"""Causal Delta Embedding models (Alimisis & Diou, ICLR 2026).

Model A (global): the delta of the projected pooled/CLS token is the sole input of a linear action
classifier. Model B (patch-wise): per-patch deltas, the Top-K by L2 norm kept, each classified by the
same classifier (losses per selected patch); at inference the selected patches' logits are averaged
(the paper does not say how it aggregates; averaging logits of a linear classifier equals classifying
the mean selected delta). The combined model averages the global and patch logits.
A linear classifier keeps "action = direction in delta space", which is what makes antonym deltas
anti-parallel. With `norm_feature` it also reads the delta's L2 norm (one extra input), so that "none"
can mean "a small delta" instead of resting on the biases alone; the directions are read as before.
"""
from __future__ import annotations

import torch
from torch import nn

from cde_core.models.config import ModelConfig
from cde_core.models.pair_model import PairModel


class CDEModel(PairModel):
    def __init__(self, config: ModelConfig, use_global: bool, use_patch: bool) -> None:
        super().__init__(config)
        if not (use_global or use_patch):
            raise ValueError("a CDE model needs the global delta, the patch deltas, or both")
        self.use_global = use_global
        self.use_patch = use_patch
        self.norm_feature = config.norm_feature
        self.classifier = nn.Linear(config.latent_dim + int(config.norm_feature), config.num_classes)

    def _classifier_input(self, delta: torch.Tensor) -> torch.Tensor:
        if not self.norm_feature:
            return delta
        return torch.cat([delta, delta.norm(dim=-1, keepdim=True)], dim=-1)

    def classify(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        result: dict[str, torch.Tensor] = {}
        parts: list[torch.Tensor] = []
        if self.use_global:
            result["global_logits"] = self.classifier(self._classifier_input(out["delta_global"]))
            parts.append(result["global_logits"])
        if self.use_patch:
            result["patch_logits"] = self.classifier(self._classifier_input(out["delta_topk"]))  # [B, K, C]
            parts.append(result["patch_logits"].mean(dim=1))
        result["logits"] = parts[0] if len(parts) == 1 else (parts[0] + parts[1]) / 2
        return result
