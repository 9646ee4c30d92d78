"""Seeded IID, compositional and systemic splits over pair records (Causal Triplet's rules).

- iid_k: every pair is train/val/test at random (70/15/15).
- comp_k: held-out (object, action) cells go to `ood`. A cell may be held out only if its action has
  an antonym, the antonym cell on the same object stays in training, and both the object and the
  action still appear in training (open(drawer) is held out only if close(drawer) is trained).
- syst_k: held-out object categories go to `ood`; an object may be held out only if each of its
  actions still appears on some training object.
The no-change class is never a held-out cell (it has no antonym); failed episodes are split by the
cell of what actually happened, like any pair. `val` is IID validation (checkpoint selection only).
"""
from __future__ import annotations

import random
from collections import defaultdict
from typing import Sequence

from cde_core.data.manifest import NO_CHANGE, PairRecord

IID_FRACTIONS = (0.70, 0.15, 0.15)


def _assign_iid(records: Sequence[PairRecord], name: str, rng: random.Random) -> None:
    order = list(range(len(records)))
    rng.shuffle(order)
    n_train = int(round(IID_FRACTIONS[0] * len(order)))
    n_val = int(round(IID_FRACTIONS[1] * len(order)))
    for rank, index in enumerate(order):
        role = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
        records[index].splits[name] = role


def held_out_cells(records: Sequence[PairRecord], rng: random.Random, fraction: float = 0.25) -> set[tuple[str, str]]:
    """Choose compositional hold-outs greedily in a seeded random order, keeping every rule true."""
    cells = sorted({r.cell for r in records})
    antonym_of = {r.action: r.antonym for r in records if r.antonym}
    candidates = [c for c in cells if c[1] != NO_CHANGE and antonym_of.get(c[1]) and (c[0], antonym_of[c[1]]) in cells]
    rng.shuffle(candidates)
    target = max(1, int(round(fraction * len(candidates)))) if candidates else 0
    held: set[tuple[str, str]] = set()
    for cell in candidates:
        if len(held) >= target:
            break
        obj, action = cell
        trial = held | {cell}
        train_cells = [c for c in cells if c not in trial]
        if (obj, antonym_of[action]) in trial:
            continue
        if not any(c[0] == obj for c in train_cells) or not any(c[1] == action for c in train_cells):
            continue
        held = trial
    return held


def held_out_objects(records: Sequence[PairRecord], rng: random.Random, fraction: float = 0.25) -> set[str]:
    """Choose systemic hold-outs: objects whose every action is still seen on a training object."""
    actions_of: dict[str, set[str]] = defaultdict(set)
    for r in records:
        actions_of[r.object].add(r.action)
    objects = sorted(actions_of)
    rng.shuffle(objects)
    target = max(1, int(round(fraction * len(objects)))) if len(objects) > 1 else 0
    held: set[str] = set()
    for obj in objects:
        if len(held) >= target:
            break
        trial = held | {obj}
        seen = set().union(*(actions_of[o] for o in objects if o not in trial)) if len(trial) < len(objects) else set()
        if actions_of[obj] <= seen:
            held = trial
    return held


def _assign_held_out(records: Sequence[PairRecord], name: str, is_ood: list[bool], rng: random.Random) -> None:
    rest = [r for r, ood in zip(records, is_ood) if not ood]
    for r, ood in zip(records, is_ood):
        if ood:
            r.splits[name] = "ood"
    _assign_iid(rest, name, rng)


def assign_splits(records: Sequence[PairRecord], seed: int = 0, folds: int = 2, fraction: float = 0.25) -> dict[str, dict]:
    """Write iid_k, comp_k and syst_k roles into every record; return what was held out per split."""
    summary: dict[str, dict] = {}
    for fold in range(folds):
        rng = random.Random(f"{seed}:{fold}")
        _assign_iid(records, f"iid_{fold}", rng)
        cells = held_out_cells(records, rng, fraction)
        _assign_held_out(records, f"comp_{fold}", [r.cell in cells for r in records], rng)
        objects = held_out_objects(records, rng, fraction)
        _assign_held_out(records, f"syst_{fold}", [r.object in objects for r in records], rng)
        summary[f"comp_{fold}"] = {"held_out_cells": sorted(map(list, cells))}
        summary[f"syst_{fold}"] = {"held_out_objects": sorted(objects)}
    return summary
