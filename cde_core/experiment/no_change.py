"""What a model calls "nothing changed": its answer for an identical pair, and how large `none` pairs' deltas are.

Benchmark v2's held-out objects' `none` pairs were mostly called open/close although their masked frames
differ in under 1 % of the pixels. A linear classifier on deltas can answer "none" for a near-zero delta
only through its biases (W*0 + b = b), so an identical pair shows which class an unchanged scene gets; the
delta norms per group and how often each group is called none then tell whether "none" is a small-delta
decision or a direction of its own (benchmark v2, masked: a direction, README "Benchmark").
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from cde_core.models import PairModel


@torch.inference_mode()
def identical_pair_predictions(model: PairModel, dataset: Dataset, batch_size: int = 64) -> np.ndarray:
    """The class index the model gives each pair's before frame compared with itself (fp32)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    preds: list[np.ndarray] = []
    for before, _after, _labels, _objects, patch_valid in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        before = before.to(device)
        out = model(before, before, patch_valid.to(device))
        preds.append(out.logits.float().argmax(dim=1).cpu().numpy())
    model.train(was_training)
    return np.concatenate(preds) if preds else np.zeros((0,), np.int64)


def no_change_summary(preds: np.ndarray, identical: np.ndarray, delta_norms: np.ndarray | None, labels: np.ndarray,
                      roles: Sequence[str], none_index: int) -> dict[str, object]:
    """Share of identical pairs called none, and per group (role x none/change): pairs, median delta norm,
    share called none. `roles` are the pairs' roles in the split ("test", "ood"); `delta_norms` None for a
    model without a delta (vanilla)."""
    roles_a = np.asarray(roles)
    is_none = np.asarray(labels) == none_index
    groups: dict[str, dict[str, float | int | None]] = {}
    for role in sorted(set(roles)):
        for name, mask in (("none", is_none), ("change", ~is_none)):
            chosen = (roles_a == role) & mask
            n = int(chosen.sum())
            groups[f"{role} {name}"] = {
                "pairs": n,
                "median_delta_norm": float(np.median(delta_norms[chosen])) if n and delta_norms is not None else None,
                "called_none": float(np.mean(preds[chosen] == none_index)) if n else None}
    return {"identical_called_none": float(np.mean(identical == none_index)) if len(identical) else None,
            "groups": groups}
