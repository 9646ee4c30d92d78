"""Whether an object's antonym tasks are each other's reverse: the rule on hand-made transitions, and the
faucet and window measured in real Meta-World episodes (one seed each, 32 px)."""
from __future__ import annotations

import os

from cde_core.sim.antonym_transitions import (
    OTHER,
    REVERSE,
    SHARED_START,
    Transition,
    antonym_task_pairs,
    measure_transition,
    tolerance_for,
    transition_kind,
)


def test_transition_kind_rules() -> None:
    close, open_ = Transition("c", 0.20, 0.01), Transition("o", 0.0, 0.19)
    assert transition_kind(close, open_, 0.05) == REVERSE
    # The v2 drawer: the opening stops far short of the closing's start; it still runs the same stretch back.
    assert transition_kind(Transition("c", -0.15, 0.0), Transition("o", 0.0, -0.038), 0.035) == REVERSE
    assert transition_kind(Transition("c", 0.0, -1.57), Transition("o", 0.0, 1.57), 0.4) == SHARED_START
    assert transition_kind(Transition("c", 0.0, 1.0), Transition("o", 0.0, 1.2), 0.4) == OTHER  # same way
    assert transition_kind(Transition("c", 0.2, 0.2), Transition("o", 0.0, 0.19), 0.05) == OTHER  # no motion
    assert transition_kind(Transition("c", 0.2, 0.4), Transition("o", 0.0, 0.19), 0.05) == OTHER  # away


def test_antonym_task_pairs_pairs_each_object_once() -> None:
    pairs = antonym_task_pairs(["drawer-open-v3", "drawer-close-v3", "faucet-open-v3", "reach-v3",
                                "window-open-v3"])
    assert pairs == [("drawer-close-v3", "drawer-open-v3")]  # window has no antonym task here, reach no joint


def test_faucet_antonyms_share_their_start_and_window_antonyms_reverse() -> None:
    os.environ.setdefault("MUJOCO_GL", "egl")
    kinds = {}
    for a, b in (("faucet-close-v3", "faucet-open-v3"), ("window-close-v3", "window-open-v3")):
        ta, tb = measure_transition(a, [0]), measure_transition(b, [0])
        kinds[a.split("-")[0]] = transition_kind(ta, tb, min(tolerance_for(a), tolerance_for(b)))
        if a.startswith("faucet"):
            assert ta.start == tb.start and ta.end < ta.start < tb.end  # knob at 0, turned both ways
    assert kinds == {"faucet": SHARED_START, "window": REVERSE}
