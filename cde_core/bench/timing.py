"""Wall-clock timing that survives a shared, noisy machine: warm-up, then the median of many runs."""
from __future__ import annotations

import contextlib
import statistics
import time
from typing import Callable, Iterator

import torch


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run a block with `threads` intra-op threads, restoring the previous count after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def interleaved_median_seconds(fns: dict[str, Callable[[], object]], repeats: int,
                               warmup: int = 2) -> dict[str, float]:
    """Median wall time of each function, timed round-robin (a, b, a, b, ...) so that load from other
    processes drifting during the run hits every candidate alike and their ratios stay fair."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(max(1, repeats)):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}
