"""Meta-World v3 tasks as (object, action) cells with antonyms, and named task sets.

Verbs are made consistent across objects (open/close, push/pull, insert/remove, lock/unlock) so a
held-out cell's action is seen on other objects; push/pull are away from / towards the robot (handle:
press down / pull up). Button, lever and dial tasks are left out: their effect springs back or is a
few pixels. Reach tasks move only the arm: the no-change class ("none"). Every task name is a
Meta-World v3 environment with a scripted policy of the same name in `metaworld.policies`.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskCell:
    task: str
    object: str
    action: str
    antonym: str | None


ANTONYMS = {"open": "close", "close": "open", "push": "pull", "pull": "push", "insert": "remove",
            "remove": "insert", "lock": "unlock", "unlock": "lock"}

_CELLS = [
    ("drawer-open-v3", "drawer", "open"), ("drawer-close-v3", "drawer", "close"),
    ("door-open-v3", "door", "open"), ("door-close-v3", "door", "close"),
    ("door-lock-v3", "door", "lock"), ("door-unlock-v3", "door", "unlock"),
    ("window-open-v3", "window", "open"), ("window-close-v3", "window", "close"),
    ("faucet-open-v3", "faucet", "open"), ("faucet-close-v3", "faucet", "close"),
    ("coffee-push-v3", "mug", "push"), ("coffee-pull-v3", "mug", "pull"),
    ("plate-slide-v3", "plate", "push"), ("plate-slide-back-v3", "plate", "pull"),
    ("handle-press-v3", "handle", "push"), ("handle-pull-v3", "handle", "pull"),
    ("stick-push-v3", "thermos", "push"), ("stick-pull-v3", "thermos", "pull"),
    ("push-v3", "puck", "push"), ("push-back-v3", "puck", "pull"),
    ("peg-insert-side-v3", "peg", "insert"), ("peg-unplug-side-v3", "peg", "remove"),
    ("assembly-v3", "ring", "insert"), ("disassemble-v3", "ring", "remove"),
    ("reach-v3", "puck", "none"), ("reach-wall-v3", "puck", "none"),
]
# More scenes for existing verbs; a box that can only be closed is a systemic hold-out candidate.
_EXTRA_CELLS = [
    ("box-close-v3", "box", "close"), ("hand-insert-v3", "puck", "insert"),
    ("pick-out-of-hole-v3", "peg", "remove"), ("push-wall-v3", "puck", "push"),
]
TASKS: dict[str, TaskCell] = {t: TaskCell(t, o, a, ANTONYMS.get(a)) for t, o, a in _CELLS + _EXTRA_CELLS}

TASK_SETS: dict[str, list[str]] = {
    "core": [t for t, _, _ in _CELLS],
    "extended": [t for t, _, _ in _CELLS + _EXTRA_CELLS],
    # Small but complete: two objects with both antonyms, one shared verb pair, and no-change.
    "tiny": ["drawer-open-v3", "drawer-close-v3", "window-open-v3", "window-close-v3", "reach-v3"],
    "demo": ["drawer-open-v3", "drawer-close-v3", "window-open-v3", "window-close-v3", "faucet-open-v3",
             "faucet-close-v3", "reach-v3"],
}


def resolve_tasks(spec: str) -> list[str]:
    """A task-set name or a comma-separated list of task names (set names may be mixed in)."""
    names: list[str] = []
    for part in (s.strip() for s in spec.split(",")):
        for name in TASK_SETS.get(part, [part] if part else []):
            if name not in names:
                names.append(name)
    if not names:
        raise ValueError(f"no tasks in {spec!r}; known sets {sorted(TASK_SETS)}")
    unknown = [n for n in names if n not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; known sets {sorted(TASK_SETS)}, tasks {sorted(TASKS)}")
    return names
