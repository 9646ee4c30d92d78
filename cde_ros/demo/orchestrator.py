"""The demo: a simulated robot and the perception node, separate processes over DDS (localhost only).

`make demo` runs `python -m cde_ros.demo`: it starts the Meta-World robot (cde_ros.demo.robot_node) and
the perception node (cde_ros.perception_node, ONNX Runtime) as two processes, listens to both, prints a
live table, and ends with a summary (recognition accuracy, verification on succeeded and on failed
commands, latency) written to runs/demo/summary.json and a PNG of what the node saw.
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

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = ROOT / "models" / "demo" / "cde_demo.safetensors"


def _expected_ok(truth: dict[str, Any], verdict: str) -> bool:
    """Succeeded commands must be SUCCEEDED; a reach ('none') command NO_EFFECT; failed ones anything but
    SUCCEEDED (a failed command reported as done is the error that matters)."""
    if truth["commanded_action"] == "none":
        return verdict == "no_effect"
    if truth["effect_happened"]:
        return verdict == "succeeded"
    return verdict != "succeeded"


def _child_env(domain: int) -> dict[str, str]:
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT), os.environ.get("PYTHONPATH", "")] if p)
    return env


def run_demo(model: Path, episodes: int, out_dir: Path, timeout_s: float, image_size: int = 96) -> dict[str, Any]:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from cde_ros.msg import ActionRecognition, EffectVerification

    out_dir.mkdir(parents=True, exist_ok=True)
    from cde_core.export.onnx_export import ensure_onnx_export

    onnx_index = ensure_onnx_export(model, out_dir / "model")
    domain = random.Random().randint(30, 200)
    env = _child_env(domain)
    os.environ.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    logs = {name: open(out_dir / f"{name}.log", "w") for name in ("perception", "robot")}
    perception = subprocess.Popen(
        [sys.executable, "-m", "cde_ros.perception_node", "--ros-args", "--params-file",
         str(ROOT / "config" / "perception.yaml"), "-p", f"model_path:={onnx_index}",
         "-p", f"allowed_model_dirs:={json.dumps([str(onnx_index.parent.resolve())])}",  # the export's own dir
         "-r", "__node:=cde_perception"],
        env=env, stdout=logs["perception"], stderr=subprocess.STDOUT)
    robot = subprocess.Popen(
        [sys.executable, "-m", "cde_ros.demo.robot_node", "--ros-args", "-p", f"episodes:={episodes}",
         "-p", "tasks:=demo", "-p", "start_delay_s:=4.0", "-p", f"image_size:={image_size}",
         "-r", "__node:=sim_robot"],
        env=env, stdout=logs["robot"], stderr=subprocess.STDOUT)
    rclpy.init()
    node = Node("cde_demo_monitor")
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    truths: dict[str, dict] = {}
    verdicts: dict[str, dict] = {}
    recognitions: dict[str, dict] = {}
    overlays: list[np.ndarray] = []
    done = threading.Event()
    lock = threading.Lock()
    printed: set[str] = set()
    start = time.monotonic()
    print(f"{'command':<44} {'commanded':>9} {'truth':>7} {'recognised':>15} {'verdict':>10} {'ok':>3} {'latency':>8}")

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
                print(f"{cid[-44:]:<44} {t['commanded_action']:>9} {t['true_action']:>7} {rec:>15} "
                      f"{v['verdict']:>10} {'yes' if ok else 'NO':>3} {v['latency_s'] * 1000:>6.0f}ms", flush=True)
                if v["verdict"] == "uncertain":
                    print(f"    reason: {v['reason']}", flush=True)

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
                                            "effect_magnitude": msg.effect_magnitude,
                                            "patches": list(msg.changed_patches)}
        report()

    def on_overlay(msg: Image) -> None:
        if len(overlays) < 6:
            overlays.append(np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3).copy())

    node.create_subscription(String, "/sim_robot/ground_truth", on_truth, reliable)
    node.create_subscription(String, "/sim_robot/done", lambda _m: done.set(), reliable)
    node.create_subscription(EffectVerification, "/cde_perception/effect_verification", on_verification, reliable)
    node.create_subscription(ActionRecognition, "/cde_perception/action_recognition", on_recognition, reliable)
    node.create_subscription(Image, "/cde_perception/overlay", on_overlay, 5)
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
    return summarise(truths, verdicts, recognitions, overlays, out_dir, time.monotonic() - start, onnx_index)


def summarise(truths: dict, verdicts: dict, recognitions: dict, overlays: list[np.ndarray], out_dir: Path,
              seconds: float, model: Path) -> dict[str, Any]:
    from PIL import Image as PILImage

    ids = [c for c in truths if c in verdicts]
    succeeded = [c for c in ids if truths[c]["effect_happened"]]
    failed = [c for c in ids if not truths[c]["effect_happened"] and truths[c]["commanded_action"] != "none"]
    reach = [c for c in ids if truths[c]["commanded_action"] == "none"]
    recognised = [c for c in ids if c in recognitions]
    latencies = np.array([verdicts[c]["latency_s"] for c in ids]) * 1000 if ids else np.zeros(0)

    def acc(group: list[str]) -> float | None:
        return round(float(np.mean([_expected_ok(truths[c], verdicts[c]["verdict"]) for c in group])), 3) if group else None

    summary = {
        "model": str(model), "commands": len(truths), "verdicts": len(ids),
        "missing_verdicts": sorted(set(truths) - set(verdicts)),
        "recognition_accuracy": round(float(np.mean([recognitions[c]["action"] == truths[c]["true_action"]
                                                      for c in recognised])), 3) if recognised else None,
        "verification_accuracy_succeeded": acc(succeeded), "verification_accuracy_failed": acc(failed),
        "verification_accuracy_reach": acc(reach), "n_succeeded": len(succeeded), "n_failed": len(failed),
        "n_reach": len(reach), "uncertain": sum(verdicts[c]["verdict"] == "uncertain" for c in ids),
        "latency_ms_p50": round(float(np.percentile(latencies, 50)), 1) if ids else None,
        "latency_ms_p90": round(float(np.percentile(latencies, 90)), 1) if ids else None,
        "latency_ms_max": round(float(latencies.max()), 1) if ids else None, "seconds": round(seconds, 1),
    }
    (out_dir / "summary.json").write_text(json.dumps({"summary": summary, "truths": truths, "verdicts": verdicts,
                                                     "recognitions": recognitions}, indent=2))
    if overlays:
        width = max(o.shape[1] for o in overlays)
        sheet = np.zeros((sum(o.shape[0] for o in overlays), width, 3), np.uint8)
        y = 0
        for o in overlays:
            sheet[y:y + o.shape[0], :o.shape[1]] = o
            y += o.shape[0]
        PILImage.fromarray(sheet).save(out_dir / "demo.png")
        summary["png"] = str(out_dir / "demo.png")
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="checkpoint (.safetensors)")
    parser.add_argument("--episodes", type=int, default=24)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "demo")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--image-size", type=int, default=96, help="camera resolution (the demo model saw 96 px)")
    args = parser.parse_args()
    if not args.model.exists():
        print(f"no model at {args.model}: train one with scripts/train_demo_model.sh", file=sys.stderr)
        return 2
    summary = run_demo(args.model, args.episodes, args.out, args.timeout, args.image_size)
    print("\nsummary:")
    for key, value in summary.items():
        print(f"  {key}: {value}")
    return 0 if summary["verdicts"] == summary["commands"] and summary["commands"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
