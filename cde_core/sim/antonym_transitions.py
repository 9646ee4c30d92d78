"""Are an object's antonym tasks each other's reverse? Measured on the object's own joint.

The paper's antonym claim (deltas of open and close on one object point opposite ways) assumes reversible
actions: close starts where open ends and ends where open starts, so delta(close) = -delta(open) for any
encoder. Meta-World does not always build its tasks that way. A faucet's open and close both start with the
knob at 0 and turn it +1.6 rad and -1.6 rad: each delta removes the same start pose and adds a mirrored end
pose, so they share half their content and a positive cosine is what an honest encoder gives. This module
runs each antonym task's episode as the v2 generator does (policy, hand moved clear, after frame at rest),
reads the joint of `object_state.py` at the start and at rest, and names the pair "reverse" or "shared start",
so the benchmark's antonym target can be read per object (README "Benchmark").
"""
from __future__ import annotations

from dataclasses import dataclass
from statistics import median

from cde_core.sim.object_state import STATE_COORDINATES
from cde_core.sim.tasks import TASKS

REVERSE, SHARED_START, OTHER = "reverse", "shared start", "other"


@dataclass(frozen=True)
class Transition:
    """One task's joint position at the episode's start and once the scene rests (medians over seeds)."""

    task: str
    start: float
    end: float


def transition_kind(a: Transition, b: Transition, tolerance: float) -> str:
    """`reverse`: the starts differ and each task moves towards the other's start (the same stretch of the
    joint, run both ways; Meta-World's drawer opening stops short of the closing's start, still reverse);
    `shared start`: both start within `tolerance` of one position and move to opposite sides of it; else
    `other` (one did not move, or both move the same way)."""
    da, db = a.end - a.start, b.end - b.start
    if abs(da) <= tolerance or abs(db) <= tolerance:
        return OTHER
    if abs(a.start - b.start) <= tolerance:
        return SHARED_START if da * db < 0 else OTHER
    towards_b, towards_a = (b.start - a.start) * da > 0, (a.start - b.start) * db > 0
    return REVERSE if towards_b and towards_a else OTHER


def antonym_task_pairs(tasks: list[str]) -> list[tuple[str, str]]:
    """(task, antonym task) on the same object, each pair once, for the tasks whose joint is known."""
    pairs = []
    for task in tasks:
        cell = TASKS[task]
        for other in tasks:
            o = TASKS[other]
            if (o.object == cell.object and o.action == cell.antonym and task < other
                    and task in STATE_COORDINATES and other in STATE_COORDINATES):
                pairs.append((task, other))
    return pairs


def measure_transition(task: str, seeds: list[int]) -> Transition:
    """Run the task's commanded episode (default look) from each seed with the v2 generator's settings and
    read the joint at the start and at rest; the medians over seeds."""
    from cde_core.sim.episode import EpisodeSettings, EpisodeSpec, run_episode
    from cde_core.sim.object_state import read_state
    from cde_core.sim.scene import MetaWorldScene, SceneConfig

    coordinate = STATE_COORDINATES[task]
    settings = EpisodeSettings(after_frame="rest", label_check="state")
    starts, ends = [], []
    with MetaWorldScene(SceneConfig(task=task, cameras=("object",), size=32)) as scene:
        for seed in seeds:
            scene.reset(seed)
            starts.append(read_state(scene, coordinate))
            run_episode(scene, EpisodeSpec(task, seed, appearance="default"), settings)  # resets to the same start
            ends.append(read_state(scene, coordinate))
    return Transition(task, median(starts), median(ends))


def tolerance_for(task: str) -> float:
    """Half the task's `done` change: two positions closer than that are one state."""
    return STATE_COORDINATES[task].done / 2
