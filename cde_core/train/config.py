"""Training configuration: one default YAML with every key, override files, dotted key=value overrides.

`load_config(path, ["model.top_k=8", "loss.contrast=0"])` merges train_default.yaml <- path <- overrides
and returns a TrainConfig; the resolved config is saved next to every run and inside the checkpoint.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from cde_core.losses import LossWeights
from cde_core.models import ModelConfig

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "train_default.yaml"


class ConfigError(ValueError):
    """A config file or override is invalid (names the key)."""


@dataclass
class DataConfig:
    root: str = ""
    split: str = "iid_0"
    cache: bool = True


@dataclass
class OptimConfig:
    lr: float = 3e-4
    backbone_lr_scale: float = 1.0
    weight_decay: float = 0.05
    batch_size: int = 32
    epochs: int = 10
    warmup_steps: int = 20
    grad_clip: float = 1.0
    # SupCon and L1 switched on after this many steps (from scratch they stall CE: ENVIRONMENT.md).
    aux_warmup_steps: int = 0
    balanced_sampler: bool = False


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    optim: OptimConfig = field(default_factory=OptimConfig)
    precision: str = "fp32"
    seed: int = 0
    threads: int = 1
    out: str = "runs/train"
    eval_every: int = 1
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"unknown key(s) {[prefix + k for k in unknown]}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        default = getattr(cls(), name)
        if is_dataclass(default) and isinstance(value, dict):
            kwargs[name] = _build(type(default), value, f"{prefix}{name}.")
        else:
            kwargs[name] = value
    return cls(**kwargs)


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: {key} is not a section")
    node[keys[-1]] = value


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    tree = yaml.safe_load(DEFAULT_CONFIG.read_text()) or {}
    if path is not None:
        tree = _merge(tree, yaml.safe_load(Path(path).read_text()) or {})
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value")
        key, raw = item.split("=", 1)
        _set_dotted(tree, key.strip(), yaml.safe_load(raw))
    return _build(TrainConfig, tree, "")


def save_config(config: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
