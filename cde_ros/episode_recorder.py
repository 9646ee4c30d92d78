"""Record every completed command episode to MCAP bags (rosbag2 layout) that survive a kill -9.

What is written, per episode (topics in `TOPICS`): the before and after camera frames (as received, or
re-encoded to JPEG/PNG CompressedImage when `image_format` says so; compressed frames go to
`<topic>/compressed`, image_transport's naming), the robot self-masks of those frames when the node has
them (mono8 Image, always raw whatever `image_format` says: a JPEG'd mask is no longer a mask), the
command events (cde_ros/ManipulatorCommand), the ActionRecognition and the EffectVerification; labels
(EpisodeLabel) whenever they arrive. The
package's .msg definitions are registered in the bag's typestore, so every MCAP file carries their
text as schemas and any reader (rosbags, the `mcap` package's ROS 2 decoder, ros2 bag) decodes them.

Crash safety. rosbags' MCAP writer keeps the chunk, the schemas and the index in memory until
`close()`: a killed writer leaves a file no reader opens. So nothing stays open between episodes:
  - a bag is a directory `<recording_dir>/cde_<UTC time>_<n>/` with `metadata.yaml` + files `<bag>_<k>.mcap`;
  - each episode (or label) is written by its own rosbags Writer into a hidden temporary bag, closed
    (summary + index written), fsync'ed, renamed into the bag directory, and only then listed in the
    bag's `metadata.yaml`, which is replaced atomically (temp file + fsync + rename);
  - `record_episode` returns only after that, so every episode it returned for is in a complete,
    listed file; a kill -9 at any instant leaves at worst a hidden `.partial` directory or an unlisted
    file, which readers never see.
Files are never appended to, so the kill -9 window is one episode. A bag is split (the next episode
opens a new bag directory) when its files reach `max_bag_size_mb`, its wall-clock age reaches
`max_bag_duration_s`, or it holds `max_files_per_bag` files (bounds the metadata rewrite per episode).

Failures (disk full, unwritable or vanished directory) raise `RecordingError` once; the recorder then
pauses (episodes are counted as dropped, labels are kept in memory) and tries again, in a new bag,
after `retry_s` seconds (0: stays disabled). The node logs the error and keeps running.

CDR bytes come from `rclpy.serialization.serialize_message` on the node's own messages: that is the
exact wire encoding, done in C (fast for images), with no field-by-field copy into rosbags classes;
rosbags only provides the container and the message definitions. Thread-safe: one lock around disk
access (rosbags' writer is not documented as thread-safe); conversion and serialisation run outside it.
"""
from __future__ import annotations

import errno
import io
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from rclpy.serialization import serialize_message
from sensor_msgs.msg import CompressedImage, Image

from cde_ros.command_events import CommandEvent
from cde_ros.image_conversion import ImageConversionError, message_to_rgb
from cde_ros.msg import ActionRecognition, EffectVerification, EpisodeLabel, ManipulatorCommand

if TYPE_CHECKING:
    from rosbags.rosbag2 import Writer
    from rosbags.typesys.store import Typestore

_log = logging.getLogger(__name__)

PACKAGE = "cde_ros"
MESSAGE_NAMES = ("ManipulatorCommand", "ActionRecognition", "EffectVerification", "EpisodeLabel")
# custom_data["cde.layout"]: one episode (or label batch) per .mcap file. The mask topics are optional
# additions, so bags with or without them share this layout (cde_core/data/bag_import.py reads both).
LAYOUT = "cde-episodes/1"

TOPICS = {
    "before": "/cde/episode/before",
    "after": "/cde/episode/after",
    "before_mask": "/cde/episode/before_mask",  # robot self-masks: raw sensor_msgs/Image, never compressed
    "after_mask": "/cde/episode/after_mask",
    "command": "/cde/episode/command",
    "recognition": "/cde/episode/recognition",
    "verification": "/cde/episode/verification",
    "label": "/cde/episode/label",
}
COMPRESSED_SUFFIX = "/compressed"
IMAGE_FORMATS = ("raw", "jpeg", "png")

_IMAGE = "sensor_msgs/msg/Image"
_COMPRESSED = "sensor_msgs/msg/CompressedImage"
_TYPES = {Image: _IMAGE, CompressedImage: _COMPRESSED, ManipulatorCommand: f"{PACKAGE}/msg/ManipulatorCommand",
          ActionRecognition: f"{PACKAGE}/msg/ActionRecognition",
          EffectVerification: f"{PACKAGE}/msg/EffectVerification", EpisodeLabel: f"{PACKAGE}/msg/EpisodeLabel"}


class RecordingError(RuntimeError):
    """Recording failed; the message names the path, the cause and what to do. `errno` as in OSError."""

    def __init__(self, message: str, path: Path | None = None, errno_: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.errno = errno_


@dataclass(frozen=True)
class RecorderConfig:
    """Recording settings; the node builds it from its `recording_*` parameters (`from_parameters`)."""

    directory: str
    image_format: str = "raw"  # raw: frames as received; jpeg/png: CompressedImage re-encoded with Pillow
    jpeg_quality: int = 90
    max_bag_size_mb: float = 1024.0  # 0 = no limit
    max_bag_duration_s: float = 3600.0  # wall-clock age of a bag; 0 = no limit
    max_files_per_bag: int = 1000
    retry_s: float = 30.0  # after an error, pause this long before trying again; 0 = stay disabled
    fsync: bool = True  # durable on power loss too, not only on process death

    def __post_init__(self) -> None:
        if not self.directory:
            raise ValueError("recording directory is empty")
        if self.image_format not in IMAGE_FORMATS:
            raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, got {self.image_format!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")
        if self.max_bag_size_mb < 0 or self.max_bag_duration_s < 0 or self.retry_s < 0:
            raise ValueError("max_bag_size_mb, max_bag_duration_s and retry_s must be >= 0")
        if self.max_files_per_bag < 1:
            raise ValueError(f"max_files_per_bag must be >= 1, got {self.max_files_per_bag}")

    @classmethod
    def from_parameters(cls, get: Callable[[str], Any]) -> "RecorderConfig":
        """Build from the node's parameters (`get(name) -> value`, e.g. the node's `_p`)."""
        return cls(directory=os.path.expanduser(str(get("recording_dir"))),
                   image_format=str(get("recording_image_format")), jpeg_quality=int(get("recording_jpeg_quality")),
                   max_bag_size_mb=float(get("recording_max_bag_size_mb")),
                   max_bag_duration_s=float(get("recording_max_bag_duration_s")),
                   retry_s=float(get("recording_retry_s")))


@dataclass
class RecorderStatus:
    """What the recorder did, for the node's diagnostics."""

    episodes_recorded: int = 0
    labels_recorded: int = 0
    episodes_dropped: int = 0  # not written because recording was paused after an error
    labels_waiting: int = 0  # received while paused; written with the next successful write
    bytes_written: int = 0
    bags: list[str] = field(default_factory=list)
    current_bag: str = ""
    paused_for_s: float = 0.0  # > 0 while paused; inf when disabled for good (retry_s = 0)
    last_error: str = ""
    closed: bool = False

    def diagnostic_values(self) -> dict[str, str]:
        """Flat key/values for a DiagnosticStatus."""
        return {"recording_episodes": str(self.episodes_recorded), "recording_labels": str(self.labels_recorded),
                "recording_dropped": str(self.episodes_dropped), "recording_labels_waiting": str(self.labels_waiting),
                "recording_mb": f"{self.bytes_written / 2**20:.1f}", "recording_bag": self.current_bag,
                "recording_paused_s": f"{self.paused_for_s:.0f}", "recording_error": self.last_error}


def message_definition_dir() -> Path:
    """The directory with the package's .msg files: installed share/ (AMENT_PREFIX_PATH) or the checkout."""
    candidates = [Path(prefix) / "share" / PACKAGE / "msg"
                  for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if prefix]
    candidates.append(Path(__file__).resolve().parents[1] / "msg")
    for candidate in candidates:
        if all((candidate / f"{name}.msg").is_file() for name in MESSAGE_NAMES):
            return candidate
    raise RecordingError(f"cannot find {PACKAGE}'s .msg files (looked in {[str(c) for c in candidates]}); "
                         "install the package or run from the checkout")


@lru_cache(maxsize=1)
def episode_typestore() -> "Typestore":
    """ROS 2 Kilted types plus this package's messages, parsed from their .msg text."""
    from rosbags.typesys import Stores, get_typestore, get_types_from_msg

    store = get_typestore(Stores.ROS2_KILTED)
    directory = message_definition_dir()
    types: dict[str, Any] = {}
    for name in MESSAGE_NAMES:
        types.update(get_types_from_msg((directory / f"{name}.msg").read_text(), f"{PACKAGE}/msg/{name}"))
    store.register(types)
    return store


def command_message(event: CommandEvent | ManipulatorCommand) -> ManipulatorCommand:
    """A CommandEvent (topic or action-status source) as the ManipulatorCommand the bag stores."""
    if isinstance(event, ManipulatorCommand):
        return event
    msg = ManipulatorCommand(command_id=event.command_id, action=event.action, object=event.object,
                             phase=int(event.phase))
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(event.stamp_ns), 1_000_000_000)
    msg.header.frame_id = "" if event.source == "topic" else event.source
    return msg


def _stamp_ns(msg: Any) -> int:
    stamp = msg.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# (topic, type name, log time ns, CDR bytes)
_Item = tuple[str, str, int, bytes]


class _BagDirectory:
    """One rosbag2 bag made of closed per-episode MCAP files, listed in metadata.yaml as they complete."""

    def __init__(self, path: Path, writer_factory: Callable[[Path], "Writer"], fsync: bool, opened_at: float) -> None:
        self.path = path
        self._writer_factory = writer_factory
        self._fsync = fsync
        self.opened_at = opened_at
        self.bytes = 0
        self.files: list[dict[str, Any]] = []
        self._files_yaml: list[str] = []  # each file's metadata entry, rendered once (see _write_metadata)
        self._topics: dict[tuple[str, str], dict[str, Any]] = {}
        self._start = 2**63 - 1
        self._end = 0

    def write_file(self, items: Sequence[_Item]) -> Path:
        """Write `items` as the bag's next file; returns it once it is closed, durable and listed."""
        from rosbags.rosbag2.errors import WriterError
        from ruamel.yaml import YAML

        self.path.mkdir(parents=True, exist_ok=True)
        name = f"{self.path.name}_{len(self.files)}.mcap"
        tmp = self.path / f".{self.path.name}_{len(self.files)}.partial"
        shutil.rmtree(tmp, ignore_errors=True)  # a leftover of an earlier failure
        store = episode_typestore()
        writer = self._writer_factory(tmp)
        try:
            writer.set_custom_data("cde.layout", LAYOUT)
            writer.open()
            connections: dict[tuple[str, str], Any] = {}
            for topic, msgtype, log_ns, data in items:
                conn = connections.get((topic, msgtype))
                if conn is None:
                    conn = connections[(topic, msgtype)] = writer.add_connection(topic, msgtype, typestore=store)
                writer.write(conn, log_ns, data)
            writer.close()
        except BaseException:
            try:
                writer.abort()
            except (OSError, WriterError, AssertionError):
                pass
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        info = YAML(typ="safe").load((tmp / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        written = tmp / info["relative_file_paths"][0]
        if self._fsync:
            _fsync(written)
        target = self.path / name
        os.replace(written, target)
        shutil.rmtree(tmp, ignore_errors=True)
        self._add_file(name, info, target.stat().st_size)
        self._write_metadata()
        return target

    def _add_file(self, name: str, info: dict[str, Any], size: int) -> None:
        entry = dict(info["files"][0])
        entry["path"] = name
        self.files.append(entry)
        self._files_yaml.append(
            f"  - path: {name}\n    starting_time:\n      nanoseconds_since_epoch: "
            f"{int(entry['starting_time']['nanoseconds_since_epoch'])}\n    duration:\n      nanoseconds: "
            f"{int(entry['duration']['nanoseconds'])}\n    message_count: {int(entry['message_count'])}\n")
        self.bytes += size
        start = int(entry["starting_time"]["nanoseconds_since_epoch"])
        self._start = min(self._start, start)
        self._end = max(self._end, start + int(entry["duration"]["nanoseconds"]))
        for topic in info["topics_with_message_count"]:
            meta = topic["topic_metadata"]
            key = (meta["name"], meta["type"])
            if key in self._topics:
                self._topics[key]["message_count"] += int(topic["message_count"])
            else:
                self._topics[key] = {"topic_metadata": dict(meta), "message_count": int(topic["message_count"])}

    def _write_metadata(self) -> None:
        """Replace metadata.yaml atomically: readers see the old list or the new one, never half.

        The per-file lists are appended as pre-rendered text (file names are plain [A-Za-z0-9_.] and the
        values integers): dumping them with ruamel costs ~0.5 ms per file, per episode."""
        from ruamel.yaml import YAML

        count = sum(int(f["message_count"]) for f in self.files)
        metadata = {"rosbag2_bagfile_information": {
            "version": 9, "storage_identifier": "mcap",
            "duration": {"nanoseconds": max(0, self._end - self._start)},
            "starting_time": {"nanoseconds_since_epoch": self._start},
            "message_count": count,
            "topics_with_message_count": list(self._topics.values()),
            "compression_format": "", "compression_mode": "",
            "custom_data": {"cde.layout": LAYOUT},
            "ros_distro": "rosbags",
        }}
        yaml = YAML(typ="safe")
        yaml.default_flow_style = False
        text = io.StringIO()
        yaml.dump(metadata, text)
        text.write("  relative_file_paths:\n")
        text.writelines(f"  - {f['path']}\n" for f in self.files)
        text.write("  files:\n")
        text.writelines(self._files_yaml)
        tmp = self.path / ".metadata.yaml.tmp"
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(text.getvalue())
            handle.flush()
            if self._fsync:
                os.fsync(handle.fileno())
        os.replace(tmp, self.path / "metadata.yaml")
        if self._fsync:
            _fsync(self.path)

    def full(self, config: RecorderConfig, now: float) -> bool:
        if len(self.files) >= config.max_files_per_bag:
            return True
        if config.max_bag_size_mb and self.bytes >= config.max_bag_size_mb * 2**20:
            return True
        return bool(config.max_bag_duration_s and now - self.opened_at >= config.max_bag_duration_s)


def _default_writer(path: Path) -> "Writer":
    from rosbags.rosbag2 import StoragePlugin, Writer

    return Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)


class EpisodeRecorder:
    """Writes episodes and labels to bags under `config.directory`; see the module docstring.

    `clock` (monotonic seconds) times bag splits and retry pauses; `wall_clock_ns` names bags and stamps
    messages whose header stamp is zero; `writer_factory` makes the rosbags Writer for a path (tests
    inject failing ones). No disk access happens before the first episode or label.
    """

    def __init__(self, config: RecorderConfig, *, clock: Callable[[], float] = time.monotonic,
                 wall_clock_ns: Callable[[], int] = time.time_ns,
                 writer_factory: Callable[[Path], "Writer"] = _default_writer) -> None:
        self.config = config
        self._clock = clock
        self._wall_ns = wall_clock_ns
        self._writer_factory = writer_factory
        self._lock = threading.Lock()
        self._bag: _BagDirectory | None = None
        self._paused_until: float | None = None
        self._waiting_labels: list[_Item] = []
        self._status = RecorderStatus()
        self._warned_raw_fallback = False
        episode_typestore()  # fail now (RecordingError) if the message definitions are missing

    # ---------------------------------------------------------------- public API
    def record_episode(self, command_id: str, *, before: Image | CompressedImage | None,
                       after: Image | CompressedImage | None,
                       commands: Sequence[CommandEvent | ManipulatorCommand] = (),
                       recognition: ActionRecognition | None = None,
                       verification: EffectVerification | None = None,
                       before_mask: Image | None = None, after_mask: Image | None = None) -> Path | None:
        """Write one completed episode as one closed file; returns it, or None while paused after an
        error. Raises RecordingError when the write fails (then pauses) or after close().

        `before_mask`/`after_mask`: the robot self-masks of the two frames (mono8, as received), stored
        raw on their own topics so a masked model's training data keeps them bit-exact."""
        if not command_id:
            raise ValueError("record_episode needs the command id")
        items: list[_Item] = [self._item(TOPICS["command"], command_message(c)) for c in commands]
        for role, frame in (("before", before), ("after", after)):
            if frame is not None:
                items.append(self._frame_item(role, frame))
        for role, mask in (("before_mask", before_mask), ("after_mask", after_mask)):
            if mask is not None:
                if not isinstance(mask, Image):  # a CompressedImage may be lossy: its pixels are no mask
                    raise TypeError(f"{role} must be a raw sensor_msgs/Image (mono8), got {type(mask).__name__}")
                items.append(self._item(TOPICS[role], mask))
        for role, msg in (("recognition", recognition), ("verification", verification)):
            if msg is not None:
                items.append(self._item(TOPICS[role], msg))
        # messages without a header stamp are logged at the episode's latest stamp (one clock per episode)
        fallback = max((item[2] for item in items), default=0) or self._wall_ns()
        items = [(topic, msgtype, log_ns or fallback, data) for topic, msgtype, log_ns, data in items]
        with self._lock:
            path = self._write(items, f"episode {command_id}")
            if path is not None:
                self._status.episodes_recorded += 1
            elif not self._status.closed:
                self._status.episodes_dropped += 1
            return path

    def record_label(self, label: EpisodeLabel) -> Path | None:
        """Store a label (its own small file, so it is durable at once); None: kept in memory while
        paused, written with the next successful write. Raises RecordingError like record_episode."""
        item = self._item(TOPICS["label"], label, stamp_ns=self._wall_ns())  # log time = receipt (latest wins)
        with self._lock:
            if self._is_paused():
                self._waiting_labels.append(item)
                self._status.labels_waiting = len(self._waiting_labels)
                return None
            return self._write([item], f"label for {label.command_id}")

    def status(self) -> RecorderStatus:
        with self._lock:
            status = RecorderStatus(**{k: getattr(self._status, k) for k in self._status.__dataclass_fields__})
            status.bags = list(self._status.bags)
            if self._paused_until is not None:
                status.paused_for_s = max(0.0, self._paused_until - self._clock())
            return status

    def close(self) -> None:
        """Stop recording (idempotent). Every episode is already in a closed file; labels still waiting
        after an error get one last try."""
        with self._lock:
            if self._status.closed:
                return
            if self._waiting_labels and self._paused_until != float("inf"):
                self._paused_until = None
                try:
                    self._write([], "labels waiting since an error")
                except RecordingError as exc:
                    _log.error(f"{len(self._waiting_labels)} labels lost at close: {exc}")
            self._bag = None
            self._status.closed = True
        _log.info(f"recording closed: {self._status.episodes_recorded} episodes, "
                  f"{self._status.labels_recorded} labels in {len(self._status.bags)} bag(s)")

    def __enter__(self) -> "EpisodeRecorder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- messages -> items
    def _item(self, topic: str, msg: Any, stamp_ns: int | None = None) -> _Item:
        """Serialise; the log time is `stamp_ns` or the header stamp (0 if unstamped, filled in later)."""
        msgtype = _TYPES.get(type(msg))
        if msgtype is None:
            raise TypeError(f"cannot record {type(msg).__name__} on {topic}: expected one of "
                            f"{sorted(t.__name__ for t in _TYPES)}")
        log_ns = stamp_ns if stamp_ns is not None else _stamp_ns(msg)
        return topic, msgtype, log_ns, serialize_message(msg)

    def _frame_item(self, role: str, frame: Image | CompressedImage) -> _Item:
        base = TOPICS[role]
        if isinstance(frame, CompressedImage):
            return self._item(base + COMPRESSED_SUFFIX, frame)
        if self.config.image_format == "raw":
            return self._item(base, frame)
        try:
            compressed = self._compress(frame)
        except ImageConversionError as exc:
            if not self._warned_raw_fallback:
                _log.warning(f"cannot re-encode {frame.encoding!r} frames to {self.config.image_format} ({exc}); "
                             "recording them raw instead (lossless)")
                self._warned_raw_fallback = True
            return self._item(base, frame)
        return self._item(base + COMPRESSED_SUFFIX, compressed)

    def _compress(self, frame: Image) -> CompressedImage:
        """Image -> CompressedImage with image_transport's format string (decoders yield bgr8 with OpenCV)."""
        from PIL import Image as PILImage

        rgb = message_to_rgb(frame)
        buffer = io.BytesIO()
        if self.config.image_format == "jpeg":
            PILImage.fromarray(rgb).save(buffer, format="JPEG", quality=self.config.jpeg_quality)
        else:
            PILImage.fromarray(rgb).save(buffer, format="PNG", compress_level=3)
        return CompressedImage(header=frame.header, format=f"{frame.encoding}; {self.config.image_format} compressed bgr8",
                               data=buffer.getvalue())

    # ---------------------------------------------------------------- disk (lock held)
    def _is_paused(self) -> bool:
        if self._paused_until is None:
            return False
        if self._clock() >= self._paused_until:
            self._paused_until = None
            return False
        return True

    def _write(self, items: list[_Item], what: str) -> Path | None:
        if self._status.closed:
            raise RecordingError(f"cannot record {what}: the recorder is closed")
        if self._is_paused():
            return None
        from rosbags.rosbag2.errors import WriterError

        labels = self._waiting_labels
        try:
            if self._bag is None:
                self._bag = self._open_bag()
            path = self._bag.write_file(labels + items)
        except (OSError, WriterError) as exc:
            raise self._fail(what, exc) from exc
        self._waiting_labels = []
        self._status.labels_recorded += sum(1 for item in labels + items if item[0] == TOPICS["label"])
        self._status.labels_waiting = 0
        self._status.bytes_written += path.stat().st_size
        if self._bag.full(self.config, self._clock()):
            _log.info(f"bag {self._bag.path} complete ({len(self._bag.files)} files, "
                      f"{self._bag.bytes / 2**20:.1f} MB); the next episode starts a new bag")
            self._bag = None
        return path

    def _open_bag(self) -> _BagDirectory:
        root = Path(self.config.directory)
        root.mkdir(parents=True, exist_ok=True)
        if not os.access(root, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "directory is not writable", str(root))
        base = time.strftime("cde_%Y%m%dT%H%M%SZ", time.gmtime(self._wall_ns() / 1e9))
        index = 0
        while (root / f"{base}_{index}").exists():
            index += 1
        bag = _BagDirectory(root / f"{base}_{index}", self._writer_factory, self.config.fsync, self._clock())
        self._status.bags.append(str(bag.path))
        self._status.current_bag = str(bag.path)
        _log.info(f"recording episodes to {bag.path}")
        return bag

    def _fail(self, what: str, exc: BaseException) -> RecordingError:
        """Pause, forget the bag (the next try starts a new one) and describe the failure."""
        code = getattr(exc, "errno", None)
        path = Path(getattr(exc, "filename", None) or (self._bag.path if self._bag else self.config.directory))
        self._bag = None
        self._status.current_bag = ""
        hint = {errno.ENOSPC: "the disk is full: free space or set recording_dir to another disk",
                errno.EDQUOT: "the disk quota is exhausted: free space or set recording_dir to another disk",
                errno.EACCES: "no permission: make recording_dir writable or choose another",
                errno.EROFS: "the file system is read-only: set recording_dir to a writable disk",
                errno.ENOTDIR: "a path component is not a directory: fix recording_dir",
                errno.ENOENT: "the directory vanished: check recording_dir (unmounted disk?)",
                }.get(code or -1, "check recording_dir and the disk")
        if self.config.retry_s > 0:
            self._paused_until = self._clock() + self.config.retry_s
            then = f"recording paused; retrying in {self.config.retry_s:.0f} s in a new bag"
        else:
            self._paused_until = float("inf")
            then = "recording disabled (recording_retry_s is 0): reconfigure the node to resume"
        name = errno.errorcode.get(code, "") if code else ""
        message = (f"cannot record {what} under {path}: {exc}{f' ({name})' if name else ''}; {hint}; {then}. "
                   "Episodes already returned are safe in their bags.")
        self._status.last_error = message
        _log.error(message)
        return RecordingError(message, path, code)
