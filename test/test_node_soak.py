"""A short soak of the real node under camera load (bench/node_load.py's `run`, the same code as the
10-minute soak): 30 Hz frames and a command every 2 s for ~15 s at 320x240 with the demo model.
Structure and loss only; no timing assertions (timings depend on the machine and its load)."""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from conftest import REPO_ROOT

pytestmark = [pytest.mark.ros, pytest.mark.slow]
DEMO_MODEL = REPO_ROOT / "models" / "demo" / "cde_demo.safetensors"


def _node_load():
    spec = importlib.util.spec_from_file_location("node_load", REPO_ROOT / "bench" / "node_load.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not DEMO_MODEL.exists(), reason="demo model missing: run scripts/train_demo_model.sh")
def test_short_soak_loses_no_verification(tmp_path: Path) -> None:
    out = tmp_path / "node_load.json"
    report = _node_load().run(DEMO_MODEL, seconds=15.0, rate_hz=30.0, command_period=2.0, width=320, height=240,
                              out=out)
    assert json.loads(out.read_text()) == report
    assert report["commands_finished"] >= 5 and report["lost_verifications"] == 0, report
    assert report["verifications"] == report["commands_finished"]
    assert sum(report["verdicts"].values()) >= report["verifications"]
    for key in ("latency_ms_p50", "latency_ms_p99", "image_callback_ms_p50", "image_callback_ms_p99",
                "rss_mb_start", "rss_mb_end", "rss_growth_pct"):
        assert isinstance(report[key], float) and math.isfinite(report[key]), key
    assert report["latency_ms_p50"] <= report["latency_ms_p99"] and report["rss_mb_start"] > 0
    assert report["latency_ms_p99_per_minute"] and report["frames_received_by_node"] > 0
    assert report["frame_size"] == "320x240 rgb8"


@pytest.mark.skipif(not DEMO_MODEL.exists(), reason="demo model missing: run scripts/train_demo_model.sh")
def test_node_killed_mid_run_is_reported_with_its_signal_and_its_log_is_kept(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 13: a load run whose node died said only rss_mb_end NaN, and `cde bench` deleted the node's log.
    Here the test kills the node (SIGKILL) once it is serving; the report must say so and keep the log."""
    import signal
    import subprocess
    import threading

    import ros_harness

    started: list[subprocess.Popen] = []
    real_start = ros_harness.start_node

    def start_and_kill_later(module: str, domain: int, args: list[str], log: Path) -> subprocess.Popen:
        proc = real_start(module, domain, args, log)
        started.append(proc)

        def kill_when_serving() -> None:
            ros_harness.wait_for(lambda: "onnxruntime" in log.read_text() or proc.poll() is not None, 120,
                                 "the node's model")
            threading.Event().wait(10.0)  # into the warm-up or the measured run; either way before its end
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)

        threading.Thread(target=kill_when_serving, daemon=True).start()
        return proc

    monkeypatch.setattr(ros_harness, "start_node", start_and_kill_later)
    out = tmp_path / "killed.json"
    report = _node_load().run(DEMO_MODEL, seconds=30.0, rate_hz=30.0, command_period=2.0, width=320, height=240,
                              out=out)
    assert len(started) == 1
    assert report["node_exit"]["signal"] == "SIGKILL" and report["node_exit"]["code"] is None, report["node_exit"]
    assert report["seconds_run"] < 30.0  # the run stopped when the node was gone instead of driving no one
    log = tmp_path / "killed.node.log"
    assert report["node_log"] == str(log) and "onnxruntime" in log.read_text()
    assert any("onnxruntime" in line for line in report["node_exit"]["log_tail"])
    assert json.loads(out.read_text())["node_exit"]["signal"] == "SIGKILL"
