"""Pretraining configuration: one default YAML with every key, override files, dotted key=value overrides.

`load_pretrain_config(path, ["optim.epochs=5"])` merges pretrain_default.yaml <- path <- overrides into a
PretrainConfig (unknown keys are errors that name the key); the resolved config is saved with every run.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PRETRAIN_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "pretrain_default.yaml"


class PretrainConfigError(ValueError):
    """A pretraining config file or override is invalid (the message names the key)."""


@dataclass
class PretrainDataConfig:
    # Each source is a dict with `type` in folder | manifest | sim | bag; see cde_core/pretrain/sources.
    sources: list[dict[str, Any]] = field(default_factory=list)
    # Frames are resized once to this square size and kept in memory as uint8 (crops are taken from it).
    cache_size: int = 96
    # Keep at most this many frames (0 = all), chosen with the seed.
    max_frames: int = 0


@dataclass
class PretrainModelConfig:
    backbone: str = "cde_vit_small_p8"
    img_size: int = 64
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    drop_path_rate: float = 0.1


@dataclass
class MethodConfig:
    """DINO self-distillation on the pooled token + iBOT masked patch-token distillation (ibot_weight > 0)."""

    out_dim: int = 1024
    patch_out_dim: int = 1024
    shared_head: bool = True
    head_hidden: int = 512
    head_bottleneck: int = 128
    head_layers: int = 3
    student_temp: float = 0.1
    teacher_temp: float = 0.04
    warmup_teacher_temp: float = 0.04
    teacher_temp_warmup_epochs: int = 0
    teacher_patch_temp: float = 0.04
    center_momentum: float = 0.9
    centering: str = "ema"        # ema (DINO/iBOT) | sinkhorn (SwAV/DINOv2 equipartition)
    momentum_teacher: float = 0.996
    dino_weight: float = 1.0
    ibot_weight: float = 1.0
    koleo_weight: float = 0.0     # DINOv2's KoLeo on the student's pooled tokens (0 = off)
    pixel_weight: float = 0.0     # SimMIM masked patch pixel regression on the student's global crops (0 = off)
    contrastive_weight: float = 0.0   # time-contrastive InfoNCE on the pooled token (0 = off)
    contrastive_temp: float = 0.1
    contrastive_hidden: int = 512
    contrastive_dim: int = 128
    mask_probability: float = 0.5
    mask_ratio: tuple[float, float] = (0.1, 0.5)


@dataclass
class AugmentConfig:
    global_scale: tuple[float, float] = (0.35, 1.0)
    local_crops: int = 6
    local_size: int = 32
    local_scale: tuple[float, float] = (0.08, 0.35)
    flip: float = 0.5
    color_jitter: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale: float = 0.2
    # Gaussian blur probability for global crop 1, global crop 2 and the local crops (DINO's 1.0/0.1/0.5).
    blur: tuple[float, float, float] = (1.0, 0.1, 0.5)
    blur_sigma: tuple[float, float] = (0.1, 2.0)  # in pixels at 224 px; scaled to the crop size
    solarize: float = 0.2


@dataclass
class PretrainOptimConfig:
    batch_size: int = 64          # images per process per step
    epochs: int = 10
    lr: float = 0.0005            # per 256 images (scaled by the global batch, as DINO)
    min_lr: float = 1.0e-6
    warmup_epochs: float = 1.0
    weight_decay: float = 0.04
    weight_decay_end: float = 0.4
    grad_clip: float = 3.0
    freeze_last_layer_epochs: float = 1.0
    clip_frames: int = 0          # >0: each batch holds this many moments of each of several clips; 0 = shuffled


@dataclass
class ProbeConfig:
    manifest: str = ""            # labelled pair set (directory with manifest.jsonl); empty = no probe
    split: str = "iid_0"
    k: int = 10                   # k-NN neighbours
    top_k: int = 4                # patch deltas: mean of the K most-changed patches
    linear_steps: int = 300
    linear_weight_decay: float = 1.0e-3
    batch_size: int = 128


@dataclass
class PretrainConfig:
    data: PretrainDataConfig = field(default_factory=PretrainDataConfig)
    model: PretrainModelConfig = field(default_factory=PretrainModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: PretrainOptimConfig = field(default_factory=PretrainOptimConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    precision: str = "bf16"       # bf16 (autocast) | fp32
    seed: int = 0
    threads: int = 1
    checkpoint_every: int = 200   # steps between resumable state saves (and at every epoch end)
    stop_after_steps: int = 0     # stop (resumably) after this many steps in this invocation; 0 = run to the end
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise PretrainConfigError(f"unknown key(s) {[prefix + k for k in unknown]}; known: {sorted(known)}")
    kwargs: dict[str, Any] = {}
    defaults = cls()
    for name, value in data.items():
        default = getattr(defaults, name)
        if is_dataclass(default):
            if not isinstance(value, dict):
                raise PretrainConfigError(f"{prefix}{name} is a section; give keys under it, not {value!r}")
            kwargs[name] = _build(type(default), value, f"{prefix}{name}.")
        elif isinstance(default, tuple):
            if not isinstance(value, (list, tuple)) or len(value) != len(default):
                raise PretrainConfigError(f"{prefix}{name} needs {len(default)} values, got {value!r}")
            kwargs[name] = tuple(float(v) for v in value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def apply_overrides(tree: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`a.b=value` (value parsed as YAML, so lists and dicts work: `data.sources=[{type: folder, root: x}]`)."""
    for item in overrides:
        if "=" not in item:
            raise PretrainConfigError(f"override {item!r} is not key=value")
        dotted, raw = item.split("=", 1)
        keys = dotted.strip().split(".")
        node = tree
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise PretrainConfigError(f"override {dotted}: {key} is not a section")
        node[keys[-1]] = yaml.safe_load(raw)
    return tree


def load_pretrain_config(path: str | Path | None = None, overrides: list[str] | None = None) -> PretrainConfig:
    tree = yaml.safe_load(DEFAULT_PRETRAIN_CONFIG.read_text()) or {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise PretrainConfigError(f"config file {path} does not exist")
        tree = _merge(tree, yaml.safe_load(path.read_text()) or {})
    tree = apply_overrides(tree, list(overrides or []))
    config = _build(PretrainConfig, tree, "")
    if config.precision not in ("bf16", "fp32"):
        raise PretrainConfigError(f"precision {config.precision!r} must be bf16 or fp32")
    m = config.method
    weights = ("dino_weight", "ibot_weight", "pixel_weight", "contrastive_weight")
    if all(getattr(m, name) <= 0 for name in weights):
        raise PretrainConfigError(f"method.{', '.join(weights)} are all 0: nothing to train")
    if m.contrastive_weight > 0 and m.contrastive_temp <= 0:
        raise PretrainConfigError(f"method.contrastive_temp must be > 0, got {m.contrastive_temp}")
    if config.optim.clip_frames < 0:
        raise PretrainConfigError(f"optim.clip_frames must be >= 0, got {config.optim.clip_frames}")
    return config


def config_from_dict(data: dict[str, Any]) -> PretrainConfig:
    """Rebuild a config saved with a run (resolved, every key present)."""
    return _build(PretrainConfig, data, "")


def save_pretrain_config(config: PretrainConfig, path: str | Path) -> None:
    data = config.to_dict()
    Path(path).write_text(yaml.safe_dump(_plain(data), sort_keys=False))


def _plain(value: Any) -> Any:
    """Tuples -> lists so the YAML stays safe_load-able."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
