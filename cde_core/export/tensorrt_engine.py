"""Build TensorRT engines from the exported ONNX graphs (TensorRT 10 Python API), cached by EngineCache.

TensorRT cannot be installed on the development machines (ENVIRONMENT.md): this module is written
against the real API and runs on a GPU or Jetson; here only the caching logic is tested, with the
builder injected. An engine is built once per (graph, TensorRT version, GPU, precision, workspace,
max batch) and reused on every later start; `force=True` rebuilds.
"""
from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType
from typing import Callable

from cde_core.export.engine_cache import EngineCache, EngineKey, EngineSpec, file_sha256
from cde_core.export.onnx_metadata import read_index

_LOG = logging.getLogger(__name__)

__all__ = ["EngineSpec", "TensorRTUnavailable", "build_engine_bytes", "build_or_reuse_engines", "gpu_identity"]

EngineBuilder = Callable[[Path, EngineSpec], bytes]


class TensorRTUnavailable(RuntimeError):
    """TensorRT (or a CUDA GPU) is not present on this machine."""


def import_tensorrt() -> ModuleType:
    """The tensorrt module, or a TensorRTUnavailable that says where engines can be built."""
    try:
        import tensorrt as trt  # noqa: PLC0415
    except ImportError as exc:
        raise TensorRTUnavailable("TensorRT is not installed: build and run engines on the Jetson/GPU that runs "
                                  "them (JetPack ships it; on x86 `pip install tensorrt`), or use the "
                                  "onnxruntime backend") from exc
    return trt


def gpu_identity() -> str:
    """Device name + compute capability: engines are specific to both."""
    import torch

    if not torch.cuda.is_available():
        raise TensorRTUnavailable("no CUDA GPU visible: TensorRT engines are built on the GPU that runs them")
    major, minor = torch.cuda.get_device_capability(0)
    return f"{torch.cuda.get_device_name(0)} (sm_{major}{minor})"


def build_engine_bytes(onnx_path: Path, spec: EngineSpec) -> bytes:
    """Parse the ONNX and build a serialized engine with a dynamic-batch optimisation profile
    (min 1, opt 1 - the node's batch - max spec.max_batch); workspace capped for Jetson."""
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, spec.workspace_mb << 20)
    if spec.precision == "fp16":
        if not builder.platform_has_fast_fp16:
            _LOG.warning("this GPU has no fast fp16; building fp16 anyway as asked")
        config.set_flag(trt.BuilderFlag.FP16)  # deprecated (not removed) from TensorRT 10.12 on
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        rest = tuple(tensor.shape)[1:]
        if any(d < 0 for d in rest):
            raise RuntimeError(f"{onnx_path}: input {tensor.name} has dynamic non-batch dims {tuple(tensor.shape)}; "
                               "only the batch may be dynamic")
        profile.set_shape(tensor.name, (1, *rest), (1, *rest), (spec.max_batch, *rest))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine for {onnx_path} (see the TensorRT log above)")
    return bytes(serialized)


def build_or_reuse_engines(onnx_index: str | Path, spec: EngineSpec, cache_dir: str | Path, force: bool = False,
                           builder: EngineBuilder | None = None, trt_version: str | None = None,
                           gpu: str | None = None) -> list[Path]:
    """[encoder engine, head engine] for the graphs an ONNX index names: reused on an exact key match,
    otherwise built and stored. `builder`, `trt_version` and `gpu` are injectable for tests."""
    index = read_index(onnx_index)
    if trt_version is None:
        trt_version = str(import_tensorrt().__version__)
    gpu = gpu or gpu_identity()
    build = builder or build_engine_bytes
    cache = EngineCache(cache_dir)
    engines: list[Path] = []
    for onnx_path in (index.encoder, index.head):
        key = EngineKey(file_sha256(onnx_path), trt_version, gpu, spec)
        cached = None if force else cache.lookup(onnx_path, key)
        if cached is not None:
            _LOG.info("reusing engine %s", cached)
            engines.append(cached)
            continue
        _LOG.info("building %s engine for %s on %s (TensorRT %s, workspace %d MB, max batch %d); this takes "
                  "minutes on a Jetson", spec.precision, onnx_path.name, gpu, trt_version, spec.workspace_mb,
                  spec.max_batch)
        engines.append(cache.store(onnx_path, key, build(onnx_path, spec)))
    return engines
