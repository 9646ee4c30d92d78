"""Baselines under the same interface as the CDE models.

- vanilla: Causal Triplet's ResPair head, an MLP on [p1, p2 - p1] (the difference concatenated with
  the before state, so the classifier may use the object's identity).
- before_only: sees only the before image; measures how much the start state alone gives away.
- icm: vanilla + an adversarial object critic on the pair feature (gradient reversal), Causal
  Triplet's "critic" regulariser for independent mechanisms.
- sms: vanilla + block sparsity: p1 and p2 must agree on every latent block except the action's
  (antonyms share a block), Causal Triplet's sparse-mechanism-shift regulariser.
"""
from __future__ import annotations

import torch
from torch import nn

from cde_core.models.config import ModelConfig
from cde_core.models.pair_model import PairModel


class _GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return -grad


def _mlp(in_dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU())


class VanillaPairModel(PairModel):
    """MLP on [p1, p2 - p1]."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.pair_mlp = _mlp(2 * config.latent_dim, config.head_hidden)
        self.classifier = nn.Linear(config.head_hidden, config.num_classes)

    def pair_feature(self, out: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.pair_mlp(torch.cat([out["before_global"], out["delta_global"]], dim=-1))

    def classify(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        feature = self.pair_feature(out)
        return {"pair_feature": feature, "logits": self.classifier(feature)}


class BeforeOnlyModel(VanillaPairModel):
    """Classifies from the before image alone."""

    def __init__(self, config: ModelConfig) -> None:
        PairModel.__init__(self, config)
        self.pair_mlp = _mlp(config.latent_dim, config.head_hidden)
        self.classifier = nn.Linear(config.head_hidden, config.num_classes)

    def pair_feature(self, out: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.pair_mlp(out["before_global"])


class ICMPairModel(VanillaPairModel):
    """Vanilla + object critic behind gradient reversal: minimising the critic's CE trains the critic
    and pushes the pair feature to carry no object identity."""

    def __init__(self, config: ModelConfig) -> None:
        if config.num_objects < 2:
            raise ValueError("icm needs num_objects >= 2 (the object categories the critic predicts)")
        super().__init__(config)
        self.critic = nn.Sequential(nn.Linear(config.head_hidden, config.head_hidden), nn.ReLU(),
                                    nn.Linear(config.head_hidden, config.num_objects))

    def classify(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        result = super().classify(out)
        result["critic_logits"] = self.critic(_GradientReversal.apply(result["pair_feature"]))
        return result


class SMSPairModel(VanillaPairModel):
    """Vanilla whose before/after embeddings are also returned per latent block for the SMS term."""

    def __init__(self, config: ModelConfig) -> None:
        blocks = config.action_blocks or list(range(config.num_classes))
        if len(blocks) != config.num_classes:
            raise ValueError(f"action_blocks has {len(blocks)} entries for {config.num_classes} classes")
        num_blocks = max(blocks) + 1
        if config.latent_dim < num_blocks:
            raise ValueError(f"latent_dim {config.latent_dim} < {num_blocks} latent blocks")
        super().__init__(config)
        self.num_blocks = num_blocks
        self.register_buffer("action_block", torch.tensor(blocks, dtype=torch.long), persistent=False)
        # Block id of every latent dimension (the last block takes the remainder).
        width = config.latent_dim // num_blocks
        dim_block = torch.clamp(torch.arange(config.latent_dim) // width, max=num_blocks - 1)
        self.register_buffer("dim_block", dim_block, persistent=False)
