"""`cde export onnx CHECKPOINT --out PATH [--opset 17] [--pair]` and
`cde export tensorrt ONNX [--precision fp16] [--workspace-mb 512] [--cache-dir ~/.cache/cde/engines]`."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="format", required=True)
    onnx = sub.add_parser("onnx", help="encoder + head ONNX graphs with metadata, checked against PyTorch")
    onnx.add_argument("checkpoint", help="a .safetensors checkpoint written by `cde train`")
    onnx.add_argument("--out", required=True, help="PATH.onnx: the index; PATH.encoder.onnx, PATH.head.onnx beside it")
    onnx.add_argument("--opset", type=int, default=17, help="17 parses on TensorRT 8.5/8.6 (JetPack 5/6.0)")
    onnx.add_argument("--pair", action="store_true", help="also write PATH.pair.onnx (both images -> outputs)")
    onnx.add_argument("--dynamo", action="store_true", help="torch.export-based exporter (opset >= 18, onnxscript)")
    onnx.add_argument("--no-check", action="store_true", help="skip the onnxruntime vs PyTorch comparison")
    trt = sub.add_parser("tensorrt", help="build (or reuse) a TensorRT engine per graph (GPU/Jetson only)")
    trt.add_argument("onnx", help="the .onnx index written by `cde export onnx`")
    trt.add_argument("--precision", choices=["fp16", "fp32"], default="fp16")
    trt.add_argument("--workspace-mb", type=int, default=512, help="builder memory pool (keep small on Jetson)")
    trt.add_argument("--max-batch", type=int, default=4, help="largest batch of the optimisation profile")
    trt.add_argument("--cache-dir", default="~/.cache/cde/engines", help="persistent engine cache")
    trt.add_argument("--force", action="store_true", help="rebuild even if a matching engine is cached")


def run(args: argparse.Namespace) -> int:
    if args.format == "onnx":
        from cde_core.export.onnx_export import export_onnx

        if args.dynamo and args.opset < 18:
            raise SystemExit("--dynamo writes opset >= 18 only; pass --opset 18 or drop --dynamo")
        result = export_onnx(args.checkpoint, args.out, opset=args.opset, pair=args.pair, check=not args.no_check,
                             dynamo=args.dynamo)
        graphs = ", ".join(p.name for p in (result.encoder, result.head, result.pair) if p is not None)
        print(f"wrote {result.index} ({graphs}) at opset {result.opset}; "
              f"max |onnxruntime - torch| = {result.max_abs_diff:.2e}")
        return 0
    from cde_core.export.tensorrt_engine import EngineSpec, TensorRTUnavailable, build_or_reuse_engines

    try:
        paths = build_or_reuse_engines(args.onnx, EngineSpec(args.precision, args.workspace_mb, args.max_batch),
                                       args.cache_dir, force=args.force)
    except TensorRTUnavailable as exc:
        print(f"cde export tensorrt: {exc}")
        return 2
    for path in paths:
        print(f"engine: {path}")
    return 0
