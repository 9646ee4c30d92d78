"""How close inference comes to what this CPU can do: backbone FLOP/s over a matmul peak from the same run.

FLOPs are counted by torch's FlopCounterMode on one batch-1 backbone forward, with timm's fused
attention switched off for the count so the attention matmuls are counted too (the CPU fused kernel
is invisible to the counter). The peak is a 2048x2048 matmul at fp32 and bf16; "fraction of peak" is
the best achieved backbone FLOP/s over the peak of the fastest precision (bf16 on AVX512-BF16 CPUs),
and the accuracy cost of bf16 is measured beside it (delta cosine, logits agreement vs fp32).
The same matmul timing, at the model's width, is the probe behind training's `precision: auto`
(cde_core/train/precision.py).
"""
from __future__ import annotations

import contextlib
import copy
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from cde_core.bench.timing import interleaved_median_seconds, torch_threads
from cde_core.models.pair_model import PairModel


@contextlib.contextmanager
def _unfused_attention(module: nn.Module) -> Iterator[None]:
    fused = [(m, m.fused_attn) for m in module.modules() if isinstance(getattr(m, "fused_attn", None), bool)]
    for m, _ in fused:
        m.fused_attn = False
    try:
        yield
    finally:
        for m, value in fused:
            m.fused_attn = value


def count_flops(module: nn.Module, *inputs: torch.Tensor) -> int:
    """FLOPs of one forward (a multiply-add counts 2), attention matmuls included."""
    from torch.utils.flop_counter import FlopCounterMode

    with _unfused_attention(module), FlopCounterMode(display=False) as counter, torch.no_grad():
        module(*inputs)
    return int(counter.get_total_flops())


def _bf16_support() -> bool:
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def matmul_candidates(rows: int, inner: int, cols: int, dtypes: tuple[torch.dtype, ...],
                      device: torch.device | str = "cpu", seed: int = 0) -> dict[str, Callable[[], object]]:
    """One timed callable per dtype, `matmul_fp32` / `matmul_bf16`: [rows, inner] @ [inner, cols] on `device`
    (CUDA calls wait for the kernel, so wall time is compute time). Shared by the benchmark's peak and the
    trainer's precision probe, so both measure the same thing."""
    device = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    names = {torch.float32: "fp32", torch.bfloat16: "bf16"}
    candidates: dict[str, Callable[[], object]] = {}
    for dtype in dtypes:
        a = torch.randn(rows, inner, generator=gen).to(device=device, dtype=dtype)
        b = torch.randn(inner, cols, generator=gen).to(device=device, dtype=dtype)
        if device.type == "cuda":
            def run(a: torch.Tensor = a, b: torch.Tensor = b) -> object:
                out = torch.mm(a, b)
                torch.cuda.synchronize(device)
                return out
        else:
            def run(a: torch.Tensor = a, b: torch.Tensor = b) -> object:
                return torch.mm(a, b)
        candidates[f"matmul_{names[dtype]}"] = run
    return candidates


def matmul_gflops(rows: int, inner: int, cols: int, device: torch.device | str = "cpu", threads: int = 1,
                  repeats: int = 20, warmup: int = 3) -> dict[str, float]:
    """GFLOP/s of one matmul at fp32 and bf16 on `device`, timed round-robin ({"fp32": .., "bf16": ..})."""
    candidates = matmul_candidates(rows, inner, cols, (torch.float32, torch.bfloat16), device)
    with torch_threads(threads), torch.inference_mode():
        timings = interleaved_median_seconds(candidates, repeats, warmup)
    return {name.split("_")[1]: 2 * rows * inner * cols / seconds / 1e9 for name, seconds in timings.items()}


def _structured_pairs(count: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth random scenes and the same scenes with one bright box added: a local change, like an effect."""
    gen = torch.Generator().manual_seed(seed)
    before = F.interpolate(torch.randn(count, 3, 7, 7, generator=gen), size=(size, size), mode="bilinear",
                           align_corners=False)
    after = before.clone()
    box = max(2, size // 6)
    for i in range(count):
        y, x = (int(v) for v in torch.randint(0, size - box, (2,), generator=gen))
        after[i, :, y:y + box, x:x + box] += 2.0
    return before, after


def bf16_accuracy(model: PairModel, bf16_forward: Callable[[torch.Tensor, torch.Tensor], Any],
                  pairs: int) -> dict[str, float]:
    """bf16 vs fp32 on structured pairs: delta_global cosine, logits argmax agreement, Top-K set overlap."""
    before, after = _structured_pairs(pairs, model.config.img_size)
    with torch.inference_mode():
        ref = model(before, after)
        low = bf16_forward(before, after)
    cosine = F.cosine_similarity(low.delta_global.float(), ref.delta_global, dim=-1)
    overlap = [len(set(a.tolist()) & set(b.tolist())) / len(b) for a, b in zip(low.topk_indices, ref.topk_indices)]
    return {"delta_cosine_mean": float(cosine.mean()), "delta_cosine_min": float(cosine.min()),
            "logits_argmax_agreement": float((low.logits.argmax(-1) == ref.logits.argmax(-1)).float().mean()),
            "logits_max_abs_diff": float((low.logits.float() - ref.logits).abs().max()),
            "topk_set_overlap": float(sum(overlap) / len(overlap)), "pairs": pairs}


def backbone_efficiency(model: PairModel, threads: int, repeats: int, warmup: int, matmul_size: int,
                        accuracy_pairs: int, onnx_index: Any = None) -> dict[str, Any]:
    """Backbone FLOP/s at batch 1 (torch fp32, torch bf16 autocast, torch bf16 weights, onnxruntime fp32)
    over the matmul peaks measured here; the headline divides the best by the fastest precision's peak."""
    size = model.config.img_size
    image = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    flops = count_flops(model.backbone, image)
    bf16_ok = _bf16_support()
    bf16_model = copy.deepcopy(model).to(torch.bfloat16) if bf16_ok else None
    candidates = matmul_candidates(matmul_size, matmul_size, matmul_size,
                                   (torch.float32, torch.bfloat16) if bf16_ok else (torch.float32,))
    candidates["torch_fp32"] = lambda: model.backbone(image)
    if bf16_model is not None:
        image_bf16 = image.to(torch.bfloat16)

        def autocast_backbone() -> object:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return model.backbone(image)

        candidates.update({"torch_bf16_autocast": autocast_backbone,
                           "torch_bf16_weights": lambda: bf16_model.backbone(image_bf16)})
    if onnx_index is not None:
        from cde_core.runtime.onnx_runtime import OnnxRuntime

        ort_rt = OnnxRuntime(onnx_index, providers=["CPUExecutionProvider"], threads=threads)
        image_np = image.numpy()
        candidates["onnxruntime_fp32_encoder"] = lambda: ort_rt.embed_batch(image_np)  # + the small projector
    with torch_threads(threads), torch.inference_mode():
        # Peaks and backbones timed round-robin, so the fraction compares the same machine state.
        timings = interleaved_median_seconds(candidates, repeats, warmup)
    peaks = {name.split("_")[1]: 2 * matmul_size**3 / timings.pop(name) for name in list(timings)
             if name.startswith("matmul_")}
    achieved = {name: flops / seconds for name, seconds in timings.items()}
    best_precision = "bf16" if "bf16" in peaks and peaks["bf16"] > peaks["fp32"] else "fp32"
    best = max(achieved, key=achieved.get)
    result: dict[str, Any] = {
        "threads": threads, "backbone_gflops_per_image": flops / 1e9, "matmul_size": matmul_size,
        "peak_gflops": {k: v / 1e9 for k, v in peaks.items()},
        "ms_per_image": {k: 1e3 * v for k, v in timings.items()},
        "achieved_gflops": {k: v / 1e9 for k, v in achieved.items()},
        "fraction_of_own_precision_peak": {
            k: v / peaks["bf16" if "bf16" in k else "fp32"] for k, v in achieved.items()},
        "fastest_precision": best_precision, "best_variant": best,
        "fraction_of_peak": achieved[best] / peaks[best_precision],
    }
    if bf16_model is not None:
        variant = "torch_bf16_weights" if timings["torch_bf16_weights"] <= timings["torch_bf16_autocast"] else \
            "torch_bf16_autocast"

        def low_forward(before: torch.Tensor, after: torch.Tensor) -> Any:
            if variant == "torch_bf16_weights":
                return bf16_model(before.to(torch.bfloat16), after.to(torch.bfloat16))
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return model(before, after)

        with torch_threads(threads):
            result["bf16_accuracy"] = {"variant": variant, **bf16_accuracy(model, low_forward, accuracy_pairs)}
    return result
