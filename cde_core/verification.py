"""The verification decision: did the commanded effect happen?

Pure rules over the classifier's scores and the effect magnitude; thresholds come from calibration on
validation data and travel with the model (checkpoint and ONNX metadata), never copied by hand.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import IntEnum
from typing import Any, Sequence

import numpy as np


class Verdict(IntEnum):
    """Same values as cde_ros/msg/EffectVerification VERDICT_* constants."""

    SUCCEEDED = 0
    FAILED = 1
    NO_EFFECT = 2
    UNCERTAIN = 3


@dataclass
class Calibration:
    """Thresholds for the verdict rules.

    no_effect_magnitude: global-delta L2 norms at or below this are "nothing changed" (chosen on
    validation pairs to separate no-change from change). min_confidence: below this softmax
    probability the recogniser does not commit. no_change_class: the class meaning "nothing happened".
    no_effect_probability: the no-change class's probability at or above which "nothing changed", whatever
    the magnitude (None = not used; chosen on validation together with the magnitude threshold, because
    magnitudes are not comparable across looks while the classifier's no-change evidence can be).
    """

    no_effect_magnitude: float = 0.0
    min_confidence: float = 0.5
    no_change_class: str = "none"
    no_effect_probability: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Calibration":
        probability = data.get("no_effect_probability")
        return cls(float(data.get("no_effect_magnitude", 0.0)), float(data.get("min_confidence", 0.5)),
                   str(data.get("no_change_class", "none")), None if probability is None else float(probability))


@dataclass(frozen=True)
class EffectVerdict:
    verdict: Verdict
    observed_action: str
    confidence: float
    reason: str


def verify_effect(commanded_action: str, class_names: Sequence[str], scores: Sequence[float],
                  effect_magnitude: float, calibration: Calibration) -> EffectVerdict:
    """Apply the rules in order: unknown command -> UNCERTAIN; no change (magnitude at or below its threshold,
    or the no-change probability at or above its own) -> NO_EFFECT; low confidence -> UNCERTAIN; recognised ==
    commanded -> SUCCEEDED; else FAILED."""
    probs = np.asarray(scores, dtype=np.float64)
    if probs.shape != (len(class_names),) or len(class_names) == 0:
        raise ValueError(f"{len(class_names)} class names but scores of shape {probs.shape}")
    best = int(np.argmax(probs))
    observed, confidence = class_names[best], float(probs[best])
    if not np.isfinite(effect_magnitude) or not np.all(np.isfinite(probs)):
        return EffectVerdict(Verdict.UNCERTAIN, observed, confidence, "non-finite model output")
    if commanded_action not in class_names:
        return EffectVerdict(Verdict.UNCERTAIN, observed, confidence,
                             f"commanded action '{commanded_action}' is not a class of this model "
                             f"({', '.join(class_names)})")
    if effect_magnitude <= calibration.no_effect_magnitude:
        return EffectVerdict(Verdict.NO_EFFECT, observed, confidence,
                             f"effect magnitude {effect_magnitude:.3g} <= no-effect threshold "
                             f"{calibration.no_effect_magnitude:.3g}")
    threshold = calibration.no_effect_probability
    if threshold is not None and calibration.no_change_class in class_names:
        p_none = float(probs[list(class_names).index(calibration.no_change_class)])
        if p_none >= threshold:
            return EffectVerdict(Verdict.NO_EFFECT, observed, confidence,
                                 f"'{calibration.no_change_class}' probability {p_none:.2f} >= no-effect "
                                 f"threshold {threshold:.2f}")
    if observed == calibration.no_change_class and confidence >= calibration.min_confidence:
        return EffectVerdict(Verdict.NO_EFFECT, observed, confidence,
                             f"recognised '{observed}' with confidence {confidence:.2f}")
    if confidence < calibration.min_confidence:
        return EffectVerdict(Verdict.UNCERTAIN, observed, confidence,
                             f"confidence {confidence:.2f} below {calibration.min_confidence:.2f} "
                             f"(best guess '{observed}')")
    if observed == commanded_action:
        return EffectVerdict(Verdict.SUCCEEDED, observed, confidence,
                             f"recognised the commanded '{observed}' with confidence {confidence:.2f}")
    return EffectVerdict(Verdict.FAILED, observed, confidence,
                         f"recognised '{observed}' ({confidence:.2f}) instead of the commanded "
                         f"'{commanded_action}'")


def calibrate_no_effect_threshold(magnitudes: Sequence[float], changed: Sequence[bool]) -> float:
    """Threshold on effect magnitude that best separates unchanged from changed pairs (balanced
    accuracy on the given validation pairs); 0.0 when either group is missing."""
    return calibrate_no_effect(magnitudes, None, changed)[0]


def _balanced(no_effect: np.ndarray, changed: np.ndarray) -> np.ndarray:
    """Balanced accuracy of "no effect" calls (one row per candidate rule) against the truth."""
    return 0.5 * ((no_effect[:, ~changed]).mean(axis=1) + (~no_effect[:, changed]).mean(axis=1))


def calibrate_no_effect(magnitudes: Sequence[float], p_no_change: Sequence[float] | None,
                        changed: Sequence[bool]) -> tuple[float, float | None]:
    """The no-effect decision chosen on validation pairs: (magnitude threshold, no-change probability threshold
    or None), whichever pair of thresholds gives the best balanced accuracy of "nothing changed" with the rule
    magnitude <= t_mag OR p(no change) >= t_prob. The magnitude rule alone is tried first and kept on ties,
    so a model whose magnitudes already separate the groups keeps the rule it had; `p_no_change` None: the
    magnitude rule only. (0.0, None) when either group is missing."""
    mags = np.asarray(magnitudes, dtype=np.float64)
    chg = np.asarray(changed, dtype=bool)
    if mags.size == 0 or chg.all() or not chg.any():
        return 0.0, None
    mag_candidates = np.concatenate([[0.0], np.unique(mags)])
    by_magnitude = mags[None, :] <= mag_candidates[:, None]
    scores = _balanced(by_magnitude, chg)
    best_mag, best_prob, best = float(mag_candidates[scores.argmax()]), None, float(scores.max())
    if p_no_change is None:
        return best_mag, None
    probs = np.asarray(p_no_change, dtype=np.float64)
    for t_prob in np.unique(probs):
        combined = by_magnitude | (probs >= t_prob)[None, :]
        scores = _balanced(combined, chg)
        if scores.max() > best + 1e-12:
            best_mag, best_prob, best = float(mag_candidates[scores.argmax()]), float(t_prob), float(scores.max())
    return best_mag, best_prob


def calibrate(predictions: Any, changed: Sequence[bool], class_names: Sequence[str],
              no_change_class: str = "none") -> Calibration:
    """The calibration of a model from its predictions on validation pairs (`predictions.magnitudes`,
    `predictions.probs` [N, classes]); the no-change probability rule only when the model has that class."""
    p_none = (np.asarray(predictions.probs)[:, list(class_names).index(no_change_class)]
              if no_change_class in class_names else None)
    magnitude, probability = calibrate_no_effect(predictions.magnitudes, p_none, changed)
    return Calibration(no_effect_magnitude=magnitude, no_change_class=no_change_class,
                       no_effect_probability=probability)
