"""Pick a runtime by name (or by the model file's suffix).

Weights come only from formats that cannot run code when read: safetensors checkpoints (torch) and
the ONNX export (onnxruntime, tensorrt). A pickled PyTorch file (.pt, .pth, .ckpt, ...) is refused by
its name before anything opens it: unpickling runs whatever code the file names.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from cde_core.runtime.base import ModelLoadError, Runtime

BACKENDS = ("auto", "onnxruntime", "torch", "tensorrt")
SUFFIXES = {"torch": ".safetensors", "onnxruntime": ".onnx", "tensorrt": ".onnx"}
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin", ".tar")


def refuse_pickle(path: Path) -> None:
    """ModelLoadError for a pickled PyTorch file, decided by its name alone (it is never opened)."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ModelLoadError(f"{path}: pickled PyTorch files are never loaded (unpickling can run code); "
                             "save the weights as safetensors (`cde train` does) or export to ONNX")


def check_model_file(path: Path, backend: str) -> None:
    """ModelLoadError unless `path` has the suffix of a non-pickle format `backend` reads."""
    refuse_pickle(path)
    expected = SUFFIXES[backend]
    if path.suffix != expected:
        raise ModelLoadError(f"{path}: the {backend} backend reads {expected} files only, got {path.suffix!r}")


def resolve_backend(path: str | Path, backend: str = "auto") -> str:
    """The backend that will read `path`: `auto` is .onnx -> onnxruntime, .safetensors -> torch. A pickled
    file is refused first, by name."""
    path = Path(path)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    refuse_pickle(path)
    if backend != "auto":
        return backend
    resolved = {".onnx": "onnxruntime", ".safetensors": "torch"}.get(path.suffix, "")
    if not resolved:
        raise ModelLoadError(f"cannot tell the backend from {path.name!r}: pass an exported .onnx index or a "
                             ".safetensors checkpoint")
    return resolved


def load_runtime(path: str | Path, backend: str = "auto", **options: Any) -> Runtime:
    """`auto`: see resolve_backend. `tensorrt` takes the .onnx index too and builds (or reuses from its
    cache) the engines for this GPU. Any other suffix is a ModelLoadError."""
    path = Path(path)
    backend = resolve_backend(path, backend)
    check_model_file(path, backend)
    if backend == "torch":
        from cde_core.runtime.torch_runtime import TorchRuntime
        return TorchRuntime(path, **options)
    if backend == "onnxruntime":
        from cde_core.runtime.onnx_runtime import OnnxRuntime
        return OnnxRuntime(path, **options)
    from cde_core.runtime.tensorrt_runtime import TensorRTRuntime
    return TensorRTRuntime(path, **options)
