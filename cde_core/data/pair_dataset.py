"""A torch Dataset over one split/role of a pair manifest, and a class-balanced sampler for it.

Pairs go through `cde_core.robot_mask.mask_pair` and `cde_core.preprocessing.preprocess_rgb`, the functions
every runtime and the node use, so training sees exactly what the deployed model will see.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from cde_core.data.manifest import ROLES, PairRecord, read_manifest
from cde_core.preprocessing import Preprocessing, preprocess_rgb
from cde_core.robot_mask import NEARLY_ALL_MASKED, RobotMaskError, mask_pair, union_coverage

_LOG = logging.getLogger(__name__)

UNKNOWN_OBJECT = -1


class PairDecodeError(RuntimeError):
    """An image of a pair could not be read (names the pair and file)."""


def vocabulary(records: Sequence[PairRecord], field: str) -> list[str]:
    """Sorted, stable class (or object) names over all records, whatever the split.

    Taken over every row (not only the training role) so a held-out action or object keeps its index."""
    return sorted({getattr(r, field) for r in records})


def load_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def load_mask(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("L"))


def mostly_masked(root: str | Path, records: Sequence[PairRecord], size: int) -> dict[str, float]:
    """id -> robot coverage for the pairs whose two masks together cover more than NEARLY_ALL_MASKED of the
    model frame: with robot_mask "union" nothing is left to compare (the node calls such a command UNCERTAIN),
    so training leaves them out and says so instead of stopping at the first one. Unreadable or missing masks
    are not judged here: the dataset's own read names them."""
    left: dict[str, float] = {}
    for record in records:
        if not record.before_mask or not record.after_mask:
            continue
        try:
            coverage = union_coverage(load_mask(Path(root) / record.before_mask),
                                      load_mask(Path(root) / record.after_mask), size)
        except (OSError, ValueError):
            continue
        if coverage > NEARLY_ALL_MASKED:
            left[record.id] = coverage
    return left


def usable_records(root: str | Path, records: Sequence[PairRecord],
                   preprocessing: Preprocessing) -> tuple[list[PairRecord], dict[str, float]]:
    """The records a model with this preprocessing can compare, and {id: coverage} of those it cannot
    (`mostly_masked`; none without robot masks). Training, evaluation, calibration and the experiment's
    diagnostics all leave the same pairs out, and report them."""
    if preprocessing.robot_mask == "none":
        return list(records), {}
    left = mostly_masked(root, records, preprocessing.img_size)
    if left:
        _LOG.warning("%d pair(s) left out: the robot covers > %.0f%% of both frames (e.g. %s, %.0f%%)", len(left),
                     100 * NEARLY_ALL_MASKED, next(iter(left)), 100 * next(iter(left.values())))
    return [r for r in records if r.id not in left], left


class PairDataset(Dataset):
    """Items: (before [3,S,S] float32, after [3,S,S] float32, action index, object index, patch_valid [N]).

    `grid` is the model's patch grid: with `preprocessing.robot_mask` "union" the pair's robot masks are
    applied (union filled, mostly-masked patches get patch_valid 0); otherwise patch_valid is all ones.
    Objects outside `objects` get index -1 (only the ICM critic reads it, and training builds its
    object list from the whole manifest). Preprocessed tensors are cached in memory on first use when
    `cache` is on (benchmark sets are a few thousand small pairs)."""

    def __init__(self, root: str | Path, records: Sequence[PairRecord], classes: Sequence[str],
                 objects: Sequence[str], preprocessing: Preprocessing, cache: bool = True,
                 grid: tuple[int, int] = (1, 1)) -> None:
        self.root = Path(root)
        self.records = list(records)
        self.classes = list(classes)
        self.objects = list(objects)
        self.class_index = {c: i for i, c in enumerate(self.classes)}
        self.object_index = {o: i for i, o in enumerate(self.objects)}
        self.preprocessing = preprocessing
        self.grid = (int(grid[0]), int(grid[1]))
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = {} if cache else None
        unknown = {r.action for r in self.records} - set(self.class_index)
        if unknown:
            raise ValueError(f"actions {sorted(unknown)} are not in the class list {self.classes}")
        if preprocessing.robot_mask != "none":
            unmasked = [r.id for r in self.records if not r.before_mask]
            if unmasked:
                raise ValueError(f"robot_mask {preprocessing.robot_mask!r} needs robot masks, but {len(unmasked)} "
                                 f"pair(s) have none (e.g. {unmasked[0]!r}); regenerate with `cde sim generate` "
                                 "or train with data.robot_mask=none")

    @classmethod
    def from_manifest(cls, root: str | Path, split: str, role: str, preprocessing: Preprocessing,
                      classes: Sequence[str] | None = None, objects: Sequence[str] | None = None,
                      cache: bool = True, grid: tuple[int, int] = (1, 1)) -> "PairDataset":
        """The pairs whose `splits[split] == role`; vocabularies default to the whole manifest's."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        records = read_manifest(root)
        subset = [r for r in records if r.role(split) == role]
        return cls(root, subset, classes if classes is not None else vocabulary(records, "action"),
                   objects if objects is not None else vocabulary(records, "object"), preprocessing, cache, grid)

    def __len__(self) -> int:
        return len(self.records)

    def _read(self, index: int, rel: str, reader: Any) -> np.ndarray:
        path = self.root / rel
        try:
            return reader(path)
        except (OSError, ValueError) as exc:  # PIL's UnidentifiedImageError is an OSError
            raise PairDecodeError(f"pair {self.records[index].id!r} (row #{index}): cannot read {path}: {exc}") from exc

    def _pair(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        record, prep = self.records[index], self.preprocessing
        before, after = self._read(index, record.before, load_rgb), self._read(index, record.after, load_rgb)
        masks = (None, None)
        if prep.robot_mask != "none":
            masks = (self._read(index, record.before_mask, load_mask), self._read(index, record.after_mask, load_mask))
        try:
            pair = mask_pair(before, after, masks[0], masks[1], prep.img_size, prep.mean, self.grid, prep.robot_mask)
        except (RobotMaskError, ValueError) as exc:
            raise PairDecodeError(f"pair {record.id!r} (row #{index}): {exc}") from exc
        return (torch.from_numpy(preprocess_rgb(pair.before, prep)), torch.from_numpy(preprocess_rgb(pair.after, prep)),
                torch.from_numpy(pair.patch_valid))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int, int, torch.Tensor]:
        record = self.records[index]
        if self._cache is not None and index in self._cache:
            before, after, valid = self._cache[index]
        else:
            before, after, valid = self._pair(index)
            if self._cache is not None:
                self._cache[index] = (before, after, valid)
        return (before, after, self.class_index[record.action], self.object_index.get(record.object, UNKNOWN_OBJECT),
                valid)

    def labels(self) -> list[int]:
        return [self.class_index[r.action] for r in self.records]


class ClassBalancedSampler(Sampler[int]):
    """Draws indices with replacement, each class equally likely; shards across DDP ranks.

    Every rank draws the same seeded sequence for an epoch (`set_epoch`) and keeps every
    `num_replicas`-th index from `rank`, so ranks see disjoint draws, like DistributedSampler."""

    def __init__(self, labels: Sequence[int], num_samples: int | None = None, seed: int = 0,
                 num_replicas: int = 1, rank: int = 0) -> None:
        if not labels:
            raise ValueError("ClassBalancedSampler needs at least one labelled item")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside [0, {num_replicas})")
        counts = np.bincount(np.asarray(labels, dtype=np.int64))
        self.weights = torch.tensor([1.0 / counts[label] for label in labels], dtype=torch.float64)
        total = num_samples if num_samples is not None else len(labels)
        self.num_samples = math.ceil(total / num_replicas)
        self.seed, self.num_replicas, self.rank, self.epoch = seed, num_replicas, rank, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        draws = torch.multinomial(self.weights, self.num_samples * self.num_replicas, replacement=True,
                                  generator=generator)
        return iter(draws[self.rank::self.num_replicas].tolist())
