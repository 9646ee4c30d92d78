"""The features a model's classifier sees (vanilla's last hidden layer), read with a forward hook.

Vanilla classifies an MLP feature of [p1, p2 - p1]; its `PairOutput` carries only logits and the raw
delta, so to ask whether that hidden feature is organised by action (as CDE's delta should be) the
input of `model.classifier` is captured during an ordinary `predict` pass, without touching the model.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from cde_core.eval.predict import Predictions, predict
from cde_core.models import PairModel


def predict_with_penultimate(model: PairModel, dataset: Dataset, batch_size: int = 64) -> tuple[Predictions, np.ndarray]:
    """`predict` plus the input of `model.classifier` per pair [N, H].

    Raises TypeError for a model without a `classifier` module, ValueError for one whose classifier sees
    anything but one [B, H] batch per forward (CDE's patch head calls it per patch too: use its `deltas`)."""
    classifier = getattr(model, "classifier", None)
    if not isinstance(classifier, torch.nn.Module):
        raise TypeError(f"{type(model).__name__} has no `classifier` module whose input could be read")
    captured: list[np.ndarray] = []

    def keep_input(_module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        captured.append(args[0].detach().float().cpu().numpy())

    handle = classifier.register_forward_pre_hook(keep_input)
    try:
        pred = predict(model, dataset, batch_size=batch_size)
    finally:
        handle.remove()
    if any(c.ndim != 2 for c in captured) or sum(len(c) for c in captured) != len(pred.labels):
        raise ValueError(f"{type(model).__name__}.classifier saw inputs of shapes {[c.shape for c in captured]} "
                         f"for {len(pred.labels)} pairs: not one hidden feature per pair")
    features = np.concatenate(captured) if captured else np.zeros((0, 0), np.float32)
    return pred, features
