"""Where a TensorRT engine lives and when it must be rebuilt (pure Python, tested without TensorRT).

Engines are not portable across TensorRT versions, GPUs or precisions; the cache key holds all of them
plus the ONNX file's hash and the build settings. A matching engine is reused, never rebuilt on start.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class EngineSpec:
    """Build settings that change the engine: precision, builder workspace (small on Jetson), max batch."""

    precision: str = "fp16"
    workspace_mb: int = 512
    max_batch: int = 4

    def __post_init__(self) -> None:
        if self.precision not in ("fp16", "fp32"):
            raise ValueError(f"precision must be fp16 or fp32, got {self.precision!r}")
        if self.workspace_mb < 16 or self.max_batch < 1:
            raise ValueError("workspace_mb must be >= 16 and max_batch >= 1")


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on; any difference means rebuild."""

    onnx_sha256: str
    tensorrt_version: str
    gpu: str  # device name + compute capability, e.g. "Orin (sm_87)"
    spec: EngineSpec

    def as_dict(self) -> dict:
        """The manifest written beside each engine (the sidecar) and compared on lookup."""
        return {**asdict(self), "spec": asdict(self.spec)}

    def digest(self) -> str:
        text = json.dumps(self.as_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]


def file_sha256(path: str | Path) -> str:
    """Hash of the ONNX graph: an engine is valid only for the exact graph it was built from."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class EngineCache:
    """`<dir>/<onnx stem>-<key digest>.engine` + a `.json` sidecar with the full key."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory).expanduser()

    def engine_path(self, onnx_path: str | Path, key: EngineKey) -> Path:
        return self.directory / f"{Path(onnx_path).stem}-{key.digest()}.engine"

    def lookup(self, onnx_path: str | Path, key: EngineKey) -> Path | None:
        """The cached engine if its sidecar matches the key exactly, else None (rebuild)."""
        path = self.engine_path(onnx_path, key)
        sidecar = path.with_suffix(".json")
        if not (path.is_file() and sidecar.is_file()):
            return None
        try:
            stored = json.loads(sidecar.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return path if stored == key.as_dict() else None

    def store(self, onnx_path: str | Path, key: EngineKey, engine_bytes: bytes) -> Path:
        """Write engine then sidecar, each atomically (temp name unique per process, then rename), so a
        crash or a second process building at the same time never leaves a sidecar for a partial engine."""
        if not engine_bytes:
            raise ValueError("refusing to cache an empty engine")
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.engine_path(onnx_path, key)
        manifest = json.dumps(key.as_dict(), sort_keys=True).encode()
        for target, data in ((path, engine_bytes), (path.with_suffix(".json"), manifest)):
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
        return path
