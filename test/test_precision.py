"""`precision: auto` (cde_core/train/precision.py): the decision on probe numbers, and a run that records what
it picked instead of 'auto'."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT

from cde_core.bench.compute import matmul_gflops
from cde_core.cli import main as cde
from cde_core.data.synthetic import generate_synthetic
from cde_core.train.config import ConfigError, load_config
from cde_core.train.precision import (
    BF16_MIN_SPEEDUP,
    autocast_context,
    choose_precision,
    resolve_precision,
)

TINY_CONFIG = str(REPO_ROOT / "cde_core" / "configs" / "synthetic_tiny.yaml")


@pytest.mark.parametrize("gflops, expected", [
    ({"fp32": 217.0, "bf16": 1185.0}, "bf16"),  # a CPU with AVX512-BF16 / AMX
    ({"fp32": 157.0, "bf16": 78.0}, "fp32"),  # a CPU that emulates bf16
    ({"fp32": 100.0, "bf16": 110.0}, "fp32"),  # a near tie is not worth bf16's rounding
    ({"fp32": 100.0, "bf16": 100.0 * BF16_MIN_SPEEDUP}, "bf16"),
    ({"fp32": 100.0}, "fp32"),  # no bf16 number: never guess bf16
    ({"fp32": 0.0, "bf16": 0.0}, "fp32"),
])
def test_choose_precision_on_probe_numbers(gflops: dict[str, float], expected: str) -> None:
    assert choose_precision(gflops) == expected


def test_concrete_precisions_pass_through_and_auto_is_valid_config() -> None:
    assert resolve_precision("bf16", 32, torch.device("cpu"), 1) == ("bf16", None)
    assert resolve_precision("fp32", 32, torch.device("cpu"), 1) == ("fp32", None)
    assert load_config(None, ["precision=auto"]).precision == "auto"
    with pytest.raises(ConfigError, match="precision"):
        load_config(None, ["precision=fp16"])
    with pytest.raises(ValueError, match="resolve 'auto' first"):
        autocast_context("auto", torch.device("cpu"))


def test_probe_measures_both_precisions() -> None:
    gflops = matmul_gflops(64, 32, 32, repeats=3, warmup=1)
    assert set(gflops) == {"fp32", "bf16"} and all(v > 0 for v in gflops.values())


def test_auto_run_writes_the_precision_it_picked(tmp_path: Path) -> None:
    root = tmp_path / "data"
    generate_synthetic(root, pairs_per_cell=4, size=32, seed=0)
    out = tmp_path / "run"
    assert cde(["train", TINY_CONFIG, f"data.root={root}", "precision=auto", "optim.steps=2", "progress=false",
                "device=cpu", f"out={out}"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    probe = metrics["precision_probe"]
    assert metrics["precision"] in ("fp32", "bf16")
    assert probe["picked"] == metrics["precision"] == choose_precision(probe["gflops"])
    assert probe["matmul"][1:] == [32, 32]  # the width of cde_vit_test
    assert all(probe["gflops"][k] > 0 for k in ("fp32", "bf16"))
    # The config keeps what was asked for; metrics say what ran.
    assert load_config(out / "config.yaml").precision == "auto"
    assert cde(["train", TINY_CONFIG, f"data.root={root}", "optim.steps=1", "progress=false", "device=cpu",
                f"out={tmp_path / 'fixed'}"]) == 0
    fixed = json.loads((tmp_path / "fixed" / "metrics.json").read_text())
    assert fixed["precision"] == "fp32" and fixed["precision_probe"] is None
