"""The perception node's side of episode recording: one EpisodeRecorder at a time, and nothing raises.

The node calls `record_episode` and `on_label` from its worker thread only (after publishing the
verdict), so disk time never lands on a subscription callback. Diagnostics read a snapshot the worker
takes (`refresh`), so a slow or hung disk cannot stall the diagnostics timer either. A failed write
(RecordingError: disk full, unwritable directory) is logged once by the recorder, which then pauses and
retries by itself after `recording_retry_s`; the session shows it in the diagnostics, logs when
recording resumes, and the node carries on. `roll_over` (lifecycle deactivate) finishes the current
bag, so one bag never mixes two models; `close` (cleanup, shutdown, SIGINT/SIGTERM) ends recording.

Pure Python (no rclpy node), so it is tested without ROS.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from cde_ros.command_events import CommandEvent
from cde_ros.episode_labels import LabelHandler
from cde_ros.episode_recorder import EpisodeRecorder, RecorderConfig, RecorderStatus, RecordingError

_log = logging.getLogger(__name__)


class RecordingSession:
    """Owns the node's recorder (or none when recording is off) and its label handler.

    `logger`: anything with info/warning/error (the node's logger, or a `logging.Logger`).
    `known_actions`: the loaded model's class names (or None), to flag label typos.
    `recorder_factory`: builds the recorder from the config (tests inject failing ones).
    """

    def __init__(self, config: RecorderConfig, logger: Any = _log,
                 known_actions: Callable[[], Iterable[str] | None] | None = None,
                 recorder_factory: Callable[[RecorderConfig], EpisodeRecorder] = EpisodeRecorder) -> None:
        self.config = config
        self._log = logger
        self._factory = recorder_factory
        self._lock = threading.Lock()
        self._recorder: EpisodeRecorder | None = None
        self._closed_status = RecorderStatus()  # totals of recorders already closed (roll_over)
        self._snapshot = RecorderStatus()
        self._setup_error = ""  # the recorder could not be created (e.g. message definitions missing)
        self._logged_error = ""  # the last error this session logged or saw logged, to log each cause once
        self.labels = LabelHandler(self._record_label, known_actions, logger)
        self._open()

    # ---------------------------------------------------------------- called by the node's worker
    def record_episode(self, command_id: str, *, before: Any | None, after: Any | None,
                       commands: Sequence[CommandEvent], recognition: Any | None = None,
                       verification: Any | None = None, before_mask: Any | None = None,
                       after_mask: Any | None = None) -> Path | None:
        """Write one episode (with the frames' robot masks when given); the file, or None when not
        written (recording off, paused or failed)."""
        with self._lock:
            recorder = self._recorder
            if recorder is None:
                return None
            try:
                path = recorder.record_episode(command_id, before=before, after=after, commands=commands,
                                               recognition=recognition, verification=verification,
                                               before_mask=before_mask, after_mask=after_mask)
            except RecordingError as exc:  # already logged by the recorder, which now pauses
                self._logged_error = str(exc)
                path = None
            except OSError as exc:  # outside the recorder's own disk calls (e.g. the file vanished at once)
                self._log_once(f"episode {command_id} not recorded: {exc}")
                path = None
            else:
                if path is not None and self._logged_error:
                    self._log.info(f"recording resumed: {path}")
                    self._logged_error = ""
            self._refresh_locked()
            return path

    def on_label(self, msg: Any) -> bool:
        """An EpisodeLabel from the label topic: validated and stored (see LabelHandler)."""
        stored = self.labels.on_label(msg)
        self.refresh()
        return stored

    def refresh(self) -> None:
        """Take the snapshot the diagnostics read (cheap: the recorder's counters under its lock)."""
        with self._lock:
            self._refresh_locked()

    # ---------------------------------------------------------------- lifecycle
    def roll_over(self) -> None:
        """Close the current recorder and start a fresh one: the next episode opens a new bag."""
        with self._lock:
            self._close_locked()
            self._open()
            self._refresh_locked()

    def close(self) -> None:
        """Stop recording (idempotent). Every recorded episode is already in a closed, listed file."""
        with self._lock:
            self._close_locked()
            self._refresh_locked()

    @property
    def active(self) -> bool:
        return self._recorder is not None

    # ---------------------------------------------------------------- diagnostics (any thread)
    def status(self) -> RecorderStatus:
        """Totals over every recorder of this session, as of the last refresh."""
        return self._snapshot

    def problem(self) -> str:
        """'' while recording works; else why not (shown as the diagnostics message)."""
        status = self._snapshot
        if self._setup_error:
            return f"recording off: {self._setup_error}"
        if status.paused_for_s > 0:
            return f"recording paused: {status.last_error}"
        return ""

    def diagnostic_values(self) -> dict[str, str]:
        status, stats = self._snapshot, self.labels.stats
        state = "error" if self._setup_error else "paused" if status.paused_for_s > 0 else \
            "on" if self._recorder is not None else "closed"
        values = {"recording": state, **status.diagnostic_values(), "labels_received": str(stats.received),
                  "labels_rejected": str(stats.rejected), "labels_failed": str(stats.failed)}
        if self._setup_error:
            values["recording_error"] = self._setup_error
        return values

    # ---------------------------------------------------------------- internals (lock held)
    def _record_label(self, msg: Any) -> Path | None:
        with self._lock:
            if self._recorder is None:
                raise RecordingError(f"recording is {'off: ' + self._setup_error if self._setup_error else 'closed'}")
            try:
                return self._recorder.record_label(msg)
            except RecordingError as exc:
                self._logged_error = str(exc)
                raise

    def _open(self) -> None:
        try:
            self._recorder = self._factory(self.config)
        except RecordingError as exc:
            self._recorder = None
            self._setup_error = str(exc)
            self._log_once(f"recording disabled: {exc}")
            return
        self._setup_error = ""
        self._log.info(f"recording episodes under {self.config.directory} ({self.config.image_format} frames)")

    def _close_locked(self) -> None:
        if self._recorder is None:
            return
        self._recorder.close()
        self._closed_status = self._merge(self._closed_status, self._recorder.status())
        self._recorder = None

    def _refresh_locked(self) -> None:
        current = self._recorder.status() if self._recorder is not None else RecorderStatus(closed=True)
        self._snapshot = self._merge(self._closed_status, current)

    @staticmethod
    def _merge(done: RecorderStatus, current: RecorderStatus) -> RecorderStatus:
        """Counters add up over rolled-over recorders; the rest is the current recorder's."""
        return RecorderStatus(
            episodes_recorded=done.episodes_recorded + current.episodes_recorded,
            labels_recorded=done.labels_recorded + current.labels_recorded,
            episodes_dropped=done.episodes_dropped + current.episodes_dropped,
            labels_waiting=current.labels_waiting, bytes_written=done.bytes_written + current.bytes_written,
            bags=done.bags + [b for b in current.bags if b not in done.bags], current_bag=current.current_bag,
            paused_for_s=current.paused_for_s, last_error=current.last_error or done.last_error,
            closed=current.closed)

    def _log_once(self, message: str) -> None:
        if message != self._logged_error:
            self._log.error(message)
            self._logged_error = message
