"""Inference timings: pair latency (torch eager vs ONNX Runtime) and the critical path at FINISHED.

Pair latency is batch 1, preprocessed tensors in, outputs out: torch `model(before, after)` against
onnxruntime encoder(before) + encoder(after) + head, the same work the node does. The critical path
goes through the Runtime interface the node uses, from a 1280x720 uint8 frame (preprocessing included):
after-frame embed + head with the before embedding cached, against embedding both frames + head.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from cde_core.bench.timing import interleaved_median_seconds, torch_threads
from cde_core.models.pair_model import PairModel


def pair_latency(model: PairModel, onnx_index: Path, threads: int, repeats: int, warmup: int) -> dict[str, Any]:
    """Median ms per batch-1 pair for torch eager fp32 and ONNX Runtime fp32 at `threads` threads."""
    from cde_core.runtime.onnx_runtime import OnnxRuntime

    size = model.config.img_size
    gen = torch.Generator().manual_seed(0)
    before, after = torch.randn(1, 3, size, size, generator=gen), torch.randn(1, 3, size, size, generator=gen)
    ort_rt = OnnxRuntime(onnx_index, providers=["CPUExecutionProvider"], threads=threads)
    b_np, a_np = before.numpy(), after.numpy()

    def ort_pair() -> object:
        bg, bp = ort_rt.embed_batch(b_np)
        ag, ap = ort_rt.embed_batch(a_np)
        return ort_rt.head_batch(bg, bp, ag, ap)

    with torch_threads(threads), torch.inference_mode():
        seconds = interleaved_median_seconds({"torch": lambda: model(before, after), "ort": ort_pair}, repeats,
                                             warmup)
    torch_s, ort_s = seconds["torch"], seconds["ort"]
    return {"threads": threads, "torch_eager_ms": 1e3 * torch_s, "onnxruntime_ms": 1e3 * ort_s,
            "ort_speedup": torch_s / ort_s}


def critical_path(onnx_index: Path, repeats: int, warmup: int, width: int = 1280, height: int = 720) -> dict[str, Any]:
    """FINISHED cost with the before embedding cached vs embedding both frames (onnxruntime, 1 thread)."""
    from cde_core.runtime.onnx_runtime import OnnxRuntime

    runtime = OnnxRuntime(onnx_index, providers=["CPUExecutionProvider"], threads=1)
    rng = np.random.default_rng(0)
    before_rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    after_rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    cached = runtime.embed(before_rgb)
    seconds = interleaved_median_seconds({
        "cached": lambda: runtime.compare(cached, runtime.embed(after_rgb)),
        "both": lambda: runtime.compare(runtime.embed(before_rgb), runtime.embed(after_rgb))}, repeats, warmup)
    cached_s, both_s = seconds["cached"], seconds["both"]
    return {"frame": f"{width}x{height}", "cached_before_ms": 1e3 * cached_s, "both_frames_ms": 1e3 * both_s,
            "ratio": cached_s / both_s}
