"""`cde data import` at product scale: what a kill -9 of the recorder leaves (unlisted file, no
metadata.yaml, truncated files), idempotent re-imports, late labels, conflicting labels, progress bar,
and one episode's pixels in memory at a time. Real bags from the real EpisodeRecorder, read by rosbags."""
from __future__ import annotations

import json
import os
import random
import shutil
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ruamel.yaml import YAML
from test_bag_import import png
from test_episode_recorder import episode, kill_9_recorder_child, label, listed_files, record

from cde_core.cli import main as cde_main
from cde_core.data import bag_import
from cde_core.data.bag_import import BagImportError, LabelPolicy, import_bags
from cde_core.data.manifest import read_manifest
from cde_ros.episode_recorder import EpisodeRecorder, RecorderConfig

SIZE = (64, 48)


def ids(out: Path) -> list[str]:
    return [r.id for r in read_manifest(out)]


def meta(out: Path) -> dict[str, Any]:
    return json.loads((out / "generation.json").read_text())


def recording(root: Path, indices: range, **config: Any) -> Path:
    """One recording session of episodes `indices` (verdict SUCCEEDED, so each imports unlabelled)."""
    with EpisodeRecorder(RecorderConfig(str(root), fsync=False, **config)) as recorder:
        for i in indices:
            record(recorder, episode(i, size=SIZE))
    return root


def dataset_files(out: Path) -> dict[str, bytes]:
    """Every file of a dataset directory, by relative path, with its bytes."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- kill -9 of a real recording process
CHILD = r"""
import sys, time
sys.path.insert(0, {test_dir!r})
from test_episode_recorder import episode, record, label
from cde_ros import episode_recorder as er

mode, stall_after = {mode!r}, {stall_after}
episodes_done = [0]
real_write_metadata = er._BagDirectory._write_metadata

def write_metadata(self):
    # the file is complete and renamed into the bag; die before metadata.yaml lists it
    if episodes_done[0] >= stall_after and ((mode == "unlisted" and len(self.files) > 1) or
                                            (mode == "no-metadata" and len(self.files) == 1)):
        print("stalled", self.files[-1]["path"], flush=True)
        time.sleep(600)
    real_write_metadata(self)

er._BagDirectory._write_metadata = write_metadata
recorder = er.EpisodeRecorder(er.RecorderConfig({directory!r}, max_files_per_bag=3))
i = 0
while True:
    record(recorder, episode(i, size=(64, 48)))
    episodes_done[0] += 1
    print("done", f"cmd-{{i:03d}}", flush=True)
    if i == 3:  # an operator's late label for the first episode, in a later file (and bag)
        recorder.record_label(label("cmd-000", "close", effect_happened=False, annotator="late"))
        print("labelled", flush=True)
    i += 1
"""


@pytest.mark.parametrize("mode", ["unlisted", "no-metadata", "anywhere"])
def test_kill_9_of_the_recorder_imports_every_complete_episode(tmp_path: Path, mode: str) -> None:
    directory = tmp_path / "rec"
    script = CHILD.format(test_dir=str(Path(__file__).parent), directory=str(directory), mode=mode,
                          stall_after=6 if mode != "anywhere" else 10**9)
    done, stalled = kill_9_recorder_child(
        script, lambda words, done: words[:1] == ["stalled"] or (mode == "anywhere" and len(done) >= 8))

    out = tmp_path / "dataset"
    summary = import_bags([directory], out)
    imported = ids(out)
    assert set(done) <= set(imported)  # every episode the recorder returned for
    assert len(imported) <= len(done) + 1  # at most the one it was writing: complete, but not listed
    assert imported == sorted(imported) and len(set(imported)) == len(imported)
    m = meta(out)
    assert m["files_skipped"] == {}  # the recorder never leaves a visible half-written file
    if mode != "anywhere":
        bag_name = stalled.rsplit("_", 1)[0]
        reason = "not listed in metadata.yaml" if mode == "unlisted" else "bag has no metadata.yaml"
        assert m["file_problems"] == [{"file": str(directory / bag_name / stalled), "problem": reason,
                                       "action": "recovered"}]
        assert m["files_recovered"] == {reason: 1}
        assert len(imported) == len(done) + 1  # the killed write's episode was complete: recovered
        if mode == "no-metadata":
            assert not (directory / bag_name / "metadata.yaml").exists()
    rows = {r.id: r for r in read_manifest(out)}
    assert (rows["cmd-000"].action, m["label_origin"]["cmd-000"]) == ("close", "label")  # the late label
    for cid in (imported[1], imported[-1]):
        i = int(cid.split("-")[1])
        for role in ("before", "after"):
            np.testing.assert_array_equal(png(out / getattr(rows[cid], role)), episode(i, size=SIZE)["_rgb"][role])
    assert summary.pairs == len(imported)


# ---------------------------------------------------------------- truncated and missing files
@pytest.mark.parametrize("seed", [0, 1])
def test_truncated_files_are_skipped_and_reported(tmp_path: Path, seed: int) -> None:
    root = tmp_path / "rec"
    with EpisodeRecorder(RecorderConfig(str(root), fsync=False)) as recorder:
        for i in range(8):
            record(recorder, episode(i, size=SIZE))
        recorder.record_label(label("cmd-007", "close", annotator="lost"))  # its file is cut too
    (bag,) = [p.parent for p in root.glob("*/metadata.yaml")]
    files = listed_files(bag)
    rng = random.Random(seed)
    cut = {files[1]: 0, files[2]: rng.randrange(1, 40), files[3]: rng.randrange(40, files[3].stat().st_size - 40),
           files[4]: files[4].stat().st_size - rng.randrange(1, 38), files[8]: rng.randrange(files[8].stat().st_size)}
    for path, size in cut.items():
        os.truncate(path, size)
    out = tmp_path / "dataset"
    assert cde_main(["data", "import", str(root), "--out", str(out), "--no-progress"]) == 0
    assert ids(out) == ["cmd-000", "cmd-005", "cmd-006", "cmd-007"]
    m = meta(out)
    assert m["label_origin"]["cmd-007"] == "verdict"  # its label's file was cut: unlabelled, verified
    assert m["files_skipped"] == {"truncated": 5} and m["files"] == 4
    assert sorted(p["file"] for p in m["file_problems"]) == sorted(str(p) for p in cut)
    assert all(p["action"] == "skipped" and p["problem"].startswith("truncated") for p in m["file_problems"])


def test_missing_metadata_unlisted_and_foreign_files(tmp_path: Path) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    root = recording(tmp_path / "rec", range(3))
    (bag,) = [p.parent for p in root.glob("*/metadata.yaml")]
    files = listed_files(bag)
    (bag / "metadata.yaml").unlink()  # a recorder killed before its first metadata write
    # a ros2 bag's file named like the recorder's, in the same directory: read, found foreign, skipped
    store = get_typestore(Stores.ROS2_KILTED)
    foreign = tmp_path / "foreign"
    with Writer(foreign, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=store)
        writer.write(conn, 1, store.serialize_cdr(store.types["std_msgs/msg/String"](data="hi"),
                                                  "std_msgs/msg/String"))
    shutil.move(next(foreign.glob("*.mcap")), bag / f"{bag.name}_7.mcap")
    out = tmp_path / "dataset"
    import_bags([root], out)
    assert ids(out) == ["cmd-000", "cmd-001", "cmd-002"]
    m = meta(out)
    assert m["files_recovered"] == {"bag has no metadata.yaml": 3}
    assert m["files_skipped"] == {"not an episode file": 1}
    assert [p["file"] for p in m["file_problems"] if p["action"] == "recovered"] == [str(f) for f in files]

    # a listed file that vanished, and an unlisted complete one beside a metadata.yaml
    other = recording(tmp_path / "rec2", range(10, 13))
    (bag2,) = [p.parent for p in other.glob("*/metadata.yaml")]
    files2 = listed_files(bag2)
    files2[0].unlink()
    yaml = YAML(typ="safe")
    info = yaml.load((bag2 / "metadata.yaml").read_text())
    info["rosbag2_bagfile_information"]["relative_file_paths"].remove(files2[2].name)
    with (bag2 / "metadata.yaml").open("w") as handle:
        yaml.dump(info, handle)
    out2 = tmp_path / "dataset2"
    import_bags([other], out2)
    assert ids(out2) == ["cmd-011", "cmd-012"]
    assert meta(out2)["file_problems"] == [
        {"file": str(files2[0]), "problem": "listed in metadata.yaml but missing", "action": "skipped"},
        {"file": str(files2[2]), "problem": "not listed in metadata.yaml", "action": "recovered"}]


def test_unreadable_metadata_is_a_clear_error(tmp_path: Path) -> None:
    root = recording(tmp_path / "rec", range(1))
    (bag,) = [p.parent for p in root.glob("*/metadata.yaml")]
    (bag / "metadata.yaml").write_text("rosbag2_bagfile_information: [unclosed\n")
    with pytest.raises(BagImportError, match="not rosbag2 metadata.*delete it"):
        import_bags([root], tmp_path / "dataset")
    assert not (tmp_path / "dataset").exists()  # nothing written


# ---------------------------------------------------------------- idempotent re-imports
def test_reimport_is_idempotent_and_a_then_ab_equals_ab(tmp_path: Path) -> None:
    a = recording(tmp_path / "a", range(4))
    with EpisodeRecorder(RecorderConfig(str(tmp_path / "b"), fsync=False)) as rec:
        for i in range(4, 7):
            record(rec, episode(i, size=SIZE, masks=True))
        rec.record_label(label("cmd-001", "close", effect_happened=False))  # a late label for a bag of A
    b = tmp_path / "b"
    at_once, stepwise, reverse = tmp_path / "ab", tmp_path / "a_then_ab", tmp_path / "ba"
    import_bags([a, b], at_once, folds=2)
    first = dataset_files(at_once)
    import_bags([a, b], at_once, folds=2)  # again, into the same output
    assert dataset_files(at_once) == first  # byte-equal manifest, images, generation.json; nothing extra
    import_bags([a], stepwise, folds=2)
    assert {r.id for r in read_manifest(stepwise)} == {f"cmd-{i:03d}" for i in range(4)}
    import_bags([a, b], stepwise, folds=2)
    assert dataset_files(stepwise) == first
    import_bags([b, a], reverse, folds=2)  # the order bags are named in does not matter
    assert dataset_files(reverse) == first
    assert len([n for n in first if n.startswith("images/")]) == 7 * 2 + 3 * 2  # frames + B's masks, once each
    # importing A alone into the A+B output rewrites it as A's dataset: B's images are removed, not left stale
    import_bags([a], stepwise, folds=2)
    only_a = tmp_path / "a_only"
    import_bags([a], only_a, folds=2)
    assert dataset_files(stepwise) == dataset_files(only_a)
    assert not list(stepwise.rglob("*.tmp"))


def test_import_refuses_an_output_it_did_not_write(tmp_path: Path) -> None:
    root = recording(tmp_path / "rec", range(2))
    out = tmp_path / "sim_dataset"
    (out / "images").mkdir(parents=True)
    (out / "manifest.jsonl").write_text("")
    (out / "images" / "sim_0_before.png").write_bytes(b"not ours")
    with pytest.raises(BagImportError, match="did not write.*new or empty --out"):
        import_bags([root], out)
    assert (out / "images" / "sim_0_before.png").read_bytes() == b"not ours"
    assert (out / "manifest.jsonl").read_text() == ""
    assert cde_main(["data", "import", str(root), "--out", str(out), "--no-progress"]) == 1


# ---------------------------------------------------------------- late and conflicting labels
def test_late_labels_match_by_command_id_across_files_and_bag_directories(tmp_path: Path) -> None:
    root = tmp_path / "robot"
    with EpisodeRecorder(RecorderConfig(str(root), fsync=False)) as recorder:
        recorder.record_label(label("cmd-002", "close", effect_happened=False))  # before its episode's file
        for i in range(3):
            record(recorder, episode(i, size=SIZE, verdict=3))  # UNCERTAIN: only a label imports them
        recorder.record_label(label("cmd-000", "", effect_happened=True))  # a later file of the recording
    # the operator's labelling station records into its own directory, days later
    with EpisodeRecorder(RecorderConfig(str(tmp_path / "station"), fsync=False)) as station:
        station.record_label(label("cmd-001", "none", effect_happened=False, obj="box"))
        station.record_label(label("cmd-999", "open"))  # no such episode: counted, harmless
    out = tmp_path / "dataset"
    import_bags([root, tmp_path / "station"], out, LabelPolicy(labelled_only=True))
    rows = {r.id: r for r in read_manifest(out)}
    assert {cid: (r.action, r.object, r.effect_happened) for cid, r in rows.items()} == {
        "cmd-000": ("open", "drawer", True), "cmd-001": ("none", "box", False), "cmd-002": ("close", "drawer", False)}
    m = meta(out)
    assert m["labels"] == 4 and m["labels_unmatched"] == 1 and m["label_conflicts"] == []


def test_conflicting_labels_are_reported_and_left_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "rec"
    with EpisodeRecorder(RecorderConfig(str(root), fsync=False)) as recorder:
        for i in range(5):
            record(recorder, episode(i, size=SIZE))
        recorder.record_label(label("cmd-000", "close", annotator="ann"))
        recorder.record_label(label("cmd-000", "none", effect_happened=False, annotator="bob"))  # disagrees
        recorder.record_label(label("cmd-001", "close", annotator="ann"))
        recorder.record_label(label("cmd-001", "close", annotator="bob"))  # identical outcome: no conflict
        recorder.record_label(label("cmd-002", "open", annotator="ann"))  # open = the commanded action ...
        recorder.record_label(label("cmd-002", "", effect_happened=True, obj="drawer", annotator="bob"))  # ... agrees
        recorder.record_label(label("cmd-003", "open", obj="door", annotator="ann"))
        recorder.record_label(label("cmd-003", "open", obj="box", annotator="bob"))  # another object: conflict
    out = tmp_path / "dataset"
    assert cde_main(["data", "import", str(root), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert ids(out) == ["cmd-001", "cmd-002", "cmd-004"]  # the verdict would have kept cmd-000/003: not silently
    m = meta(out)
    assert m["skipped"] == {"conflicting labels": 2}
    conflicts = {c["command_id"]: c for c in m["label_conflicts"]}
    assert set(conflicts) == {"cmd-000", "cmd-003"}
    assert conflicts["cmd-000"]["resolution"] == "left out"
    assert [(l["true_action"], l["effect_happened"], l["annotator"]) for l in conflicts["cmd-000"]["labels"]] == [
        ("close", True, "ann"), ("none", False, "bob")]
    assert all(l["stamp_ns"] == 5000 * 10**9 and l["received_ns"] > 0 for l in conflicts["cmd-000"]["labels"])
    assert "2 command(s) with conflicting labels" in printed
    assert "'cmd-000' (left out): close effect_happened=True by ann" in printed and "none effect_happened=False by bob" in printed

    latest = tmp_path / "latest"
    assert cde_main(["data", "import", str(root), "--out", str(latest), "--no-progress",
                     "--label-conflicts", "latest"]) == 0
    rows = {r.id: r for r in read_manifest(latest)}
    assert set(rows) == {f"cmd-{i:03d}" for i in range(5)}
    assert (rows["cmd-000"].action, rows["cmd-003"].object) == ("none", "box")  # the latest labels
    assert {c["command_id"]: c["resolution"] for c in meta(latest)["label_conflicts"]} == {
        "cmd-000": "latest label kept", "cmd-003": "latest label kept"}
    assert "latest label kept" in capsys.readouterr().out


# ---------------------------------------------------------------- scale: progress, streaming
def test_progress_bar_and_no_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = recording(tmp_path / "rec", range(2))
    assert cde_main(["data", "import", str(root), "--out", str(tmp_path / "a")]) == 0
    assert "import pass 2/2" in capsys.readouterr().err
    assert cde_main(["data", "import", str(root), "--out", str(tmp_path / "b"), "--no-progress"]) == 0
    assert "import pass" not in capsys.readouterr().err


def test_pass_2_holds_one_episode_of_pixels_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Structural, not timed: when pass 2 reads an episode's frames, no earlier episode's pixels are
    alive any more (an import that gathered all frames before writing would fail here)."""
    root = recording(tmp_path / "rec", range(6))
    real = bag_import.read_frames
    alive: list[weakref.ref] = []
    calls = [0]

    def read_frames(path: Path) -> dict[str, np.ndarray]:
        calls[0] += 1
        assert [ref for ref in alive if ref() is not None] == [], f"read {calls[0]}: earlier pixels still held"
        frames = real(path)
        alive.extend(weakref.ref(pixels) for pixels in frames.values())
        return frames

    monkeypatch.setattr(bag_import, "read_frames", read_frames)
    summary = import_bags([root], tmp_path / "dataset")
    assert calls[0] == summary.pairs == 6
