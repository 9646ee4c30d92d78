"""How much the world changed between two frames, as one number per pair: what the no-effect rule thresholds.

The classifier says *which* action happened; this says *whether* anything did, and it has to hold across looks
(lights, colours, camera jitter) with one calibrated threshold. Three measures of the projected embeddings:

- "global": |phi(after) - phi(before)| of the pooled token, the paper's delta norm. A look that shrinks or
  grows every embedding (a dim scene, low contrast) shrinks or grows it too, so one threshold fits one look.
- "relative": that norm over the mean norm of the two embeddings. Scale-free, so a look's overall embedding
  size cancels. The shipped demo model uses it (chosen on its validation pairs; README "Quick start").
- "topk": mean L2 norm of the Top-K patch deltas (the patches the model shows as changed); local evidence,
  the robot's patches already left out.

Which one a model uses is part of its config (`ModelConfig.effect_magnitude`), so the checkpoint, the ONNX head
graph and every runtime compute the same number; `cde calibrate --effect-magnitude auto` chooses it on
validation pairs.
"""
from __future__ import annotations

import torch

EFFECT_MAGNITUDES = ("global", "relative", "topk")
_EPS = 1e-6  # an all-zero embedding (never seen in practice) gives 0 change, not a division by zero


def check_effect_magnitude(kind: str) -> None:
    """ValueError unless `kind` is a known measure (a model's config, a checkpoint's header)."""
    if kind not in EFFECT_MAGNITUDES:
        raise ValueError(f"model.effect_magnitude must be one of {EFFECT_MAGNITUDES}, got {kind!r}")


def effect_magnitude(kind: str, before_global: torch.Tensor, after_global: torch.Tensor,
                     delta_topk: torch.Tensor) -> torch.Tensor:
    """[B] change measure `kind` from pooled embeddings [B,L] and the selected patch deltas [B,K,L]."""
    delta_norm = (after_global - before_global).norm(dim=-1)
    if kind == "global":
        return delta_norm
    if kind == "relative":
        scale = 0.5 * (before_global.norm(dim=-1) + after_global.norm(dim=-1))
        return delta_norm / scale.clamp_min(_EPS)
    if kind == "topk":
        return delta_topk.norm(dim=-1).mean(dim=1)
    check_effect_magnitude(kind)
    raise AssertionError(f"no formula for effect magnitude {kind!r}")
