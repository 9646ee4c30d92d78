"""Parameter declarations and validation (pure): ranges, choices, types, lifecycle state, the YAML file."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cde_ros.node_parameters import PARAMS, SPECS, STATES, confined_path, validate

from conftest import REPO_ROOT


def test_yaml_lists_every_parameter_with_a_valid_value_and_a_comment() -> None:
    text = (REPO_ROOT / "config" / "perception.yaml").read_text()
    params = yaml.safe_load(text)["/**"]["ros__parameters"]
    assert set(params) == {p.name for p in PARAMS}
    lines = text.splitlines()
    for p in PARAMS:
        assert validate(p.name, params[p.name], "unconfigured") == "", p.name
        index = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{p.name}:"))
        assert lines[index - 1].strip().startswith("#"), f"{p.name} has no comment above it"


def test_defaults_are_valid() -> None:
    for p in PARAMS:
        assert validate(p.name, p.default, "unconfigured") == "", p.name


@pytest.mark.parametrize("name, value, match", [
    ("settle_time", -1.0, "must be in"),
    ("after_frame_timeout", 0.0, "must be in"),
    ("image_qos_depth", 0, "must be in"),
    ("settle_time", "soon", "must be float"),
    ("publish_overlay", 1, "must be bool"),
    ("backend", "cuda", "must be one of"),
    ("image_qos", "fast", "must be one of"),
    ("action_servers", ["/a"], "server_name=semantic_action"),
    ("action_servers", ["=open"], "server_name=semantic_action"),
])
def test_bad_values_are_rejected_with_the_reason(name: str, value: object, match: str) -> None:
    assert match in validate(name, value, "unconfigured")


def test_ints_are_accepted_for_floats_but_not_bools() -> None:
    assert validate("settle_time", 2, "active") == ""
    assert "must be float" in validate("settle_time", True, "active")


def test_what_may_change_depends_on_the_lifecycle_state() -> None:
    assert "unconfigured" in validate("image_topic", "/cam", "inactive")
    assert validate("image_topic", "/cam", "unconfigured") == ""
    assert validate("model_path", "/m.onnx", "inactive") == ""  # loaded on activate: fine while inactive
    assert "not active" in validate("model_path", "/m.onnx", "active")
    assert validate("settle_time", 0.5, "active") == ""  # thresholds apply at once
    assert validate("use_sim_time", True, "active") == ""  # not ours
    with pytest.raises(ValueError, match="unknown lifecycle state"):
        validate("settle_time", 0.5, "configuring")


def test_every_spec_names_a_known_state_and_has_a_description() -> None:
    for spec in SPECS.values():
        assert spec.changeable_up_to in STATES and spec.description


def test_paths_confined(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    assert confined_path(str(tmp_path / "models" / "m.onnx"), str(tmp_path / "models")) == ""
    assert "outside" in confined_path(str(tmp_path / "models" / ".." / "x.onnx"), str(tmp_path / "models"))
    (tmp_path / "models" / "link").symlink_to(tmp_path)
    assert "outside" in confined_path(str(tmp_path / "models" / "link" / "x.onnx"), str(tmp_path / "models"))
    assert confined_path("/anything", "") == ""
