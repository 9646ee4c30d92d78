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
