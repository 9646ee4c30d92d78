"""`cde bench [--out bench.json] [--quick]`: latency, critical path, FLOP/s vs peak, training throughput
(and the node under load with --node-seconds), measured side by side in one run; prints a table."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cde_core.bench.suite import BenchConfig, run_bench


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="bench.json", help="where to write the JSON results")
    parser.add_argument("--quick", action="store_true", help="tiny model, few repeats: a smoke run, not numbers")
    parser.add_argument("--backbone", help="inference backbone (default vit_tiny_patch16_224, random init)")
    parser.add_argument("--img-size", type=int, help="inference input size (default 224)")
    parser.add_argument("--checkpoint", help="time a trained checkpoint instead of a random-init model")
    parser.add_argument("--repeats", type=int, help="timed runs per measurement (median reported)")
    parser.add_argument("--node-seconds", type=float, default=0.0,
                        help="also drive the ROS node for this long (bench/node_load.py); 0 skips it")


def _config(args: argparse.Namespace) -> BenchConfig:
    config = BenchConfig.quick() if args.quick else BenchConfig()
    for field, value in (("backbone", args.backbone), ("img_size", args.img_size), ("checkpoint", args.checkpoint),
                         ("repeats", args.repeats)):
        if value is not None:
            setattr(config, field, value)
    config.node_seconds = args.node_seconds
    return config


def format_table(results: dict[str, Any]) -> str:
    """The human summary: one line per measurement, target and verdict where there is one."""
    rows: list[tuple[str, str, str]] = []
    targets = results["targets"]

    def verdict(name: str) -> str:
        return f"{targets[name]['target']}: {'met' if targets[name]['met'] else 'MISSED'}" if name in targets else ""

    for r in results["pair_latency"]:
        name = f"ort_speedup_{r['threads']}_thread{'s' if r['threads'] > 1 else ''}"
        rows.append((f"pair latency, {r['threads']} thread(s): torch eager / onnxruntime",
                     f"{r['torch_eager_ms']:.1f} / {r['onnxruntime_ms']:.1f} ms = {r['ort_speedup']:.2f}x",
                     verdict(name)))
    cp = results["critical_path"]
    rows.append((f"critical path at FINISHED ({cp['frame']}, ort 1 thread): cached / both",
                 f"{cp['cached_before_ms']:.1f} / {cp['both_frames_ms']:.1f} ms = {cp['ratio']:.2f}",
                 verdict("critical_path_ratio")))
    c = results["compute"]
    peaks = ", ".join(f"{k} {v:.0f}" for k, v in c["peak_gflops"].items())
    rows.append((f"matmul peak {c['matmul_size']}^2, 1 thread (GFLOP/s)", peaks, ""))
    for variant, ms in c["ms_per_image"].items():
        rows.append((f"backbone {variant}, batch 1 ({c['backbone_gflops_per_image']:.3g} GFLOP)",
                     f"{ms:.1f} ms, {c['achieved_gflops'][variant]:.0f} GFLOP/s "
                     f"({c['fraction_of_own_precision_peak'][variant]:.2f} of its precision's peak)", ""))
    rows.append((f"fraction of peak: best ({c['best_variant']}) / {c['fastest_precision']} peak",
                 f"{c['fraction_of_peak']:.2f}", verdict("fraction_of_peak")))
    if "bf16_accuracy" in c:
        a = c["bf16_accuracy"]
        rows.append((f"bf16 cost ({a['variant']}, {a['pairs']} pairs) vs fp32",
                     f"delta cos {a['delta_cosine_mean']:.4f} (min {a['delta_cosine_min']:.4f}), argmax agree "
                     f"{a['logits_argmax_agreement']:.2f}, Top-K overlap {a['topk_set_overlap']:.2f}", ""))
    t = results["training"]
    rows.append((f"training {t['backbone']} {t['img_size']}px batch {t['batch']} {t['precision']}, 1 thread",
                 f"{t['pairs_per_s']:.1f} pairs/s", ""))
    node = results["node_load"]
    rows.append(("node under load", node.get("skipped") or node.get("error") or json.dumps(node)[:200], ""))
    if node.get("node_exit"):
        rows.append(("node EXITED during the run", json.dumps({k: v for k, v in node["node_exit"].items()
                                                               if k != "log_tail"}), ""))
    width = max(len(r[0]) for r in rows)
    m, model = results["machine"], results["model"]
    header = (f"cde bench: {model['name']}/{model['backbone']} {model['img_size']}px ({model['weights']}); "
              f"{m['cpu']}, {m['cores_available']} cores, load {m['load_average'][0]:.1f}; torch {m['torch']}, "
              f"onnxruntime {m['onnxruntime']}")
    return "\n".join([header] + [f"{a:<{width}}  {b}{'  [' + c + ']' if c else ''}" for a, b, c in rows])


def node_load_json(out: Path) -> Path:
    """Where the node-under-load JSON goes: beside the bench JSON (`bench.json` -> `bench.node_load.json`, the
    node's log `bench.node_load.node.log` next to it), never in the run's temporary directory."""
    return out.with_name(out.stem + ".node_load.json")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = run_bench(_config(args), node_out=node_load_json(out))
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(format_table(results))
    print(f"wrote {out}")
    return 0
