"""`cde sim generate ...`: robot manipulation pairs from Meta-World's scripted policies."""
from __future__ import annotations

import argparse
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    gen = sub.add_parser("generate", help="render before/after pairs + manifest.jsonl")
    gen.add_argument("--tasks", default="core", help="task set (core, tiny, demo) or comma-separated task names")
    gen.add_argument("--cameras", default="corner3,object", help="named cameras and/or 'object'")
    gen.add_argument("--seeds", default="0:20", help="START:STOP seed range")
    gen.add_argument("--size", type=int, default=224)
    gen.add_argument("--randomize", action=argparse.BooleanOptionalAction, default=True,
                     help="random colours and lights")
    gen.add_argument("--camera-jitter", action=argparse.BooleanOptionalAction, default=True)
    gen.add_argument("--clear-hand", action=argparse.BooleanOptionalAction, default=True,
                     help="move the hand clear of the object before the after frame")
    gen.add_argument("--failures", type=float, default=0.15, help="fraction of failed episodes")
    gen.add_argument("--workers", type=int, default=2)
    gen.add_argument("--split-seed", type=int, default=0)
    gen.add_argument("--folds", type=int, default=2)
    gen.add_argument("--out", required=True)


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("MUJOCO_GL", "egl")
    from cde_core.sim.generator import GenerationConfig, generate

    start, stop = (int(x) for x in args.seeds.split(":"))
    config = GenerationConfig(tasks=args.tasks, cameras=tuple(c for c in args.cameras.split(",") if c),
                              seeds=(start, stop), size=args.size, randomize_appearance=args.randomize,
                              camera_jitter=args.camera_jitter, clear_hand=args.clear_hand,
                              failure_fraction=args.failures, workers=args.workers, split_seed=args.split_seed,
                              folds=args.folds)
    records = generate(config, args.out)
    print(f"wrote {len(records)} pairs to {args.out}")
    return 0
