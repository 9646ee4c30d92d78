"""The verification figures shared by the live demo and `cde eval`, on hand-made outcomes."""
from __future__ import annotations

import pytest

from cde_core.eval.verification_metrics import Outcome, auroc, verdict_is_right, verification_figures


def test_verdict_is_right_per_group() -> None:
    assert verdict_is_right(Outcome("open", "open", True, "succeeded")) is True
    assert verdict_is_right(Outcome("open", "open", True, "no_effect")) is False
    assert verdict_is_right(Outcome("open", "none", False, "no_effect")) is True  # failed: anything but SUCCEEDED
    assert verdict_is_right(Outcome("open", "none", False, "uncertain")) is True
    assert verdict_is_right(Outcome("open", "none", False, "succeeded")) is False
    assert verdict_is_right(Outcome("none", "none", False, "no_effect")) is True
    assert verdict_is_right(Outcome("none", "none", False, "failed")) is False
    assert verdict_is_right(Outcome("open", None, False, "succeeded")) is None


def test_auroc_counts_ties_half_and_needs_both_groups() -> None:
    assert auroc([3.0, 2.0, 1.0, 0.5], [True, True, False, False]) == 1.0
    assert auroc([1.0, 1.0], [True, False]) == 0.5
    assert auroc([0.0, 1.0, 2.0], [True, False, False]) == 0.0
    assert auroc([1.0], [True]) is None


def test_figures_are_the_mean_of_the_groups_and_leave_unlabelled_out() -> None:
    outcomes = [Outcome("open", "open", True, "succeeded", "open", 5.0, 0.0),
                Outcome("close", "close", True, "no_effect", "none", 0.2, 0.5),   # a missed success
                Outcome("open", "none", False, "failed", "close", 0.3, 0.4),
                Outcome("none", "none", False, "no_effect", "none", 0.1, 0.9),
                Outcome("open", None, False, "succeeded", "open", 9.0, 0.1)]      # unlabelled
    figures = verification_figures(outcomes)
    assert figures["verification_accuracy_succeeded"] == 0.5
    assert figures["verification_accuracy_failed"] == 1.0 and figures["verification_accuracy_reach"] == 1.0
    assert figures["verification_balanced_accuracy"] == pytest.approx(round((0.5 + 1 + 1) / 3, 3))
    assert figures["recognition_accuracy"] == 0.5  # close was recognised as none, the failure as close
    assert figures["no_change_probability_auroc"] == pytest.approx(0.75)  # the missed success has p(none) 0.5, above the failure's 0.4
    assert figures["no_effect_auroc"] == pytest.approx(0.75)  # changed 5.0 beats 0.3 and 0.1; 0.2 beats 0.1 only
    assert (figures["n_succeeded"], figures["n_failed"], figures["n_reach"], figures["n_unlabelled"]) == (2, 1, 1, 1)
