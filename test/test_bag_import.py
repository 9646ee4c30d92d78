"""`cde data import`: bags written by the EpisodeRecorder -> the simulator's pair manifest, with the
label rule of cde_core/data/bag_import.py (labels by command id, verdicts, weak labels). Kill -9 leftovers,
re-imports, late and conflicting labels, streaming: test_bag_import_robustness.py."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from cde_core.cli import main as cde_main
from cde_core.data.bag_import import BagImportError, find_bags, import_bags
from cde_core.data.manifest import read_manifest
from cde_ros.episode_recorder import EpisodeRecorder, RecorderConfig
from test_episode_recorder import episode, label, record

SUCCEEDED, FAILED, NO_EFFECT, UNCERTAIN = 0, 1, 2, 3


def png(path: Path) -> np.ndarray:
    with PILImage.open(path) as img:
        assert img.mode == "RGB"
        return np.asarray(img)


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, dict[str, dict]]:
    """Two recording sessions (two bag directories), episodes covering each branch of the label rule."""
    root = tmp_path / "bags"
    eps = {
        "verified": episode(0, "open", "open", SUCCEEDED),
        "failed": episode(1, "open", "close", FAILED),
        "relabelled": episode(2, "close", "close", SUCCEEDED, obj="door"),
        "no_model": episode(3, "open", None, UNCERTAIN, encoding="bgr8"),
        "confirmed": episode(4, "close", "none", NO_EFFECT),
        "unknown": episode(5, "open", "open", UNCERTAIN),
        "none_cmd": episode(6, "none", "none", SUCCEEDED, obj="puck"),
    }
    first = EpisodeRecorder(RecorderConfig(str(root)))
    for name in ("verified", "failed", "relabelled", "no_model"):
        record(first, eps[name])
    first.record_label(label("cmd-002", "open", obj="door", annotator="first look"))
    first.close()
    # a later session, after a restart: more episodes and corrections for episodes of the first bag
    later = time.time_ns() + 3600 * 10**9  # the second session's clock reads an hour later
    ticks = iter(range(later, later + 100))
    second = EpisodeRecorder(RecorderConfig(str(root)), wall_clock_ns=lambda: next(ticks))
    for name in ("confirmed", "unknown", "none_cmd"):
        record(second, eps[name])
    second.record_label(label("cmd-002", "none", effect_happened=False, annotator="correction"))  # a conflict
    second.record_label(label("cmd-003", "open", obj="box"))  # an episode the model could not judge
    second.record_label(label("cmd-004", "", effect_happened=True))  # "the command worked" -> commanded
    second.record_label(label("cmd-005", "", effect_happened=False))  # outcome unknown -> skipped
    second.close()
    assert len(find_bags([root])) == 2
    return root, eps


def test_import_applies_the_label_rule(recorded: tuple[Path, dict[str, dict]], tmp_path: Path) -> None:
    root, eps = recorded
    out = tmp_path / "dataset"
    assert cde_main(["data", "import", str(root), "--out", str(out), "--split-seed", "3",
                     "--label-conflicts", "latest", "--no-progress"]) == 0
    rows = {r.id: r for r in read_manifest(out)}
    assert set(rows) == {"cmd-000", "cmd-002", "cmd-003", "cmd-004", "cmd-006"}  # cmd-001 weak, cmd-005 unknown
    expect = {  # id: (action, object, commanded, effect_happened, kind, antonym)
        "cmd-000": ("open", "drawer", "open", True, "effect", "close"),
        "cmd-002": ("none", "door", "close", False, "failed", None),
        "cmd-003": ("open", "box", "open", True, "effect", "close"),
        "cmd-004": ("close", "drawer", "close", True, "effect", "open"),
        "cmd-006": ("none", "puck", "none", False, "no_change", None),
    }
    for cid, (action, obj, commanded, happened, kind, antonym) in expect.items():
        r = rows[cid]
        assert (r.action, r.object, r.commanded_action, r.effect_happened, r.kind, r.antonym) == (
            action, obj, commanded, happened, kind, antonym), cid
        assert r.source == "bag" and r.camera == "cam" and set(r.splits) == {"iid_0"}
    meta = json.loads((out / "generation.json").read_text())
    assert meta["label_origin"] == {"cmd-000": "verdict", "cmd-002": "label", "cmd-003": "label",
                                    "cmd-004": "label", "cmd-006": "verdict"}
    assert meta["episodes"] == 7 and meta["labels"] == 5 and sum(meta["skipped"].values()) == 2
    # cmd-002's correction disagrees with its first label: kept (latest) on request, and still reported
    assert [(c["command_id"], c["resolution"], [l["annotator"] for l in c["labels"]])
            for c in meta["label_conflicts"]] == [("cmd-002", "latest label kept", ["first look", "correction"])]


def test_imported_images_equal_the_recorded_frames(recorded: tuple[Path, dict[str, dict]], tmp_path: Path) -> None:
    root, eps = recorded
    out = tmp_path / "dataset"
    import_bags([root], out)
    by_id = {ep["command_id"]: ep for ep in eps.values()}
    rows = read_manifest(out)
    assert rows
    for r in rows:
        for role in ("before", "after"):
            np.testing.assert_array_equal(png(out / getattr(r, role)), by_id[r.id]["_rgb"][role], err_msg=r.id)
    # cmd-003 was recorded as bgr8 with row padding: the channel order and step were honoured
    assert any(r.id == "cmd-003" for r in rows)
    # bags without mask topics import as before: no mask fields, no mask files, nothing counted
    assert all(r.before_mask == r.after_mask == "" for r in rows)
    assert not list((out / "images").glob("*_mask.png"))
    meta = json.loads((out / "generation.json").read_text())
    assert meta["masked_pairs"] == 0 and meta["masks_skipped"] == {}


def test_weak_and_labelled_only_policies(recorded: tuple[Path, dict[str, dict]], tmp_path: Path) -> None:
    root, _ = recorded
    weak = tmp_path / "weak"
    assert cde_main(["data", "import", str(root), "--out", str(weak), "--weak-labels", "--min-confidence", "0.5"]) == 0
    rows = {r.id: r for r in read_manifest(weak)}
    # cmd-001: FAILED, recognised 'close' at 0.75 -> a weak label; the command's effect did not happen
    assert (rows["cmd-001"].action, rows["cmd-001"].effect_happened, rows["cmd-001"].kind) == ("close", False, "failed")
    assert "cmd-005" not in rows  # its label says the outcome is unknown, and a label beats weak labels
    assert json.loads((weak / "generation.json").read_text())["label_origin"]["cmd-001"] == "recognised"
    strict = tmp_path / "strict"
    assert cde_main(["data", "import", str(root), "--out", str(strict), "--labelled-only"]) == 0
    assert {r.id for r in read_manifest(strict)} == {"cmd-003", "cmd-004"}  # cmd-002: its labels disagree


def test_compressed_bags_import(tmp_path: Path) -> None:
    eps = [episode(i, smooth=True, size=(64, 48)) for i in range(4)]
    with EpisodeRecorder(RecorderConfig(str(tmp_path / "bags"), image_format="png")) as recorder:
        for ep in eps:
            record(recorder, ep)
    out = tmp_path / "dataset"
    summary = import_bags([tmp_path / "bags"], out, seed=1, folds=2)
    rows = read_manifest(out)
    assert summary.pairs == len(rows) == 4
    for r, ep in zip(sorted(rows, key=lambda r: r.id), eps):
        np.testing.assert_array_equal(png(out / r.after), ep["_rgb"]["after"])
        assert set(r.splits) == {"iid_0", "iid_1"}


def test_iid_split_is_seeded(recorded: tuple[Path, dict[str, dict]], tmp_path: Path) -> None:
    root, _ = recorded
    roles = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        import_bags([root], tmp_path / name, seed=seed, folds=3)
        roles.append({r.id: tuple(sorted(r.splits.items())) for r in read_manifest(tmp_path / name)})
    assert roles[0] == roles[1]
    assert roles[0] != roles[2]
    assert {role for r in roles[0].values() for _, role in r} <= {"train", "val", "test"}


def test_not_a_bag_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagImportError, match="no bags found"):
        import_bags([tmp_path / "empty"], tmp_path / "out")
    other = tmp_path / "other_bag"
    other.mkdir()
    (other / "metadata.yaml").write_text("rosbag2_bagfile_information:\n  storage_identifier: mcap\n"
                                         "  relative_file_paths: []\n")
    with pytest.raises(BagImportError, match="cde.layout"):
        import_bags([other], tmp_path / "out")
    assert cde_main(["data", "import", str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 1


def mono_png(path: Path) -> np.ndarray:
    with PILImage.open(path) as img:
        assert img.mode == "L"  # one channel, not the mask replicated into RGB
        return np.asarray(img)


def test_masks_import_as_mono_pngs_and_bad_ones_are_counted(tmp_path: Path) -> None:
    eps = {
        "masked": episode(0, masks=True),
        "masked_8uc1": episode(1, masks=True, mask_encoding="8UC1"),
        "unmasked": episode(2),
        "wrong_size": episode(3, masks=True, mask_size=(20, 15)),
        "wrong_encoding": episode(4, masks=True, mask_encoding="rgb8"),
        "only_before": episode(5, masks=True),
    }
    del eps["only_before"]["after_mask"]
    with EpisodeRecorder(RecorderConfig(str(tmp_path / "bags"), image_format="png")) as recorder:
        for ep in eps.values():
            record(recorder, ep)
    out = tmp_path / "dataset"
    assert cde_main(["data", "import", str(tmp_path / "bags"), "--out", str(out)]) == 0
    rows = {r.id: r for r in read_manifest(out)}
    assert set(rows) == {ep["command_id"] for ep in eps.values()}  # a bad mask never costs the pair
    for name in ("masked", "masked_8uc1"):
        ep = eps[name]
        r = rows[ep["command_id"]]
        assert r.before_mask.endswith("_before_mask.png") and r.after_mask.endswith("_after_mask.png")
        assert r.before_mask.startswith("images/") and r.before_mask != r.after_mask
        for role in ("before", "after"):
            np.testing.assert_array_equal(mono_png(out / getattr(r, f"{role}_mask")), ep["_mask"][role], err_msg=name)
            np.testing.assert_array_equal(png(out / getattr(r, role)), ep["_rgb"][role], err_msg=name)
    for name in ("unmasked", "wrong_size", "wrong_encoding", "only_before"):
        r = rows[eps[name]["command_id"]]
        assert r.before_mask == r.after_mask == "", name
    assert len(list((out / "images").glob("*_mask.png"))) == 4  # no stray file from a skipped pair
    meta = json.loads((out / "generation.json").read_text())
    assert meta["pairs"] == 6 and meta["skipped"] == {}
    assert meta["masked_pairs"] == 2
    assert meta["masks_skipped"] == {"mask size differs from its frame": 1, "mask encoding not mono8/8UC1": 1,
                                     "only one of the before/after masks": 1}
