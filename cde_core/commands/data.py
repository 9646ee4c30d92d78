"""`cde data import BAG... --out DIR`: recorded episode bags -> a pair manifest (no ROS needed).
`cde data merge IN... --out DIR`: several pair datasets -> one, with fresh splits."""
from __future__ import annotations

import argparse
import logging

_log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    imp = sub.add_parser("import", help="bags written by the perception node's recorder -> manifest.jsonl + PNGs",
                         description="Labels: the EpisodeLabels per command id (from any bag given), the latest "
                                     "when they agree; episodes whose labels disagree are left out and reported "
                                     "(--label-conflicts latest keeps the latest); unlabelled episodes verified "
                                     "SUCCEEDED take the commanded action; others are skipped unless --weak-labels. "
                                     "Files a kill -9 left unlisted are recovered, truncated ones skipped, both "
                                     "reported. The output is rewritten from the bags given: pass all of a "
                                     "dataset's bags (see cde_core/data/bag_import.py).")
    imp.add_argument("bags", nargs="+", help="bag directories, or directories holding them")
    imp.add_argument("--out", required=True, help="dataset directory to write")
    imp.add_argument("--weak-labels", action="store_true",
                     help="unlabelled, unverified episodes take the model's recognised action")
    imp.add_argument("--min-confidence", type=float, default=0.0,
                     help="with --weak-labels: the least recognition confidence kept")
    imp.add_argument("--labelled-only", action="store_true", help="keep only episodes with an EpisodeLabel")
    imp.add_argument("--split-seed", type=int, default=0, help="seed of the iid splits")
    imp.add_argument("--folds", type=int, default=1, help="number of iid_<fold> splits")
    imp.add_argument("--label-conflicts", choices=("skip", "latest"), default="skip",
                     help="an episode whose labels disagree: leave it out (skip) or keep the latest label; "
                          "reported either way")
    imp.add_argument("--no-progress", action="store_true", help="no progress bar")
    merge = sub.add_parser("merge", help="several pair datasets -> one (files hard-linked), splits assigned anew")
    merge.add_argument("inputs", nargs="+", help="dataset directories (each with manifest.jsonl)")
    merge.add_argument("--out", required=True, help="dataset directory to write")
    merge.add_argument("--split-seed", type=int, default=0)
    merge.add_argument("--folds", type=int, default=2)


def _merge(args: argparse.Namespace) -> int:
    from cde_core.data.manifest import ManifestError
    from cde_core.data.merge import merge_datasets
    from cde_core.data.splits import SplitError

    try:
        records = merge_datasets(args.inputs, args.out, args.split_seed, args.folds)
    except (ManifestError, SplitError, OSError) as exc:
        _log.error(str(exc))
        return 2
    print(f"wrote {len(records)} pairs from {len(args.inputs)} dataset(s) to {args.out}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.action == "merge":
        return _merge(args)
    from cde_core.data.bag_import import BagImportError, LabelPolicy, import_bags
    from cde_core.data.bag_labels import describe_conflict

    if args.weak_labels and args.labelled_only:
        _log.error("--weak-labels and --labelled-only contradict each other; choose one")
        return 2
    if not 0.0 <= args.min_confidence <= 1.0 or args.folds < 1:
        _log.error("--min-confidence must be in [0, 1] and --folds >= 1")
        return 2
    policy = LabelPolicy(weak_labels=args.weak_labels, min_confidence=args.min_confidence,
                         labelled_only=args.labelled_only, label_conflicts=args.label_conflicts)
    try:
        summary = import_bags(args.bags, args.out, policy, seed=args.split_seed, folds=args.folds,
                              progress=not args.no_progress)
    except BagImportError as exc:
        _log.error(str(exc))
        return 1
    if not summary.pairs:
        _log.warning("no pair was imported: label episodes (EpisodeLabel) or see --weak-labels")
    print(f"wrote {summary.pairs} pairs from {summary.episodes} episodes in {len(summary.bags)} bag(s) to "
          f"{args.out}; skipped: {summary.skipped or 'none'}")
    if summary.files_skipped or summary.files_recovered:
        print(f"files skipped: {summary.files_skipped or 'none'}; recovered (complete but not listed in "
              f"metadata.yaml): {summary.files_recovered or 'none'}; each one in generation.json (file_problems)")
    if summary.label_conflicts:
        print(f"{len(summary.label_conflicts)} command(s) with conflicting labels "
              f"({'left out' if policy.label_conflicts == 'skip' else 'latest label kept'}; "
              "--label-conflicts chooses; listed in generation.json):")
        for conflict in summary.label_conflicts[:20]:
            print("  " + describe_conflict(conflict))
        if len(summary.label_conflicts) > 20:
            print(f"  ... and {len(summary.label_conflicts) - 20} more")
    return 0
