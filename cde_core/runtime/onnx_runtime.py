"""ONNX Runtime backend: the encoder and head graphs written by `cde export onnx` (default on CPU).

Providers: the TensorRT / CUDA execution providers are requested when this onnxruntime build offers
them; the providers each session really uses are logged and reported in `metadata.providers`, and a
requested provider that onnxruntime dropped is a warning naming it (no silent fallback). Metadata is
validated before use: a graph without valid cde metadata, graphs from different exports, or an input
size that disagrees with the preprocessing is a ModelLoadError.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cde_core.export.onnx_metadata import GraphMetadata, OnnxIndex, parse_graph_metadata, read_index
from cde_core.preprocessing import preprocess_rgb
from cde_core.runtime.base import Embedding, ModelLoadError, PairResult, RuntimeMetadata, softmax

_LOG = logging.getLogger(__name__)
PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def _ort_errors() -> tuple[type[BaseException], ...]:
    """onnxruntime's own exception types (they derive from Exception directly, not RuntimeError)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidGraph", "InvalidProtobuf", "NoSuchFile", "InvalidArgument", "NotImplemented",
             "RuntimeException", "NoModel", "ModelLoaded", "EPFail")
    return tuple(getattr(state, n) for n in names if hasattr(state, n)) + (RuntimeError,)


def choose_providers(requested: Sequence[str] | None, available: Sequence[str]) -> list[str]:
    """The requested providers (must all exist in this build), or the best ones available."""
    if requested:
        missing = [p for p in requested if p not in available]
        if missing:
            raise ModelLoadError(f"onnxruntime providers {missing} are not in this build (available: "
                                 f"{list(available)}); install onnxruntime-gpu or drop them")
        return list(requested)
    return [p for p in PREFERRED_PROVIDERS if p in available]


class OnnxRuntime:
    """Runtime over two onnxruntime sessions; `threads` is the intra-op thread count of each."""

    def __init__(self, path: str | Path, providers: Sequence[str] | None = None, threads: int = 1,
                 spin: bool = True) -> None:
        import onnxruntime as ort

        self.index: OnnxIndex = read_index(path)
        wanted = choose_providers(providers, ort.get_available_providers())
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if not spin:  # on a loaded machine spinning workers steal the cores they wait for
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._encoder = self._session(ort, self.index.encoder, options, wanted)
        self._head = self._session(ort, self.index.head, options, wanted)
        enc_meta = self._metadata(self._encoder, self.index.encoder, "encoder")
        head_meta = self._metadata(self._head, self.index.head, "head")
        if enc_meta.export_id != head_meta.export_id or enc_meta.meta.to_json() != head_meta.meta.to_json():
            raise ModelLoadError(f"{self.index.path}: encoder and head come from different exports "
                                 f"({enc_meta.export_id} vs {head_meta.export_id}); re-export both")
        self._check_shapes(enc_meta)
        in_use = self._encoder.get_providers()
        dropped = [p for p in wanted if p not in in_use or p not in self._head.get_providers()]
        if dropped:
            _LOG.warning("onnxruntime did not enable %s for %s (missing CUDA/TensorRT libraries?); running on %s",
                         dropped, self.index.path.name, in_use)
        meta = enc_meta.meta
        self.metadata = RuntimeMetadata(
            class_names=list(meta.class_names), preprocessing=meta.preprocessing, calibration=meta.calibration,
            grid_size=enc_meta.grid_size, top_k=enc_meta.top_k, backend="onnxruntime", precision="fp32",
            providers=list(in_use),
            extra={"opset": self.index.opset, "export_id": enc_meta.export_id, "threads": options.intra_op_num_threads,
                   "cde_version": enc_meta.cde_version})
        _LOG.info("onnxruntime %s: %s, providers in use %s, %d thread(s)", ort.__version__, self.index.path.name,
                  in_use, options.intra_op_num_threads)

    def _session(self, ort: Any, path: Path, options: Any, providers: list[str]) -> Any:
        try:
            return ort.InferenceSession(str(path), options, providers=providers)
        except _ort_errors() as exc:
            raise ModelLoadError(f"{path}: onnxruntime cannot load the graph ({exc}); the file is corrupt or "
                                 "not an ONNX model - re-export with `cde export onnx`") from exc

    def _metadata(self, session: Any, path: Path, role: str) -> GraphMetadata:
        return parse_graph_metadata(dict(session.get_modelmeta().custom_metadata_map), path, role)

    def _check_shapes(self, meta: GraphMetadata) -> None:
        """The graphs must agree with the metadata the node will preprocess and verify with."""
        size = meta.meta.preprocessing.img_size
        image = self._encoder.get_inputs()[0]
        if image.name != "image" or list(image.shape[1:]) != [3, size, size]:
            raise ModelLoadError(f"{self.index.encoder}: encoder input {image.name}{image.shape} does not take "
                                 f"[B,3,{size},{size}] images as its metadata says")
        logits = {o.name: o.shape for o in self._head.get_outputs()}.get("logits")
        if logits is None or logits[-1] != len(meta.meta.class_names):
            raise ModelLoadError(f"{self.index.head}: logits {logits} do not match the "
                                 f"{len(meta.meta.class_names)} class names in the metadata")

    def embed(self, rgb: np.ndarray) -> Embedding:
        glob, patches = self.embed_batch(preprocess_rgb(rgb, self.metadata.preprocessing)[None])
        return Embedding(glob[0], patches[0])

    def embed_batch(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Preprocessed float32 [B,3,S,S] -> (global [B,L], patches [B,N,L])."""
        glob, patches = self._encoder.run(None, {"image": np.ascontiguousarray(images, dtype=np.float32)})
        return glob, patches

    def head_batch(self, before_global: np.ndarray, before_patches: np.ndarray, after_global: np.ndarray,
                   after_patches: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Batched head: (logits, delta_global, topk_indices, effect_magnitude)."""
        logits, delta, topk, magnitude = self._head.run(None, {
            "before_global": before_global, "before_patches": before_patches,
            "after_global": after_global, "after_patches": after_patches})
        return logits, delta, topk, magnitude

    def compare(self, before: Embedding, after: Embedding) -> PairResult:
        logits, _, topk, magnitude = self.head_batch(before.global_[None], before.patches[None],
                                                     after.global_[None], after.patches[None])
        return PairResult(self.metadata.class_names, softmax(logits[0]), float(magnitude[0]),
                          topk[0].astype(np.int64), self.metadata.grid_size)
