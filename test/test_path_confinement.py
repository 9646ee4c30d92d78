"""Path confinement of parameter paths (pure): '..', symlinks, '~', package:// entries, empty allow-lists."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from cde_ros.path_confinement import (PathNotAllowedError, confine, confine_model_files, entry_problem, is_inside,
                                      package_roots, resolve_allowed_dirs)

from conftest import REPO_ROOT


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "models" / "sub").mkdir(parents=True)
    (tmp_path / "models" / "m.onnx").write_text("{}")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "evil.onnx").write_text("{}")
    return tmp_path


def _allowed(tree: Path) -> list[str]:
    return [str(tree / "models")]


def test_a_path_inside_is_returned_resolved(tree: Path) -> None:
    real = confine(str(tree / "models" / "sub" / ".." / "m.onnx"), _allowed(tree), "model_path", "allowed_model_dirs")
    assert real == os.path.realpath(tree / "models" / "m.onnx")
    assert confine(str(tree / "models"), _allowed(tree), "recording_dir", "allowed_recording_dirs")  # the dir itself
    assert confine(str(tree / "models" / "not_yet" / "bags"), _allowed(tree), "recording_dir", "x")  # need not exist


def test_dot_dot_out_of_the_directory_is_refused(tree: Path) -> None:
    with pytest.raises(PathNotAllowedError, match=r"resolves to .*outside.evil.onnx\) is outside allowed_model_dirs"):
        confine(str(tree / "models" / ".." / "outside" / "evil.onnx"), _allowed(tree), "model_path",
                "allowed_model_dirs")


def test_a_symlink_leading_out_is_refused_and_one_leading_in_is_followed(tree: Path) -> None:
    (tree / "models" / "link.onnx").symlink_to(tree / "outside" / "evil.onnx")
    (tree / "models" / "dirlink").symlink_to(tree / "outside")
    for path in (tree / "models" / "link.onnx", tree / "models" / "dirlink" / "evil.onnx"):
        with pytest.raises(PathNotAllowedError, match="outside"):
            confine(str(path), _allowed(tree), "model_path", "allowed_model_dirs")
    (tree / "outside" / "in.onnx").symlink_to(tree / "models" / "m.onnx")  # a link from outside to inside: fine
    assert confine(str(tree / "outside" / "in.onnx"), _allowed(tree), "model_path", "a") == \
        os.path.realpath(tree / "models" / "m.onnx")


def test_an_allowed_directory_given_through_a_symlink_is_resolved_too(tree: Path) -> None:
    (tree / "alias").symlink_to(tree / "models")
    assert confine(str(tree / "models" / "m.onnx"), [str(tree / "alias")], "model_path", "a")
    assert confine(str(tree / "alias" / "m.onnx"), [str(tree / "models")], "model_path", "a")


def test_a_sibling_with_a_common_prefix_is_outside(tree: Path) -> None:
    (tree / "models_evil").mkdir()
    with pytest.raises(PathNotAllowedError):
        confine(str(tree / "models_evil" / "m.onnx"), _allowed(tree), "model_path", "a")
    assert is_inside("/a/b", "/a/b") and is_inside("/a/b/c", "/a/b") and not is_inside("/a/bc", "/a/b")
    assert is_inside("/anything", "/")


def test_empty_allow_lists_allow_nothing(tree: Path) -> None:
    for entries in ([], [""]):
        with pytest.raises(PathNotAllowedError, match="allows no directory"):
            confine(str(tree / "models" / "m.onnx"), entries, "model_path", "allowed_model_dirs")
    with pytest.raises(PathNotAllowedError, match="model_path is empty"):
        confine("", _allowed(tree), "model_path", "allowed_model_dirs")


def test_home_and_relative_paths(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tree))
    assert confine("~/models/m.onnx", ["~/models"], "model_path", "a") == os.path.realpath(tree / "models" / "m.onnx")
    monkeypatch.chdir(tree / "models")
    assert confine("m.onnx", [str(tree / "models")], "model_path", "a")
    with pytest.raises(PathNotAllowedError):
        confine("../outside/evil.onnx", ["."], "model_path", "a")


def test_package_entries_resolve_to_share_and_checkout(tree: Path) -> None:
    roots = {"cde_ros": [tree / "share" / "cde_ros", tree]}
    resolved = resolve_allowed_dirs(["package://cde_ros/models", "package://unknown/x", ""],
                                    roots_of=lambda pkg: roots.get(pkg, []))
    assert resolved == [os.path.realpath(tree / "share" / "cde_ros" / "models"), os.path.realpath(tree / "models")]
    assert confine(str(tree / "models" / "m.onnx"), ["package://cde_ros/models"], "model_path", "a",
                   roots_of=lambda pkg: roots.get(pkg, []))
    assert entry_problem("package:///models") and entry_problem(3) and not entry_problem("package://p/models")
    # this checkout is found for its own package, so the default allow-list covers the demo model
    assert REPO_ROOT.resolve() in package_roots("cde_ros")
    assert confine(str(REPO_ROOT / "models" / "demo" / "cde_demo.safetensors"), ["package://cde_ros/models"],
                   "model_path", "allowed_model_dirs")
    assert package_roots("no_such_package_here") == []


def _export_layout(directory: Path, with_pair: bool = False) -> Path:
    """An index and its graph files as `cde export onnx` lays them out (graph contents do not matter here)."""
    from cde_core.export.onnx_metadata import write_index

    directory.mkdir(parents=True, exist_ok=True)
    graphs = {role: directory / f"m.{role}.onnx" for role in ("encoder", "head", "pair")}
    for graph in graphs.values():
        graph.write_bytes(b"graph")
    return write_index(directory / "m.onnx", graphs["encoder"], graphs["head"], graphs["pair"] if with_pair else None,
                       17, "export-1", "test")


def test_model_files_of_an_index_inside_are_the_index_and_its_graphs(tree: Path) -> None:
    index = _export_layout(tree / "models" / "export", with_pair=True)
    real = confine(str(index), _allowed(tree), "model_path", "allowed_model_dirs")
    assert confine_model_files(real, _allowed(tree)) == [
        os.path.realpath(index.parent / name) for name in ("m.onnx", "m.encoder.onnx", "m.head.onnx", "m.pair.onnx")]


@pytest.mark.parametrize("role", ["encoder", "head", "pair"])
def test_a_graph_linked_from_outside_is_refused_although_the_index_is_inside(tree: Path, role: str) -> None:
    """Issue 13: the index inside allowed_model_dirs passed `confine`, its encoder was a link to a file outside,
    and the node activated it."""
    index = _export_layout(tree / "models" / "export", with_pair=True)
    graph = index.parent / f"m.{role}.onnx"
    graph.unlink()
    (tree / "outside" / f"planted.{role}.onnx").write_bytes(b"graph")
    graph.symlink_to(tree / "outside" / f"planted.{role}.onnx")
    real = confine(str(index), _allowed(tree), "model_path", "allowed_model_dirs")  # the index alone passes
    with pytest.raises(PathNotAllowedError, match=rf"its {role} graph .*m\.{role}\.onnx resolves to "
                                                  rf".*outside.planted\.{role}\.onnx, outside allowed_model_dirs"):
        confine_model_files(real, _allowed(tree))


def test_graphs_linked_into_another_allowed_directory_are_fine(tree: Path) -> None:
    index = _export_layout(tree / "models" / "export")
    (tree / "shared").mkdir()
    (index.parent / "m.encoder.onnx").rename(tree / "shared" / "m.encoder.onnx")
    (index.parent / "m.encoder.onnx").symlink_to(tree / "shared" / "m.encoder.onnx")
    files = confine_model_files(str(index), [str(tree / "models"), str(tree / "shared")])
    assert files[1] == os.path.realpath(tree / "shared" / "m.encoder.onnx")
    with pytest.raises(PathNotAllowedError, match="encoder graph"):
        confine_model_files(str(index), [str(tree / "models")])


def test_a_checkpoint_or_an_unreadable_index_is_just_itself(tree: Path) -> None:
    """A safetensors checkpoint is one file; a garbage index is left to the loader, which says what is wrong."""
    checkpoint = tree / "models" / "m.safetensors"
    checkpoint.write_bytes(b"x")
    assert confine_model_files(str(checkpoint), _allowed(tree)) == [str(checkpoint)]
    garbage = tree / "models" / "garbage.onnx"
    garbage.write_text("not json")
    assert confine_model_files(str(garbage), _allowed(tree)) == [str(garbage)]
