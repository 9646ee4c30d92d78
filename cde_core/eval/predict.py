"""Run a model over a PairDataset and collect what the metrics and plots need."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from cde_core.models import PairModel


@dataclass
class Predictions:
    labels: np.ndarray
    preds: np.ndarray
    probs: np.ndarray
    magnitudes: np.ndarray
    deltas: np.ndarray  # global deltas [N, L] (projection plots, antonym cosines)
    objects: np.ndarray


@torch.inference_mode()
def predict(model: PairModel, dataset: Dataset, batch_size: int = 64, precision: str = "fp32",
            device: torch.device | str | None = None) -> Predictions:
    """Inputs go to `device` (default: where the model's weights are); outputs come back as numpy."""
    was_training = model.training
    model.eval()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16"
                else contextlib.nullcontext())
    chunks: dict[str, list[np.ndarray]] = {k: [] for k in ("labels", "logits", "mag", "delta", "obj")}
    for before, after, labels, objects, patch_valid in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        with autocast:
            out = model(before.to(device), after.to(device), patch_valid.to(device))
        chunks["labels"].append(labels.numpy())
        chunks["obj"].append(objects.numpy())
        chunks["logits"].append(out.logits.float().cpu().numpy())
        chunks["mag"].append(out.effect_magnitude.float().cpu().numpy())
        chunks["delta"].append(out.delta_global.float().cpu().numpy())
    model.train(was_training)
    if not chunks["labels"]:
        empty = np.zeros((0,), dtype=np.int64)
        return Predictions(empty, empty, np.zeros((0, 0), np.float32), np.zeros(0, np.float32),
                           np.zeros((0, 0), np.float32), empty)
    logits = np.concatenate(chunks["logits"])
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    return Predictions(np.concatenate(chunks["labels"]), logits.argmax(axis=1), probs,
                       np.concatenate(chunks["mag"]), np.concatenate(chunks["delta"]), np.concatenate(chunks["obj"]))
