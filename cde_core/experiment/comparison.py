"""Two experiments side by side (e.g. robot masks on vs off): does one condition generalise better OOD?

Both result directories must come from `cde experiment` over the same splits and seeds. For every
(method, split) the two have in common: OOD mean +/- 95 % CI of each, and the difference A - B paired by
seed (same seed, same split: the data and initialisation match, so the paired difference is the
condition's effect with the seed-to-seed noise taken out). The verdict says which is better when the
difference's CI excludes 0.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from cde_core.experiment.analysis import mean_ci

_LOG = logging.getLogger(__name__)


def load_results(directory: str | Path) -> dict[str, Any]:
    """results.json of an experiment directory; FileNotFoundError says how to make one."""
    path = Path(directory) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run `cde experiment CONFIG --out {directory}` first")
    return json.loads(path.read_text())


def _ood_by_seed(results: dict[str, Any], method: str, split: str) -> dict[int, float]:
    return {r["seed"]: r["ood"] for r in results["runs"] if r["method"] == method and r["split"] == split
            and isinstance(r["ood"], (int, float)) and math.isfinite(r["ood"])}


def compare_experiments(a: dict[str, Any], b: dict[str, Any], labels: tuple[str, str]) -> dict[str, Any]:
    """One row per (method, split) in both: each side's OOD mean/CI over its seeds and the paired difference.

    Raises ValueError when the two share no (method, split); notes name splits and seeds that differ."""
    notes = []
    for key in ("splits", "seeds"):
        if list(a.get(key, [])) != list(b.get(key, [])):
            notes.append(f"{key} differ: {labels[0]} {a.get(key)} vs {labels[1]} {b.get(key)}; "
                         "differences use the common ones only")
    rows = []
    for method, per_split in a["table"].items():
        for split in a["splits"]:
            if split not in per_split or split not in b["table"].get(method, {}):
                continue
            ood_a, ood_b = _ood_by_seed(a, method, split), _ood_by_seed(b, method, split)
            seeds = sorted(set(ood_a) & set(ood_b))
            diff = mean_ci([ood_a[s] - ood_b[s] for s in seeds]) if seeds else None
            verdict = "not measured"
            if diff is not None and math.isfinite(diff["ci95"]):
                if diff["mean"] - diff["ci95"] > 0:
                    verdict = f"{labels[0]} better"
                elif diff["mean"] + diff["ci95"] < 0:
                    verdict = f"{labels[1]} better"
                else:
                    verdict = "no clear difference"
            elif diff is not None:
                verdict = "one seed: no CI"
            rows.append({"method": method, "split": split, "a": per_split[split]["ood"],
                         "b": b["table"][method][split]["ood"], "difference": diff, "paired_seeds": seeds,
                         "verdict": verdict})
    if not rows:
        raise ValueError(f"{labels[0]} and {labels[1]} have no (method, split) in common: compare experiments "
                         "run over the same methods and splits")
    for note in notes:
        _LOG.warning(note)
    return {"labels": list(labels), "data": [a.get("data"), b.get("data")], "notes": notes, "rows": rows}


def comparison_markdown(comparison: dict[str, Any]) -> str:
    """The comparison as one table, difference = first label - second label."""
    la, lb = comparison["labels"]

    def fmt(r: dict[str, float] | None, sign: str = "") -> str:
        return "-" if r is None else f"{r['mean']:{sign}.3f} ± {r['ci95']:.3f}"

    lines = [f"# OOD accuracy: {la} vs {lb}", "",
             (f"Does {la} generalise better than {lb} out of distribution? Difference = {la} - {lb}, paired by "
              "seed, mean ± 95 % CI; the verdict names a winner only when the CI excludes 0."), "",
             f"| method | split | {la} OOD | {lb} OOD | {la} - {lb} | seeds | verdict |", "|---|---|---|---|---|---|---|"]
    for r in comparison["rows"]:
        lines.append(f"| {r['method']} | {r['split']} | {fmt(r['a'])} | {fmt(r['b'])} | {fmt(r['difference'], '+')} | "
                     f"{len(r['paired_seeds'])} | {r['verdict']} |")
    lines += ["", *(f"Note: {n}" for n in comparison["notes"])]
    return "\n".join(lines).rstrip() + "\n"


def write_comparison(dir_a: str | Path, dir_b: str | Path, labels: tuple[str, str], out: str | Path) -> dict[str, Any]:
    """Compare two experiment directories; write comparison.json and comparison.md into `out`."""
    comparison = compare_experiments(load_results(dir_a), load_results(dir_b), labels)
    comparison["directories"] = [str(dir_a), str(dir_b)]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.json").write_text(json.dumps(comparison, indent=2))
    (out / "comparison.md").write_text(comparison_markdown(comparison))
    return comparison
