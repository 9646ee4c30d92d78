"""Synthetic before/after pairs in seconds, for tests and smoke runs (no simulator needed).

Coloured shapes (the object categories) on a noisy background; the actions are image-space changes
with antonyms, as Meta-World's open/close: move_left/move_right, grow/shrink, appear/disappear, plus
"none". Every frame gets its own sensor noise and a distractor disc may jitter by a pixel, so "none"
is never pixel-identical. Each pair is drawn from its own seeded generator (seed, object, action,
index), so a dataset is reproducible and adding objects does not change the existing pairs. Splits
(iid/comp/syst folds) come from `cde_core.data.splits.assign_splits`, the rules every dataset uses:
`comp_k` holds out (object, action) cells whose antonym stays in training, the OOD test of interest.

    python -m cde_core.data.synthetic --out runs/synthetic --pairs-per-cell 40 --size 32
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from cde_core.data.manifest import NO_CHANGE, PairRecord, write_manifest
from cde_core.data.splits import assign_splits

_LOG = logging.getLogger(__name__)

ANTONYMS: dict[str, str] = {"move_left": "move_right", "move_right": "move_left", "grow": "shrink",
                            "shrink": "grow", "appear": "disappear", "disappear": "appear"}
ACTIONS: tuple[str, ...] = (*ANTONYMS, NO_CHANGE)
OBJECTS: tuple[str, ...] = ("square", "disc", "cross", "bar")
SENSOR_NOISE = 3.0  # per-frame pixel noise std (0-255 scale)


def shape_mask(shape: str, size: int, cx: float, cy: float, r: float) -> np.ndarray:
    """Boolean HxW mask of a shape centred at (cx, cy) with half-size r."""
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
    raise ValueError(f"unknown shape {shape!r}; known: {OBJECTS}")


def render_pair(obj: str, action: str, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One before/after pair as two HxWx3 uint8 images; the object stays inside the frame."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; known: {ACTIONS}")
    # Background channels 30-100 and object channels 160-255: every object pixel differs by >= 60.
    base = np.clip(rng.integers(30, 101, size=3) + rng.normal(0, 6, size=(size, size, 3)), 0, 255)
    colour = rng.integers(160, 256, size=3).astype(np.float32)
    r = size * rng.uniform(0.10, 0.14)
    step = size * 0.2
    cx, cy = rng.uniform(0.3, 0.7) * size, rng.uniform(0.3, 0.6) * size
    if action == "move_left":
        cx = rng.uniform(0.5, 0.75) * size
    elif action == "move_right":
        cx = rng.uniform(0.25, 0.5) * size
    state_before = {"cx": cx, "r": r, "visible": action != "appear"}
    state_after = dict(state_before, visible=action != "disappear")
    if action == "move_left":
        state_after["cx"] = cx - step
    elif action == "move_right":
        state_after["cx"] = cx + step
    elif action == "grow":
        state_after["r"] = r * 1.6
    elif action == "shrink":
        state_before["r"] = r * 1.6

    def draw(state: dict, jitter: float) -> np.ndarray:
        img = base.copy()
        if state["visible"]:
            img[shape_mask(obj, size, state["cx"], cy, state["r"])] = colour
        img[shape_mask("disc", size, size * 0.12 + jitter, size * 0.88, size * 0.05)] = 230.0  # distractor
        img = img + rng.normal(0, SENSOR_NOISE, size=img.shape)
        return np.clip(img, 0, 255).astype(np.uint8)

    return draw(state_before, 0.0), draw(state_after, float(rng.integers(-1, 2)))


def generate_synthetic(out: str | Path, pairs_per_cell: int = 20, size: int = 32, seed: int = 0,
                       objects: tuple[str, ...] = OBJECTS, folds: int = 2) -> list[PairRecord]:
    """Write PNG pairs + manifest.jsonl (with iid/comp/syst splits) + generation.json into `out`."""
    from PIL import Image

    if pairs_per_cell < 1 or size < 16:
        raise ValueError(f"need pairs_per_cell >= 1 and size >= 16, got {pairs_per_cell}, {size}")
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    records: list[PairRecord] = []
    for obj in objects:
        for action in ACTIONS:
            for i in range(pairs_per_cell):
                key = [seed, OBJECTS.index(obj) if obj in OBJECTS else len(OBJECTS), ACTIONS.index(action), i]
                before, after = render_pair(obj, action, size, np.random.default_rng(key))
                pid = f"{obj}-{action}-{i:04d}"
                paths = {}
                for tag, img in (("before", before), ("after", after)):
                    rel = f"images/{pid}_{tag}.png"
                    Image.fromarray(img).save(out / rel)
                    paths[tag] = rel
                records.append(PairRecord(
                    id=pid, before=paths["before"], after=paths["after"], action=action, object=obj,
                    antonym=ANTONYMS.get(action), commanded_action=action, effect_happened=action != NO_CHANGE,
                    kind="effect" if action != NO_CHANGE else "no_change", source="synthetic", task=action,
                    seed=seed, camera="synthetic"))
    summary = assign_splits(records, seed=seed, folds=folds)
    write_manifest(out, records)
    (out / "generation.json").write_text(json.dumps({
        "source": "synthetic", "pairs_per_cell": pairs_per_cell, "size": size, "seed": seed,
        "objects": list(objects), "actions": list(ACTIONS), "splits": summary}, indent=2))
    _LOG.info("wrote %d synthetic pairs to %s", len(records), out)
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate synthetic before/after pairs with a manifest.")
    parser.add_argument("--out", required=True)
    parser.add_argument("--pairs-per-cell", type=int, default=40)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    generate_synthetic(args.out, args.pairs_per_cell, args.size, args.seed, folds=args.folds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
