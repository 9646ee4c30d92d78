"""Checking an episode's label against the object's own final state (`object_state`), not the policy's flag.

The state change puts the episode in one class: "effect" (change >= done), "partial" (still <= change <
done), "none" (|change| < still) or "reverse" (change <= -still: the object went against the action). Each
class implies a label of the commanded cell, the same triples `episode.label_episode` gives:

    effect  -> (action, "effect", True)       partial -> (action, "failed", False)
    none    -> ("none", "failed", False)      reverse -> no honest label

The rule: a label that agrees with the implied one is **kept**; one that disagrees is **changed** to the
implied label when the state is unambiguous (not within AMBIGUOUS_BAND of the threshold it is nearest), and
**dropped** otherwise, and always for "reverse" (a commanded open whose drawer ended more closed is no pair
of any cell). A succeeded open whose drawer slid back to 4 cm thus becomes a partial open
(effect_happened false); a stopped-early close that did close becomes an effect. Reach tasks (no-change
cells) and tasks without a StateCoordinate are "unchecked"; an episode `label_episode` already gave no
label stays "unlabelled".
"""
from __future__ import annotations

from dataclasses import dataclass

from cde_core.data.manifest import NO_CHANGE
from cde_core.sim.object_state import StateCoordinate
from cde_core.sim.tasks import TaskCell

Label = tuple[str, str, bool]  # (action, kind, effect_happened)
# A change within 20 % of `still` or `done` is too close to call against the policy's own verdict.
AMBIGUOUS_BAND = 0.2
VERDICTS = ("kept", "changed", "dropped", "unchecked", "unlabelled")


@dataclass(frozen=True)
class LabelCheck:
    """What the state check made of one episode's label."""

    verdict: str  # one of VERDICTS
    label: Label | None  # the label to use (None: drop the episode)
    policy_label: Label | None  # what `label_episode` said
    state_class: str = ""  # effect | partial | none | reverse ("" when unchecked)
    change: float | None = None  # signed change in the action's direction (m or rad)
    reason: str = ""

    @property
    def transition(self) -> str:
        """What happened to the label, as a short key to count: "open/effect -> open/failed",
        "dropped: reverse", "dropped: near a threshold", or the verdict itself."""
        if self.verdict == "changed":
            return f"{_name(self.policy_label)} -> {_name(self.label)}"
        if self.verdict == "dropped":
            return "dropped: reverse" if self.state_class == "reverse" else "dropped: near a threshold"
        return self.verdict


def state_class(coordinate: StateCoordinate, change: float) -> str:
    """effect | partial | none | reverse for a signed change in the action's direction."""
    if abs(change) < coordinate.still:
        return "none"
    if change < 0:
        return "reverse"
    return "effect" if change >= coordinate.done else "partial"


def implied_label(cell: TaskCell, klass: str) -> Label | None:
    """The label of `cell` that a state class means (None for "reverse")."""
    return {"effect": (cell.action, "effect", True), "partial": (cell.action, "failed", False),
            "none": (NO_CHANGE, "failed", False)}.get(klass)


def is_ambiguous(coordinate: StateCoordinate, change: float) -> bool:
    """Whether the change lies within AMBIGUOUS_BAND of the `still` or `done` threshold."""
    return any(abs(abs(change) - t) < AMBIGUOUS_BAND * t for t in (coordinate.still, coordinate.done))


def _name(label: Label | None) -> str:
    return "dropped" if label is None else f"{label[0]}/{label[1]}"


def check_label(cell: TaskCell, policy_label: Label | None, coordinate: StateCoordinate | None,
                change: float | None) -> LabelCheck:
    """Keep, change or drop `policy_label` by the object's state change (see the module docstring)."""
    if policy_label is None:
        return LabelCheck("unlabelled", None, None, reason="no label from the episode (wrong task moved the object)")
    if cell.action == NO_CHANGE or coordinate is None or change is None:
        return LabelCheck("unchecked", policy_label, policy_label)
    klass = state_class(coordinate, change)
    implied = implied_label(cell, klass)
    said = (f"{coordinate.joint or coordinate.body} went {change:+.3f} {coordinate.unit} towards {cell.action} "
            f"({klass}; still {coordinate.still}, done {coordinate.done})")
    if implied == policy_label:
        return LabelCheck("kept", policy_label, policy_label, klass, change, said)
    if implied is None:
        return LabelCheck("dropped", None, policy_label, klass, change, f"reverse: {said}")
    if is_ambiguous(coordinate, change):
        return LabelCheck("dropped", None, policy_label, klass, change,
                          f"near a threshold: {said}, label {_name(policy_label)}")
    return LabelCheck("changed", implied, policy_label, klass, change,
                      f"{_name(policy_label)} -> {_name(implied)}: {said}")
