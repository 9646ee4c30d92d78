"""Plots (PNG, matplotlib Agg): confusion matrices, training curves, delta projections."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(cm: Sequence[Sequence[int]], class_names: Sequence[str], title: str, path: str | Path) -> Path:
    plt = _pyplot()
    cm_a = np.asarray(cm, dtype=np.float64)
    rows = cm_a.sum(axis=1, keepdims=True)
    norm = np.divide(cm_a, rows, out=np.zeros_like(cm_a), where=rows > 0)
    size = max(4.0, 0.55 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(class_names)), class_names, rotation=60, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm_a.shape[0]):
        for j in range(cm_a.shape[1]):
            if cm_a[i, j]:
                ax.text(j, i, int(cm_a[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_curves(history: list[dict[str, float]], path: str | Path) -> Path:
    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = [h["epoch"] for h in history]
    for key in sorted({k for h in history for k in h if k.startswith("loss_")}):
        ax_loss.plot(epochs, [h.get(key, np.nan) for h in history], label=key[5:])
    ax_loss.set_xlabel("epoch")
    ax_loss.set_title("training loss terms (unweighted)")
    ax_loss.legend()
    ax_acc.plot(epochs, [h.get("val_accuracy", np.nan) for h in history], marker="o", label="IID val")
    ax_acc.set_ylim(0, 1)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_title("IID validation accuracy (checkpoint selection)")
    ax_acc.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
