"""Recorded episode bags -> a pair manifest (the simulator's format), with rosbags only (no ROS needed).

Input: bags written by cde_ros's EpisodeRecorder (rosbag2 directories of MCAP files, one episode or a
batch of labels per file, `custom_data["cde.layout"] == "cde-episodes/1"`), or directories holding
them. Only the files a bag's metadata.yaml lists are read (a kill -9 can leave unlisted ones). Topics
the import does not know are ignored, so a later recorder's additions do not break it.

Robot self-masks (`/cde/episode/{before,after}_mask`, mono8 Image, optional): when an episode has both,
they become `images/<stem>_{before,after}_mask.png` (mono, values as recorded) and the record's
`before_mask`/`after_mask`. A mask pair that cannot be used (a mask of another size than its frame, an
encoding other than mono8/8UC1, only one of the two) is left out with its reason counted in
`masks_skipped`; the pair itself is still imported, without masks.

The training label of an episode (`action`, what the world underwent), in this order:
  1. labelled (EpisodeLabel for its command id; the latest one received by the recorder wins):
     `true_action` if set; if empty and `effect_happened` is true, the commanded action (the operator
     confirms the command); if empty and false, skipped (say what happened instead, e.g. "none").
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
import random
import re
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from cde_core.data.manifest import NO_CHANGE, PairRecord, write_manifest
from cde_core.data.splits import IID_FRACTIONS
from cde_core.robot_mask import MASK_ENCODINGS

_log = logging.getLogger(__name__)

LAYOUT = "cde-episodes/1"
TOPIC_PREFIX = "/cde/episode/"
FRAME_TOPICS = {"before": ("/cde/episode/before", "/cde/episode/before/compressed"),
                "after": ("/cde/episode/after", "/cde/episode/after/compressed")}
MASK_TOPICS = {"before": "/cde/episode/before_mask", "after": "/cde/episode/after_mask"}
_EVENT_TOPICS = tuple(TOPIC_PREFIX + name for name in ("command", "recognition", "verification", "label"))
VERDICT_SUCCEEDED = 0
PHASE_STARTED = 0

# encoding -> (channels, channel order to RGB or None for grey)
_RAW_ENCODINGS: dict[str, tuple[int, tuple[int, ...] | None]] = {
    "rgb8": (3, (0, 1, 2)), "bgr8": (3, (2, 1, 0)), "rgba8": (4, (0, 1, 2)), "bgra8": (4, (2, 1, 0)),
    "mono8": (1, None), "8UC1": (1, None), "8UC3": (3, (2, 1, 0)),
}


class BagImportError(ValueError):
    """A path is not a readable episode bag (the message says which and why)."""


@dataclass(frozen=True)
class LabelPolicy:
    """Which unlabelled episodes become training pairs (see the module docstring)."""

    weak_labels: bool = False
    min_confidence: float = 0.0
    labelled_only: bool = False


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


@dataclass(frozen=True)
class LabelInfo:
    """One EpisodeLabel as recorded; `received` orders labels (the recorder logs them at receipt)."""

    command_id: str
    true_action: str
    object: str
    effect_happened: bool
    annotator: str
    received: tuple[int, int]  # (log time ns, read order) - later wins


@dataclass
class ImportSummary:
    """What the import did; also written to generation.json."""

    bags: list[str] = field(default_factory=list)
    episodes: int = 0
    labels: int = 0
    pairs: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    masked_pairs: int = 0  # pairs imported with their robot masks
    masks_skipped: dict[str, int] = field(default_factory=dict)  # pairs imported without them, and why
    label_origin: dict[str, str] = field(default_factory=dict)


def find_bags(paths: Iterable[str | Path]) -> list[Path]:
    """Bag directories (holding metadata.yaml) named directly or found under the given directories."""
    bags: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if (path / "metadata.yaml").is_file():
            bags.append(path)
            continue
        if not path.is_dir():
            raise BagImportError(f"{path}: not a bag directory (no metadata.yaml) nor a directory of bags")
        found = sorted(p.parent for p in path.rglob("metadata.yaml")
                       if not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not found:
            raise BagImportError(f"{path}: no bags found below it (a bag is a directory with metadata.yaml)")
        bags.extend(found)
    return list(dict.fromkeys(bags))


def bag_files(bag: Path) -> list[Path]:
    """The storage files metadata.yaml lists, in order; refuses bags of another layout."""
    from ruamel.yaml import YAML, YAMLError

    try:
        info = YAML(typ="safe").load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    except (OSError, YAMLError, KeyError, TypeError) as exc:
        raise BagImportError(f"{bag}/metadata.yaml is not rosbag2 metadata: {exc}") from exc
    layout = (info.get("custom_data") or {}).get("cde.layout")
    if layout != LAYOUT:
        raise BagImportError(f"{bag}: not an episode bag of cde_ros's recorder (custom_data cde.layout is "
                             f"{layout!r}, expected {LAYOUT!r})")
    if info.get("storage_identifier") != "mcap":
        raise BagImportError(f"{bag}: storage {info.get('storage_identifier')!r}, expected mcap")
    return [bag / Path(name).name for name in info["relative_file_paths"]]


def _stamp_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def read_episode_file(bag: Path, path: Path, order_start: int) -> tuple[EpisodeInfo | None, list[LabelInfo]]:
    """Pass 1 over one file: the episode's commands, verdict and recognition, and any labels."""
    from rosbags.highlevel import AnyReader

    episode: EpisodeInfo | None = None
    labels: list[LabelInfo] = []
    frames_seen: set[str] = set()
    masks_seen: set[str] = set()
    camera = ""
    frame_topics = {t: role for role, pair in FRAME_TOPICS.items() for t in pair}
    mask_topics = {t: role for role, t in MASK_TOPICS.items()}
    with AnyReader([path]) as reader:
        wanted = [c for c in reader.connections if c.topic in frame_topics or c.topic in mask_topics
                  or c.topic in _EVENT_TOPICS]
        for conn, log_ns, raw in reader.messages(connections=wanted) if wanted else ():  # [] reads all
            if conn.topic in frame_topics:  # pixels are decoded in pass 2, for kept episodes only
                frames_seen.add(frame_topics[conn.topic])
                continue
            if conn.topic in mask_topics:
                masks_seen.add(mask_topics[conn.topic])
                continue
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic.endswith("/label"):
                labels.append(LabelInfo(msg.command_id.strip(), msg.true_action.strip(), msg.object.strip(),
                                        bool(msg.effect_happened), msg.annotator,
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


def latest_labels(labels: Iterable[LabelInfo]) -> dict[str, LabelInfo]:
    """Per command id, the label the recorder received last."""
    latest: dict[str, LabelInfo] = {}
    for label in labels:
        if label.command_id and (label.command_id not in latest or label.received > latest[label.command_id].received):
            latest[label.command_id] = label
    return latest


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
    from rosbags.highlevel import AnyReader

    frames: dict[str, np.ndarray] = {}
    with AnyReader([path]) as reader:
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
    from rosbags.highlevel import AnyReader

    masks: dict[str, np.ndarray] = {}
    with AnyReader([path]) as reader:
        for role, topic in MASK_TOPICS.items():
            wanted = [c for c in reader.connections if c.topic == topic]
            if not wanted:  # messages(connections=[]) would read every topic
                continue
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


def import_bags(paths: Iterable[str | Path], out: str | Path, policy: LabelPolicy = LabelPolicy(),
                seed: int = 0, folds: int = 1) -> ImportSummary:
    """Bags -> `out`/manifest.jsonl + images/*.png + generation.json; returns what was done."""
    from PIL import Image
    from rosbags.highlevel import AnyReaderError

    from cde_core.sim.tasks import ANTONYMS

    out = Path(out)
    summary = ImportSummary()
    skipped: Counter[str] = Counter()
    masks_skipped: Counter[str] = Counter()
    episodes: list[EpisodeInfo] = []
    labels: list[LabelInfo] = []
    for bag in find_bags(paths):
        summary.bags.append(str(bag))
        for path in bag_files(bag):
            try:
                episode, found = read_episode_file(bag, path, len(labels))
            except (AnyReaderError, OSError) as exc:
                raise BagImportError(f"{path}: cannot read ({exc})") from exc
            labels.extend(found)
            if episode is not None:
                episodes.append(episode)
    summary.episodes, summary.labels = len(episodes), len(labels)
    label_of = latest_labels(labels)
    (out / "images").mkdir(parents=True, exist_ok=True)
    records: list[PairRecord] = []
    seen: set[str] = set()
    for episode in episodes:
        if episode.command_id in seen:
            _log.warning(f"{episode.file}: command id {episode.command_id!r} recorded twice; keeping the first")
            skipped["duplicate command id"] += 1
            continue
        seen.add(episode.command_id)
        label = label_of.get(episode.command_id)
        decision = decide_label(episode, label, policy)
        if isinstance(decision, str):
            skipped[decision] += 1
            continue
        if not episode.has_frames:
            skipped["no before/after frames"] += 1
            continue
        try:
            frames = read_frames(episode.file)
        except (BagImportError, OSError) as exc:  # PIL's UnidentifiedImageError is an OSError
            _log.warning(f"{episode.file}: {exc}")
            skipped["frames not decodable"] += 1
            continue
        if set(frames) != {"before", "after"}:
            skipped["no before/after frames"] += 1
            continue
        action, happened, origin = decision
        stem = _file_stem(episode.command_id)
        for role, rgb in frames.items():
            Image.fromarray(rgb).save(out / "images" / f"{stem}_{role}.png")
        mask_paths = {"before": "", "after": ""}
        if episode.masks:
            try:
                masks = read_masks(episode.file, frames)
            except MaskSkipped as exc:
                _log.warning(f"{episode.file}: episode {episode.command_id!r} imported without masks ({exc})")
                masks_skipped[exc.reason] += 1
            except OSError as exc:
                _log.warning(f"{episode.file}: episode {episode.command_id!r} imported without masks ({exc})")
                masks_skipped["mask not decodable"] += 1
            else:
                for role, mask in masks.items():
                    mask_paths[role] = f"images/{stem}_{role}_mask.png"
                    Image.fromarray(mask).save(out / mask_paths[role])  # 2-D uint8: mode L
                summary.masked_pairs += 1
        obj = (label.object if label is not None and label.object else episode.object) or "unknown"
        records.append(PairRecord(
            id=episode.command_id, before=f"images/{stem}_before.png", after=f"images/{stem}_after.png",
            action=action, object=obj, antonym=ANTONYMS.get(action), commanded_action=episode.commanded_action,
            effect_happened=bool(happened), kind=_kind(action, episode.commanded_action, happened), source="bag",
            task=f"{obj}-{episode.commanded_action}", seed=0, camera=episode.camera,
            before_mask=mask_paths["before"], after_mask=mask_paths["after"]))
        summary.label_origin[episode.command_id] = origin
    assign_iid_splits(records, seed, folds)
    write_manifest(out, records)
    summary.pairs, summary.skipped, summary.masks_skipped = len(records), dict(skipped), dict(masks_skipped)
    meta = {"source": "bag", "policy": asdict(policy), "split_seed": seed, "folds": folds, **asdict(summary)}
    (out / "generation.json").write_text(json.dumps(meta, indent=2))
    _log.info(f"{summary.pairs} pairs from {summary.episodes} episodes ({summary.labels} labels) in "
              f"{len(summary.bags)} bag(s); skipped: {dict(skipped) or 'none'}; {summary.masked_pairs} with robot "
              f"masks, masks left out: {dict(masks_skipped) or 'none'}")
    return summary
