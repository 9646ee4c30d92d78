"""Meta-World pair generation: real rendering and the authors' scripted policies."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cde_core.cli import main as cde

pytestmark = pytest.mark.sim


def _episode(task: str, seed: int, failure: str | None = None, **kw):
    import tempfile

    from cde_core.sim.generator import EpisodeSpec, GenerationConfig, run_episodes

    out = Path(tempfile.mkdtemp())
    cfg = GenerationConfig(tasks=task, cameras=("corner3",), size=64, **kw)
    (result,) = run_episodes([EpisodeSpec(task, seed, failure)], cfg, out)
    return result, out


def _pixels(result, out: Path, tag: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(out / getattr(result.records[0], tag)))


def test_deterministic_per_task_and_seed() -> None:
    a, out_a = _episode("drawer-open-v3", 3)
    b, out_b = _episode("drawer-open-v3", 3)
    c, out_c = _episode("drawer-open-v3", 4)
    assert np.array_equal(_pixels(a, out_a, "before"), _pixels(b, out_b, "before"))
    assert np.array_equal(_pixels(a, out_a, "after"), _pixels(b, out_b, "after"))
    assert not np.array_equal(_pixels(a, out_a, "before"), _pixels(c, out_c, "before"))


def test_successful_episode_changes_the_image_and_is_labelled() -> None:
    result, out = _episode("drawer-open-v3", 1)
    row = result.records[0]
    assert (row.object, row.action, row.antonym, row.kind) == ("drawer", "open", "close", "effect")
    assert row.effect_happened and result.success and result.moved_m > 0.01
    diff = np.abs(_pixels(result, out, "before").astype(int) - _pixels(result, out, "after").astype(int))
    assert diff.mean() > 1.0


def test_no_motion_failure_is_labelled_none() -> None:
    result, _ = _episode("window-open-v3", 2, failure="no_motion")
    row = result.records[0]
    assert row.kind == "failed" and row.action == "none" and row.commanded_action == "open"
    assert not row.effect_happened and result.moved_m < 0.01


def test_cli_generate_tiny(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    assert cde(["sim", "generate", "--tasks", "drawer-open-v3,drawer-close-v3,reach-v3", "--seeds", "0:2",
                "--size", "48", "--cameras", "corner3,object", "--workers", "1", "--failures", "0", "--out",
                str(out)]) == 0
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 3 * 2 * 2
    assert {r["camera"] for r in rows} == {"corner3", "object"}
    assert {(r["object"], r["action"]) for r in rows if r["kind"] != "failed"} <= {
        ("drawer", "open"), ("drawer", "close"), ("puck", "none")}
    assert all({"iid_0", "comp_0", "syst_0", "iid_1"} <= set(r["splits"]) for r in rows)
    generation = json.loads((out / "generation.json").read_text())
    assert generation["pairs"] == len(rows) and generation["config"]["size"] == 48
    for r in rows:
        assert (out / r["before"]).exists() and (out / r["after"]).exists()
