"""Frozen-backbone training on cached tokens (cde_core/train/feature_cache.py): the same run as without the
cache, the backbone run once per image of the robot-masked pairs, and the same full checkpoint."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT
from PIL import Image

from cde_core.checkpoint import load_checkpoint
from cde_core.data.manifest import write_manifest
from cde_core.data.pair_dataset import PairDataset
from cde_core.data.synthetic import generate_synthetic
from cde_core.eval.predict import predict
from cde_core.models import create_model
from cde_core.train.config import load_config
from cde_core.train.feature_cache import (
    CachedTokens,
    backbone_replaced,
    encode_pairs,
    feature_cache_plan,
)
from cde_core.train.trainer import Trainer

TINY_CONFIG = str(REPO_ROOT / "cde_core" / "configs" / "synthetic_tiny.yaml")


@pytest.fixture(scope="module")
def masked_pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic pairs with a 'robot' bar at a different place in each frame, so the union fill and
    patch_valid both matter."""
    root = tmp_path_factory.mktemp("masked")
    records = generate_synthetic(root, pairs_per_cell=6, size=32, seed=0)
    rng = np.random.default_rng(0)
    masked = []
    for record in records:
        paths = []
        for name in ("before", "after"):
            mask = np.zeros((32, 32), np.uint8)
            x = int(rng.integers(0, 20))
            mask[:, x:x + 10] = 255
            rel = f"{getattr(record, name)[:-4]}_mask.png"
            Image.fromarray(mask).save(root / rel)
            paths.append(rel)
        masked.append(dataclasses.replace(record, before_mask=paths[0], after_mask=paths[1]))
    write_manifest(root, masked)
    return root


def _trainer(root: Path, out: Path, feature_cache: bool) -> Trainer:
    config = load_config(TINY_CONFIG, [f"data.root={root}", "data.split=comp_0", "data.robot_mask=union",
                                       "model.freeze_backbone=true", f"data.feature_cache={str(feature_cache).lower()}",
                                       "optim.epochs=2", "optim.aux_warmup_steps=2", "progress=false",
                                       "device=cpu", f"out={out}"])
    return Trainer(config)


def _count_backbone_images(trainer: Trainer) -> list[int]:
    """Images through the real backbone, summed over calls (a forward hook on the Backbone module)."""
    seen = [0]
    trainer.model.backbone.register_forward_hook(lambda module, args, output: seen.__setitem__(
        0, seen[0] + int(args[0].shape[0])))
    return seen


def test_cached_frozen_run_equals_uncached_and_encodes_each_image_once(masked_pairs: Path, tmp_path: Path) -> None:
    cached_trainer = _trainer(masked_pairs, tmp_path / "cached", feature_cache=True)
    plain_trainer = _trainer(masked_pairs, tmp_path / "plain", feature_cache=False)
    assert cached_trainer.use_feature_cache and not plain_trainer.use_feature_cache
    cached_images, plain_images = _count_backbone_images(cached_trainer), _count_backbone_images(plain_trainer)
    cached, plain = cached_trainer.fit(), plain_trainer.fit()

    pairs = sum(len(ds) for ds in cached_trainer.datasets.values())
    assert cached_images[0] == 2 * pairs  # once per image of every pair, whatever the epochs and evaluations
    batch = cached_trainer.config.optim.batch_size
    epochs = len(plain.history)
    assert plain_images[0] == 2 * (plain.metrics["steps"] * batch + epochs * len(plain_trainer.datasets["val"])
                                   + pairs)

    assert cached.metrics["feature_cache"]["used"] and not plain.metrics["feature_cache"]["used"]
    assert cached.best_epoch == plain.best_epoch and cached.metrics["steps"] == plain.metrics["steps"]
    for a, b in zip(cached.history, plain.history):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5), key
    for role in ("train", "val", "test", "ood"):
        assert cached.metrics[role]["accuracy"] == pytest.approx(plain.metrics[role]["accuracy"])
    assert cached.metrics["calibration"]["no_effect_magnitude"] == pytest.approx(
        plain.metrics["calibration"]["no_effect_magnitude"], rel=1e-4)

    # The same full checkpoint: every key, frozen backbone included, and the same weights.
    model_c, meta_c = load_checkpoint(cached.checkpoint)
    model_p, _ = load_checkpoint(plain.checkpoint)
    state_c, state_p = model_c.state_dict(), model_p.state_dict()
    assert state_c.keys() == state_p.keys() and any(k.startswith("backbone.") for k in state_c)
    for key in state_c:
        torch.testing.assert_close(state_c[key], state_p[key], rtol=1e-4, atol=1e-5, msg=key)
    assert meta_c.preprocessing.robot_mask == "union"
    # The frozen backbone saved as the seed built it.
    fresh = _trainer(masked_pairs, tmp_path / "fresh", feature_cache=True).model.backbone.state_dict()
    for key, value in fresh.items():
        torch.testing.assert_close(state_c[f"backbone.{key}"], value)
    # The checkpoint runs on images as `cde eval` does and reproduces the run's own test predictions.
    test_set = cached_trainer.datasets["test"]
    pred = predict(model_c, test_set)
    accuracy = float((pred.preds == pred.labels).mean())
    assert accuracy == pytest.approx(cached.metrics["test"]["accuracy"])
    assert json.loads((tmp_path / "cached" / "metrics.json").read_text())["feature_cache"]["used"] is True


def test_cache_holds_tokens_of_the_masked_images_and_their_patch_validity(masked_pairs: Path,
                                                                          tmp_path: Path) -> None:
    trainer = _trainer(masked_pairs, tmp_path / "run", feature_cache=True)
    dataset = trainer.datasets["train"]
    tokens = encode_pairs(trainer.model.backbone, dataset, "fp32", torch.device("cpu"))
    assert len(tokens) == len(dataset) and tokens.labels() == dataset.labels()
    before, after, label, obj, valid = dataset[3]
    assert (valid == 0).any()  # the bar makes some patches mostly robot
    trainer.model.backbone.eval()
    with torch.no_grad():
        pooled, patches = trainer.model.backbone(torch.stack([before, after]))
    cached_before, cached_after, cached_label, cached_obj, cached_valid = tokens[3]
    torch.testing.assert_close(cached_before, torch.cat([pooled[:1], patches[0]]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cached_after, torch.cat([pooled[1:], patches[1]]), rtol=1e-5, atol=1e-5)
    assert (cached_label, cached_obj) == (label, obj) and torch.equal(cached_valid, valid)
    # The fill happened before the backbone: the unmasked image gives other tokens.
    unmasked = dataclasses.replace(dataset.preprocessing, robot_mask="none")
    raw = PairDataset(dataset.root, dataset.records, dataset.classes, dataset.objects, unmasked, cache=False,
                      grid=dataset.grid)[3][0]
    with torch.no_grad():
        raw_pooled, _ = trainer.model.backbone(raw[None])
    assert not torch.allclose(raw_pooled[0], cached_before[0], atol=1e-3)


def test_model_reads_cached_tokens_only_inside_the_swap() -> None:
    model = create_model("cde", num_classes=3, backbone="cde_vit_test", img_size=32, latent_dim=16,
                         projector_hidden=32).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        pooled, patches = model.backbone(images)
        expected = model(images[:1], images[1:])
        tokens = torch.cat([pooled[:, None], patches], dim=1)
        with backbone_replaced(model):
            assert isinstance(model.backbone, CachedTokens)
            assert not any(k.startswith("backbone.") for k in model.state_dict())
            got = model(tokens[:1], tokens[1:])
            with pytest.raises(ValueError, match="cached tokens must be"):
                model(images[:1], images[1:])
            with pytest.raises(TypeError, match="already replaced"), backbone_replaced(model):
                pass
    assert not isinstance(model.backbone, CachedTokens)
    torch.testing.assert_close(got.logits, expected.logits)
    assert torch.equal(got.topk_indices, expected.topk_indices)


def test_cache_plan_says_why() -> None:
    assert feature_cache_plan(freeze_backbone=True, feature_cache=True)[0]
    used, reason = feature_cache_plan(freeze_backbone=True, feature_cache=False)
    assert not used and "data.feature_cache=false" in reason
    used, reason = feature_cache_plan(freeze_backbone=False, feature_cache=True)
    assert not used and "freeze_backbone=false" in reason
