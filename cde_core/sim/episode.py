"""One episode definition for every consumer: the pair generator and the simulated ROS robot.

An episode of (task, seed, failure, appearance): reset; the before frame; the commanded motion (the task's
scripted policy run to success, or a planned failure: stopped early, no motion, another task's motion);
`settle_steps` holding still; the hand moved clear; with `after_frame` "rest", holding still until the
scene's objects rest (`settle.hold_until_rest`); the after frame; the label from what the object did, with
`label_check` "state" checked against the object's own joint (`label_check.check_label`). The defaults
("fixed", "off") are the episodes the shipped demo model was trained on, step for step.
`run_episode` drives it step by step and calls `on_frame` at every frame it makes, so the generator keeps
the before and after frames and the robot node publishes every frame as it comes, and both get the same
pixels and masks for the same episode. The first demo failed on exactly that skew: two episode loops
with different steps, looks and failure modes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from cde_core.data.manifest import NO_CHANGE
from cde_core.sim.label_check import LabelCheck, check_label
from cde_core.sim.object_state import STATE_COORDINATES, read_state
from cde_core.sim.scene import stable_seed
from cde_core.sim.settle import REST_LIMIT, REST_SPEED, REST_WINDOW, RestResult, hold_until_rest
from cde_core.sim.tasks import TASKS, TaskCell

FAILURE_MODES = ("stopped_early", "no_motion", "wrong_task")
APPEARANCES = ("default", "random")  # Meta-World's own look; randomised colours, lights, camera jitter
MOVED_M = 0.01  # the object moved less than this: the world did not change
WRONG_TASK_STEPS = 80
STOP_EARLY_STEPS = (10, 60)  # a stopped-early policy runs this many steps (uniform, seeded)
AFTER_FRAMES = ("fixed", "rest")  # after the hand moved clear at once, or once the scene is at rest
LABEL_CHECKS = ("off", "state")  # the label from the policy's outcome, or checked against the object's joint


@dataclass(frozen=True)
class EpisodeSpec:
    """What one episode is; everything else follows from it deterministically."""

    task: str
    seed: int
    failure: str | None = None  # one of FAILURE_MODES, or None for the commanded task run to success
    other_task: str | None = None  # the task whose policy runs in a wrong_task episode
    appearance: str = "random"  # one of APPEARANCES


@dataclass(frozen=True)
class EpisodeSettings:
    """How episodes run (the same for training pairs and the live robot)."""

    max_steps: int = 500
    settle_steps: int = 15
    clear_hand: bool = True
    frame_every: int = 8  # steps between frames while the arm moves (what a camera sees; the robot publishes them)
    after_frame: str = "fixed"  # one of AFTER_FRAMES
    rest_speed: float = REST_SPEED  # with after_frame "rest": m/s or rad/s under which the scene is still
    rest_window: int = REST_WINDOW  # ... over this many steps
    rest_limit: int = REST_LIMIT  # ... waiting at most this many steps
    label_check: str = "off"  # one of LABEL_CHECKS

    def validate(self) -> None:
        """Raise ValueError naming a bad option (before any episode runs)."""
        if self.after_frame not in AFTER_FRAMES:
            raise ValueError(f"after_frame {self.after_frame!r} not in {AFTER_FRAMES}")
        if self.label_check not in LABEL_CHECKS:
            raise ValueError(f"label_check {self.label_check!r} not in {LABEL_CHECKS}")
        if self.rest_window < 1 or self.rest_limit < self.rest_window or self.rest_speed <= 0:
            raise ValueError(f"rest options need rest_window >= 1, rest_limit >= rest_window, rest_speed > 0 "
                             f"(got {self.rest_window}, {self.rest_limit}, {self.rest_speed})")


@dataclass
class EpisodeFrame:
    """One moment of an episode, every configured camera: RGB and robot mask per camera."""

    phase: str  # "before" | "moving" | "after"
    step: int
    rgb: dict[str, np.ndarray]
    mask: dict[str, np.ndarray]


@dataclass
class EpisodeOutcome:
    spec: EpisodeSpec
    success: bool
    moved_m: float
    steps: int
    label: tuple[str, str, bool] | None  # (action, kind, effect_happened); None: no honest label
    before: EpisodeFrame | None = None
    after: EpisodeFrame | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    rest: RestResult | None = None  # with after_frame "rest": how long the scene took to come to rest
    check: LabelCheck | None = None  # with label_check "state": what the check made of the label


def plan_episode(task: str, seed: int, failure_fraction: float, appearance: str = "random",
                 failure_modes: tuple[str, ...] = FAILURE_MODES) -> EpisodeSpec:
    """Whether (task, seed) is a failed episode, and how; `appearance` "mixed" picks default or random per
    (task, seed). Deterministic: the same arguments give the same spec in every process."""
    rng = np.random.default_rng(stable_seed("plan", task, seed))
    failure, other = None, None
    if TASKS[task].action != NO_CHANGE and rng.random() < failure_fraction:
        failure = failure_modes[int(rng.integers(len(failure_modes)))]
        if failure == "wrong_task":
            others = sorted(t for t in TASKS if TASKS[t].object != TASKS[task].object)
            other = others[int(rng.integers(len(others)))]
    if appearance == "mixed":
        look_rng = np.random.default_rng(stable_seed("appearance", task, seed))
        appearance = APPEARANCES[int(look_rng.integers(len(APPEARANCES)))]
    if appearance not in APPEARANCES:
        raise ValueError(f"appearance {appearance!r} not in {APPEARANCES + ('mixed',)}")
    return EpisodeSpec(task, seed, failure, other, appearance)


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


def _frame(scene: Any, phase: str, cameras: tuple[str, ...]) -> EpisodeFrame:
    return EpisodeFrame(phase, scene.steps, {c: scene.render(c) for c in cameras},
                        {c: scene.render_robot_mask(c) for c in cameras})


def run_episode(scene: Any, spec: EpisodeSpec, settings: EpisodeSettings,
                on_frame: Callable[[EpisodeFrame], bool | None] | None = None,
                moving_frames: bool = False) -> EpisodeOutcome:
    """Run `spec` in `scene` (a MetaWorldScene of spec.task); returns the outcome with its before and after
    frames. With `moving_frames`, a frame is also rendered every `frame_every` steps of the motion and
    passed to `on_frame`; `on_frame` returning True stops the motion early (the robot is shutting down).
    `settings.after_frame` and `settings.label_check` choose when the after frame is taken and how the label
    is checked; `outcome.label` is the label to use (None: no honest label, drop the episode)."""
    from cde_core.sim.scene import scripted_policy

    if spec.task != scene.config.task:
        raise ValueError(f"episode of {spec.task} run in a scene of {scene.config.task}")
    settings.validate()
    coordinate = STATE_COORDINATES.get(spec.task) if settings.label_check == "state" else None
    random_look = spec.appearance == "random"
    scene.reset(spec.seed, randomize_appearance=random_look, camera_jitter=random_look)
    cameras = tuple(scene.config.cameras)
    before = _frame(scene, "before", cameras)
    if on_frame is not None:
        on_frame(before)
    start = scene.object_position
    state_before = read_state(scene, coordinate) if coordinate is not None else None
    if spec.failure is None:
        limit = settings.max_steps
        policy = None
    elif spec.failure == "stopped_early":
        limit = int(scene.rng.integers(*STOP_EARLY_STEPS))
        policy = None
    elif spec.failure == "wrong_task":
        limit = WRONG_TASK_STEPS
        policy = scripted_policy(spec.other_task or spec.task)
    else:  # no_motion: the arm never moves; only the settling below
        limit, policy = 0, None
    moved_steps = 0
    while moved_steps < limit and not (policy is None and scene.success):  # the own policy stops at success
        scene.step(None if policy is None else scene.policy_action(policy))
        moved_steps += 1
        if moving_frames and on_frame is not None and moved_steps % settings.frame_every == 0:
            if on_frame(_frame(scene, "moving", cameras)):
                break
    for _ in range(settings.settle_steps):
        scene.hold()
    if settings.clear_hand:
        scene.move_hand_clear()
    rest = None
    if settings.after_frame == "rest":
        rest = hold_until_rest(scene, settings.rest_speed, settings.rest_window, settings.rest_limit)
    moved = float(np.linalg.norm(scene.object_position - start))
    after = _frame(scene, "after", cameras)
    if on_frame is not None:
        on_frame(after)
    cell = TASKS[spec.task]
    label = label_episode(cell, spec.failure, scene.success, moved)
    check = None
    if settings.label_check == "state":
        change = None
        if coordinate is not None and state_before is not None:
            change = coordinate.sign * (read_state(scene, coordinate) - state_before)
        check = check_label(cell, label, coordinate, change)
        label = check.label
    return EpisodeOutcome(spec, scene.success, moved, scene.steps, label, before, after, rest=rest, check=check)
