"""The verdict rules and the no-effect calibration."""
from __future__ import annotations

import math

import pytest

from cde_core.verification import (Calibration, Verdict, calibrate_no_effect, calibrate_no_effect_threshold,
                                   verify_effect)

CLASSES = ["open", "close", "none"]
CAL = Calibration(no_effect_magnitude=0.5, min_confidence=0.6, no_change_class="none")


@pytest.mark.parametrize("commanded, scores, magnitude, expected", [
    ("open", [0.9, 0.05, 0.05], 2.0, Verdict.SUCCEEDED),
    ("open", [0.1, 0.85, 0.05], 2.0, Verdict.FAILED),
    ("open", [0.9, 0.05, 0.05], 0.4, Verdict.NO_EFFECT),  # magnitude decides before the classifier
    ("open", [0.1, 0.1, 0.8], 2.0, Verdict.NO_EFFECT),  # confident "nothing happened"
    ("open", [0.5, 0.4, 0.1], 2.0, Verdict.UNCERTAIN),  # below min_confidence
    ("fold", [0.9, 0.05, 0.05], 2.0, Verdict.UNCERTAIN),  # not a class of the model
])
def test_rules(commanded: str, scores: list[float], magnitude: float, expected: Verdict) -> None:
    result = verify_effect(commanded, CLASSES, scores, magnitude, CAL)
    assert result.verdict == expected
    assert result.observed_action == CLASSES[max(range(3), key=lambda i: scores[i])]
    assert result.reason


def test_unknown_command_names_the_classes() -> None:
    result = verify_effect("fold", CLASSES, [0.9, 0.05, 0.05], 2.0, CAL)
    assert "fold" in result.reason and "open" in result.reason


def test_non_finite_output_is_uncertain() -> None:
    assert verify_effect("open", CLASSES, [math.nan, 0.5, 0.5], 2.0, CAL).verdict == Verdict.UNCERTAIN
    assert verify_effect("open", CLASSES, [0.9, 0.05, 0.05], math.inf, CAL).verdict == Verdict.UNCERTAIN


def test_score_length_mismatch_raises() -> None:
    with pytest.raises(ValueError):
        verify_effect("open", CLASSES, [0.5, 0.5], 1.0, CAL)


def test_calibration_separates_groups() -> None:
    unchanged = [0.1, 0.2, 0.3, 0.25]
    changed = [1.0, 1.5, 0.9, 2.0]
    t = calibrate_no_effect_threshold(unchanged + changed, [False] * 4 + [True] * 4)
    assert max(unchanged) <= t < min(changed)


def test_calibration_without_both_groups_is_off() -> None:
    assert calibrate_no_effect_threshold([1.0, 2.0], [True, True]) == 0.0


def test_calibration_round_trip() -> None:
    assert Calibration.from_dict(CAL.to_dict()) == CAL


def test_no_change_probability_rule_calls_no_effect_above_its_threshold_only() -> None:
    cal = Calibration(no_effect_magnitude=0.5, min_confidence=0.6, no_effect_probability=0.4)
    below = verify_effect("open", CLASSES, [0.55, 0.05, 0.4], 2.0, cal)  # p(none) 0.40 >= 0.40
    assert below.verdict == Verdict.NO_EFFECT and "probability 0.40" in below.reason
    assert verify_effect("open", CLASSES, [0.65, 0.0, 0.35], 2.0, cal).verdict == Verdict.SUCCEEDED
    assert verify_effect("open", CLASSES, [0.55, 0.05, 0.4], 2.0, CAL).verdict == Verdict.UNCERTAIN  # rule off
    assert Calibration.from_dict(cal.to_dict()) == cal
    assert Calibration.from_dict({"no_effect_magnitude": 1.0}).no_effect_probability is None  # older checkpoints


def test_joint_calibration_keeps_a_separating_magnitude_and_adds_the_probability_where_it_helps() -> None:
    changed = [False] * 4 + [True] * 4
    # magnitudes separate the groups: the magnitude rule alone, as before
    mags = [0.1, 0.2, 0.3, 0.25, 1.0, 1.5, 0.9, 2.0]
    p_none = [0.3, 0.9, 0.2, 0.6, 0.1, 0.7, 0.2, 0.0]
    t_mag, t_prob = calibrate_no_effect(mags, p_none, changed)
    assert t_prob is None and max(mags[:4]) <= t_mag < min(mags[4:])
    # one no-change pair has a large magnitude (an unmasked shadow) but a clear "none" probability
    mags = [0.1, 0.2, 3.0, 0.25, 1.0, 1.5, 0.9, 2.0]
    p_none = [0.3, 0.4, 0.8, 0.5, 0.1, 0.2, 0.2, 0.0]
    t_mag, t_prob = calibrate_no_effect(mags, p_none, changed)
    assert t_prob is not None and 0.2 < t_prob <= 0.8
    calls = [m <= t_mag or p >= t_prob for m, p in zip(mags, p_none)]
    assert calls == [True] * 4 + [False] * 4
    assert calibrate_no_effect([1.0, 2.0], [0.1, 0.2], [True, True]) == (0.0, None)
