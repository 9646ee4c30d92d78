"""launch/perception.launch.py: parsed with `ast` everywhere (launch cannot be installed here: PyPI's
`launch` is an unrelated project), evaluated only where launch_ros is importable."""
from __future__ import annotations

import ast
import importlib.util
import re

import pytest

from conftest import REPO_ROOT

LAUNCH = REPO_ROOT / "launch" / "perception.launch.py"


def _tree() -> ast.Module:
    return ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and (getattr(n.func, "id", None) == name or getattr(n.func, "attr", None) == name)]


def _kwarg(call: ast.Call, name: str) -> ast.expr:
    return next(k.value for k in call.keywords if k.arg == name)


def _strings(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_declares_namespace_and_model_path_arguments() -> None:
    declared = {call.args[0].value for call in _calls(_tree(), "DeclareLaunchArgument")}
    assert {"namespace", "model_path"} <= declared
    used = {call.args[0].value for call in _calls(_tree(), "LaunchConfiguration")}
    assert used <= declared, f"arguments used but not declared: {used - declared}"


def test_runs_the_installed_executable_in_the_namespace() -> None:
    (node,) = _calls(_tree(), "Node")
    assert ast.literal_eval(_kwarg(node, "package")) == "cde_ros"
    assert ast.literal_eval(_kwarg(node, "executable")) == "perception_node"
    assert (REPO_ROOT / "bin" / "perception_node").exists()
    assert "bin/perception_node" in (REPO_ROOT / "CMakeLists.txt").read_text()
    assert "namespace" in _strings(_kwarg(node, "namespace"))


def test_loads_the_yaml_and_passes_model_path() -> None:
    tree = _tree()
    (node,) = _calls(tree, "Node")
    share = _calls(tree, "get_package_share_directory")
    assert share and ast.literal_eval(share[0].args[0]) == "cde_ros"
    assert {"config", "perception.yaml"} <= set(_strings(tree))
    assert (REPO_ROOT / "config" / "perception.yaml").exists()
    assert re.search(r"install\(DIRECTORY[^)]*\bconfig\b", (REPO_ROOT / "CMakeLists.txt").read_text())
    assert "model_path" in _strings(_kwarg(node, "parameters"))


def test_remaps_the_generic_topic_names() -> None:
    (node,) = _calls(_tree(), "Node")
    remappings = _kwarg(node, "remappings")
    assert isinstance(remappings, ast.List)
    sources = {ast.literal_eval(pair.elts[0]) for pair in remappings.elts}
    assert {"image", "commands"} <= sources


def test_no_logic_beyond_naming_things() -> None:
    """Only imports and one function building the description: no subprocess, eval, installs, ifs."""
    tree = _tree()
    top = [type(n).__name__ for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom))]
    assert top in (["FunctionDef"], ["Expr", "FunctionDef"])
    forbidden = (ast.If, ast.For, ast.While, ast.Try, ast.Lambda)
    assert not [n for n in ast.walk(tree) if isinstance(n, forbidden)]
    modules = {n.module if isinstance(n, ast.ImportFrom) else a.name
               for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    assert {m.split(".")[0] for m in modules} <= {"os", "launch", "launch_ros", "ament_index_python"}


def test_the_yaml_keys_work_with_any_namespace() -> None:
    import yaml

    assert list(yaml.safe_load((REPO_ROOT / "config" / "perception.yaml").read_text())) == ["/**"]


@pytest.mark.skipif(importlib.util.find_spec("launch_ros") is None,
                    reason="launch_ros is not installable here (no wheel on any reachable registry)")
def test_generate_launch_description_evaluates() -> None:
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument

    spec = importlib.util.spec_from_file_location("perception_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert isinstance(description, LaunchDescription)
    names = {e.name for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    assert {"namespace", "model_path"} <= names
