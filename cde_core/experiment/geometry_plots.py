"""The figure of a model's delta geometry: one PCA projection coloured by action and by object, and the
antonym cosines per object.

Two colourings of the same points answer the question the accuracy table cannot: if the clusters
follow the objects rather than the actions, the deltas carry the object and a held-out (object,
action) cell has nowhere to go.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cde_core.experiment.analysis import pca_2d


def plot_delta_geometry(deltas: np.ndarray, actions: Sequence[str], objects: Sequence[str],
                        antonym: dict[str, str], cosines: dict[str, float], title: str, path: Path) -> bool:
    """Write the three-panel figure to `path`; False (nothing written) for fewer than 3 pairs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if len(deltas) < 3:
        return False
    xy = pca_2d(np.asarray(deltas, dtype=np.float64))
    if xy.shape[1] < 2:
        xy = np.concatenate([xy, np.zeros((len(xy), 2 - xy.shape[1]))], axis=1)
    acts, objs = np.asarray(actions), np.asarray(objects)
    fig, (by_action, by_object, bars) = plt.subplots(1, 3, figsize=(18, 5))
    for action in sorted(set(actions)):
        mask = acts == action
        by_action.scatter(xy[mask, 0], xy[mask, 1], s=10, label=action,
                          marker="^" if antonym.get(action, "") > action else "o")
    by_action.set_title("coloured by action (antonyms: o vs ^)")
    by_action.legend(fontsize=7)
    for obj in sorted(set(objects)):
        mask = objs == obj
        by_object.scatter(xy[mask, 0], xy[mask, 1], s=10, label=obj)
    by_object.set_title("coloured by object")
    by_object.legend(fontsize=7)
    names = sorted(cosines)
    bars.barh(names, [cosines[n] for n in names])
    bars.axvline(-0.5, color="red", linestyle="--")
    bars.set_xlim(-1, 1)
    bars.set_title("cosine of mean antonym deltas per object (target < -0.5)")
    fig.suptitle(f"{title}: deltas, first two principal components")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
