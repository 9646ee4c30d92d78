"""Every registered model: shapes, finite outputs, gradients; Top-K finds what changed; local weights."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cde_core.losses import LossWeights, PairCriterion
from cde_core.models import create_model, list_models, topk_changed_patches

TINY = dict(backbone="cde_vit_test", img_size=32, latent_dim=16, projector_hidden=32, head_hidden=32,
            num_objects=3, top_k=3)


@pytest.mark.parametrize("name", list_models())
def test_shapes_finite_and_backward(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, **TINY)
    before, after = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)
    out = model(before, after)
    assert out.logits.shape == (4, 5)
    assert out.delta_global.shape == (4, 16)
    assert out.topk_indices.shape == (4, 3) and out.topk_indices.dtype == torch.int64
    assert out.effect_magnitude.shape == (4,)
    assert all(torch.isfinite(t.float()).all() for t in out)
    weights = LossWeights(icm=0.5 if name == "icm" else 0.0, sms=0.5 if name == "sms" else 0.0)
    loss, parts = PairCriterion(weights)(model.forward_train(before, after), torch.tensor([0, 1, 2, 3]),
                                         torch.tensor([0, 1, 2, 0]), model)
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.backbone.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads), "no gradient reached the backbone"
    if name == "icm":
        assert "icm" in parts
    if name == "sms":
        assert "sms" in parts


def test_frozen_backbone_gets_no_gradient() -> None:
    model = create_model("cde", num_classes=3, freeze_backbone=True, **TINY)
    out = model.forward_train(torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32))
    PairCriterion()(out, torch.tensor([0, 1]))[0].backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert model.classifier.weight.grad is not None


def test_encode_head_split_equals_forward() -> None:
    model = create_model("cde", num_classes=3, **TINY).eval()
    before, after = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        full = model(before, after)
        split = model.head(*model.encode(before), *model.encode(after))
    torch.testing.assert_close(full.logits, split.logits)
    assert torch.equal(full.topk_indices, split.topk_indices)


def test_topk_selects_changed_patches() -> None:
    """On a fresh model, strongly perturbing known patches makes exactly those the Top-K."""
    torch.manual_seed(0)
    model = create_model("cde_patch", num_classes=3, **{**TINY, "top_k": 2}).eval()
    rows, cols = model.grid_size
    assert (rows, cols) == (4, 4)
    before = torch.zeros(1, 3, 32, 32)
    after = before.clone()
    changed = {5, 10}  # row-major patch indices on the 4x4 grid of 8-px patches
    for index in changed:
        r, c = divmod(index, cols)
        after[:, :, r * 8:(r + 1) * 8, c * 8:(c + 1) * 8] = 3.0
    with torch.no_grad():
        out = model(before, after)
    assert set(out.topk_indices[0].tolist()) == changed


def test_topk_changed_patches_function() -> None:
    deltas = torch.zeros(1, 6, 4)
    deltas[0, 4] = 5.0
    deltas[0, 1] = -3.0
    indices, selected = topk_changed_patches(deltas, 2)
    assert indices[0].tolist() == [4, 1]
    assert torch.equal(selected[0, 1], deltas[0, 1])


def test_cnn_backbone_cells_are_patches() -> None:
    model = create_model("cde", num_classes=3, backbone="resnet10t", img_size=64, latent_dim=16, top_k=2)
    out = model(torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 64))
    rows, cols = model.grid_size
    assert rows * cols == model.backbone.num_patches == 4  # 64 px / stride 32
    assert out.topk_indices.shape == (1, 2)


def test_unknown_model_and_config_key() -> None:
    with pytest.raises(KeyError, match="registered"):
        create_model("nope", num_classes=2)
    with pytest.raises(ValueError, match="unknown model config"):
        create_model("cde", num_classes=2, not_a_key=1)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_pretrained_file(tmp_path: Path, suffix: str) -> None:
    """The real-DINO route: timm's pretrained-cfg overlay with a local file the test writes."""
    import timm
    from safetensors.torch import save_file

    source = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, embed_dim=32, depth=2,
                               num_heads=2, num_classes=0)
    torch.nn.init.normal_(source.cls_token, std=1.0)
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    path = tmp_path / f"backbone{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    model = create_model("cde", num_classes=3, backbone="cde_vit_test", img_size=32, pretrained_file=str(path))
    loaded = model.backbone.model.state_dict()
    for key, value in state.items():
        torch.testing.assert_close(loaded[key], value, msg=key)
    fresh = create_model("cde", num_classes=3, backbone="cde_vit_test", img_size=32)
    assert not torch.equal(fresh.backbone.model.cls_token, loaded["cls_token"])


def test_missing_pretrained_file_is_a_clear_error(tmp_path: Path) -> None:
    from cde_core.models.backbone import BackboneError

    with pytest.raises(BackboneError, match="does not exist"):
        create_model("cde", num_classes=2, backbone="cde_vit_test", img_size=32,
                     pretrained_file=str(tmp_path / "missing.safetensors"))
