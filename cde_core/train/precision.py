"""Training precision: fp32, bf16 autocast, or `auto`, which measures which of the two is faster here.

bf16 is not faster everywhere: CPUs with AVX512-BF16/AMX run a bf16 matmul several times faster than fp32
(one measured 1,185 vs 217 GFLOP/s), CPUs without it emulate bf16 and run slower (78 vs 157), GPUs are
fast at both. `auto` times a matmul of the model's width at both precisions on the training device
(cde_core.bench.compute.matmul_gflops, the benchmark's peak probe) and takes bf16 only when it clearly
pays, since bf16 also rounds the training.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any

import torch

from cde_core.train import distributed

_LOG = logging.getLogger(__name__)

CONCRETE_PRECISIONS = ("fp32", "bf16")
PRECISIONS = (*CONCRETE_PRECISIONS, "auto")
# bf16 must beat fp32 by this factor to be picked: a near tie is not worth bf16's rounding.
BF16_MIN_SPEEDUP = 1.2
# Probe matmul [PROBE_ROWS, width] @ [width, width]: a batch of tokens through one layer of the model.
PROBE_ROWS = 2048


def autocast_context(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on `device`, or nothing for fp32 (`auto` must be resolved first)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision != "fp32":
        raise ValueError(f"precision must be fp32 or bf16 here, got {precision!r} (resolve 'auto' first)")
    return contextlib.nullcontext()


def choose_precision(gflops: dict[str, float], min_speedup: float = BF16_MIN_SPEEDUP) -> str:
    """'bf16' when the probe's bf16 GFLOP/s is at least `min_speedup` x its fp32 GFLOP/s, else 'fp32'."""
    fp32, bf16 = gflops.get("fp32", 0.0), gflops.get("bf16", 0.0)
    return "bf16" if bf16 > 0 and bf16 >= min_speedup * fp32 else "fp32"


def probe_precision(width: int, device: torch.device, threads: int) -> dict[str, Any]:
    """Time the probe matmul at fp32 and bf16; under DDP the ranks' numbers are averaged so that every
    rank picks the same precision."""
    from cde_core.bench.compute import matmul_gflops

    gflops = matmul_gflops(PROBE_ROWS, width, width, device=device, threads=threads)
    gflops = distributed.all_reduce_mean(gflops, device if device.type == "cuda" else torch.device("cpu"))
    return {"gflops": gflops, "matmul": [PROBE_ROWS, width, width], "device": device.type, "threads": threads,
            "bf16_min_speedup": BF16_MIN_SPEEDUP}


def resolve_precision(requested: str, width: int, device: torch.device,
                      threads: int) -> tuple[str, dict[str, Any] | None]:
    """(concrete precision, probe record or None): `auto` is probed and decided, fp32/bf16 pass through."""
    if requested in CONCRETE_PRECISIONS:
        return requested, None
    if requested != "auto":
        raise ValueError(f"precision must be one of {PRECISIONS}, got {requested!r}")
    probe = probe_precision(width, device, threads)
    precision = choose_precision(probe["gflops"])
    probe["picked"] = precision
    _LOG.info("precision auto -> %s: a %dx%dx%d matmul on %s runs bf16 %.0f GFLOP/s, fp32 %.0f GFLOP/s "
              "(bf16 needs >= %.1fx)", precision, *probe["matmul"], device.type, probe["gflops"].get("bf16", 0.0),
              probe["gflops"].get("fp32", 0.0), BF16_MIN_SPEEDUP)
    return precision, probe
