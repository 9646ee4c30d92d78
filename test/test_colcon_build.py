"""The repository builds as a ROS 2 package with colcon (from the PyPI wheels) and installs what a
`ros2 launch cde_ros perception.launch.py` user needs."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def test_colcon_build_installs_messages_nodes_launch_and_config(tmp_path: Path) -> None:
    src = tmp_path / "ws" / "src"
    src.mkdir(parents=True)
    # Copy the package (without the venv and build outputs) as a user's workspace would hold it.
    shutil.copytree(REPO_ROOT, src / "cde_ros", ignore=shutil.ignore_patterns(
        ".venv", "build", "install", "log", "runs", ".git", "__pycache__", "*.egg-info", ".pytest_cache"))
    venv = Path(sys.prefix)
    env = dict(os.environ, AMENT_PREFIX_PATH=str(venv), CMAKE_PREFIX_PATH=str(venv))
    result = subprocess.run(
        ["colcon", "build", "--event-handlers", "console_direct-",
         "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF"],
        cwd=tmp_path / "ws", env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    prefix = tmp_path / "ws" / "install" / "cde_ros"
    site = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    for rel in ["lib/cde_ros/perception_node", "lib/cde_ros/sim_robot_node",
                "share/cde_ros/launch/perception.launch.py", "share/cde_ros/config/perception.yaml",
                "share/cde_ros/msg/EffectVerification.msg", "share/cde_ros/package.xml",
                "share/cde_ros/models/demo/cde_demo.safetensors"]:  # package://cde_ros/models, allowed by default
        assert (prefix / rel).exists(), rel
    assert (site / "cde_core" / "models" / "cde.py").exists()
    assert (site / "cde_ros" / "perception_node.py").exists()
    # The installed generated messages import and serialise (typesupport libraries from the install).
    probe = ("import cde_ros.msg as m, rclpy.serialization as s; v = m.EffectVerification(reason='x', verdict=1);"
             "w = s.deserialize_message(s.serialize_message(v), m.EffectVerification);"
             "assert w.reason == 'x' and w.verdict == 1; print(m.__file__)")
    run_env = dict(env, PYTHONPATH=str(site),
                   LD_LIBRARY_PATH=os.pathsep.join([str(prefix / "lib"), os.environ.get("LD_LIBRARY_PATH", "")]))
    run_env.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=run_env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert str(site) in out.stdout
