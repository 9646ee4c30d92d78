"""`cde experiment CONFIG --out DIR [key=value ...]`"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="experiment YAML (data, splits, seeds, methods, train_config, overrides)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--workers", type=int, default=None,
                        help="training processes in parallel (default: the config's `workers`, else 1)")
    parser.add_argument("overrides", nargs="*", help="training overrides applied to every run")


def run(args: argparse.Namespace) -> int:
    from cde_core.experiment.runner import run_experiment

    results = run_experiment(args.config, args.out, args.overrides, args.workers)
    print((__import__("pathlib").Path(args.out) / "results.md").read_text())
    return 0 if results["runs"] else 1
