"""`cde experiment CONFIG --out DIR`: train and evaluate every method on the same data, splits and seeds.

Checkpoints are selected on IID validation only (the trainer never looks at `ood`). Writes
results.json (per method and split: mean, std, 95 % CI of IID-test and OOD accuracy over seeds, and
the gap), results.md (the table), and plots: confusion matrices, a 2-D projection of deltas with
antonyms marked, and antonym cosines per object.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cde_core.experiment.analysis import antonym_cosines, mean_ci, pca_2d
from cde_core.experiment.methods import METHODS
from cde_core.train.config import load_config

_LOG = logging.getLogger(__name__)


def load_experiment(path: str | Path) -> dict[str, Any]:
    spec = yaml.safe_load(Path(path).read_text()) or {}
    for key in ("data", "splits", "seeds", "methods"):
        if key not in spec:
            raise ValueError(f"experiment config {path} needs '{key}'")
    unknown = [m for m in spec["methods"] if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; known: {sorted(METHODS)}")
    spec.setdefault("train_config", None)
    spec.setdefault("overrides", [])
    return spec


def _train_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train and evaluate one (split, method, seed); a module-level function so worker processes can run it."""
    from cde_core.train.trainer import train

    result = train(load_config(job["train_config"], job["overrides"]))
    m = result.metrics
    run = {"split": job["split"], "method": job["method"], "seed": job["seed"], "best_epoch": result.best_epoch,
           "iid": m["test"]["accuracy"] if "test" in m else float("nan"),
           "ood": m["ood"]["accuracy"] if "ood" in m else float("nan"),
           "ood_cell_balanced": m.get("ood", {}).get("cell_balanced_accuracy", float("nan")),
           "seconds": result.seconds, "checkpoint": str(result.checkpoint)}
    _LOG.info("%s %s seed %d: iid %.3f ood %.3f", run["split"], run["method"], run["seed"], run["iid"], run["ood"])
    return run


def run_experiment(path: str | Path, out: str | Path, extra: list[str] | None = None,
                   workers: int | None = None) -> dict[str, Any]:
    """Every (split, method, seed) run, in `workers` processes (default: the config's `workers`, else 1)."""
    from cde_core.checkpoint import load_checkpoint
    from cde_core.data.manifest import read_manifest
    from cde_core.data.pair_dataset import PairDataset
    from cde_core.eval.plots import plot_confusion
    from cde_core.eval.predict import predict

    spec = load_experiment(path)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "experiment.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    jobs = [{"split": split, "method": method, "seed": seed, "train_config": spec["train_config"],
             "overrides": [*spec["overrides"], *METHODS[method], *(extra or []), f"data.root={spec['data']}",
                           f"data.split={split}", f"seed={seed}", f"out={out / 'runs' / split / method / f'seed{seed}'}",
                           "progress=false"]}
            for split in spec["splits"] for method in spec["methods"] for seed in spec["seeds"]]
    workers = max(1, int(workers if workers is not None else spec.get("workers", 1)))
    runs: list[dict[str, Any]] = []
    if workers == 1:
        runs = [_train_one(job) for job in jobs]
    else:  # one training per process, each on its own intra-op thread (threads=1 in the configs)
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            runs = list(pool.imap(_train_one, jobs))
    table: dict[str, dict[str, Any]] = {}
    for method in spec["methods"]:
        for split in spec["splits"]:
            rows = [r for r in runs if r["method"] == method and r["split"] == split]
            iid, ood = mean_ci([r["iid"] for r in rows]), mean_ci([r["ood"] for r in rows])
            table.setdefault(method, {})[split] = {"iid": iid, "ood": ood, "gap": iid["mean"] - ood["mean"],
                                                   "ood_cell_balanced": mean_ci([r["ood_cell_balanced"] for r in rows])}
    # Geometry of the deltas of the first seed of the full model on the first split (IID test + OOD).
    geometry: dict[str, Any] = {}
    records = read_manifest(spec["data"])
    focus = next((r for r in runs if r["method"] in ("cde", "cde_global", "cde_patch")), runs[0] if runs else None)
    if focus:
        model, meta = load_checkpoint(focus["checkpoint"])
        subset = [r for r in records if r.role(focus["split"]) in ("test", "ood")]
        pred = predict(model, PairDataset(spec["data"], subset, meta.class_names, meta.objects or
                                          sorted({r.object for r in records}), meta.preprocessing,
                                          grid=model.grid_size))
        antonym = {r.action: r.antonym for r in records if r.antonym}
        cosines = antonym_cosines(pred.deltas, [r.action for r in subset], [r.object for r in subset], antonym)
        geometry = {"model": focus["method"], "split": focus["split"], "antonym_cosines": cosines,
                    "mean_antonym_cosine": float(np.mean(list(cosines.values()))) if cosines else None}
        _plot_geometry(pred.deltas, [r.action for r in subset], antonym, cosines, out)
        for run in runs:
            if run["seed"] == spec["seeds"][0] and run["split"] == spec["splits"][0]:
                metrics = json.loads((Path(run["checkpoint"]).parent / "metrics.json").read_text())
                if "ood" in metrics:
                    plot_confusion(metrics["ood"]["confusion_matrix"], metrics["class_names"],
                                   f"{run['method']} {run['split']} ood", out / f"confusion_{run['method']}.png")
    results = {"protocol": "checkpoints selected on IID validation only", "data": spec["data"],
               "splits": spec["splits"], "seeds": spec["seeds"], "table": table, "runs": runs, "geometry": geometry}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "results.md").write_text(results_markdown(results))
    return results


def results_markdown(results: dict[str, Any]) -> str:
    splits = results["splits"]
    head = "| method | " + " | ".join(f"{s} IID | {s} OOD | {s} gap" for s in splits) + " |"
    lines = [head, "|" + "---|" * (1 + 3 * len(splits))]
    for method, per_split in results["table"].items():
        cells = []
        for s in splits:
            r = per_split[s]
            cells += [f"{r['iid']['mean']:.3f} ± {r['iid']['ci95']:.3f}", f"{r['ood']['mean']:.3f} ± {r['ood']['ci95']:.3f}",
                      f"{r['gap']:.3f}"]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    geometry = results.get("geometry") or {}
    lines += ["", f"Accuracy mean ± 95 % CI over seeds {results['seeds']}; {results['protocol']}.",
              f"Mean antonym cosine ({geometry.get('model')}, {geometry.get('split')}): "
              f"{geometry.get('mean_antonym_cosine')}"]
    return "\n".join(lines) + "\n"


def _plot_geometry(deltas: np.ndarray, actions: list[str], antonym: dict[str, str], cosines: dict[str, float],
                   out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if len(deltas) < 3:
        return
    xy = pca_2d(deltas)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 5))
    for action in sorted(set(actions)):
        mask = np.asarray(actions) == action
        ax.scatter(xy[mask, 0], xy[mask, 1], s=10, label=action,
                   marker="^" if antonym.get(action, "") > action else "o")
    ax.set_title("deltas, first two principal components (antonyms: o vs ^)")
    ax.legend(fontsize=7)
    names = sorted(cosines)
    ax2.barh(names, [cosines[n] for n in names])
    ax2.axvline(-0.5, color="red", linestyle="--")
    ax2.set_xlim(-1, 1)
    ax2.set_title("cosine of mean antonym deltas per object (target < -0.5)")
    fig.tight_layout()
    fig.savefig(out / "deltas.png", dpi=110)
    plt.close(fig)
