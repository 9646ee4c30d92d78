"""The pair dataset over a manifest, its class-balanced sampler, and the synthetic generator."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from cde_core.data.manifest import NO_CHANGE, read_manifest
from cde_core.data.pair_dataset import ClassBalancedSampler, PairDataset, PairDecodeError, load_rgb, vocabulary
from cde_core.data.synthetic import ACTIONS, ANTONYMS, generate_synthetic
from cde_core.preprocessing import Preprocessing, preprocess_rgb


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("small")
    generate_synthetic(root, pairs_per_cell=3, size=24, seed=5, objects=("square", "disc", "bar"), folds=1)
    return root


def test_items_match_the_runtime_preprocessing(small: Path) -> None:
    prep = Preprocessing(img_size=16)
    dataset = PairDataset.from_manifest(small, "iid_0", "train", prep)
    records = read_manifest(small)
    assert dataset.classes == sorted(ACTIONS) == vocabulary(records, "action")
    assert dataset.objects == ["bar", "disc", "square"]
    assert len(dataset) == sum(r.role("iid_0") == "train" for r in records) > 0
    before, after, action, obj, patch_valid = dataset[0]
    record = dataset.records[0]
    assert before.shape == (3, 16, 16) and before.dtype == torch.float32
    assert patch_valid.tolist() == [1.0]  # no robot masks: every patch may enter Top-K
    expected = preprocess_rgb(load_rgb(small / record.after), prep)
    np.testing.assert_array_equal(after.numpy(), expected)
    assert dataset.classes[action] == record.action and dataset.objects[obj] == record.object


def test_roles_are_disjoint_and_cover_the_split(small: Path) -> None:
    prep = Preprocessing(img_size=16)
    ids = {role: {r.id for r in PairDataset.from_manifest(small, "comp_0", role, prep).records}
           for role in ("train", "val", "test", "ood")}
    assert sum(len(v) for v in ids.values()) == len(set().union(*ids.values())) == len(read_manifest(small))
    with pytest.raises(ValueError, match="role"):
        PairDataset.from_manifest(small, "comp_0", "holdout", prep)


def test_decode_failure_names_pair_and_path(small: Path, tmp_path: Path) -> None:
    records = read_manifest(small)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    record = records[1]
    record.after = str(broken)  # absolute paths survive Path joining
    dataset = PairDataset(small, [records[0], record], sorted(ACTIONS), ["bar", "disc", "square"],
                          Preprocessing(img_size=16))
    dataset[0]
    with pytest.raises(PairDecodeError, match=f"{record.id}.*broken.png"):
        dataset[1]
    record.after = str(tmp_path / "missing.png")
    with pytest.raises(PairDecodeError, match="missing.png"):
        dataset[1]


def test_cache_serves_the_same_tensors_without_reading(small: Path) -> None:
    dataset = PairDataset.from_manifest(small, "iid_0", "val", Preprocessing(img_size=16), cache=True)
    first = dataset[0]
    dataset.root = Path("/nonexistent")  # a second read from disk would now fail
    second = dataset[0]
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    uncached = PairDataset.from_manifest(small, "iid_0", "val", Preprocessing(img_size=16), cache=False)
    uncached.root = Path("/nonexistent")
    with pytest.raises(PairDecodeError):
        uncached[0]


def test_unknown_action_refused_unknown_object_marked(small: Path) -> None:
    records = read_manifest(small)
    with pytest.raises(ValueError, match="not in the class list"):
        PairDataset(small, records, ["grow"], ["bar"], Preprocessing(img_size=16))
    dataset = PairDataset(small, records[:1], sorted(ACTIONS), ["not-this-object"], Preprocessing(img_size=16))
    assert dataset[0][3] == -1


def test_class_balanced_sampler_balances_and_shards() -> None:
    labels = [0] * 90 + [1] * 10
    counts = Counter(labels[i] for i in ClassBalancedSampler(labels, num_samples=4000, seed=0))
    assert 0.4 < counts[1] / 4000 < 0.6  # uniform over classes, although class 1 is 10 % of the data
    shards = [list(ClassBalancedSampler(labels, seed=3, num_replicas=2, rank=r)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 50
    assert shards[0] != shards[1]
    sampler = ClassBalancedSampler(labels, seed=3)
    epoch0 = list(sampler)
    assert list(sampler) == epoch0
    sampler.set_epoch(1)
    assert list(sampler) != epoch0


def test_synthetic_is_deterministic_and_changes_what_it_says(tmp_path: Path) -> None:
    a = generate_synthetic(tmp_path / "a", pairs_per_cell=2, size=24, seed=1, folds=1)
    b = generate_synthetic(tmp_path / "b", pairs_per_cell=2, size=24, seed=1, folds=1)
    c = generate_synthetic(tmp_path / "c", pairs_per_cell=2, size=24, seed=2, folds=1)
    assert [r.to_dict() for r in a] == [r.to_dict() for r in b]
    for ra, rb in zip(a, b):
        assert (tmp_path / "a" / ra.after).read_bytes() == (tmp_path / "b" / rb.after).read_bytes()
    assert any((tmp_path / "a" / ra.before).read_bytes() != (tmp_path / "c" / rc.before).read_bytes()
               for ra, rc in zip(a, c))
    for record in a:
        before = load_rgb(tmp_path / "a" / record.before).astype(np.int32)
        after = load_rgb(tmp_path / "a" / record.after).astype(np.int32)
        changed = np.abs(after - before).max(axis=2) > 30  # sensor noise is std 3 per frame
        changed[18:, :6] = False  # the distractor's corner (it may jitter by a pixel in any pair)
        if record.action == NO_CHANGE:
            assert not changed.any(), record.id
            assert record.kind == "no_change" and not record.effect_happened and record.antonym is None
        else:
            assert changed.sum() >= 3, record.id
            assert record.antonym == ANTONYMS[record.action] and record.kind == "effect"


def test_synthetic_compositional_split_holds_out_cells_with_trained_antonyms(tmp_path: Path) -> None:
    records = generate_synthetic(tmp_path, pairs_per_cell=2, size=24, seed=0, folds=1)
    train_cells = {r.cell for r in records if r.role("comp_0") == "train"}
    ood_cells = {r.cell for r in records if r.role("comp_0") == "ood"}
    assert ood_cells and not ood_cells & train_cells
    for obj, action in ood_cells:
        assert (obj, ANTONYMS[action]) in train_cells  # the opposite action on the same object is trained
        assert any(c[1] == action for c in train_cells)  # and the action itself on another object
    assert all(r.role("comp_0") != "ood" for r in records if r.action == NO_CHANGE)
