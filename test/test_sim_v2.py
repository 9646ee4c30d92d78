"""Benchmark v2 episodes: the after frame at rest and the label checked against the object's own joint.

Real Meta-World episodes at small sizes; the rule tables are also checked without the simulator."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cde_core.cli import main as cde
from cde_core.sim.label_check import check_label
from cde_core.sim.object_state import STATE_COORDINATES, StateCoordinate
from cde_core.sim.settle import RestResult, hold_until_rest
from cde_core.sim.tasks import TASKS

DRAWER = STATE_COORDINATES["drawer-open-v3"]


def _scene(task: str, size: int = 32):
    import os

    os.environ.setdefault("MUJOCO_GL", "egl")
    from cde_core.sim.scene import MetaWorldScene, SceneConfig

    return MetaWorldScene(SceneConfig(task, 0, ("object",), size))


def _run(scene, task: str, seed: int, failure: str | None = None, **settings):
    from cde_core.sim.episode import EpisodeSettings, EpisodeSpec, run_episode

    return run_episode(scene, EpisodeSpec(task, seed, failure, appearance="default"), EpisodeSettings(**settings))


# ---------------------------------------------------------------- rules without the simulator

class _CoastingScene:
    """A stand-in with the two members hold_until_rest reads: one coordinate that halves its speed per step."""

    def __init__(self, speed: float, decay: float) -> None:
        self.position, self.speed, self.decay, self.holds = 0.0, speed, decay, 0
        self.step_seconds = 0.0125

    @property
    def object_coordinates(self) -> np.ndarray:
        return np.array([self.position])

    def hold(self) -> None:
        self.position += self.speed * self.step_seconds
        self.speed *= self.decay
        self.holds += 1


def test_hold_until_rest_waits_for_the_net_motion_to_stop_and_reports_the_limit() -> None:
    coasting = _CoastingScene(speed=0.5, decay=0.9)  # 0.5 m/s, slowing down: still after some tens of steps
    rest = hold_until_rest(coasting)
    assert not rest.limit_hit and 20 < rest.steps < 80 and coasting.holds == rest.steps
    window_speed = 0.5 * 0.9 ** (rest.steps - 5) * (1 - 0.9 ** 5) / (1 - 0.9) / 5  # mean speed over the last 5 steps
    assert window_speed < 0.01
    assert hold_until_rest(_CoastingScene(0.0, 1.0)) == RestResult(5, False)  # already still: one window
    assert hold_until_rest(_CoastingScene(0.05, 1.0), limit=30) == RestResult(30, True)  # never stops
    with pytest.raises(ValueError, match="window"):
        hold_until_rest(_CoastingScene(0.0, 1.0), window=10, limit=5)


def test_check_label_keeps_changes_and_drops_by_the_state_change() -> None:
    cell = TASKS["drawer-open-v3"]
    effect, partial, none = ("open", "effect", True), ("open", "failed", False), ("none", "failed", False)
    assert check_label(cell, effect, DRAWER, 0.16).verdict == "kept"
    slid_back = check_label(cell, effect, DRAWER, 0.037)  # the drawer after it slid back
    assert (slid_back.verdict, slid_back.label, slid_back.transition) == (
        "changed", partial, "open/effect -> open/failed")
    never_moved = check_label(cell, effect, DRAWER, 0.0)  # a no-motion failure labelled as an effect
    assert (never_moved.verdict, never_moved.label) == ("changed", none)
    done_anyway = check_label(cell, partial, DRAWER, 0.19)  # stopped early, but the drawer is open
    assert (done_anyway.verdict, done_anyway.label) == ("changed", effect)
    reverse = check_label(cell, effect, DRAWER, -0.05)
    assert (reverse.verdict, reverse.label, reverse.transition) == ("dropped", None, "dropped: reverse")
    near = check_label(cell, effect, DRAWER, 0.095)  # just under `done`: too close to overrule the policy
    assert (near.verdict, near.label, near.transition) == ("dropped", None, "dropped: near a threshold")
    assert check_label(cell, partial, DRAWER, 0.095).verdict == "kept"  # agreeing labels stay, near or not
    assert check_label(TASKS["reach-v3"], ("none", "no_change", False), None, None).verdict == "unchecked"
    assert check_label(TASKS["push-v3"], effect, None, None).verdict == "unchecked"  # a free puck: no joint
    assert check_label(cell, None, DRAWER, 0.2).verdict == "unlabelled"


def test_every_state_coordinate_is_a_joint_of_its_task_and_moves_with_the_action() -> None:
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    from cde_core.sim.object_state import read_state

    class _Holder:
        def __init__(self, env) -> None:
            self.env = env

    for task, coordinate in STATE_COORDINATES.items():
        assert task in TASKS and TASKS[task].action != "none"
        assert coordinate.unit in ("m", "rad") and 0 < coordinate.still < coordinate.done
        read_state(_Holder(ALL_V3_ENVIRONMENTS[task]()), coordinate)  # raises on an unknown joint or body
    with pytest.raises(KeyError):
        read_state(_Holder(ALL_V3_ENVIRONMENTS["drawer-open-v3"]()), StateCoordinate(body="no_such_body"))


# ---------------------------------------------------------------- real episodes

@pytest.mark.sim
def test_rest_after_frame_shows_a_drawer_that_no_longer_moves() -> None:
    from cde_core.sim.object_state import read_state

    def change_over_20_steps(after_rgb: np.ndarray) -> tuple[float, float]:
        drawer = read_state(scene, DRAWER)
        for _ in range(20):
            scene.hold()
        pixels = np.abs(scene.render("object").astype(int) - after_rgb.astype(int)).mean()
        return abs(read_state(scene, DRAWER) - drawer), float(pixels)

    with _scene("drawer-open-v3") as scene:
        fixed = _run(scene, "drawer-open-v3", 1)
        drawer_fixed = read_state(scene, DRAWER)
        moved, pixels = change_over_20_steps(fixed.after.rgb["object"])
        assert moved > 0.02 and pixels > 3.0  # today's after frame: mid slide-back

        rest = _run(scene, "drawer-open-v3", 1, after_frame="rest")
        assert rest.rest is not None and not rest.rest.limit_hit and rest.rest.steps > 20
        assert rest.steps == fixed.steps + rest.rest.steps
        drawer_rest = read_state(scene, DRAWER)
        moved, pixels = change_over_20_steps(rest.after.rgb["object"])
        assert moved < 0.001 and pixels < 0.3  # sub-millimetre: a few edge pixels at most
        assert DRAWER.sign * drawer_rest < DRAWER.done < DRAWER.sign * drawer_fixed  # it slid back (from 0 at reset)


@pytest.mark.sim
def test_default_settings_give_the_fixed_episode_bit_for_bit() -> None:
    from cde_core.sim.episode import EpisodeSettings

    assert (EpisodeSettings().after_frame, EpisodeSettings().label_check) == ("fixed", "off")  # the demo model's
    with _scene("drawer-open-v3", 48) as scene:
        default = _run(scene, "drawer-open-v3", 2)
        fixed = _run(scene, "drawer-open-v3", 2, after_frame="fixed", label_check="off")
        checked = _run(scene, "drawer-open-v3", 2, label_check="state")  # reading the joint changes no pixel
        rest = _run(scene, "drawer-open-v3", 2, after_frame="rest")
    assert default.rest is None and default.check is None and default.label == fixed.label == ("open", "effect", True)
    for other in (fixed, checked):
        assert other.steps == default.steps
        for phase in ("before", "after"):
            a, b = getattr(default, phase), getattr(other, phase)
            assert np.array_equal(a.rgb["object"], b.rgb["object"]) and np.array_equal(a.mask["object"], b.mask["object"])
    assert np.array_equal(rest.before.rgb["object"], default.before.rgb["object"])
    assert not np.array_equal(rest.after.rgb["object"], default.after.rgb["object"])


@pytest.mark.sim
def test_state_check_relabels_a_drawer_that_slid_back_and_a_mislabelled_no_motion(monkeypatch) -> None:
    from cde_core.sim import episode

    with _scene("drawer-open-v3") as scene:
        slid = _run(scene, "drawer-open-v3", 1, after_frame="rest", label_check="state")
        assert slid.success and slid.check.policy_label == ("open", "effect", True)
        assert slid.check.verdict == "changed" and slid.label == ("open", "failed", False)
        assert DRAWER.still < slid.check.change < DRAWER.done
        still_open = _run(scene, "drawer-open-v3", 1, label_check="state")  # the fixed frame: still wide open
        assert still_open.check.verdict == "kept" and still_open.label == ("open", "effect", True)
        # a no-motion episode that a faulty labeller calls an effect: the drawer's joint never moved
        monkeypatch.setattr(episode, "label_episode", lambda *args: ("open", "effect", True))
        caught = _run(scene, "drawer-open-v3", 1, "no_motion", label_check="state")
    assert caught.check.verdict == "changed" and caught.check.state_class == "none"
    assert caught.label == ("none", "failed", False) and abs(caught.check.change) < DRAWER.still


@pytest.mark.sim
def test_generate_writes_per_task_label_check_and_at_rest_counts(tmp_path: Path) -> None:
    out = tmp_path / "v2"
    tasks = ["drawer-open-v3", "window-open-v3", "reach-v3"]
    assert cde(["sim", "generate", "--tasks", ",".join(tasks), "--seeds", "0:2", "--size", "32", "--cameras",
                "object", "--workers", "1", "--failures", "0", "--no-progress", "--after-frame", "rest",
                "--label-check", "state", "--out", str(out)]) == 0
    meta = json.loads((out / "generation.json").read_text())
    assert meta["config"]["after_frame"] == "rest" and meta["config"]["label_check"] == "state"
    at_rest = meta["at_rest"]
    assert set(at_rest["per_task"]) == set(tasks) and at_rest["limit_hit"] == []
    assert at_rest["per_task"]["drawer-open-v3"]["mean_steps"] > 20  # the slide-back
    assert all(at_rest["steps"][f"{t}-s{s:04d}"] >= 5 for t in tasks for s in (0, 1))
    check = meta["label_check"]
    for task in tasks:
        row = check["per_task"][task]
        assert sum(row[v] for v in ("kept", "changed", "dropped", "unchecked", "unlabelled")) == 2
    assert check["per_task"]["drawer-open-v3"]["changed"] == 2
    assert check["per_task"]["drawer-open-v3"]["transitions"] == {"open/effect -> open/failed": 2}
    assert check["per_task"]["window-open-v3"]["kept"] == 2 and check["per_task"]["reach-v3"]["unchecked"] == 2
    assert check["episodes"]["drawer-open-v3-s0000"]["state_class"] == "partial"
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    drawer = [r for r in rows if r["task"] == "drawer-open-v3"]
    assert len(drawer) == 2 and all((r["kind"], r["effect_happened"]) == ("failed", False) for r in drawer)


def test_cli_rejects_unknown_v2_options(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        cde(["sim", "generate", "--after-frame", "later", "--out", str(tmp_path / "x")])
    assert cde(["sim", "generate", "--tasks", "reach-v3", "--seeds", "0:1", "--after-frame", "rest",
                "--rest-limit", "2", "--out", str(tmp_path / "y")]) == 2  # a limit under the 5-step window
