"""Training configuration: one default YAML with every key, override files, dotted key=value overrides.

`load_config(path, ["model.top_k=8", "loss.contrast=0"])` merges train_default.yaml <- path <- overrides
and returns a TrainConfig (dinov2's scheme); the resolved config is saved next to every run and inside
the checkpoint. Values are checked against the dataclass field types, so `optim.lr=1e-3` (a string to
YAML 1.1) becomes a float and `optim.epochs=ten` is an error that names the key.
"""
from __future__ import annotations

import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from cde_core.losses import LossWeights
from cde_core.models import ModelConfig
from cde_core.train.precision import PRECISIONS

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "train_default.yaml"
SCHEDULES = ("cosine", "linear", "constant")
DEVICES = ("auto", "cpu", "cuda")


class ConfigError(ValueError):
    """A config file or override is invalid (names the key)."""


@dataclass
class DataConfig:
    root: str = ""
    split: str = "iid_0"
    cache: bool = True
    # "none" | "union": take the robot out of each pair with its masks (cde_core/robot_mask.py); the mode is
    # stored in the checkpoint's preprocessing, so every runtime and the node apply the same rule.
    robot_mask: str = "none"
    # With model.freeze_backbone: run the backbone once over every image and train the projector and heads
    # on its cached tokens (cde_core/train/feature_cache.py); the checkpoint is the same full model.
    feature_cache: bool = True


@dataclass
class OptimConfig:
    lr: float = 3e-4
    backbone_lr_scale: float = 1.0
    weight_decay: float = 0.05
    batch_size: int = 32
    epochs: int = 10
    # When > 0, train for this many optimizer steps instead of `epochs` (evaluation stays per epoch,
    # plus once at the end).
    steps: int = 0
    warmup_steps: int = 20
    schedule: str = "cosine"
    grad_clip: float = 1.0
    # SupCon and L1 switched on after this many steps (from scratch they stall CE: ENVIRONMENT.md).
    aux_warmup_steps: int = 0
    # After the warmup, SupCon and L1 rise linearly from 0 to their weights over this many steps (0 = at once),
    # so the classifier has found its directions before the two losses reshape the deltas.
    aux_ramp_steps: int = 0
    balanced_sampler: bool = False


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    optim: OptimConfig = field(default_factory=OptimConfig)
    # fp32 | bf16 | auto (a matmul probe picks; metrics.json records the pick: cde_core/train/precision.py)
    precision: str = "fp32"
    device: str = "auto"
    seed: int = 0
    threads: int = 1
    out: str = "runs/train"
    eval_every: int = 1
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check/convert one leaf value against its field type (int, float, bool, str, optional, list, dict)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key) if len(inner) == 1 else value
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif annotation is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    elif origin in (list, tuple) or annotation in (list, tuple):
        if isinstance(value, (list, tuple)):
            return list(value) if origin is list or annotation is list else tuple(value)
    elif origin is dict or annotation is dict:
        if isinstance(value, dict):
            return value
    else:
        return value
    raise ConfigError(f"{key}: expected {getattr(annotation, '__name__', annotation)}, got {value!r}")


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"unknown key(s) {[prefix + k for k in unknown]}; known in this section: {sorted(known)}")
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        default = getattr(cls(), name)
        if is_dataclass(default):
            if not isinstance(value, dict):
                raise ConfigError(f"{prefix}{name} is a section; give its keys, e.g. {prefix}{name}.KEY=VALUE")
            kwargs[name] = _build(type(default), value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, hints[name], prefix + name)
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


def _validate(config: TrainConfig) -> None:
    choices = {"precision": (config.precision, PRECISIONS), "device": (config.device, DEVICES),
               "optim.schedule": (config.optim.schedule, SCHEDULES),
               "loss.l1_reduction": (config.loss.l1_reduction, ("sum", "mean")),
               "data.robot_mask": (config.data.robot_mask, ("none", "union"))}
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not one of {allowed}")
    positive = {"optim.batch_size": config.optim.batch_size, "optim.lr": config.optim.lr,
                "eval_every": config.eval_every, "threads": config.threads, "model.img_size": config.model.img_size,
                "loss.temperature": config.loss.temperature}
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{key} must be > 0, got {value}")
    for key in ("aux_warmup_steps", "aux_ramp_steps"):
        if getattr(config.optim, key) < 0:
            raise ConfigError(f"optim.{key} must be >= 0, got {getattr(config.optim, key)}")
    if config.optim.epochs <= 0 and config.optim.steps <= 0:
        raise ConfigError("set optim.epochs or optim.steps to a positive number")
    for key in ("ce", "contrast", "sparsity", "icm", "sms"):
        if getattr(config.loss, key) < 0:
            raise ConfigError(f"loss.{key} must be >= 0 (0 switches the term off)")
    # The ICM critic and the SMS block term exist only on their models: a mismatch would silently
    # train another model than the one named.
    for term in ("icm", "sms"):
        weight = getattr(config.loss, term)
        if config.model.name == term and weight == 0:
            raise ConfigError(f"model.name={term} needs loss.{term} > 0 (e.g. loss.{term}=0.1); "
                              f"with 0 it trains the vanilla model")
        if config.model.name != term and weight > 0:
            raise ConfigError(f"loss.{term}={weight} applies only to model.name={term}; set loss.{term}=0")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Default YAML <- `path` <- dotted `key=value` overrides (values parsed as YAML)."""
    tree = yaml.safe_load(DEFAULT_CONFIG.read_text()) or {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        extra = yaml.safe_load(path.read_text()) or {}
        if not isinstance(extra, dict):
            raise ConfigError(f"{path}: expected a mapping of sections at the top level")
        tree = _merge(tree, extra)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value")
        key, raw = item.split("=", 1)
        _set_dotted(tree, key.strip(), yaml.safe_load(raw))
    config = _build(TrainConfig, tree, "")
    _validate(config)
    return config


def save_config(config: TrainConfig, path: str | Path) -> None:
    """The resolved config, loadable again with `load_config(path)`."""
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
