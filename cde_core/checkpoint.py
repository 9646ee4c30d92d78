"""Checkpoints: one safetensors file with weights and, in its header, everything needed to use them.

Metadata (JSON under `__metadata__["cde"]`): model config, class names, preprocessing, calibration, the
resolved training config and a format version. Loading never unpickles anything.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cde_core.models import ModelConfig, PairModel, model_from_config
from cde_core.preprocessing import Preprocessing
from cde_core.verification import Calibration

FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or not a cde checkpoint."""


@dataclass
class ModelMeta:
    """What travels with the weights."""

    model: ModelConfig
    class_names: list[str]
    preprocessing: Preprocessing
    calibration: Calibration = field(default_factory=Calibration)
    train_config: dict[str, Any] = field(default_factory=dict)
    objects: list[str] = field(default_factory=list)
    version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps({
            "version": self.version, "model": self.model.to_dict(), "class_names": self.class_names,
            "preprocessing": self.preprocessing.to_dict(), "calibration": self.calibration.to_dict(),
            "train_config": self.train_config, "objects": self.objects,
        })

    @classmethod
    def from_json(cls, text: str) -> "ModelMeta":
        data = json.loads(text)
        if int(data.get("version", -1)) > FORMAT_VERSION:
            raise CheckpointError(f"checkpoint format {data.get('version')} is newer than this cde "
                                  f"({FORMAT_VERSION}); upgrade cde")
        meta = cls(model=ModelConfig.from_dict(data["model"]), class_names=list(data["class_names"]),
                   preprocessing=Preprocessing.from_dict(data["preprocessing"]),
                   calibration=Calibration.from_dict(data.get("calibration", {})),
                   train_config=dict(data.get("train_config", {})), objects=list(data.get("objects", [])),
                   version=int(data["version"]))
        check_meta_values(meta)
        return meta


def check_meta_values(meta: ModelMeta) -> None:
    """ValueError naming the field if metadata read from a file is out of range. Why: these values drive
    preprocessing and the verdict rules directly; a NaN threshold or a zero std would not crash, it
    would silently give wrong verdicts."""
    names = meta.class_names
    if not names or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise ValueError(f"class_names must be non-empty, unique, non-empty strings, got {names!r}")
    prep = meta.preprocessing
    if not 8 <= prep.img_size <= 4096:
        raise ValueError(f"preprocessing.img_size must be in [8, 4096], got {prep.img_size}")
    for key, values, positive in (("mean", prep.mean, False), ("std", prep.std, True)):
        if len(values) != 3 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values) \
                or (positive and min(values) <= 0):
            raise ValueError(f"preprocessing.{key} must be 3 finite numbers{' > 0' if positive else ''}, "
                             f"got {list(values)}")
    from cde_core.models.effect_magnitude import check_effect_magnitude
    from cde_core.robot_mask import MASK_MODES

    check_effect_magnitude(meta.model.effect_magnitude)
    if prep.robot_mask not in MASK_MODES:
        raise ValueError(f"preprocessing.robot_mask must be one of {MASK_MODES}, got {prep.robot_mask!r}")
    cal = meta.calibration
    if not (math.isfinite(cal.no_effect_magnitude) and cal.no_effect_magnitude >= 0):
        raise ValueError(f"calibration.no_effect_magnitude must be finite and >= 0, got {cal.no_effect_magnitude}")
    if not 0.0 <= cal.min_confidence <= 1.0:  # also false for NaN
        raise ValueError(f"calibration.min_confidence must be in [0, 1], got {cal.min_confidence}")
    if cal.no_effect_probability is not None and not 0.0 <= cal.no_effect_probability <= 1.0:
        raise ValueError(f"calibration.no_effect_probability must be in [0, 1] or null, got {cal.no_effect_probability}")


def save_checkpoint(path: str | Path, model: PairModel, meta: ModelMeta) -> Path:
    """Write weights + metadata atomically (temp file, then rename)."""
    from safetensors.torch import save_file

    if len(meta.class_names) != model.config.num_classes:
        raise ValueError(f"{len(meta.class_names)} class names for a model with {model.config.num_classes} classes")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta.model = model.config
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(tensors, str(tmp), metadata={"cde": meta.to_json()})
    tmp.replace(path)
    return path


def read_meta(path: str | Path) -> ModelMeta:
    """Metadata only (cheap: reads the header)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"{path} is not a readable safetensors file ({exc}); re-export or re-train it") from exc
    if "cde" not in header:
        raise CheckpointError(f"{path} has no cde metadata: not a cde checkpoint (train one with `cde train`)")
    try:
        return ModelMeta.from_json(header["cde"])
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: invalid cde metadata ({exc})") from exc


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> tuple[PairModel, ModelMeta]:
    """Rebuild the model from its config and load its weights (strict)."""
    from safetensors.torch import load_file

    meta = read_meta(path)
    config = ModelConfig.from_dict({**meta.model.to_dict(), "pretrained_file": None})
    model = model_from_config(config)
    try:
        state = load_file(str(path), device=map_location)
        model.load_state_dict(state, strict=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: weights do not load into {config.name}/{config.backbone} ({exc})") from exc
    model.config.pretrained_file = meta.model.pretrained_file
    model.eval()
    return model, meta
