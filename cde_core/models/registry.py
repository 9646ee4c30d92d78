"""Model registry: `create_model(name, num_classes, **overrides)` as in timm."""
from __future__ import annotations

from typing import Any, Callable

from cde_core.models.baselines import BeforeOnlyModel, ICMPairModel, SMSPairModel, VanillaPairModel
from cde_core.models.cde import CDEModel
from cde_core.models.config import ModelConfig
from cde_core.models.pair_model import PairModel

_REGISTRY: dict[str, Callable[[ModelConfig], PairModel]] = {}


def register_model(name: str) -> Callable[[Callable[[ModelConfig], PairModel]], Callable[[ModelConfig], PairModel]]:
    def decorator(fn: Callable[[ModelConfig], PairModel]) -> Callable[[ModelConfig], PairModel]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn
    return decorator


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, num_classes: int | None = None, **overrides: Any) -> PairModel:
    """Build a registered model; `overrides` are ModelConfig fields."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered: {list_models()}")
    data: dict[str, Any] = {**overrides, "name": name}
    if num_classes is not None:
        data["num_classes"] = num_classes
    return _REGISTRY[name](ModelConfig.from_dict(data))


def model_from_config(config: ModelConfig) -> PairModel:
    return create_model(config.name, **{k: v for k, v in config.to_dict().items() if k != "name"})


@register_model("cde_global")
def cde_global(config: ModelConfig) -> PairModel:
    """Model A: global delta only."""
    return CDEModel(config, use_global=True, use_patch=False)


@register_model("cde_patch")
def cde_patch(config: ModelConfig) -> PairModel:
    """Model B: Top-K patch deltas only."""
    return CDEModel(config, use_global=False, use_patch=True)


@register_model("cde")
def cde(config: ModelConfig) -> PairModel:
    """Global and patch deltas into one classifier."""
    return CDEModel(config, use_global=True, use_patch=True)


@register_model("vanilla")
def vanilla(config: ModelConfig) -> PairModel:
    return VanillaPairModel(config)


@register_model("before_only")
def before_only(config: ModelConfig) -> PairModel:
    return BeforeOnlyModel(config)


@register_model("icm")
def icm(config: ModelConfig) -> PairModel:
    return ICMPairModel(config)


@register_model("sms")
def sms(config: ModelConfig) -> PairModel:
    return SMSPairModel(config)
