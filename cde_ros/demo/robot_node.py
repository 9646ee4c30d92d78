"""A simulated robot for the demo and tests: Meta-World tasks run by their authors' scripted policies.

It publishes camera frames (sensor_msgs/Image rgb8, stamped with the node clock) while the arm moves,
and announces every command twice over: alternately on the ManipulatorCommand topic and as an action
server's status (action_msgs/GoalStatusArray on `<server>/_action/status`, keep-last-1, reliable,
transient-local, with EXECUTING then SUCCEEDED/ABORTED per goal UUID, exactly what rclpy's ActionServer
publishes: no action type with a goal we could use is installable here, so the status is published
directly). Some commands fail on purpose (stopped early, no motion); the truth of every command is
logged and published as JSON on `~/ground_truth`.
"""
from __future__ import annotations

import json
import os
import threading
import time
import uuid
from typing import Any

import numpy as np
import rclpy
from action_msgs.msg import GoalInfo, GoalStatus, GoalStatusArray
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_action_status_default
from sensor_msgs.msg import Image
from std_msgs.msg import String

from cde_ros.image_conversion import rgb_to_image_fields
from cde_ros.msg import ManipulatorCommand

RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


class SimRobotNode(Node):
    def __init__(self) -> None:
        super().__init__("sim_robot")
        p = self.declare_parameter
        self.tasks = str(p("tasks", "demo").value)
        self.episodes = int(p("episodes", 12).value)
        self.seed = int(p("seed", 1000).value)
        self.camera = str(p("camera", "object").value)
        self.image_size = int(p("image_size", 160).value)
        self.rate_hz = float(p("rate_hz", 10.0).value)
        self.steps_per_frame = int(p("steps_per_frame", 8).value)
        self.failure_fraction = float(p("failure_fraction", 0.25).value)
        self.frame_id = str(p("frame_id", "sim_camera").value)
        self.interface = str(p("command_interface", "both").value)  # topic | action | both (alternating)
        self.action_prefix = str(p("action_prefix", "/sim_arm").value)
        self.settle_s = float(p("post_command_s", 1.0).value)
        self.start_delay_s = float(p("start_delay_s", 1.0).value)
        self.image_pub = self.create_publisher(Image, "image", 5)
        self.command_pub = self.create_publisher(ManipulatorCommand, "commands", RELIABLE)
        self.truth_pub = self.create_publisher(String, "~/ground_truth", RELIABLE)
        self.done_pub = self.create_publisher(String, "~/done", RELIABLE)
        self._status_pubs: dict[str, Any] = {}
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sim_robot", daemon=True)
        self.thread.start()

    # ------------------------------------------------------------------ publishing
    def _publish_frame(self, rgb: np.ndarray) -> None:
        msg = Image(**rgb_to_image_fields(rgb))
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.frame_id
        self.image_pub.publish(msg)

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
    def _sleep_frames(self, scene: Any, seconds: float) -> None:
        for _ in range(max(1, int(seconds * self.rate_hz))):
            if self._stop.is_set():
                return
            t0 = time.monotonic()
            self._publish_frame(scene.render())
            time.sleep(max(0.0, 1.0 / self.rate_hz - (time.monotonic() - t0)))

    def _run(self) -> None:
        from cde_core.sim.scene import MetaWorldScene, SceneConfig
        from cde_core.sim.tasks import TASKS, resolve_tasks

        tasks = resolve_tasks(self.tasks)
        rng = np.random.default_rng(self.seed)
        time.sleep(self.start_delay_s)  # let subscribers discover us
        for index in range(self.episodes):
            if self._stop.is_set():
                break
            task = tasks[index % len(tasks)]
            cell = TASKS[task]
            failure = None
            if cell.action != "none" and rng.random() < self.failure_fraction:
                failure = "stopped_early" if rng.random() < 0.5 else "no_motion"
            scene = MetaWorldScene(SceneConfig(task, self.seed + index, (self.camera,), self.image_size))
            via_action = self.interface == "action" or (self.interface == "both" and index % 2 == 1)
            goal = uuid.uuid4().bytes
            command_id = (f"{self.action_prefix}/{cell.action}/{goal.hex()}" if via_action
                          else f"cmd-{index:04d}")
            self._sleep_frames(scene, 0.5)
            accepted = self.get_clock().now().to_msg()
            start_pos = scene.object_position
            self._announce(via_action, command_id, goal, cell.action, cell.object, 0, accepted)
            steps = 0
            limit = int(rng.integers(3, 12)) if failure == "stopped_early" else 400
            while not self._stop.is_set() and steps < limit and not (failure is None and scene.success):
                t0 = time.monotonic()
                for _ in range(self.steps_per_frame):
                    if failure == "no_motion":
                        scene.hold()
                    else:
                        scene.step()
                    steps += 1
                self._publish_frame(scene.render())
                time.sleep(max(0.0, 1.0 / self.rate_hz - (time.monotonic() - t0)))
            for _ in range(15):
                scene.hold()
            scene.move_hand_clear()
            moved = float(np.linalg.norm(scene.object_position - start_pos))
            happened = cell.action != "none" and scene.success and failure is None
            true_action = cell.action if (happened or (cell.action != "none" and moved >= 0.01)) else "none"
            self._publish_frame(scene.render())
            self._announce(via_action, command_id, goal, cell.action, cell.object,
                           2 if failure == "stopped_early" else 1, accepted)
            truth = {"command_id": command_id, "index": index, "task": task, "object": cell.object,
                     "commanded_action": cell.action, "true_action": true_action, "effect_happened": happened,
                     "failure": failure, "interface": "action" if via_action else "topic", "moved_m": moved}
            self.get_logger().info(f"ground truth: {json.dumps(truth)}")
            self.truth_pub.publish(String(data=json.dumps(truth)))
            self._sleep_frames(scene, self.settle_s)
            scene.close()
        self.done_pub.publish(String(data="done"))
        self.get_logger().info("all episodes done")

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
