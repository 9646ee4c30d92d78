"""torch.distributed plumbing for `torchrun` (DDP; gloo on CPU, nccl on GPU).

Outside torchrun everything degrades to a single process: rank 0 of world 1.
"""
from __future__ import annotations

import logging
import os

import torch
import torch.distributed as dist

_LOG = logging.getLogger(__name__)


def resolve_device(requested: str) -> torch.device:
    """`auto` -> this rank's GPU when CUDA is available, else the CPU; `cuda` without CUDA is an error."""
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("device=cuda but torch sees no CUDA device; use device=cpu or device=auto")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())


def init_distributed(device: torch.device | None = None) -> tuple[int, int]:
    """Join the process group torchrun describes in the environment; return (rank, world_size).

    The backend follows the device the model trains on: nccl for CUDA, gloo for the CPU (no device
    given: nccl when CUDA is available, as before devices were passed)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        on_gpu = device.type == "cuda" if device is not None else torch.cuda.is_available()
        backend = "nccl" if on_gpu else "gloo"
        if device is not None and device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
        _LOG.info("rank %d/%d joined (%s)", dist.get_rank(), dist.get_world_size(), backend)
    return dist.get_rank(), dist.get_world_size()


def is_main_process() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def all_reduce_sum(values: list[float], device: torch.device | None = None) -> list[float]:
    """Sum a few scalars over all ranks (metrics computed on each rank's shard)."""
    if not dist.is_initialized():
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def all_reduce_mean(values: dict[str, float], device: torch.device | None = None) -> dict[str, float]:
    """Mean of named scalars over ranks (every rank must pass the same keys)."""
    if not dist.is_initialized():
        return values
    keys = sorted(values)
    sums = all_reduce_sum([values[k] for k in keys], device)
    world = dist.get_world_size()
    return {k: s / world for k, s in zip(keys, sums)}


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
