"""`cde experiment CONFIG --out DIR [--methods M ...] [--data DIR] [--resume] [key=value ...]`, and
`cde experiment compare DIR_A DIR_B --labels A B --out DIR` (two result directories side by side)."""
from __future__ import annotations

import argparse
from pathlib import Path

COMPARE = "compare"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="experiment YAML (data, splits, seeds, methods, train_config, overrides), "
                                       f"or `{COMPARE}` followed by two experiment output directories")
    parser.add_argument("--out", required=True, help="output directory (results, or the comparison)")
    parser.add_argument("--workers", type=int, default=None,
                        help="training processes in parallel (default: the config's `workers`, else 1)")
    parser.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                        help="methods to run instead of the config's list (names: cde_core/experiment/methods.py)")
    parser.add_argument("--data", default=None, metavar="DIR",
                        help="pair directory to run on instead of the config's `data` (a try on other data)")
    parser.add_argument("--resume", action="store_true",
                        help="reuse runs already finished in --out with the same resolved configuration")
    parser.add_argument("--labels", nargs=2, metavar=("LABEL_A", "LABEL_B"), default=None,
                        help=f"with `{COMPARE}`: names of the two conditions (default: the directory names)")
    parser.add_argument("overrides", nargs="*",
                        help=f"training overrides applied to every run; with `{COMPARE}`: DIR_A DIR_B")


def _compare(args: argparse.Namespace) -> int:
    from cde_core.experiment.comparison import write_comparison

    if len(args.overrides) != 2 or any(v is not None for v in (args.workers, args.methods, args.data)) or args.resume:
        extra = "".join(f" and {flag}" for flag, value in (("--workers", args.workers), ("--methods", args.methods),
                                                           ("--data", args.data), ("--resume", args.resume or None))
                        if value is not None)
        raise SystemExit(f"usage: cde experiment {COMPARE} DIR_A DIR_B [--labels A B] --out DIR "
                         f"(got {args.overrides}{extra})")
    dir_a, dir_b = args.overrides
    labels = tuple(args.labels) if args.labels else (Path(dir_a).name, Path(dir_b).name)
    write_comparison(dir_a, dir_b, labels, args.out)
    print((Path(args.out) / "comparison.md").read_text())
    return 0


def run(args: argparse.Namespace) -> int:
    if args.config == COMPARE:
        return _compare(args)
    if args.labels is not None:
        raise SystemExit(f"--labels only goes with `cde experiment {COMPARE} DIR_A DIR_B`")
    from cde_core.experiment.runner import run_experiment

    results = run_experiment(args.config, args.out, args.overrides, args.workers, args.methods, args.data,
                             args.resume)
    print((Path(args.out) / "results.md").read_text())
    return 0 if results["runs"] else 1
