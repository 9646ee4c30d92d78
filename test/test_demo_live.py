"""The demo robot and the perception node over DDS, on Meta-World episodes: the frames the node verifies are
the generator's pair of the same episode (one episode definition), and the shipped demo model keeps verifying
a fixed-seed episode set (a guard against regressions, not a timing test)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import write_tiny_node_model
from ros_harness import REPO_ROOT, TestNode, fresh_domain, start_node, stop_node, wait_for
from test_perception_node_ros import allow_dirs_args

pytestmark = [pytest.mark.ros, pytest.mark.sim, pytest.mark.slow]
TASK, SEED = "drawer-open-v3", 1000


def test_the_node_verifies_the_generators_pair_and_masks_of_the_same_episode(tmp_path: Path) -> None:
    from PIL import Image as PILImage
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from cde_core.sim.episode import plan_episode
    from cde_core.sim.generator import GenerationConfig, run_episodes
    from cde_ros.image_conversion import message_to_rgb
    from cde_ros.mask_conversion import mask_from_message
    from cde_ros.msg import ActionRecognition, EffectVerification
    from cde_ros.perception_node import stamp_ns as _stamp

    spec = plan_episode(TASK, SEED, 0.0, "random")
    (generated,) = run_episodes([spec], GenerationConfig(tasks=TASK, cameras=("object",), size=64), tmp_path / "gen")
    (record,) = generated.records
    expected = {name: np.asarray(PILImage.open(tmp_path / "gen" / getattr(record, name)))
                for name in ("before", "after", "before_mask", "after_mask")}

    model = write_tiny_node_model(tmp_path, robot_mask="union")
    domain = fresh_domain()
    dirs = [str(tmp_path)]
    node = start_node("cde_ros.perception_node", domain, [
        "--params-file", str(REPO_ROOT / "config" / "perception.yaml"), "-p", f"model_path:={model}",
        "-p", "robot_mask_topic:=/robot_mask", "-p", "image_qos:=reliable", "-p", "image_qos_depth:=50",
        *allow_dirs_args(dirs, dirs), "-r", "__node:=cde_perception"], tmp_path / "node.log")
    t = TestNode("demo_live_test")
    reliable = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
    images, masks = t.collect(Image, "/image", reliable), t.collect(Image, "/robot_mask", reliable)
    recognitions = t.collect(ActionRecognition, "/cde_perception/action_recognition", reliable)
    verifications = t.collect(EffectVerification, "/cde_perception/effect_verification", reliable)
    robot = None
    try:
        wait_for(lambda: "robot mask union" in (tmp_path / "node.log").read_text(), 30, "the node's model")
        robot = start_node("cde_ros.demo.robot_node", domain, [
            "-p", "episodes:=1", "-p", f"tasks:={TASK}", "-p", f"seed:={SEED}", "-p", "appearance:=random",
            "-p", "failure_fraction:=0.0", "-p", "image_size:=64", "-p", "start_delay_s:=3.0",
            "-p", "command_interface:=topic", "-r", "__node:=sim_robot"], tmp_path / "robot.log")
        wait_for(lambda: len(verifications) > 0, 120, "the verification of the robot's command")
        time.sleep(0.5)
        assert verifications[0].verdict_name != "uncertain", verifications[0].reason
        (rec,) = list(recognitions)
        by_stamp = {kind: {_stamp(m.header.stamp): m for m in list(seen)} for kind, seen in
                    (("image", images), ("mask", masks))}
        before, after = _stamp(rec.before_stamp), _stamp(rec.after_stamp)
        # pixel-equal to the generator's PNGs of the same (task, seed, appearance)
        np.testing.assert_array_equal(message_to_rgb(by_stamp["image"][before]), expected["before"])
        np.testing.assert_array_equal(message_to_rgb(by_stamp["image"][after]), expected["after"])
        np.testing.assert_array_equal(mask_from_message(by_stamp["mask"][before]), expected["before_mask"])
        np.testing.assert_array_equal(mask_from_message(by_stamp["mask"][after]), expected["after_mask"])
        assert (expected["before_mask"] > 0).mean() > 0.02  # the arm is in view, and masked
    finally:
        t.close()
        if robot is not None:
            stop_node(robot)
        stop_node(node)


# How many of the fixed-seed episodes the shipped model must get right (measured: see README "Demo").
SHIPPED_MODEL_EPISODES = 8
SHIPPED_MODEL_MIN_CORRECT = 5  # of the 6 with an honest label (seeds 1000, 1002: another task's motion); measured 6


def test_the_shipped_demo_model_verifies_a_fixed_seed_episode_set_live(tmp_path: Path) -> None:
    from cde_ros.demo.orchestrator import DEFAULT_MODEL, _expected_ok, run_demo

    summary = run_demo(DEFAULT_MODEL, SHIPPED_MODEL_EPISODES, tmp_path, timeout_s=300, seed=1000,
                       appearance="default", quiet=True)
    assert summary["verdicts"] == summary["commands"] == SHIPPED_MODEL_EPISODES, summary["missing_verdicts"]
    data = json.loads((tmp_path / "summary.json").read_text())
    marks = [_expected_ok(data["truths"][c], data["verdicts"][c]["verdict"]) for c in data["truths"]]
    assert marks.count(None) == 2  # the same fixed seeds every time
    assert marks.count(True) >= SHIPPED_MODEL_MIN_CORRECT, (marks, summary)
    assert Path(summary["png"]).is_file()


def test_demo_recording_carries_the_robots_labels_and_imports_as_the_generators_pairs(tmp_path: Path) -> None:
    """The data loop's first half over DDS: the node records the demo robot's episodes, the robot labels them
    (EpisodeLabel on the node's label topic), and `cde data import` turns the bags into the generator's pairs
    of the same (task, seed, appearance), labelled as the robot said."""
    from PIL import Image as PILImage

    from cde_core.data.bag_import import import_bags
    from cde_core.data.manifest import read_manifest
    from cde_core.sim.episode import plan_episode
    from cde_core.sim.generator import GenerationConfig, run_episodes
    from cde_core.sim.tasks import resolve_tasks
    from cde_ros.demo.orchestrator import DEFAULT_MODEL, run_demo

    tasks = resolve_tasks("demo")
    summary = run_demo(DEFAULT_MODEL, len(tasks), tmp_path / "demo", timeout_s=300, seed=0, appearance="random",
                       quiet=True, record=tmp_path / "bags", episode_order="grid", rate_hz=20.0)
    assert summary["verdicts"] == summary["commands"] == len(tasks), summary["missing_verdicts"]
    assert summary["recording"]["bytes_per_episode"] > 0
    truths = json.loads((tmp_path / "demo" / "summary.json").read_text())["truths"]
    assert sorted((t["task"], t["seed"]) for t in truths.values()) == sorted((task, 0) for task in tasks)

    report = import_bags([tmp_path / "bags"], tmp_path / "data")
    records = {r.id: r for r in read_manifest(tmp_path / "data")}
    honest = {cid: t for cid, t in truths.items() if t["true_action"] is not None}
    assert set(records) == set(honest)  # another task's motion has no honest label: left out, as the generator does
    generation = json.loads((tmp_path / "data" / "generation.json").read_text())
    assert all(generation["label_origin"][cid] == "label" for cid in records)  # the robot's labels, not verdicts
    for cid, record in records.items():
        assert (record.action, record.effect_happened) == (honest[cid]["true_action"], honest[cid]["effect_happened"])
    cid, truth = next(iter(sorted(honest.items())))
    spec = plan_episode(truth["task"], 0, 0.25, "random")
    (generated,) = run_episodes([spec], GenerationConfig(tasks=truth["task"], cameras=("object",), size=96),
                                tmp_path / "gen")
    (expected,) = generated.records
    for name in ("before", "after", "before_mask", "after_mask"):
        np.testing.assert_array_equal(np.asarray(PILImage.open(tmp_path / "data" / getattr(records[cid], name))),
                                      np.asarray(PILImage.open(tmp_path / "gen" / getattr(expected, name))), name)
    assert report is not None
