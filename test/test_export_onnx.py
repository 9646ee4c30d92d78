"""ONNX export: parity with PyTorch in onnxruntime, metadata, and bad files rejected."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cde_core.checkpoint import ModelMeta, save_checkpoint
from cde_core.export.onnx_export import export_onnx
from cde_core.models import create_model
from cde_core.preprocessing import Preprocessing
from cde_core.runtime import load_runtime
from cde_core.runtime.base import ModelLoadError
from cde_core.verification import Calibration

TOLERANCE = 1e-4  # fp32 logits, onnxruntime CPU vs PyTorch eager


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(0)
    model = create_model("cde", num_classes=3, backbone="cde_vit_test", img_size=32, latent_dim=16, top_k=3)
    meta = ModelMeta(model.config, ["close", "none", "open"], Preprocessing(img_size=32),
                     Calibration(no_effect_magnitude=0.25, min_confidence=0.6))
    ckpt = save_checkpoint(tmp / "m.safetensors", model, meta)
    result = export_onnx(ckpt, tmp / "m.onnx")
    assert result.max_abs_diff < TOLERANCE
    return ckpt, result.index


def test_opset_17_and_metadata(exported: tuple[Path, Path]) -> None:
    import onnx

    _, index = exported
    for name in ("m.encoder.onnx", "m.head.onnx"):
        proto = onnx.load(str(index.parent / name))
        assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == 17
        props = {p.key: p.value for p in proto.metadata_props}
        meta = json.loads(props["cde"])
        assert meta["class_names"] == ["close", "none", "open"]
        assert meta["calibration"]["no_effect_magnitude"] == 0.25
        assert json.loads(props["cde_grid_size"]) == [4, 4] and props["cde_top_k"] == "3"


@pytest.mark.parametrize("batch", [1, 3])
def test_dynamic_batch_parity(exported: tuple[Path, Path], batch: int) -> None:
    import onnxruntime as ort

    from cde_core.checkpoint import load_checkpoint

    ckpt, index = exported
    model, _ = load_checkpoint(ckpt)
    enc = ort.InferenceSession(str(index.parent / "m.encoder.onnx"), providers=["CPUExecutionProvider"])
    head = ort.InferenceSession(str(index.parent / "m.head.onnx"), providers=["CPUExecutionProvider"])
    before, after = torch.randn(batch, 3, 32, 32), torch.randn(batch, 3, 32, 32)
    with torch.no_grad():
        ref = model(before, after)
    bg, bp = enc.run(None, {"image": before.numpy()})
    ag, ap = enc.run(None, {"image": after.numpy()})
    logits, delta, topk, mag = head.run(None, {"before_global": bg, "before_patches": bp,
                                               "after_global": ag, "after_patches": ap})
    np.testing.assert_allclose(logits, ref.logits.numpy(), atol=TOLERANCE)
    np.testing.assert_allclose(delta, ref.delta_global.numpy(), atol=TOLERANCE)
    np.testing.assert_allclose(mag, ref.effect_magnitude.numpy(), atol=TOLERANCE)
    for row_onnx, row_ref in zip(topk, ref.topk_indices.numpy()):
        assert set(row_onnx.tolist()) == set(row_ref.tolist())  # sets, not order


def test_onnx_runtime_matches_torch_runtime(exported: tuple[Path, Path]) -> None:
    ckpt, index = exported
    onnx_rt, torch_rt = load_runtime(index), load_runtime(ckpt)
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(2))
    r_onnx = onnx_rt.compare(onnx_rt.embed(a), onnx_rt.embed(b))
    r_torch = torch_rt.compare(torch_rt.embed(a), torch_rt.embed(b))
    np.testing.assert_allclose(r_onnx.scores, r_torch.scores, atol=1e-5)
    assert set(r_onnx.changed_patches.tolist()) == set(r_torch.changed_patches.tolist())
    assert r_onnx.effect_magnitude == pytest.approx(r_torch.effect_magnitude, rel=1e-4)
    assert onnx_rt.metadata.calibration.min_confidence == 0.6
    assert onnx_rt.metadata.providers == ["CPUExecutionProvider"]


def test_corrupt_graph_rejected(exported: tuple[Path, Path], tmp_path: Path) -> None:
    _, index = exported
    for name in ("m.onnx", "m.head.onnx"):
        (tmp_path / name).write_bytes((index.parent / name).read_bytes())
    (tmp_path / "m.encoder.onnx").write_bytes(b"not a protobuf" * 10)
    with pytest.raises(ModelLoadError, match="cannot load"):
        load_runtime(tmp_path / "m.onnx")


def test_bad_index_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "x.onnx").write_text("{}")
    with pytest.raises(ModelLoadError, match="index format"):
        load_runtime(tmp_path / "x.onnx")
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_runtime(tmp_path / "missing.onnx")


def test_graph_without_metadata_rejected(exported: tuple[Path, Path], tmp_path: Path) -> None:
    import onnx

    _, index = exported
    for name in ("m.onnx", "m.head.onnx"):
        (tmp_path / name).write_bytes((index.parent / name).read_bytes())
    proto = onnx.load(str(index.parent / "m.encoder.onnx"))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "m.encoder.onnx"))
    with pytest.raises(ModelLoadError, match="metadata"):
        load_runtime(tmp_path / "m.onnx")
