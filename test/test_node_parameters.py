"""Parameter declarations and validation (pure): ranges, choices, types, lifecycle state, the YAML file."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cde_ros.node_parameters import CONFINED_PATHS, PARAMS, SPECS, STATES, validate

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
    ("precision", "fp16", "must be one of"),
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


NUMERIC = [p for p in PARAMS if type(p.default) in (int, float)]


@pytest.mark.parametrize("spec", NUMERIC, ids=[p.name for p in NUMERIC])
def test_every_numeric_parameter_refuses_out_of_range_values(spec) -> None:
    """Each number has a range: huge, negative, infinite and NaN values are refused, in every state in
    which the parameter may change at all."""
    assert spec.check is not None, f"{spec.name} has no range check"
    bad = [-1e18, 1e18] if type(spec.default) is float else [-(2**62), 2**62]
    if type(spec.default) is float:
        bad += [float("inf"), float("-inf"), float("nan")]
    for value in bad:
        assert "must be in" in validate(spec.name, value, spec.changeable_up_to), (spec.name, value)
    assert validate(spec.name, spec.default, spec.changeable_up_to) == ""
    if type(spec.default) is int:
        assert "must be int" in validate(spec.name, float(spec.default), "unconfigured")


def test_model_path_must_be_a_non_pickle_format() -> None:
    assert validate("model_path", "/m/cde.onnx", "inactive") == ""
    assert validate("model_path", "/m/cde.safetensors", "inactive") == ""
    assert validate("model_path", "", "inactive") == ""  # unset: activation says so
    for name in ("/m/cde.pt", "/m/cde.pth", "/m/cde.ckpt", "/m/cde.onnx.pt"):
        assert "never loaded" in validate("model_path", name, "inactive"), name


def test_path_parameters_have_read_only_allow_lists() -> None:
    for path_param, allow_list in CONFINED_PATHS.items():
        assert path_param in SPECS and SPECS[allow_list].read_only
        default = SPECS[allow_list].default
        assert default and all(isinstance(d, str) and d for d in default)  # restricted by default, never empty
    assert not [p.name for p in PARAMS if p.read_only and p.name not in CONFINED_PATHS.values()]
    assert validate("allowed_model_dirs", ["/opt/models", "package://cde_ros/models", ""], "unconfigured") == ""
    assert "package://<package>" in validate("allowed_model_dirs", ["package:///models"], "unconfigured")
    assert "must be list" in validate("allowed_recording_dirs", "/tmp", "unconfigured")
