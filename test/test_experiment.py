"""The experiment runner on a tiny configuration, and its statistics."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO_ROOT

from cde_core.cli import main as cde
from cde_core.data.synthetic import generate_synthetic
from cde_core.experiment.analysis import antonym_cosines, mean_ci


def test_mean_ci_hand_computed() -> None:
    r = mean_ci([0.5, 0.7, 0.6])
    assert r["mean"] == pytest.approx(0.6) and r["std"] == pytest.approx(0.1)
    assert r["ci95"] == pytest.approx(4.303 * 0.1 / np.sqrt(3))


def test_antonym_cosines() -> None:
    deltas = np.array([[1.0, 0.0], [2.0, 0.1], [-1.0, 0.0], [-3.0, -0.1], [0.0, 1.0], [1.0, 0.0]])
    actions = ["open", "open", "close", "close", "open", "close"]
    objects = ["drawer"] * 4 + ["door", "door"]
    cos = antonym_cosines(deltas, actions, objects, {"open": "close", "close": "open"})
    assert cos["drawer:close/open"] == pytest.approx(-1.0, abs=1e-3)
    assert cos["door:close/open"] == pytest.approx(0.0, abs=1e-6)


def test_experiment_runner_tiny(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    generate_synthetic(data, pairs_per_cell=10, size=32, seed=0)
    config = tmp_path / "exp.yaml"
    methods = ("vanilla", "cde_ce_only", "cde")  # the full model is not the first CDE-family method
    config.write_text(yaml.safe_dump({
        "data": str(data), "splits": ["comp_0"], "seeds": [0, 1], "methods": list(methods),
        "train_config": str(REPO_ROOT / "cde_core" / "configs" / "synthetic_tiny.yaml"),
        "overrides": ["optim.epochs=2"]}))
    out = tmp_path / "out"
    assert cde(["experiment", str(config), "--out", str(out), "--workers", "2"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert len(results["runs"]) == 1 * 3 * 2
    logged = capfd.readouterr().err  # the worker processes' per-run lines reach the shared stderr
    assert all(f"comp_0 {m} seed {s}: iid" in logged for m in methods for s in (0, 1)), logged[-2000:]
    assert [(r["method"], r["seed"]) for r in results["runs"]] == [
        (m, s) for m in methods for s in (0, 1)]  # two workers, results in job order
    for method in methods:
        for split in ("comp_0",):
            row = results["table"][method][split]
            runs = [r for r in results["runs"] if r["method"] == method and r["split"] == split]
            assert row["ood"]["mean"] == pytest.approx(np.mean([r["ood"] for r in runs]))
            assert row["val"]["mean"] == pytest.approx(np.mean([r["val"] for r in runs]))
            assert row["gap"] == pytest.approx(row["iid"]["mean"] - row["ood"]["mean"])
            assert row["iid"]["n"] == 2
            # OOD accuracy per held-out cell: the mean over seeds of each run's metrics.json.
            per_seed = [json.loads((Path(r["checkpoint"]).parent / "metrics.json").read_text()) for r in runs]
            cells = results["diagnostics"]["per_cell_ood"][split][method]
            assert set(cells) == set(per_seed[0]["ood"]["per_cell_accuracy"]) and cells
            for cell, stats in cells.items():
                assert stats["mean"] == pytest.approx(np.mean([m["ood"]["per_cell_accuracy"][cell] for m in per_seed]))
            for r, m in zip(runs, per_seed):
                assert r["precision"] == m["precision"] == "fp32" and r["seconds"] >= r["train_seconds"] > 0
    timing = results["timing"]
    assert timing["total_seconds"] >= timing["training_seconds"] > 0 and timing["runs"] == 6
    assert results["precision"] == "fp32"
    assert results["protocol"].startswith("checkpoints selected on IID validation")
    geometry = results["diagnostics"]["geometry"]["comp_0"]
    assert geometry["antonym"]["method"] == "cde" and geometry["antonym"]["cosines"]
    assert results["geometry"]["model"] == "cde" and results["geometry"]["antonym_cosines"]
    assert [(i["method"], i["features"]) for i in geometry["invariance"]] == [
        ("cde", "global delta"), ("vanilla", "hidden layer"), ("vanilla", "hidden layer (centred)"),
        ("vanilla", "global delta")]
    assert all(-1 <= i["same_action"] <= 1 and -1 <= i["same_object"] <= 1 for i in geometry["invariance"])
    no_change = {nc["method"]: nc for nc in geometry["no_change"]}  # what each model calls "nothing changed"
    assert set(no_change) == {"cde", "vanilla"}
    assert sum(g["pairs"] for g in no_change["cde"]["groups"].values()) == geometry["pairs"]
    assert set(no_change["cde"]["groups"]) == {"ood change", "ood none", "test change", "test none"}
    assert all(g["median_delta_norm"] is None for g in no_change["vanilla"]["groups"].values())
    assert all(g["median_delta_norm"] > 0 for g in no_change["cde"]["groups"].values() if g["pairs"])
    targets = results["targets"]
    assert targets["selected_on_val"] in ("cde_ce_only", "cde") and targets["candidates"] == ["cde_ce_only", "cde"]
    assert [r["target"].split()[0] for r in targets["rows"]] == ["best", "best", "cde", "mean"]
    assert targets["rows"][2]["met"] is None  # cde_no_l1 / cde_no_supcon not in this experiment
    md = (out / "results.md").read_text()
    assert "| cde |" in md and "comp_0 OOD" in md
    for section in ("## Targets (issue 16)", "## OOD accuracy per held-out cell", "## Invariance of the representation",
                    "## Antonym cosines", '## What is called "nothing changed"', "## Runs", "Precision: fp32.", "Wall time: "):
        assert section in md, section
    assert f"| comp_0 | cde | 1 | fp32 | {results['runs'][-1]['seconds']:.1f} |" in md
    for png in ("deltas.png", "deltas_comp_0.png", "confusion_cde.png"):
        assert (out / png).stat().st_size > 0
    # scripts/no_change_diagnostic.py reruns that diagnostic on a finished experiment: the same table.
    script = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "no_change_diagnostic.py"), str(out)],
                            capture_output=True, text=True, check=True).stdout
    table = md[md.index('## What is called "nothing changed"'):md.index("## Runs")].strip()
    assert table.splitlines()[-1] in script and f"# {out}" in script
    # --resume: the finished runs are reused, not trained again (same rows, checkpoints untouched); a run whose
    # configuration differs (another epoch count) is trained.
    stamps = {r["checkpoint"]: Path(r["checkpoint"]).stat().st_mtime_ns for r in results["runs"]}
    assert cde(["experiment", str(config), "--out", str(out), "--resume"]) == 0
    resumed = json.loads((out / "results.json").read_text())
    assert resumed["timing"]["resumed"] == 6 and all(r["resumed"] for r in resumed["runs"])
    assert [(r["method"], r["seed"], r["ood"], r["best_epoch"]) for r in resumed["runs"]] == [
        (r["method"], r["seed"], r["ood"], r["best_epoch"]) for r in results["runs"]]
    assert all(Path(c).stat().st_mtime_ns == t for c, t in stamps.items())
    assert "Resumed (`--resume`): 6 of the 6 runs" in (out / "results.md").read_text()
    from cde_core.experiment.runner import finished_run

    spec = yaml.safe_load(config.read_text())
    job = {"split": "comp_0", "method": "vanilla", "seed": 0, "train_config": spec["train_config"]}
    base = [*spec["overrides"], "model.name=vanilla", "loss.contrast=0", "loss.sparsity=0", f"data.root={data}",
            "data.split=comp_0", "seed=0", f"out={out / 'runs' / 'comp_0' / 'vanilla' / 'seed0'}", "progress=false"]
    assert finished_run({**job, "overrides": base}) is not None
    assert finished_run({**job, "overrides": [*base, "optim.epochs=3"]}) is None
    # A run saved before a config key existed (the key missing from its config.yaml) is read with the key's
    # default, so it is still this job's run; a saved key this version does not know makes it someone else's.
    saved_config = out / "runs" / "comp_0" / "vanilla" / "seed0" / "config.yaml"
    tree = yaml.safe_load(saved_config.read_text())
    del tree["optim"]["aux_ramp_steps"], tree["model"]["norm_feature"]
    saved_config.write_text(yaml.safe_dump(tree, sort_keys=False))
    assert finished_run({**job, "overrides": base}) is not None
    tree["model"]["from_the_future"] = 1
    saved_config.write_text(yaml.safe_dump(tree, sort_keys=False))
    assert finished_run({**job, "overrides": base}) is None
    results = resumed

    # An experiment compared with itself: every paired difference is 0.
    assert cde(["experiment", "compare", str(out), str(out), "--labels", "a", "b", "--out", str(tmp_path / "cmp")]) == 0
    comparison = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert len(comparison["rows"]) == 3 and all(r["difference"]["mean"] == 0 for r in comparison["rows"])


def test_bad_experiment_config(tmp_path: Path) -> None:
    from cde_core.experiment.runner import load_experiment

    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump({"data": "x", "splits": ["comp_0"], "seeds": [0], "methods": ["magic"]}))
    with pytest.raises(ValueError, match="unknown methods"):
        load_experiment(path)


def test_methods_and_data_options_replace_the_configs(tmp_path: Path) -> None:
    """`--methods` / `--data` run another method list / dataset on the same config (a try), checked like the
    config's own."""
    from cde_core.experiment.runner import load_experiment

    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump({"data": "x", "splits": ["comp_0"], "seeds": [0], "methods": ["vanilla", "cde"]}))
    assert load_experiment(path)["methods"] == ["vanilla", "cde"]
    assert load_experiment(path, ["vanilla", "cde_paper"])["methods"] == ["vanilla", "cde_paper"]
    with pytest.raises(ValueError, match="unknown methods"):
        load_experiment(path, ["vanilla", "data.robot_mask=union"])  # an override swallowed by --methods
    with pytest.raises(ValueError, match="at least one method"):
        load_experiment(path, [])
    assert load_experiment(path, data="runs/other")["data"] == "runs/other"  # --data
    with pytest.raises(SystemExit, match="and --methods"):
        cde(["experiment", "compare", "a", "b", "--methods", "cde", "--out", str(tmp_path / "cmp")])
    with pytest.raises(SystemExit, match="and --data"):
        cde(["experiment", "compare", "a", "b", "--data", "x", "--out", str(tmp_path / "cmp")])


def test_auto_precision_is_probed_once_for_the_whole_experiment() -> None:
    from cde_core.experiment.runner import _experiment_precision

    job = {"train_config": str(REPO_ROOT / "cde_core" / "configs" / "synthetic_tiny.yaml"), "overrides": []}
    assert _experiment_precision({**job, "overrides": ["precision=fp32"]}) is None  # a concrete one is kept
    assert _experiment_precision({**job, "overrides": ["precision=auto"]}) in ("fp32", "bf16")


def test_resumed_precision_is_the_one_the_finished_runs_were_configured_with(tmp_path: Path) -> None:
    """A resumed experiment must configure its runs as the finished ones were, or none of them matches and all
    train again: bf16 when they all say bf16, auto for runs from before the experiment-wide probe."""
    from cde_core.experiment.runner import _resumed_precision

    def runs_with(*precisions: str) -> Path:
        out = tmp_path / "-".join(precisions)
        for i, precision in enumerate(precisions):
            run = out / "runs" / "comp_0" / "cde" / f"seed{i}"
            run.mkdir(parents=True)
            (run / "config.yaml").write_text(yaml.safe_dump({"precision": precision}))
        return out

    assert _resumed_precision(runs_with("bf16", "bf16")) == "bf16"
    assert _resumed_precision(runs_with("auto", "auto")) == "auto"
    assert _resumed_precision(runs_with("auto", "fp32")) is None  # not one: probe again
    assert _resumed_precision(tmp_path / "nothing") is None


def test_overrides_may_follow_the_options(tmp_path: Path) -> None:
    """`cde experiment CONFIG --out DIR key=value` (the documented order) reaches the runner's config check."""
    with pytest.raises(ValueError, match="needs 'data'"):
        config = tmp_path / "empty.yaml"
        config.write_text("splits: [comp_0]\n")
        cde(["experiment", str(config), "--out", str(tmp_path / "out"), "optim.epochs=1"])
