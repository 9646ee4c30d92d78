"""Diagnostics that explain an experiment's OOD numbers (issue 16): where it fails and what the deltas look like.

- per held-out cell: OOD accuracy per (object, action) cell of each split and method, mean over seeds
  (from each run's metrics.json), so one cell that is always wrong is not hidden by the mean;
- per split, on the first seed, over the IID-test + OOD pairs:
  - invariance (analysis.invariance_cosines) of the CDE model's global deltas and of vanilla's
    last hidden layer (as is and centred: ReLU features share one large component) and raw delta: is the
    representation organised by action or by object?
  - antonym cosines per object of the full CDE model (`cde`) when the experiment has it, else of the
    first CDE-family method, named in the result;
  - the figure deltas_<split>.png (PCA by action, by object, antonym cosines);
  - what each model calls "nothing changed" (no_change.py): the class of an identical pair, and per role and
    none/change the median delta norm of the CDE model and how often each model says none.
The numbers are pure numpy (analysis.py); this module loads the checkpoints and runs them.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cde_core.data.manifest import NO_CHANGE
from cde_core.experiment.analysis import (
    antonym_cosines,
    invariance_cosines,
    per_cell_mean,
)
from cde_core.experiment.methods import METHODS

_LOG = logging.getLogger(__name__)
_VANILLA = "vanilla"


def cde_family(methods: Sequence[str]) -> list[str]:
    """The methods (in order) that train a CDE model: a linear classifier on deltas (`model.name=cde*`)."""
    return [m for m in methods if any(o.startswith("model.name=cde") for o in METHODS.get(m, []))]


def geometry_model(methods: Sequence[str]) -> str | None:
    """Whose deltas the geometry describes: the full model `cde` if present, else the first CDE-family method."""
    family = cde_family(methods)
    return "cde" if "cde" in family else (family[0] if family else None)


def per_cell_ood(runs: Sequence[dict[str, Any]], methods: Sequence[str],
                 splits: Sequence[str]) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """split -> method -> "object/action" -> mean/CI over seeds of that held-out cell's OOD accuracy."""
    result: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for split in splits:
        for method in methods:
            per_seed = [r["ood_per_cell"] for r in runs
                        if r["split"] == split and r["method"] == method and r.get("ood_per_cell")]
            if per_seed:
                result.setdefault(split, {})[method] = per_cell_mean(per_seed)
    return result


def delta_geometry(data: str | Path, runs: Sequence[dict[str, Any]], methods: Sequence[str],
                   splits: Sequence[str], seed: int, out: Path, exclude_actions: Sequence[str] = ()) -> dict[str, Any]:
    """split -> invariance per model/feature, antonym cosines of `geometry_model`, and the figure written.

    Runs the first seed's checkpoints over each split's IID-test + OOD pairs (fp32)."""
    from cde_core.checkpoint import load_checkpoint, read_meta
    from cde_core.data.manifest import read_manifest
    from cde_core.data.pair_dataset import PairDataset, usable_records
    from cde_core.eval.predict import predict
    from cde_core.experiment.geometry_plots import plot_delta_geometry
    from cde_core.experiment.no_change import identical_pair_predictions, no_change_summary
    from cde_core.experiment.penultimate import predict_with_penultimate

    records = read_manifest(data)
    antonym = {r.action: r.antonym for r in records if r.antonym}
    focus = geometry_model(methods)
    result: dict[str, Any] = {}
    for split in splits:
        chosen = {r["method"]: r for r in runs if r["split"] == split and r["seed"] == seed}
        subset = [r for r in records if r.role(split) in ("test", "ood")]
        if chosen:  # the pairs its models could compare (robot masks: not the ones the robot covers)
            preprocessing = read_meta(next(iter(chosen.values()))["checkpoint"]).preprocessing
            subset, _ = usable_records(data, subset, preprocessing)
        actions, objects = [r.action for r in subset], [r.object for r in subset]
        entry: dict[str, Any] = {"seed": seed, "pairs": len(subset), "invariance": []}
        if not subset:
            result[split] = entry
            continue
        for method in [m for m in (focus, _VANILLA) if m in chosen]:
            model, meta = load_checkpoint(chosen[method]["checkpoint"])
            dataset = PairDataset(data, subset, meta.class_names, meta.objects or sorted({r.object for r in records}),
                                  meta.preprocessing, grid=model.grid_size)
            features: dict[str, np.ndarray] = {}
            if method == _VANILLA:
                pred, features["hidden layer"] = predict_with_penultimate(model, dataset)
            else:
                pred = predict(model, dataset)
            features["global delta"] = pred.deltas
            if NO_CHANGE in meta.class_names:
                norms = np.linalg.norm(pred.deltas, axis=1) if method == focus else None  # vanilla: no delta
                entry.setdefault("no_change", []).append({"method": method, **no_change_summary(
                    pred.preds, identical_pair_predictions(model, dataset), norms, pred.labels,
                    [r.role(split) for r in subset], meta.class_names.index(NO_CHANGE))})
            for name, feats in features.items():
                for centre in ((False, True) if name == "hidden layer" else (False,)):
                    entry["invariance"].append({"method": method, "features": name + (" (centred)" if centre else ""),
                                                **invariance_cosines(feats, actions, objects, exclude_actions, centre)})
            if method == focus:
                cosines = antonym_cosines(pred.deltas, actions, objects, antonym)
                entry["antonym"] = {"method": method, "cosines": cosines,
                                    "mean": float(np.mean(list(cosines.values()))) if cosines else None}
                figure = out / f"deltas_{split}.png"
                if plot_delta_geometry(pred.deltas, actions, objects, antonym, cosines, f"{method} {split}", figure):
                    entry["figure"] = figure.name
        result[split] = entry
        _LOG.info("geometry on %s: %s", split, ", ".join(
            f"{i['method']} {i['features']} margin {i['margin']}" for i in entry["invariance"]))
    return result


def mean_antonym_cosine(geometry: dict[str, Any]) -> tuple[str | None, float | None]:
    """The geometry model and its antonym cosine averaged over splits (None when no split measured one)."""
    measured = [g["antonym"] for g in geometry.values() if g.get("antonym", {}).get("mean") is not None]
    if not measured:
        return None, None
    return measured[0]["method"], float(np.mean([a["mean"] for a in measured]))
