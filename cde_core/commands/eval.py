"""`cde eval CHECKPOINT --data DIR --split NAME --out DIR`: metrics per role as JSON + confusion PNGs."""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="model.safetensors written by `cde train`")
    parser.add_argument("--data", required=True, help="dataset directory with manifest.jsonl")
    parser.add_argument("--split", default="iid_0", help="split name (iid_k, comp_k, syst_k), or 'all': every pair as one role")
    parser.add_argument("--out", default="runs/eval", help="output directory")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")


def run(args: argparse.Namespace) -> int:
    from cde_core.checkpoint import CheckpointError
    from cde_core.data.manifest import ManifestError
    from cde_core.eval.evaluate import evaluate_checkpoint

    try:
        report = evaluate_checkpoint(args.checkpoint, args.data, args.split, args.out, args.precision)
    except (CheckpointError, ManifestError, ValueError) as exc:
        print(f"cde eval: {exc}", file=sys.stderr)
        return 2
    for role in ("train", "val", "test", "ood", "all"):
        if role in report:
            r, v = report[role], report[role]["verification"]
            print(f"{role:>5}: accuracy {r['accuracy']:.3f}  cell-balanced "
                  f"{r.get('cell_balanced_accuracy', float('nan')):.3f}  verification balanced "
                  f"{v['verification_balanced_accuracy']}  no-effect AUROC {v['no_effect_auroc']}  (n={r['n']})")
    print(f"wrote {args.out}/eval_{args.split}.json")
    return 0
