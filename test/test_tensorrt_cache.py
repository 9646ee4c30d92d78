"""Engine cache keying and the rebuild decision. TensorRT itself cannot exist on these machines, so the
builder is a stand-in function that records calls; the TensorRT API calls are unverified here."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cde_core.export.engine_cache import EngineCache, EngineKey, EngineSpec
from cde_core.export.tensorrt_engine import TensorRTUnavailable, build_or_reuse_engines


@pytest.fixture
def onnx_index(tmp_path: Path) -> Path:
    (tmp_path / "m.encoder.onnx").write_bytes(b"encoder-graph")
    (tmp_path / "m.head.onnx").write_bytes(b"head-graph")
    index = tmp_path / "m.onnx"
    index.write_text(json.dumps({"format": "cde-onnx-pair/1", "encoder": "m.encoder.onnx", "head": "m.head.onnx"}))
    return index


class RecordingBuilder:
    """Stands in for TensorRT's builder (not installable here)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, onnx_path: Path, spec: EngineSpec) -> bytes:
        self.calls.append(onnx_path.name)
        return f"engine:{onnx_path.name}:{spec.precision}".encode()


def _build(index: Path, cache: Path, builder: RecordingBuilder, **kw) -> list[Path]:
    args = dict(trt_version="10.3.0", gpu="Orin (sm_87)")
    args.update(kw)
    spec = args.pop("spec", EngineSpec("fp16", 256))
    return build_or_reuse_engines(index, spec, cache, builder=builder, **args)


def test_built_once_then_reused(onnx_index: Path, tmp_path: Path) -> None:
    builder = RecordingBuilder()
    first = _build(onnx_index, tmp_path / "cache", builder)
    second = _build(onnx_index, tmp_path / "cache", builder)
    assert builder.calls == ["m.encoder.onnx", "m.head.onnx"]
    assert first == second and first[0].read_bytes() == b"engine:m.encoder.onnx:fp16"


@pytest.mark.parametrize("change", ["trt", "gpu", "precision", "onnx", "workspace"])
def test_any_key_change_rebuilds(onnx_index: Path, tmp_path: Path, change: str) -> None:
    builder = RecordingBuilder()
    _build(onnx_index, tmp_path / "cache", builder)
    kwargs: dict = {}
    if change == "trt":
        kwargs["trt_version"] = "10.4.0"
    elif change == "gpu":
        kwargs["gpu"] = "RTX 4090 (sm_89)"
    elif change == "precision":
        kwargs["spec"] = EngineSpec("fp32", 256)
    elif change == "workspace":
        kwargs["spec"] = EngineSpec("fp16", 1024)
    else:
        (onnx_index.parent / "m.head.onnx").write_bytes(b"head-graph-v2")
    _build(onnx_index, tmp_path / "cache", builder, **kwargs)
    expected = ["m.head.onnx"] if change == "onnx" else ["m.encoder.onnx", "m.head.onnx"]
    assert builder.calls[2:] == expected


def test_tampered_sidecar_forces_rebuild(onnx_index: Path, tmp_path: Path) -> None:
    builder = RecordingBuilder()
    engines = _build(onnx_index, tmp_path / "cache", builder)
    engines[0].with_suffix(".json").write_text("{broken")
    _build(onnx_index, tmp_path / "cache", builder)
    assert builder.calls[2:] == ["m.encoder.onnx"]


def test_force_rebuilds(onnx_index: Path, tmp_path: Path) -> None:
    builder = RecordingBuilder()
    _build(onnx_index, tmp_path / "cache", builder)
    _build(onnx_index, tmp_path / "cache", builder, force=True)
    assert len(builder.calls) == 4


def test_spec_validated_and_key_stable() -> None:
    with pytest.raises(ValueError):
        EngineSpec("int8")
    key = EngineKey("abc", "10.3", "gpu", EngineSpec())
    assert key.digest() == EngineKey("abc", "10.3", "gpu", EngineSpec()).digest()
    assert key.digest() != EngineKey("abd", "10.3", "gpu", EngineSpec()).digest()
    assert EngineCache("/nonexistent").lookup("x.onnx", key) is None


def test_without_tensorrt_a_clear_error(onnx_index: Path, tmp_path: Path) -> None:
    with pytest.raises(TensorRTUnavailable, match="TensorRT is not installed"):
        build_or_reuse_engines(onnx_index, EngineSpec(), tmp_path, gpu="x")


def test_manifest_beside_engine_records_the_key(onnx_index: Path, tmp_path: Path) -> None:
    engines = _build(onnx_index, tmp_path / "cache", RecordingBuilder())
    manifest = json.loads(engines[1].with_suffix(".json").read_text())
    assert manifest["tensorrt_version"] == "10.3.0" and manifest["gpu"] == "Orin (sm_87)"
    assert manifest["spec"] == {"precision": "fp16", "workspace_mb": 256, "max_batch": 4}
    assert len(manifest["onnx_sha256"]) == 64
    assert not list((tmp_path / "cache").glob("*.tmp"))  # temp files renamed away


def test_engine_file_removed_forces_rebuild(onnx_index: Path, tmp_path: Path) -> None:
    builder = RecordingBuilder()
    engines = _build(onnx_index, tmp_path / "cache", builder)
    engines[1].unlink()
    _build(onnx_index, tmp_path / "cache", builder)
    assert builder.calls[2:] == ["m.head.onnx"]


def test_cli_without_tensorrt_exits_2(onnx_index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cde_core.cli import main

    code = main(["export", "tensorrt", str(onnx_index), "--cache-dir", str(tmp_path / "c")])
    assert code == 2 and "TensorRT is not installed" in capsys.readouterr().out


def test_tensorrt_backend_without_tensorrt_is_a_model_load_error(tmp_path: Path) -> None:
    """The node catches ModelLoadError: the tensorrt backend must fail with it, naming TensorRT."""
    import torch

    from cde_core.checkpoint import ModelMeta, save_checkpoint
    from cde_core.export.onnx_export import export_onnx
    from cde_core.models import create_model
    from cde_core.preprocessing import Preprocessing
    from cde_core.runtime import load_runtime
    from cde_core.runtime.base import ModelLoadError

    torch.manual_seed(0)
    model = create_model("cde", num_classes=3, backbone="cde_vit_test", img_size=32)
    ckpt = save_checkpoint(tmp_path / "m.safetensors", model, ModelMeta(model.config, ["a", "b", "c"],
                                                                        Preprocessing(img_size=32)))
    index = export_onnx(ckpt, tmp_path / "m.onnx", check=False).index
    with pytest.raises(ModelLoadError, match="TensorRT is not installed"):
        load_runtime(index, backend="tensorrt", cache_dir=str(tmp_path / "engines"))
