"""Statistics over seeds and the geometry of deltas (pure numpy)."""
from __future__ import annotations

from typing import Sequence

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
    centred = x - x.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T
