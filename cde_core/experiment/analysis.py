"""Statistics over seeds and the geometry of deltas (pure numpy)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Two-sided 95 % Student t quantiles for n-1 degrees of freedom (n = seeds); beyond 10, ~1.96-2.26.
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def mean_ci(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample std and the 95 % confidence half-width (t distribution) over seeds."""
    a = np.asarray(values, dtype=np.float64)
    n = a.size
    std = float(a.std(ddof=1)) if n > 1 else 0.0
    half = _T95.get(n - 1, 1.96) * std / np.sqrt(n) if n > 1 else float("nan")
    return {"mean": float(a.mean()), "std": std, "ci95": float(half), "n": int(n)}


def antonym_cosines(deltas: np.ndarray, actions: Sequence[str], objects: Sequence[str],
                    antonym: dict[str, str]) -> dict[str, float]:
    """Cosine between the mean delta of an action and of its antonym, per object (e.g. drawer open vs
    close). The paper reports these come out anti-parallel without supervision."""
    result: dict[str, float] = {}
    acts, objs = np.asarray(actions), np.asarray(objects)
    for obj in sorted(set(objects)):
        for action, opposite in sorted(antonym.items()):
            if action > opposite:
                continue
            a = deltas[(objs == obj) & (acts == action)]
            b = deltas[(objs == obj) & (acts == opposite)]
            if len(a) and len(b):
                ma, mb = a.mean(axis=0), b.mean(axis=0)
                denom = np.linalg.norm(ma) * np.linalg.norm(mb)
                if denom > 0:
                    result[f"{obj}:{action}/{opposite}"] = float(ma @ mb / denom)
    return result


def pca_2d(x: np.ndarray) -> np.ndarray:
    """The first two principal components of `x` [N, D] -> [N, 2] (for the delta projection plots)."""
    centred = x - x.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def per_cell_mean(per_cell_by_seed: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and 95 % CI over seeds of each cell's accuracy ("object/action" -> accuracy per seed).

    A cell missing from a seed's metrics (no pairs there) is averaged over the seeds that have it, and `n` says
    how many; a held-out cell that is always wrong shows up as 0, which the OOD mean hides."""
    cells = sorted({cell for seed in per_cell_by_seed for cell in seed})
    return {cell: mean_ci([seed[cell] for seed in per_cell_by_seed if cell in seed]) for cell in cells}


def invariance_cosines(features: np.ndarray, actions: Sequence[str], objects: Sequence[str],
                       exclude: Sequence[str] = (), centre: bool = False) -> dict[str, float | int | None]:
    """Is a representation organised by action or by object? Over (object, action) cell means:

    - `same_action`: mean cosine between cells of the SAME action on DIFFERENT objects (1 = the action
      looks the same whatever it acts on, what a compositional split needs);
    - `same_object`: mean cosine between cells of DIFFERENT actions on the SAME object (high = the object
      dominates the feature);
    - `margin` = same_action - same_object (> 0: action-organised).

    Cell means, not single pairs, so a cell's size does not weigh it. Actions in `exclude` (the no-change
    class, whose deltas have no direction) and cells with a zero mean are left out. Features after a ReLU
    (vanilla's hidden layer) have cosines >= 0 and often share one large component: `centre` subtracts the
    mean of the cell means first (deltas have a natural origin, no change, and are compared uncentred).
    None where no pair of cells qualifies."""
    feats = np.asarray(features, dtype=np.float64)
    acts, objs = np.asarray(actions), np.asarray(objects)
    if not (len(feats) == len(acts) == len(objs)):
        raise ValueError(f"{len(feats)} features, {len(acts)} actions, {len(objs)} objects: give one of each per pair")
    keys = [c for c in sorted(set(zip(objs.tolist(), acts.tolist()))) if c[1] not in exclude]
    means = np.asarray([feats[(objs == obj) & (acts == action)].mean(axis=0) for obj, action in keys])
    if centre and len(means):
        means = means - means.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(means, axis=1) if len(means) else np.zeros(0)
    cells = [k for k, n in zip(keys, norms) if n > 1e-12]
    units = [m / n for m, n in zip(means, norms) if n > 1e-12]
    same_action: list[float] = []
    same_object: list[float] = []
    for i in range(len(cells)):
        for j in range(i + 1, len(cells)):
            (oi, ai), (oj, aj) = cells[i], cells[j]
            if ai == aj and oi != oj:
                same_action.append(float(units[i] @ units[j]))
            elif oi == oj and ai != aj:
                same_object.append(float(units[i] @ units[j]))
    sa = float(np.mean(same_action)) if same_action else None
    so = float(np.mean(same_object)) if same_object else None
    return {"same_action": sa, "same_object": so, "margin": sa - so if sa is not None and so is not None else None,
            "same_action_pairs": len(same_action), "same_object_pairs": len(same_object)}
