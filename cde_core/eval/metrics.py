"""Classification metrics over predictions (pure numpy)."""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

import numpy as np


def confusion_matrix(labels: Sequence[int], preds: Sequence[int], num_classes: int) -> np.ndarray:
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    for t, p in zip(labels, preds):
        cm[int(t), int(p)] += 1
    return cm


def classification_report(labels: Sequence[int], preds: Sequence[int], class_names: Sequence[str],
                          cells: Sequence[tuple[str, str]] | None = None) -> dict[str, Any]:
    """accuracy, per-class accuracy (classes present only), confusion matrix, and cell-balanced
    accuracy (mean over (object, action) cells, so a large cell does not dominate OOD numbers)."""
    labels_a = np.asarray(labels, dtype=np.int64)
    preds_a = np.asarray(preds, dtype=np.int64)
    n = int(labels_a.size)
    report: dict[str, Any] = {"n": n, "accuracy": float((labels_a == preds_a).mean()) if n else float("nan")}
    cm = confusion_matrix(labels_a, preds_a, len(class_names))
    report["confusion_matrix"] = cm.tolist()
    report["per_class_accuracy"] = {
        name: float(cm[i, i] / cm[i].sum()) for i, name in enumerate(class_names) if cm[i].sum() > 0}
    if cells is not None and n:
        hits: dict[str, list[bool]] = defaultdict(list)
        for (obj, action), t, p in zip(cells, labels_a, preds_a):
            hits[f"{obj}/{action}"].append(bool(t == p))
        per_cell = {cell: float(np.mean(v)) for cell, v in sorted(hits.items())}
        report["per_cell_accuracy"] = per_cell
        report["cell_balanced_accuracy"] = float(np.mean(list(per_cell.values())))
    return report
