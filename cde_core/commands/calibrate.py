"""`cde calibrate CHECKPOINT --data DIR --out NEW`: choose the no-effect decision again on validation pairs."""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="model.safetensors written by `cde train`")
    parser.add_argument("--data", required=True, help="dataset directory with manifest.jsonl")
    parser.add_argument("--split", default="iid_0", help="the split whose pairs of --role are used")
    parser.add_argument("--role", default="val", help="which pairs of the split (never the test pairs you report)")
    parser.add_argument("--out", required=True, help="the recalibrated checkpoint (.safetensors) to write")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--effect-magnitude", choices=["auto", "global", "relative", "topk"], default=None,
                        help="the change measure the no-effect rule thresholds (default: keep the model's); auto: "
                             "the one that best separates no-change from change on these pairs")


def run(args: argparse.Namespace) -> int:
    from cde_core.checkpoint import CheckpointError
    from cde_core.data.manifest import ManifestError
    from cde_core.eval.recalibrate import recalibrate_checkpoint

    try:
        result = recalibrate_checkpoint(args.checkpoint, args.data, args.split, args.out, args.role, args.precision,
                                        args.effect_magnitude)
    except (CheckpointError, ManifestError, ValueError) as exc:
        print(f"cde calibrate: {exc}", file=sys.stderr)
        return 2
    scores = ", ".join(f"{k} {'-' if v is None else f'{v:.3f}'}" for k, v in result.auroc_by_effect_magnitude.items())
    print(f"effect magnitude was {result.old_effect_magnitude}, now {result.effect_magnitude} "
          f"(no-change AUROC on these pairs: {scores})\n"
          f"calibration was {result.old.to_dict()}\n            now {result.new.to_dict()}\nwrote {args.out}")
    return 0
