"""The one configuration a pair model is built from; saved verbatim with every checkpoint."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model's architecture (not its weights).

    Values the paper leaves open (latent size l, K, projector size) are ours; defaults are the ones the
    benchmark measured, see README "Benchmark" and docs/benchmark/v1.md.
    """

    name: str = "cde"
    num_classes: int = 2
    # Backbone: a timm model name or a cde alias (see backbone.BACKBONE_ALIASES).
    backbone: str = "cde_vit_test"
    img_size: int = 224
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    # Local weights for the backbone (.safetensors or .pth, loaded through timm's pretrained-cfg overlay).
    pretrained_file: str | None = None
    freeze_backbone: bool = False
    # Causal projector: MLP from backbone width to latent_dim (l), shared by the pooled and patch tokens.
    latent_dim: int = 128
    projector_hidden: int = 256
    projector_layers: int = 2
    # Patch-wise deltas: how many of the most-changed patches (L2 norm) are kept.
    top_k: int = 4
    # CDE: the classifier also reads each delta's L2 norm. A linear map of a delta can tell "no change" (a
    # near-zero delta) only through its bias, which training leaves nearly equal across classes (benchmark v2:
    # an identical pair was called `open` by the masked frozen model of one split); the norm lets it be a
    # small-delta decision. Measured there: no OOD gain (README "Benchmark", tries). Off = the paper's classifier.
    norm_feature: bool = False
    # The change measure the no-effect rule thresholds (effect_magnitude.py): global | relative | topk.
    effect_magnitude: str = "global"
    # Baselines: hidden width of the pair MLP (vanilla / ICM / SMS / before-only).
    head_hidden: int = 256
    # ICM critic: number of object categories it tries to predict (0 = no critic).
    num_objects: int = 0
    # SMS: latent block of each action class (antonyms share a block); empty = one block per class.
    action_blocks: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}; known: {sorted(known)}")
        return cls(**data)
