"""Synthetic before/after pairs in seconds, for tests and smoke runs (no simulator needed).

Coloured shapes on a textured background; actions are image-space transformations with antonyms
(move_left/move_right, grow/shrink, lighten/darken) plus "none" (a distractor shape elsewhere may
jitter by a pixel, so "none" is not pixel-identical). Each shape is an object category; shapes differ
in their natural actions, so a pair classifier can shortcut through the object, as on real data.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cde_core.data.manifest import NO_CHANGE, PairRecord, write_manifest
from cde_core.data.splits import assign_splits

ACTIONS = {"move_left": "move_right", "move_right": "move_left", "grow": "shrink", "shrink": "grow",
           "lighten": "darken", "darken": "lighten"}
OBJECTS = ("square", "disc", "cross", "bar")


def _mask(shape: str, size: int, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    if shape == "square":
        return (np.abs(dx) <= r) & (np.abs(dy) <= r)
    if shape == "disc":
        return dx ** 2 + dy ** 2 <= r ** 2
    if shape == "cross":
        return ((np.abs(dx) <= r / 3) & (np.abs(dy) <= r)) | ((np.abs(dy) <= r / 3) & (np.abs(dx) <= r))
    if shape == "bar":
        return (np.abs(dx) <= r) & (np.abs(dy) <= r / 2.5)
    raise ValueError(f"unknown shape {shape!r}")


def render_pair(obj: str, action: str, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One before/after pair as two HxWx3 uint8 images."""
    background = rng.integers(40, 120, size=3).astype(np.float32)
    base = np.clip(background + rng.normal(0, 8, size=(size, size, 3)), 0, 255)
    colour = rng.integers(60, 200, size=3).astype(np.float32)
    r = size * rng.uniform(0.10, 0.16)
    cx, cy = rng.uniform(0.3, 0.7) * size, rng.uniform(0.3, 0.7) * size
    step = size * 0.15
    after = dict(cx=cx, cy=cy, r=r, colour=colour)
    if action == "move_left":
        after["cx"] = cx - step
    elif action == "move_right":
        after["cx"] = cx + step
    elif action == "grow":
        after["r"] = r * 1.5
    elif action == "shrink":
        after["r"] = r / 1.5
    elif action == "lighten":
        after["colour"] = np.clip(colour + 60, 0, 255)
    elif action == "darken":
        after["colour"] = np.clip(colour - 60, 0, 255)
    elif action != NO_CHANGE:
        raise ValueError(f"unknown action {action!r}")

    def draw(cx_: float, cy_: float, r_: float, colour_: np.ndarray, jitter: float) -> np.ndarray:
        img = base.copy()
        img[_mask(obj, size, cx_, cy_, r_)] = colour_
        img[_mask("disc", size, size * 0.12 + jitter, size * 0.88, size * 0.05)] = 230.0  # distractor
        return img.astype(np.uint8)

    before = draw(cx, cy, r, colour, 0.0)
    return before, draw(after["cx"], after["cy"], after["r"], after["colour"], float(rng.integers(-1, 2)))


def generate_synthetic(out: str | Path, pairs_per_cell: int = 20, size: int = 32, seed: int = 0,
                       objects: tuple[str, ...] = OBJECTS, folds: int = 2) -> list[PairRecord]:
    """Write PNG pairs + manifest.jsonl (with iid/comp/syst splits) + generation.json into `out`."""
    from PIL import Image

    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    records: list[PairRecord] = []
    for obj in objects:
        for action in [*ACTIONS, NO_CHANGE]:
            for i in range(pairs_per_cell):
                before, after = render_pair(obj, action, size, rng)
                pid = f"{obj}-{action}-{i:04d}"
                paths = {}
                for tag, img in (("before", before), ("after", after)):
                    rel = f"images/{pid}_{tag}.png"
                    Image.fromarray(img).save(out / rel)
                    paths[tag] = rel
                records.append(PairRecord(
                    id=pid, before=paths["before"], after=paths["after"], action=action, object=obj,
                    antonym=ACTIONS.get(action), commanded_action=action, effect_happened=action != NO_CHANGE,
                    kind="effect" if action != NO_CHANGE else "no_change", source="synthetic", task=action,
                    seed=seed, camera="synthetic"))
    summary = assign_splits(records, seed=seed, folds=folds)
    write_manifest(out, records)
    (out / "generation.json").write_text(json.dumps({
        "source": "synthetic", "pairs_per_cell": pairs_per_cell, "size": size, "seed": seed,
        "objects": list(objects), "actions": [*ACTIONS, NO_CHANGE], "splits": summary}, indent=2))
    return records
