"""Resumable pretraining state: student, teacher, loss centres, optimizer, step and RNG, as safetensors +
JSON (never pickle). Written atomically at `OUT/state/`; `latest.json` is written last and names the step
the tensors hold, so a crash mid-save leaves the previous state usable or is detected on load."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

STATE_DIR = "state"
STATE_TENSORS = "latest.safetensors"
STATE_JSON = "latest.json"


class TrainingStateError(RuntimeError):
    """A saved pretraining state is missing, inconsistent, or from another configuration."""


@dataclass
class TrainingPosition:
    step: int
    epoch: int
    config: dict[str, Any]


def _rng_name(rank: int) -> str:
    return f"rng_rank{rank}.safetensors"


def _atomic_save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for index, slots in state["state"].items():
        for name, value in slots.items():
            tensor = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"optim.{index}.{name}"] = tensor.detach().cpu().contiguous().clone()
    return tensors, state["param_groups"]


def save_rng(directory: Path, rank: int, generator: torch.Generator, step: int) -> None:
    """Each rank's augmentation generator and global torch RNG (drop-path), tagged with the step."""
    directory.mkdir(parents=True, exist_ok=True)
    _atomic_save({"augment": generator.get_state(), "torch": torch.get_rng_state()},
                 directory / _rng_name(rank), {"step": str(step)})


def save_training_state(out: Path, modules: dict[str, nn.Module], optimizer: torch.optim.Optimizer,
                        position: TrainingPosition) -> Path:
    """Rank 0 only: all module state dicts (prefixed by their name) + optimizer, then the JSON."""
    directory = out / STATE_DIR
    directory.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for prefix, module in modules.items():
        for key, value in module.state_dict().items():
            tensors[f"{prefix}.{key}"] = value.detach().cpu().contiguous().clone()
    optim_tensors, param_groups = _optimizer_tensors(optimizer)
    tensors.update(optim_tensors)
    _atomic_save(tensors, directory / STATE_TENSORS, {"step": str(position.step)})
    info = {"step": position.step, "epoch": position.epoch, "config": position.config,
            "optimizer_param_groups": param_groups, "format": "cde-pretrain-state-1"}
    tmp = directory / (STATE_JSON + ".tmp")
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, directory / STATE_JSON)
    return directory


def has_training_state(out: Path) -> bool:
    return (out / STATE_DIR / STATE_JSON).is_file()


def read_position(out: Path) -> TrainingPosition:
    path = out / STATE_DIR / STATE_JSON
    try:
        info = json.loads(path.read_text())
        return TrainingPosition(step=int(info["step"]), epoch=int(info["epoch"]), config=dict(info["config"]))
    except (OSError, ValueError, KeyError) as exc:
        raise TrainingStateError(f"{path} is unreadable ({exc}); delete {out / STATE_DIR} or pass --restart") from exc


def load_training_state(out: Path, modules: dict[str, nn.Module], optimizer: torch.optim.Optimizer,
                        rank: int, generator: torch.Generator) -> TrainingPosition:
    """Restore what save_training_state/save_rng wrote; every tensor must match (strict)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    directory = out / STATE_DIR
    position = read_position(out)
    tensor_path = directory / STATE_TENSORS
    with safe_open(str(tensor_path), framework="pt") as handle:
        saved_step = int((handle.metadata() or {}).get("step", -1))
    if saved_step != position.step:
        raise TrainingStateError(f"{tensor_path} holds step {saved_step} but {STATE_JSON} says {position.step}: "
                                 f"an interrupted save; delete {directory} or pass --restart")
    tensors = load_file(str(tensor_path))
    for prefix, module in modules.items():
        part = {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
        try:
            module.load_state_dict(part, strict=True)
        except RuntimeError as exc:
            raise TrainingStateError(f"{tensor_path}: {prefix} does not match this configuration ({exc})") from exc
    info = json.loads((directory / STATE_JSON).read_text())
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            slots.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": slots, "param_groups": info["optimizer_param_groups"]})
    rng_path = directory / _rng_name(rank)
    if not rng_path.is_file():
        raise TrainingStateError(f"{rng_path} missing: resume with the same number of processes as the run")
    rng = load_file(str(rng_path))
    generator.set_state(rng["augment"])
    torch.set_rng_state(rng["torch"])
    return position
