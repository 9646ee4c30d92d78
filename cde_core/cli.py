"""The `cde` command line: one sub-command per module in cde_core/commands.

Each command module defines `add_arguments(parser)` and `run(args) -> int`; modules are imported only
when their command runs, so `cde --help` stays fast and optional dependencies stay optional.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMANDS: dict[str, str] = {
    "train": "Train a model on a pair manifest: cde train CONFIG [key=value ...]",
    "eval": "Evaluate a checkpoint on the splits of a manifest",
    "calibrate": "Choose a checkpoint's no-effect decision again on validation pairs",
    "experiment": "Train/evaluate every method over seeds and splits; write results.json/.md and plots",
    "pretrain": "Self-supervised pretraining of a backbone on unlabelled frames",
    "export": "Export a checkpoint to ONNX or a TensorRT engine",
    "bench": "Measure latency, critical path, FLOP/s vs peak, node load and training throughput",
    "sim": "Generate before/after pairs from Meta-World's scripted policies",
    "data": "Import recorded MCAP bags into a pair manifest",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cde", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    known, rest = parser.parse_known_args(argv)
    if known.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.DEBUG if known.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    module = importlib.import_module(f"cde_core.commands.{known.command}")
    cmd_parser = argparse.ArgumentParser(prog=f"cde {known.command}", description=COMMANDS[known.command])
    module.add_arguments(cmd_parser)
    try:  # `key=value` overrides may come before or after --options
        args = cmd_parser.parse_intermixed_args(rest)
    except TypeError:  # argparse cannot intermix a command with sub-commands (cde data import|merge)
        args = cmd_parser.parse_args(rest)
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
