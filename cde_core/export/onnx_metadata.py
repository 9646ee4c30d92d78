"""The exported ONNX layout and the metadata every graph carries (written by onnx_export, read by runtimes).

Layout, for `cde export onnx CKPT --out models/m.onnx`:
- `models/m.onnx`: a small JSON index (`format`, graph file names, opset, export id). It is what users
  pass around and what `load_runtime` / the node load; the suffix keeps backend auto-detection simple.
- `models/m.encoder.onnx`: image [B,3,S,S] -> global [B,L], patches [B,N,L].
- `models/m.head.onnx`: before/after global + patches -> logits [B,C], delta_global [B,L],
  topk_indices [B,K] (int64), effect_magnitude [B].
- `models/m.pair.onnx` (with `--pair`): before, after images -> the head's outputs, in one graph.
Every graph's `metadata_props` holds the checkpoint's metadata JSON (`cde`) plus the keys below, so a
graph copied alone still says what it is, and graphs from different exports are never mixed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cde_core.checkpoint import CheckpointError, ModelMeta
from cde_core.runtime.base import ModelLoadError

INDEX_FORMAT = "cde-onnx-pair/1"
GRAPH_FORMAT = 1  # version of the metadata_props keys below
GRAPH_ROLES = ("encoder", "head", "pair")


@dataclass(frozen=True)
class GraphMetadata:
    """What a runtime needs from a graph besides its weights."""

    meta: ModelMeta
    role: str
    grid_size: tuple[int, int]
    top_k: int
    export_id: str
    cde_version: str


def graph_metadata_props(meta: ModelMeta, role: str, grid_size: tuple[int, int], top_k: int,
                         export_id: str, cde_version: str) -> dict[str, str]:
    """Key/value strings for an ONNX model's metadata_props."""
    if role not in GRAPH_ROLES:
        raise ValueError(f"graph role must be one of {GRAPH_ROLES}, got {role!r}")
    return {"cde": meta.to_json(), "cde_graph_format": str(GRAPH_FORMAT), "cde_graph": role,
            "cde_grid_size": json.dumps(list(grid_size)), "cde_top_k": str(top_k),
            "cde_export_id": export_id, "cde_version": cde_version}


def parse_graph_metadata(props: dict[str, str], path: Path, expected_role: str) -> GraphMetadata:
    """Validate metadata_props; any missing or ill-typed key is a ModelLoadError naming it."""
    def need(key: str) -> str:
        if key not in props:
            raise ModelLoadError(f"{path}: missing cde metadata key {key!r}; re-export with `cde export onnx`")
        return props[key]

    try:
        graph_format = int(need("cde_graph_format"))
    except ValueError as exc:
        raise ModelLoadError(f"{path}: cde_graph_format is not an integer ({exc})") from exc
    if graph_format > GRAPH_FORMAT:
        raise ModelLoadError(f"{path}: graph metadata format {graph_format} is newer than this cde "
                             f"({GRAPH_FORMAT}); upgrade cde")
    role = need("cde_graph")
    if role != expected_role:
        raise ModelLoadError(f"{path}: is the {role!r} graph, expected {expected_role!r}; check the index")
    try:
        meta = ModelMeta.from_json(need("cde"))
    except (KeyError, ValueError, TypeError, CheckpointError) as exc:
        raise ModelLoadError(f"{path}: invalid cde metadata JSON ({exc!r}); re-export the model") from exc
    try:
        grid = json.loads(need("cde_grid_size"))
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{path}: cde_grid_size is not JSON ({exc})") from exc
    if not (isinstance(grid, list) and len(grid) == 2 and all(type(g) is int and g > 0 for g in grid)):
        raise ModelLoadError(f"{path}: cde_grid_size must be [rows, cols] of positive ints, got {grid!r}")
    try:
        top_k = int(need("cde_top_k"))
    except ValueError as exc:
        raise ModelLoadError(f"{path}: cde_top_k is not an integer ({exc})") from exc
    if not 1 <= top_k <= grid[0] * grid[1]:
        raise ModelLoadError(f"{path}: cde_top_k {top_k} outside 1..{grid[0] * grid[1]} patches")
    if not meta.class_names or len(set(meta.class_names)) != len(meta.class_names):
        raise ModelLoadError(f"{path}: class names must be non-empty and unique, got {meta.class_names}")
    if meta.preprocessing.img_size < 8 or len(meta.preprocessing.mean) != 3 or len(meta.preprocessing.std) != 3:
        raise ModelLoadError(f"{path}: invalid preprocessing {meta.preprocessing}")
    return GraphMetadata(meta, role, (grid[0], grid[1]), top_k, need("cde_export_id"), need("cde_version"))


@dataclass(frozen=True)
class OnnxIndex:
    """The graph files one export produced, resolved next to the index."""

    path: Path
    encoder: Path
    head: Path
    pair: Path | None
    opset: int
    export_id: str

    def graphs(self) -> dict[str, Path]:
        found = {"encoder": self.encoder, "head": self.head}
        if self.pair is not None:
            found["pair"] = self.pair
        return found


def write_index(path: Path, encoder: Path, head: Path, pair: Path | None, opset: int, export_id: str,
                cde_version: str) -> Path:
    """Write the JSON index beside its graphs (file names only, so the folder can be moved)."""
    data = {"format": INDEX_FORMAT, "encoder": encoder.name, "head": head.name, "opset": opset,
            "export_id": export_id, "cde_version": cde_version}
    if pair is not None:
        data["pair"] = pair.name
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def read_index(path: str | Path) -> OnnxIndex:
    """Parse and check an index; a missing file, wrong format or missing graph is a ModelLoadError."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model {path} does not exist; export one with `cde export onnx CKPT --out {path}`")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path}: not a cde ONNX index ({exc.__class__.__name__}); pass the .onnx index "
                             "written by `cde export onnx`, not a graph file") from exc
    if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ModelLoadError(f"{path}: unknown index format {found!r} (expected {INDEX_FORMAT!r})")
    graphs: dict[str, Path | None] = {}
    for role in GRAPH_ROLES:
        name = data.get(role)
        if name is None and role == "pair":
            graphs[role] = None
            continue
        if not isinstance(name, str) or Path(name).name != name:
            raise ModelLoadError(f"{path}: index entry {role!r} must be a file name beside the index, got {name!r}")
        graphs[role] = path.parent / name
        if not graphs[role].is_file():
            raise ModelLoadError(f"{path}: its {role} graph {graphs[role]} is missing; copy it beside the index")
    try:
        opset = int(data.get("opset", 0))
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(f"{path}: opset is not an integer") from exc
    return OnnxIndex(path, graphs["encoder"], graphs["head"], graphs["pair"], opset,  # type: ignore[arg-type]
                     str(data.get("export_id", "")))
