"""The demo: a simulated robot and the perception node, separate processes over DDS (localhost only).

`make demo` runs `python -m cde_ros.demo`: it starts the Meta-World robot (cde_ros.demo.robot_node) and
the perception node (cde_ros.perception_node, ONNX Runtime) as two processes, listens to both, prints a
live table, and ends with a summary (recognition accuracy, verification balanced accuracy, no-effect AUROC,
per-group accuracies, latency) in runs/demo/summary.json and a contact sheet of every command
(runs/demo/demo.png: the frames the node verified, the robot mask tinted, the changed patches boxed).
The robot's robot-mask topic is wired to the node when the model was trained with masks (`--masks auto`).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from cde_core.eval.verification_metrics import Outcome, verdict_is_right, verification_figures

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = ROOT / "models" / "demo" / "cde_demo.safetensors"


def _outcome(truth: dict[str, Any], verdict: str, recognition: dict[str, Any] | None = None) -> Outcome:
    """One command as the shared verification figures see it. An episode with no honest label (another task's
    motion moved the object: the generator drops such pairs) has true_action None and is left out, counted."""
    r = recognition or {}
    scores = dict(zip(r.get("class_names", []), r.get("scores", [])))
    return Outcome(truth["commanded_action"], truth["true_action"], bool(truth["effect_happened"]), verdict,
                   r.get("action"), r.get("effect_magnitude"), scores.get("none"))


def _expected_ok(truth: dict[str, Any], verdict: str) -> bool | None:
    """Whether the verdict is right for this command (cde_core.eval.verification_metrics.verdict_is_right)."""
    return verdict_is_right(_outcome(truth, verdict))


def _child_env(domain: int) -> dict[str, str]:
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT), os.environ.get("PYTHONPATH", "")] if p)
    return env


def run_demo(model: Path, episodes: int, out_dir: Path, timeout_s: float, image_size: int = 96, seed: int = 1000,
             appearance: str = "default", camera: str = "object", masks: str = "auto", tasks: str = "demo",
             failure_fraction: float = 0.25, quiet: bool = False, record: Path | None = None,
             episode_order: str = "cycle", rate_hz: float = 10.0, settle_s: float = 2.0) -> dict[str, Any]:
    """Run the robot and the node over DDS for `episodes` commands and score the verdicts (see main()).

    `record`: the node records every episode (frames, masks, command, verdict) under this directory and the
    robot publishes its ground truth as EpisodeLabel messages on the node's label topic, so the bags carry
    labels made on the robot's side (`cde data import` reads them)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from cde_core.checkpoint import read_meta
    from cde_ros.image_conversion import message_to_rgb
    from cde_ros.mask_conversion import mask_from_message
    from cde_ros.msg import ActionRecognition, EffectVerification
    from cde_ros.perception_node import stamp_ns as stamp

    out_dir.mkdir(parents=True, exist_ok=True)
    from cde_core.export.onnx_export import ensure_onnx_export

    onnx_index = ensure_onnx_export(model, out_dir / "model")
    domain = random.Random().randint(30, 200)
    env = _child_env(domain)
    os.environ.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    logs = {name: open(out_dir / f"{name}.log", "w") for name in ("perception", "robot")}
    use_masks = masks == "on" or (masks == "auto" and read_meta(model).preprocessing.robot_mask != "none")
    # The demo robot's action servers and mask topic: the demo's settings, not the product's defaults.
    servers = [f"/sim_arm/{a}={a}" for a in ("open", "close", "none")]
    perception = subprocess.Popen(
        [sys.executable, "-m", "cde_ros.perception_node", "--ros-args", "--params-file",
         str(ROOT / "config" / "perception.yaml"), "-p", f"model_path:={onnx_index}",
         "-p", f"allowed_model_dirs:={json.dumps([str(onnx_index.parent.resolve())])}",  # the export's own dir
         "-p", f"action_servers:={json.dumps(servers)}",
         "-p", "robot_mask_topic:=" + ("/robot_mask" if use_masks else "''"),  # '' = YAML's empty string
         *_recording_args(record), "-r", "__node:=cde_perception"],
        env=env, stdout=logs["perception"], stderr=subprocess.STDOUT)
    robot = subprocess.Popen(
        [sys.executable, "-m", "cde_ros.demo.robot_node", "--ros-args", "-p", f"episodes:={episodes}",
         "-p", f"tasks:={tasks}", "-p", "start_delay_s:=4.0", "-p", f"image_size:={image_size}",
         "-p", f"seed:={seed}", "-p", f"appearance:={appearance}", "-p", f"camera:={camera}",
         "-p", f"failure_fraction:={failure_fraction}",
         # the after state stays in view 2 s (settle_s): an action server's end is stamped when the node
         # receives the terminal status (it carries no end time), which on a loaded machine can come ~1 s late
         "-p", f"post_command_s:={settle_s}", "-p", f"rate_hz:={rate_hz}", "-p", f"episode_order:={episode_order}",
         "-p", "label_topic:=" + ("/cde_perception/episode_label" if record else "''"), "-r", "__node:=sim_robot"],
        env=env, stdout=logs["robot"], stderr=subprocess.STDOUT)
    rclpy.init()
    node = Node("cde_demo_monitor")
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    truths: dict[str, dict] = {}
    verdicts: dict[str, dict] = {}
    recognitions: dict[str, dict] = {}
    seen: dict[str, dict[int, Any]] = {"image": {}, "mask": {}}  # header stamp -> message (bounded below)
    done = threading.Event()
    lock = threading.Lock()
    printed: set[str] = set()
    start = time.monotonic()
    say = (lambda *a, **k: None) if quiet else print
    say(f"{'command':<54} {'commanded':>9} {'truth':>7} {'recognised':>15} {'verdict':>10} {'ok':>3} {'latency':>8}")

    def report(final: bool = False) -> None:
        with lock:
            for cid in list(verdicts):
                if cid in printed or cid not in truths:
                    continue
                if verdicts[cid]["verdict"] != "uncertain" and cid not in recognitions and not final:
                    continue  # the recognition travels on another topic and may arrive a moment later
                printed.add(cid)
                t, v = truths[cid], verdicts[cid]
                r = recognitions.get(cid)
                rec = f"{r['action']} ({r['confidence']:.2f})" if r else "-"
                ok = _expected_ok(t, v["verdict"])
                mark = "?" if ok is None else "yes" if ok else "NO"
                say(f"{cid:<54} {t['commanded_action']:>9} {str(t['true_action']):>7} {rec:>15} "
                    f"{v['verdict']:>10} {mark:>3} {v['latency_s'] * 1000:>6.0f}ms", flush=True)
                if v["verdict"] == "uncertain":
                    say(f"    reason: {v['reason']}", flush=True)

    def on_truth(msg: String) -> None:
        t = json.loads(msg.data)
        with lock:
            truths[t["command_id"]] = t
        report()

    def on_verification(msg: EffectVerification) -> None:
        end = msg.command_end.sec + msg.command_end.nanosec * 1e-9
        with lock:
            verdicts[msg.command_id] = {"verdict": msg.verdict_name, "observed": msg.observed_action,
                                        "confidence": msg.confidence, "reason": msg.reason,
                                        "latency_s": time.time() - end}
        report()

    def on_recognition(msg: ActionRecognition) -> None:
        with lock:
            recognitions[msg.command_id] = {"action": msg.action, "confidence": msg.confidence,
                                            "class_names": list(msg.class_names),
                                            "scores": [float(x) for x in msg.scores],
                                            "effect_magnitude": msg.effect_magnitude,
                                            "patches": list(msg.changed_patches),
                                            "grid": [msg.patch_grid_rows, msg.patch_grid_cols],
                                            "before_stamp": stamp(msg.before_stamp),
                                            "after_stamp": stamp(msg.after_stamp)}
        report()

    def keep(kind: str) -> Any:
        def on_frame(msg: Image) -> None:  # the frames the node verified are looked up by stamp afterwards
            with lock:
                frames = seen[kind]
                frames[stamp(msg.header.stamp)] = msg
                while len(frames) > 3000:
                    frames.pop(next(iter(frames)))
        return on_frame

    node.create_subscription(String, "/sim_robot/ground_truth", on_truth, reliable)
    node.create_subscription(String, "/sim_robot/done", lambda _m: done.set(), reliable)
    node.create_subscription(EffectVerification, "/cde_perception/effect_verification", on_verification, reliable)
    node.create_subscription(ActionRecognition, "/cde_perception/action_recognition", on_recognition, reliable)
    node.create_subscription(Image, "/image", keep("image"), qos_profile_sensor_data)
    node.create_subscription(Image, "/robot_mask", keep("mask"), qos_profile_sensor_data)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.2)
            if done.is_set() and len(verdicts.keys() & truths.keys()) >= len(truths):
                break
            if robot.poll() is not None and not done.is_set():
                raise RuntimeError(f"the simulated robot exited with {robot.returncode}; see {out_dir}/robot.log")
            if perception.poll() is not None:
                raise RuntimeError(f"the perception node exited with {perception.returncode}; see {out_dir}/perception.log")
        settle_until = time.monotonic() + 5.0
        while len(verdicts.keys() & truths.keys()) < len(truths) and time.monotonic() < settle_until:
            executor.spin_once(timeout_sec=0.2)
        report(final=True)
    finally:
        for proc in (robot, perception):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in (robot, perception):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        for handle in logs.values():
            handle.close()
    frames = {}
    for cid, r in recognitions.items():
        pair = {}
        for side in ("before", "after"):
            image, mask = seen["image"].get(r[f"{side}_stamp"]), seen["mask"].get(r[f"{side}_stamp"])
            pair[side] = message_to_rgb(image) if image is not None else None
            pair[f"{side}_mask"] = mask_from_message(mask) if (mask is not None and use_masks) else None
        frames[cid] = pair
    setup: dict[str, Any] = {"seed": seed, "episodes": episodes, "appearance": appearance, "camera": camera,
                             "tasks": tasks, "image_size": image_size, "masks": use_masks,
                             "failure_fraction": failure_fraction, "episode_order": episode_order}
    if record is not None:
        setup["recording"] = recording_summary(record, len(truths))
    return summarise(truths, verdicts, recognitions, frames, out_dir, time.monotonic() - start, onnx_index, setup)


def _recording_args(record: Path | None) -> list[str]:
    """The node's recording parameters: on, into `record` (its only allowed directory), raw frames."""
    if record is None:
        return []
    record = record.resolve()
    record.mkdir(parents=True, exist_ok=True)
    return ["-p", "recording_enabled:=true", "-p", f"recording_dir:={record}",
            "-p", f"allowed_recording_dirs:={json.dumps([str(record)])}"]


def recording_summary(record: Path, commands: int) -> dict[str, Any]:
    """What the recording cost on disk: bag files, bytes, and bytes per command of this run."""
    files = [f for f in record.rglob("*") if f.is_file()]
    size = sum(f.stat().st_size for f in files)
    return {"dir": str(record), "mcap_files": sum(f.suffix == ".mcap" for f in files), "bytes": size,
            "bytes_per_episode": round(size / commands) if commands else None}


def summarise(truths: dict, verdicts: dict, recognitions: dict, frames: dict, out_dir: Path, seconds: float,
              model: Path, setup: dict[str, Any] | None = None) -> dict[str, Any]:
    """The demo's figures (issue targets: recognition, verification balanced accuracy, no-effect AUROC), written
    with every truth and verdict to summary.json; the contact sheet of every command to demo.png."""
    ids = [c for c in truths if c in verdicts]
    outcomes = [_outcome(truths[c], verdicts[c]["verdict"], recognitions.get(c)) for c in ids]
    latencies = np.array([verdicts[c]["latency_s"] for c in ids]) * 1000 if ids else np.zeros(0)
    figures = verification_figures(outcomes)
    summary = {
        "model": str(model), **(setup or {}), "commands": len(truths), "verdicts": len(ids),
        "missing_verdicts": sorted(set(truths) - set(verdicts)), **figures,
        "unlabelled": [c for c in ids if truths[c]["true_action"] is None],
        "latency_ms_p50": round(float(np.percentile(latencies, 50)), 1) if ids else None,
        "latency_ms_p90": round(float(np.percentile(latencies, 90)), 1) if ids else None,
        "latency_ms_max": round(float(latencies.max()), 1) if ids else None, "seconds": round(seconds, 1),
    }
    (out_dir / "summary.json").write_text(json.dumps({"summary": summary, "truths": truths, "verdicts": verdicts,
                                                     "recognitions": recognitions}, indent=2))
    rows = [_sheet_row(cid, truths[cid], verdicts[cid], recognitions.get(cid), frames.get(cid, {})) for cid in ids]
    if rows:
        from cde_ros.demo.contact_sheet import save_contact_sheet

        title = (f"cde demo: {model.name}, {summary.get('appearance', '?')} look, seeds {summary.get('seed', '?')}+, "
                 f"masks {'on' if summary.get('masks') else 'off'}; recognition {summary['recognition_accuracy']}, "
                 f"verification balanced {summary['verification_balanced_accuracy']}, "
                 f"no-effect AUROC {summary['no_effect_auroc']}")
        summary["png"] = str(save_contact_sheet(rows, out_dir / "demo.png", title=title))
    return summary


def _sheet_row(cid: str, truth: dict, verdict: dict, recognition: dict | None, frames: dict) -> Any:
    """One contact-sheet row: the frames the node verified (grey when it verified none) and the texts."""
    from cde_ros.demo.contact_sheet import SheetRow

    blank = np.full((96, 96, 3), 128, np.uint8)
    before, after = frames.get("before"), frames.get("after")
    r = recognition or {}
    return SheetRow(command_id=cid, before_rgb=before if before is not None else blank,
                    after_rgb=after if after is not None else blank,
                    before_mask=frames.get("before_mask") if before is not None else None,
                    after_mask=frames.get("after_mask") if after is not None else None,
                    grid=tuple(r["grid"]) if r.get("grid") and all(r["grid"]) else None,
                    changed_patches=r.get("patches", ()), commanded_action=truth["commanded_action"],
                    recognised_action=r.get("action"), recognised_confidence=r.get("confidence"),
                    verdict=verdict["verdict"], reason=verdict["reason"], true_action=truth["true_action"],
                    verdict_correct=_expected_ok(truth, verdict["verdict"]), effect_magnitude=r.get("effect_magnitude"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="checkpoint (.safetensors)")
    parser.add_argument("--episodes", type=int, default=48, help="commands (episodes) to run")
    parser.add_argument("--seed", type=int, default=1000,
                        help="first episode seed (episode i is seed+i; the demo model was trained on seeds < 1000)")
    parser.add_argument("--appearance", choices=("default", "random", "mixed"), default="default",
                        help="Meta-World's own look, randomised colours/lights/camera, or either per episode")
    parser.add_argument("--camera", default="object", help="camera of the robot (the demo model saw 'object')")
    parser.add_argument("--tasks", default="demo", help="task set or comma-separated Meta-World tasks")
    parser.add_argument("--failures", type=float, default=0.25, help="fraction of commands that fail on purpose")
    parser.add_argument("--masks", choices=("auto", "on", "off"), default="auto",
                        help="wire the robot's self-mask to the node (auto: when the model was trained with masks)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "demo")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--image-size", type=int, default=96, help="camera resolution (the demo model saw 96 px)")
    parser.add_argument("--record", type=Path, default=None,
                        help="the node records every episode under this directory, with the robot's EpisodeLabels")
    parser.add_argument("--episode-order", choices=("cycle", "grid"), default="cycle",
                        help="cycle: episode i is task i mod T at seed+i; grid: every task for each seed "
                             "(the generator's order)")
    parser.add_argument("--rate-hz", type=float, default=10.0, help="the robot's camera rate while the arm moves")
    parser.add_argument("--settle-s", type=float, default=2.0, help="seconds the after state stays in view")
    args = parser.parse_args()
    if not args.model.exists():
        print(f"no model at {args.model}: train one with scripts/train_demo_model.sh", file=sys.stderr)
        return 2
    summary = run_demo(args.model, args.episodes, args.out, args.timeout, args.image_size, args.seed, args.appearance,
                       args.camera, args.masks, args.tasks, args.failures, record=args.record,
                       episode_order=args.episode_order, rate_hz=args.rate_hz, settle_s=args.settle_s)
    print("\nsummary:")
    for key, value in summary.items():
        print(f"  {key}: {value}")
    return 0 if summary["verdicts"] == summary["commands"] and summary["commands"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
