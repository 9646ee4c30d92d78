"""Seeded IID, compositional and systemic splits over pair records (Causal Triplet's rules).

- iid_k: every episode is train/val/test at random (70/15/15), with every (object, action)
  cell keeping at least one training episode.
- comp_k: held-out (object, action) cells go to `ood`. A cell may be held out only if its action has
  an antonym, the antonym cell on the same object stays in training, and both the object and the
  action still appear in training (open(drawer) is held out only if close(drawer) is trained).
- syst_k: held-out object categories go to `ood`; an object may be held out only if each of its
  actions still appears on some training object.
In comp_k and syst_k the pairs that are not held out are split 70/15/15 like iid_k; `val` is IID
validation (checkpoint selection only), `test` the IID test, `ood` the held-out test.

Choices that are not in Causal Triplet:
- Views of one episode (pairs whose ids differ only by the camera name) always share a role, so the
  corner and object-centred views of one rollout never sit on both sides of train/test.
- The no-change class ("none", reach tasks and failed episodes where nothing moved) is never a
  held-out cell (it has no antonym); in syst_k it follows its object like every other pair.
- Failed episodes are split by the cell of what actually happened (their `action`), like any pair:
  a partial drawer opening is an (drawer, open) pair and is held out with that cell.
- Folds prefer cells/objects not held out by earlier folds, so folds differ whenever they can.
"""
from __future__ import annotations

import logging
import random
from collections import defaultdict
from typing import Callable, Sequence

from cde_core.data.manifest import NO_CHANGE, PairRecord

_LOG = logging.getLogger(__name__)
IID_FRACTIONS = (0.70, 0.15, 0.15)
HELD_OUT_FRACTION = 0.25


class SplitError(ValueError):
    """The records cannot support the requested split (e.g. no cell satisfies the hold-out rules)."""


def episode_key(record: PairRecord) -> str:
    """Pairs rendered from one episode by several cameras share this key (the id minus the camera)."""
    if record.camera and record.id.endswith(record.camera) and len(record.id) > len(record.camera):
        return f"{record.source}|{record.id[: -len(record.camera)]}"
    return f"{record.source}|{record.id}"


def _assign_iid(records: Sequence[PairRecord], name: str, rng: random.Random,
                group_of: Callable[[PairRecord], str]) -> None:
    """70/15/15 by episode; a cell whose episodes all fell in val/test gets one moved to train."""
    groups: dict[str, list[PairRecord]] = defaultdict(list)
    for record in records:
        groups[group_of(record)].append(record)
    order = sorted(groups)
    rng.shuffle(order)
    n_train = int(round(IID_FRACTIONS[0] * len(order)))
    n_val = int(round(IID_FRACTIONS[1] * len(order)))
    role_of = {key: "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
               for rank, key in enumerate(order)}
    trained = {groups[key][0].cell for key in order if role_of[key] == "train"}
    for key in order:  # seeded order: the first untrained episode of each cell moves
        cell = groups[key][0].cell
        if cell not in trained:
            role_of[key] = "train"
            trained.add(cell)
    for key in order:
        for record in groups[key]:
            record.splits[name] = role_of[key]


def _antonyms(records: Sequence[PairRecord]) -> dict[str, str]:
    return {r.action: r.antonym for r in records if r.antonym and r.action != NO_CHANGE}


def comp_candidates(records: Sequence[PairRecord]) -> list[tuple[str, str]]:
    """Cells that could ever be held out: an antonym exists and its cell on the same object exists."""
    cells = {r.cell for r in records}
    antonym_of = _antonyms(records)
    return sorted(c for c in cells if c[1] in antonym_of and (c[0], antonym_of[c[1]]) in cells)


def held_out_cells(records: Sequence[PairRecord], rng: random.Random, fraction: float = HELD_OUT_FRACTION,
                   avoid: set[tuple[str, str]] | frozenset = frozenset()) -> set[tuple[str, str]]:
    """Choose compositional hold-outs greedily in a seeded random order, keeping every rule true."""
    cells = {r.cell for r in records}
    antonym_of = _antonyms(records)
    candidates = comp_candidates(records)
    rng.shuffle(candidates)
    candidates.sort(key=lambda c: c in avoid)  # stable: fresh cells first, random order within
    target = max(1, int(round(fraction * len(candidates)))) if candidates else 0
    held: set[tuple[str, str]] = set()
    for obj, action in candidates:
        if len(held) >= target:
            break
        trial = held | {(obj, action)}
        train_cells = cells - trial
        if (obj, antonym_of[action]) not in train_cells:
            continue
        if not all(any(c[1] == a for c in train_cells) for _, a in trial):
            continue  # every held-out action must still be trained on some other object
        held = trial
    return held


def held_out_objects(records: Sequence[PairRecord], rng: random.Random, fraction: float = HELD_OUT_FRACTION,
                     avoid: set[str] | frozenset = frozenset()) -> set[str]:
    """Choose systemic hold-outs: objects whose every action is still seen on a training object."""
    actions_of: dict[str, set[str]] = defaultdict(set)
    for r in records:
        actions_of[r.object].add(r.action)
    objects = sorted(actions_of)
    rng.shuffle(objects)
    objects.sort(key=lambda o: o in avoid)
    target = max(1, int(round(fraction * len(objects)))) if len(objects) > 1 else 0
    held: set[str] = set()
    for obj in objects:
        if len(held) >= target:
            break
        trial = held | {obj}
        seen = set().union(*(actions_of[o] for o in objects if o not in trial))
        if seen and all(actions_of[o] <= seen for o in trial):
            held = trial
    return held


def _assign_held_out(records: Sequence[PairRecord], name: str, is_ood: Callable[[PairRecord], bool],
                     rng: random.Random, group_of: Callable[[PairRecord], str]) -> None:
    for r in records:
        if is_ood(r):
            r.splits[name] = "ood"
    _assign_iid([r for r in records if not is_ood(r)], name, rng, group_of)


def assign_splits(records: Sequence[PairRecord], seed: int = 0, folds: int = 2,
                  fraction: float = HELD_OUT_FRACTION,
                  group_of: Callable[[PairRecord], str] = episode_key) -> dict[str, dict]:
    """Write iid_k, comp_k and syst_k roles into every record; return what was held out per split.

    Existing iid/comp/syst entries are replaced; other split names in `record.splits` are kept.
    """
    if folds < 1:
        raise SplitError(f"folds must be >= 1, got {folds}")
    if not 0.0 < fraction < 1.0:
        raise SplitError(f"held-out fraction must be in (0, 1), got {fraction}")
    for r in records:
        r.splits = {k: v for k, v in r.splits.items() if not k.startswith(("iid_", "comp_", "syst_"))}
    summary: dict[str, dict] = {}
    used_cells: set[tuple[str, str]] = set()
    used_objects: set[str] = set()
    for fold in range(folds):
        rng = random.Random(f"{seed}:{fold}")
        _assign_iid(records, f"iid_{fold}", rng, group_of)
        cells = held_out_cells(records, rng, fraction, avoid=used_cells)
        used_cells |= cells
        _assign_held_out(records, f"comp_{fold}", lambda r: r.cell in cells, rng, group_of)
        objects = held_out_objects(records, rng, fraction, avoid=used_objects)
        used_objects |= objects
        _assign_held_out(records, f"syst_{fold}", lambda r: r.object in objects, rng, group_of)
        if not cells or not objects:
            _LOG.warning("fold %d: %s; the split has no ood pairs", fold,
                         "no (object, action) cell can be held out under the antonym rule" if not cells
                         else "no object can be held out with all its actions seen elsewhere")
        summary[f"comp_{fold}"] = {"held_out_cells": sorted(map(list, cells))}
        summary[f"syst_{fold}"] = {"held_out_objects": sorted(objects)}
    return summary
