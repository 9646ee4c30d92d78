"""Classification metrics over predictions (pure numpy).

Cell-balanced accuracy averages over (object, action) cells, so on OOD splits a large held-out cell
does not dominate and a model that gets one cell right and the others wrong is not rewarded by size.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

import numpy as np


def accuracy(labels: Sequence[int], preds: Sequence[int]) -> float:
    """Fraction correct; NaN for no predictions (an empty role has no accuracy, not 0)."""
    labels_a, preds_a = np.asarray(labels), np.asarray(preds)
    if labels_a.shape != preds_a.shape:
        raise ValueError(f"{labels_a.shape[0]} labels but {preds_a.shape[0]} predictions")
    return float((labels_a == preds_a).mean()) if labels_a.size else float("nan")


def confusion_matrix(labels: Sequence[int], preds: Sequence[int], num_classes: int) -> np.ndarray:
    """[true, predicted] counts."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(labels, dtype=np.int64), np.asarray(preds, dtype=np.int64)), 1)
    return cm


def per_class_accuracy(cm: np.ndarray, class_names: Sequence[str]) -> dict[str, float]:
    """Recall of each class that occurs in the labels (absent classes are left out, not scored 0)."""
    return {name: float(cm[i, i] / cm[i].sum()) for i, name in enumerate(class_names) if cm[i].sum() > 0}


def per_cell_accuracy(labels: Sequence[int], preds: Sequence[int],
                      cells: Sequence[tuple[str, str]]) -> dict[str, float]:
    """Accuracy per "object/action" cell."""
    if len(cells) != len(labels):
        raise ValueError(f"{len(cells)} cells for {len(labels)} labels")
    hits: dict[str, list[bool]] = defaultdict(list)
    for (obj, action), t, p in zip(cells, labels, preds):
        hits[f"{obj}/{action}"].append(int(t) == int(p))
    return {cell: float(np.mean(v)) for cell, v in sorted(hits.items())}


def cell_balanced_accuracy(labels: Sequence[int], preds: Sequence[int], cells: Sequence[tuple[str, str]]) -> float:
    """Mean of the per-cell accuracies."""
    per_cell = per_cell_accuracy(labels, preds, cells)
    return float(np.mean(list(per_cell.values()))) if per_cell else float("nan")


def classification_report(labels: Sequence[int], preds: Sequence[int], class_names: Sequence[str],
                          cells: Sequence[tuple[str, str]] | None = None) -> dict[str, Any]:
    """JSON-ready: n, accuracy, per-class accuracy, confusion matrix and, given cells, per-cell and
    cell-balanced accuracy."""
    cm = confusion_matrix(labels, preds, len(class_names))
    report: dict[str, Any] = {"n": int(len(labels)), "accuracy": accuracy(labels, preds),
                              "per_class_accuracy": per_class_accuracy(cm, class_names),
                              "confusion_matrix": cm.tolist()}
    if cells is not None and len(labels):
        report["per_cell_accuracy"] = per_cell_accuracy(labels, preds, cells)
        report["cell_balanced_accuracy"] = float(np.mean(list(report["per_cell_accuracy"].values())))
    return report
