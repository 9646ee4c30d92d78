"""Every perception-node parameter: default, type, allowed values, and why it exists.

Pure Python so the validation is tested without ROS; the node declares these and checks every change
in its set-parameters callback. config/perception.yaml lists the same keys. Read-only parameters (the
path allow-lists) are declared read-only, so rclpy refuses any change after start; path parameters are
also checked against their allow-list (cde_ros/path_confinement.py) on change and again before use.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from cde_core.runtime.loader import BACKENDS, SUFFIXES

# Lifecycle states (primary state labels) in which a parameter may change, from least to most running.
STATES = ("unconfigured", "inactive", "active")
ALWAYS, WHILE_INACTIVE, WHILE_UNCONFIGURED = "active", "inactive", "unconfigured"


@dataclass(frozen=True)
class ParamSpec:
    """One parameter. `changeable_up_to`: the most-running state in which a change is accepted (topics
    and buffers are built in configure, the model is loaded in activate, thresholds apply at once)."""

    name: str
    default: Any
    description: str
    check: Callable[[Any], str] | None = None  # returns "" if fine, else why not
    changeable_up_to: str = ALWAYS
    read_only: bool = False  # set at start only (params file, -p); rclpy refuses changes


def _range(lo: float, hi: float) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        return "" if lo <= value <= hi else f"must be in [{lo}, {hi}], got {value}"
    return check


def _choices(*options: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        return "" if value in options else f"must be one of {list(options)}, got {value!r}"
    return check


def _non_empty(value: Any) -> str:
    return "" if str(value).strip() else "must not be empty"


MODEL_SUFFIXES = tuple(sorted(set(SUFFIXES.values())))  # what some backend reads: .onnx, .safetensors


def _model_file(value: Any) -> str:
    """Weights only from formats that cannot run code when read: no pickled PyTorch files."""
    if not value or str(value).endswith(MODEL_SUFFIXES):
        return ""
    return (f"must be an exported .onnx index or a .safetensors checkpoint, got {value!r}; pickled PyTorch "
            "files (.pt/.pth/.ckpt) are never loaded (they can run code): convert with `cde export` or "
            "safetensors.torch.save_file")


def _directories(value: Any) -> str:
    from cde_ros.path_confinement import entry_problem

    return next((p for p in (entry_problem(e) for e in value) if p), "")


def _mapping(value: Any) -> str:
    from cde_ros.command_events import CommandEventError, parse_action_mapping

    try:
        parse_action_mapping(value)
    except CommandEventError as exc:
        return str(exc)
    return ""


PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("model_path", "", "ONNX index (.onnx) or checkpoint (.safetensors) to load on activate; must "
              "resolve inside allowed_model_dirs", _model_file, WHILE_INACTIVE),
    ParamSpec("allowed_model_dirs", ["package://cde_ros/models", "~/.ros/cde"],
              "model_path must resolve (links, '..') inside one of these; package://cde_ros/models = the "
              "package's models directory; [''] = none; read-only", _directories, read_only=True),
    ParamSpec("backend", "auto", "auto | onnxruntime | torch | tensorrt", _choices(*BACKENDS), WHILE_INACTIVE),
    ParamSpec("inference_threads", 1, "intra-op threads of the runtime", _range(1, 64), WHILE_INACTIVE),
    ParamSpec("precision", "fp32", "fp32 | bf16: bf16 autocast for the torch backend (CPUs with AVX512-BF16 or "
              "AMX: 1.5x faster backbone in cde bench); ONNX Runtime and TensorRT ignore it",
              _choices("fp32", "bf16"), WHILE_INACTIVE),
    ParamSpec("image_topic", "image", "sensor_msgs/Image input ('' = off)", changeable_up_to=WHILE_UNCONFIGURED),
    ParamSpec("compressed_image_topic", "", "sensor_msgs/CompressedImage input ('' = off)",
              changeable_up_to=WHILE_UNCONFIGURED),
    ParamSpec("command_topic", "commands", "cde_ros/ManipulatorCommand input", changeable_up_to=WHILE_UNCONFIGURED),
    ParamSpec("action_servers", [""], "action servers to watch, as 'server_name=semantic_action'", _mapping,
              WHILE_UNCONFIGURED),
    ParamSpec("image_qos", "sensor_data", "sensor_data (best effort) | reliable", _choices("sensor_data", "reliable"),
              WHILE_UNCONFIGURED),
    ParamSpec("image_qos_depth", 5, "subscription queue depth for images", _range(1, 100), WHILE_UNCONFIGURED),
    ParamSpec("command_qos_depth", 0, "command subscription queue: 0 = keep all (reliable publishers wait instead of "
              "the node losing commands in a burst), N = keep the last N", _range(0, 100000), WHILE_UNCONFIGURED),
    ParamSpec("robot_mask_topic", "", "sensor_msgs/Image mono8 robot self-mask (255 = robot), stamped like each "
              "camera frame ('' = no masks)", changeable_up_to=WHILE_UNCONFIGURED),
    ParamSpec("allow_unmasked", False, "run a model trained with robot masks on frames without masks (else such "
              "commands are UNCERTAIN with that reason)"),
    ParamSpec("max_open_commands", 256, "commands kept between start and verdict; the oldest beyond it is answered "
              "UNCERTAIN (evicted)", _range(1, 100000), WHILE_UNCONFIGURED),
    ParamSpec("max_open_mb", 64.0, "memory bound of the before frames kept for open commands", _range(0.1, 16384.0),
              WHILE_UNCONFIGURED),
    ParamSpec("max_remembered_ids", 4096, "answered command ids remembered, so a repeated event gets no second "
              "verdict", _range(16, 10_000_000), WHILE_UNCONFIGURED),
    ParamSpec("max_tracked_goals", 4096, "action-server goals tracked per server (goals still listed in the status "
              "are never forgotten below this)", _range(16, 10_000_000), WHILE_UNCONFIGURED),
    ParamSpec("buffer_seconds", 10.0, "frames kept (by header stamp)", _range(0.5, 600.0), WHILE_UNCONFIGURED),
    ParamSpec("buffer_max_mb", 256.0, "memory bound of the frame buffer", _range(1.0, 16384.0), WHILE_UNCONFIGURED),
    ParamSpec("settle_time", 0.3, "seconds after a command ends before the after frame is taken", _range(0.0, 30.0)),
    ParamSpec("after_frame_timeout", 3.0,
              "wall seconds to wait beyond settle_time for the after frame before UNCERTAIN",
              _range(0.05, 120.0)),
    ParamSpec("max_before_frame_age", 2.0, "the before frame may be at most this older than the start",
              _range(0.0, 600.0)),
    ParamSpec("max_command_duration", 300.0, "a STARTED command without an end is dropped after this",
              _range(1.0, 86400.0)),
    ParamSpec("publish_overlay", True, "render the debug overlay while someone subscribes"),
    ParamSpec("diagnostics_period", 1.0, "seconds between /diagnostics messages", _range(0.1, 60.0),
              WHILE_UNCONFIGURED),
    ParamSpec("autostart", False, "configure and activate at start (no lifecycle manager needed)",
              changeable_up_to=WHILE_UNCONFIGURED),
    # Episode recording (cde_ros/episode_recorder.py): read in configure, like the topics.
    ParamSpec("recording_enabled", False, "record every completed episode to MCAP bags under recording_dir",
              changeable_up_to=WHILE_UNCONFIGURED),
    ParamSpec("recording_dir", "~/.ros/cde_episodes", "directory the bags are written under ('~' expanded); "
              "must resolve inside allowed_recording_dirs", _non_empty, WHILE_UNCONFIGURED),
    ParamSpec("allowed_recording_dirs", ["~/.ros/cde_episodes", "~/.ros/cde"],
              "recording_dir must resolve inside one of these; [''] = none; read-only", _directories,
              read_only=True),
    ParamSpec("recording_image_format", "raw", "raw (frames as received) | jpeg | png (re-encoded CompressedImage)",
              _choices("raw", "jpeg", "png"), WHILE_UNCONFIGURED),
    ParamSpec("recording_jpeg_quality", 90, "JPEG quality when recording_image_format is jpeg", _range(1, 100),
              WHILE_UNCONFIGURED),
    ParamSpec("recording_max_bag_size_mb", 1024.0, "start a new bag once a bag's files reach this (0 = no limit)",
              _range(0.0, 1e7), WHILE_UNCONFIGURED),
    ParamSpec("recording_max_bag_duration_s", 3600.0, "start a new bag once a bag is this old (0 = no limit)",
              _range(0.0, 1e7), WHILE_UNCONFIGURED),
    ParamSpec("recording_retry_s", 30.0, "after a write error, pause recording this long, then retry (0 = stop)",
              _range(0.0, 86400.0), WHILE_UNCONFIGURED),
    ParamSpec("label_topic", "~/episode_label", "cde_ros/EpisodeLabel input, stored in the bag (recording only)",
              _non_empty, WHILE_UNCONFIGURED),
)
SPECS = {p.name: p for p in PARAMS}


def validate(name: str, value: Any, state: str) -> str:
    """'' if `name := value` is acceptable in lifecycle `state` (see STATES), else the reason (used to
    reject parameter changes)."""
    spec = SPECS.get(name)
    if spec is None:
        return ""  # not ours (e.g. use_sim_time)
    if state not in STATES:
        raise ValueError(f"unknown lifecycle state {state!r}; one of {STATES}")
    if STATES.index(state) > STATES.index(spec.changeable_up_to):
        if spec.changeable_up_to == WHILE_INACTIVE:
            return f"{name} can only change while the node is not active (deactivate first)"
        return f"{name} can only change while the node is unconfigured (deactivate and clean up first)"
    if type(spec.default) is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if spec.default is not None and not isinstance(value, type(spec.default)):
        return f"{name} must be {type(spec.default).__name__}, got {type(value).__name__}"
    return spec.check(value) if spec.check else ""


# Path parameter -> the read-only allow-list it must resolve inside (cde_ros/path_confinement.py).
CONFINED_PATHS = {"model_path": "allowed_model_dirs", "recording_dir": "allowed_recording_dirs"}
