"""Issue 16's diagnostics on hand-made inputs whose answers are known: invariance, per-cell means, the
targets check, the penultimate-feature hook and the comparison of two experiments."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cde_core.cli import main as cde
from cde_core.experiment.analysis import (
    antonym_cosines,
    invariance_cosines,
    per_cell_mean,
)
from cde_core.experiment.comparison import compare_experiments, comparison_markdown
from cde_core.experiment.diagnostics import (
    cde_family,
    geometry_model,
    mean_antonym_cosine,
    per_cell_ood,
)
from cde_core.experiment.targets import (
    MIN_TOLERANCE,
    ablation_tolerance,
    check_targets,
    select_on_validation,
)

OBJECTS, ACTIONS = ["drawer", "door", "window"], ["open", "close", "push"]


def _pairs(feature_of: dict[tuple[str, str], list[float]], per_cell: int = 3, noise: float = 0.0
           ) -> tuple[np.ndarray, list[str], list[str]]:
    rng = np.random.default_rng(0)
    feats, acts, objs = [], [], []
    for (obj, action), f in feature_of.items():
        for _ in range(per_cell):
            feats.append(np.asarray(f) + noise * rng.standard_normal(len(f)))
            acts.append(action)
            objs.append(obj)
    return np.asarray(feats), acts, objs


def test_invariant_deltas_score_one_against_zero() -> None:
    # The delta depends only on the action (one axis per action): same action anywhere -> cosine 1,
    # different actions on one object -> orthogonal -> 0.
    axis = {a: np.eye(3)[i] * (i + 1) for i, a in enumerate(ACTIONS)}
    feats, acts, objs = _pairs({(o, a): list(axis[a]) for o in OBJECTS for a in ACTIONS})
    inv = invariance_cosines(feats, acts, objs)
    assert inv["same_action"] == pytest.approx(1.0) and inv["same_object"] == pytest.approx(0.0)
    assert inv["margin"] == pytest.approx(1.0)
    assert inv["same_action_pairs"] == 3 * 3 and inv["same_object_pairs"] == 3 * 3  # C(3,2) per action / object


def test_object_dominated_features_score_zero_against_one() -> None:
    axis = {o: np.eye(3)[i] for i, o in enumerate(OBJECTS)}
    feats, acts, objs = _pairs({(o, a): list(axis[o]) for o in OBJECTS for a in ACTIONS})
    inv = invariance_cosines(feats, acts, objs)
    assert inv["same_action"] == pytest.approx(0.0) and inv["same_object"] == pytest.approx(1.0)
    assert inv["margin"] == pytest.approx(-1.0)


def test_centring_removes_a_shared_component() -> None:
    # A large offset shared by every pair (a ReLU layer's typical mean) hides the action axes; centred, three
    # equal action directions summing to zero are 120 degrees apart: cosine -1/2 between actions.
    axis = {a: np.eye(3)[i] for i, a in enumerate(ACTIONS)}
    feats, acts, objs = _pairs({(o, a): list(axis[a] + 10.0) for o in OBJECTS for a in ACTIONS})
    assert invariance_cosines(feats, acts, objs)["same_object"] > 0.99
    centred = invariance_cosines(feats, acts, objs, centre=True)
    assert centred["same_action"] == pytest.approx(1.0) and centred["same_object"] == pytest.approx(-0.5)


def test_invariance_uses_cell_means_and_leaves_out_excluded_and_zero_cells() -> None:
    # Noise averages out within a cell; the no-change cell (zero delta, random direction) and an excluded
    # action would otherwise pull the cosines.
    cells = {("drawer", "open"): [1.0, 0.0], ("door", "open"): [2.0, 0.0],
             ("drawer", "close"): [0.0, 1.0], ("door", "close"): [0.0, 3.0],
             ("drawer", "none"): [0.0, 0.0], ("door", "push"): [1.0, 1.0]}
    feats, acts, objs = _pairs(cells, per_cell=200, noise=0.05)
    inv = invariance_cosines(feats, acts, objs, exclude=("push", "none"))
    assert inv["same_action"] == pytest.approx(1.0, abs=1e-3) and inv["same_object"] == pytest.approx(0.0, abs=0.01)
    exact, a2, o2 = _pairs(cells, per_cell=1)
    assert invariance_cosines(exact, a2, o2, exclude=("push",))["same_object_pairs"] == 2  # none: zero mean, left out
    assert invariance_cosines(feats[:1], acts[:1], objs[:1])["margin"] is None  # one cell: no pair to compare
    with pytest.raises(ValueError, match="one of each per pair"):
        invariance_cosines(feats, acts[:-1], objs)


def test_antonym_cosines_anti_parallel_is_minus_one() -> None:
    deltas = np.array([[1.0, 2.0], [-2.0, -4.0], [0.0, 1.0], [0.0, -5.0]])
    cos = antonym_cosines(deltas, ["open", "close", "open", "close"], ["drawer", "drawer", "door", "door"],
                          {"open": "close", "close": "open"})
    assert cos == {"door:close/open": pytest.approx(-1.0), "drawer:close/open": pytest.approx(-1.0)}


def test_per_cell_mean_over_seeds() -> None:
    r = per_cell_mean([{"drawer/open": 0.5, "door/close": 0.0}, {"drawer/open": 0.7}, {"drawer/open": 0.6}])
    assert r["drawer/open"]["mean"] == pytest.approx(0.6) and r["drawer/open"]["n"] == 3
    assert r["door/close"]["mean"] == 0.0 and r["door/close"]["n"] == 1


def test_per_cell_ood_groups_runs_by_split_and_method() -> None:
    runs = [{"split": "comp_0", "method": "cde", "seed": s, "ood_per_cell": {"drawer/open": v}}
            for s, v in enumerate([0.2, 0.4])]
    runs.append({"split": "iid_0", "method": "cde", "seed": 0, "ood_per_cell": {}})  # no OOD role: left out
    result = per_cell_ood(runs, ["cde", "vanilla"], ["comp_0", "iid_0"])
    assert list(result) == ["comp_0"] and list(result["comp_0"]) == ["cde"]
    assert result["comp_0"]["cde"]["drawer/open"]["mean"] == pytest.approx(0.3)


def test_cde_family_and_geometry_model() -> None:
    assert cde_family(["vanilla", "cde_global", "icm", "cde_ce_only"]) == ["cde_global", "cde_ce_only"]
    assert geometry_model(["vanilla", "cde_global", "cde"]) == "cde"  # the full model, wherever it runs
    assert geometry_model(["vanilla", "cde_patch", "cde_global"]) == "cde_patch"
    assert geometry_model(["vanilla", "sms"]) is None
    geometry = {"comp_0": {"antonym": {"method": "cde", "mean": -0.4}}, "syst_0": {"antonym": {"method": "cde", "mean": -0.8}},
                "iid_0": {}}
    assert mean_antonym_cosine(geometry) == ("cde", pytest.approx(-0.6))
    assert mean_antonym_cosine({}) == (None, None)


def _entry(ood: float, iid: float = 0.9, val: float = 0.9, ci: float = 0.01) -> dict[str, Any]:
    return {"val": {"mean": val, "ci95": ci}, "iid": {"mean": iid, "ci95": ci}, "ood": {"mean": ood, "ci95": ci},
            "gap": iid - ood}


def _table(**oods: tuple[float, float]) -> dict[str, dict[str, Any]]:
    """method=(ood, val) on comp_0 and syst_0."""
    return {m: {s: _entry(ood, val=val) for s in ("comp_0", "syst_0")} for m, (ood, val) in oods.items()}


def test_targets_all_met() -> None:
    table = _table(vanilla=(0.5, 0.9), cde=(0.85, 0.95), cde_no_l1=(0.8, 0.9), cde_no_supcon=(0.7, 0.9),
                   cde_ce_only=(0.71, 0.9))
    result = check_targets(table, ["comp_0", "syst_0"], ["cde", "cde_no_l1", "cde_no_supcon", "cde_ce_only"],
                           ("cde", -0.9))
    assert result["selected_on_val"] == "cde" and result["selected_val_accuracy"] == pytest.approx(0.95)
    assert len(result["rows"]) == 3 * 2 + 1
    assert all(r["met"] is True for r in result["rows"]), result["rows"]
    gap_row = next(r for r in result["rows"] if "gap" in r["target"] and r["split"] == "comp_0")
    assert "0.050 vs 0.6 x 0.400" in gap_row["measured"]


def test_targets_select_on_validation_not_ood_and_report_misses() -> None:
    # cde_global has the best OOD but the worse validation: cde is selected, and it misses the +10 points.
    table = _table(vanilla=(0.5, 0.9), cde_global=(0.95, 0.8), cde=(0.55, 0.9), cde_no_l1=(0.7, 0.9),
                   cde_no_supcon=(0.6, 0.9), cde_ce_only=(0.4, 0.9))
    result = check_targets(table, ["comp_0", "syst_0", "iid_0"], cde_family(list(table)), ("cde", -0.2))
    assert result["selected_on_val"] == "cde"
    assert not any(r["split"] == "iid_0" for r in result["rows"])  # no OOD role, no OOD target
    margin = [r for r in result["rows"] if "+ 0.10" in r["target"]]
    assert [r["met"] for r in margin] == [False, False] and "+0.050" in margin[0]["measured"]
    ablation = [r for r in result["rows"] if "cde_no_l1" in r["target"]]
    assert [r["met"] for r in ablation] == [False, False]  # cde < cde_no_l1 and cde_no_supcon !~ cde_ce_only
    assert result["rows"][-1]["met"] is False


def test_targets_not_measured_without_vanilla_or_ablations() -> None:
    table = _table(cde=(0.8, 0.9))
    result = check_targets(table, ["comp_0"], ["cde"], (None, None))
    assert [r["met"] for r in result["rows"]] == [None, None, None, None]
    assert "missing cde_no_l1, cde_no_supcon, cde_ce_only" in result["rows"][2]["measured"]
    assert select_on_validation(table, [], ["comp_0"]) == (None, None)


def test_ablation_tolerance_combines_cis() -> None:
    assert ablation_tolerance({"ci95": 0.03}, {"ci95": 0.04}) == pytest.approx(0.05)
    assert ablation_tolerance({"ci95": float("nan")}, {"ci95": 0.0}) == MIN_TOLERANCE  # one seed: no CI
    table = _table(vanilla=(0.5, 0.9), cde=(0.80, 0.9), cde_no_l1=(0.81, 0.9), cde_no_supcon=(0.7, 0.9),
                   cde_ce_only=(0.715, 0.9))
    ablation = [r for r in check_targets(table, ["comp_0"], ["cde"], (None, None))["rows"] if "cde_no_l1" in r["target"]]
    assert ablation[0]["met"] is True  # cde 0.01 below cde_no_l1: within the tolerance


def test_penultimate_features_are_vanillas_hidden_layer() -> None:
    from cde_core.experiment.penultimate import predict_with_penultimate
    from cde_core.models import create_model

    torch.manual_seed(0)
    tiny = {"backbone": "cde_vit_test", "img_size": 32, "latent_dim": 16, "projector_hidden": 32, "head_hidden": 24,
            "top_k": 2}
    before, after = torch.rand(5, 3, 32, 32), torch.rand(5, 3, 32, 32)
    items = [(before[i], after[i], 0, 0, torch.ones(16)) for i in range(5)]
    vanilla = create_model("vanilla", num_classes=3, **tiny).eval()
    pred, hidden = predict_with_penultimate(vanilla, items, batch_size=2)  # three batches
    with torch.no_grad():
        expected = vanilla.forward_train(before, after)["pair_feature"]
    assert hidden.shape == (5, 24) and len(pred.labels) == 5
    np.testing.assert_allclose(hidden, expected.numpy(), atol=1e-5)
    assert not vanilla.classifier._forward_pre_hooks  # the hook is removed again
    with pytest.raises(ValueError, match="not one hidden feature per pair"):
        predict_with_penultimate(create_model("cde", num_classes=3, **tiny), items)  # patch head: [B, K, L] too


def _results(oods: dict[tuple[str, str], list[float]], seeds: list[int]) -> dict[str, Any]:
    runs = [{"method": m, "split": s, "seed": seed, "ood": v} for (m, s), vals in oods.items()
            for seed, v in zip(seeds, vals)]
    table: dict[str, dict[str, Any]] = {}
    for (m, s), vals in oods.items():
        a = np.asarray(vals)
        table.setdefault(m, {})[s] = {"ood": {"mean": float(a.mean()), "ci95": 0.0}}
    return {"data": "d", "splits": sorted({s for _, s in oods}), "seeds": seeds, "table": table, "runs": runs}


def test_compare_experiments_paired_by_seed() -> None:
    on = _results({("cde", "comp_0"): [0.8, 0.7, 0.9], ("vanilla", "comp_0"): [0.5, 0.6, 0.7]}, [0, 1, 2])
    off = _results({("cde", "comp_0"): [0.6, 0.5, 0.7], ("vanilla", "comp_0"): [0.6, 0.5, 0.8]}, [0, 1, 2])
    comparison = compare_experiments(on, off, ("masks_on", "masks_off"))
    cde_row, vanilla_row = comparison["rows"]
    # Seed by seed the masks add exactly 0.2 to cde: CI 0, a clear win, though the unpaired CIs would overlap.
    assert cde_row["difference"]["mean"] == pytest.approx(0.2) and cde_row["difference"]["ci95"] == pytest.approx(0)
    assert cde_row["verdict"] == "masks_on better" and cde_row["paired_seeds"] == [0, 1, 2]
    assert vanilla_row["difference"]["mean"] == pytest.approx(-1 / 30) and vanilla_row["verdict"] == "no clear difference"
    md = comparison_markdown(comparison)
    assert "| cde | comp_0 | 0.800 ± 0.000 | 0.600 ± 0.000 | +0.200 ± 0.000 | 3 | masks_on better |" in md
    assert not comparison["notes"]


def test_compare_experiments_notes_and_errors() -> None:
    a = _results({("cde", "comp_0"): [0.8, 0.7]}, [0, 1])
    b = _results({("cde", "comp_0"): [0.6]}, [0])
    comparison = compare_experiments(a, b, ("a", "b"))
    assert comparison["notes"] and "seeds differ" in comparison["notes"][0]
    assert comparison["rows"][0]["verdict"] == "one seed: no CI" and comparison["rows"][0]["paired_seeds"] == [0]
    with pytest.raises(ValueError, match="no \\(method, split\\) in common"):
        compare_experiments(a, _results({("vanilla", "comp_0"): [0.5]}, [0]), ("a", "b"))


def test_compare_command_on_two_result_dirs(tmp_path: Path) -> None:
    for name, vals in (("on", [0.8, 0.7, 0.9]), ("off", [0.5, 0.45, 0.6])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(_results({("cde", "syst_0"): vals}, [0, 1, 2])))
    out = tmp_path / "cmp"
    assert cde(["experiment", "compare", str(tmp_path / "on"), str(tmp_path / "off"),
                "--labels", "masks_on", "masks_off", "--out", str(out)]) == 0
    comparison = json.loads((out / "comparison.json").read_text())
    assert comparison["labels"] == ["masks_on", "masks_off"] and comparison["rows"][0]["verdict"] == "masks_on better"
    assert "masks_on - masks_off" in (out / "comparison.md").read_text()
    with pytest.raises(FileNotFoundError, match="run `cde experiment CONFIG"):
        cde(["experiment", "compare", str(tmp_path / "on"), str(tmp_path / "nothing"), "--out", str(out)])
    with pytest.raises(SystemExit, match="usage: cde experiment compare"):
        cde(["experiment", "compare", str(tmp_path / "on"), "--out", str(out)])


def test_identical_pairs_are_answered_by_the_biases_of_a_linear_delta_classifier() -> None:
    """A CDE model sees a zero delta for a frame compared with itself, so its answer is argmax(bias) whatever
    the image; with the norm feature too (the norm of a zero delta is 0)."""
    from cde_core.experiment.no_change import identical_pair_predictions
    from cde_core.models import create_model

    torch.manual_seed(0)
    tiny = {"backbone": "cde_vit_test", "img_size": 32, "latent_dim": 16, "projector_hidden": 32, "top_k": 2}
    items = [(torch.rand(3, 32, 32), torch.rand(3, 32, 32), 0, 0, torch.ones(16)) for _ in range(5)]
    for norm_feature in (False, True):
        model = create_model("cde", num_classes=3, norm_feature=norm_feature, **tiny)
        with torch.no_grad():
            model.classifier.bias.copy_(torch.tensor([0.0, 0.1, 0.3]))
        assert identical_pair_predictions(model, items, batch_size=2).tolist() == [2] * 5
        with torch.no_grad():
            model.classifier.bias.copy_(torch.tensor([0.0, 0.4, 0.3]))
        assert identical_pair_predictions(model, items).tolist() == [1] * 5


def test_no_change_summary_groups_by_role_and_class() -> None:
    from cde_core.experiment.no_change import no_change_summary

    labels = np.array([1, 1, 0, 2, 1, 0])  # class 1 = none
    preds = np.array([1, 0, 1, 2, 2, 1])
    roles = ["test", "test", "test", "ood", "ood", "ood"]
    norms = np.array([0.1, 0.3, 2.0, 1.0, 0.5, 3.0])
    summary = no_change_summary(preds, np.array([2, 2, 2, 2, 2, 1]), norms, labels, roles, none_index=1)
    assert summary["identical_called_none"] == pytest.approx(1 / 6)
    groups = summary["groups"]
    assert groups["test none"] == {"pairs": 2, "median_delta_norm": pytest.approx(0.2), "called_none": 0.5}
    assert groups["test change"] == {"pairs": 1, "median_delta_norm": 2.0, "called_none": 1.0}
    assert groups["ood none"] == {"pairs": 1, "median_delta_norm": 0.5, "called_none": 0.0}
    assert groups["ood change"] == {"pairs": 2, "median_delta_norm": 2.0, "called_none": 0.5}
    without = no_change_summary(preds, preds, None, labels, roles, none_index=1)
    assert all(g["median_delta_norm"] is None for g in without["groups"].values())
