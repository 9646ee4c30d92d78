"""`cde experiment CONFIG --out DIR`: train and evaluate every method on the same data, splits and seeds.

Checkpoints are selected on IID validation only (the trainer never looks at `ood`). Writes
results.json: per method and split, mean, std and 95 % CI over seeds of IID-val, IID-test and OOD
accuracy and the gap; every run (with its precision and wall seconds); the diagnostics (OOD accuracy
per held-out cell, invariance and antonym cosines of the deltas: diagnostics.py); issue 16's targets
(targets.py) and the wall time. results.md shows all of it as tables (report.py). Plots: confusion
matrices and deltas_<split>.png (PCA by action and by object, antonym cosines; deltas.png = the first split).
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from cde_core.experiment.analysis import mean_ci
from cde_core.experiment.diagnostics import (
    cde_family,
    delta_geometry,
    mean_antonym_cosine,
    per_cell_ood,
)
from cde_core.experiment.methods import METHODS
from cde_core.experiment.report import results_markdown
from cde_core.experiment.targets import check_targets
from cde_core.train.config import ConfigError, load_config

_LOG = logging.getLogger(__name__)


def load_experiment(path: str | Path, methods: list[str] | None = None, data: str | None = None) -> dict[str, Any]:
    """The experiment YAML, checked; `methods` and `data` (the command line's --methods, --data) replace its
    method list and data directory, so a try with another method or dataset needs no copy of the config.
    (A `data.root=` training override cannot do it: the runner sets each run's data.root from `data`.)"""
    spec = yaml.safe_load(Path(path).read_text()) or {}
    if data is not None:
        spec["data"] = str(data)
    if methods is not None:
        if not methods:
            raise ValueError("--methods needs at least one method")
        spec["methods"] = list(methods)
    for key in ("data", "splits", "seeds", "methods"):
        if key not in spec:
            raise ValueError(f"experiment config {path} needs '{key}'")
    unknown = [m for m in spec["methods"] if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; known: {sorted(METHODS)}")
    spec.setdefault("train_config", None)
    spec.setdefault("overrides", [])
    return spec


def _run_row(job: dict[str, Any], m: dict[str, Any], checkpoint: Path, seconds: float) -> dict[str, Any]:
    """One run's row of results.json from its metrics.json."""
    return {"split": job["split"], "method": job["method"], "seed": job["seed"], "best_epoch": m["best_epoch"],
            "precision": m.get("precision"),
            "val": m["val"]["accuracy"] if "val" in m else float("nan"),
            "iid": m["test"]["accuracy"] if "test" in m else float("nan"),
            "ood": m["ood"]["accuracy"] if "ood" in m else float("nan"),
            "ood_cell_balanced": m.get("ood", {}).get("cell_balanced_accuracy", float("nan")),
            "ood_per_cell": m.get("ood", {}).get("per_cell_accuracy", {}),
            "seconds": seconds, "train_seconds": float(m["seconds"]), "checkpoint": str(checkpoint)}


def finished_run(job: dict[str, Any]) -> dict[str, Any] | None:
    """The row of a run already in its directory with this job's resolved configuration (config.yaml equal
    to it once read back, so a key added since with its default changes nothing; metrics.json and
    model.safetensors written), else None: what `--resume` reuses instead of training.
    Its `seconds` are the trainer's own (the first wall time was not kept) and `resumed` is set."""
    config = load_config(job["train_config"], job["overrides"])
    run_dir = Path(config.out)
    files = [run_dir / name for name in ("config.yaml", "metrics.json", "model.safetensors")]
    if not all(f.is_file() for f in files):
        return None
    try:  # read like any config: keys added since the run was saved take their defaults
        saved = load_config(files[0])
    except ConfigError:
        return None
    if saved.to_dict() != config.to_dict():
        return None
    metrics = json.loads(files[1].read_text())
    return {**_run_row(job, metrics, files[2], float(metrics["seconds"])), "resumed": True}


def _worker_logging() -> None:
    """A spawned worker starts with no logging set up: show its per-run lines (trained / reused) on the
    stderr it shares with the main process, and only warnings from everything else it runs."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _LOG.setLevel(logging.INFO)


def _train_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train and evaluate one (split, method, seed); a module-level function so worker processes can run it.

    `seconds` is this job's wall time (data, training, evaluation, writing); `train_seconds` the trainer's own."""
    from cde_core.train.trainer import train

    if job.get("resume"):
        done = finished_run(job)
        if done is not None:
            _LOG.info("%s %s seed %d: reused (--resume)", job["split"], job["method"], job["seed"])
            return done
    start = time.perf_counter()
    result = train(load_config(job["train_config"], job["overrides"]))
    run = _run_row(job, {**result.metrics, "best_epoch": result.best_epoch, "seconds": result.seconds},
                   result.checkpoint, time.perf_counter() - start)
    _LOG.info("%s %s seed %d: iid %.3f ood %.3f (%.0f s)", run["split"], run["method"], run["seed"], run["iid"],
              run["ood"], run["seconds"])
    return run


def summarise(runs: list[dict[str, Any]], methods: list[str], splits: list[str]) -> dict[str, dict[str, Any]]:
    """method -> split -> mean/CI over seeds of IID val, IID test, OOD and cell-balanced OOD accuracy, and the gap."""
    table: dict[str, dict[str, Any]] = {}
    for method in methods:
        for split in splits:
            rows = [r for r in runs if r["method"] == method and r["split"] == split]
            iid, ood = mean_ci([r["iid"] for r in rows]), mean_ci([r["ood"] for r in rows])
            table.setdefault(method, {})[split] = {"val": mean_ci([r["val"] for r in rows]), "iid": iid, "ood": ood,
                                                   "gap": iid["mean"] - ood["mean"],
                                                   "ood_cell_balanced": mean_ci([r["ood_cell_balanced"] for r in rows])}
    return table


def _experiment_precision(job: dict[str, Any]) -> str | None:
    """The concrete precision for every run when the resolved training config asks for `auto` (probed once
    here: a per-run probe on a loaded machine picked fp32 for 4-7 of 100 runs of one experiment), else None."""
    from cde_core.models import model_from_config
    from cde_core.train import distributed
    from cde_core.train.precision import resolve_precision

    config = load_config(job["train_config"], job["overrides"])
    if config.precision != "auto":
        return None
    width = model_from_config(config.model).backbone.embed_dim
    precision, probe = resolve_precision("auto", width, distributed.resolve_device(config.device),
                                         max(1, config.threads))
    _LOG.info("experiment precision: %s (probe %s)", precision, probe)
    return precision


def _resumed_precision(out: Path) -> str | None:
    """The one precision the finished runs under `out` were configured with, so a resumed `auto` experiment uses
    it again instead of a new probe that may pick the other one (and match none of them); "auto" for runs made
    before the experiment-wide probe (each resolved its own); None if not one."""
    found = {yaml.safe_load(p.read_text()).get("precision") for p in (out / "runs").glob("*/*/*/config.yaml")}
    return found.pop() if len(found) == 1 else None


def run_experiment(path: str | Path, out: str | Path, extra: list[str] | None = None,
                   workers: int | None = None, methods: list[str] | None = None,
                   data: str | None = None, resume: bool = False) -> dict[str, Any]:
    """Every (split, method, seed) run, in `workers` processes (default: the config's `workers`, else 1),
    then the diagnostics (diagnostics.py) and the targets (targets.py). `methods` and `data` replace the
    config's; the experiment.yaml written beside the results records what ran. `resume` reuses every run whose
    directory already holds a finished run of the same resolved configuration (`finished_run`), so an
    experiment cut off after its trainings (or half-way) finishes without training them again."""
    from cde_core.data.manifest import NO_CHANGE
    from cde_core.eval.plots import plot_confusion

    start = time.perf_counter()
    spec = load_experiment(path, methods, data)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "experiment.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    jobs = [{"split": split, "method": method, "seed": seed, "train_config": spec["train_config"],
             "overrides": [*spec["overrides"], *METHODS[method], *(extra or []), f"data.root={spec['data']}",
                           f"data.split={split}", f"seed={seed}", f"out={out / 'runs' / split / method / f'seed{seed}'}",
                           "progress=false"]}
            for split in spec["splits"] for method in spec["methods"] for seed in spec["seeds"]]
    precision = (_resumed_precision(out) if resume else None) or (_experiment_precision(jobs[0]) if jobs else None)
    if precision is not None:  # `auto`, decided once: every run of one experiment uses the same precision
        for job in jobs:
            job["overrides"].append(f"precision={precision}")
    for job in jobs:
        job["resume"] = resume
    workers = max(1, int(workers if workers is not None else spec.get("workers", 1)))
    runs: list[dict[str, Any]] = []
    if workers == 1:
        runs = [_train_one(job) for job in jobs]
    else:  # one training per process, each on its own intra-op thread (threads=1 in the configs)
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(workers, initializer=_worker_logging) as pool:
            runs = list(pool.imap(_train_one, jobs))
    training_seconds = time.perf_counter() - start
    table = summarise(runs, spec["methods"], spec["splits"])
    geometry_by_split = delta_geometry(spec["data"], runs, spec["methods"], spec["splits"], spec["seeds"][0], out,
                                       exclude_actions=(NO_CHANGE,)) if runs else {}
    first = geometry_by_split.get(spec["splits"][0], {})
    if first.get("figure"):  # the README's figure: the first split's
        shutil.copyfile(out / first["figure"], out / "deltas.png")
    antonym = first.get("antonym", {})
    geometry = {"model": antonym.get("method"), "split": spec["splits"][0], "antonym_cosines": antonym.get("cosines", {}),
                "mean_antonym_cosine": antonym.get("mean")} if antonym else {}
    for run in runs:
        if run["seed"] == spec["seeds"][0] and run["split"] == spec["splits"][0]:
            metrics = json.loads((Path(run["checkpoint"]).parent / "metrics.json").read_text())
            if "ood" in metrics:
                plot_confusion(metrics["ood"]["confusion_matrix"], metrics["class_names"],
                               f"{run['method']} {run['split']} ood", out / f"confusion_{run['method']}.png")
    targets = check_targets(table, spec["splits"], cde_family(spec["methods"]), mean_antonym_cosine(geometry_by_split))
    precisions = sorted({str(r["precision"]) for r in runs})
    results = {"protocol": "checkpoints selected on IID validation only", "data": spec["data"],
               "splits": spec["splits"], "seeds": spec["seeds"], "methods": spec["methods"],
               "precision": precisions[0] if len(precisions) == 1 else precisions,
               "timing": {"total_seconds": time.perf_counter() - start, "training_seconds": training_seconds,
                          "run_seconds_sum": float(sum(r["seconds"] for r in runs)), "runs": len(runs),
                          "workers": workers, "resumed": sum(1 for r in runs if r.get("resumed"))},
               "table": table, "runs": runs, "geometry": geometry,
               "diagnostics": {"per_cell_ood": per_cell_ood(runs, spec["methods"], spec["splits"]),
                               "geometry": geometry_by_split},
               "targets": targets}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "results.md").write_text(results_markdown(results))
    return results
