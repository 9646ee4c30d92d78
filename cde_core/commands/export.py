"""`cde export onnx CHECKPOINT --out PATH` and `cde export tensorrt ONNX ...`"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="format", required=True)
    onnx = sub.add_parser("onnx", help="encoder + head ONNX graphs with metadata")
    onnx.add_argument("checkpoint")
    onnx.add_argument("--out", required=True, help="PATH.onnx (the index; graphs beside it)")
    onnx.add_argument("--opset", type=int, default=17, help="17 parses on TensorRT 8.5/8.6 (JetPack 5/6.0)")
    trt = sub.add_parser("tensorrt", help="build (or reuse) a TensorRT engine per graph (GPU/Jetson only)")
    trt.add_argument("onnx", help="the .onnx index written by `cde export onnx`")
    trt.add_argument("--precision", choices=["fp16", "fp32"], default="fp16")
    trt.add_argument("--workspace-mb", type=int, default=512, help="builder memory pool (keep small on Jetson)")
    trt.add_argument("--max-batch", type=int, default=4)
    trt.add_argument("--cache-dir", default="~/.cache/cde/engines")
    trt.add_argument("--force", action="store_true", help="rebuild even if a matching engine is cached")


def run(args: argparse.Namespace) -> int:
    if args.format == "onnx":
        from cde_core.export.onnx_export import export_onnx

        result = export_onnx(args.checkpoint, args.out, opset=args.opset)
        print(f"wrote {result.index} ({result.encoder.name}, {result.head.name}); "
              f"max |onnxruntime - torch| logits = {result.max_abs_diff:.2e}")
        return 0
    from cde_core.export.tensorrt_engine import EngineSpec, build_or_reuse_engines

    paths = build_or_reuse_engines(args.onnx, EngineSpec(args.precision, args.workspace_mb, args.max_batch),
                                   args.cache_dir, force=args.force)
    for path in paths:
        print(f"engine: {path}")
    return 0
