"""`cde sim generate`: before/after pairs from Meta-World's scripted policies, with failed episodes.

Per (task, seed) one episode of `cde_core.sim.episode` (the same code the simulated ROS robot runs): the
before frame after reset; the policy runs to success (or, for a failed episode, stops early / holds still /
runs another task's policy); the scene holds still to settle; optionally the hand moves clear; the after
frame. Every configured camera renders the same episode, so the pairs of one episode differ only in the
view (splits keep them together). Beside each frame a robot mask PNG (255 = robot), the self-mask a real
robot's URDF filter would give. `appearance` "mixed" (the default) draws Meta-World's own look or
randomised colours, lights and camera jitter per episode, so a model trained on it sees both.

Labels (`label_episode`): `action` is what the world underwent. A commanded task that succeeded is an
`effect` pair of its cell; a reach task is `no_change`. A failed episode (planned, or the policy did
not succeed in `max_steps`) has `effect_happened` false and is labelled "none" when the object moved
less than 1 cm, else the commanded action (a partial effect); another task's motion that moved the
object has no honest label and is dropped (counted in generation.json).

Benchmark v2 options (defaults reproduce the frames and labels above): `after_frame` "rest" takes the after
frame once the scene is still (Meta-World's drawer slides back after the hand lets go); generation.json
`at_rest` gives the steps it took per task and the episodes that hit `rest_limit`. `label_check` "state"
checks each label against the object's own joint (`cde_core.sim.label_check`); generation.json
`label_check` counts per task the labels kept, changed (by transition) and dropped (and why), and lists
each changed or dropped episode.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

from cde_core.data.manifest import PairRecord, write_manifest
from cde_core.data.splits import assign_splits
from cde_core.sim.episode import (AFTER_FRAMES, APPEARANCES, FAILURE_MODES, LABEL_CHECKS, EpisodeSettings,
                                  EpisodeSpec, label_episode, plan_episode, run_episode)
from cde_core.sim.label_check import LabelCheck
from cde_core.sim.settle import REST_LIMIT, RestResult
from cde_core.sim.tasks import TASKS, resolve_tasks

__all__ = ["EpisodeSpec", "GenerationConfig", "GenerationError", "generate", "label_episode", "plan_episodes",
           "run_episodes", "FAILURE_MODES"]
_LOG = logging.getLogger(__name__)
EPISODES_PER_JOB = 8  # consecutive seeds of one task share a scene (and its renderer) in a worker


class GenerationError(RuntimeError):
    """Generation could not run as configured (bad options, or an episode failed to simulate)."""


@dataclass
class GenerationConfig:
    tasks: str = "core"
    cameras: tuple[str, ...] = ("corner3", "object")
    seeds: tuple[int, int] = (0, 20)  # [start, stop)
    size: int = 224
    appearance: str = "mixed"  # default | random | mixed (per episode)
    clear_hand: bool = True
    failure_fraction: float = 0.15
    max_steps: int = 500
    settle_steps: int = 15
    after_frame: str = "fixed"  # fixed | rest (see EpisodeSettings)
    rest_limit: int = REST_LIMIT  # with after_frame "rest": at most this many steps waiting
    label_check: str = "off"  # off | state
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
        if self.appearance not in APPEARANCES + ("mixed",):
            raise GenerationError(f"appearance {self.appearance!r} not in {APPEARANCES + ('mixed',)}")
        if self.after_frame not in AFTER_FRAMES:
            raise GenerationError(f"after frame {self.after_frame!r} not in {AFTER_FRAMES}")
        if self.label_check not in LABEL_CHECKS:
            raise GenerationError(f"label check {self.label_check!r} not in {LABEL_CHECKS}")
        try:
            self.settings.validate()
        except ValueError as exc:
            raise GenerationError(str(exc)) from exc

    @property
    def settings(self) -> EpisodeSettings:
        return EpisodeSettings(max_steps=self.max_steps, settle_steps=self.settle_steps, clear_hand=self.clear_hand,
                               after_frame=self.after_frame, rest_limit=self.rest_limit, label_check=self.label_check)


@dataclass
class EpisodeResult:
    spec: EpisodeSpec
    records: list[PairRecord] = field(default_factory=list)
    success: bool = False
    moved_m: float = 0.0
    steps: int = 0
    dropped: str = ""  # why the episode gave no pairs
    rest: RestResult | None = None  # with after_frame "rest"
    check: LabelCheck | None = None  # with label_check "state"


def plan_episodes(config: GenerationConfig) -> list[EpisodeSpec]:
    """Which (task, seed) pairs become failed episodes, and their look, decided per (task, seed)."""
    return [plan_episode(task, seed, config.failure_fraction, config.appearance)
            for task in resolve_tasks(config.tasks) for seed in range(*config.seeds)]


def _run_one(scene: Any, spec: EpisodeSpec, config: GenerationConfig, out: Path) -> EpisodeResult:
    from PIL import Image

    outcome = run_episode(scene, spec, config.settings)
    result = EpisodeResult(spec, success=outcome.success, moved_m=outcome.moved_m, steps=outcome.steps,
                           rest=outcome.rest, check=outcome.check)
    if outcome.label is None:
        if outcome.check is not None and outcome.check.verdict == "dropped":
            result.dropped = f"label check: {outcome.check.reason}"
        else:
            result.dropped = f"object moved {outcome.moved_m:.3f} m with no honest label ({spec.failure or 'reach'})"
        _LOG.info("dropping %s seed %d: %s", spec.task, spec.seed, result.dropped)
        return result
    assert outcome.before is not None and outcome.after is not None
    cell = TASKS[spec.task]
    action, kind, happened = outcome.label
    for cam in config.cameras:
        pid = f"{spec.task}-s{spec.seed:04d}-{cam}"
        paths = {name: f"images/{pid}_{name}.png" for name in ("before", "after", "before_mask", "after_mask")}
        for frame in (outcome.before, outcome.after):
            Image.fromarray(frame.rgb[cam]).save(out / paths[frame.phase])
            Image.fromarray(frame.mask[cam]).save(out / paths[f"{frame.phase}_mask"])
        result.records.append(PairRecord(
            id=pid, before=paths["before"], after=paths["after"], action=action, object=cell.object,
            antonym=cell.antonym if action == cell.action else None, commanded_action=cell.action,
            effect_happened=happened, kind=kind, source="metaworld", task=spec.task, seed=spec.seed, camera=cam,
            before_mask=paths["before_mask"], after_mask=paths["after_mask"], appearance=spec.appearance))
    return result


def run_episodes(specs: list[EpisodeSpec], config: GenerationConfig, out: str | Path) -> list[EpisodeResult]:
    """Simulate episodes of one task in one scene (reset per seed) and write their PNGs."""
    from cde_core.sim.scene import MetaWorldScene, SceneConfig

    if len({s.task for s in specs}) > 1:
        raise GenerationError("run_episodes takes episodes of a single task")
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    scene = MetaWorldScene(SceneConfig(specs[0].task, specs[0].seed, tuple(config.cameras), config.size,
                                       max_steps=config.max_steps))
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


def _episode_id(spec: EpisodeSpec) -> str:
    return f"{spec.task}-s{spec.seed:04d}"


def at_rest_report(results: list[EpisodeResult], limit: int) -> dict[str, Any]:
    """Per task: how many steps after the motion the scene took to come to rest, and how many episodes hit
    the limit (their after frame may still show motion); each episode's steps."""
    steps: dict[str, list[int]] = {}
    hit: dict[str, list[str]] = {}
    for r in results:
        if r.rest is not None:
            steps.setdefault(r.spec.task, []).append(r.rest.steps)
            hit.setdefault(r.spec.task, [])
            if r.rest.limit_hit:
                hit[r.spec.task].append(_episode_id(r.spec))
    every = [n for task_steps in steps.values() for n in task_steps]
    return {
        "limit": limit, "mean_steps": round(sum(every) / max(len(every), 1), 1),
        "limit_hit": sorted(e for episodes in hit.values() for e in episodes),
        "per_task": {task: {"episodes": len(n), "mean_steps": round(sum(n) / len(n), 1), "max_steps": max(n),
                            "limit_hit": len(hit[task])} for task, n in steps.items()},
        "steps": {_episode_id(r.spec): r.rest.steps for r in results if r.rest is not None},
    }


def label_check_report(results: list[EpisodeResult]) -> dict[str, Any]:
    """Per task: labels the state check kept, changed, dropped, left unchecked (no state coordinate or a
    no-change task) or found unlabelled; the changes by transition and drops by cause; every changed or
    dropped episode with its reason."""
    from cde_core.sim.label_check import VERDICTS

    per_task: dict[str, dict[str, Any]] = {}
    episodes: dict[str, Any] = {}
    for r in results:
        if r.check is None:
            continue
        row = per_task.setdefault(r.spec.task, {**{v: 0 for v in VERDICTS}, "transitions": {}})
        row[r.check.verdict] += 1
        if r.check.verdict in ("changed", "dropped"):
            row["transitions"][r.check.transition] = row["transitions"].get(r.check.transition, 0) + 1
            episodes[_episode_id(r.spec)] = {"verdict": r.check.verdict, "failure": r.spec.failure,
                                             "policy_label": r.check.policy_label, "label": r.check.label,
                                             "state_class": r.check.state_class,
                                             "change": None if r.check.change is None else round(r.check.change, 4),
                                             "reason": r.check.reason}
    totals = {v: sum(row[v] for row in per_task.values()) for v in VERDICTS}
    return {"totals": totals, "per_task": per_task, "episodes": episodes}


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
        "appearances": {a: sum(r.spec.appearance == a for r in results) for a in APPEARANCES},
        "splits": summary,
    }
    if config.after_frame == "rest":
        meta["at_rest"] = at_rest_report(results, config.rest_limit)
    if config.label_check != "off":
        meta["label_check"] = label_check_report(results)
    (out / "generation.json").write_text(json.dumps(meta, indent=2))
    _LOG.info("%d pairs from %d episodes in %.1f s (%.3f s/pair, %d workers)", len(records), len(specs),
              seconds, seconds / len(records), config.workers)
    return records
