"""One Meta-World scene driven by the task's own scripted policy, rendered offscreen.

Deterministic per (task, seed): the object/goal positions come from `env.seed(seed)` with
`seeded_rand_vec` (reset's own seed argument is ignored by Meta-World), appearance and camera jitter
from a generator seeded with the same pair. Goal/site markers are hidden (they give the goal away);
the named corner cameras render upside down and are rotated back.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

CORNER_CAMERAS = ("corner", "corner2", "corner3", "corner4")
OBJECT_CAMERA = "object"


class SceneError(RuntimeError):
    """A scene could not be built or rendered."""


@dataclass
class SceneConfig:
    task: str
    seed: int = 0
    # Named Meta-World cameras and/or "object" (an object-centred free camera); the first is the default.
    cameras: tuple[str, ...] = ("corner3",)
    size: int = 224
    randomize_appearance: bool = False
    camera_jitter: bool = False


def _policy_for(task: str) -> Any:
    import metaworld.policies as policies

    base = task.replace("-v3", "")
    wanted = "sawyer" + base.replace("-", "") + "v3policy"
    for name in dir(policies):
        if name.lower() == wanted:
            return getattr(policies, name)()
    # Meta-World's own spelling differs for a few tasks (e.g. peg-insert-side -> PegInsertionSide).
    aliases = {"peg-insert-side": "SawyerPegInsertionSideV3Policy"}
    if base in aliases:
        return getattr(policies, aliases[base])()
    raise SceneError(f"no scripted policy for {task} in metaworld.policies")


def _stable_seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little")


class MetaWorldScene:
    def __init__(self, config: SceneConfig) -> None:
        import mujoco
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS

        if config.task not in ALL_V3_ENVIRONMENTS:
            raise SceneError(f"unknown Meta-World task {config.task!r}")
        self.config = config
        self._mujoco = mujoco
        env = ALL_V3_ENVIRONMENTS[config.task]()
        env._partially_observable = False  # policies read the goal from the observation
        env._freeze_rand_vec = False
        env.seeded_rand_vec = True
        env._set_task_called = True
        env.seed(config.seed)
        env.max_path_length = 1_000_000  # we end episodes ourselves (hold, move clear, failures)
        self.env = env
        self.policy = _policy_for(config.task)
        self.rng = np.random.default_rng(_stable_seed("scene", config.task, config.seed))
        self._renderer = mujoco.Renderer(env.model, config.size, config.size)
        self._option = mujoco.MjvOption()
        self._option.sitegroup[:] = 0  # hide goal and end-effector markers
        self.obs: np.ndarray = np.zeros(0)
        self.steps = 0
        self.success = False
        self._cameras: dict[str, Any] = {}
        self.reset()

    def reset(self) -> np.ndarray:
        self.obs, _ = self.env.reset()
        # The observation returned by reset predates the first physics step (object positions jump on
        # the first steps); settle a few steps so "before" is a state the scene really holds.
        for _ in range(5):
            self.hold()
        self.steps = 0
        self.success = False
        if self.config.randomize_appearance:
            self._randomize_appearance()
        self._cameras = {name: self._make_camera(name) for name in self.config.cameras}
        return self.obs

    def _randomize_appearance(self) -> None:
        model = self.env.model
        rgba = model.geom_rgba
        tint = self.rng.uniform(0.6, 1.3, size=(rgba.shape[0], 3))
        rgba[:, :3] = np.clip(rgba[:, :3] * tint, 0, 1)
        if model.nlight:
            model.light_diffuse[:] = np.clip(model.light_diffuse * self.rng.uniform(0.7, 1.2, (model.nlight, 1)), 0, 1)

    def _make_camera(self, name: str) -> Any:
        mujoco = self._mujoco
        jitter = self.config.camera_jitter
        if name == OBJECT_CAMERA:
            cam = mujoco.MjvCamera()
            cam.type = mujoco.mjtCamera.mjCAMERA_FREE
            obj = np.asarray(self.obs[4:7], dtype=np.float64)
            cam.lookat[:] = obj + (self.rng.normal(0, 0.02, 3) if jitter else 0.0)
            cam.distance = 0.75 + (self.rng.uniform(-0.08, 0.08) if jitter else 0.0)
            cam.azimuth = 135.0 + (self.rng.uniform(-15, 15) if jitter else 0.0)
            cam.elevation = -35.0 + (self.rng.uniform(-8, 8) if jitter else 0.0)
            return cam
        try:
            cam_id = self.env.model.camera(name).id
        except KeyError as exc:
            raise SceneError(f"camera {name!r} not in the model; use a corner camera or 'object'") from exc
        if jitter:  # a free camera copied from the named one, then perturbed
            cam = mujoco.MjvCamera()
            cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
            cam.fixedcamid = cam_id
            self.env.model.cam_pos[cam_id] += self.rng.normal(0, 0.03, 3)
            return cam
        return cam_id

    def render(self, camera: str | None = None) -> np.ndarray:
        """HxWx3 uint8 RGB of the current state from one of the configured cameras."""
        name = camera or self.config.cameras[0]
        if name not in self._cameras:
            raise SceneError(f"camera {name!r} not configured for this scene ({list(self._cameras)})")
        self._renderer.update_scene(self.env.data, camera=self._cameras[name], scene_option=self._option)
        image = self._renderer.render()
        if name in CORNER_CAMERAS:
            image = image[::-1, ::-1]
        return np.ascontiguousarray(image)

    def step(self, action: np.ndarray | None = None) -> bool:
        """One simulation step with the policy's action (or the given one); returns success so far."""
        if action is None:
            action = self.policy.get_action(self.obs)
        self.obs, _, _, _, info = self.env.step(np.clip(action, -1, 1))
        self.steps += 1
        self.success = self.success or bool(info.get("success", 0.0) > 0.5)
        return self.success

    def hold(self) -> None:
        """A step that keeps the hand where it is (gripper unchanged): lets the scene settle."""
        self.step(np.array([0.0, 0.0, 0.0, float(np.sign(self.obs[3] - 0.5) or -1.0)]))

    def move_hand_clear(self, steps: int = 40) -> None:
        """Lift the hand and pull it back so it hides less of the object in the after frame."""
        target = np.array([0.0, 0.45, 0.45])
        for _ in range(steps):
            delta = (target - self.obs[:3]) * 10.0
            self.step(np.array([*np.clip(delta, -1, 1), -1.0]))

    @property
    def object_position(self) -> np.ndarray:
        return np.asarray(self.obs[4:7], dtype=np.float64).copy()

    def close(self) -> None:
        self._renderer.close()
        self.env.close()
