"""Drive the perception node under load and report what a robot would care about.

A publisher sends 1280x720 rgb8 frames at 30 Hz and a command every 2 s to the real node (its own
process, DDS on localhost, its own domain) for a fixed time. Reported: image-callback cost (the node's
own measurement, from /diagnostics), frames dropped by its buffer, FINISHED -> EffectVerification
latency (median, p99, and per minute), lost verifications, and the node's resident memory at start
and end. Used as the node part of `cde bench` and as the soak test (`--seconds 600`).

The node's own log is kept beside the JSON (`<out>.node.log`, e.g. `soak.node.log` for `soak.json`) and a node
that exits before the end is reported as such (`node_exit`: exit code or signal, when, and its last log lines),
so a run that loses verifications says why.

    python bench/node_load.py --seconds 60 --model models/demo/cde_demo.safetensors --out runs/bench/node_load.json
"""
from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "test"))
sys.path.insert(0, str(ROOT))

S = 1_000_000_000


def rss_mb(pid: int) -> float:
    """Resident memory of a live process; NaN once it has exited (a zombie has no VmRSS, a reaped one no /proc)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return float("nan")
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def node_log_path(out: Path | None, work: Path) -> Path:
    """Where the node's log goes: beside the JSON, named after it, so every run keeps its own."""
    return out.with_name(out.stem + ".node.log") if out else work / "node_load_node.log"


def node_exit_report(returncode: int | None, after_s: float | None = None, log: Path | None = None,
                     tail_lines: int = 30) -> dict | None:
    """What the JSON says about a node that exited before the run ended (None: it was still running).

    Popen's returncode is the exit code, or minus the signal number for a node killed by a signal."""
    if returncode is None:
        return None
    report: dict = {"code": returncode if returncode >= 0 else None,
                    "signal": signal.Signals(-returncode).name if returncode < 0 else None,
                    "after_s": None if after_s is None else round(after_s, 1)}
    if log is not None:
        report["log"] = str(log)
        try:
            report["log_tail"] = log.read_text(errors="replace").splitlines()[-tail_lines:]
        except OSError as exc:
            report["log_tail"] = [f"(log unreadable: {exc})"]
    return report


def run(model: Path, seconds: float, rate_hz: float, command_period: float, width: int, height: int,
        out: Path | None) -> dict:
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from ros_harness import TestNode, fresh_domain, start_node, stop_node, wait_for
    from sensor_msgs.msg import Image

    from cde_core.export.onnx_export import ensure_onnx_export
    from cde_ros.msg import EffectVerification, ManipulatorCommand

    work = (out.parent if out else ROOT / "runs" / "bench")
    work.mkdir(parents=True, exist_ok=True)
    onnx_index = ensure_onnx_export(model, work / "model") if model.suffix == ".safetensors" else model
    domain = fresh_domain()
    log = node_log_path(out, work)
    proc = start_node("cde_ros.perception_node", domain, [
        "--params-file", str(ROOT / "config" / "perception.yaml"), "-p", f"model_path:={onnx_index}",
        "-p", f"allowed_model_dirs:={json.dumps([str(onnx_index.parent.resolve())])}",
        "-p", "buffer_seconds:=4.0", "-p", "buffer_max_mb:=512.0", "-p", "settle_time:=0.2",
        "-r", "__node:=cde_perception"], log)
    launched = time.monotonic()
    exited_after: float | None = None
    t = TestNode("cde_load")
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    image_pub = t.node.create_publisher(Image, "image", 5)
    command_pub = t.node.create_publisher(ManipulatorCommand, "commands", reliable)
    verifications = t.collect(EffectVerification, "/cde_perception/effect_verification", reliable)
    diagnostics = t.collect(DiagnosticArray, "/diagnostics")
    rng = np.random.default_rng(0)
    base_frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8).tobytes() for _ in range(4)]
    try:
        wait_for(lambda: image_pub.get_subscription_count() > 0 and command_pub.get_subscription_count() > 0, 20,
                 "the node")
        wait_for(lambda: len(diagnostics) > 0, 20, "diagnostics")
        # Warm up: fill the frame buffer (4 s) and run one command through inference first, so memory growth
        # measures leaks, not the buffer filling or the runtime's first allocations.
        warm_start = time.monotonic()
        warm_phase = 0  # 0: filling, 1: STARTED sent, 2: FINISHED sent
        while time.monotonic() - warm_start < 30.0 and proc.poll() is None:
            msg = Image(height=height, width=width, encoding="rgb8", step=width * 3, data=base_frames[0])
            msg.header.stamp = t.node.get_clock().now().to_msg()
            image_pub.publish(msg)
            elapsed = time.monotonic() - warm_start
            if warm_phase == 0 and elapsed > 5.0:
                command_pub.publish(_command(ManipulatorCommand, "warmup", "open", 0, t.node.get_clock().now().nanoseconds))
                warm_phase = 1
            elif warm_phase == 1 and elapsed > 6.0:
                command_pub.publish(_command(ManipulatorCommand, "warmup", "", 1, t.node.get_clock().now().nanoseconds))
                warm_phase = 2
            elif warm_phase == 2 and any(v.command_id == "warmup" for v in verifications):
                break
            time.sleep(1.0 / rate_hz)
        verifications.clear()
        rss_start = rss_mb(proc.pid)
        rss_per_minute: list[float] = []
        sent: dict[str, float] = {}
        received_at: dict[str, float] = {}
        start = time.monotonic()
        next_frame, next_command, index = start, start + 1.0, 0
        open_cmd: tuple[str, int] | None = None
        while time.monotonic() - start < seconds:
            now = time.monotonic()
            if proc.poll() is not None:
                exited_after = now - launched
                break  # nothing left to measure; the report says how it ended
            if now >= next_frame:
                msg = Image(height=height, width=width, encoding="rgb8", step=width * 3,
                            data=base_frames[int(now * rate_hz) % len(base_frames)])
                msg.header.stamp = t.node.get_clock().now().to_msg()
                msg.header.frame_id = "load_cam"
                image_pub.publish(msg)
                next_frame += 1.0 / rate_hz
            if now >= next_command:
                stamp = t.node.get_clock().now().nanoseconds
                if open_cmd is None:
                    cid = f"load-{index:05d}"
                    command_pub.publish(_command(ManipulatorCommand, cid, "open", 0, stamp))
                    open_cmd = (cid, stamp)
                    next_command += command_period / 2
                else:
                    command_pub.publish(_command(ManipulatorCommand, open_cmd[0], "", 1, stamp))
                    sent[open_cmd[0]] = time.monotonic()
                    open_cmd, index = None, index + 1
                    next_command += command_period / 2
            for v in list(verifications):
                received_at.setdefault(v.command_id, time.monotonic())
            if now - start >= 60.0 * (len(rss_per_minute) + 1):
                rss_per_minute.append(round(rss_mb(proc.pid), 1))
            time.sleep(max(0.0, min(next_frame, next_command) - time.monotonic()))
        deadline = time.monotonic() + 10
        while (len(set(sent) - {v.command_id for v in verifications}) and time.monotonic() < deadline
               and proc.poll() is None):
            for v in list(verifications):
                received_at.setdefault(v.command_id, time.monotonic())
            time.sleep(0.05)
        seconds_run = time.monotonic() - start
        rss_end = rss_mb(proc.pid)
        if proc.poll() is not None and exited_after is None:
            exited_after = time.monotonic() - launched
        for v in list(verifications):
            received_at.setdefault(v.command_id, time.monotonic())
        latencies = np.array([received_at[c] - sent[c] for c in sent if c in received_at]) * 1000
        verdicts: dict[str, int] = {}
        reasons: dict[str, int] = {}  # why, with the numbers cut off, so the same cause counts once
        for v in verifications:
            verdicts[v.verdict_name] = verdicts.get(v.verdict_name, 0) + 1
            cause = re.sub(r"load-\d+", "<id>", v.reason.split(" (")[0])[:80]
            reasons[cause] = reasons.get(cause, 0) + 1
        last = {kv.key: kv.value for kv in diagnostics[-1].status[0].values} if diagnostics else {}
        per_minute = []
        for minute in range(int(np.ceil(seconds / 60))):
            window = [received_at[c] - sent[c] for c in sent if c in received_at
                      and minute * 60 <= sent[c] - start < (minute + 1) * 60]
            if window:
                per_minute.append(round(float(np.percentile(np.array(window) * 1000, 99)), 1))
        result = {
            "seconds": seconds, "seconds_run": round(seconds_run, 1), "frame_rate_hz": rate_hz, "frame_size": f"{width}x{height} rgb8",
            "commands_finished": len(sent), "verifications": len(set(received_at) & set(sent)),
            "lost_verifications": len(set(sent) - set(received_at)), "verdicts": verdicts,
            "reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])[:5]),
            "latency_ms_p50": round(float(np.percentile(latencies, 50)), 1) if latencies.size else None,
            "latency_ms_p99": round(float(np.percentile(latencies, 99)), 1) if latencies.size else None,
            "latency_ms_p99_per_minute": per_minute,
            "image_callback_ms_p50": float(last.get("image_callback_ms_p50", "nan")),
            "image_callback_ms_p99": float(last.get("image_callback_ms_p99", "nan")),
            "node_input_rate_hz": float(last.get("input_rate_hz", "nan")),
            "frames_received_by_node": int(last.get("frames_received", 0)),
            "buffer_dropped": int(last.get("buffer_dropped", 0)), "buffer_mb": float(last.get("buffer_mb", 0)),
            "rss_mb_start": round(rss_start, 1), "rss_mb_end": round(rss_end, 1),
            "rss_growth_pct": round(100 * (rss_end - rss_start) / rss_start, 2), "rss_mb_per_minute": rss_per_minute,
            "node_log": str(log), "node_exit": None,
            "note": "latency includes settle_time 0.2 s; demo model via ONNX Runtime, 1 thread; memory from after a "
                    "warm-up that fills the buffer and verifies one command",
        }
    finally:
        t.close()
        stop_node(proc)
    # The exit status is read after the log is flushed and closed (stop_node waited for the process).
    result["node_exit"] = node_exit_report(proc.returncode if exited_after is not None else None, exited_after, log)
    if out:
        out.write_text(json.dumps(result, indent=2))
    return result


def _command(cls, cid: str, action: str, phase: int, stamp_ns: int):
    msg = cls(command_id=cid, action=action, phase=phase)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, S)
    return msg


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "demo" / "cde_demo.safetensors")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--command-period", type=float, default=2.0)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "node_load.json")
    args = parser.parse_args()
    result = run(args.model, args.seconds, args.rate, args.command_period, args.width, args.height, args.out)
    for key, value in result.items():
        print(f"{key:>28}: {value}")
    return 0 if result["lost_verifications"] == 0 and result["node_exit"] is None else 1


if __name__ == "__main__":
    sys.exit(main())
