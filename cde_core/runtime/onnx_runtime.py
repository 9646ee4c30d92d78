"""ONNX Runtime backend: the encoder and head graphs written by `cde export onnx`.

Providers: CUDA / TensorRT execution providers are requested when onnxruntime offers them; the ones
the session really uses are logged and reported in metadata (no silent fallback).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from cde_core.checkpoint import CheckpointError, ModelMeta
from cde_core.preprocessing import preprocess_rgb
from cde_core.runtime.base import Embedding, ModelLoadError, PairResult, RuntimeMetadata, softmax

_LOG = logging.getLogger(__name__)
_PREFERRED = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def _read_index(path: Path) -> tuple[Path, Path]:
    from cde_core.export.onnx_export import INDEX_FORMAT

    try:
        index = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path}: not a cde ONNX index ({exc}); export one with `cde export onnx`") from exc
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT:
        raise ModelLoadError(f"{path}: unknown index format {index.get('format') if isinstance(index, dict) else index!r}")
    return path.parent / str(index["encoder"]), path.parent / str(index["head"])


def _validated_meta(props: dict[str, str], path: Path) -> tuple[ModelMeta, tuple[int, int], int]:
    try:
        meta = ModelMeta.from_json(props["cde"])
        grid = json.loads(props["cde_grid_size"])
        top_k = int(props["cde_top_k"])
    except (KeyError, ValueError, TypeError, CheckpointError) as exc:
        raise ModelLoadError(f"{path}: missing or invalid cde metadata ({exc!s}); re-export the model") from exc
    if not (isinstance(grid, list) and len(grid) == 2 and all(isinstance(g, int) and g > 0 for g in grid)):
        raise ModelLoadError(f"{path}: invalid cde_grid_size {grid!r}")
    if not meta.class_names or top_k < 1 or meta.preprocessing.img_size < 8:
        raise ModelLoadError(f"{path}: invalid metadata (classes {meta.class_names}, top_k {top_k})")
    return meta, (grid[0], grid[1]), top_k


class OnnxRuntime:
    def __init__(self, path: str | Path, providers: Sequence[str] | None = None, threads: int = 1) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise ModelLoadError(f"model {path} does not exist")
        encoder_path, head_path = _read_index(path)
        available = ort.get_available_providers()
        wanted = list(providers) if providers else [p for p in _PREFERRED if p in available]
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        try:
            self._encoder = ort.InferenceSession(str(encoder_path), options, providers=wanted)
            self._head = ort.InferenceSession(str(head_path), options, providers=wanted)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/NoSuchFile types
            raise ModelLoadError(f"{path}: onnxruntime cannot load the graphs ({exc})") from exc
        meta, grid, top_k = _validated_meta(self._encoder.get_modelmeta().custom_metadata_map, encoder_path)
        in_use = self._encoder.get_providers()
        if wanted and wanted[0] not in in_use:
            _LOG.warning("asked for %s but onnxruntime uses %s", wanted, in_use)
        self.metadata = RuntimeMetadata(
            class_names=meta.class_names, preprocessing=meta.preprocessing, calibration=meta.calibration,
            grid_size=grid, top_k=top_k, backend="onnxruntime", precision="fp32", providers=in_use)
        _LOG.info("onnxruntime: %s with providers %s", path.name, in_use)

    def embed(self, rgb: np.ndarray) -> Embedding:
        x = preprocess_rgb(rgb, self.metadata.preprocessing)[None]
        glob, patches = self._encoder.run(None, {"image": x})
        return Embedding(glob[0], patches[0])

    def embed_batch(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Preprocessed float32 [B,3,S,S] -> (global, patches); for benchmarks."""
        glob, patches = self._encoder.run(None, {"image": images})
        return glob, patches

    def compare(self, before: Embedding, after: Embedding) -> PairResult:
        logits, _, topk, magnitude = self._head.run(None, {
            "before_global": before.global_[None], "before_patches": before.patches[None],
            "after_global": after.global_[None], "after_patches": after.patches[None]})
        return PairResult(self.metadata.class_names, softmax(logits[0]), float(magnitude[0]), topk[0],
                          self.metadata.grid_size)
