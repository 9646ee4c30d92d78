"""`cde sim generate|split|tasks`: robot manipulation pairs from Meta-World's scripted policies."""
from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

_LOG = logging.getLogger(__name__)


def _seed_range(text: str) -> tuple[int, int]:
    try:
        start, stop = (int(x) for x in text.split(":"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"seed range {text!r} must be START:STOP, e.g. 0:40") from exc
    if stop <= start:
        raise argparse.ArgumentTypeError(f"seed range {text!r} is empty (STOP must exceed START)")
    return start, stop


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="{generate,split,tasks}")
    gen = sub.add_parser("generate", help="render before/after pairs + manifest.jsonl + generation.json")
    gen.add_argument("--tasks", default="core",
                     help="task set (core, extended, tiny, demo) and/or comma-separated Meta-World v3 task names")
    gen.add_argument("--cameras", default="corner3,object",
                     help="named cameras (corner, corner2, corner3, corner4, topview, ...) and/or object-centred "
                          "ones: object or object_az<deg>_el<deg>_d<m>")
    gen.add_argument("--seeds", type=_seed_range, default=(0, 20), help="START:STOP seed range (STOP excluded)")
    gen.add_argument("--size", type=int, default=224, help="image side in pixels")
    gen.add_argument("--appearance", choices=("mixed", "default", "random"), default="mixed",
                     help="Meta-World's own look, random colours/lights/camera jitter, or either per episode")
    gen.add_argument("--clear-hand", action=argparse.BooleanOptionalAction, default=True,
                     help="move the hand clear of the object before the after frame")
    gen.add_argument("--failures", type=float, default=0.15,
                     help="fraction of failed episodes (stopped early, no motion, another task's motion)")
    gen.add_argument("--max-steps", type=int, default=500, help="policy step budget per episode")
    gen.add_argument("--after-frame", choices=("fixed", "rest"), default="fixed",
                     help="take the after frame right after the hand moved clear (fixed, what the demo model was "
                          "trained on) or once the scene's objects are at rest (rest: the drawer slides back)")
    gen.add_argument("--rest-limit", type=int, default=200,
                     help="with --after-frame rest: at most this many steps waiting (counted in generation.json)")
    gen.add_argument("--label-check", choices=("off", "state"), default="off",
                     help="check each label against the object's own joint change and keep, relabel or drop it "
                          "(state; counts per task in generation.json), or use the policy's outcome (off)")
    gen.add_argument("--workers", type=int, default=2, help="processes")
    gen.add_argument("--split-seed", type=int, default=0)
    gen.add_argument("--folds", type=int, default=2)
    gen.add_argument("--no-progress", action="store_true", help="no progress bar")
    gen.add_argument("--out", required=True, help="dataset directory")

    split = sub.add_parser("split", help="recompute iid/comp/syst splits of an existing dataset's manifest")
    split.add_argument("data", help="dataset directory (with manifest.jsonl)")
    split.add_argument("--split-seed", type=int, default=0)
    split.add_argument("--folds", type=int, default=2)

    sub.add_parser("tasks", help="list the task table and task sets")


def _generate(args: argparse.Namespace) -> int:
    os.environ.setdefault("MUJOCO_GL", "egl")
    from cde_core.sim.generator import GenerationConfig, GenerationError, generate

    config = GenerationConfig(tasks=args.tasks, cameras=tuple(c for c in args.cameras.split(",") if c),
                              seeds=args.seeds, size=args.size, appearance=args.appearance, clear_hand=args.clear_hand,
                              failure_fraction=args.failures, max_steps=args.max_steps, workers=args.workers,
                              split_seed=args.split_seed, folds=args.folds, after_frame=args.after_frame,
                              rest_limit=args.rest_limit, label_check=args.label_check)
    try:
        records = generate(config, args.out, progress=not args.no_progress)
    except (GenerationError, ValueError) as exc:
        _LOG.error("%s", exc)
        return 2
    meta = json.loads((Path(args.out) / "generation.json").read_text())
    print(f"wrote {len(records)} pairs to {args.out} ({meta['seconds_per_pair']:.3f} s/pair, {args.workers} workers)")
    if "at_rest" in meta:
        rest = meta["at_rest"]
        print(f"at rest after {rest['mean_steps']} steps on average; {len(rest['limit_hit'])} episode(s) hit the "
              f"{rest['limit']}-step limit")
    if "label_check" in meta:
        totals = meta["label_check"]["totals"]
        print("label check: " + ", ".join(f"{n} {verdict}" for verdict, n in totals.items()))
    return 0


def _split(args: argparse.Namespace) -> int:
    from cde_core.data.manifest import ManifestError, read_manifest, write_manifest
    from cde_core.data.splits import SplitError, assign_splits

    try:
        records = read_manifest(args.data)
        summary = assign_splits(records, seed=args.split_seed, folds=args.folds)
    except (ManifestError, SplitError) as exc:
        _LOG.error("%s", exc)
        return 2
    write_manifest(args.data, records)
    meta_path = Path(args.data) / "generation.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    meta.update(splits=summary, split_seed=args.split_seed, folds=args.folds)
    meta_path.write_text(json.dumps(meta, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


def _tasks() -> int:
    from cde_core.sim.tasks import TASK_SETS, TASKS

    for cell in TASKS.values():
        print(f"{cell.task:24s} {cell.object:10s} {cell.action:8s} {cell.antonym or '-'}")
    for name, tasks in TASK_SETS.items():
        print(f"set {name}: {len(tasks)} tasks")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.action == "generate":
        return _generate(args)
    if args.action == "split":
        return _split(args)
    return _tasks()
