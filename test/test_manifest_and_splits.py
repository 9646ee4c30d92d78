"""Manifest validation and the split rules: nothing held out leaks into training."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cde_core.data.manifest import ManifestError, PairRecord, read_manifest, write_manifest
from cde_core.data.splits import assign_splits

ANTONYM = {"open": "close", "close": "open", "push": "pull", "pull": "push", "insert": "remove", "remove": "insert"}
CELLS = [("drawer", "open"), ("drawer", "close"), ("window", "open"), ("window", "close"), ("door", "open"),
         ("door", "close"), ("puck", "push"), ("puck", "pull"), ("mug", "push"), ("mug", "pull"),
         ("peg", "insert"), ("peg", "remove"), ("ring", "insert"), ("ring", "remove"), ("drawer", "none"),
         ("puck", "none")]


def _records(per_cell: int = 6) -> list[PairRecord]:
    return [PairRecord(id=f"{o}-{a}-{i}", before="b.png", after="a.png", action=a, object=o,
                       antonym=ANTONYM.get(a), kind="no_change" if a == "none" else "effect")
            for o, a in CELLS for i in range(per_cell)]


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_split_rules(seed: int) -> None:
    records = _records()
    assign_splits(records, seed=seed, folds=2)
    for fold in range(2):
        comp, syst = f"comp_{fold}", f"syst_{fold}"
        train_cells = {r.cell for r in records if r.role(comp) == "train"}
        ood_cells = {r.cell for r in records if r.role(comp) == "ood"}
        assert ood_cells and not ood_cells & train_cells
        for obj, action in ood_cells:
            assert (obj, ANTONYM[action]) in train_cells, "antonym of a held-out cell must be trained"
            assert any(c[0] == obj for c in train_cells) and any(c[1] == action for c in train_cells)
            assert action != "none"
        train_objects = {r.object for r in records if r.role(syst) == "train"}
        ood_objects = {r.object for r in records if r.role(syst) == "ood"}
        assert ood_objects and not ood_objects & train_objects
        train_actions = {r.action for r in records if r.role(syst) == "train"}
        assert {r.action for r in records if r.role(syst) == "ood"} <= train_actions
        for split in (f"iid_{fold}", comp, syst):
            roles = {r.role(split) for r in records}
            assert {"train", "val", "test"} <= roles
            assert all(r.role(split) is not None for r in records)


def test_splits_deterministic_and_folds_differ() -> None:
    a, b = _records(), _records()
    assign_splits(a, seed=3)
    assign_splits(b, seed=3)
    assert [r.splits for r in a] == [r.splits for r in b]
    held = [{r.cell for r in a if r.role(f"comp_{k}") == "ood"} for k in range(2)]
    roles = [[r.role(f"iid_{k}") for r in a] for k in range(2)]
    assert held[0] != held[1] or roles[0] != roles[1]


def test_manifest_round_trip(tmp_path: Path) -> None:
    records = _records(2)
    assign_splits(records, seed=0, folds=1)
    write_manifest(tmp_path, records)
    assert [r.to_dict() for r in read_manifest(tmp_path)] == [r.to_dict() for r in records]


@pytest.mark.parametrize("row, match", [
    ({"id": "x", "before": "b", "after": "a", "object": "o"}, "missing"),
    ({"id": "x", "before": "b", "after": "a", "action": "open", "object": "o", "colour": 1}, "unknown field"),
    ({"id": "x", "before": "b", "after": "a", "action": "open", "object": "o", "kind": "odd"}, "kind"),
    ({"id": "x", "before": "b", "after": "a", "action": "open", "object": "o", "splits": {"iid_0": "dev"}}, "roles"),
])
def test_bad_rows_name_the_line(tmp_path: Path, row: dict, match: str) -> None:
    good = {"id": "g", "before": "b", "after": "a", "action": "open", "object": "o"}
    (tmp_path / "manifest.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(ManifestError, match=match) as info:
        read_manifest(tmp_path)
    assert "manifest.jsonl:2" in str(info.value)


def test_duplicate_ids_and_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path)
    row = json.dumps({"id": "g", "before": "b", "after": "a", "action": "open", "object": "o"})
    (tmp_path / "manifest.jsonl").write_text(row + "\n" + row + "\n")
    with pytest.raises(ManifestError, match="duplicate"):
        read_manifest(tmp_path)
