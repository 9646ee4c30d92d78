"""TensorRT backend (GPU / Jetson): engines built (or reused) by `cde export tensorrt` from the ONNX graphs.

Unverified on the development machines (no TensorRT, no GPU); written against the TensorRT 10 API:
named I/O tensors, `set_input_shape`, `set_tensor_address`, `execute_async_v3` on a torch CUDA stream,
with device buffers held by torch CUDA tensors. Metadata comes from the ONNX graphs the engines were
built from (validated as the onnxruntime backend validates it).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from cde_core.export.engine_cache import EngineSpec
from cde_core.export.onnx_metadata import parse_graph_metadata, read_index
from cde_core.export.tensorrt_engine import TensorRTUnavailable, build_or_reuse_engines, import_tensorrt
from cde_core.preprocessing import preprocess_rgb
from cde_core.runtime.base import Embedding, ModelLoadError, PairResult, RuntimeMetadata, softmax

_LOG = logging.getLogger(__name__)


class EngineRunner:
    """One deserialized engine + execution context; runs numpy in, numpy out."""

    def __init__(self, path: Path) -> None:
        import torch

        trt = import_tensorrt()
        self._torch = torch
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise ModelLoadError(f"{path}: TensorRT could not deserialize the engine (built by another TensorRT "
                                 "version?); rebuild with `cde export tensorrt --force`")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self.dtypes = {n: self._torch_dtype(trt, self.engine.get_tensor_dtype(n)) for n in names}
        self.stream = torch.cuda.Stream()

    def _torch_dtype(self, trt: Any, dtype: Any) -> Any:
        return self._torch.from_numpy(np.empty(0, dtype=trt.nptype(dtype))).dtype

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        buffers: dict[str, Any] = {}
        with torch.cuda.stream(self.stream):
            for name in self.inputs:
                tensor = torch.from_numpy(np.ascontiguousarray(feeds[name])).to("cuda", self.dtypes[name],
                                                                                  non_blocking=False)
                if not self.context.set_input_shape(name, tuple(tensor.shape)):
                    raise ValueError(f"input {name} shape {tuple(tensor.shape)} is outside the engine's profile")
                buffers[name] = tensor
            for name in self.outputs:
                shape = tuple(self.context.get_tensor_shape(name))
                buffers[name] = torch.empty(shape, dtype=self.dtypes[name], device="cuda")
            for name, tensor in buffers.items():
                self.context.set_tensor_address(name, tensor.data_ptr())
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log)")
        self.stream.synchronize()
        return {name: buffers[name].cpu().numpy() for name in self.outputs}


class TensorRTRuntime:
    """Same interface as OnnxRuntime; `path` is the ONNX index, engines come from the cache."""

    def __init__(self, path: str | Path, precision: str = "fp16", workspace_mb: int = 512, max_batch: int = 4,
                 cache_dir: str | Path = "~/.cache/cde/engines", threads: int | None = None) -> None:
        del threads  # accepted for interface parity with OnnxRuntime; TensorRT runs on the GPU
        import onnx

        index = read_index(path)
        try:
            encoder_props = {p.key: p.value for p in onnx.load(str(index.encoder), load_external_data=False)
                             .metadata_props}
        except Exception as exc:  # onnx raises DecodeError / OSError variants for corrupt files
            raise ModelLoadError(f"{index.encoder}: not a readable ONNX graph ({exc})") from exc
        graph = parse_graph_metadata(encoder_props, index.encoder, "encoder")
        try:
            encoder, head = build_or_reuse_engines(index.path, EngineSpec(precision, workspace_mb, max_batch),
                                                   cache_dir)
            self._encoder, self._head = EngineRunner(encoder), EngineRunner(head)
        except TensorRTUnavailable as exc:
            raise ModelLoadError(f"{path}: the tensorrt backend cannot run here: {exc}") from exc
        import tensorrt as trt

        meta = graph.meta
        self.metadata = RuntimeMetadata(
            class_names=list(meta.class_names), preprocessing=meta.preprocessing, calibration=meta.calibration,
            grid_size=graph.grid_size, top_k=graph.top_k, backend="tensorrt", precision=precision,
            providers=[f"TensorRT {trt.__version__}"], extra={"engines": [str(encoder), str(head)]})
        _LOG.info("tensorrt: %s (%s) with engines %s, %s", index.path.name, precision, encoder.name, head.name)

    def embed(self, rgb: np.ndarray) -> Embedding:
        out = self._encoder.run({"image": preprocess_rgb(rgb, self.metadata.preprocessing)[None]})
        return Embedding(out["global"][0].astype(np.float32), out["patches"][0].astype(np.float32))

    def compare(self, before: Embedding, after: Embedding) -> PairResult:
        out = self._head.run({"before_global": before.global_[None], "before_patches": before.patches[None],
                              "after_global": after.global_[None], "after_patches": after.patches[None]})
        return PairResult(self.metadata.class_names, softmax(out["logits"][0].astype(np.float32)),
                          float(out["effect_magnitude"][0]), out["topk_indices"][0].astype(np.int64),
                          self.metadata.grid_size)
