"""Recorded episode bags -> a pair manifest (the simulator's format), with rosbags only (no ROS needed).

Input: bags written by cde_ros's EpisodeRecorder (rosbag2 directories of MCAP files, one episode or a
batch of labels per file, `custom_data["cde.layout"] == "cde-episodes/1"`), or directories holding
them. Topics the import does not know are ignored, so a later recorder's additions do not break it.
What a kill -9 leaves (a file not listed in metadata.yaml, no metadata.yaml, a truncated file) is
judged file by file (cde_core/data/bag_files.py): complete files are imported, the rest skipped, and
both listed in generation.json (`file_problems`, counted in `files_skipped` / `files_recovered`).

The output is a function of the set of bags and the options, nothing else: rows are sorted by command
id, bags by path, so re-importing is byte-identical, importing A then A+B equals A+B at once, and the
order the bags are named in does not matter. Each import rewrites the whole dataset: images no row uses
any more are deleted, so pass every bag of the dataset (old and new) to grow it. The import refuses an
output directory holding a dataset it did not write, rather than deleting its images.

Memory: pass 1 reads every file's events and labels (no pixels), pass 2 decodes, writes and forgets one
episode's pixels at a time; what stays in memory is a few hundred bytes per episode.

Robot self-masks (`/cde/episode/{before,after}_mask`, mono8 Image, optional): when an episode has both,
they become `images/<stem>_{before,after}_mask.png` (mono, values as recorded) and the record's
`before_mask`/`after_mask`. A mask pair that cannot be used (a mask of another size than its frame, an
encoding other than mono8/8UC1, only one of the two) is left out with its reason counted in
`masks_skipped`; the pair itself is still imported, without masks.

The training label of an episode (`action`, what the world underwent), in this order:
  1. labelled (EpisodeLabels for its command id, matched in any bag of the import; the latest one
     wins when they agree, see cde_core/data/bag_labels.py for conflicts): `true_action` if set; if
     empty and `effect_happened` is true, the commanded action (the operator confirms the command); if
     empty and false, skipped (say what happened instead, e.g. "none"). Labels that disagree are
     reported in `label_conflicts` and, by default, the episode is left out (`label_conflicts="latest"`:
     the latest wins, still reported).
  2. unlabelled, verdict SUCCEEDED: the commanded action (the command's intent and the model agree).
  3. unlabelled, any other verdict, with `weak_labels`: the recognised action, if its confidence is
     at least `min_confidence` (a pseudo-label from the model: off by default, it teaches the model
     its own mistakes).
  4. otherwise skipped. `labelled_only` keeps rule 1 only.
`effect_happened`: the label's, else whether the recognised/verified action is the commanded one.
`kind`: "no_change" when a "none" command left the world unchanged, "effect" when the commanded effect
happened, else "failed" - the simulator's convention. The rule each row came from is listed per id in
generation.json (`label_origin`), with the counts of skipped episodes and why.
"""
from __future__ import annotations

import io
import json
import logging
import os
import random
import re
import struct
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from cde_core.data.bag_files import LAYOUT, BagImportError, EpisodeFile, FileProblem, bag_files, find_bags, mcap_problem
from cde_core.data.bag_labels import CONFLICT_RULES, LabelConflict, LabelInfo, group_labels, resolve_labels
from cde_core.data.bag_reader import EpisodeFileReader, UnreadableFileError
from cde_core.data.manifest import MANIFEST_NAME, NO_CHANGE, PairRecord, write_manifest
from cde_core.data.splits import IID_FRACTIONS
from cde_core.robot_mask import MASK_ENCODINGS

__all__ = ["LAYOUT", "BagImportError", "LabelInfo", "LabelPolicy", "EpisodeInfo", "ImportSummary", "find_bags",
           "bag_files", "read_episode_file", "decide_label", "message_to_rgb", "read_frames", "read_masks",
           "import_bags"]

_log = logging.getLogger(__name__)

TOPIC_PREFIX = "/cde/episode/"
FRAME_TOPICS = {"before": ("/cde/episode/before", "/cde/episode/before/compressed"),
                "after": ("/cde/episode/after", "/cde/episode/after/compressed")}
MASK_TOPICS = {"before": "/cde/episode/before_mask", "after": "/cde/episode/after_mask"}
_EVENT_TOPICS = tuple(TOPIC_PREFIX + name for name in ("command", "recognition", "verification", "label"))
VERDICT_SUCCEEDED = 0
PHASE_STARTED = 0
_OWNER_MARK = ".cde_bag_import"  # in the output directory: its images/ are this import's to replace
_REPORTED_LINES = 20  # conflicts / file problems logged one per line, then "... and N more"

# encoding -> (channels, channel order to RGB or None for grey)
_RAW_ENCODINGS: dict[str, tuple[int, tuple[int, ...] | None]] = {
    "rgb8": (3, (0, 1, 2)), "bgr8": (3, (2, 1, 0)), "rgba8": (4, (0, 1, 2)), "bgra8": (4, (2, 1, 0)),
    "mono8": (1, None), "8UC1": (1, None), "8UC3": (3, (2, 1, 0)),
}


@dataclass(frozen=True)
class LabelPolicy:
    """Which episodes become training pairs (see the module docstring); `label_conflicts`: "skip" leaves
    an episode whose labels disagree out, "latest" keeps the latest label (both report the conflict)."""

    weak_labels: bool = False
    min_confidence: float = 0.0
    labelled_only: bool = False
    label_conflicts: str = "skip"

    def __post_init__(self) -> None:
        if self.label_conflicts not in CONFLICT_RULES:
            raise ValueError(f"label_conflicts must be one of {CONFLICT_RULES}, got {self.label_conflicts!r}")


@dataclass
class EpisodeInfo:
    """Everything but the pixels of one recorded episode (pixels are read in a second pass)."""

    command_id: str
    bag: Path
    file: Path
    commanded_action: str = ""
    object: str = ""
    camera: str = ""
    has_frames: bool = False
    masks: tuple[str, ...] = ()  # roles ("before", "after") with a recorded mask
    verdict: int | None = None
    recognised: str = ""
    recognised_confidence: float = 0.0


@dataclass
class ImportSummary:
    """What the import did; also written to generation.json (deterministic: no times, no counts that
    depend on what the output directory held before)."""

    bags: list[str] = field(default_factory=list)
    files: int = 0  # storage files read
    episodes: int = 0
    labels: int = 0
    labels_unmatched: int = 0  # labels for a command id no imported bag has an episode of
    pairs: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    masked_pairs: int = 0  # pairs imported with their robot masks
    masks_skipped: dict[str, int] = field(default_factory=dict)  # pairs imported without them, and why
    files_skipped: dict[str, int] = field(default_factory=dict)  # damaged/foreign files, by kind of problem
    files_recovered: dict[str, int] = field(default_factory=dict)  # complete files read although unlisted
    file_problems: list[dict[str, str]] = field(default_factory=list)  # each skipped/recovered file
    label_conflicts: list[dict[str, Any]] = field(default_factory=list)
    label_origin: dict[str, str] = field(default_factory=dict)


def _stamp_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def read_episode_file(bag: Path, path: Path, order_start: int) -> tuple[EpisodeInfo | None, list[LabelInfo]]:
    """Pass 1 over one file: the episode's commands, verdict and recognition, and any labels."""
    episode: EpisodeInfo | None = None
    labels: list[LabelInfo] = []
    frames_seen: set[str] = set()
    masks_seen: set[str] = set()
    camera = ""
    frame_topics = {t: role for role, pair in FRAME_TOPICS.items() for t in pair}
    mask_topics = {t: role for role, t in MASK_TOPICS.items()}
    with EpisodeFileReader(path) as reader:
        wanted = [c for c in reader.connections if c.topic in frame_topics or c.topic in mask_topics
                  or c.topic in _EVENT_TOPICS]
        for conn, log_ns, raw in reader.messages(connections=wanted):
            if conn.topic in frame_topics:  # pixels are decoded in pass 2, for kept episodes only
                frames_seen.add(frame_topics[conn.topic])
                continue
            if conn.topic in mask_topics:
                masks_seen.add(mask_topics[conn.topic])
                continue
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic.endswith("/label"):
                labels.append(LabelInfo(msg.command_id.strip(), msg.true_action.strip(), msg.object.strip(),
                                        bool(msg.effect_happened), msg.annotator, _stamp_ns(msg.header.stamp),
                                        (log_ns, order_start + len(labels))))
                continue
            if episode is None:
                episode = EpisodeInfo(command_id=msg.command_id, bag=bag, file=path)
            if conn.topic.endswith("/command"):
                if int(msg.phase) == PHASE_STARTED or not episode.commanded_action:
                    episode.commanded_action = msg.action or episode.commanded_action
                    episode.object = msg.object or episode.object
            elif conn.topic.endswith("/verification"):
                episode.verdict = int(msg.verdict)
                episode.commanded_action = episode.commanded_action or msg.commanded_action
                camera = camera or msg.header.frame_id
            elif conn.topic.endswith("/recognition"):
                episode.recognised, episode.recognised_confidence = msg.action, float(msg.confidence)
                camera = msg.header.frame_id or camera  # the after frame's frame_id
    if episode is not None:
        episode.has_frames = frames_seen == set(FRAME_TOPICS)
        episode.masks = tuple(sorted(masks_seen))
        episode.camera = camera
    return episode, labels


def decide_label(episode: EpisodeInfo, label: LabelInfo | None, policy: LabelPolicy) -> tuple[str, bool, str] | str:
    """(action, effect_happened, origin) by the rule in the module docstring, or why it is skipped."""
    commanded = episode.commanded_action
    if label is not None:
        if label.true_action:
            return label.true_action, label.effect_happened, "label"
        if label.effect_happened and commanded:
            return commanded, True, "label"
        return "label without true_action and effect_happened false (unknown outcome)"
    if policy.labelled_only:
        return "unlabelled"
    if episode.verdict == VERDICT_SUCCEEDED and commanded:
        return commanded, commanded != NO_CHANGE, "verdict"
    if policy.weak_labels and episode.recognised:
        if episode.recognised_confidence < policy.min_confidence:
            return "recognised action below min_confidence"
        happened = episode.recognised == commanded and commanded != NO_CHANGE
        return episode.recognised, happened, "recognised"
    return "unlabelled and not verified SUCCEEDED (see --weak-labels)"


def _raw_pixels(msg: Any, channels: int) -> np.ndarray:
    """HxWxC uint8 pixels of a raw Image with `channels` 8-bit channels, row padding (step) removed."""
    data = np.asarray(msg.data, dtype=np.uint8)
    row = msg.width * channels
    if msg.step < row or data.size < msg.step * (msg.height - 1) + row:
        raise BagImportError(f"raw image {msg.width}x{msg.height} {msg.encoding}: step {msg.step} / "
                             f"{data.size} bytes do not match")
    padded = np.zeros(msg.step * msg.height, np.uint8)  # the last row's padding may be absent
    count = min(data.size, padded.size)
    padded[:count] = data[:count]
    return padded.reshape(msg.height, msg.step)[:, :row].reshape(msg.height, msg.width, channels)


def message_to_rgb(msg: Any) -> np.ndarray:
    """A deserialised sensor_msgs Image (8-bit encodings) or CompressedImage -> HxWx3 uint8 RGB."""
    if hasattr(msg, "format"):
        from PIL import Image

        with Image.open(io.BytesIO(bytes(msg.data))) as img:
            return np.asarray(img.convert("RGB"))
    if msg.encoding not in _RAW_ENCODINGS:
        raise BagImportError(f"raw image encoding {msg.encoding!r} is not supported by the import "
                             f"({', '.join(_RAW_ENCODINGS)}); record with recording_image_format png")
    channels, order = _RAW_ENCODINGS[msg.encoding]
    pixels = _raw_pixels(msg, channels)
    if order is None:
        return np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(pixels[:, :, list(order)])


def read_frames(path: Path) -> dict[str, np.ndarray]:
    """Pass 2 over one episode file: the before and after frames as RGB."""
    frames: dict[str, np.ndarray] = {}
    with EpisodeFileReader(path) as reader:
        for role, topics in FRAME_TOPICS.items():
            wanted = [c for c in reader.connections if c.topic in topics]
            for conn, _, raw in reader.messages(connections=wanted):
                frames[role] = message_to_rgb(reader.deserialize(raw, conn.msgtype))
    return frames


class MaskSkipped(BagImportError):
    """A recorded mask pair is unusable; `reason` is the summary's count key (the pair is kept, unmasked)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def mask_to_array(msg: Any) -> np.ndarray:
    """A deserialised mono8/8UC1 Image -> HxW uint8, values untouched (255 = robot)."""
    if getattr(msg, "encoding", None) not in MASK_ENCODINGS:
        raise MaskSkipped("mask encoding not mono8/8UC1",
                          f"{getattr(msg, 'encoding', type(msg).__name__)!r}")
    try:
        return _raw_pixels(msg, 1)[:, :, 0]
    except BagImportError as exc:
        raise MaskSkipped("mask not decodable", str(exc)) from exc


def read_masks(path: Path, frames: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Pass 2 for the masks of one episode file: {"before", "after"} -> HxW uint8, each the size of its
    frame; raises MaskSkipped when the pair cannot be used (only both masks, or none, are imported)."""
    masks: dict[str, np.ndarray] = {}
    with EpisodeFileReader(path) as reader:
        for role, topic in MASK_TOPICS.items():
            wanted = [c for c in reader.connections if c.topic == topic]
            for conn, _, raw in reader.messages(connections=wanted):
                masks[role] = mask_to_array(reader.deserialize(raw, conn.msgtype))
    if set(masks) != set(MASK_TOPICS):
        raise MaskSkipped("only one of the before/after masks", f"recorded: {sorted(masks)}")
    for role, mask in masks.items():
        if mask.shape != frames[role].shape[:2]:
            raise MaskSkipped("mask size differs from its frame",
                              f"{role} mask {mask.shape[1]}x{mask.shape[0]}, frame "
                              f"{frames[role].shape[1]}x{frames[role].shape[0]}")
    return masks


def _file_stem(command_id: str) -> str:
    """A file name for a command id (ids may hold '/', ':' ...); the CRC keeps sanitised ids apart."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", command_id)[:80]
    return f"{safe}-{zlib.crc32(command_id.encode()):08x}"


def _kind(action: str, commanded: str, happened: bool) -> str:
    if commanded == NO_CHANGE and action == NO_CHANGE:
        return "no_change"
    return "effect" if happened and action == commanded else "failed"


def assign_iid_splits(records: Sequence[PairRecord], seed: int, folds: int) -> None:
    """iid_<fold>: a seeded 70/15/15 train/val/test shuffle per fold (the same fractions as the sim's)."""
    for fold in range(folds):
        order = list(range(len(records)))
        random.Random(f"bag:{seed}:{fold}").shuffle(order)
        n_train = int(round(IID_FRACTIONS[0] * len(order)))
        n_val = int(round(IID_FRACTIONS[1] * len(order)))
        for rank, index in enumerate(order):
            records[index].splits[f"iid_{fold}"] = ("train" if rank < n_train else
                                                    "val" if rank < n_train + n_val else "test")




# Errors a reader of a file that looks complete (footer present) can still meet in damaged bytes.
_DAMAGED_FILE_ERRORS: tuple[type[BaseException], ...] = (OSError, struct.error, ValueError, IndexError, EOFError)


def _problem_kind(problem: str) -> str:
    """The count key of a file problem: its text before the details in parentheses."""
    return problem.split(" (", 1)[0]


def scan_files(files: Iterable[EpisodeFile], problems: list[FileProblem]
               ) -> Iterator[tuple[EpisodeFile, EpisodeInfo | None, list[LabelInfo]]]:
    """Pass 1, one file at a time: each readable file's episode (if any) and labels. A damaged file is
    appended to `problems` and skipped; the files after it are read as usual."""
    order = 0
    for item in files:
        problem = mcap_problem(item.path, check_layout=bool(item.recovered))
        if problem is None:
            try:
                episode, labels = read_episode_file(item.bag, item.path, order)
            except (UnreadableFileError, *_DAMAGED_FILE_ERRORS) as exc:
                problem = f"unreadable ({type(exc).__name__}: {exc})"
        if problem is not None:
            _log.warning(f"{item.path}: skipped, {problem}")
            problems.append(FileProblem(str(item.path), problem, "skipped"))
            continue
        if item.recovered:
            problems.append(FileProblem(str(item.path), item.recovered, "recovered"))
        order += len(labels)
        yield item, episode, labels


@dataclass
class _PlannedPair:
    """An episode kept after pass 1, with its training label; its pixels are read in pass 2."""

    episode: EpisodeInfo
    action: str
    happened: bool
    origin: str
    object: str


def _save_png(pixels: np.ndarray, path: Path) -> None:
    """Write atomically, so a killed import never leaves a half PNG under a name a manifest uses."""
    from PIL import Image

    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(pixels).save(tmp, format="PNG")  # HxWx3 -> RGB, HxW uint8 -> L
    os.replace(tmp, path)


def write_pair(pair: _PlannedPair, images: Path, masks_skipped: Counter[str]) -> PairRecord | str:
    """Decode one episode's frames (and masks), write its PNGs; its record, or why it is skipped. The
    pixels are locals of this call, so they are freed when it returns."""
    from cde_core.sim.tasks import ANTONYMS

    episode = pair.episode
    try:
        frames = read_frames(episode.file)
    except (BagImportError, *_DAMAGED_FILE_ERRORS) as exc:  # PIL's errors are OSErrors
        _log.warning(f"{episode.file}: {exc}")
        return "frames not decodable"
    if set(frames) != {"before", "after"}:
        return "no before/after frames"
    stem = _file_stem(episode.command_id)
    for role, rgb in frames.items():
        _save_png(rgb, images / f"{stem}_{role}.png")
    mask_paths = {"before": "", "after": ""}
    if episode.masks:
        try:
            masks = read_masks(episode.file, frames)
        except MaskSkipped as exc:
            _log.warning(f"{episode.file}: episode {episode.command_id!r} imported without masks ({exc})")
            masks_skipped[exc.reason] += 1
        except (UnreadableFileError, *_DAMAGED_FILE_ERRORS) as exc:
            _log.warning(f"{episode.file}: episode {episode.command_id!r} imported without masks ({exc})")
            masks_skipped["mask not decodable"] += 1
        else:
            for role, values in masks.items():
                mask_paths[role] = f"images/{stem}_{role}_mask.png"
                _save_png(values, images.parent / mask_paths[role])
    return PairRecord(
        id=episode.command_id, before=f"images/{stem}_before.png", after=f"images/{stem}_after.png",
        action=pair.action, object=pair.object, antonym=ANTONYMS.get(pair.action),
        commanded_action=episode.commanded_action, effect_happened=bool(pair.happened),
        kind=_kind(pair.action, episode.commanded_action, pair.happened), source="bag",
        task=f"{pair.object}-{episode.commanded_action}", seed=0, camera=episode.camera,
        before_mask=mask_paths["before"], after_mask=mask_paths["after"])


def write_pairs(planned: Iterable[_PlannedPair], images: Path, skipped: Counter[str],
                masks_skipped: Counter[str]) -> Iterator[PairRecord]:
    """Pass 2, one episode at a time (write_pair): only the records accumulate, never the pixels, so
    memory does not grow with the number of bags."""
    for pair in planned:
        result = write_pair(pair, images, masks_skipped)
        if isinstance(result, str):
            skipped[result] += 1
        else:
            yield result


def _written_by_import(out: Path) -> bool:
    """Whether generation.json says a bag import wrote `out` (an import from before the ownership mark)."""
    try:
        return json.loads((out / "generation.json").read_text()).get("source") == "bag"
    except (OSError, ValueError, AttributeError):
        return False


def claim_output(out: Path) -> None:
    """Make `out` this import's to rewrite: refuses a directory holding a dataset (or images) it did not
    write, since re-importing deletes images no row uses any more."""
    images = out / "images"
    foreign = (out / MANIFEST_NAME).exists() or (images.is_dir() and any(images.iterdir()))
    if foreign and not (out / _OWNER_MARK).is_file() and not _written_by_import(out):
        raise BagImportError(f"{out} already holds a dataset that `cde data import` did not write; the import "
                             "replaces its images/, so choose a new or empty --out")
    images.mkdir(parents=True, exist_ok=True)
    (out / _OWNER_MARK).write_text("images/ and manifest.jsonl here are rewritten by `cde data import`\n")


def remove_stale_images(out: Path, records: Sequence[PairRecord]) -> int:
    """Delete images/ files no record uses (left by an earlier import of other bags or options, or by a
    killed one); returns how many."""
    used = {Path(path).name for r in records for path in (r.before, r.after, r.before_mask, r.after_mask) if path}
    removed = 0
    for path in (out / "images").iterdir():
        if path.is_file() and path.name not in used and (path.suffix == ".png" or path.name.endswith(".png.tmp")):
            path.unlink()
            removed += 1
    return removed


def _log_capped(lines: Sequence[str]) -> None:
    for line in lines[:_REPORTED_LINES]:
        _log.warning(line)
    if len(lines) > _REPORTED_LINES:
        _log.warning(f"... and {len(lines) - _REPORTED_LINES} more (see generation.json)")


def import_bags(paths: Iterable[str | Path], out: str | Path, policy: LabelPolicy = LabelPolicy(),
                seed: int = 0, folds: int = 1, progress: bool = False) -> ImportSummary:
    """Bags -> `out`/manifest.jsonl + images/*.png + generation.json; returns what was done."""
    from tqdm import tqdm

    out = Path(out)
    bags = find_bags(paths)
    problems: list[FileProblem] = []
    files: list[EpisodeFile] = []
    for bag in bags:  # every bag is checked before anything is written
        found, missing = bag_files(bag)
        files += found
        problems += missing
    claim_output(out)
    summary = ImportSummary(bags=[str(bag) for bag in bags])
    skipped: Counter[str] = Counter()
    masks_skipped: Counter[str] = Counter()
    episodes: dict[str, EpisodeInfo] = {}
    labels: list[LabelInfo] = []
    with tqdm(total=len(files), desc="import pass 1/2 (events)", unit="file", disable=not progress) as bar:
        for item, episode, found in scan_files(files, problems):
            bar.update(1)
            summary.files += 1
            labels += found
            if episode is None:
                continue
            summary.episodes += 1
            if episode.command_id in episodes:
                _log.warning(f"{episode.file}: command id {episode.command_id!r} recorded twice (first in "
                             f"{episodes[episode.command_id].file}); keeping the first")
                skipped["duplicate command id"] += 1
                continue
            episodes[episode.command_id] = episode
    summary.labels = len(labels)
    labels_of = group_labels(labels)
    summary.labels_unmatched = sum(len(group) for cid, group in labels_of.items() if cid not in episodes)
    planned: list[_PlannedPair] = []
    conflicts: list[LabelConflict] = []
    for command_id in sorted(episodes):
        episode = episodes[command_id]
        label, conflict = resolve_labels(labels_of.get(command_id, ()), episode.commanded_action,
                                         policy.label_conflicts)
        if conflict is not None:
            conflicts.append(conflict)
            if label is None:
                skipped["conflicting labels"] += 1
                continue
        decision = decide_label(episode, label, policy)
        if isinstance(decision, str):
            skipped[decision] += 1
            continue
        if not episode.has_frames:
            skipped["no before/after frames"] += 1
            continue
        obj = (label.object if label is not None and label.object else episode.object) or "unknown"
        planned.append(_PlannedPair(episode, *decision, object=obj))
    records: list[PairRecord] = []
    with tqdm(total=len(planned), desc="import pass 2/2 (pixels)", unit="ep", disable=not progress) as bar:
        for record in write_pairs(planned, out / "images", skipped, masks_skipped):
            bar.update(1)
            records.append(record)
            summary.masked_pairs += bool(record.before_mask)
    origin = {pair.episode.command_id: pair.origin for pair in planned}
    summary.label_origin = {r.id: origin[r.id] for r in records}
    assign_iid_splits(records, seed, folds)
    write_manifest(out, records)
    removed = remove_stale_images(out, records)
    summary.pairs, summary.skipped, summary.masks_skipped = len(records), dict(sorted(skipped.items())), dict(
        sorted(masks_skipped.items()))
    summary.file_problems = [asdict(p) for p in problems]
    summary.files_skipped = dict(sorted(Counter(_problem_kind(p.problem) for p in problems
                                                if p.action == "skipped").items()))
    summary.files_recovered = dict(sorted(Counter(p.problem for p in problems if p.action == "recovered").items()))
    summary.label_conflicts = [c.to_report() for c in conflicts]
    meta = {"source": "bag", "policy": asdict(policy), "split_seed": seed, "folds": folds, **asdict(summary)}
    tmp = out / ".generation.json.tmp"
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, out / "generation.json")
    _log_capped([c.describe() for c in conflicts])
    _log.info(f"{summary.pairs} pairs from {summary.episodes} episodes ({summary.labels} labels) in "
              f"{len(summary.bags)} bag(s); skipped: {summary.skipped or 'none'}; {summary.masked_pairs} with robot "
              f"masks, masks left out: {summary.masks_skipped or 'none'}; files skipped: "
              f"{summary.files_skipped or 'none'}, recovered: {summary.files_recovered or 'none'}; "
              f"{removed} stale image(s) removed")
    return summary
