"""Checkpoint round trip; corrupt and foreign files are rejected without unpickling anything."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cde_core.checkpoint import CheckpointError, ModelMeta, load_checkpoint, read_meta, save_checkpoint
from cde_core.models import create_model
from cde_core.preprocessing import Preprocessing
from cde_core.verification import Calibration


def _save(tmp_path: Path, name: str = "cde") -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    model = create_model(name, num_classes=3, backbone="cde_vit_test", img_size=32, latent_dim=16, num_objects=2)
    meta = ModelMeta(model.config, ["close", "none", "open"], Preprocessing(img_size=32),
                     Calibration(no_effect_magnitude=0.7, min_confidence=0.55), train_config={"seed": 3},
                     objects=["door", "drawer"])
    return save_checkpoint(tmp_path / "m.safetensors", model, meta), model.eval()


@pytest.mark.parametrize("name", ["cde", "vanilla", "icm", "sms"])
def test_round_trip_same_outputs(tmp_path: Path, name: str) -> None:
    path, model = _save(tmp_path, name)
    loaded, meta = load_checkpoint(path)
    before, after = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(before, after).logits, model(before, after).logits)
    assert meta.class_names == ["close", "none", "open"]
    assert meta.calibration.no_effect_magnitude == pytest.approx(0.7)
    assert meta.preprocessing.img_size == 32
    assert meta.train_config == {"seed": 3} and meta.objects == ["door", "drawer"]
    assert meta.model.name == name


def test_metadata_readable_without_weights(tmp_path: Path) -> None:
    path, _ = _save(tmp_path)
    assert read_meta(path).model.latent_dim == 16


def test_truncated_file_rejected(tmp_path: Path) -> None:
    path, _ = _save(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_garbage_header_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\xff" * 64)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_checkpoint(path)


def test_foreign_safetensors_rejected(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="no cde metadata"):
        load_checkpoint(path)


def test_pickle_is_never_loaded(tmp_path: Path) -> None:
    """A pickle renamed to .safetensors must fail as a format error, never execute."""
    marker = tmp_path / "executed"

    class Boom:
        def __reduce__(self):  # noqa: D105
            return (Path.touch, (marker,))

    path = tmp_path / "evil.safetensors"
    torch.save({"x": Boom()}, path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".ckpt", ".pkl", ".bin"])
def test_pickled_model_files_are_refused_by_name_without_being_opened(tmp_path: Path, suffix: str) -> None:
    from cde_core.runtime import load_runtime
    from cde_core.runtime.base import ModelLoadError

    marker = tmp_path / "executed"

    class Boom:
        def __reduce__(self):  # noqa: D105
            return (Path.touch, (marker,))

    path = tmp_path / f"model{suffix}"
    torch.save({"x": Boom()}, path)
    for backend in ("auto", "torch", "onnxruntime", "tensorrt"):
        with pytest.raises(ModelLoadError, match="pickled PyTorch files are never loaded"):
            load_runtime(path, backend)
    with pytest.raises(ModelLoadError, match="never loaded"):  # refused by name: not even opened
        load_runtime(tmp_path / f"absent{suffix}")
    assert not marker.exists()


def test_backends_read_only_their_own_formats(tmp_path: Path) -> None:
    from cde_core.runtime import load_runtime
    from cde_core.runtime.base import ModelLoadError

    path, _ = _save(tmp_path)
    with pytest.raises(ModelLoadError, match="reads .onnx files only"):
        load_runtime(path, "onnxruntime")
    with pytest.raises(ModelLoadError, match="reads .safetensors files only"):
        load_runtime(tmp_path / "m.onnx", "torch")
    with pytest.raises(ModelLoadError, match="cannot tell the backend"):
        load_runtime(tmp_path / "m.weights")
    assert load_runtime(path).metadata.backend == "torch"


@pytest.mark.parametrize(("change", "message"), [
    ({"calibration": {"no_effect_magnitude": float("nan"), "min_confidence": 0.5}}, "no_effect_magnitude"),
    ({"calibration": {"no_effect_magnitude": 0.1, "min_confidence": -0.1}}, "min_confidence must be in"),
    ({"preprocessing": {"img_size": 32, "mean": [0, 0, 0], "std": [1, 1, 0]}}, "std must be"),
    ({"class_names": ["open", "", "none"]}, "class_names"),
])
def test_out_of_range_metadata_refused(tmp_path: Path, change: dict, message: str) -> None:
    import json

    from safetensors.torch import load_file, save_file

    path, _ = _save(tmp_path)
    meta = json.loads(_header_json(path))
    meta.update(change)
    save_file(load_file(str(path)), str(path), metadata={"cde": json.dumps(meta)})
    with pytest.raises(CheckpointError, match=f"{path}: invalid cde metadata .*{message}"):
        load_checkpoint(path)


def test_effect_magnitude_in_metadata(tmp_path: Path) -> None:
    """Checkpoints from before the setting load with the measure they were calibrated on ("global"); an
    unknown measure is refused, not silently replaced."""
    import json

    from safetensors.torch import load_file, save_file

    path, _ = _save(tmp_path)
    meta = json.loads(_header_json(path))
    assert meta["model"]["effect_magnitude"] == "global"
    del meta["model"]["effect_magnitude"]
    save_file(load_file(str(path)), str(path), metadata={"cde": json.dumps(meta)})
    assert load_checkpoint(path)[0].config.effect_magnitude == "global"
    meta["model"]["effect_magnitude"] = "loudness"
    save_file(load_file(str(path)), str(path), metadata={"cde": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="effect_magnitude must be one of"):
        load_checkpoint(path)


def _header_json(path: Path) -> str:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return handle.metadata()["cde"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_class_count_mismatch_refused(tmp_path: Path) -> None:
    model = create_model("cde", num_classes=3, backbone="cde_vit_test", img_size=32)
    with pytest.raises(ValueError, match="class names"):
        save_checkpoint(tmp_path / "x.safetensors", model, ModelMeta(model.config, ["a"], Preprocessing(32)))
