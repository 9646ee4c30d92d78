#!/usr/bin/env python3
"""Give imported bag pairs the splits and row order of the generator pairs they are pixel-equal to.

The data loop's comparison (README "The loop, measured"): a model trained on the node's recorded episodes
against one trained on the generator's pairs of the same episodes. Drawn independently, the two datasets get
different train/val/test memberships (splits are drawn per episode key, and a bag's keys are command ids, a
generator's are task and seed), so their models differ by the draw as much as by the data. Aligned, the only
difference left is what recording and import changed: pixels, masks, labels and pair count, all checked here.

    python scripts/align_bag_splits.py BAG_DATA GEN_DATA --out ALIGNED
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from cde_core.data.manifest import PairRecord, read_manifest, write_manifest

LABEL_FIELDS = ("action", "object", "commanded_action", "effect_happened", "kind")  # not the look: a robot does not know it


def pixel_key(root: Path, record: PairRecord) -> str:
    """Digest of the decoded pixels of both frames and both masks (PNG bytes may differ; pixels must not)."""
    digest = hashlib.sha256()
    for rel in (record.before, record.after, record.before_mask, record.after_mask):
        if rel:
            array = np.asarray(Image.open(root / rel))
            digest.update(str(array.shape).encode() + array.tobytes())
        digest.update(b"|")
    return digest.hexdigest()


def align(bag_root: Path, gen_root: Path) -> tuple[list[PairRecord], list[str]]:
    """Bag records in the generator's row order with the generator's splits; the problems found (unmatched
    pairs on either side, label disagreements)."""
    gen = read_manifest(gen_root)
    bag_by_key: dict[str, PairRecord] = {}
    problems: list[str] = []
    for record in read_manifest(bag_root):
        key = pixel_key(bag_root, record)
        if key in bag_by_key:
            problems.append(f"bag pairs {bag_by_key[key].id} and {record.id} have the same pixels")
        bag_by_key[key] = record
    aligned: list[PairRecord] = []
    for record in gen:
        match = bag_by_key.pop(pixel_key(gen_root, record), None)
        if match is None:
            problems.append(f"generator pair {record.id} has no pixel-equal bag pair")
            continue
        differing = [f for f in LABEL_FIELDS if getattr(match, f) != getattr(record, f)]
        if differing:
            problems.append(f"{match.id} ~ {record.id}: labels differ in {differing}")
        match.splits = dict(record.splits)
        aligned.append(match)
    problems += [f"bag pair {r.id} has no pixel-equal generator pair" for r in bag_by_key.values()]
    return aligned, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bag_data", type=Path, help="`cde data import` output")
    parser.add_argument("gen_data", type=Path, help="`cde sim generate` (or merge) output of the same episodes")
    parser.add_argument("--out", type=Path, required=True, help="dataset to write (images linked, not copied)")
    args = parser.parse_args(argv)
    aligned, problems = align(args.bag_data, args.gen_data)
    for line in problems:
        print(f"align: {line}", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    images = args.out / "images"
    if not images.exists():
        # relative, so the datasets can move together
        os.symlink(os.path.relpath((args.bag_data / "images").resolve(), args.out.resolve()), images)
    write_manifest(args.out, aligned)
    print(f"aligned {len(aligned)} bag pairs to the generator's splits and order ({len(problems)} problems); "
          f"wrote {args.out}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
