"""TensorRT backend (GPU / Jetson): engines built by `cde export tensorrt` from the ONNX graphs.

Unverified on the development machines (no TensorRT, no GPU); written against the TensorRT 10 API
(execute_async_v3 with named tensors, device buffers from torch CUDA tensors).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cde_core.export.engine_cache import EngineSpec
from cde_core.export.tensorrt_engine import _tensorrt, build_or_reuse_engines
from cde_core.preprocessing import preprocess_rgb
from cde_core.runtime.base import Embedding, PairResult, softmax

_LOG = logging.getLogger(__name__)


class _Engine:
    def __init__(self, path: Path) -> None:
        import torch

        trt = _tensorrt()
        self._torch = torch
        self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise RuntimeError(f"{path}: TensorRT could not deserialize the engine (built by another version?)")
        self.context = self.engine.create_execution_context()
        self.names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in self.names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.stream = torch.cuda.Stream()

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        torch = self._torch
        buffers = {}
        for name in self.inputs:
            tensor = torch.from_numpy(np.ascontiguousarray(feeds[name])).cuda()
            self.context.set_input_shape(name, tuple(tensor.shape))
            buffers[name] = tensor
        outputs = [n for n in self.names if n not in self.inputs]
        for name in outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            dtype = torch.int64 if "indices" in name else torch.float32
            buffers[name] = torch.empty(shape, dtype=dtype, device="cuda")
        for name, tensor in buffers.items():
            self.context.set_tensor_address(name, tensor.data_ptr())
        self.context.execute_async_v3(self.stream.cuda_stream)
        self.stream.synchronize()
        return [buffers[n].cpu().numpy() for n in outputs]


class TensorRTRuntime:
    """Same interface as OnnxRuntime; metadata comes from the ONNX graphs the engines were built from."""

    def __init__(self, path: str | Path, precision: str = "fp16", workspace_mb: int = 512,
                 cache_dir: str = "~/.cache/cde/engines") -> None:
        from cde_core.runtime.onnx_runtime import OnnxRuntime

        onnx_index = Path(path)
        self._reference = OnnxRuntime(onnx_index, providers=["CPUExecutionProvider"])  # metadata only
        self.metadata = self._reference.metadata
        encoder, head = build_or_reuse_engines(onnx_index, EngineSpec(precision, workspace_mb), cache_dir)
        self._encoder, self._head = _Engine(encoder), _Engine(head)
        self.metadata.backend, self.metadata.precision = "tensorrt", precision
        self.metadata.providers = ["TensorRT"]

    def embed(self, rgb: np.ndarray) -> Embedding:
        glob, patches = self._encoder.run({"image": preprocess_rgb(rgb, self.metadata.preprocessing)[None]})
        return Embedding(glob[0], patches[0])

    def compare(self, before: Embedding, after: Embedding) -> PairResult:
        logits, _, topk, magnitude = self._head.run({
            "before_global": before.global_[None], "before_patches": before.patches[None],
            "after_global": after.global_[None], "after_patches": after.patches[None]})
        return PairResult(self.metadata.class_names, softmax(logits[0]), float(magnitude[0]), topk[0],
                          self.metadata.grid_size)
