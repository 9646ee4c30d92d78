"""End to end on synthetic pairs: `cde train` learns, selects on IID val, `cde eval` agrees; config
overrides; bf16 and step budgets; DDP with 2 CPU processes."""
from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from cde_core.checkpoint import load_checkpoint
from cde_core.cli import main as cde
from cde_core.data.manifest import read_manifest
from cde_core.data.synthetic import generate_synthetic
from cde_core.eval.recalibrate import recalibrate_checkpoint
from cde_core.train.config import ConfigError, load_config
from cde_core.train.trainer import action_blocks, lr_factor

from conftest import REPO_ROOT

TINY_CONFIG = str(REPO_ROOT / "cde_core" / "configs" / "synthetic_tiny.yaml")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    generate_synthetic(root, pairs_per_cell=40, size=32, seed=0)
    return root


def test_train_learns_and_eval_agrees(synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert cde(["train", TINY_CONFIG, f"data.root={synthetic}", "data.split=comp_0", f"out={out}",
                "optim.epochs=20", "progress=false"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    chance = 1 / len(metrics["class_names"])
    # Measured with this seed: IID test 0.88, OOD (held-out cells) 0.84, chance 0.14. The margins leave
    # room for other CPUs' rounding while still failing a model that did not learn.
    assert metrics["test"]["accuracy"] > 4 * chance
    assert metrics["ood"]["accuracy"] > 2 * chance
    held_out = json.loads((synthetic / "generation.json").read_text())["splits"]["comp_0"]["held_out_cells"]
    assert sorted(metrics["ood"]["per_cell_accuracy"]) == sorted(f"{o}/{a}" for o, a in held_out)
    # Selection on IID validation only: the kept epoch is the first with the best val accuracy.
    history = json.loads((out / "history.json").read_text())
    best = max(h["val_accuracy"] for h in history)
    first_best = next(h["epoch"] for h in history if h["val_accuracy"] == best)
    assert metrics["best_epoch"] == first_best
    assert metrics["val"]["accuracy"] == pytest.approx(best)
    # The resolved config is saved next to the run and reloads to the same config.
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["optim"]["epochs"] == 20 and resolved["data"]["root"] == str(synthetic)
    assert load_config(out / "config.yaml") == load_config(TINY_CONFIG, [f"data.root={synthetic}", "data.split=comp_0",
                                                                         f"out={out}", "optim.epochs=20",
                                                                         "progress=false"])
    for name in ("model.safetensors", "curves.png", "confusion_test.png", "confusion_ood.png"):
        assert (out / name).stat().st_size > 0
    # The checkpoint carries what the runtimes need.
    model, meta = load_checkpoint(out / "model.safetensors")
    assert meta.class_names == metrics["class_names"] and meta.objects == ["bar", "cross", "disc", "square"]
    assert meta.preprocessing.img_size == 32 and meta.train_config["data"]["split"] == "comp_0"
    assert meta.calibration.no_effect_magnitude > 0  # "none" pairs in val separate from the rest
    capsys.readouterr()
    assert cde(["eval", str(out / "model.safetensors"), "--data", str(synthetic), "--split", "comp_0",
                "--out", str(tmp_path / "eval")]) == 0
    report = json.loads((tmp_path / "eval" / "eval_comp_0.json").read_text())
    for role in ("train", "val", "test", "ood"):
        assert report[role]["accuracy"] == pytest.approx(metrics[role]["accuracy"])
        assert (tmp_path / "eval" / f"confusion_comp_0_{role}.png").stat().st_size > 0
        figures = report[role]["verification"]  # the live demo's figures, on pairs
        assert figures["n_succeeded"] + figures["n_failed"] + figures["n_reach"] == report[role]["n"]
        assert 0.0 <= figures["verification_balanced_accuracy"] <= 1.0
    assert report["test"]["verification"]["recognition_accuracy"] == pytest.approx(metrics["test"]["accuracy"], abs=1e-3)
    assert cde(["eval", str(out / "model.safetensors"), "--data", str(synthetic), "--split", "all",
                "--out", str(tmp_path / "eval")]) == 0
    everything = json.loads((tmp_path / "eval" / "eval_all.json").read_text())
    assert list(everything).count("all") == 1 and everything["all"]["n"] == sum(report[r]["n"] for r in report
                                                                              if r in ("train", "val", "test", "ood"))
    # cde calibrate: the same weights, the decision chosen again on the val pairs (here: the same pairs as
    # training's own calibration, so the same rule)
    assert cde(["calibrate", str(out / "model.safetensors"), "--data", str(synthetic), "--split", "comp_0",
                "--out", str(tmp_path / "recalibrated.safetensors")]) == 0
    again, meta_again = load_checkpoint(tmp_path / "recalibrated.safetensors")
    assert meta_again.calibration == meta.calibration
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    # --effect-magnitude: a named measure is set; auto takes the best no-change AUROC on those pairs (the
    # model's own measure, "global", on ties) and chooses the thresholds for it
    assert cde(["calibrate", str(out / "model.safetensors"), "--data", str(synthetic), "--split", "comp_0",
                "--effect-magnitude", "topk", "--out", str(tmp_path / "topk.safetensors")]) == 0
    assert load_checkpoint(tmp_path / "topk.safetensors")[0].config.effect_magnitude == "topk"
    auto = recalibrate_checkpoint(out / "model.safetensors", synthetic, "comp_0", tmp_path / "auto.safetensors",
                                  effect_magnitude="auto")
    scores = auto.auroc_by_effect_magnitude
    assert auto.old_effect_magnitude == "global" and sorted(scores) == ["global", "relative", "topk"]
    assert scores[auto.effect_magnitude] == max(scores.values())
    assert auto.effect_magnitude == "global" or scores[auto.effect_magnitude] > scores["global"]
    model_auto, meta_auto = load_checkpoint(tmp_path / "auto.safetensors")
    assert model_auto.config.effect_magnitude == auto.effect_magnitude and meta_auto.calibration == auto.new
    assert cde(["calibrate", str(out / "model.safetensors"), "--data", str(synthetic), "--split", "comp_0",
                "--role", "nothing", "--out", str(tmp_path / "x.safetensors")]) == 2


def test_same_seed_same_result(synthetic: Path, tmp_path: Path) -> None:
    args = [TINY_CONFIG, f"data.root={synthetic}", "data.split=iid_0", "optim.epochs=2", "progress=false",
            "optim.balanced_sampler=true"]
    cde(["train", *args, f"out={tmp_path / 'a'}"])
    cde(["train", *args, f"out={tmp_path / 'b'}"])
    cde(["train", *args, "seed=1", f"out={tmp_path / 'c'}"])
    a, b, c = (json.loads((tmp_path / x / "history.json").read_text()) for x in "abc")
    assert a == b
    assert a != c


def test_bf16_and_step_budget(synthetic: Path, tmp_path: Path) -> None:
    out = tmp_path / "bf16"
    assert cde(["train", TINY_CONFIG, f"data.root={synthetic}", "precision=bf16", "optim.steps=7",
                "optim.aux_warmup_steps=3", "optim.aux_ramp_steps=2", f"out={out}", "progress=false"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    history = json.loads((out / "history.json").read_text())
    assert metrics["steps"] == 7 and metrics["precision"] == "bf16"
    assert all(math.isfinite(v) for h in history for v in h.values())
    assert "loss_contrast" in history[-1]  # switched on after the auxiliary-loss warmup (and its ramp)


def test_overrides_typed_and_validated(tmp_path: Path) -> None:
    config = load_config(None, ["model.top_k=8", "loss.contrast=0", "optim.lr=1e-3", "model.backbone_kwargs.depth=3"])
    assert config.model.top_k == 8 and config.loss.contrast == 0.0
    assert isinstance(config.optim.lr, float) and config.optim.lr == pytest.approx(1e-3)  # YAML 1.1 reads a str
    assert config.model.backbone_kwargs == {"depth": 3}
    for bad, match in [("model.not_a_key=3", "model.not_a_key"), ("model.top_k", "key=value"),
                       ("optim.epochs=ten", "optim.epochs"), ("precision=fp16", "precision"),
                       ("optim.schedule=step", "optim.schedule"), ("model.name=icm", "loss.icm"),
                       ("loss.sms=0.1", "model.name=sms"), ("optim.batch_size=0", "batch_size"),
                       ("optim.aux_ramp_steps=-5", "aux_ramp_steps")]:
        with pytest.raises(ConfigError, match=match):
            load_config(None, [bad])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    assert cde(["train", "model.name=icm"]) == 2  # a clean error, not a traceback


def test_schedule_and_sms_blocks(synthetic: Path) -> None:
    assert lr_factor(0, 100, 10, "cosine") == pytest.approx(0.1)
    assert lr_factor(10, 100, 10, "cosine") == pytest.approx(1.0)
    assert lr_factor(100, 100, 10, "cosine") == pytest.approx(0.0)
    assert lr_factor(55, 100, 10, "linear") == pytest.approx(0.5)
    assert lr_factor(99, 100, 10, "constant") == 1.0
    records = read_manifest(synthetic)
    names = sorted({r.action for r in records})
    blocks = dict(zip(names, action_blocks(names, records)))
    assert blocks["grow"] == blocks["shrink"] and blocks["appear"] == blocks["disappear"]
    assert blocks["move_left"] == blocks["move_right"]
    assert len({blocks["grow"], blocks["appear"], blocks["move_left"], blocks["none"]}) == 4


def test_ddp_two_cpu_processes(synthetic: Path, tmp_path: Path) -> None:
    """torchrun with 2 processes (gloo): each rank trains on half the pairs per epoch, gradients are
    averaged, and rank 0 alone writes the run."""
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT))
    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port),
           "-m", "cde_core.cli", "train", TINY_CONFIG, f"data.root={synthetic}", "data.split=iid_0",
           f"out={out}", "optim.epochs=2", "progress=false", "device=cpu"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    metrics = json.loads((out / "metrics.json").read_text())
    n_train = sum(r.role("iid_0") == "train" for r in read_manifest(synthetic))
    batch = load_config(TINY_CONFIG).optim.batch_size
    assert metrics["world_size"] == 2
    assert metrics["steps"] == 2 * (math.ceil(n_train / 2) // batch)  # each rank sees half an epoch
    assert result.stdout.count("checkpoint:") == 1  # rank 0 reports and saves
    load_checkpoint(out / "model.safetensors")
