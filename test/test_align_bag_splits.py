"""scripts/align_bag_splits.py: bag pairs take the splits and row order of the pixel-equal generator pairs, and
every mismatch (missing pair, other pixels, other labels) is reported, not papered over."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cde_core.data.manifest import PairRecord, read_manifest, write_manifest

from conftest import REPO_ROOT

_spec = importlib.util.spec_from_file_location("align_bag_splits", REPO_ROOT / "scripts" / "align_bag_splits.py")
align_bag_splits = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(align_bag_splits)  # type: ignore[union-attr]


def _dataset(root: Path, ids: list[str], seeds: list[int], splits: list[str], actions: list[str],
             compress: int) -> None:
    (root / "images").mkdir(parents=True)
    records = []
    for rid, seed, role, action in zip(ids, seeds, splits, actions):
        rng = np.random.default_rng(seed)
        names = {}
        for part in ("before", "after"):
            names[part] = f"images/{rid}_{part}.png"
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(
                root / names[part], compress_level=compress)  # other PNG bytes, same pixels
        records.append(PairRecord(id=rid, before=names["before"], after=names["after"], action=action,
                                  object="drawer", commanded_action=action, splits={"iid_0": role}))
    write_manifest(root, records)


def test_bag_pairs_take_the_generators_splits_and_order(tmp_path: Path) -> None:
    _dataset(tmp_path / "gen", ["g1", "g2", "g3"], [1, 2, 3], ["train", "val", "test"], ["open"] * 3, 1)
    _dataset(tmp_path / "bag", ["cmd-3", "cmd-1", "cmd-2"], [3, 1, 2], ["train", "train", "train"], ["open"] * 3, 9)
    assert align_bag_splits.main([str(tmp_path / "bag"), str(tmp_path / "gen"), "--out", str(tmp_path / "out")]) == 0
    aligned = read_manifest(tmp_path / "out")
    assert [r.id for r in aligned] == ["cmd-1", "cmd-2", "cmd-3"]
    assert [r.splits["iid_0"] for r in aligned] == ["train", "val", "test"]
    assert (tmp_path / "out" / aligned[0].before).is_file()  # images reachable from the new dataset
    (tmp_path / "moved").mkdir()
    for name in ("bag", "out"):  # a relative link: the two datasets can move together
        (tmp_path / name).rename(tmp_path / "moved" / name)
    assert (tmp_path / "moved" / "out" / aligned[0].before).is_file()


def test_mismatches_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _dataset(tmp_path / "gen", ["g1", "g2", "g3"], [1, 2, 3], ["train", "val", "test"], ["open"] * 3, 1)
    _dataset(tmp_path / "bag", ["cmd-1", "cmd-2", "cmd-9"], [1, 2, 9], ["train"] * 3, ["open", "close", "open"], 1)
    assert align_bag_splits.main([str(tmp_path / "bag"), str(tmp_path / "gen"), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "cmd-2 ~ g2: labels differ in ['action', 'commanded_action']" in err
    assert "generator pair g3 has no pixel-equal bag pair" in err
    assert "bag pair cmd-9 has no pixel-equal generator pair" in err
