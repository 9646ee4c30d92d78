"""Pick a runtime by name (or by the model file's suffix)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from cde_core.runtime.base import Runtime

BACKENDS = ("auto", "onnxruntime", "torch", "tensorrt")


def load_runtime(path: str | Path, backend: str = "auto", **options: Any) -> Runtime:
    """`auto`: .onnx -> onnxruntime, .safetensors -> torch. `tensorrt` takes the .onnx index too and
    builds (or reuses from its cache) the engines for this GPU."""
    path = Path(path)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    if backend == "auto":
        backend = {".onnx": "onnxruntime", ".safetensors": "torch"}.get(path.suffix, "")
        if not backend:
            raise ValueError(f"cannot tell the backend from {path.name!r}; pass backend= explicitly")
    if backend == "torch":
        from cde_core.runtime.torch_runtime import TorchRuntime
        return TorchRuntime(path, **options)
    if backend == "onnxruntime":
        from cde_core.runtime.onnx_runtime import OnnxRuntime
        return OnnxRuntime(path, **options)
    from cde_core.runtime.tensorrt_runtime import TensorRTRuntime
    return TensorRTRuntime(path, **options)
