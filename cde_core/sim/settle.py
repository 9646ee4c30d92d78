"""Waiting for the scene to come to rest before the after frame.

Meta-World's objects keep moving after the hand lets go: the drawer slides back from ~0.2 m open to
~0.037 m within ~70 steps, a door swings back by up to 0.8 rad, a handle springs up. An after frame taken
a fixed number of steps after the motion catches some of them mid-way, so the pixels and the label
describe a moment the scene does not keep. `hold_until_rest` holds the hand still until nothing but the
robot moves.

"Still" is the net change of every object coordinate (`MetaWorldScene.object_coordinates`: slide/hinge
joint positions, free bodies' x, y, z) over the last `window` steps, as a speed, under `speed`. Not MuJoCo's
qvel: a puck lying on the table reads ~0.03 m/s and ~0.3 rad/s of contact jitter while it goes nowhere
(measured on push-v3 and reach-v3), so an instantaneous velocity test never ends; the net change does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# 0.005 m/s is 0.3 mm over the 5-step window. The drawer's slide-back decays by half about every 10 steps, so
# once its window speed is under 0.005 m/s it has < 1 mm left to go (a third of a pixel at 224 px for the
# object camera, ~2.8 mm per pixel at 0.75 m); 0.01 m/s left ~1.1 mm measured over the next 20 steps. For a
# hinge 0.005 rad/s (~1.5 mm/s at a door handle). Measured (seeds 0-3, after the policy's success, the 15
# settle steps and the hand moved clear): the drawer rests after 73-83 steps, door-open 15-28, handle-press 30,
# window-close 12-17, coffee-push 7-55, push-v3 17-35 (one seed's puck creeps on past 200); a stick task's
# container slides on for more than 200 (the limit is hit, and recorded).
REST_SPEED = 0.005
REST_WINDOW = 5
REST_LIMIT = 200


@dataclass(frozen=True)
class RestResult:
    """How long the scene took to come to rest after the motion (or that it did not within the limit)."""

    steps: int
    limit_hit: bool


def hold_until_rest(scene: Any, speed: float = REST_SPEED, window: int = REST_WINDOW,
                    limit: int = REST_LIMIT) -> RestResult:
    """Hold the hand still (`scene.hold()`) until the scene's objects rest: their net change over the last
    `window` steps is under `speed` (m/s or rad/s) for every coordinate; at most `limit` steps. At least
    `window` steps run, so a scene that was already still is shown to be."""
    if window < 1 or limit < window:
        raise ValueError(f"rest window ({window}) must be >= 1 and the step limit ({limit}) >= the window")
    if speed <= 0:
        raise ValueError(f"rest speed {speed} must be > 0")
    history = [scene.object_coordinates]
    tolerance = speed * window * scene.step_seconds
    for step in range(1, limit + 1):
        scene.hold()
        history.append(scene.object_coordinates)
        if step >= window and (history[-1].size == 0 or
                               float(np.abs(history[-1] - history[-1 - window]).max()) < tolerance):
            return RestResult(step, False)
    return RestResult(limit, True)
