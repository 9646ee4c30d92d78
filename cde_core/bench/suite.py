"""The whole `cde bench` run: one model (random init unless a checkpoint is given), exported to ONNX, and
every measurement taken side by side in one process so the ratios compare like with like."""
from __future__ import annotations

import logging
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from cde_core.bench.compute import backbone_efficiency
from cde_core.bench.inference import critical_path, pair_latency
from cde_core.bench.training import training_throughput

_LOG = logging.getLogger(__name__)
NODE_LOAD_SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "node_load.py"

# Targets from issue 5: (key in "measured", comparison, bound)
TARGETS = {
    "ort_speedup_1_thread": (">=", 1.8),
    "ort_speedup_2_threads": (">=", 1.8),
    "critical_path_ratio": ("<=", 0.6),
    "fraction_of_peak": (">=", 0.5),
}


@dataclass
class BenchConfig:
    """What to measure and how long; `quick()` is a seconds-long smoke run on a tiny model."""

    backbone: str = "vit_tiny_patch16_224"
    img_size: int = 224
    checkpoint: str | None = None  # a trained checkpoint instead of a random-init model
    repeats: int = 30
    warmup: int = 3
    thread_counts: tuple[int, ...] = (1, 2)
    matmul_size: int = 2048
    accuracy_pairs: int = 32
    train_backbone: str = "cde_vit_small_p8"
    train_img_size: int = 64
    train_batch: int = 32
    train_steps: int = 10
    train_precision: str = "bf16"
    node_seconds: float = 0.0  # > 0 runs bench/node_load.py (needs the ROS node) for that long
    frame_width: int = 1280
    frame_height: int = 720

    @classmethod
    def quick(cls) -> "BenchConfig":
        return cls(backbone="cde_vit_test", img_size=32, repeats=3, warmup=1, matmul_size=256, accuracy_pairs=4,
                   train_backbone="cde_vit_test", train_img_size=32, train_batch=4, train_steps=2,
                   frame_width=320, frame_height=180)


def machine_info() -> dict[str, Any]:
    import onnxruntime

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores_available": len(os.sched_getaffinity(0)), "load_average": list(os.getloadavg()),
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "python": platform.python_version(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)")}


def _model_checkpoint(config: BenchConfig, workdir: Path) -> Path:
    if config.checkpoint:
        return Path(config.checkpoint)
    from cde_core.checkpoint import ModelMeta, save_checkpoint
    from cde_core.models import create_model
    from cde_core.preprocessing import Preprocessing

    torch.manual_seed(0)
    model = create_model("cde", num_classes=8, backbone=config.backbone, img_size=config.img_size)
    meta = ModelMeta(model.config, [f"action_{i}" for i in range(8)], Preprocessing(img_size=config.img_size))
    return save_checkpoint(workdir / "bench_model.safetensors", model, meta)


def node_load(config: BenchConfig, onnx_index: Path, out: Path) -> dict[str, Any]:
    """Hook for the node-under-load part: runs bench/node_load.py (real node, own process) if asked.

    `out` is where its JSON goes; the node's log goes beside it (`<out stem>.node.log`), outside any temporary
    directory, so a run that lost verifications or whose node exited can be read afterwards."""
    if config.node_seconds <= 0:
        return {"skipped": "pass --node-seconds N to drive the ROS node (bench/node_load.py)"}
    if not NODE_LOAD_SCRIPT.is_file():
        return {"skipped": f"{NODE_LOAD_SCRIPT} not found (run from a source checkout)"}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)  # a JSON left by an earlier run must not pass for this one's
    log = out.with_name(out.stem + ".node.log")
    # The node runs the trained demo model (node_load.py's default): the timing model's random classes
    # ("action_0", ...) would refuse every "open" command at STARTED and nothing would be inferred.
    del onnx_index
    cmd = [sys.executable, str(NODE_LOAD_SCRIPT), "--seconds", str(config.node_seconds), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=config.node_seconds + 120, check=False)
    if not out.is_file():
        return {"error": f"node_load.py exited {proc.returncode}: {proc.stderr[-2000:]}", "node_log": str(log)}
    import json

    return json.loads(out.read_text())


def run_bench(config: BenchConfig, workdir: Path | None = None, node_out: Path | None = None) -> dict[str, Any]:
    """Every measurement, its targets, and the machine it ran on, as one JSON-able dict.

    `node_out`: where the node-under-load JSON and, beside it, the node's log are kept (default: the work
    directory, which is temporary unless `workdir` is given)."""
    from cde_core.checkpoint import load_checkpoint
    from cde_core.export.onnx_export import export_onnx

    with tempfile.TemporaryDirectory(prefix="cde-bench-") as tmp:
        work = Path(workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        ckpt = _model_checkpoint(config, work)
        model, meta = load_checkpoint(ckpt)
        _LOG.info("bench model: %s/%s at %d px (%s)", model.config.name, model.config.backbone,
                  model.config.img_size, "trained checkpoint" if config.checkpoint else "random init")
        onnx_index = export_onnx(ckpt, work / "bench_model.onnx").index
        results: dict[str, Any] = {
            "config": asdict(config), "machine": machine_info(),
            "model": {"name": model.config.name, "backbone": model.config.backbone, "img_size": model.config.img_size,
                      "weights": "checkpoint" if config.checkpoint else "random init (timing only)",
                      "parameters": sum(p.numel() for p in model.parameters())},
        }
        _LOG.info("pair latency, torch eager vs onnxruntime")
        results["pair_latency"] = [pair_latency(model, onnx_index, t, config.repeats, config.warmup)
                                   for t in config.thread_counts]
        _LOG.info("critical path at FINISHED")
        results["critical_path"] = critical_path(onnx_index, config.repeats, config.warmup, config.frame_width,
                                                 config.frame_height)
        _LOG.info("backbone FLOP/s vs matmul peak")
        results["compute"] = backbone_efficiency(model, 1, config.repeats, config.warmup, config.matmul_size,
                                                 config.accuracy_pairs, onnx_index)
        _LOG.info("training throughput")
        results["training"] = training_throughput(config.train_backbone, config.train_img_size, config.train_batch,
                                                  config.train_steps, max(1, config.warmup), config.train_precision,
                                                  threads=1)
        results["node_load"] = node_load(config, onnx_index, node_out or work / "node_load.json")
    results["measured"] = {f"ort_speedup_{r['threads']}_thread{'s' if r['threads'] > 1 else ''}": r["ort_speedup"]
                           for r in results["pair_latency"]}
    results["measured"]["critical_path_ratio"] = results["critical_path"]["ratio"]
    results["measured"]["fraction_of_peak"] = results["compute"]["fraction_of_peak"]
    results["targets"] = {name: {"value": results["measured"][name], "target": f"{op} {bound}",
                                 "met": results["measured"][name] >= bound if op == ">=" else
                                 results["measured"][name] <= bound}
                          for name, (op, bound) in TARGETS.items() if name in results["measured"]}
    return results
