"""One Meta-World scene driven by the task's own scripted policy, rendered offscreen.

Deterministic per (task, seed): the object/goal positions come from `env.seed(seed)` with
`seeded_rand_vec` (reset's own seed argument is ignored by Meta-World), appearance and camera jitter
from a generator seeded with the same pair. Goal/site markers are hidden (they give the goal away);
the named corner cameras render upside down and are rotated back.

The API is step-wise (reset, step, render, success/done) so the generator and the ROS robot node
drive the same scene: the node publishes frames while the arm moves, the generator keeps two.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

CORNER_CAMERAS = ("corner", "corner2", "corner3", "corner4")
OBJECT_CAMERA = "object"
# object-centred free camera, optionally parametrised: object_az90_el-20_d0.9 (degrees, metres)
_OBJECT_CAMERA_RE = re.compile(r"^object(?:_az(?P<az>-?\d+(?:\.\d+)?))?(?:_el(?P<el>-?\d+(?:\.\d+)?))?"
                               r"(?:_d(?P<d>\d+(?:\.\d+)?))?$")
OBJECT_CAMERA_DEFAULTS = {"az": 135.0, "el": -35.0, "d": 0.75}
# Where move_hand_clear parks the hand: up and back towards the robot base, out of the workspace.
CLEAR_HAND_POSITION = (0.0, 0.45, 0.45)
# The Sawyer's root body in Meta-World's XML: its body tree is the whole robot (pedestal, arm, gripper).
ROBOT_ROOT_BODY = "base"


def _load_triton_before_mesa() -> None:
    """Import triton (pulled in by torch/timm when installed) before MuJoCo opens an EGL context.

    Mesa's llvmpipe and triton each bring their own LLVM; loading triton *after* llvmpipe segfaults the
    process (seen with torch 2.14.1 + Mesa on these machines), the other order works. A process that
    renders and then builds a timm model (tests, `cde pretrain` on sim frames) needs this order.
    """
    import importlib.util

    if importlib.util.find_spec("triton") is not None:
        import triton  # noqa: F401


def _object_position_indices(model: Any, robot_root: int) -> np.ndarray:
    """qpos indices of every joint outside the robot's body tree: a slide or hinge joint's one value, a free
    joint's x, y, z (its quaternion is left out: a resting puck's orientation jitters while it goes nowhere)."""
    free, ball = 0, 1  # mjJNT_FREE, mjJNT_BALL (a ball joint only turns: nothing to watch)
    indices: list[int] = []
    for joint in range(model.njnt):
        if model.body_rootid[model.jnt_bodyid[joint]] == robot_root or model.jnt_type[joint] == ball:
            continue
        start = int(model.jnt_qposadr[joint])
        indices += list(range(start, start + 3)) if model.jnt_type[joint] == free else [start]
    return np.asarray(indices, dtype=np.int64)


class SceneError(RuntimeError):
    """A scene could not be built or rendered (unknown task, camera or policy)."""


@dataclass
class SceneConfig:
    task: str
    seed: int = 0
    # Named Meta-World cameras and/or object-centred ones ("object", "object_az90_el-20_d0.9");
    # the first is the default for render().
    cameras: tuple[str, ...] = ("corner3",)
    size: int = 224
    randomize_appearance: bool = False
    camera_jitter: bool = False
    max_steps: int = 500


def scripted_policy(task: str) -> Any:
    """The Meta-World authors' scripted policy for a v3 task (e.g. SawyerDrawerOpenV3Policy)."""
    import metaworld.policies as policies

    base = task.removesuffix("-v3")
    wanted = "sawyer" + base.replace("-", "") + "v3policy"
    for name in dir(policies):
        if name.lower() == wanted:
            return getattr(policies, name)()
    # Meta-World's own spelling differs for a few tasks.
    aliases = {"peg-insert-side": "SawyerPegInsertionSideV3Policy"}
    if base in aliases:
        return getattr(policies, aliases[base])()
    raise SceneError(f"no scripted policy for {task!r} in metaworld.policies")


def stable_seed(*parts: object) -> int:
    """A 64-bit seed from any tuple of values, the same in every process (unlike hash())."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little")


def parse_object_camera(name: str) -> dict[str, float] | None:
    """Azimuth/elevation/distance of an object-centred camera name, or None for a named camera."""
    match = _OBJECT_CAMERA_RE.match(name)
    if not match:
        return None
    return {k: float(v) if v is not None else OBJECT_CAMERA_DEFAULTS[k] for k, v in match.groupdict().items()}


class MetaWorldScene:
    """A Meta-World v3 task with its scripted policy; one instance per (task, seed) episode."""

    def __init__(self, config: SceneConfig) -> None:
        _load_triton_before_mesa()
        import mujoco
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS

        if config.task not in ALL_V3_ENVIRONMENTS:
            raise SceneError(f"unknown Meta-World task {config.task!r}; see cde_core.sim.tasks.TASKS")
        if not config.cameras:
            raise SceneError("a scene needs at least one camera")
        self.config = replace(config)  # reset(seed) changes our copy, never the caller's
        self._mujoco = mujoco
        env = ALL_V3_ENVIRONMENTS[config.task]()
        env._partially_observable = False  # policies read the goal from the observation
        # The observation space is a cached property computed while the goal was hidden; step() clips every
        # observation to it, which zeroes the goal (and the policies then miss it). Recompute it.
        env.__dict__.pop("sawyer_observation_space", None)
        env._freeze_rand_vec = False
        env.seeded_rand_vec = True
        env._set_task_called = True
        env.seed(config.seed)
        env.max_path_length = 1_000_000  # we end episodes ourselves (hold, move clear, failures)
        self.env = env
        self.policy = scripted_policy(config.task)
        self._renderer = mujoco.Renderer(env.model, config.size, config.size)
        self._segmenter: Any | None = None  # a second renderer in segmentation mode, made on first use
        root = env.model.body(ROBOT_ROOT_BODY).id
        self._robot_geoms = np.flatnonzero(env.model.body_rootid[env.model.geom_bodyid] == root)
        self._object_qpos = _object_position_indices(env.model, root)
        self._option = mujoco.MjvOption()
        self._option.sitegroup[:] = 0  # hide goal and end-effector markers
        model = env.model
        self._base = {"geom_rgba": model.geom_rgba.copy(), "mat_rgba": model.mat_rgba.copy(),
                      "light_diffuse": model.light_diffuse.copy(), "cam_pos": model.cam_pos.copy()}
        self.rng = np.random.default_rng(0)
        self.obs: np.ndarray = np.zeros(0)
        self.steps = 0
        self.success = False
        self._cameras: dict[str, Any] = {}
        self.reset()

    def reset(self, seed: int | None = None, randomize_appearance: bool | None = None,
              camera_jitter: bool | None = None) -> np.ndarray:
        """Start the episode of `seed` (default: the current one) in this scene, optionally with another
        look (randomised colours/lights, camera jitter; None keeps the current setting).

        The same seed and look give the same positions, colours, cameras and pixels whether the scene is
        fresh or reused; reusing saves building the renderer (~0.3 s, more than an episode's simulation).
        """
        if seed is not None:
            self.config.seed = int(seed)
        if randomize_appearance is not None:
            self.config.randomize_appearance = bool(randomize_appearance)
        if camera_jitter is not None:
            self.config.camera_jitter = bool(camera_jitter)
        self.env.seed(self.config.seed)
        self.rng = np.random.default_rng(stable_seed("scene", self.config.task, self.config.seed))
        self.obs, _ = self.env.reset()
        # The observation returned by reset predates the first physics step (object positions jump on
        # the first steps); settle a few steps so "before" is a state the scene really holds.
        for _ in range(5):
            self.hold()
        self.steps = 0
        self.success = False
        model = self.env.model
        for key, value in self._base.items():
            getattr(model, key)[:] = value
        if self.config.randomize_appearance:
            self._randomize_appearance()
        self._cameras = {name: self._make_camera(name) for name in self.config.cameras}
        return self.obs

    def _randomize_appearance(self) -> None:
        """Tint every geom and material and scale the lights (each object has one model in Meta-World)."""
        model = self.env.model
        for key in ("geom_rgba", "mat_rgba"):
            rgba = getattr(model, key)
            if rgba.shape[0]:
                rgba[:, :3] = np.clip(rgba[:, :3] * self.rng.uniform(0.6, 1.3, size=(rgba.shape[0], 3)), 0, 1)
        if model.nlight:
            scale = self.rng.uniform(0.7, 1.2, (model.nlight, 1))
            model.light_diffuse[:] = np.clip(model.light_diffuse * scale, 0, 1)

    def _make_camera(self, name: str) -> Any:
        mujoco = self._mujoco
        jitter = self.config.camera_jitter
        params = parse_object_camera(name)
        if params is not None:
            cam = mujoco.MjvCamera()
            cam.type = mujoco.mjtCamera.mjCAMERA_FREE
            cam.lookat[:] = self.object_position + (self.rng.normal(0, 0.02, 3) if jitter else 0.0)
            cam.distance = params["d"] + (self.rng.uniform(-0.08, 0.08) if jitter else 0.0)
            cam.azimuth = params["az"] + (self.rng.uniform(-15, 15) if jitter else 0.0)
            cam.elevation = params["el"] + (self.rng.uniform(-8, 8) if jitter else 0.0)
            return cam
        try:
            cam_id = self.env.model.camera(name).id
        except KeyError as exc:
            names = [self.env.model.camera(i).name for i in range(self.env.model.ncam)]
            raise SceneError(f"camera {name!r} not in the model; use one of {names} or "
                             "'object[_az<deg>][_el<deg>][_d<m>]'") from exc
        if jitter:
            self.env.model.cam_pos[cam_id] += self.rng.normal(0, 0.03, 3)
        return cam_id

    def render(self, camera: str | None = None) -> np.ndarray:
        """HxWx3 uint8 RGB of the current state from one of the configured cameras."""
        name = camera or self.config.cameras[0]
        if name not in self._cameras:
            raise SceneError(f"camera {name!r} not configured for this scene ({list(self._cameras)})")
        self._renderer.update_scene(self.env.data, camera=self._cameras[name], scene_option=self._option)
        image = self._renderer.render()
        if name in CORNER_CAMERAS:
            image = image[::-1, ::-1]  # these cameras are mounted upside down in Meta-World's XML
        return np.ascontiguousarray(image)

    def render_robot_mask(self, camera: str | None = None, dilate: int = 1) -> np.ndarray:
        """HxW uint8 robot self-mask of the current state (255 = a pixel of the robot), aligned with
        `render(camera)`: what a real robot's self-filter renders from its URDF and joint states.

        The robot is every geom in the body tree of ROBOT_ROOT_BODY (arm, gripper, pedestal). MuJoCo's
        segmentation pass labels ~1 % of the arm's pixels as the wall or floor behind them
        (ENVIRONMENT.md), so the mask is dilated by `dilate` pixels (a 3x3 maximum per pixel)."""
        name = camera or self.config.cameras[0]
        if name not in self._cameras:
            raise SceneError(f"camera {name!r} not configured for this scene ({list(self._cameras)})")
        if self._segmenter is None:
            self._segmenter = self._mujoco.Renderer(self.env.model, self.config.size, self.config.size)
            self._segmenter.enable_segmentation_rendering()
        self._segmenter.update_scene(self.env.data, camera=self._cameras[name], scene_option=self._option)
        seg = self._segmenter.render()
        robot = np.isin(seg[..., 0], self._robot_geoms) & (seg[..., 1] == int(self._mujoco.mjtObj.mjOBJ_GEOM))
        for _ in range(max(0, int(dilate))):
            padded = np.pad(robot, 1)
            robot = np.zeros_like(robot)
            for dy in range(3):
                for dx in range(3):
                    robot |= padded[dy:dy + robot.shape[0], dx:dx + robot.shape[1]]
        if name in CORNER_CAMERAS:
            robot = robot[::-1, ::-1]
        return np.ascontiguousarray(robot.astype(np.uint8) * 255)

    def policy_action(self, policy: Any | None = None) -> np.ndarray:
        """What the (given or own) scripted policy does next from the current observation."""
        return np.asarray((policy or self.policy).get_action(self.obs), dtype=np.float64)

    def step(self, action: np.ndarray | None = None) -> bool:
        """One simulation step with the policy's action (or the given one); returns success so far."""
        if action is None:
            action = self.policy_action()
        self.obs, _, _, _, info = self.env.step(np.clip(action, -1, 1))
        self.steps += 1
        self.success = self.success or bool(info.get("success", 0.0) > 0.5)
        return self.success

    @property
    def done(self) -> bool:
        """The task succeeded or the step budget is spent."""
        return self.success or self.steps >= self.config.max_steps

    def run_policy(self, max_steps: int | None = None) -> bool:
        """Step the own policy until success or `max_steps` (default: the config's); returns success."""
        limit = self.config.max_steps if max_steps is None else max_steps
        while not self.success and self.steps < limit:
            self.step()
        return self.success

    def hold(self) -> None:
        """A step that keeps the hand where it is (gripper unchanged): lets the scene settle."""
        # obs[3] is how far the fingers are apart (1 = open); action +1 closes them, -1 opens them.
        self.step(np.array([0.0, 0.0, 0.0, 1.0 if self.obs[3] < 0.5 else -1.0]))

    def move_hand_clear(self, steps: int = 40) -> None:
        """Open the gripper, lift the hand and pull it back so it hides less of the object."""
        target = np.asarray(CLEAR_HAND_POSITION)
        for _ in range(steps):
            delta = (target - self.obs[:3]) * 10.0
            self.step(np.array([*np.clip(delta, -1, 1), -1.0]))

    @property
    def object_coordinates(self) -> np.ndarray:
        """Where every movable thing in the scene but the robot is: each slide/hinge joint's position (m or
        rad) and each free body's x, y, z (m). What `hold_until_rest` watches to tell the scene is still."""
        return np.asarray(self.env.data.qpos[self._object_qpos], dtype=np.float64).copy()

    @property
    def step_seconds(self) -> float:
        """Simulated time of one `step` (Meta-World: 5 MuJoCo steps of 2.5 ms)."""
        return float(self.env.dt)

    @property
    def object_position(self) -> np.ndarray:
        """Position of the task's first object (what the policy manipulates), metres."""
        return np.asarray(self.obs[4:7], dtype=np.float64).copy()

    def close(self) -> None:
        self._renderer.close()
        if self._segmenter is not None:
            self._segmenter.close()
        self.env.close()

    def __enter__(self) -> "MetaWorldScene":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
