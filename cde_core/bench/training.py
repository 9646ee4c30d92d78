"""Training throughput (pairs/s) of the real training step: forward_train, the default criterion,
backward and AdamW, at the benchmark configuration. Synthetic tensors, so data loading is excluded."""
from __future__ import annotations

import contextlib
import time
from typing import Any

import torch

from cde_core.bench.timing import torch_threads
from cde_core.losses.criterion import PairCriterion
from cde_core.models import create_model


def training_throughput(backbone: str, img_size: int, batch: int, steps: int, warmup: int, precision: str,
                        threads: int, num_classes: int = 8) -> dict[str, Any]:
    """Pairs per second over `steps` optimiser steps after `warmup` steps."""
    torch.manual_seed(0)
    model = create_model("cde", num_classes=num_classes, backbone=backbone, img_size=img_size).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    criterion = PairCriterion()
    gen = torch.Generator().manual_seed(0)
    before = torch.randn(batch, 3, img_size, img_size, generator=gen)
    after = torch.randn(batch, 3, img_size, img_size, generator=gen)
    labels = torch.arange(batch) % num_classes

    def step() -> None:
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
        with autocast:
            out = model.forward_train(before, after)
        loss, _ = criterion(out, labels, None, model)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    with torch_threads(threads):
        for _ in range(warmup):
            step()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        seconds = time.perf_counter() - start
    return {"backbone": backbone, "img_size": img_size, "batch": batch, "precision": precision, "threads": threads,
            "steps": steps, "pairs_per_s": batch * steps / seconds, "images_per_s": 2 * batch * steps / seconds}
