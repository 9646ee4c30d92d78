"""ONNX export: parity with PyTorch in onnxruntime (real sessions), metadata round trip, opset, bad files.

Tolerance: fp32 onnxruntime CPU vs PyTorch eager, |onnx - torch| <= 1e-4 + 1e-3*|torch| (PARITY_ATOL/RTOL);
Top-K patch indices are compared as sets, not in order.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cde_core.checkpoint import ModelMeta, load_checkpoint, save_checkpoint
from cde_core.export.onnx_export import PARITY_ATOL, PARITY_RTOL, export_onnx, topk_sets_agree
from cde_core.models import create_model
from cde_core.preprocessing import Preprocessing
from cde_core.runtime import load_runtime
from cde_core.runtime.base import ModelLoadError
from cde_core.verification import Calibration

CLASSES = ["close", "none", "open"]


def _checkpoint(path: Path, seed: int = 0, effect_magnitude: str = "global") -> Path:
    torch.manual_seed(seed)
    model = create_model("cde", num_classes=3, backbone="cde_vit_test", img_size=32, latent_dim=16, top_k=3,
                         effect_magnitude=effect_magnitude)
    prep = Preprocessing(img_size=32, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    meta = ModelMeta(model.config, list(CLASSES), prep, Calibration(no_effect_magnitude=0.25, min_confidence=0.6))
    return save_checkpoint(path, model, meta)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("onnx")
    ckpt = _checkpoint(tmp / "m.safetensors")
    result = export_onnx(ckpt, tmp / "m.onnx", pair=True)  # opset left at its default
    assert result.max_abs_diff < PARITY_ATOL
    return ckpt, result.index


def _copy_export(index: Path, dest: Path) -> Path:
    for name in ("m.onnx", "m.encoder.onnx", "m.head.onnx", "m.pair.onnx"):
        shutil.copy(index.parent / name, dest / name)
    return dest / "m.onnx"


def _props(path: Path) -> dict[str, str]:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def _rewrite_props(path: Path, change: dict[str, str | None]) -> None:
    import onnx

    proto = onnx.load(str(path))
    props = {p.key: p.value for p in proto.metadata_props}
    for key, value in change.items():
        if value is None:
            props.pop(key, None)
        else:
            props[key] = value
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def test_layout_opset_17_by_default_and_metadata_round_trip(exported: tuple[Path, Path]) -> None:
    import onnx

    ckpt, index = exported
    listing = json.loads(index.read_text())
    assert listing["format"] == "cde-onnx-pair/1" and listing["opset"] == 17
    assert (listing["encoder"], listing["head"], listing["pair"]) == ("m.encoder.onnx", "m.head.onnx", "m.pair.onnx")
    _, ckpt_meta = load_checkpoint(ckpt)
    for role in ("encoder", "head", "pair"):
        path = index.parent / f"m.{role}.onnx"
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
        assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == 17
        props = _props(path)
        assert props["cde"] == ckpt_meta.to_json()  # the checkpoint's metadata, byte for byte
        assert ModelMeta.from_json(props["cde"]).calibration.no_effect_magnitude == 0.25
        assert props["cde_graph"] == role and props["cde_graph_format"] == "1"
        assert json.loads(props["cde_grid_size"]) == [4, 4] and props["cde_top_k"] == "3"
        assert props["cde_export_id"] == listing["export_id"] and props["cde_version"]


def test_runtime_metadata_from_graphs(exported: tuple[Path, Path]) -> None:
    _, index = exported
    meta = load_runtime(index).metadata
    assert meta.class_names == CLASSES and meta.grid_size == (4, 4) and meta.top_k == 3
    assert meta.preprocessing.mean == (0.5, 0.4, 0.3) and meta.calibration.min_confidence == 0.6
    assert meta.backend == "onnxruntime" and meta.providers == ["CPUExecutionProvider"]
    assert meta.extra["opset"] == 17


@pytest.mark.parametrize("batch", [1, 3])
def test_dynamic_batch_parity(exported: tuple[Path, Path], batch: int) -> None:
    import onnxruntime as ort

    ckpt, index = exported
    model, _ = load_checkpoint(ckpt)
    sessions = {r: ort.InferenceSession(str(index.parent / f"m.{r}.onnx"), providers=["CPUExecutionProvider"])
                for r in ("encoder", "head", "pair")}
    gen = torch.Generator().manual_seed(batch)
    before, after = torch.randn(batch, 3, 32, 32, generator=gen), torch.randn(batch, 3, 32, 32, generator=gen)
    with torch.no_grad():
        ref = model(before, after)
        _, ap_ref = model.encode(after)
    bg, bp = sessions["encoder"].run(None, {"image": before.numpy()})
    ag, ap = sessions["encoder"].run(None, {"image": after.numpy()})
    np.testing.assert_allclose(ap, ap_ref.numpy(), atol=PARITY_ATOL, rtol=PARITY_RTOL)
    outputs = {"head": sessions["head"].run(None, {"before_global": bg, "before_patches": bp,
                                                   "after_global": ag, "after_patches": ap}),
               "pair": sessions["pair"].run(None, {"before": before.numpy(), "after": after.numpy()})}
    for logits, delta, topk, magnitude in outputs.values():
        assert logits.shape == (batch, 3) and topk.shape == (batch, 3) and topk.dtype == np.int64
        np.testing.assert_allclose(logits, ref.logits.numpy(), atol=PARITY_ATOL, rtol=PARITY_RTOL)
        np.testing.assert_allclose(delta, ref.delta_global.numpy(), atol=PARITY_ATOL, rtol=PARITY_RTOL)
        np.testing.assert_allclose(magnitude, ref.effect_magnitude.numpy(), atol=PARITY_ATOL, rtol=PARITY_RTOL)
        for row_onnx, row_ref in zip(topk, ref.topk_indices.numpy()):
            assert set(row_onnx.tolist()) == set(row_ref.tolist())  # sets, not order
    assert not np.allclose(bp, ap)  # the pairs really differ, so the comparison means something


def test_topk_sets_agree_allows_only_ties() -> None:
    norms = np.array([[5.0, 4.0, 3.0, 3.0, 1.0]])
    assert topk_sets_agree(np.array([[1, 0, 2]]), np.array([[0, 1, 2]]), norms)  # order ignored
    assert topk_sets_agree(np.array([[0, 1, 3]]), np.array([[0, 1, 2]]), norms)  # 2 and 3 tie at the K-th
    assert not topk_sets_agree(np.array([[0, 1, 4]]), np.array([[0, 1, 2]]), norms)


def test_onnx_runtime_matches_torch_runtime(exported: tuple[Path, Path]) -> None:
    ckpt, index = exported
    onnx_rt, torch_rt = load_runtime(index), load_runtime(ckpt)
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(2))
    r_onnx = onnx_rt.compare(onnx_rt.embed(a), onnx_rt.embed(b))
    r_torch = torch_rt.compare(torch_rt.embed(a), torch_rt.embed(b))
    assert r_onnx.class_names == r_torch.class_names and r_onnx.grid_size == r_torch.grid_size
    np.testing.assert_allclose(r_onnx.scores, r_torch.scores, atol=1e-5)
    assert r_onnx.action == r_torch.action
    assert set(r_onnx.changed_patches.tolist()) == set(r_torch.changed_patches.tolist())
    assert r_onnx.effect_magnitude == pytest.approx(r_torch.effect_magnitude, rel=1e-4)
    assert r_onnx.effect_magnitude > 0


@pytest.mark.parametrize("kind", ["relative", "topk"])
def test_head_graph_computes_the_models_effect_magnitude(tmp_path: Path, kind: str) -> None:
    """The change measure is part of the exported head, so the node's ONNX runtime thresholds the number the
    checkpoint was calibrated on."""
    ckpt = _checkpoint(tmp_path / "m.safetensors", effect_magnitude=kind)
    index = export_onnx(ckpt, tmp_path / "m.onnx").index
    onnx_rt, torch_rt = load_runtime(index), load_runtime(ckpt)
    rng = np.random.default_rng(1)
    a, b = (rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(2))
    r_onnx, r_torch = (rt.compare(rt.embed(a), rt.embed(b)) for rt in (onnx_rt, torch_rt))
    assert r_onnx.effect_magnitude == pytest.approx(r_torch.effect_magnitude, rel=1e-4)
    global_rt = load_runtime(_checkpoint(tmp_path / "g.safetensors"))
    r_global = global_rt.compare(global_rt.embed(a), global_rt.embed(b))
    assert r_torch.effect_magnitude != pytest.approx(r_global.effect_magnitude, rel=1e-3)  # a different measure


def test_opset_is_selectable(exported: tuple[Path, Path], tmp_path: Path) -> None:
    import onnx

    ckpt, _ = exported
    result = export_onnx(ckpt, tmp_path / "m18", opset=18)
    assert result.index == tmp_path / "m18.onnx" and result.pair is None
    proto = onnx.load(str(result.head))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == 18
    assert load_runtime(result.index).metadata.extra["opset"] == 18


def test_cli_export(exported: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cde_core.cli import main

    ckpt, _ = exported
    assert main(["export", "onnx", str(ckpt), "--out", str(tmp_path / "cli.onnx")]) == 0
    assert "at opset 17" in capsys.readouterr().out
    assert load_runtime(tmp_path / "cli.onnx").metadata.class_names == CLASSES


def test_corrupt_graph_rejected(exported: tuple[Path, Path], tmp_path: Path) -> None:
    index = _copy_export(exported[1], tmp_path)
    (tmp_path / "m.encoder.onnx").write_bytes(b"not a protobuf" * 10)
    with pytest.raises(ModelLoadError, match="cannot load the graph"):
        load_runtime(index)


def test_graph_file_passed_instead_of_index(exported: tuple[Path, Path]) -> None:
    with pytest.raises(ModelLoadError, match="not a cde ONNX index"):
        load_runtime(exported[1].parent / "m.encoder.onnx")


def test_bad_index_and_missing_files(exported: tuple[Path, Path], tmp_path: Path) -> None:
    (tmp_path / "x.onnx").write_text("{}")
    with pytest.raises(ModelLoadError, match="index format"):
        load_runtime(tmp_path / "x.onnx")
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_runtime(tmp_path / "missing.onnx")
    index = _copy_export(exported[1], tmp_path)
    (tmp_path / "m.head.onnx").unlink()
    with pytest.raises(ModelLoadError, match="head graph .* is missing"):
        load_runtime(index)


@pytest.mark.parametrize(("change", "message"), [
    ({"cde": None}, "missing cde metadata key 'cde'"),
    ({"cde_top_k": None}, "missing cde metadata key 'cde_top_k'"),
    ({"cde_top_k": "three"}, "cde_top_k is not an integer"),
    ({"cde_top_k": "99"}, "outside 1..16"),
    ({"cde_grid_size": "[4]"}, "cde_grid_size must be"),
    ({"cde_grid_size": "{oops"}, "cde_grid_size is not JSON"),
    ({"cde": '{"version": 1, "model": {}}'}, "invalid cde metadata JSON"),
    ({"cde_graph": "head"}, "expected 'encoder'"),
    ({"cde_graph_format": "99"}, "newer than this cde"),
    ({"cde_export_id": "another-export"}, "different exports"),
])
def test_bad_metadata_rejected(exported: tuple[Path, Path], tmp_path: Path, change: dict, message: str) -> None:
    index = _copy_export(exported[1], tmp_path)
    _rewrite_props(tmp_path / "m.encoder.onnx", change)
    with pytest.raises(ModelLoadError, match=message):
        load_runtime(index)


@pytest.mark.parametrize(("section", "key", "value", "message"), [
    ("calibration", "no_effect_magnitude", float("nan"), "no_effect_magnitude must be finite"),
    ("calibration", "no_effect_magnitude", -1.0, "no_effect_magnitude must be finite and >= 0"),
    ("calibration", "no_effect_magnitude", float("inf"), "no_effect_magnitude must be finite"),
    ("calibration", "min_confidence", 1.5, "min_confidence must be in"),
    ("calibration", "min_confidence", float("nan"), "min_confidence must be in"),
    ("calibration", "min_confidence", "high", "invalid cde metadata"),
    ("preprocessing", "std", [0.2, 0.0, 0.3], "std must be 3 finite numbers > 0"),
    ("preprocessing", "mean", [0.5, float("nan"), 0.3], "mean must be 3 finite numbers"),
    ("preprocessing", "mean", [0.5, 0.4], "mean must be 3 finite numbers"),
    ("preprocessing", "img_size", 10**6, "img_size must be in"),
    ("preprocessing", "img_size", "big", "invalid cde metadata"),
    (None, "class_names", ["open", "open", "none"], "class_names must be non-empty, unique"),
    (None, "class_names", [1, 2, 3], "class_names must be non-empty, unique"),
    (None, "class_names", [], "class_names must be non-empty, unique"),
])
def test_out_of_range_model_metadata_rejected(exported: tuple[Path, Path], tmp_path: Path, section: str | None,
                                              key: str, value: object, message: str) -> None:
    """Values that would not crash but would silently skew preprocessing or the verdict rules."""
    index = _copy_export(exported[1], tmp_path)
    meta = json.loads(_props(tmp_path / "m.encoder.onnx")["cde"])
    (meta[section] if section else meta)[key] = value
    _rewrite_props(tmp_path / "m.encoder.onnx", {"cde": json.dumps(meta)})  # NaN is written as a JSON NaN
    with pytest.raises(ModelLoadError, match=message):
        load_runtime(index)


def test_class_names_disagreeing_with_graph_rejected(exported: tuple[Path, Path], tmp_path: Path) -> None:
    index = _copy_export(exported[1], tmp_path)
    for role in ("encoder", "head"):
        meta = json.loads(_props(tmp_path / f"m.{role}.onnx")["cde"])
        meta["class_names"] = ["a", "b"]  # the head still has 3 logits
        _rewrite_props(tmp_path / f"m.{role}.onnx", {"cde": json.dumps(meta)})
    with pytest.raises(ModelLoadError, match="do not match the 2 class names"):
        load_runtime(index)


def test_missing_provider_is_an_error_not_a_fallback(exported: tuple[Path, Path]) -> None:
    with pytest.raises(ModelLoadError, match="not in this build"):
        load_runtime(exported[1], providers=["NoSuchExecutionProvider"])


def test_norm_feature_model_exports_with_parity(tmp_path: Path) -> None:
    """The classifier's extra norm input is part of the head graph: ONNX and PyTorch agree on its logits."""
    torch.manual_seed(3)
    model = create_model("cde", num_classes=3, backbone="cde_vit_test", img_size=32, latent_dim=16, top_k=3,
                         norm_feature=True)
    with torch.no_grad():
        model.classifier.weight[:, -1] = torch.tensor([2.0, -3.0, 1.0])  # make the norm column matter
    prep = Preprocessing(img_size=32, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    ckpt = save_checkpoint(tmp_path / "n.safetensors", model,
                           ModelMeta(model.config, list(CLASSES), prep, Calibration()))
    reloaded, _ = load_checkpoint(ckpt)
    assert reloaded.config.norm_feature and reloaded.classifier.in_features == 17
    result = export_onnx(ckpt, tmp_path / "n.onnx")
    assert result.max_abs_diff < PARITY_ATOL
    onnx_rt, torch_rt = load_runtime(result.index), load_runtime(ckpt)
    rng = np.random.default_rng(4)
    a, b = (rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(2))
    r_onnx, r_torch = (rt.compare(rt.embed(a), rt.embed(b)) for rt in (onnx_rt, torch_rt))
    np.testing.assert_allclose(r_onnx.scores, r_torch.scores, atol=1e-4)
