"""The perception node: buffers camera frames around manipulator commands and publishes what changed.

Lifecycle: configure creates the buffer, subscriptions and publishers; activate loads the model (a
missing or corrupt model, or one outside `allowed_model_dirs`, fails the transition and the node stays
up, inactive); commands received while no model is loaded still get an UNCERTAIN verdict saying so.
Path parameters are confined to their read-only allow-lists (cde_ros/path_confinement.py) when they
change and again right before use. Callbacks only store; one worker thread converts images, runs the
model, decides and publishes, and then (with `recording_enabled`) records the episode and stores labels
from the label topic (cde_ros/recording_session.py). Deactivate finishes the current bag; cleanup,
shutdown and SIGINT/SIGTERM close the recorder.

Run: python -m cde_ros.perception_node --ros-args --params-file config/perception.yaml
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import queue
import signal
import threading
import time
from collections import deque
from typing import Any

import numpy as np
import rclpy
from action_msgs.msg import GoalStatusArray
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import (HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_action_status_default,
                       qos_profile_sensor_data)
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CompressedImage, Image

from cde_core.runtime import Runtime, load_runtime, resolve_backend
from cde_core.runtime.compare_frames import compact_frame, compare_frames, mask_mode
from cde_core.verification import Verdict, verify_effect
from cde_ros.command_events import (CommandEvent, CommandEventError, GoalStatusTracker, event_from_command,
                                    parse_action_mapping)
from cde_ros.command_pairing import Captured, CommandPairing, Outcome, OutcomeKind, PairingLimits
from cde_ros.episode_recorder import RecorderConfig
from cde_ros.frame_buffer import BufferedFrame, FrameBuffer
from cde_ros.image_conversion import ImageConversionError, message_to_rgb, rgb_to_image_fields
from cde_ros.mask_conversion import mask_from_message
from cde_ros.msg import ActionRecognition, EffectVerification, EpisodeLabel, ManipulatorCommand
from cde_ros.node_parameters import CONFINED_PATHS, PARAMS, validate
from cde_ros.overlay import OverlayError, render_overlay
from cde_ros.path_confinement import PathNotAllowedError, confine, confine_model_files
from cde_ros.recording_session import RecordingSession

# Deep enough that a burst of verdicts (hundreds of commands ending at once) reaches a slow subscriber: a
# reliable keep-last writer overwrites samples not yet acknowledged once its history is full.
RESULT_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)


def stamp_ns(t: Time) -> int:
    """builtin_interfaces/Time -> integer nanoseconds (exact; floats lose ns at epoch scale)."""
    return int(t.sec) * 1_000_000_000 + int(t.nanosec)


def to_time(ns: int) -> Time:
    """Integer nanoseconds -> builtin_interfaces/Time."""
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


class _ToNodeLogger(logging.Handler):
    """Python `logging` records of a library module (the recorder's: where its bags go, write errors)
    -> the node's logger, so they reach the console and /rosout like the node's own messages."""

    def __init__(self, logger: Any) -> None:
        super().__init__(level=logging.INFO)
        self._logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        # one call site per severity: rclpy's logger refuses a call site whose severity changes
        if record.levelno >= logging.ERROR:
            self._logger.error(record.getMessage())
        elif record.levelno >= logging.WARNING:
            self._logger.warning(record.getMessage())
        else:
            self._logger.info(record.getMessage())


class PerceptionNode(LifecycleNode):
    """Lifecycle node: configure = buffer, subscriptions, publishers, worker; activate = load the model."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("cde_perception", **kwargs)
        for spec in PARAMS:
            self.declare_parameter(spec.name, spec.default,
                                   ParameterDescriptor(description=spec.description, read_only=spec.read_only))
        self._state = "unconfigured"  # primary state label, for parameter validation
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.runtime: Runtime | None = None
        self.model_error = "not activated yet"
        self._jobs: queue.Queue = queue.Queue()
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._subs: list[Any] = []
        self._timers: list[Any] = []
        self._callback_cost_s: deque[float] = deque(maxlen=2000)
        self._latency_s: deque[float] = deque(maxlen=500)
        self._frames_in = 0
        self._conversion_errors = 0
        self._inference_s: deque[float] = deque(maxlen=500)
        self._camera_frame_id = ""
        self._rate_window: deque[float] = deque(maxlen=300)
        self._last_error = ""
        self._commands_lost = 0
        self._worker_failures = 0  # commands ended UNCERTAIN by an unexpected error in their handling
        self._worker_error = ""  # the last such error, shown in /diagnostics (level ERROR) until a verdict succeeds
        self._clock_resets_seen = 0
        self.finalized = threading.Event()  # set by a lifecycle shutdown: main() then ends the process
        self.recording: RecordingSession | None = None
        self._recorder_log: tuple[logging.Logger, logging.Handler, int] | None = None
        self._next_recording_refresh = 0.0
        if self.get_parameter("autostart").value:  # no lifecycle manager: configure and activate ourselves
            if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                self.trigger_activate()  # a failure is logged; the node stays up, inactive, answering commands

    # ---------------------------------------------------------------- parameters
    def _p(self, name: str) -> Any:
        return self.get_parameter(name).value

    def _confined(self, name: str, value: str) -> str:
        """The real path of the path parameter `name` := `value`, or PathNotAllowedError."""
        allow_list = CONFINED_PATHS[name]
        return confine(value, self._p(allow_list), name, allow_list)

    def _on_set_parameters(self, params: list[Any]) -> SetParametersResult:
        for param in params:
            reason = validate(param.name, param.value, self._state)
            if not reason and param.name in CONFINED_PATHS and param.value:
                try:
                    self._confined(param.name, param.value)
                except PathNotAllowedError as exc:
                    reason = str(exc)
            if reason:
                self.get_logger().warning(f"rejected parameter {param.name}: {reason}")
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    # ---------------------------------------------------------------- lifecycle
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self._servers = parse_action_mapping(self._p("action_servers"))
        except CommandEventError as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        recording: RecorderConfig | None = None
        if self._p("recording_enabled"):
            try:  # ValueError covers PathNotAllowedError; bags go to the checked real path
                recording = RecorderConfig.from_parameters(self._p)
                recording = dataclasses.replace(recording, directory=self._confined("recording_dir",
                                                                                    self._p("recording_dir")))
            except ValueError as exc:
                self.get_logger().error(f"configure failed: recording: {exc}")
                return TransitionCallbackReturn.FAILURE
        self.buffer = FrameBuffer(self._p("buffer_seconds"), int(self._p("buffer_max_mb") * 1024 * 1024))
        # masks are small (one byte per pixel): the same time window, a quarter of the bytes
        self.mask_buffer = (FrameBuffer(self._p("buffer_seconds"), int(self._p("buffer_max_mb") * 1024 * 1024 / 4))
                            if self._p("robot_mask_topic") else None)
        self.pairing = CommandPairing(self._pairing_limits(), self.buffer, self._capture, masks=self.mask_buffer)
        watching_since = self.get_clock().now().nanoseconds
        image_group, command_group = MutuallyExclusiveCallbackGroup(), MutuallyExclusiveCallbackGroup()
        timer_group = MutuallyExclusiveCallbackGroup()
        image_qos = copy.copy(qos_profile_sensor_data)  # best effort, volatile (REP-2003 for camera subscribers)
        image_qos.depth = int(self._p("image_qos_depth"))
        if self._p("image_qos") == "reliable":
            image_qos.reliability = ReliabilityPolicy.RELIABLE
        if self._p("image_topic"):
            self._subs.append(self.create_subscription(Image, self._p("image_topic"), self._on_image, image_qos,
                                                       callback_group=image_group))
        if self._p("compressed_image_topic"):
            self._subs.append(self.create_subscription(CompressedImage, self._p("compressed_image_topic"),
                                                       self._on_image, image_qos, callback_group=image_group))
        if self.mask_buffer is not None:
            self._subs.append(self.create_subscription(Image, self._p("robot_mask_topic"), self._on_mask, image_qos,
                                                       callback_group=image_group))
        depth = int(self._p("command_qos_depth"))  # 0 = keep all: a reliable writer then waits, nothing is dropped
        command_qos = QoSProfile(depth=max(depth, 1), reliability=ReliabilityPolicy.RELIABLE,
                                 history=HistoryPolicy.KEEP_ALL if depth == 0 else HistoryPolicy.KEEP_LAST)
        self._subs.append(self.create_subscription(ManipulatorCommand, self._p("command_topic"), self._on_command,
                                                   command_qos, callback_group=command_group,
                                                   event_callbacks=self._lost_counter()))
        self._status_trackers = {}
        for server, action in self._servers.items():
            tracker = GoalStatusTracker(server, action, since_ns=watching_since,
                                        max_goals=int(self._p("max_tracked_goals")))
            self._status_trackers[server] = tracker
            self._subs.append(self.create_subscription(
                GoalStatusArray, f"{server}/_action/status",
                lambda msg, t=tracker: self._on_status(t, msg), qos_profile_action_status_default,
                callback_group=command_group))
        self.recognition_pub = self.create_publisher(ActionRecognition, "~/action_recognition", RESULT_QOS)
        self.verification_pub = self.create_publisher(EffectVerification, "~/effect_verification", RESULT_QOS)
        self.overlay_pub = self.create_publisher(Image, "~/overlay", 1)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._timers.append(self.create_timer(self._p("diagnostics_period"), self._publish_diagnostics,
                                              callback_group=timer_group))
        if recording is not None:
            self._start_recording(recording, command_group)
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="cde_worker", daemon=True)
        self._worker.start()
        self._state = "inactive"
        self.get_logger().info(f"configured: image '{self._p('image_topic')}', robot mask "
                               f"'{self._p('robot_mask_topic') or 'none'}', commands '{self._p('command_topic')}', "
                               f"action servers {list(self._servers) or 'none'}, recording "
                               f"{'to ' + recording.directory if recording else 'off'}")
        return TransitionCallbackReturn.SUCCESS

    def _lost_counter(self) -> Any:
        """Count command messages the middleware reports lost (DDS SAMPLE_LOST, where the RMW supports it); lost
        STARTED / FINISHED messages also show as ends_without_start / commands_expired in /diagnostics."""
        from rclpy.event_handler import SubscriptionEventCallbacks

        def lost(info: Any) -> None:
            self._commands_lost += int(getattr(info, "total_count_change", 1))
            self._last_error = f"{self._commands_lost} command message(s) lost by the middleware"

        return SubscriptionEventCallbacks(message_lost=lost)

    def _start_recording(self, config: RecorderConfig, group: MutuallyExclusiveCallbackGroup) -> None:
        """The recording session (its errors never fail the transition) and the label subscription."""
        recorder_log = logging.getLogger("cde_ros.episode_recorder")
        handler = _ToNodeLogger(self.get_logger())
        self._recorder_log = (recorder_log, handler, recorder_log.level)
        recorder_log.addHandler(handler)
        recorder_log.setLevel(logging.INFO)

        def known_actions() -> list[str] | None:
            runtime = self.runtime
            return list(runtime.metadata.class_names) if runtime is not None else None

        self.recording = RecordingSession(config, self.get_logger(), known_actions)
        self._subs.append(self.create_subscription(EpisodeLabel, self._p("label_topic"), self._on_label, RESULT_QOS,
                                                   callback_group=group))

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        path = self._p("model_path")
        try:  # checked again here: the file (or a link on its way) may have changed since it was set
            if not path:
                raise PathNotAllowedError("model_path is empty: set it to an exported .onnx index or a "
                                          ".safetensors checkpoint (-p model_path:=...), then activate")
            real = self._confined("model_path", path)
            confine_model_files(real, self._p("allowed_model_dirs"))  # the graphs an index names, too
        except PathNotAllowedError as exc:
            self.model_error = str(exc)
            self.get_logger().error(f"activation failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        backend = self._p("backend")
        try:  # the checked real path is what is opened (an ONNX index's graphs are beside it)
            resolved = resolve_backend(real, backend)
            options: dict[str, Any] = {"onnxruntime": {"threads": int(self._p("inference_threads"))},
                                       "torch": {"precision": self._p("precision")}}.get(resolved, {})
            self.runtime = load_runtime(real, resolved, **options)
        except (OSError, ValueError, RuntimeError, ImportError) as exc:
            self.runtime = None
            self.model_error = f"cannot load model {path}: {exc}"
            self.get_logger().error(f"activation failed: {self.model_error}")
            return TransitionCallbackReturn.FAILURE
        meta = self.runtime.metadata
        self.model_error = ""
        self.pairing.known_actions = frozenset(meta.class_names)
        self._state = "active"
        self.get_logger().info(f"model {path}: {meta.backend} ({', '.join(meta.providers)}), classes "
                               f"{meta.class_names}, input {meta.preprocessing.img_size}px, robot mask "
                               f"{meta.preprocessing.robot_mask}")
        if meta.preprocessing.robot_mask != "none" and self.mask_buffer is None:
            self.get_logger().warning(
                "the model was trained with the robot masked out but robot_mask_topic is empty: every command is "
                "answered UNCERTAIN" + (" (allow_unmasked is set: running unmasked)" if self._p("allow_unmasked")
                                        else "; set robot_mask_topic, or allow_unmasked to run without masks"))
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        if self.recording is not None:  # the next episode starts a new bag: one bag, one model
            self.recording.roll_over()
        self.runtime = None
        self.model_error = "node deactivated"
        self.pairing.known_actions = None
        self._state = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """A lifecycle shutdown is final (the node can never be configured again): tear down and let main()
        end the process, so a supervisor that respawns nodes sees it exit instead of a deaf node."""
        self._teardown()
        self.finalized.set()
        return TransitionCallbackReturn.SUCCESS

    def _teardown(self) -> None:
        """Stop the worker, store the labels it had not reached, close the recorder, then drop
        subscriptions, timers and publishers (idempotent)."""
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout=5)
            self._worker = None
        self._close_recording()
        for sub in self._subs:
            self.destroy_subscription(sub)
        for timer in self._timers:
            self.destroy_timer(timer)
        self._subs, self._timers = [], []
        for pub in ("recognition_pub", "verification_pub", "overlay_pub", "diagnostics_pub"):
            if hasattr(self, pub):
                self.destroy_publisher(getattr(self, pub))
                delattr(self, pub)
        self.runtime = None
        self._state = "unconfigured"

    # ---------------------------------------------------------------- callbacks: store only
    def _on_image(self, msg: Image | CompressedImage) -> None:
        t0 = time.perf_counter()
        stamp = stamp_ns(msg.header.stamp)
        self.buffer.add(stamp, msg, len(msg.data))
        if self.buffer.clock_resets != self._clock_resets_seen:  # rare: log it, the buffer already coped
            self._clock_resets_seen = self.buffer.clock_resets
            self.get_logger().warning(f"camera stamps jumped back beyond buffer_seconds (driver restart, sim or "
                                      f"bag reset?): frame buffer restarted at {stamp / 1e9:.3f} s "
                                      f"({self._clock_resets_seen} time(s) so far)")
        self._camera_frame_id = msg.header.frame_id
        self._frames_in += 1
        self._rate_window.append(time.monotonic())
        self._callback_cost_s.append(time.perf_counter() - t0)

    def _on_mask(self, msg: Image) -> None:
        self.mask_buffer.add(stamp_ns(msg.header.stamp), msg, len(msg.data))

    def _on_command(self, msg: ManipulatorCommand) -> None:
        try:
            event = event_from_command(msg.command_id, msg.action, msg.object, msg.phase, stamp_ns(msg.header.stamp))
        except CommandEventError as exc:
            self.get_logger().warning(f"invalid command: {exc}")
            self._last_error = str(exc)
            if msg.command_id:  # answered once, with the reason; later events of this id are duplicates
                self._jobs.put(("invalid", (msg.command_id, msg.action, str(exc), stamp_ns(msg.header.stamp))))
            return
        self._jobs.put(("event", event))

    def _on_label(self, msg: EpisodeLabel) -> None:
        self._jobs.put(("label", msg))  # validated and written by the worker (disk time off the callbacks)

    def _on_status(self, tracker: GoalStatusTracker, msg: GoalStatusArray) -> None:
        now = self.get_clock().now().nanoseconds
        statuses = [(bytes(s.goal_info.goal_id.uuid), int(s.status), stamp_ns(s.goal_info.stamp))
                    for s in msg.status_list]
        for event in tracker.update(statuses, now):
            self._jobs.put(("event", event))

    # ---------------------------------------------------------------- worker
    def _pairing_limits(self) -> PairingLimits:
        return PairingLimits(settle_s=self._p("settle_time"), after_frame_timeout_s=self._p("after_frame_timeout"),
                             max_before_frame_age_s=self._p("max_before_frame_age"),
                             max_command_duration_s=self._p("max_command_duration"),
                             max_open_commands=int(self._p("max_open_commands")),
                             max_open_bytes=int(self._p("max_open_mb") * 1024 * 1024),
                             max_remembered_ids=int(self._p("max_remembered_ids")))

    def _work(self) -> None:
        """Take every queued job (events, labels) first, then poll the pairing once: polling after each of a
        burst of events would cost O(open commands) per event and starve the executor thread of the GIL,
        and the middleware would drop what its command queue cannot hold."""
        while not self._stop.is_set():
            jobs = []
            try:
                jobs.append(self._jobs.get(timeout=0.02))
                while len(jobs) < 500:
                    jobs.append(self._jobs.get_nowait())
            except queue.Empty:
                pass
            try:
                self.pairing.limits = self._pairing_limits()  # settle/timeouts may change at run time
                for kind, payload in jobs:
                    self._handle_job(kind, payload)
                for outcome in self.pairing.poll(time.monotonic()):
                    self._answer(outcome)
                self._refresh_recording_status()
            except Exception as exc:  # noqa: BLE001 - last resort: the worker must outlive any bug
                self._worker_failed(f"worker error (a bug; please report): {type(exc).__name__}: {exc}")

    def _handle_job(self, kind: str, payload: Any) -> None:
        try:
            outcomes: list[Outcome] = []
            if kind == "event":
                outcomes = self.pairing.on_event(payload, time.monotonic())
            elif kind == "invalid":
                outcomes = self.pairing.on_invalid(*payload)
            elif kind == "label" and self.recording is not None:
                self.recording.on_label(payload)
            for outcome in outcomes:
                self._answer(outcome)
        except Exception as exc:  # noqa: BLE001 - one job's failure must not drop the rest of the batch
            self._worker_failed(f"worker error (a bug; please report): {type(exc).__name__}: {exc}")

    def _worker_failed(self, message: str) -> None:
        self._worker_failures += 1
        self._worker_error = message
        self._last_error = message
        self.get_logger().error(message)

    def _answer(self, outcome: Outcome) -> None:
        """Publish one pairing outcome; a failure here ends that command UNCERTAIN, never the loop."""
        if outcome.kind == OutcomeKind.NOTE:
            self.get_logger().warning(outcome.reason)
            self._last_error = outcome.reason
            return
        try:
            if outcome.kind == OutcomeKind.READY:
                self._verify(outcome)
            else:
                self._publish_uncertain(outcome, outcome.reason)
        except Exception as exc:  # noqa: BLE001 - one command's failure must not stop the others
            self._worker_failed(f"{outcome.command_id}: verification failed: {type(exc).__name__}: {exc}")
            try:
                self._publish_uncertain(outcome, f"verification failed: {type(exc).__name__}: {exc}")
            except Exception as again:  # noqa: BLE001 - nothing more can be said about this command
                self._worker_failed(f"{outcome.command_id}: cannot publish UNCERTAIN: {again}")

    def _rgb(self, message: Any) -> np.ndarray:
        try:
            return message_to_rgb(message)
        except ImageConversionError:
            self._conversion_errors += 1
            raise

    def _mask(self, mask: BufferedFrame | None) -> np.ndarray | None:
        return None if mask is None else mask_from_message(mask.message)

    def _capture(self, frame: BufferedFrame, mask: BufferedFrame | None) -> Captured:
        """The before frame in the compact form the model needs (model-size RGB and mask), called by the pairing
        once per command; an error here ends the command with the reason. The full message is kept only when
        the episode will be recorded."""
        runtime = self.runtime
        rgb = self._rgb(frame.message)
        robot = self._mask(mask)
        recording = self.recording is not None
        message = frame.message if recording else None
        mask_message = mask.message if recording and mask is not None else None
        if runtime is None:  # answered "no model loaded" at its end; nothing worth keeping
            return Captured(frame.stamp_ns, None, 0, message, mask_message)
        compact = compact_frame(rgb, robot, runtime.metadata.preprocessing.img_size)
        embedding = None
        if mask_mode(runtime, self._p("allow_unmasked"), robot is not None) == "none":
            embedding = runtime.embed(compact.rgb)  # early, while the arm moves: only the after frame waits
        nbytes = compact.rgb.nbytes + (compact.mask.nbytes if compact.mask is not None else 0)
        return Captured(frame.stamp_ns, (compact, embedding), nbytes, message, mask_message)

    def _verify(self, outcome: Outcome) -> None:
        """The critical path: convert + embed the after frame, compare, decide, publish."""
        runtime = self.runtime
        start, after, before = outcome.start, outcome.after, outcome.before
        assert start is not None and after is not None and before is not None
        t0 = time.monotonic()
        if runtime is None or before.data is None:
            self._publish_uncertain(outcome, f"no model loaded ({self.model_error or 'the model changed'})")
            return
        compact, before_embedding = before.data
        try:
            after_rgb = self._rgb(after.message)
            after_mask = self._mask(outcome.after_mask)
        except ValueError as exc:  # ImageConversionError, MaskConversionError
            self._publish_uncertain(outcome, f"after frame: {exc}")
            return
        have_masks = compact.mask is not None and after_mask is not None
        mode = mask_mode(runtime, self._p("allow_unmasked"), have_masks)
        if mode != "none" and not have_masks:
            which = "before" if compact.mask is None else "after"
            topic = self._p("robot_mask_topic")
            self._publish_uncertain(outcome, f"the model takes the robot out of its frames (robot_mask union) but "
                                             f"the {which} frame has no robot mask stamped like it "
                                             f"({'on ' + topic if topic else 'robot_mask_topic is empty'}); "
                                             "set allow_unmasked to run without")
            return
        try:
            comparison = compare_frames(runtime, compact, after_rgb, after_mask, mode, before_embedding)
            result = comparison.result
            decision = verify_effect(start.action, result.class_names, result.scores, result.effect_magnitude,
                                     runtime.metadata.calibration)
        except (RuntimeError, ValueError) as exc:  # ModelLoadError, RobotMaskError, shape/metadata problems
            self.get_logger().error(f"{outcome.command_id}: inference failed: {type(exc).__name__}: {exc}")
            self._publish_uncertain(outcome, f"inference failed: {exc}")
            return
        header = after.message.header
        rec = ActionRecognition()
        rec.header.stamp, rec.header.frame_id = header.stamp, header.frame_id
        rec.command_id, rec.action, rec.confidence = outcome.command_id, result.action, result.confidence
        rec.class_names, rec.scores = list(result.class_names), [float(s) for s in result.scores]
        rec.before_stamp, rec.after_stamp = to_time(before.stamp_ns), header.stamp
        rec.effect_magnitude = float(result.effect_magnitude)
        rec.changed_patches = [int(i) for i in result.changed_patches]
        rec.patch_grid_rows, rec.patch_grid_cols = result.grid_size
        self.recognition_pub.publish(rec)
        ver = self._verification(outcome.command_id, start.action, decision.observed_action, decision.verdict,
                                 decision.confidence, decision.reason, start, outcome.end_ns)
        ver.header.stamp, ver.header.frame_id = header.stamp, header.frame_id
        self.verification_pub.publish(ver)
        self._worker_error = ""  # a verdict went through: the worker is healthy again
        done = time.monotonic()
        self._inference_s.append(done - t0)
        self._latency_s.append(done - outcome.finished_wall)
        if self._p("publish_overlay") and self.overlay_pub.get_subscription_count() > 0:
            try:
                overlay = render_overlay(comparison.pair.before, comparison.pair.after, result.grid_size,
                                         result.changed_patches,
                                         f"{outcome.command_id}: {start.action} -> {decision.observed_action} "
                                         f"({decision.confidence:.2f}) {decision.verdict.name}",
                                         verdict=decision.verdict.name)
                self.overlay_pub.publish(Image(header=header, **rgb_to_image_fields(overlay)))
            except OverlayError as exc:
                self.get_logger().warning(f"{outcome.command_id}: no overlay: {exc}")
        self._record(outcome, rec, ver)

    def _verification(self, command_id: str, commanded: str, observed: str, verdict: Verdict, confidence: float,
                      reason: str, start: CommandEvent | None, end_ns: int) -> EffectVerification:
        msg = EffectVerification()
        msg.command_id, msg.commanded_action, msg.observed_action = command_id, commanded, observed
        msg.verdict, msg.verdict_name = int(verdict), verdict.name.lower()
        msg.confidence, msg.reason = float(confidence), reason
        if start is not None:
            msg.command_start = to_time(start.stamp_ns)
        msg.command_end = to_time(end_ns)
        return msg

    def _publish_uncertain(self, outcome: Outcome, reason: str) -> None:
        """Publish UNCERTAIN with the reason; the episode is recorded too, with whatever frames it has, so it
        can be labelled later."""
        start = outcome.start
        msg = self._verification(outcome.command_id, outcome.action, "", Verdict.UNCERTAIN, 0.0, reason, start,
                                 outcome.end_ns)
        msg.header.stamp, msg.header.frame_id = to_time(outcome.end_ns), self._camera_frame_id
        self.verification_pub.publish(msg)
        self.get_logger().warning(f"{outcome.command_id}: UNCERTAIN: {reason}")
        self._record(outcome, None, msg)

    # ---------------------------------------------------------------- recording (worker, after publishing)
    def _record(self, outcome: Outcome, recognition: ActionRecognition | None,
                verification: EffectVerification) -> None:
        """Store the episode as published; disk trouble is the session's to report, never the node's."""
        if self.recording is None:
            return
        before = outcome.before
        self.recording.record_episode(
            outcome.command_id, before=before.message if before is not None else None,
            after=outcome.after.message if outcome.after is not None else None,
            commands=[e for e in (outcome.start, outcome.end_event) if e is not None],
            recognition=recognition, verification=verification,
            before_mask=before.mask_message if before is not None else None,
            after_mask=outcome.after_mask.message if outcome.after_mask is not None else None)

    def _refresh_recording_status(self) -> None:
        """Twice a second, the snapshot the diagnostics read (pause countdown, counters)."""
        now = time.monotonic()
        if self.recording is not None and now >= self._next_recording_refresh:
            self.recording.refresh()
            self._next_recording_refresh = now + 0.5

    def _close_recording(self) -> None:
        """Store the labels still queued (the worker has stopped), then close the recorder (idempotent)."""
        recording, self.recording = self.recording, None
        if recording is not None:
            while True:
                try:
                    kind, payload = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if kind == "label":  # commands still in flight get no verdict, and no episode, at teardown
                    recording.on_label(payload)
            recording.close()
        if self._recorder_log is not None:
            logger, handler, level = self._recorder_log
            logger.removeHandler(handler)
            logger.setLevel(level)
            self._recorder_log = None

    # ---------------------------------------------------------------- diagnostics
    def _publish_diagnostics(self) -> None:
        stats = self.buffer.stats()
        now = time.monotonic()
        # list() first: the image callback appends to these deques on another executor thread, and iterating a
        # deque that changes raises RuntimeError, which would stop the executor (and the node) from a timer
        recent = [t for t in list(self._rate_window) if now - t < 5.0]
        rate = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
        cost = sorted(list(self._callback_cost_s))
        latency = sorted(list(self._latency_s))
        inference = sorted(list(self._inference_s))

        def pct(values: list[float], q: float) -> str:
            return f"{values[min(len(values) - 1, int(q * len(values)))] * 1000:.2f}" if values else "nan"

        meta = self.runtime.metadata if self.runtime else None
        recording = self.recording
        recording_problem = recording.problem() if recording is not None else ""
        status = DiagnosticStatus(name=f"{self.get_name()}: effect verification", hardware_id="cde")
        worker_error = self._worker_error
        status.level = (DiagnosticStatus.ERROR if worker_error else DiagnosticStatus.OK
                        if self.runtime and not recording_problem else DiagnosticStatus.WARN)
        status.message = "; ".join(m for m in (worker_error, "" if self.runtime else f"no model: {self.model_error}",
                                               recording_problem) if m) or "ok"
        pairing = self.pairing.stats
        trackers = list(self._status_trackers.values())
        values = {
            "input_rate_hz": f"{rate:.2f}", "frames_received": str(self._frames_in),
            "buffer_frames": str(stats.count), "buffer_mb": f"{stats.bytes / 2**20:.1f}",
            "buffer_span_s": f"{stats.span_s:.2f}", "buffer_dropped": str(stats.dropped),
            "buffer_evicted": str(stats.evicted), "buffer_out_of_order": str(stats.out_of_order),
            "buffer_clock_resets": str(stats.clock_resets),
            "conversion_errors": str(self._conversion_errors), "open_commands": str(self.pairing.open_count),
            "open_commands_mb": f"{self.pairing.open_bytes / 2**20:.2f}",
            "commands_answered": str(pairing.answered), "commands_evicted": str(pairing.evicted),
            "commands_expired": str(pairing.expired), "ends_without_start": str(pairing.ends_without_start),
            "command_messages_lost": str(self._commands_lost), "duplicate_events": str(pairing.duplicates),
            "capture_failures": str(pairing.capture_failures), "forgotten_ids": str(pairing.forgotten_ids),
            "goals_tracked": str(sum(t.tracked_count() for t in trackers)),
            "goal_tracker_overflow": str(sum(t.overflow for t in trackers)),
            "worker_failures": str(self._worker_failures),
            "robot_masks": str(self.mask_buffer.stats().count) if self.mask_buffer is not None else "off",
            "image_callback_ms_p50": pct(cost, 0.5), "image_callback_ms_p99": pct(cost, 0.99),
            "latency_ms_p50": pct(latency, 0.5), "latency_ms_p99": pct(latency, 0.99),
            "after_frame_to_verdict_ms_p50": pct(inference, 0.5), "after_frame_to_verdict_ms_p99": pct(inference, 0.99),
            "backend": meta.backend if meta else "none", "precision": meta.precision if meta else "none",
            "providers": ",".join(meta.providers) if meta else "", "last_error": self._last_error,
            **(recording.diagnostic_values() if recording is not None else {"recording": "off"}),
        }
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(array)


def main(args: list[str] | None = None) -> None:
    """Spin the node on a multi-threaded executor in a thread until SIGINT/SIGTERM, then stop the worker
    and close the recorder, the executor and the node in that order, and only then shut rclpy down.

    The signals are ours, not rclpy's: rclpy's handlers invalidate the context at once, so a verdict
    being published, the labels still queued and the closing log lines would fail or reach no one."""
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    node = PerceptionNode()
    executor = MultiThreadedExecutor(num_threads=3)
    executor.add_node(node)

    def spin() -> None:
        try:
            executor.spin()
        except ExternalShutdownException:  # someone else shut the context down
            pass
        finally:
            stop.set()

    spinner = threading.Thread(target=spin, name="cde_executor", daemon=True)
    spinner.start()
    try:
        while not stop.wait(timeout=0.2):  # the main thread waits here; Python runs signal handlers on it
            if node.finalized.is_set():  # a remote lifecycle shutdown: the node is finished, so is the process
                node.get_logger().info("lifecycle shutdown: exiting")
                break
    finally:
        try:
            node._teardown()
        finally:
            executor.shutdown()
            spinner.join(timeout=5)
            node.destroy_node()
            rclpy.try_shutdown()


if __name__ == "__main__":
    main()
