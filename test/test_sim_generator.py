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
    appearance = kw.pop("appearance", "random")
    cfg = GenerationConfig(tasks=task, cameras=("object",), size=64, **kw)
    (result,) = run_episodes([EpisodeSpec(task, seed, failure, appearance=appearance)], cfg, out)
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


def test_every_frame_has_a_robot_mask_that_covers_the_arm_and_not_the_object() -> None:
    result, out = _episode("drawer-open-v3", 1)
    row = result.records[0]
    before, mask = _pixels(result, out, "before"), _pixels(result, out, "before_mask")
    assert mask.shape == before.shape[:2] and set(np.unique(mask)) <= {0, 255}
    assert 0.02 < (mask > 0).mean() < 0.6  # the arm is in view, the scene is not all arm
    assert row.appearance == "random" and row.after_mask.endswith("_after_mask.png")
    # in the default look the Sawyer is red and the drawer green: red pixels are masked, green ones are not
    default, out_d = _episode("drawer-open-v3", 1, appearance="default")
    before_d, mask_d = _pixels(default, out_d, "before"), _pixels(default, out_d, "before_mask")
    red = (before_d[..., 0] > 120) & (before_d[..., 1] < 60) & (before_d[..., 2] < 60)
    green = (before_d[..., 1] > 120) & (before_d[..., 0] < 120) & (before_d[..., 2] < 120)
    assert red.sum() > 20 and (mask_d[red] > 0).mean() > 0.9
    assert green.sum() > 20 and (mask_d[green] > 0).mean() < 0.1


def test_mixed_appearance_draws_both_looks_per_episode_deterministically() -> None:
    from cde_core.sim.episode import plan_episode

    looks = [plan_episode("drawer-open-v3", seed, 0.0, "mixed").appearance for seed in range(40)]
    assert {"default", "random"} == set(looks)
    assert looks == [plan_episode("drawer-open-v3", seed, 0.0, "mixed").appearance for seed in range(40)]
    with pytest.raises(ValueError, match="appearance"):
        plan_episode("drawer-open-v3", 0, 0.0, "sepia")


def test_cli_merge_links_files_and_assigns_fresh_splits(tmp_path: Path) -> None:
    common = ["--tasks", "drawer-open-v3,drawer-close-v3,reach-v3", "--size", "32", "--cameras", "object",
              "--workers", "1", "--failures", "0", "--no-progress"]
    assert cde(["sim", "generate", *common, "--seeds", "0:2", "--out", str(tmp_path / "a")]) == 0
    assert cde(["sim", "generate", *common, "--seeds", "2:4", "--appearance", "default", "--out", str(tmp_path / "b")]) == 0
    assert cde(["data", "merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "m")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "m" / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and {r["seed"] for r in rows} == {0, 1, 2, 3}
    for r in rows:
        for name in ("before", "after", "before_mask", "after_mask"):
            assert (tmp_path / "m" / r[name]).is_file() and r[name].startswith("images/")
    assert all("iid_0" in r["splits"] for r in rows)
    # the same ids twice are refused
    assert cde(["data", "merge", str(tmp_path / "a"), str(tmp_path / "a"), "--out", str(tmp_path / "x")]) == 2
