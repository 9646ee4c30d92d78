"""Matching operators' EpisodeLabels to recorded episodes, and reporting labels that disagree.

Labels are matched by command id alone, wherever they were recorded: in the episode's bag, in a later
file of the same recording, or in another bag directory given to the same import (an operator labels
after the fact). Several labels for one command:
  - they agree (the same outcome; annotator, note, stamp and an empty object may differ): the latest
    received wins, and its object is the latest non-empty one. Not a conflict.
  - they disagree (another action or effect_happened once `true_action=""` is read as "the commanded
    action" when effect_happened is true, or two different non-empty objects): a conflict. With rule
    `skip` (the default) the episode is left out of the dataset, with rule `latest` the latest label
    wins as before; either way the conflict is reported (generation.json, log, command summary), so a
    disagreement between operators is seen rather than silently settled by arrival order.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

CONFLICT_RULES = ("skip", "latest")


@dataclass(frozen=True)
class LabelInfo:
    """One EpisodeLabel as recorded; `received` orders labels (the recorder logs them at receipt)."""

    command_id: str
    true_action: str
    object: str
    effect_happened: bool
    annotator: str
    stamp_ns: int = 0  # the label's header stamp (the operator's clock)
    received: tuple[int, int] = (0, 0)  # (log time ns, read order) - later wins

    def outcome(self, commanded: str) -> tuple[str, bool]:
        """What the label says happened: (action, effect_happened); "" action = outcome unknown."""
        action = self.true_action or (commanded if self.effect_happened else "")
        return action, self.effect_happened

    def to_report(self) -> dict[str, Any]:
        return {"true_action": self.true_action, "effect_happened": self.effect_happened, "object": self.object,
                "annotator": self.annotator, "stamp_ns": self.stamp_ns, "received_ns": self.received[0]}


@dataclass(frozen=True)
class LabelConflict:
    """Labels of one command that disagree, oldest first, and what the import did about them."""

    command_id: str
    labels: tuple[LabelInfo, ...]
    resolution: str  # "left out" or "latest label kept"

    def to_report(self) -> dict[str, Any]:
        return {"command_id": self.command_id, "resolution": self.resolution,
                "labels": [label.to_report() for label in self.labels]}

    def describe(self) -> str:
        return describe_conflict(self.to_report())


def describe_conflict(report: dict[str, Any]) -> str:
    """One line for a log or a terminal, from a conflict as generation.json lists it."""
    said = "; ".join(f"{l['true_action'] or '(commanded)'} effect_happened={l['effect_happened']}"
                     f"{' object=' + l['object'] if l['object'] else ''} by {l['annotator'] or '?'} "
                     f"at stamp {l['stamp_ns']}" for l in report["labels"])
    return f"conflicting labels for {report['command_id']!r} ({report['resolution']}): {said}"


def group_labels(labels: Iterable[LabelInfo]) -> dict[str, list[LabelInfo]]:
    """Labels per command id, in the order the recorder received them (labels without an id are dropped)."""
    grouped: dict[str, list[LabelInfo]] = {}
    for label in labels:
        if label.command_id:
            grouped.setdefault(label.command_id, []).append(label)
    for group in grouped.values():
        group.sort(key=lambda l: l.received)
    return grouped


def labels_disagree(labels: Sequence[LabelInfo], commanded: str) -> bool:
    """Whether the labels say different things about the episode (see the module docstring)."""
    outcomes = {label.outcome(commanded) for label in labels}
    objects = {label.object for label in labels if label.object}
    return len(outcomes) > 1 or len(objects) > 1


def resolve_labels(labels: Sequence[LabelInfo], commanded: str,
                   rule: str = "skip") -> tuple[LabelInfo | None, LabelConflict | None]:
    """The label an episode is trained with (None: unlabelled, or left out for a conflict under `skip`)
    and the conflict to report, if any. `labels` are one command's, oldest first."""
    if rule not in CONFLICT_RULES:
        raise ValueError(f"label conflict rule must be one of {CONFLICT_RULES}, got {rule!r}")
    if not labels:
        return None, None
    latest = labels[-1]
    if labels_disagree(labels, commanded):
        resolution = "left out" if rule == "skip" else "latest label kept"
        conflict = LabelConflict(latest.command_id, tuple(labels), resolution)
        return (None if rule == "skip" else latest), conflict
    obj = next((label.object for label in reversed(labels) if label.object), "")
    return replace(latest, object=obj), None
