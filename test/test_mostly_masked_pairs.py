"""Pairs the robot covers almost entirely (nothing left to compare with robot masks): training, evaluation
and calibration leave them out and list them instead of stopping at the first one (found by a door-closing
episode of the benchmark whose arm fills 96 % of the object camera)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT
from PIL import Image

from cde_core.data.manifest import write_manifest
from cde_core.data.pair_dataset import PairDataset, PairDecodeError, usable_records
from cde_core.data.synthetic import generate_synthetic
from cde_core.preprocessing import Preprocessing
from cde_core.robot_mask import union_coverage

TINY_CONFIG = str(REPO_ROOT / "cde_core" / "configs" / "synthetic_tiny.yaml")


def test_union_coverage_is_the_fraction_of_the_model_frame_in_either_mask() -> None:
    before, after = np.zeros((64, 64), np.uint8), np.zeros((64, 64), np.uint8)
    before[:32], after[:, :32] = 255, 255  # top half, left half: three quarters together
    assert union_coverage(before, after, 64) == pytest.approx(0.75)
    assert union_coverage(before, before, 32) == pytest.approx(0.5, abs=0.05)  # resized conservatively
    assert union_coverage(np.zeros((8, 8)), np.zeros((8, 8)), 16) == 0.0


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Synthetic pairs with a small robot bar each; one train and one IID-test pair of comp_0 fully covered."""
    root = tmp_path_factory.mktemp("covered")
    records = generate_synthetic(root, pairs_per_cell=6, size=32, seed=0)
    covered = {role: next(r.id for r in records if r.role("comp_0") == role) for role in ("train", "test")}
    out = []
    for record in records:
        paths = []
        for name in ("before", "after"):
            mask = np.zeros((32, 32), np.uint8)
            mask[:, :4] = 255
            if record.id in covered.values() and name == "before":
                mask[:] = 255
            rel = f"{getattr(record, name)[:-4]}_mask.png"
            Image.fromarray(mask).save(root / rel)
            paths.append(rel)
        out.append(dataclasses.replace(record, before_mask=paths[0], after_mask=paths[1]))
    write_manifest(root, out)
    return root, covered


def test_the_dataset_alone_still_refuses_such_a_pair(data) -> None:
    root, covered = data
    from cde_core.data.manifest import read_manifest

    records = read_manifest(root)
    prep = Preprocessing(img_size=32, robot_mask="union")
    bad = [r for r in records if r.id == covered["train"]]
    with pytest.raises(PairDecodeError, match="covers 100%"):
        PairDataset(root, bad, sorted({r.action for r in records}), [], prep, grid=(4, 4))[0]
    kept, left = usable_records(root, records, prep)
    assert set(left) == set(covered.values()) and all(c == 1.0 for c in left.values())
    assert len(kept) == len(records) - 2
    kept, left = usable_records(root, records, Preprocessing(img_size=32))  # no masks used: nothing to leave out
    assert len(kept) == len(records) and left == {}


def test_training_and_evaluation_leave_them_out_and_list_them(data, tmp_path: Path) -> None:
    from cde_core.eval.evaluate import evaluate_checkpoint
    from cde_core.train.config import load_config
    from cde_core.train.trainer import train

    root, covered = data
    result = train(load_config(TINY_CONFIG, [f"data.root={root}", "data.split=comp_0", "data.robot_mask=union",
                                             "optim.epochs=1", "progress=false", "device=cpu",
                                             f"out={tmp_path / 'run'}"]))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {role: list(ids) for role, ids in metrics["left_out_mostly_masked"].items()} == {
        "train": [covered["train"]], "test": [covered["test"]]}
    report = evaluate_checkpoint(result.checkpoint, root, "comp_0", tmp_path / "eval")
    assert list(report["test"]["left_out_mostly_masked"]) == [covered["test"]]
    assert report["val"]["left_out_mostly_masked"] == {}
    # unmasked, the same pairs train and are scored like any other
    train(load_config(TINY_CONFIG, [f"data.root={root}", "data.split=comp_0", "optim.epochs=1", "progress=false",
                                    "device=cpu", f"out={tmp_path / 'plain'}"]))
    assert json.loads((tmp_path / "plain" / "metrics.json").read_text())["left_out_mostly_masked"] == {}
