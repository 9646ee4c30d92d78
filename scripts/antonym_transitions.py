#!/usr/bin/env python3
"""Print, per object, whether its antonym tasks are each other's reverse (cde_core/sim/antonym_transitions.py).

    python scripts/antonym_transitions.py --tasks demo --seeds 0:3
"""
from __future__ import annotations

import argparse

from cde_core.sim.antonym_transitions import (
    antonym_task_pairs,
    measure_transition,
    tolerance_for,
    transition_kind,
)
from cde_core.sim.object_state import STATE_COORDINATES
from cde_core.sim.tasks import TASKS, resolve_tasks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="demo", help="task set and/or comma-separated task names")
    parser.add_argument("--seeds", default="0:3", help="START:STOP")
    args = parser.parse_args()
    start, stop = (int(x) for x in args.seeds.split(":"))
    pairs = antonym_task_pairs(resolve_tasks(args.tasks))
    if not pairs:
        raise SystemExit(f"no antonym task pairs with a known joint in {args.tasks!r}")
    print("| object | task: start -> rest | antonym: start -> rest | unit | kind |")
    print("|---|---|---|---|---|")
    for a, b in pairs:
        ta, tb = measure_transition(a, list(range(start, stop))), measure_transition(b, list(range(start, stop)))
        kind = transition_kind(ta, tb, min(tolerance_for(a), tolerance_for(b)))
        print(f"| {TASKS[a].object} | {a}: {ta.start:+.3f} -> {ta.end:+.3f} | {b}: {tb.start:+.3f} -> {tb.end:+.3f} "
              f"| {STATE_COORDINATES[a].unit} | {kind} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
