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


def _perturb_patches(before: torch.Tensor, patches: set[int], cols: int, patch: int) -> torch.Tensor:
    after = before.clone()
    for index in patches:
        r, c = divmod(index, cols)
        after[:, :, r * patch:(r + 1) * patch, c * patch:(c + 1) * patch] += 4.0
    return after


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_topk_selects_changed_patches(name: str, seed: int) -> None:
    """On a freshly initialised model, strongly perturbing known patches of a random image makes
    exactly those patches the Top-K (row-major indices on the 4x4 grid of 8-px patches)."""
    torch.manual_seed(seed)
    model = create_model(name, num_classes=3, **{**TINY, "top_k": 2}).eval()
    rows, cols = model.grid_size
    assert (rows, cols) == (4, 4)
    generator = torch.Generator().manual_seed(100 + seed)
    before = 0.5 * torch.randn(1, 3, 32, 32, generator=generator)
    changed = set(torch.randperm(rows * cols, generator=generator)[:2].tolist())
    with torch.no_grad():
        out = model(before, _perturb_patches(before, changed, cols, 8))
        unchanged = model(before, before)
    assert set(out.topk_indices[0].tolist()) == changed
    assert out.effect_magnitude[0] > 0 and unchanged.effect_magnitude[0] == pytest.approx(0.0, abs=1e-5)


def test_effect_magnitude_kinds() -> None:
    """global: the pooled delta's norm; relative: the same over the embeddings' mean norm, so scaling both
    embeddings leaves it alone; topk: the selected patch deltas' mean norm. All three are 0 for no change."""
    from cde_core.models.effect_magnitude import effect_magnitude

    before, after = torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 4.0]])
    patches = torch.tensor([[[1.0, 0.0], [0.0, 3.0]]])
    assert effect_magnitude("global", before, after, patches).item() == pytest.approx(5.0)
    assert effect_magnitude("relative", before, after, patches).item() == pytest.approx(5.0 / 3.5)
    assert effect_magnitude("relative", 10 * before, 10 * after, patches).item() == pytest.approx(5.0 / 3.5)
    assert effect_magnitude("global", 10 * before, 10 * after, patches).item() == pytest.approx(50.0)
    assert effect_magnitude("topk", before, after, patches).item() == pytest.approx(2.0)
    for kind in ("global", "relative", "topk"):
        assert effect_magnitude(kind, before, before, 0 * patches).item() == 0.0
    assert effect_magnitude("relative", 0 * before, 0 * before, patches).item() == 0.0  # no division by zero
    with pytest.raises(ValueError, match="effect_magnitude must be one of"):
        effect_magnitude("loudness", before, after, patches)


@pytest.mark.parametrize("kind", ["global", "relative", "topk"])
def test_model_reports_its_configured_effect_magnitude(kind: str) -> None:
    from cde_core.models.effect_magnitude import effect_magnitude

    torch.manual_seed(0)
    model = create_model("cde", num_classes=3, effect_magnitude=kind, **TINY).eval()
    before, after = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = model.forward_train(before, after)
    expected = effect_magnitude(kind, out["before_global"], out["after_global"], out["delta_topk"])
    torch.testing.assert_close(out["effect_magnitude"], expected)
    with pytest.raises(ValueError, match="effect_magnitude must be one of"):
        create_model("cde", num_classes=3, effect_magnitude="loudness", **TINY)


def test_topk_changed_patches_function() -> None:
    deltas = torch.zeros(1, 6, 4)
    deltas[0, 4] = 5.0
    deltas[0, 1] = -3.0
    indices, selected = topk_changed_patches(deltas, 2)
    assert indices[0].tolist() == [4, 1]
    assert torch.equal(selected[0, 1], deltas[0, 1])


def test_cnn_backbone_cells_are_patches() -> None:
    """A CNN's last feature-map cells are the patches: 64 px / stride 32 = a 2x2 grid; changing one
    32-px quadrant makes its cell the Top-1."""
    torch.manual_seed(0)
    model = create_model("cde", num_classes=3, backbone="resnet10t", img_size=64, latent_dim=16, top_k=1).eval()
    rows, cols = model.grid_size
    assert (rows, cols) == (2, 2) and model.backbone.num_patches == 4
    before = 0.5 * torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(before, _perturb_patches(before, {3}, cols, 32))
    assert out.topk_indices.tolist() == [[3]]
    loss = model.forward_train(torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64))["logits"].sum()
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.parameters())


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


def test_norm_feature_feeds_the_delta_norm_to_the_classifier() -> None:
    """With `norm_feature` the classifier reads [delta, |delta|]: a zero delta scores the biases alone and the
    norm column moves the logits by w * |delta|; without it the classifier has no such input."""
    plain = create_model("cde_global", num_classes=3, **TINY)
    assert plain.classifier.in_features == TINY["latent_dim"]
    model = create_model("cde_global", num_classes=3, norm_feature=True, **TINY).eval()
    assert model.classifier.in_features == TINY["latent_dim"] + 1
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.weight[:, -1] = torch.tensor([10.0, -10.0, 0.0])  # class 1 = "small delta"
        model.classifier.bias.copy_(torch.tensor([0.0, 0.5, 0.0]))
        image = torch.randn(1, 3, 32, 32)
        same = model(image, image)
        changed = model(image, image + 2.0 * torch.randn(1, 3, 32, 32))
    torch.testing.assert_close(same.logits, torch.tensor([[0.0, 0.5, 0.0]]))
    norm = changed.delta_global.norm()
    assert norm > 0.05  # a real change (the tiny random backbone's deltas are ~0.1): the norm outvotes the bias
    torch.testing.assert_close(changed.logits, torch.stack([10 * norm, 0.5 - 10 * norm, torch.zeros(())])[None])
    assert int(same.logits.argmax()) == 1 and int(changed.logits.argmax()) == 0


def test_norm_feature_reads_each_selected_patch_norm() -> None:
    model = create_model("cde_patch", num_classes=2, norm_feature=True, **TINY).eval()
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.weight[0, -1] = 1.0
        model.classifier.bias.zero_()
        before, after = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
        out = model.head_train(*model.encode(before), *model.encode(after))
    expected = out["delta_topk"].norm(dim=-1).mean(dim=1)  # the mean over the K selected patches' norms
    torch.testing.assert_close(out["logits"][:, 0], expected)
