"""launch/perception.launch.py: parsed with `ast` everywhere; evaluated, and run with `ros2 launch` as on a
robot, where ROS 2 launch and the ros2 CLI are installed: from the upstream archives in ../shared/vendor/ros2
(or CDE_ROS_VENDOR_DIR) by scripts/setup_env.sh, or from a ROS 2 install. PyPI's `launch` is an unrelated
project and never installed. Only a machine with neither skips those tests."""
from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO_ROOT, write_tiny_node_model
from ros_harness import TestNode, wait_for

LAUNCH = REPO_ROOT / "launch" / "perception.launch.py"
S = 1_000_000_000

# Where ROS 2 launch and the ros2 CLI come from: the venv's own `ros2` (installed from the archives) or a
# ROS 2 install's on PATH. Where the archives are present they must have been installed: no skip then.
_VENDOR = os.environ.get("CDE_ROS_VENDOR_DIR") or str(REPO_ROOT.parent / "shared" / "vendor" / "ros2")
_VENV_ROS2 = Path(sys.executable).parent / "ros2"
ROS2 = str(_VENV_ROS2) if _VENV_ROS2.exists() else shutil.which("ros2")
_HAVE_ROS_TOOLS = ROS2 is not None and importlib.util.find_spec("launch_ros") is not None
needs_ros_tools = pytest.mark.skipif(
    not _HAVE_ROS_TOOLS and not Path(_VENDOR).is_dir(),
    reason="neither the ROS 2 launch/ros2 CLI archives (../shared/vendor/ros2 or CDE_ROS_VENDOR_DIR, installed by "
           "scripts/setup_env.sh) nor a ROS 2 install (ros2 on PATH) on this machine")


def _tree() -> ast.Module:
    return ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and (getattr(n.func, "id", None) == name or getattr(n.func, "attr", None) == name)]


def _kwarg(call: ast.Call, name: str) -> ast.expr:
    return next(k.value for k in call.keywords if k.arg == name)


def _strings(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_declares_namespace_and_model_path_arguments() -> None:
    declared = {call.args[0].value for call in _calls(_tree(), "DeclareLaunchArgument")}
    assert {"namespace", "model_path"} <= declared
    used = {call.args[0].value for call in _calls(_tree(), "LaunchConfiguration")}
    assert used <= declared, f"arguments used but not declared: {used - declared}"


def test_runs_the_installed_executable_in_the_namespace() -> None:
    (node,) = _calls(_tree(), "Node")
    assert ast.literal_eval(_kwarg(node, "package")) == "cde_ros"
    assert ast.literal_eval(_kwarg(node, "executable")) == "perception_node"
    assert (REPO_ROOT / "bin" / "perception_node").exists()
    assert "bin/perception_node" in (REPO_ROOT / "CMakeLists.txt").read_text()
    assert "namespace" in _strings(_kwarg(node, "namespace"))


def test_loads_the_yaml_and_passes_model_path() -> None:
    tree = _tree()
    (node,) = _calls(tree, "Node")
    share = _calls(tree, "get_package_share_directory")
    assert share and ast.literal_eval(share[0].args[0]) == "cde_ros"
    assert {"config", "perception.yaml"} <= set(_strings(tree))
    assert (REPO_ROOT / "config" / "perception.yaml").exists()
    assert re.search(r"install\(DIRECTORY[^)]*\bconfig\b", (REPO_ROOT / "CMakeLists.txt").read_text())
    assert "model_path" in _strings(_kwarg(node, "parameters"))


def test_remaps_the_generic_topic_names() -> None:
    (node,) = _calls(_tree(), "Node")
    remappings = _kwarg(node, "remappings")
    assert isinstance(remappings, ast.List)
    sources = {ast.literal_eval(pair.elts[0]) for pair in remappings.elts}
    assert {"image", "commands"} <= sources


def test_no_logic_beyond_naming_things() -> None:
    """Only imports and one function building the description: no subprocess, eval, installs, ifs."""
    tree = _tree()
    top = [type(n).__name__ for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom))]
    assert top in (["FunctionDef"], ["Expr", "FunctionDef"])
    forbidden = (ast.If, ast.For, ast.While, ast.Try, ast.Lambda)
    assert not [n for n in ast.walk(tree) if isinstance(n, forbidden)]
    modules = {n.module if isinstance(n, ast.ImportFrom) else a.name
               for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    assert {m.split(".")[0] for m in modules} <= {"os", "launch", "launch_ros", "ament_index_python"}


def test_the_yaml_keys_work_with_any_namespace() -> None:
    import yaml

    assert list(yaml.safe_load((REPO_ROOT / "config" / "perception.yaml").read_text())) == ["/**"]


@needs_ros_tools
def test_generate_launch_description_evaluates() -> None:
    _require_ros_tools()
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument

    spec = importlib.util.spec_from_file_location("perception_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert isinstance(description, LaunchDescription)
    names = {e.name for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    assert {"namespace", "model_path"} <= names


# --- `ros2 launch cde_ros perception.launch.py`, as on a robot (own process group, own DDS domain) ---


def _require_ros_tools() -> str:
    assert _HAVE_ROS_TOOLS, (f"ROS 2 launch archives are in {_VENDOR} but ros2/launch_ros are not installed in "
                             f"{sys.prefix}: run ./scripts/setup_env.sh --ros-vendor {_VENDOR}")
    return ROS2


def _ros2_until(env: dict[str, str], args: list[str], expected: str, timeout: float = 60) -> str:
    """Repeat a ros2 CLI query until it succeeds with `expected` among the words of its output: without the
    daemon (--no-daemon, so that no daemon process outlives the test) each call discovers the graph anew,
    and a first call may not see the node yet ("Node not found"). A readiness wait: it ends when the answer
    comes; 20 s once ran out in a fresh-clone CI run with `node list` after `lifecycle get` had succeeded."""
    deadline, out = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        out = subprocess.run([_require_ros_tools(), *args], env=env, capture_output=True, text=True, timeout=30)
        if out.returncode == 0 and expected in out.stdout.split():
            return out.stdout
        time.sleep(0.3)
    raise AssertionError(f"`ros2 {' '.join(args)}` never gave {expected}: {out.stdout}{out.stderr}")


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Launched:
    """`ros2 launch cde_ros perception.launch.py ARGS` in its own process group, plus a test node."""

    def __init__(self, env: dict[str, str], args: list[str], log: Path) -> None:
        self.env, self.log_path = env, log
        self._log = open(log, "w")
        # SIGINT at its default in the child, as in a terminal: a test run started as a background job (a
        # non-interactive shell's `cmd &`) inherits SIGINT ignored, and `ros2 launch` keeps it ignored
        self.proc = subprocess.Popen([_require_ros_tools(), "launch", "cde_ros", "perception.launch.py", *args],
                                     env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=_default_sigint)
        self.t = TestNode("launch_test")

    def log(self) -> str:
        return self.log_path.read_text()

    def node_pid(self) -> int:
        match = re.search(r"\[perception_node-1\]: process started with pid \[(\d+)\]", self.log())
        assert match, self.log()
        return int(match.group(1))

    def state(self, node: str) -> str:
        from lifecycle_msgs.srv import GetState

        client = self.t.node.create_client(GetState, f"{node}/get_state")
        assert client.wait_for_service(timeout_sec=20), f"{node}/get_state never appeared:\n{self.log()}"
        future = client.call_async(GetState.Request())
        wait_for(future.done, 10, "get_state")
        self.t.node.destroy_client(client)
        return future.result().current_state.label

    def wait_active(self, node: str, timeout: float = 40) -> None:
        deadline = time.monotonic() + timeout
        while (label := self.state(node)) != "active":
            assert self.proc.poll() is None, f"ros2 launch exited {self.proc.returncode}:\n{self.log()}"
            assert time.monotonic() < deadline, f"{node} stayed {label}:\n{self.log()}"
            time.sleep(0.2)

    def verify_one_command(self, image_topic: str, command_topic: str, verification_topic: str) -> None:
        """Frames and a STARTED/FINISHED command over DDS (as test_perception_node_ros.py sends them);
        the node answers with an EffectVerification for it."""
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from cde_ros.msg import EffectVerification, ManipulatorCommand

        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        image_pub = self.t.node.create_publisher(Image, image_topic, reliable)
        command_pub = self.t.node.create_publisher(ManipulatorCommand, command_topic, reliable)
        verifications = self.t.collect(EffectVerification, verification_topic, reliable)
        diagnostics = self.t.collect(DiagnosticArray, "/diagnostics")
        wait_for(lambda: image_pub.get_subscription_count() > 0 and command_pub.get_subscription_count() > 0,
                 15, f"the node's subscriptions to {image_topic} and {command_topic}")

        def frame(seed: int, stamp_ns: int) -> Image:
            rgb = np.random.default_rng(seed).integers(0, 256, (24, 32, 3), dtype=np.uint8)
            msg = Image(height=24, width=32, encoding="rgb8", step=96, data=rgb.tobytes())
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, S)
            msg.header.frame_id = "test_cam"
            return msg

        def frames_received() -> int:
            values = [{kv.key: kv.value for kv in s.values} for d in list(diagnostics) for s in d.status]
            return max([int(v.get("frames_received", 0)) for v in values], default=0)

        # best-effort frames published before both sides match are lost: prime with old-stamped ones
        deadline = time.monotonic() + 15
        while frames_received() == 0 and time.monotonic() < deadline:
            image_pub.publish(frame(0, time.time_ns() - 3000 * S))
            time.sleep(0.1)
        assert frames_received() > 0, "the node never counted a frame"

        def command(phase: int, stamp_ns: int) -> None:
            msg = ManipulatorCommand(command_id="c-launch", action="open" if phase == 0 else "", phase=phase)
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, S)
            command_pub.publish(msg)

        # frames first (10 Hz by stamp): the node takes the before frame when STARTED arrives
        base = time.time_ns()
        for i in range(20):
            image_pub.publish(frame(100 + i, base + i * 100_000_000))
            time.sleep(0.01)
        command(0, base + 450_000_000)  # before = the frame at 0.4 s
        command(1, base + 1_000_000_000)  # after = the first frame at or after end + settle_time (0.3 s)
        wait_for(lambda: any(v.command_id == "c-launch" for v in verifications), 15,
                 f"the EffectVerification on {verification_topic}")
        ver = next(v for v in verifications if v.command_id == "c-launch")
        assert ver.commanded_action == "open" and ver.verdict_name != "uncertain", ver.reason

    def interrupt(self) -> tuple[int, str]:
        """SIGINT to `ros2 launch` (only to it: it must pass the shutdown on); its exit code and log."""
        pid = self.node_pid()
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=30)
        self._log.close()
        # nothing left of the launch: not the node, not anything else in its process group
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), 5, f"the node (pid {pid}) to be gone")
        with pytest.raises(ProcessLookupError):
            os.killpg(self.proc.pid, 0)
        return code, self.log()

    def close(self) -> None:
        self.t.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever the test did, no process stays behind
        except ProcessLookupError:
            pass
        self.proc.wait()
        self._log.close()


@pytest.fixture
def launch_env(ros_domain_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    # HOME in a temporary directory: ~/.ros/cde (an allowed model directory by default) holds the tiny
    # model, and ros2 launch writes its logs under ~/.ros/log there, not in the user's home.
    home = tmp_path / "home"
    (home / ".ros" / "cde").mkdir(parents=True)
    return dict(ros_domain_env, HOME=str(home), OMP_NUM_THREADS="1")


def test_the_venv_prefix_holds_the_whole_package_and_the_checkout_is_what_runs() -> None:
    """One prefix (the venv's, first on AMENT_PREFIX_PATH) has the messages, launch/, config/, models/ and
    the executables; they are the checkout's files, and so is the Python (editable)."""
    from ament_index_python.packages import get_package_prefix

    import cde_ros.perception_node

    prefix = Path(get_package_prefix("cde_ros"))
    for rel in ["share/cde_ros/launch/perception.launch.py", "share/cde_ros/config/perception.yaml",
                "share/cde_ros/models/demo", "share/cde_ros/msg/EffectVerification.msg", "lib/cde_ros/perception_node"]:
        assert (prefix / rel).exists(), f"{rel} missing in {prefix}"
    assert os.access(prefix / "lib/cde_ros/perception_node", os.X_OK)
    if prefix == Path(sys.prefix):  # the dev venv: links into the checkout (a colcon install holds copies)
        assert (prefix / "share/cde_ros/launch/perception.launch.py").resolve() == LAUNCH
        assert (prefix / "share/cde_ros/config/perception.yaml").resolve() == REPO_ROOT / "config" / "perception.yaml"
    assert Path(cde_ros.perception_node.__file__).resolve().is_relative_to(REPO_ROOT)


@pytest.mark.ros
@needs_ros_tools
def test_ros2_launch_runs_the_node_to_a_verdict_and_sigint_ends_it(launch_env: dict[str, str], tmp_path: Path) -> None:
    """Default names: the installed params file, a model in ~/.ros/cde (allowed by default)."""
    model = write_tiny_node_model(Path(launch_env["HOME"]) / ".ros" / "cde")
    launched = Launched(launch_env, [f"model_path:={model}"], tmp_path / "launch.log")
    try:
        launched.wait_active("/cde_perception")
        _ros2_until(launch_env, ["lifecycle", "get", "/cde_perception", "--no-daemon"], "active")
        _ros2_until(launch_env, ["node", "list", "--no-daemon"], "/cde_perception")
        _ros2_until(launch_env, ["topic", "list", "--no-daemon"], "/cde_perception/effect_verification")
        launched.verify_one_command("/image", "/commands", "/cde_perception/effect_verification")
        code, log = launched.interrupt()
    finally:
        launched.close()
    assert code == 0, log
    assert re.search(r"\[INFO\] \[perception_node-1\]: process has finished cleanly", log), log


@pytest.mark.ros
@needs_ros_tools
def test_ros2_launch_namespace_image_and_params_file_arguments(launch_env: dict[str, str], tmp_path: Path) -> None:
    """namespace:= puts the node and its relative topics under /robot1; image:= remaps the camera topic;
    params_file:= replaces the installed YAML (here: the same YAML allowing the model's own directory)."""
    import yaml

    model_dir = tmp_path / "models"
    model_dir.mkdir()
    model = write_tiny_node_model(model_dir)
    params = yaml.safe_load((REPO_ROOT / "config" / "perception.yaml").read_text())
    params["/**"]["ros__parameters"]["allowed_model_dirs"] = [str(model_dir)]
    params_file = tmp_path / "params.yaml"
    params_file.write_text(json.dumps(params))  # JSON is YAML
    launched = Launched(launch_env, ["namespace:=robot1", "image:=/cam/image_raw", f"params_file:={params_file}",
                                     f"model_path:={model}"], tmp_path / "launch.log")
    try:
        launched.wait_active("/robot1/cde_perception")  # get_state answered under the namespace
        topics = _ros2_until(launch_env, ["topic", "list", "--no-daemon"], "/cam/image_raw").split()
        assert "/robot1/commands" in topics and "/image" not in topics, topics
        launched.verify_one_command("/cam/image_raw", "/robot1/commands", "/robot1/cde_perception/effect_verification")
        code, log = launched.interrupt()
    finally:
        launched.close()
    assert code == 0, log
    assert "process has finished cleanly" in log, log
