"""results.md: an experiment's results.json as tables a reader can check by eye.

Order: the accuracy table, protocol / precision / wall time, issue 16's targets (met or missed), OOD
accuracy per held-out cell, invariance of the representations, antonym cosines, then every run.
"""
from __future__ import annotations

import math
from typing import Any

from cde_core.experiment.targets import MIN_TOLERANCE


def _num(x: Any, sign: str = "") -> str:
    return f"{x:{sign}.3f}" if isinstance(x, (int, float)) and math.isfinite(x) else "-"


def _ci(r: dict[str, float]) -> str:
    return f"{_num(r['mean'])} ± {_num(r['ci95'])}"


def _met(met: bool | None) -> str:
    return {True: "met", False: "missed", None: "not measured"}[met]


def _accuracy_table(results: dict[str, Any]) -> list[str]:
    splits = results["splits"]
    lines = ["| method | " + " | ".join(f"{s} IID | {s} OOD | {s} gap" for s in splits) + " |",
             "|" + "---|" * (1 + 3 * len(splits))]
    for method, per_split in results["table"].items():
        cells = []
        for s in splits:
            r = per_split[s]
            cells += [_ci(r["iid"]), _ci(r["ood"]), _num(r["gap"])]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def _protocol(results: dict[str, Any]) -> list[str]:
    timing = results.get("timing", {})
    precision = results.get("precision")
    precision = ", ".join(precision) if isinstance(precision, list) else precision
    geometry = results.get("geometry") or {}
    lines = ["", f"Accuracy mean ± 95 % CI over seeds {results['seeds']}; {results['protocol']}.",
             f"Precision: {precision}."]
    if timing:
        lines.append(f"Wall time: {timing['total_seconds']:.0f} s in total ({timing['training_seconds']:.0f} s for "
                     f"{timing['runs']} runs on {timing['workers']} worker(s), {timing['run_seconds_sum']:.0f} s summed "
                     "over runs; the rest is diagnostics). Per-run seconds: the runs table.")
        if timing.get("resumed"):
            lines.append(f"Resumed (`--resume`): {timing['resumed']} of the {timing['runs']} runs were reused from "
                         "an earlier run of this experiment; their seconds are the trainer's own.")
    lines.append(f"Mean antonym cosine ({geometry.get('model')}, {geometry.get('split')}): "
                 f"{_num(geometry.get('mean_antonym_cosine'))}")
    return lines


def _targets(results: dict[str, Any]) -> list[str]:
    targets = results.get("targets")
    if not targets:
        return []
    lines = ["", "## Targets (issue 16)", "",
             (f"Best CDE variant, selected on IID validation accuracy only (mean over splits): "
              f"{targets['selected_on_val']} (val {_num(targets['selected_val_accuracy'])}; candidates "
              f"{', '.join(targets['candidates']) or 'none'}). Ablation tolerance: the combined 95 % CI half-widths, "
              f"at least {MIN_TOLERANCE}. A report, not a test: missed targets do not fail the run."), "",
             "| target | split | measured | result |", "|---|---|---|---|"]
    for row in targets["rows"]:
        lines.append(f"| {row['target']} | {row['split'] or 'all'} | {row['measured']} | {_met(row['met'])} |")
    return lines


def _per_cell(results: dict[str, Any]) -> list[str]:
    per_cell = results.get("diagnostics", {}).get("per_cell_ood", {})
    if not per_cell:
        return []
    lines = ["", "## OOD accuracy per held-out cell", "", "Mean over seeds (CIs in results.json)."]
    for split, by_method in per_cell.items():
        methods = list(by_method)
        cells = sorted({c for m in methods for c in by_method[m]})
        lines += ["", f"### {split}", "", "| cell | " + " | ".join(methods) + " |", "|" + "---|" * (1 + len(methods))]
        for cell in cells:
            lines.append(f"| {cell} | " + " | ".join(_num(by_method[m].get(cell, {}).get("mean")) for m in methods) + " |")
    return lines


def _geometry(results: dict[str, Any]) -> list[str]:
    geometry = results.get("diagnostics", {}).get("geometry", {})
    if not geometry:
        return []
    lines = ["", "## Invariance of the representation", "",
             ("Mean cosine between (object, action) cell means: the same action on different objects vs different "
              "actions on the same object, over IID-test + OOD pairs of the first seed. Margin > 0: organised by "
              "action, what a held-out cell needs. ReLU features (vanilla's hidden layer) cannot go below 0 and "
              "share a large common component: compare margins, and the centred row (mean cell removed)."), "",
             "| split | method | features | same action, other objects | other actions, same object | margin |",
             "|---|---|---|---|---|---|"]
    for split, g in geometry.items():
        for inv in g.get("invariance", []):
            lines.append(f"| {split} | {inv['method']} | {inv['features']} | {_num(inv['same_action'])} | "
                         f"{_num(inv['same_object'])} | {_num(inv['margin'], '+')} |")
    lines += ["", "## Antonym cosines", "",
              "Cosine between the mean deltas of an action and its antonym on one object (target < -0.5: anti-parallel)."]
    for split, g in geometry.items():
        antonym = g.get("antonym")
        if not antonym:
            continue
        lines += ["", f"### {split}: {antonym['method']}, seed {g['seed']} (mean {_num(antonym['mean'])})"
                  + (f", figure {g['figure']}" if g.get("figure") else ""), "", "| object: antonyms | cosine |",
                  "|---|---|"]
        lines += [f"| {name} | {_num(cos, '+')} |" for name, cos in antonym["cosines"].items()]
    return lines


def no_change_table(results: dict[str, Any]) -> list[str]:
    """results.md's section on what each model calls "nothing changed" (empty without that diagnostic)."""
    geometry = results.get("diagnostics", {}).get("geometry", {})
    rows = [(split, nc) for split, g in geometry.items() for nc in g.get("no_change", [])]
    if not rows:
        return []
    groups = sorted({name for _, nc in rows for name in nc["groups"]})
    lines = ["", "## What is called \"nothing changed\"", "",
             ("First seed, IID-test + OOD pairs. \"identical\": each pair's before frame compared with itself (a "
              "linear classifier on deltas answers it with its biases alone). Per group: pairs, median norm of the "
              "CDE model's global delta, share called none."), "",
             "| split | method | identical called none | " + " | ".join(groups) + " |",
             "|---|---|---|" + "---|" * len(groups)]
    for split, nc in rows:
        cells = []
        for name in groups:
            g = nc["groups"].get(name, {})
            norm = "" if g.get("median_delta_norm") is None else f"norm {_num(g['median_delta_norm'])}, "
            cells.append(f"{g.get('pairs', 0)}: {norm}none {_num(g.get('called_none'))}")
        lines.append(f"| {split} | {nc['method']} | {_num(nc['identical_called_none'])} | " + " | ".join(cells) + " |")
    return lines


def _runs(results: dict[str, Any]) -> list[str]:
    lines = ["", "## Runs", "", "| split | method | seed | precision | seconds | best epoch | IID val | IID test | OOD |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results["runs"]:
        lines.append(f"| {r['split']} | {r['method']} | {r['seed']} | {r.get('precision')} | "
                     f"{r['seconds']:.1f} | {r['best_epoch']} | {_num(r.get('val'))} | {_num(r['iid'])} | "
                     f"{_num(r['ood'])} |")
    return lines


def results_markdown(results: dict[str, Any]) -> str:
    """The whole results.md."""
    lines = [*_accuracy_table(results), *_protocol(results), *_targets(results), *_per_cell(results),
             *_geometry(results), *no_change_table(results), *_runs(results)]
    return "\n".join(lines) + "\n"
