#!/usr/bin/env python3
"""Rerun the "nothing changed" diagnostic (cde_core/experiment/no_change.py) on finished experiments.

Experiments run before the diagnostic existed have none; this reads each one's results.json (its data,
runs, methods, splits, first seed), runs the same delta_geometry pass over their checkpoints and prints
the results.md section per experiment, leaving the experiment's own files untouched.

    python scripts/no_change_diagnostic.py runs/exp_v2_masks_on runs/exp_v2_masks_off > no_change.md
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from cde_core.data.manifest import NO_CHANGE
from cde_core.experiment.diagnostics import delta_geometry
from cde_core.experiment.report import no_change_table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="+", type=Path, help="directories holding a results.json")
    args = parser.parse_args()
    for directory in args.experiments:
        results = json.loads((directory / "results.json").read_text())
        with tempfile.TemporaryDirectory() as figures:  # the pass also draws the delta figures: not kept
            geometry = delta_geometry(results["data"], results["runs"], results["methods"], results["splits"],
                                      results["seeds"][0], Path(figures), exclude_actions=(NO_CHANGE,))
        lines = no_change_table({"diagnostics": {"geometry": geometry}})
        print(f"# {directory}")
        print("\n".join(lines[1:] if lines else ["", "(no none class in this experiment)"]))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
