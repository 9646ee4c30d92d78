"""Metrics on hand-counted predictions; plots are written as PNG."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from cde_core.eval.metrics import (accuracy, cell_balanced_accuracy, classification_report, confusion_matrix,
                                   per_cell_accuracy)
from cde_core.eval.plots import plot_confusion, plot_curves

CLASSES = ["close", "none", "open"]
# 6 pairs: drawer/open x3 (2 right), drawer/close x1 (right), door/open x2 (0 right)
LABELS = [2, 2, 2, 0, 2, 2]
PREDS = [2, 2, 0, 0, 0, 1]
CELLS = [("drawer", "open")] * 3 + [("drawer", "close")] + [("door", "open")] * 2


def test_accuracy_and_confusion() -> None:
    assert accuracy(LABELS, PREDS) == pytest.approx(3 / 6)
    assert math.isnan(accuracy([], []))
    with pytest.raises(ValueError):
        accuracy([0, 1], [0])
    assert confusion_matrix(LABELS, PREDS, 3).tolist() == [[1, 0, 0], [0, 0, 0], [2, 1, 2]]


def test_report_per_class_and_cell_balanced() -> None:
    report = classification_report(LABELS, PREDS, CLASSES, CELLS)
    assert report["n"] == 6
    assert report["per_class_accuracy"] == {"close": 1.0, "open": pytest.approx(2 / 5)}  # "none" absent
    assert report["per_cell_accuracy"] == {"door/open": 0.0, "drawer/close": 1.0,
                                           "drawer/open": pytest.approx(2 / 3)}
    # mean over the three cells, unlike the pair accuracy 3/6
    assert report["cell_balanced_accuracy"] == pytest.approx((0 + 1 + 2 / 3) / 3)
    assert cell_balanced_accuracy(LABELS, PREDS, CELLS) == report["cell_balanced_accuracy"]
    with pytest.raises(ValueError):
        per_cell_accuracy(LABELS, PREDS, CELLS[:2])


def test_plots_write_png(tmp_path: Path) -> None:
    cm = confusion_matrix(LABELS, PREDS, 3).tolist()
    confusion = plot_confusion(cm, CLASSES, "test", tmp_path / "cm.png")
    history = [{"epoch": 1.0, "loss_ce": 1.2, "loss_total": 1.5, "val_accuracy": 0.4},
               {"epoch": 2.0, "loss_ce": 0.9, "loss_total": 1.1, "val_accuracy": 0.6}]
    curves = plot_curves(history, tmp_path / "curves.png")
    for path in (confusion, curves):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
