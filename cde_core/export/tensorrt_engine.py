"""Build TensorRT engines from the exported ONNX graphs (TensorRT 10 Python API), cached by EngineCache.

TensorRT cannot be installed on the development machines (ENVIRONMENT.md): this module is written
against the real API and runs on a GPU or Jetson; here only the caching logic is tested, with the
builder injected.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable

from cde_core.export.engine_cache import EngineCache, EngineKey, EngineSpec, file_sha256

_LOG = logging.getLogger(__name__)

__all__ = ["EngineSpec", "build_or_reuse_engines", "build_engine_bytes", "TensorRTUnavailable"]


class TensorRTUnavailable(RuntimeError):
    """TensorRT (or a CUDA GPU) is not present on this machine."""


def _tensorrt():
    try:
        import tensorrt as trt  # noqa: PLC0415
    except ImportError as exc:
        raise TensorRTUnavailable("TensorRT is not installed: build engines on the Jetson/GPU that runs them "
                                  "(JetPack ships it; on x86 `pip install tensorrt`)") from exc
    return trt


def gpu_identity() -> str:
    import torch

    if not torch.cuda.is_available():
        raise TensorRTUnavailable("no CUDA GPU visible: TensorRT engines are built on the GPU that runs them")
    major, minor = torch.cuda.get_device_capability(0)
    return f"{torch.cuda.get_device_name(0)} (sm_{major}{minor})"


def build_engine_bytes(onnx_path: Path, spec: EngineSpec) -> bytes:
    """Parse the ONNX and build a serialized engine with a dynamic-batch optimisation profile."""
    trt = _tensorrt()
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
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        rest = tuple(tensor.shape)[1:]
        profile.set_shape(tensor.name, (1, *rest), (1, *rest), (spec.max_batch, *rest))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine for {onnx_path} (see the TensorRT log above)")
    return bytes(serialized)


def build_or_reuse_engines(onnx_index: str | Path, spec: EngineSpec, cache_dir: str | Path, force: bool = False,
                           builder: Callable[[Path, EngineSpec], bytes] | None = None,
                           trt_version: str | None = None, gpu: str | None = None) -> list[Path]:
    """Engines for the encoder and head graphs named by an ONNX index; reuse on an exact key match."""
    index_path = Path(onnx_index)
    index = json.loads(index_path.read_text())
    if trt_version is None:
        trt_version = str(_tensorrt().__version__)
    gpu = gpu or gpu_identity()
    build = builder or build_engine_bytes
    cache = EngineCache(cache_dir)
    engines: list[Path] = []
    for name in (index["encoder"], index["head"]):
        onnx_path = index_path.parent / name
        key = EngineKey(file_sha256(onnx_path), trt_version, gpu, spec)
        cached = None if force else cache.lookup(onnx_path, key)
        if cached is not None:
            _LOG.info("reusing engine %s", cached)
            engines.append(cached)
            continue
        _LOG.info("building %s engine for %s on %s (TensorRT %s)", spec.precision, onnx_path.name, gpu, trt_version)
        engines.append(cache.store(onnx_path, key, build(onnx_path, spec)))
    return engines
