"""`cde bench --quick` end to end on a tiny model: the JSON has every section and sane values.
No timing assertions (timings depend on the machine and its load); only structure and invariants."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cde_core.bench.compute import count_flops
from cde_core.cli import main


def test_bench_quick_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sub" / "bench.json"
    assert main(["bench", "--quick", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert {"config", "machine", "model", "pair_latency", "critical_path", "compute", "training", "node_load",
            "measured", "targets"} <= set(results)
    assert [r["threads"] for r in results["pair_latency"]] == [1, 2]
    for row in results["pair_latency"]:
        assert row["torch_eager_ms"] > 0 and row["onnxruntime_ms"] > 0
        assert row["ort_speedup"] == pytest.approx(row["torch_eager_ms"] / row["onnxruntime_ms"])
    cp = results["critical_path"]
    assert cp["ratio"] == pytest.approx(cp["cached_before_ms"] / cp["both_frames_ms"])
    compute = results["compute"]
    assert compute["backbone_gflops_per_image"] > 0 and compute["peak_gflops"]["fp32"] > 0
    assert compute["best_variant"] in compute["achieved_gflops"]
    assert 0 < compute["fraction_of_peak"] < 10 and math.isfinite(compute["fraction_of_peak"])
    if "bf16_accuracy" in compute:
        assert -1.0 <= compute["bf16_accuracy"]["delta_cosine_mean"] <= 1.0
    assert results["training"]["pairs_per_s"] > 0 and results["training"]["batch"] == 4
    assert "skipped" in results["node_load"]
    assert set(results["targets"]) == {"ort_speedup_1_thread", "ort_speedup_2_threads", "critical_path_ratio",
                                       "fraction_of_peak"}
    assert all(isinstance(t["met"], bool) for t in results["targets"].values())
    assert results["model"]["weights"].startswith("random init")
    printed = capsys.readouterr().out
    assert "critical path at FINISHED" in printed and f"wrote {out}" in printed


def test_flop_count_includes_attention() -> None:
    """The CPU fused attention kernel is invisible to FlopCounterMode; the count must include it."""
    import timm
    import torch

    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, embed_dim=32,
                            depth=1, num_heads=2, num_classes=0)
    tokens, dim = 1 + 16, 32
    linear = 2 * tokens * (dim * 3 * dim + dim * dim + 2 * 4 * dim * dim)  # qkv, proj, mlp (ratio 4)
    attention = 2 * 2 * tokens * tokens * dim  # q @ k^T and attn @ v
    patch_embed = 2 * 16 * dim * 3 * 8 * 8
    flops = count_flops(vit, torch.randn(1, 3, 32, 32))
    assert flops == linear + attention + patch_embed
