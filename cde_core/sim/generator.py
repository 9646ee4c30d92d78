"""`cde sim generate`: before/after pairs from Meta-World's scripted policies, with failed episodes.

Per (task, seed) one episode: the before frame after reset; the policy runs to success (or, for a
failed episode, stops early / holds still / runs another task's policy); the scene holds still to
settle; optionally the hand moves clear; the after frame. Every configured camera renders the same
episode, so the pairs of one episode differ only in the view (splits keep them together).

Labels (`label_episode`): `action` is what the world underwent. A commanded task that succeeded is an
`effect` pair of its cell; a reach task is `no_change`. A failed episode (planned, or the policy did
not succeed in `max_steps`) has `effect_happened` false and is labelled "none" when the object moved
less than 1 cm, else the commanded action (a partial effect); another task's motion that moved the
object has no honest label and is dropped (counted in generation.json).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np

from cde_core.data.manifest import NO_CHANGE, PairRecord, write_manifest
from cde_core.data.splits import assign_splits
from cde_core.sim.scene import stable_seed
from cde_core.sim.tasks import TASKS, TaskCell, resolve_tasks

_LOG = logging.getLogger(__name__)
FAILURE_MODES = ("stopped_early", "no_motion", "wrong_task")
MOVED_M = 0.01  # the object moved less than this: the world did not change
WRONG_TASK_STEPS = 80
STOP_EARLY_STEPS = (10, 60)  # a stopped-early policy runs this many steps (uniform, seeded)
EPISODES_PER_JOB = 8  # consecutive seeds of one task share a scene (and its renderer) in a worker


class GenerationError(RuntimeError):
    """Generation could not run as configured (bad options, or an episode failed to simulate)."""


@dataclass
class GenerationConfig:
    tasks: str = "core"
    cameras: tuple[str, ...] = ("corner3", "object")
    seeds: tuple[int, int] = (0, 20)  # [start, stop)
    size: int = 224
    randomize_appearance: bool = True
    camera_jitter: bool = True
    clear_hand: bool = True
    failure_fraction: float = 0.15
    max_steps: int = 500
    settle_steps: int = 15
    workers: int = 2
    split_seed: int = 0
    folds: int = 2

    def validate(self) -> None:
        """Raise GenerationError naming the bad option, before any process starts."""
        resolve_tasks(self.tasks)  # raises ValueError naming unknown tasks
        if not self.cameras:
            raise GenerationError("no cameras given (e.g. --cameras corner3,object)")
        if self.seeds[1] <= self.seeds[0]:
            raise GenerationError(f"empty seed range {self.seeds[0]}:{self.seeds[1]} (STOP must exceed START)")
        if self.size < 16:
            raise GenerationError(f"image size {self.size} is too small (>= 16)")
        if not 0.0 <= self.failure_fraction <= 1.0:
            raise GenerationError(f"failure fraction {self.failure_fraction} not in [0, 1]")
        if self.workers < 1 or self.folds < 1:
            raise GenerationError(f"workers ({self.workers}) and folds ({self.folds}) must be >= 1")


@dataclass
class EpisodeSpec:
    task: str
    seed: int
    failure: str | None = None  # one of FAILURE_MODES, or None for the commanded task run to success
    other_task: str | None = None  # the task whose policy runs in a wrong_task episode


@dataclass
class EpisodeResult:
    spec: EpisodeSpec
    records: list[PairRecord] = field(default_factory=list)
    success: bool = False
    moved_m: float = 0.0
    steps: int = 0
    dropped: str = ""  # why the episode gave no pairs


def plan_episodes(config: GenerationConfig) -> list[EpisodeSpec]:
    """Which (task, seed) pairs become failed episodes, decided per (task, seed) (deterministic)."""
    tasks = resolve_tasks(config.tasks)
    specs: list[EpisodeSpec] = []
    for task in tasks:
        for seed in range(*config.seeds):
            rng = np.random.default_rng(stable_seed("plan", task, seed))
            failure, other = None, None
            if TASKS[task].action != NO_CHANGE and rng.random() < config.failure_fraction:
                failure = FAILURE_MODES[int(rng.integers(len(FAILURE_MODES)))]
                if failure == "wrong_task":
                    others = sorted(t for t in TASKS if TASKS[t].object != TASKS[task].object)
                    other = others[int(rng.integers(len(others)))]
            specs.append(EpisodeSpec(task, seed, failure, other))
    return specs


def label_episode(cell: TaskCell, failure: str | None, success: bool,
                  moved_m: float) -> tuple[str, str, bool] | None:
    """(action, kind, effect_happened) for an episode's outcome, or None when no honest label exists."""
    if cell.action == NO_CHANGE:
        return (NO_CHANGE, "no_change", False) if moved_m < MOVED_M else None  # a reach that moved things
    if failure is None and success:
        return cell.action, "effect", True
    if moved_m < MOVED_M:
        return NO_CHANGE, "failed", False
    if failure == "wrong_task":
        return None  # another task's motion changed the object in a way we have no verb for
    return cell.action, "failed", False  # a partial effect of the commanded action


def _run_one(scene: Any, spec: EpisodeSpec, config: GenerationConfig, out: Path) -> EpisodeResult:
    from PIL import Image

    from cde_core.sim.scene import scripted_policy

    scene.reset(spec.seed)
    cell = TASKS[spec.task]
    before = {cam: scene.render(cam) for cam in config.cameras}
    start = scene.object_position
    if spec.failure is None:
        scene.run_policy(config.max_steps)
    elif spec.failure == "stopped_early":
        scene.run_policy(int(scene.rng.integers(*STOP_EARLY_STEPS)))
    elif spec.failure == "wrong_task":
        other = scripted_policy(spec.other_task or spec.task)
        for _ in range(WRONG_TASK_STEPS):
            scene.step(scene.policy_action(other))
    for _ in range(config.settle_steps):  # no_motion: only these
        scene.hold()
    if config.clear_hand:
        scene.move_hand_clear()
    moved = float(np.linalg.norm(scene.object_position - start))
    result = EpisodeResult(spec, success=scene.success, moved_m=moved, steps=scene.steps)
    label = label_episode(cell, spec.failure, scene.success, moved)
    if label is None:
        result.dropped = f"object moved {moved:.3f} m with no honest label ({spec.failure or 'reach'})"
        _LOG.info("dropping %s seed %d: %s", spec.task, spec.seed, result.dropped)
        return result
    action, kind, happened = label
    for cam in config.cameras:
        pid = f"{spec.task}-s{spec.seed:04d}-{cam}"
        paths = {"before": f"images/{pid}_before.png", "after": f"images/{pid}_after.png"}
        Image.fromarray(before[cam]).save(out / paths["before"])
        Image.fromarray(scene.render(cam)).save(out / paths["after"])
        result.records.append(PairRecord(
            id=pid, before=paths["before"], after=paths["after"], action=action, object=cell.object,
            antonym=cell.antonym if action == cell.action else None, commanded_action=cell.action,
            effect_happened=happened, kind=kind, source="metaworld", task=spec.task, seed=spec.seed, camera=cam))
    return result


def run_episodes(specs: list[EpisodeSpec], config: GenerationConfig, out: str | Path) -> list[EpisodeResult]:
    """Simulate episodes of one task in one scene (reset per seed) and write their PNGs."""
    from cde_core.sim.scene import MetaWorldScene, SceneConfig

    if len({s.task for s in specs}) > 1:
        raise GenerationError("run_episodes takes episodes of a single task")
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    scene = MetaWorldScene(SceneConfig(specs[0].task, specs[0].seed, tuple(config.cameras), config.size,
                                       config.randomize_appearance, config.camera_jitter, config.max_steps))
    try:
        results = []
        for spec in specs:
            try:
                results.append(_run_one(scene, spec, config, out))
            except Exception as exc:  # re-raised with the episode named (workers lose the context)
                raise GenerationError(f"episode {spec.task} seed {spec.seed} ({spec.failure or 'commanded'}) "
                                      f"failed: {type(exc).__name__}: {exc}") from exc
        return results
    finally:
        scene.close()


def _worker(job: tuple[list[EpisodeSpec], GenerationConfig, str]) -> list[EpisodeResult]:
    import os

    os.environ.setdefault("MUJOCO_GL", "egl")
    return run_episodes(*job)


def _jobs(specs: list[EpisodeSpec]) -> list[list[EpisodeSpec]]:
    jobs = []
    for _, group in groupby(specs, key=lambda s: s.task):
        group = list(group)
        jobs += [group[i:i + EPISODES_PER_JOB] for i in range(0, len(group), EPISODES_PER_JOB)]
    return jobs


def generate(config: GenerationConfig, out: str | Path, progress: bool = True) -> list[PairRecord]:
    """Render every planned episode (in `workers` processes), split, write manifest + generation.json."""
    import multiprocessing

    from tqdm import tqdm

    config.validate()
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    specs = plan_episodes(config)
    jobs = [(chunk, config, str(out)) for chunk in _jobs(specs)]
    start = time.perf_counter()
    results: list[EpisodeResult] = []
    with tqdm(total=len(specs), desc="sim episodes", unit="ep", disable=not progress) as bar:
        if config.workers <= 1 or len(jobs) == 1:
            for job in jobs:
                results += _worker(job)
                bar.update(len(job[0]))
        else:
            with multiprocessing.get_context("spawn").Pool(min(config.workers, len(jobs))) as pool:
                for chunk in pool.imap(_worker, jobs):
                    results += chunk
                    bar.update(len(chunk))
    seconds = time.perf_counter() - start
    records = [r for result in results for r in result.records]
    if not records:
        raise GenerationError("every episode was dropped; nothing to write")
    summary = assign_splits(records, seed=config.split_seed, folds=config.folds)
    write_manifest(out, records)
    meta = {
        "source": "metaworld", "config": asdict(config), "episodes": len(specs), "pairs": len(records),
        "seconds": round(seconds, 2), "seconds_per_pair": round(seconds / len(records), 4),
        "seconds_per_episode": round(seconds / len(specs), 4),
        "planned_failures": {f"{r.spec.task}-s{r.spec.seed:04d}": r.spec.failure for r in results if r.spec.failure},
        "unplanned_failures": sorted(f"{r.spec.task}-s{r.spec.seed:04d}" for r in results
                                     if r.spec.failure is None and not r.success and r.records
                                     and r.records[0].kind == "failed"),
        "dropped": {f"{r.spec.task}-s{r.spec.seed:04d}": r.dropped for r in results if r.dropped},
        "kinds": {k: sum(r.kind == k for r in records) for k in ("effect", "failed", "no_change")},
        "splits": summary,
    }
    (out / "generation.json").write_text(json.dumps(meta, indent=2))
    _LOG.info("%d pairs from %d episodes in %.1f s (%.3f s/pair, %d workers)", len(records), len(specs),
              seconds, seconds / len(records), config.workers)
    return records
