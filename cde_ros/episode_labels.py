"""Ground truth attached to a recorded episode after the fact, keyed by its command id.

An operator or a task executor publishes cde_ros/EpisodeLabel on the label topic (a topic, not a
service: no std_srvs is installed here, and a topic lets a labelling tool publish fire-and-forget and
lets `ros2 bag`/our recorder capture it). `LabelHandler.on_label` is the subscription callback the
node mounts: it checks the label and hands the untouched message to the recorder, which stores it in
the bag as an EpisodeLabel message. Nothing is overwritten in a bag: a correction is simply a newer
label; `cde data import` matches labels by command id and reports labels of one command that disagree (it
leaves that episode out, or with `--label-conflicts latest` takes the latest by the recorder's receive time).

Pure Python (messages are read by attribute), so it is tested without ROS.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable

_log = logging.getLogger(__name__)


class LabelError(ValueError):
    """A label cannot be used (the message says which field is wrong and how to fix it)."""


@dataclass(frozen=True)
class LabelFields:
    """The fields of an EpisodeLabel that decide the training label, as plain Python values."""

    command_id: str
    true_action: str
    object: str
    effect_happened: bool
    annotator: str
    note: str
    stamp_ns: int


def label_fields(msg: Any) -> LabelFields:
    """Read and check an EpisodeLabel (rclpy or rosbags message); LabelError says what is wrong."""
    command_id = str(msg.command_id).strip()
    if not command_id:
        raise LabelError("EpisodeLabel.command_id is empty: a label must name the command it describes")
    true_action = str(msg.true_action).strip()
    if any(ch.isspace() for ch in true_action):
        raise LabelError(f"label for {command_id}: true_action {true_action!r} contains whitespace; "
                         "use a class name such as 'open' or 'none'")
    stamp = msg.header.stamp
    return LabelFields(command_id=command_id, true_action=true_action, object=str(msg.object).strip(),
                       effect_happened=bool(msg.effect_happened), annotator=str(msg.annotator),
                       note=str(msg.note), stamp_ns=int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec))


@dataclass
class LabelStats:
    """Counters for diagnostics."""

    received: int = 0
    recorded: int = 0
    rejected: int = 0
    failed: int = 0  # valid, but the recorder could not store it (see last_error)
    last_error: str = ""


class LabelHandler:
    """The label-topic callback: validate, then store through `record` (the recorder's `record_label`).

    `known_actions` (optional) returns the model's class names; a label outside them is still stored
    (the training set may define more classes than the deployed model) but logged, since it is most
    often a typo.
    """

    def __init__(self, record: Callable[[Any], Any],
                 known_actions: Callable[[], Iterable[str] | None] | None = None,
                 logger: logging.Logger | Any = _log) -> None:
        self._record = record
        self._known_actions = known_actions
        self._log = logger
        self._lock = threading.Lock()
        self.stats = LabelStats()

    def on_label(self, msg: Any) -> bool:
        """Subscription callback; True when the label was stored. Never raises (a bad label is logged)."""
        with self._lock:
            self.stats.received += 1
        try:
            fields = label_fields(msg)
        except LabelError as exc:
            self._fail("rejected", str(exc))
            return False
        known = self._known_actions() if self._known_actions is not None else None
        if known is not None and fields.true_action and fields.true_action not in set(known):
            self._log.warning(f"label for {fields.command_id}: true_action '{fields.true_action}' is not one of "
                              f"the model's classes {sorted(known)} (stored anyway)")
        try:
            self._record(msg)
        except (OSError, RuntimeError) as exc:  # RecordingError is a RuntimeError
            self._fail("failed", f"label for {fields.command_id} not stored: {exc}")
            return False
        with self._lock:
            self.stats.recorded += 1
        self._log.info(f"label for {fields.command_id}: '{fields.true_action or '(commanded)'}' "
                       f"effect_happened={fields.effect_happened} by '{fields.annotator}'")
        return True

    def _fail(self, counter: str, reason: str) -> None:
        with self._lock:
            setattr(self.stats, counter, getattr(self.stats, counter) + 1)
            self.stats.last_error = reason
        self._log.warning(reason)
