"""Parameter validation (pure) and the debug overlay."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from cde_ros.node_parameters import PARAMS, confined_path, validate
from cde_ros.overlay import render_overlay

from conftest import REPO_ROOT


def test_yaml_lists_every_parameter() -> None:
    data = yaml.safe_load((REPO_ROOT / "config" / "perception.yaml").read_text())
    params = data["/**"]["ros__parameters"]
    assert set(params) == {p.name for p in PARAMS}
    for p in PARAMS:
        assert validate(p.name, params[p.name], configured=False) == "", p.name


def test_validation_rejects_out_of_range_types_and_structural_changes() -> None:
    assert "must be in" in validate("settle_time", -1.0, configured=True)
    assert validate("settle_time", 2, configured=True) == ""  # int accepted for a float
    assert "must be float" in validate("settle_time", "soon", configured=True)
    assert "must be one of" in validate("backend", "cuda", configured=False)
    assert "unconfigured" in validate("image_topic", "/cam", configured=True)
    assert "server_name=semantic_action" in validate("action_servers", ["/a"], configured=False)
    assert validate("use_sim_time", True, configured=True) == ""


def test_paths_confined(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    assert confined_path(str(tmp_path / "models" / "m.onnx"), str(tmp_path / "models")) == ""
    assert "outside" in confined_path(str(tmp_path / "models" / ".." / "x.onnx"), str(tmp_path / "models"))
    assert confined_path("/anything", "") == ""


def test_overlay_marks_the_patches() -> None:
    before = np.zeros((32, 32, 3), np.uint8)
    after = np.zeros((32, 32, 3), np.uint8)
    out = render_overlay(before, after, (4, 4), [5], "open -> open SUCCEEDED")
    assert out.shape == (32 + 22, 64, 3)
    red = (out[..., 0] > 200) & (out[..., 1] < 100)
    ys, xs = np.nonzero(red[:32])
    # patch 5 = row 1, col 1: pixels 8..15 in each half
    assert set(np.unique(ys)) <= set(range(8, 16)) and ((xs >= 8) & (xs < 16)).any() and ((xs >= 40) & (xs < 48)).any()
    assert out[32:].max() > 0  # text drawn
