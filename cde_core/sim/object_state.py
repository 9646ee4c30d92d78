"""The manipulated object's own state: one joint coordinate per task, and how much of it makes the action.

The policy's success flag is Meta-World's verdict at one moment of the motion; the object may not keep
that state (the drawer slides back, a door swings back). For the tasks whose object hangs on one slide or
hinge joint with a fixed start (drawer, door, lock, window, faucet, handle, plate), the joint's position
says what the world underwent: `change = sign * (after - before)` is how far the object went in the
direction of the task's action (metres or radians). Free bodies (puck, mug, peg, ring, box lid, stick)
have no such coordinate (their start and goal vary per seed; Meta-World's own check is a distance to a
seeded goal) and are not in the table: their labels stay unchecked.

Thresholds (`still`, `done`), measured with the scripted policies over seeds 0-7 (commanded episodes, 15
settle steps, hand moved clear): `done` is about 0.6 of the median change at the step Meta-World reports
success, so a change that reached most of the policy's own success travel is the action; `still` is 1 cm on
a slide (the generator's MOVED_M) and 0.05 rad on a hinge (~1 cm at a faucet or lock handle, ~1.5 cm at the
door handle). The comment on each row gives the change at Meta-World's success / in today's fixed after
frame / at rest (`settle.hold_until_rest`), min..max over the 8 seeds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StateCoordinate:
    """Which joint carries the object's state, and the changes that mean "moved" and "done"."""

    joint: str = ""  # joint name in the task's MuJoCo model, or ""
    body: str = ""  # with joint "": the body whose (only) joint it is (Meta-World leaves some joints unnamed)
    sign: float = 1.0  # +1 when the task's action increases the joint position
    unit: str = "m"  # "m" (slide) or "rad" (hinge)
    still: float = 0.01  # |change| under this: the object did not move
    done: float = 0.1  # change (in the action's direction) at least this: the action happened


_SLIDE, _HINGE = 0.01, 0.05  # `still` for slides (m) and hinges (rad)
STATE_COORDINATES: dict[str, StateCoordinate] = {
    # drawer: success 0.160..0.165 m / fixed 0.123..0.203 / rest 0.036..0.038 (slides back to ~4 cm open)
    "drawer-open-v3": StateCoordinate("goal_slidey", sign=-1, still=_SLIDE, done=0.10),
    # success 0.119..0.123 / fixed 0.144..0.149 / rest 0.144..0.149
    "drawer-close-v3": StateCoordinate("goal_slidey", sign=+1, still=_SLIDE, done=0.07),
    # door: success 1.383..1.402 rad / fixed 0.595..1.154 / rest 0.573..1.151 (swings back)
    "door-open-v3": StateCoordinate("doorjoint", sign=-1, unit="rad", still=_HINGE, done=0.8),
    # success 1.297..1.347 / fixed 1.440..1.469 / rest 1.440..1.469
    "door-close-v3": StateCoordinate("doorjoint", sign=+1, unit="rad", still=_HINGE, done=0.8),
    # lock lever: success 1.192..1.229 / fixed 1.238..1.538 / rest 1.238..1.538
    "door-lock-v3": StateCoordinate(body="lock_link", sign=+1, unit="rad", still=_HINGE, done=0.7),
    # success 1.196..1.320 / fixed 1.570 / rest 1.570
    "door-unlock-v3": StateCoordinate(body="lock_link", sign=-1, unit="rad", still=_HINGE, done=0.75),
    # window: success 0.194..0.197 m / fixed 0.196..0.197 / rest 0.196..0.197
    "window-open-v3": StateCoordinate("window_slide", sign=+1, still=_SLIDE, done=0.12),
    # success 0.162..0.170 / fixed 0.187..0.198 / rest 0.185..0.198
    "window-close-v3": StateCoordinate("window_slide", sign=-1, still=_SLIDE, done=0.10),
    # faucet knob: success 1.384..1.430 rad / fixed 1.570 / rest 1.570
    "faucet-open-v3": StateCoordinate("knob_Joint_1", sign=+1, unit="rad", still=_HINGE, done=0.85),
    # success 1.279..1.326 / fixed 1.538..1.570 / rest 1.538..1.570
    "faucet-close-v3": StateCoordinate("knob_Joint_1", sign=-1, unit="rad", still=_HINGE, done=0.8),
    # handle (push = press down): success 0.077..0.082 m / fixed 0.100..0.105 / rest 0.095..0.100
    "handle-press-v3": StateCoordinate(body="handle_link", sign=-1, still=_SLIDE, done=0.05),
    # success 0.058..0.061 / fixed 0.062..0.100 / rest 0.062..0.100
    "handle-pull-v3": StateCoordinate(body="handle_link", sign=+1, still=_SLIDE, done=0.035),
    # plate's y slide (push = away from the robot): success 0.189..0.227 m / fixed 0.198..0.243 / rest same
    "plate-slide-v3": StateCoordinate("goal_slidey", sign=+1, still=_SLIDE, done=0.12),
    # success 0.080..0.132 (the goal's y varies) / fixed 0.125..0.150 / rest same
    "plate-slide-back-v3": StateCoordinate("goal_slidey", sign=-1, still=_SLIDE, done=0.06),
}


def read_state(scene: Any, coordinate: StateCoordinate) -> float:
    """The joint position of `coordinate` in the scene's current MuJoCo state (m or rad)."""
    model, data = scene.env.model, scene.env.data
    if coordinate.joint:
        address = int(model.joint(coordinate.joint).qposadr[0])
    else:
        body = model.body(coordinate.body)
        if int(body.jntnum[0]) != 1:
            raise ValueError(f"body {coordinate.body!r} has {int(body.jntnum[0])} joints; name the joint instead")
        address = int(model.jnt_qposadr[int(body.jntadr[0])])
    return float(data.qpos[address])
