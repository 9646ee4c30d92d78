"""Issue 16's targets, checked against an experiment's results (a report, never an assertion).

1. The best CDE variant, chosen on IID validation accuracy only (mean over splits; never on OOD or
   test), is >= vanilla + 10 points of OOD accuracy on every compositional and systemic split.
2. Its IID-OOD gap is <= 0.6 x vanilla's gap.
3. Ablation order on OOD accuracy: cde >= cde_no_l1 >= cde_no_supcon ~ cde_ce_only, where "a >= b"
   holds when mean_a >= mean_b - tol and "a ~ b" when |mean_a - mean_b| <= tol, with
   tol = max(MIN_TOLERANCE, sqrt(ci_a^2 + ci_b^2)) (the 95 % half-widths over seeds, combined).
4. The mean antonym cosine (full CDE model) is < -0.5.
Each target is a row {target, split, measured, met}; met is None when the experiment cannot measure it
(a method missing, one split without OOD pairs).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

OOD_MARGIN = 0.10
GAP_RATIO = 0.6
ANTONYM_COSINE = -0.5
MIN_TOLERANCE = 0.02
ABLATION = ("cde", "cde_no_l1", "cde_no_supcon", "cde_ce_only")


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def select_on_validation(table: dict[str, dict[str, Any]], candidates: Sequence[str],
                         splits: Sequence[str]) -> tuple[str | None, float | None]:
    """The candidate with the highest IID-validation accuracy averaged over splits (first in order on ties)."""
    best, best_val = None, -math.inf
    for method in candidates:
        vals = [table[method][s]["val"]["mean"] for s in splits
                if method in table and s in table[method] and _finite(table[method][s].get("val", {}).get("mean"))]
        if vals and sum(vals) / len(vals) > best_val:
            best, best_val = method, sum(vals) / len(vals)
    return best, (best_val if best is not None else None)


def ablation_tolerance(a: dict[str, float], b: dict[str, float]) -> float:
    """Combined 95 % half-width of two means (a CI that is NaN, one seed, counts 0), at least MIN_TOLERANCE."""
    ca, cb = (c if _finite(c) else 0.0 for c in (a.get("ci95"), b.get("ci95")))
    return max(MIN_TOLERANCE, math.hypot(ca, cb))


def _row(target: str, split: str | None, measured: str, met: bool | None) -> dict[str, Any]:
    return {"target": target, "split": split, "measured": measured, "met": met}


def check_targets(table: dict[str, dict[str, Any]], splits: Sequence[str], cde_candidates: Sequence[str],
                  antonym: tuple[str | None, float | None], vanilla: str = "vanilla") -> dict[str, Any]:
    """The selected variant and one row per target and split (see the module docstring)."""
    best, best_val = select_on_validation(table, cde_candidates, splits)
    rows: list[dict[str, Any]] = []
    ood_splits = [s for s in splits if s.startswith(("comp_", "syst_"))]
    for split in ood_splits:
        name = f"best CDE variant OOD >= {vanilla} + {OOD_MARGIN:.2f}"
        b, v = table.get(best or "", {}).get(split), table.get(vanilla, {}).get(split)
        if b is None or v is None or not (_finite(b["ood"]["mean"]) and _finite(v["ood"]["mean"])):
            rows.append(_row(name, split, f"not measured ({best or 'no CDE method'} vs {vanilla})", None))
        else:
            diff = b["ood"]["mean"] - v["ood"]["mean"]
            rows.append(_row(name, split, f"{best} {b['ood']['mean']:.3f} - {vanilla} {v['ood']['mean']:.3f} = "
                             f"{diff:+.3f}", diff >= OOD_MARGIN))
        name = f"best CDE variant gap <= {GAP_RATIO} x {vanilla} gap"
        if b is None or v is None or not (_finite(b["gap"]) and _finite(v["gap"])):
            rows.append(_row(name, split, "not measured", None))
        else:
            rows.append(_row(name, split, f"{b['gap']:.3f} vs {GAP_RATIO} x {v['gap']:.3f} = {GAP_RATIO * v['gap']:.3f}",
                             b["gap"] <= GAP_RATIO * v["gap"]))
        name = " >= ".join(ABLATION[:3]) + f" ~ {ABLATION[3]} (OOD)"
        if not all(split in table.get(m, {}) and _finite(table[m][split]["ood"]["mean"]) for m in ABLATION):
            missing = [m for m in ABLATION if split not in table.get(m, {})]
            rows.append(_row(name, split, f"not measured (missing {', '.join(missing) or 'OOD accuracy'})", None))
        else:
            ood = [table[m][split]["ood"] for m in ABLATION]
            tols = [ablation_tolerance(ood[i], ood[i + 1]) for i in range(3)]
            met = (ood[0]["mean"] >= ood[1]["mean"] - tols[0] and ood[1]["mean"] >= ood[2]["mean"] - tols[1]
                   and abs(ood[2]["mean"] - ood[3]["mean"]) <= tols[2])
            measured = ", ".join(f"{m} {o['mean']:.3f}" for m, o in zip(ABLATION, ood))
            rows.append(_row(name, split, f"{measured} (tolerances {', '.join(f'{t:.3f}' for t in tols)})", met))
    model, cosine = antonym
    name = f"mean antonym cosine < {ANTONYM_COSINE}"
    rows.append(_row(name, None, f"{model} {cosine:.3f}" if cosine is not None else "not measured",
                     cosine < ANTONYM_COSINE if cosine is not None else None))
    return {"selected_on_val": best, "selected_val_accuracy": best_val, "candidates": list(cde_candidates),
            "rows": rows}
