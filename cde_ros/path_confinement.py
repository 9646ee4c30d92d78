"""Confine file paths that arrive as node parameters to directories the operator listed at start.

Why: without SROS2 anyone on the DDS domain can call a node's set_parameters service, and even with it a
params file is easy to get wrong. A model path could then point at a file planted anywhere on disk, and a
recording directory could make the node write bags over files it can reach. So every path parameter
(`model_path`, `recording_dir`) must resolve inside one of the directories of its allow-list parameter
(`allowed_model_dirs`, `allowed_recording_dirs`), which are read-only once the node runs.

Both sides are resolved with os.path.realpath (after `~` expansion) before comparing: `..` and symbolic
links cannot lead out of an allowed directory, and a link re-pointed after the check is caught when the
node checks again right before it opens the file. A model is every file it consists of: an ONNX index names
its graphs, and each of them must resolve inside the allow-list too (`confine_model_files`), or an index
inside it could load a graph linked from anywhere. Allow-list entries:
- an absolute or `~` path (relative ones are taken from the node's working directory);
- `package://<package>/<subdir>`: the package's installed share directory and, for cde_ros run from its
  source checkout, the checkout (the ROS `package://` URI convention of camera_info_url and URDF meshes);
- `""` entries are ignored, so `[""]` allows nothing.
Pure Python: tested without ROS.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

PACKAGE_SCHEME = "package://"
_CHECKOUT = Path(__file__).resolve().parents[1]  # the source checkout when run from one (has package.xml)


class PathNotAllowedError(ValueError):
    """A path from a parameter resolves outside every directory its allow-list names."""


def package_roots(package: str) -> list[Path]:
    """Where `package://<package>/` points: the installed share directory (ament index) and, for this
    package run from its source checkout, the checkout root."""
    roots: list[Path] = []
    try:
        from ament_index_python.packages import get_package_share_directory

        roots.append(Path(get_package_share_directory(package)))
    except (ImportError, LookupError, OSError, ValueError):  # not installed / AMENT_PREFIX_PATH unset
        pass
    manifest = _CHECKOUT / "package.xml"
    if manifest.is_file() and f"<name>{package}</name>" in manifest.read_text(errors="replace"):
        roots.append(_CHECKOUT)
    return roots


def entry_problem(entry: str) -> str:
    """'' if `entry` is a usable allow-list entry, else why not (for parameter validation)."""
    if not isinstance(entry, str):
        return f"entries must be strings, got {type(entry).__name__}"
    if entry.startswith(PACKAGE_SCHEME):
        package = entry[len(PACKAGE_SCHEME):].split("/", 1)[0]
        if not package:
            return f"{entry!r}: expected package://<package>/<subdirectory>"
    return ""


def resolve_allowed_dirs(entries: Sequence[str],
                         roots_of: Callable[[str], list[Path]] = package_roots) -> list[str]:
    """Real paths of the allow-list entries (`~` expanded, `package://` looked up, links resolved),
    without duplicates, in order. Entries that are not directories yet are kept (a recording directory
    may be created later)."""
    resolved: list[str] = []
    for entry in entries:
        if not entry:
            continue
        problem = entry_problem(entry)
        if problem:
            raise PathNotAllowedError(problem)
        if entry.startswith(PACKAGE_SCHEME):
            package, _, sub = entry[len(PACKAGE_SCHEME):].partition("/")
            candidates = [root / sub for root in roots_of(package)]
        else:
            candidates = [Path(os.path.expanduser(entry))]
        for candidate in candidates:
            real = os.path.realpath(candidate)
            if real not in resolved:
                resolved.append(real)
    return resolved


def is_inside(real_path: str, real_dir: str) -> bool:
    """`real_path` is `real_dir` or below it (both already resolved)."""
    return real_path == real_dir or Path(real_dir) in Path(real_path).parents


def confine(path: str, entries: Sequence[str], parameter: str, allow_list: str,
            roots_of: Callable[[str], list[Path]] = package_roots) -> str:
    """The real path of `path` (the parameter `parameter`) if it lies inside a directory of the
    allow-list parameter `allow_list` (`entries`); else PathNotAllowedError saying what to change."""
    if not path:
        raise PathNotAllowedError(f"{parameter} is empty")
    real = os.path.realpath(os.path.expanduser(path))
    allowed = resolve_allowed_dirs(entries, roots_of)
    if not allowed:
        raise PathNotAllowedError(f"{parameter} {path!r} refused: {allow_list} allows no directory; list the "
                                  f"directories it may use in {allow_list} (read-only: params file or -p at start)")
    if any(is_inside(real, d) for d in allowed):
        return real
    shown = "" if real == path else f" (resolves to {real})"
    raise PathNotAllowedError(f"{parameter} {path!r}{shown} is outside {allow_list} {allowed}; move the file "
                              f"there, or add its directory to {allow_list} (read-only: params file or -p at "
                              "start)")


def confine_model_files(real_model_path: str, entries: Sequence[str], allow_list: str = "allowed_model_dirs",
                        roots_of: Callable[[str], list[Path]] = package_roots) -> list[str]:
    """The real paths of every file the model at `real_model_path` (already confined) consists of: the file
    itself and, for an ONNX index, each graph it names. PathNotAllowedError if any of them resolves outside the
    allow-list: `confine` checks only the path it is given, and an index's graphs are opened by name beside it,
    so a graph that is a symbolic link would otherwise lead anywhere.

    An index that cannot be read is not a confinement question: only its own path is returned and the loader,
    reading the same file next, says what is wrong with it."""
    from cde_core.export.onnx_metadata import read_index
    from cde_core.runtime.base import ModelLoadError

    files = [real_model_path]
    if Path(real_model_path).suffix != ".onnx":  # a safetensors checkpoint is one file
        return files
    try:
        index = read_index(real_model_path)
    except ModelLoadError:
        return files
    allowed = resolve_allowed_dirs(entries, roots_of)
    for role, graph in index.graphs().items():
        real = os.path.realpath(graph)
        if not any(is_inside(real, d) for d in allowed):
            raise PathNotAllowedError(f"model {real_model_path}: its {role} graph {graph} resolves to {real}, outside "
                                      f"{allow_list} {allowed}; every file of the model (index and graphs) must be "
                                      f"inside {allow_list}: copy the graph beside the index instead of linking it")
        files.append(real)
    return files
