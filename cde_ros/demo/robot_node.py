"""A simulated robot for the demo and tests: Meta-World tasks run by their authors' scripted policies.

Every episode is `cde_core.sim.episode.run_episode`, the code the training-pair generator runs, with the
same planning (`plan_episode`: failures, appearance), so the frames the perception node verifies are the
generator's pair of the same (task, seed, appearance). The node only publishes what that code produces:
camera frames (sensor_msgs/Image rgb8, stamped with the node clock) while the arm moves, and with each frame
the robot's self-mask (mono8, 255 = robot, same stamp, size and frame_id) on `robot_mask`, as a real
robot's URDF self-filter would. Before a command it publishes the before frame for `pre_command_s`, after it
the after frame for `post_command_s`. It announces every command twice over: alternately on the ManipulatorCommand topic and as an action
server's status (action_msgs/GoalStatusArray on `<server>/_action/status`, keep-last-1, reliable,
transient-local, with EXECUTING then SUCCEEDED/ABORTED per goal UUID, exactly what rclpy's ActionServer
publishes: no action type with a goal we could use is installable here, so the status is published
directly). Some commands fail on purpose (stopped early, no motion, another task's motion); the truth of
every command (its label from `label_episode`) is logged and published as JSON on `~/ground_truth`.

Recording training data (`label_topic` set, e.g. the perception node's `/cde_perception/episode_label`): after
each command the robot also publishes its ground truth as a cde_ros/EpisodeLabel, the way a task-level success
check or an operator would on a real robot, so the bag the node records carries labels made on the robot's
side. `episode_order: grid` runs every task for each seed (the generator's order: N episodes of T tasks are
`cde sim generate --seeds seed:seed+N/T`'s pairs); the default `cycle` gives episode i the task i mod T and
the seed seed+i. `after_frame`, `label_check`, `rest_limit`: the generator's benchmark-v2 options (after frame
at rest, labels checked against the object's joint; the defaults are the episodes the demo model saw).
"""
from __future__ import annotations

import json
import os
import threading
import time
import uuid
from typing import Any

import rclpy
from action_msgs.msg import GoalInfo, GoalStatus, GoalStatusArray
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_action_status_default
from sensor_msgs.msg import Image
from std_msgs.msg import String

from cde_ros.image_conversion import rgb_to_image_fields
from cde_ros.msg import EpisodeLabel, ManipulatorCommand

RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


class SimRobotNode(Node):
    def __init__(self) -> None:
        super().__init__("sim_robot")
        p = self.declare_parameter
        self.tasks = str(p("tasks", "demo").value)
        self.episodes = int(p("episodes", 12).value)
        self.seed = int(p("seed", 1000).value)
        self.camera = str(p("camera", "object").value)
        self.image_size = int(p("image_size", 96).value)
        self.appearance = str(p("appearance", "default").value)  # default | random | mixed (per episode)
        self.failure_fraction = float(p("failure_fraction", 0.25).value)
        self.failure_modes = tuple(m for m in str(p("failure_modes", "stopped_early,no_motion,wrong_task").value)
                                   .split(",") if m)
        self.publish_masks = bool(p("publish_masks", True).value)
        self.rate_hz = float(p("rate_hz", 10.0).value)
        self.steps_per_frame = int(p("steps_per_frame", 8).value)
        self.frame_id = str(p("frame_id", "sim_camera").value)
        self.interface = str(p("command_interface", "both").value)  # topic | action | both (alternating)
        self.action_prefix = str(p("action_prefix", "/sim_arm").value)
        self.pre_s = float(p("pre_command_s", 0.5).value)
        self.settle_s = float(p("post_command_s", 1.0).value)
        self.start_delay_s = float(p("start_delay_s", 1.0).value)
        self.episode_order = str(p("episode_order", "cycle").value)  # cycle | grid (see the module docstring)
        if self.episode_order not in ("cycle", "grid"):
            raise ValueError(f"episode_order must be 'cycle' or 'grid', not {self.episode_order!r}")
        label_topic = str(p("label_topic", "").value)  # '' = publish no EpisodeLabel
        # the generator's v2 options (cde sim generate --after-frame / --label-check / --rest-limit)
        from cde_core.sim.episode import EpisodeSettings

        self.settings = EpisodeSettings(frame_every=self.steps_per_frame,
                                        after_frame=str(p("after_frame", "fixed").value),
                                        label_check=str(p("label_check", "off").value),
                                        rest_limit=int(p("rest_limit", 200).value))
        self.settings.validate()  # a bad option fails the node's start, not its episode thread
        self.image_pub = self.create_publisher(Image, "image", 5)
        self.mask_pub = self.create_publisher(Image, "robot_mask", 5)
        self.command_pub = self.create_publisher(ManipulatorCommand, "commands", RELIABLE)
        self.truth_pub = self.create_publisher(String, "~/ground_truth", RELIABLE)
        self.done_pub = self.create_publisher(String, "~/done", RELIABLE)
        self.label_pub = self.create_publisher(EpisodeLabel, label_topic, RELIABLE) if label_topic else None
        self._status_pubs: dict[str, Any] = {}
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sim_robot", daemon=True)
        self.thread.start()

    # ------------------------------------------------------------------ publishing
    def _publish_frame(self, frame: Any) -> None:
        """One camera frame of the episode and its robot mask, with one stamp."""
        stamp = self.get_clock().now().to_msg()
        msg = Image(**rgb_to_image_fields(frame.rgb[self.camera]))
        msg.header.stamp, msg.header.frame_id = stamp, self.frame_id
        self.image_pub.publish(msg)
        if self.publish_masks:
            mask = frame.mask[self.camera]
            height, width = mask.shape
            self.mask_pub.publish(Image(header=msg.header, height=height, width=width, encoding="mono8",
                                        is_bigendian=0, step=width, data=mask.tobytes()))

    def _publish_for(self, frame: Any, seconds: float) -> None:
        """The same state, as a camera at rate_hz sees it, for `seconds`."""
        for _ in range(max(1, int(seconds * self.rate_hz))):
            if self._stop.is_set():
                return
            t0 = time.monotonic()
            self._publish_frame(frame)
            time.sleep(max(0.0, 1.0 / self.rate_hz - (time.monotonic() - t0)))

    def _status_pub(self, action: str) -> Any:
        server = f"{self.action_prefix}/{action}"
        if server not in self._status_pubs:
            self._status_pubs[server] = self.create_publisher(GoalStatusArray, f"{server}/_action/status",
                                                              qos_profile_action_status_default)
        return self._status_pubs[server]

    def _announce(self, via_action: bool, command_id: str, goal: bytes, action: str, obj: str, phase: int,
                  accepted: Any) -> None:
        if via_action:
            code = {0: GoalStatus.STATUS_EXECUTING, 1: GoalStatus.STATUS_SUCCEEDED, 2: GoalStatus.STATUS_ABORTED}[phase]
            status = GoalStatus(status=code, goal_info=GoalInfo(stamp=accepted))
            status.goal_info.goal_id.uuid = list(goal)
            self._status_pub(action).publish(GoalStatusArray(status_list=[status]))
            return
        msg = ManipulatorCommand(command_id=command_id, action=action, object=obj, phase=phase)
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.frame_id
        self.command_pub.publish(msg)

    # ------------------------------------------------------------------ episodes
    def _run(self) -> None:
        from cde_core.sim.episode import plan_episode, run_episode
        from cde_core.sim.scene import MetaWorldScene, SceneConfig
        from cde_core.sim.tasks import TASKS, resolve_tasks

        tasks = resolve_tasks(self.tasks)
        settings = self.settings
        scenes: dict[str, Any] = {}  # one scene per task, reset per episode (same pixels as a fresh one)
        time.sleep(self.start_delay_s)  # let subscribers discover us
        try:
            for index in range(self.episodes):
                if self._stop.is_set():
                    break
                task, seed = self._episode(tasks, index)
                cell = TASKS[task]
                spec = plan_episode(task, seed, self.failure_fraction, self.appearance, self.failure_modes)
                if task not in scenes:
                    scenes[task] = MetaWorldScene(SceneConfig(task, spec.seed, (self.camera,), self.image_size))
                via_action = self.interface == "action" or (self.interface == "both" and index % 2 == 1)
                goal = uuid.uuid4().bytes
                command_id = f"{self.action_prefix}/{cell.action}/{goal.hex()}" if via_action else f"cmd-{index:04d}"
                accepted: list[Any] = []

                def on_frame(frame: Any) -> bool:
                    if frame.phase == "before":  # the scene at rest before the command, then the command
                        self._publish_for(frame, self.pre_s)
                        accepted.append(self.get_clock().now().to_msg())
                        self._announce(via_action, command_id, goal, cell.action, cell.object, 0, accepted[0])
                    elif frame.phase == "moving":
                        t0 = time.monotonic()
                        self._publish_frame(frame)
                        time.sleep(max(0.0, 1.0 / self.rate_hz - (time.monotonic() - t0)))
                    else:  # "after": the scene at rest once the command is over
                        self._publish_frame(frame)
                    return self._stop.is_set()

                outcome = run_episode(scenes[task], spec, settings, on_frame, moving_frames=True)
                self._announce(via_action, command_id, goal, cell.action, cell.object,
                               2 if spec.failure == "stopped_early" else 1, accepted[0])
                label = outcome.label
                truth = {"command_id": command_id, "index": index, "task": task, "seed": spec.seed,
                         "object": cell.object, "appearance": spec.appearance, "camera": self.camera,
                         "commanded_action": cell.action, "true_action": label[0] if label else None,
                         "effect_happened": bool(label[2]) if label else False, "failure": spec.failure,
                         "interface": "action" if via_action else "topic", "moved_m": outcome.moved_m}
                self.get_logger().info(f"ground truth: {json.dumps(truth)}")
                self.truth_pub.publish(String(data=json.dumps(truth)))
                self._publish_label(truth)
                assert outcome.after is not None
                self._publish_for(outcome.after, self.settle_s)
        finally:
            for scene in scenes.values():
                scene.close()
        self.done_pub.publish(String(data="done"))
        self.get_logger().info("all episodes done")

    def _episode(self, tasks: list[str], index: int) -> tuple[str, int]:
        """(task, seed) of episode `index` in the configured order."""
        if self.episode_order == "grid":
            return tasks[index % len(tasks)], self.seed + index // len(tasks)
        return tasks[index % len(tasks)], self.seed + index

    def _publish_label(self, truth: dict[str, Any]) -> None:
        """The robot's own check of what the command did, as an EpisodeLabel. An episode with no honest label
        (another task's motion moved the object) says so: empty true_action, effect_happened false, which
        `cde data import` leaves out, as the generator drops such pairs."""
        if self.label_pub is None:
            return
        msg = EpisodeLabel(command_id=truth["command_id"], true_action=truth["true_action"] or "",
                           object=truth["object"], effect_happened=truth["effect_happened"],
                           annotator="sim_robot task check",
                           note=f"task {truth['task']} seed {truth['seed']} failure {truth['failure'] or 'none'}")
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.frame_id
        self.label_pub.publish(msg)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)


def main(args: list[str] | None = None) -> None:
    os.environ.setdefault("MUJOCO_GL", "egl")
    rclpy.init(args=args)
    node = SimRobotNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.stop()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
