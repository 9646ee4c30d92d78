"""`cde sim generate`: before/after pairs from Meta-World's scripted policies, with failed episodes.

Per (task, seed) one episode: the before frame at reset; the policy runs to success (or, for a failed
episode, stops early / does nothing / runs another task's policy); the scene holds still to settle;
optionally the hand moves clear; the after frame. Every configured camera renders the same episode.
Labels: `action` is what the world underwent. For a failed episode it is "none" when the object moved
less than 1 cm, else the commanded action (a partial effect), with `effect_happened` false.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cde_core.data.manifest import NO_CHANGE, PairRecord, write_manifest
from cde_core.data.splits import assign_splits
from cde_core.sim.scene import MetaWorldScene, SceneConfig, _stable_seed
from cde_core.sim.tasks import TASKS, resolve_tasks

_LOG = logging.getLogger(__name__)
FAILURE_MODES = ("stopped_early", "no_motion", "wrong_task")
MOVED_M = 0.01


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


@dataclass
class EpisodeSpec:
    task: str
    seed: int
    failure: str | None = None
    other_task: str | None = None
    config: GenerationConfig = field(default_factory=GenerationConfig)


def plan_episodes(config: GenerationConfig) -> list[EpisodeSpec]:
    """Which (task, seed) pairs become failed episodes, decided by a seeded generator (deterministic)."""
    tasks = resolve_tasks(config.tasks)
    specs: list[EpisodeSpec] = []
    for task in tasks:
        for seed in range(*config.seeds):
            rng = np.random.default_rng(_stable_seed("plan", task, seed))
            failure = None
            other = None
            if TASKS[task].action != NO_CHANGE and rng.random() < config.failure_fraction:
                failure = FAILURE_MODES[int(rng.integers(len(FAILURE_MODES)))]
                if failure == "wrong_task":
                    others = [t for t in tasks if t != task and TASKS[t].object != TASKS[task].object]
                    other = others[int(rng.integers(len(others)))] if others else None
                    failure = failure if other else "no_motion"
            specs.append(EpisodeSpec(task, seed, failure, other, config))
    return specs


def run_episode(spec: EpisodeSpec, out: Path) -> list[dict[str, Any]]:
    """Simulate one episode and write its PNGs; returns manifest rows (one per camera)."""
    from PIL import Image

    from cde_core.sim.scene import _policy_for

    cfg = spec.config
    cell = TASKS[spec.task]
    scene = MetaWorldScene(SceneConfig(spec.task, spec.seed, tuple(cfg.cameras), cfg.size,
                                       cfg.randomize_appearance, cfg.camera_jitter))
    try:
        before = {cam: scene.render(cam) for cam in cfg.cameras}
        start = scene.object_position
        if spec.failure is None:
            while not scene.success and scene.steps < cfg.max_steps:
                scene.step()
        elif spec.failure == "stopped_early":
            for _ in range(int(scene.rng.integers(5, 30))):
                scene.step()
        elif spec.failure == "wrong_task":
            other = _policy_for(spec.other_task or spec.task)
            for _ in range(60):
                scene.step(other.get_action(scene.obs))
        for _ in range(cfg.settle_steps):
            scene.hold()
        if cfg.clear_hand:
            scene.move_hand_clear()
        after = {cam: scene.render(cam) for cam in cfg.cameras}
        moved = float(np.linalg.norm(scene.object_position - start))
        success = scene.success
    finally:
        scene.close()
    if spec.failure is None and (cell.action == NO_CHANGE or success):
        kind = "no_change" if cell.action == NO_CHANGE else "effect"
        action, happened = cell.action, cell.action != NO_CHANGE
    else:  # the commanded effect did not happen (a planned failure, or the policy did not succeed)
        kind, happened = "failed", False
        if moved < MOVED_M:
            action = NO_CHANGE
        elif spec.failure == "wrong_task":
            _LOG.info("dropping %s seed %d: another task's motion moved the object (no honest label)",
                      spec.task, spec.seed)
            return []
        else:
            action = cell.action  # a partial effect of the commanded action
    rows = []
    for cam in cfg.cameras:
        pid = f"{spec.task}-s{spec.seed:04d}-{cam}"
        paths = {}
        for tag, image in (("before", before[cam]), ("after", after[cam])):
            rel = f"images/{pid}_{tag}.png"
            Image.fromarray(image).save(out / rel)
            paths[tag] = rel
        rows.append(dict(id=pid, before=paths["before"], after=paths["after"], action=action, object=cell.object,
                         antonym=cell.antonym if action == cell.action else None, commanded_action=cell.action,
                         effect_happened=bool(happened), kind=kind, source="metaworld", task=spec.task,
                         seed=spec.seed, camera=cam, splits={}))
    return [dict(r, _failure=spec.failure, _moved=moved) for r in rows]


def _worker(args: tuple[EpisodeSpec, str]) -> list[dict[str, Any]]:
    spec, out = args
    return run_episode(spec, Path(out))


def generate(config: GenerationConfig, out: str | Path, progress: bool = True) -> list[PairRecord]:
    import multiprocessing

    from tqdm import tqdm

    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    specs = plan_episodes(config)
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    jobs = [(s, str(out)) for s in specs]
    bar = tqdm(total=len(jobs), desc="sim pairs", unit="episode", disable=not progress)
    if config.workers <= 1:
        for job in jobs:
            rows.extend(_worker(job))
            bar.update(1)
    else:
        with multiprocessing.get_context("spawn").Pool(config.workers) as pool:
            for result in pool.imap(_worker, jobs):
                rows.extend(result)
                bar.update(1)
    bar.close()
    seconds = time.perf_counter() - start
    failures = {r["id"]: (r.pop("_failure"), r.pop("_moved")) for r in rows}
    records = [PairRecord(**r) for r in rows]
    summary = assign_splits(records, seed=config.split_seed, folds=config.folds)
    write_manifest(out, records)
    meta = {"source": "metaworld", "config": asdict(config), "episodes": len(specs), "pairs": len(records),
            "seconds": seconds, "seconds_per_pair": seconds / max(1, len(records)),
            "failures": {k: v[0] for k, v in failures.items() if v[0]}, "splits": summary}
    (out / "generation.json").write_text(json.dumps(meta, indent=2))
    _LOG.info("%d pairs in %.0f s (%.2f s/pair, %d workers)", len(records), seconds,
              seconds / max(1, len(records)), config.workers)
    return records
