"""The figures a verification is judged by, one definition for the live demo and for offline evaluation.

- recognition accuracy: the recognised action is the action the world underwent;
- verification balanced accuracy: the mean, over the groups present, of succeeded commands called
  SUCCEEDED, failed commands not called SUCCEEDED (a failed command reported as done is the error that
  matters), and no-change ("none") commands called NO_EFFECT;
- no-effect AUROC: how well the effect magnitude separates pairs where the world changed from pairs where
  it did not (and `no_change_probability_auroc`: the same for the classifier's no-change probability, the
  other input of the no-effect decision).
Pure Python over plain values, so the demo (verdict names from the node) and `cde eval` (verdicts from
`verify_effect` on a model's outputs) score the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

NO_CHANGE = "none"


@dataclass(frozen=True)
class Outcome:
    """One verified command: what was commanded, what really happened, and what the verifier said."""

    commanded_action: str
    true_action: str | None  # None: no honest label (left out of every figure, counted)
    effect_happened: bool
    verdict: str  # succeeded | failed | no_effect | uncertain
    recognised_action: str | None = None
    effect_magnitude: float | None = None
    p_no_change: float | None = None  # the classifier's probability of the no-change class


def verdict_is_right(outcome: Outcome) -> bool | None:
    """Succeeded commands must be SUCCEEDED; a no-change ('none') command NO_EFFECT; failed ones anything but
    SUCCEEDED. None when the command has no honest label."""
    if outcome.true_action is None:
        return None
    if outcome.commanded_action == NO_CHANGE:
        return outcome.verdict == "no_effect"
    if outcome.effect_happened:
        return outcome.verdict == "succeeded"
    return outcome.verdict != "succeeded"


def auroc(scores: Sequence[float], positive: Sequence[bool]) -> float | None:
    """Probability that a random positive scores above a random negative (ties count half); None if a
    group is empty."""
    s, p = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    pos, neg = s[p], s[~p]
    if not pos.size or not neg.size:
        return None
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (pos.size * neg.size))


def _rate(values: list[bool]) -> float | None:
    return round(float(np.mean(values)), 3) if values else None


def verification_figures(outcomes: Sequence[Outcome]) -> dict[str, float | int | None]:
    """The three figures and the per-group accuracies and counts behind them (rounded to 3 places)."""
    scored = [o for o in outcomes if o.true_action is not None]
    succeeded = [o for o in scored if o.effect_happened]
    failed = [o for o in scored if not o.effect_happened and o.commanded_action != NO_CHANGE]
    reach = [o for o in scored if o.commanded_action == NO_CHANGE]
    groups = [_rate([bool(verdict_is_right(o)) for o in g]) for g in (succeeded, failed, reach)]
    recognised = [o for o in scored if o.recognised_action is not None]
    measured = [o for o in scored if o.effect_magnitude is not None]
    separation = auroc([float(o.effect_magnitude) for o in measured],  # type: ignore[arg-type]
                       [o.true_action != NO_CHANGE for o in measured])
    with_p = [o for o in scored if o.p_no_change is not None]
    by_probability = auroc([1.0 - float(o.p_no_change) for o in with_p],  # type: ignore[arg-type]
                           [o.true_action != NO_CHANGE for o in with_p])
    present = [g for g in groups if g is not None]
    return {
        "recognition_accuracy": _rate([o.recognised_action == o.true_action for o in recognised]),
        "verification_balanced_accuracy": round(float(np.mean(present)), 3) if present else None,
        "no_effect_auroc": round(separation, 3) if separation is not None else None,
        "no_change_probability_auroc": round(by_probability, 3) if by_probability is not None else None,
        "verification_accuracy_succeeded": groups[0], "verification_accuracy_failed": groups[1],
        "verification_accuracy_reach": groups[2], "n_succeeded": len(succeeded), "n_failed": len(failed),
        "n_reach": len(reach), "n_unlabelled": len(outcomes) - len(scored),
        "uncertain": sum(o.verdict == "uncertain" for o in outcomes),
    }
