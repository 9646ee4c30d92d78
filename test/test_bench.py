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


def _node_load_module():
    import importlib.util

    from cde_core.bench.suite import NODE_LOAD_SCRIPT

    spec = importlib.util.spec_from_file_location("node_load", NODE_LOAD_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("code, expected", [
    ("import sys; sys.exit(3)", {"code": 3, "signal": None}),
    ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", {"code": None, "signal": "SIGKILL"}),
    ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", {"code": None, "signal": "SIGSEGV"}),
])
def test_node_exit_report_names_the_exit_code_or_signal_of_a_real_process(tmp_path: Path, code: str,
                                                                          expected: dict) -> None:
    """Issue 13: a node gone mid-run was visible only as rss_mb_end NaN. The report now says how it ended."""
    import subprocess
    import sys

    log = tmp_path / "run.node.log"
    with open(log, "w") as handle:
        proc = subprocess.Popen([sys.executable, "-c", f"print('last words', flush=True); {code}"],
                                stdout=handle, stderr=subprocess.STDOUT)
        proc.wait()
    report = _node_load_module().node_exit_report(proc.returncode, after_s=12.34, log=log)
    assert {k: report[k] for k in ("code", "signal")} == expected
    assert report["after_s"] == 12.3 and report["log"] == str(log) and "last words" in report["log_tail"]
    assert _node_load_module().node_exit_report(None) is None  # still running at the end: nothing to say


def test_node_log_is_kept_beside_the_json() -> None:
    module = _node_load_module()
    assert module.node_log_path(Path("runs/bench/attack_3.json"), Path("/tmp/x")) == Path(
        "runs/bench/attack_3.node.log")


def test_bench_keeps_the_node_load_json_and_log_beside_its_output(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`cde bench` ran node_load.py with --out in its temporary directory, deleted with the node's log."""
    from cde_core.bench import suite
    from cde_core.commands.bench import node_load_json

    fake = tmp_path / "fake_node_load.py"  # stands in for bench/node_load.py: writes what it is told to
    fake.write_text("import json, sys\nout = sys.argv[sys.argv.index('--out') + 1]\n"
                    "open(out[:-len('.json')] + '.node.log', 'w').write('node log')\n"
                    "json.dump({'node_exit': {'code': None, 'signal': 'SIGKILL'}}, open(out, 'w'))\n")
    monkeypatch.setattr(suite, "NODE_LOAD_SCRIPT", fake)
    out = node_load_json(tmp_path / "results" / "bench.json")
    assert out == tmp_path / "results" / "bench.node_load.json"
    config = suite.BenchConfig.quick()
    config.node_seconds = 1.0
    assert suite.node_load(config, Path("unused.onnx"), out) == {"node_exit": {"code": None, "signal": "SIGKILL"}}
    assert (tmp_path / "results" / "bench.node_load.node.log").read_text() == "node log"
    fake.write_text("import sys; sys.stderr.write('boom'); sys.exit(2)\n")  # no JSON: the error says so
    result = suite.node_load(config, Path("unused.onnx"), out)  # and a stale JSON is not taken for this run's
    assert result["error"].startswith("node_load.py exited 2: boom")
    assert result["node_log"] == str(tmp_path / "results" / "bench.node_load.node.log")
