"""`cde train CONFIG [key=value ...]`: train one model on a split of a pair manifest (see cde_core/train)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="YAML overriding cde_core/configs/train_default.yaml")
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. model.top_k=8 loss.contrast=0")


def run(args: argparse.Namespace) -> int:
    from cde_core.data.manifest import ManifestError
    from cde_core.train.config import ConfigError, load_config
    from cde_core.train.distributed import cleanup, is_main_process
    from cde_core.train.trainer import train

    config_path = args.config
    overrides = list(args.overrides)
    if config_path and "=" in config_path and not Path(config_path).is_file():  # no file, only overrides
        overrides.insert(0, config_path)
        config_path = None
    try:
        result = train(load_config(config_path, overrides))
    except (ConfigError, ManifestError) as exc:
        print(f"cde train: {exc}", file=sys.stderr)
        cleanup()
        return 2
    metrics = result.metrics
    roles = [r for r in ("train", "val", "test", "ood") if r in metrics]
    if is_main_process():
        print(f"checkpoint: {result.checkpoint} (best IID-val epoch {result.best_epoch}, {result.seconds:.0f} s)")
        print("  ".join(f"{r}: {metrics[r]['accuracy']:.3f}" for r in roles))
        print(f"run directory: {result.checkpoint.parent} (config.yaml, metrics.json, history.json, *.png)")
    cleanup()
    return 0
