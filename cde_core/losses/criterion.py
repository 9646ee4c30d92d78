"""One criterion for every model: CE + a_contrast * SupCon + a_sparsity * L1 (+ ICM critic, + SMS).

A term is off when its weight is 0. Patch-wise models get their CE, SupCon and L1 per selected patch
(each Top-K patch delta carries its pair's label), as the paper describes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from cde_core.losses.block_sparsity import block_sparsity_loss
from cde_core.losses.sparsity import l1_sparsity
from cde_core.losses.supcon import supervised_contrastive_loss


@dataclass
class LossWeights:
    """Loss weights and forms. Paper: contrast 2.0, sparsity 1.0."""

    ce: float = 1.0
    contrast: float = 2.0
    sparsity: float = 1.0
    temperature: float = 0.1
    l1_reduction: str = "sum"
    icm: float = 0.0
    sms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PairCriterion:
    """Combines the loss terms; returns the total and each weighted part for logging.

    `no_change_index`: the class meaning "nothing happened" is left out of SupCon. Its deltas should have no
    length (L1 and the no-effect threshold see to that), so they have no direction to agree on; with the robot
    masked out they are ~0, and pulling their normalised directions together amplified noise by 1/|delta| and
    collapsed training to one class."""

    def __init__(self, weights: LossWeights | None = None, no_change_index: int | None = None) -> None:
        self.weights = weights or LossWeights()
        self.no_change_index = no_change_index

    def __call__(self, out: dict[str, Any], labels: torch.Tensor,
                 objects: torch.Tensor | None = None, model: Any = None) -> tuple[torch.Tensor, dict[str, float]]:
        w = self.weights
        terms: dict[str, torch.Tensor] = {}
        deltas: list[torch.Tensor] = []
        delta_labels: list[torch.Tensor] = []
        if "global_logits" in out or "patch_logits" in out:  # CDE: losses on deltas
            ce_parts = []
            if "global_logits" in out:
                ce_parts.append(F.cross_entropy(out["global_logits"].float(), labels))
                deltas.append(out["delta_global"])
                delta_labels.append(labels)
            if "patch_logits" in out:
                patch_logits = out["patch_logits"]  # [B, K, C]
                k = patch_logits.shape[1]
                ce_parts.append(F.cross_entropy(patch_logits.flatten(0, 1).float(), labels.repeat_interleave(k)))
                deltas.append(out["delta_topk"].flatten(0, 1))
                delta_labels.append(labels.repeat_interleave(k))
            terms["ce"] = torch.stack(ce_parts).mean()
        else:
            terms["ce"] = F.cross_entropy(out["logits"].float(), labels)
        if deltas and w.contrast > 0:
            features, feature_labels = torch.cat(deltas), torch.cat(delta_labels)
            if self.no_change_index is not None:
                changed = feature_labels != self.no_change_index
                features, feature_labels = features[changed], feature_labels[changed]
            terms["contrast"] = supervised_contrastive_loss(features, feature_labels, w.temperature)
        if deltas and w.sparsity > 0:
            terms["sparsity"] = l1_sparsity(torch.cat(deltas).float(), w.l1_reduction)
        if w.icm > 0 and "critic_logits" in out:
            if objects is None:
                raise ValueError("the ICM critic needs object labels")
            terms["icm"] = F.cross_entropy(out["critic_logits"].float(), objects)
        if w.sms > 0 and model is not None and hasattr(model, "dim_block"):
            terms["sms"] = block_sparsity_loss(out["before_global"].float(), out["after_global"].float(), labels,
                                               model.action_block, model.dim_block)
        weight_of = {"ce": w.ce, "contrast": w.contrast, "sparsity": w.sparsity, "icm": w.icm, "sms": w.sms}
        total = sum(weight_of[name] * value for name, value in terms.items() if weight_of[name] > 0)
        parts = {name: float(value.detach()) for name, value in terms.items()}
        return total, parts
