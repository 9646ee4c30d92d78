"""The experiment runner on a tiny configuration, and its statistics."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from cde_core.cli import main as cde
from cde_core.data.synthetic import generate_synthetic
from cde_core.experiment.analysis import antonym_cosines, mean_ci

from conftest import REPO_ROOT


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


def test_experiment_runner_tiny(tmp_path: Path) -> None:
    data = tmp_path / "data"
    generate_synthetic(data, pairs_per_cell=10, size=32, seed=0)
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump({
        "data": str(data), "splits": ["comp_0"], "seeds": [0, 1],
        "methods": ["vanilla", "cde", "cde_ce_only"],
        "train_config": str(REPO_ROOT / "cde_core" / "configs" / "synthetic_tiny.yaml"),
        "overrides": ["optim.epochs=2"]}))
    assert cde(["experiment", str(config), "--out", str(tmp_path / "out"), "--workers", "2"]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(results["runs"]) == 1 * 3 * 2
    assert [(r["method"], r["seed"]) for r in results["runs"]] == [
        (m, s) for m in ("vanilla", "cde", "cde_ce_only") for s in (0, 1)]  # two workers, results in job order
    for method in ("vanilla", "cde", "cde_ce_only"):
        for split in ("comp_0",):
            row = results["table"][method][split]
            runs = [r for r in results["runs"] if r["method"] == method and r["split"] == split]
            assert row["ood"]["mean"] == pytest.approx(np.mean([r["ood"] for r in runs]))
            assert row["gap"] == pytest.approx(row["iid"]["mean"] - row["ood"]["mean"])
            assert row["iid"]["n"] == 2
    assert results["protocol"].startswith("checkpoints selected on IID validation")
    assert results["geometry"]["antonym_cosines"]
    md = (tmp_path / "out" / "results.md").read_text()
    assert "| cde |" in md and "comp_0 OOD" in md
    for png in ("deltas.png", "confusion_cde.png"):
        assert (tmp_path / "out" / png).stat().st_size > 0


def test_bad_experiment_config(tmp_path: Path) -> None:
    from cde_core.experiment.runner import load_experiment

    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump({"data": "x", "splits": ["comp_0"], "seeds": [0], "methods": ["magic"]}))
    with pytest.raises(ValueError, match="unknown methods"):
        load_experiment(path)
