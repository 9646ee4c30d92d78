"""EpisodeRecorder: real rclpy messages -> MCAP bags, read back by rosbags AND the independent `mcap`
ROS 2 decoder; compressed frames; splits; kill -9 safety; unwritable directory and disk full.

No DDS: the recorder is fed messages directly (the node's hook is one call per episode)."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from ruamel.yaml import YAML

from cde_ros.command_events import CommandEvent, Phase
from cde_ros.episode_labels import LabelHandler, LabelError, label_fields
from cde_ros.episode_recorder import (TOPICS, EpisodeRecorder, RecorderConfig, RecordingError, _default_writer,
                                      command_message)
from cde_ros.msg import ActionRecognition, EffectVerification, EpisodeLabel
from sensor_msgs.msg import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
S = 1_000_000_000


# ---------------------------------------------------------------- episode factory (also used by test_bag_import)
def frame(seed: int, stamp_ns: int, width: int = 40, height: int = 30, encoding: str = "rgb8",
          frame_id: str = "cam", smooth: bool = False) -> tuple[Image, np.ndarray]:
    """A random (or smooth: JPEG-friendly) rgb8/bgr8 Image with row padding (step > width*3) and the RGB
    pixels it shows."""
    if smooth:
        y, x = np.mgrid[0:height, 0:width]
        rgb = np.stack([x * 180 // width, y * 180 // height, np.full_like(x, 40 + seed * 37 % 180)], axis=2)
        rgb = rgb.astype(np.uint8)
    else:
        rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    pixels = rgb[:, :, ::-1] if encoding == "bgr8" else rgb
    step = width * 3 + 4
    rows = np.zeros((height, step), np.uint8)
    rows[:, :width * 3] = pixels.reshape(height, width * 3)
    msg = Image(width=width, height=height, encoding=encoding, step=step, data=rows.tobytes())
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, S)
    msg.header.frame_id = frame_id
    return msg, rgb


def mask(seed: int, header: Any, width: int = 40, height: int = 30,
         encoding: str = "mono8") -> tuple[Image, np.ndarray]:
    """A robot self-mask (255 = robot, plus a few odd values that must survive as recorded) with row
    padding (step > width), stamped like its frame, and the HxW values it holds."""
    values = np.where(np.random.default_rng(1000 + seed).random((height, width)) < 0.3, 255, 0).astype(np.uint8)
    values[0, :3] = (1, 128, 254)  # not a binary mask: "values as recorded", no thresholding on the way
    step = width + 3
    rows = np.full((height, step), 77, np.uint8)  # padding bytes that must not leak into the mask
    rows[:, :width] = values
    msg = Image(header=header, width=width, height=height, encoding=encoding, step=step, data=rows.tobytes())
    return msg, values


def episode(index: int, commanded: str = "open", recognised: str | None = "open", verdict: int = 0,
            obj: str = "drawer", size: tuple[int, int] = (40, 30), encoding: str = "rgb8",
            smooth: bool = False, masks: bool = False, mask_size: tuple[int, int] | None = None,
            mask_encoding: str = "mono8") -> dict[str, Any]:
    """Keyword arguments of record_episode for one episode, plus the RGB frames under '_rgb' (and with
    `masks`, the robot masks, of `mask_size` or the frames' size, and their values under '_mask')."""
    cid = f"cmd-{index:03d}"
    t0 = (100 + 10 * index) * S
    before, before_rgb = frame(2 * index, t0 - S // 10, *size, encoding=encoding, smooth=smooth)
    after, after_rgb = frame(2 * index + 1, t0 + 2 * S, *size, encoding=encoding, smooth=smooth)
    commands = [CommandEvent(cid, commanded, obj, Phase.STARTED, t0, "topic"),
                CommandEvent(cid, commanded, obj, Phase.FINISHED, t0 + S, "topic")]
    recognition = None
    if recognised is not None:
        recognition = ActionRecognition(command_id=cid, action=recognised, confidence=0.25 + 0.5 * (index % 2),
                                        class_names=["open", "close", "none"], scores=[0.5, 0.25, 0.25],
                                        effect_magnitude=1.5 + index, changed_patches=[3, 1, index],
                                        patch_grid_rows=4, patch_grid_cols=4)
        recognition.header = after.header
        recognition.before_stamp, recognition.after_stamp = before.header.stamp, after.header.stamp
    verification = EffectVerification(command_id=cid, commanded_action=commanded, observed_action=recognised or "",
                                      verdict=verdict, verdict_name=["succeeded", "failed", "no_effect",
                                                                     "uncertain"][verdict],
                                      confidence=0.75, reason=f"reason {index}")
    verification.header = after.header
    ep = dict(command_id=cid, before=before, after=after, commands=commands, recognition=recognition,
              verification=verification, _rgb={"before": before_rgb, "after": after_rgb})
    if masks:
        ep["_mask"] = {}
        for role, image in (("before", before), ("after", after)):
            ep[f"{role}_mask"], ep["_mask"][role] = mask(2 * index + (role == "after"), image.header,
                                                         *(mask_size or size), encoding=mask_encoding)
    return ep


def record(recorder: EpisodeRecorder, ep: dict[str, Any]) -> Path | None:
    return recorder.record_episode(**{k: v for k, v in ep.items() if not k.startswith("_")})


def label(command_id: str, true_action: str, effect_happened: bool = True, obj: str = "",
          annotator: str = "op") -> EpisodeLabel:
    msg = EpisodeLabel(command_id=command_id, true_action=true_action, object=obj, effect_happened=effect_happened,
                       annotator=annotator, note="checked on camera")
    msg.header.stamp.sec = 5000
    return msg


def bags_under(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob("*/metadata.yaml"))


def read_rosbags(bags: list[Path]) -> list[tuple[str, int, Any]]:
    """(topic, log time, deserialised message) for every message, read by rosbags' AnyReader."""
    from rosbags.highlevel import AnyReader

    with AnyReader(bags) as reader:
        return [(c.topic, t, reader.deserialize(raw, c.msgtype)) for c, t, raw in reader.messages()]


def listed_files(bag: Path) -> list[Path]:
    info = YAML(typ="safe").load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    return [bag / name for name in info["relative_file_paths"]]


def read_mcap(bags: list[Path]) -> list[tuple[str, Any]]:
    """(topic, decoded message) for every message, read by the independent `mcap` package's ROS 2 decoder
    from each file the bags list (it uses only the schemas stored in the files)."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    out = []
    for bag in bags:
        for path in listed_files(bag):
            with path.open("rb") as handle:
                reader = make_reader(handle, decoder_factories=[DecoderFactory()])
                out += [(channel.topic, msg) for _, channel, _, msg in reader.iter_decoded_messages()]
    return out


def image_rgb(msg: Any) -> np.ndarray:
    """Pixels of a decoded Image (rgb8 with row padding) for comparison."""
    data = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)[:, :msg.width * 3]
    return data.reshape(msg.height, msg.width, 3)


def by_command(messages: list[tuple], topic: str) -> dict[str, Any]:
    return {m.command_id: m for t, *rest in messages for m in [rest[-1]] if t == topic}


@pytest.fixture
def config(tmp_path: Path) -> RecorderConfig:
    return RecorderConfig(str(tmp_path / "rec"))


# ---------------------------------------------------------------- round trip
def test_raw_episodes_read_back_by_rosbags_and_mcap(config: RecorderConfig) -> None:
    episodes = [episode(i, recognised=["open", "close", None][i], verdict=[0, 1, 3][i]) for i in range(3)]
    with EpisodeRecorder(config) as recorder:
        files = [record(recorder, ep) for ep in episodes]
        recorder.record_label(label("cmd-001", "close", effect_happened=False))
    assert all(f is not None and f.is_file() for f in files)
    bags = bags_under(Path(config.directory))
    assert len(bags) == 1 and listed_files(bags[0]) == files + [listed_files(bags[0])[-1]]

    for name, messages in (("rosbags", [(t, m) for t, _, m in read_rosbags(bags)]), ("mcap", read_mcap(bags))):
        frames = {t: [m for topic, m in messages if topic == t] for t in (TOPICS["before"], TOPICS["after"])}
        recognitions = by_command(messages, TOPICS["recognition"])
        verifications = by_command(messages, TOPICS["verification"])
        commands = [m for t, m in messages if t == TOPICS["command"]]
        labels = by_command(messages, TOPICS["label"])
        assert len(frames[TOPICS["before"]]) == len(frames[TOPICS["after"]]) == 3, name
        for i, ep in enumerate(episodes):
            for role, topic in (("before", TOPICS["before"]), ("after", TOPICS["after"])):
                msg = frames[topic][i]
                assert msg.header.frame_id == "cam" and msg.encoding == "rgb8", name
                assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (ep[role].header.stamp.sec,
                                                                            ep[role].header.stamp.nanosec)
                np.testing.assert_array_equal(image_rgb(msg), ep["_rgb"][role], err_msg=name)
            ver = verifications[ep["command_id"]]
            assert (ver.verdict, ver.verdict_name, ver.commanded_action, ver.reason) == (
                ep["verification"].verdict, ep["verification"].verdict_name, "open", f"reason {i}"), name
            assert ver.confidence == pytest.approx(0.75)
            if ep["recognition"] is None:
                assert ep["command_id"] not in recognitions, name
            else:
                rec = recognitions[ep["command_id"]]
                assert rec.action == ep["recognition"].action and list(rec.class_names) == ["open", "close", "none"]
                np.testing.assert_allclose(list(rec.scores), [0.5, 0.25, 0.25])
                assert list(rec.changed_patches) == [3, 1, i] and rec.patch_grid_rows == 4
                assert rec.effect_magnitude == pytest.approx(1.5 + i)
                assert rec.before_stamp.sec == ep["before"].header.stamp.sec
        phases = sorted((c.command_id, c.phase, c.action, c.object) for c in commands)
        assert phases == sorted((f"cmd-{i:03d}", p, "open", "drawer") for i in range(3) for p in (0, 1)), name
        assert set(labels) == {"cmd-001"} and labels["cmd-001"].true_action == "close"
        assert labels["cmd-001"].effect_happened is False and labels["cmd-001"].annotator == "op"


@pytest.mark.parametrize("fmt", ["raw", "jpeg"])
def test_masks_are_recorded_raw_and_read_back(tmp_path: Path, fmt: str) -> None:
    episodes = [episode(i, masks=True, smooth=True) for i in range(2)] + [episode(2)]  # the last one unmasked
    with EpisodeRecorder(RecorderConfig(str(tmp_path), image_format=fmt)) as recorder:
        for ep in episodes:
            record(recorder, ep)
    bags = bags_under(tmp_path)
    info = YAML(typ="safe").load((bags[0] / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    types = {t["topic_metadata"]["name"]: t["topic_metadata"]["type"] for t in info["topics_with_message_count"]}
    counts = {t["topic_metadata"]["name"]: t["message_count"] for t in info["topics_with_message_count"]}
    assert info["custom_data"]["cde.layout"] == "cde-episodes/1"  # an addition: the layout is unchanged
    for role in ("before_mask", "after_mask"):
        assert TOPICS[role] == f"/cde/episode/{role}"
        assert types[TOPICS[role]] == "sensor_msgs/msg/Image" and counts[TOPICS[role]] == 2
        assert TOPICS[role] + "/compressed" not in types  # never re-encoded, even in jpeg mode
    frame_topic = TOPICS["before"] + ("/compressed" if fmt == "jpeg" else "")
    assert counts[frame_topic] == 3
    for name, messages in (("rosbags", [(t, m) for t, _, m in read_rosbags(bags)]), ("mcap", read_mcap(bags))):
        for role in ("before", "after"):
            masks = [m for t, m in messages if t == TOPICS[f"{role}_mask"]]
            assert len(masks) == 2, name
            for msg, ep in zip(masks, episodes):
                assert (msg.encoding, msg.width, msg.height, msg.step) == ("mono8", 40, 30, 43), name
                assert msg.header.frame_id == "cam"
                assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (ep[role].header.stamp.sec,
                                                                            ep[role].header.stamp.nanosec)
                data = np.frombuffer(bytes(msg.data), np.uint8).reshape(30, 43)
                np.testing.assert_array_equal(data[:, :40], ep["_mask"][role], err_msg=name)
                assert (data[:, 40:] == 77).all()  # the message as received, padding included


def test_a_compressed_mask_is_refused(config: RecorderConfig) -> None:
    from sensor_msgs.msg import CompressedImage

    ep = episode(0)
    ep["before_mask"] = CompressedImage(header=ep["before"].header, format="png", data=b"\x89PNG")
    ep["after_mask"] = ep["before_mask"]
    with EpisodeRecorder(config) as recorder, pytest.raises(TypeError, match="before_mask must be a raw"):
        record(recorder, ep)
    assert not bags_under(Path(config.directory))  # nothing half-written


def test_recording_session_passes_the_masks_through(tmp_path: Path) -> None:
    from cde_ros.recording_session import RecordingSession

    ep = episode(0, masks=True)
    session = RecordingSession(RecorderConfig(str(tmp_path)))
    try:
        path = session.record_episode(**{k: v for k, v in ep.items() if not k.startswith("_")})
    finally:
        session.close()
    assert path is not None and path.is_file()
    messages = read_rosbags(bags_under(tmp_path))
    for role in ("before", "after"):
        (msg,) = [m for t, _, m in messages if t == TOPICS[f"{role}_mask"]]
        data = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)[:, :msg.width]
        np.testing.assert_array_equal(data, ep["_mask"][role])


def test_metadata_counts_and_type_hashes_match_rosidl(config: RecorderConfig) -> None:
    with EpisodeRecorder(config) as recorder:
        for i in range(2):
            record(recorder, episode(i))
    bag = bags_under(Path(config.directory))[0]
    info = YAML(typ="safe").load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    messages = read_rosbags([bag])
    assert info["message_count"] == len(messages) == 2 * 6
    counts = {t["topic_metadata"]["name"]: t["message_count"] for t in info["topics_with_message_count"]}
    assert counts == {TOPICS["command"]: 4, TOPICS["before"]: 2, TOPICS["after"]: 2, TOPICS["recognition"]: 2,
                      TOPICS["verification"]: 2}
    assert info["custom_data"]["cde.layout"] == "cde-episodes/1"
    # the hashes rosidl generated at build time (share/cde_ros/msg/*.json) = those stored in the bag
    share = Path(os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)[0]) / "share/cde_ros/msg"
    if not (share / "ActionRecognition.json").is_file():
        pytest.skip("rosidl type descriptions not installed")
    for topic in info["topics_with_message_count"]:
        meta = topic["topic_metadata"]
        if meta["type"].startswith("cde_ros/"):
            generated = json.loads((share / f"{meta['type'].rsplit('/', 1)[1]}.json").read_text())
            assert meta["type_description_hash"] == generated["type_hashes"][0]["hash_string"]


def test_command_event_from_an_action_server_keeps_its_source() -> None:
    msg = command_message(CommandEvent("g1", "close", "door", Phase.ABORTED, 7 * S + 5, "/arm/close"))
    assert (msg.command_id, msg.action, msg.object, msg.phase) == ("g1", "close", "door", 2)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (7, 5, "/arm/close")


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_compressed_mode_reencodes_frames(tmp_path: Path, fmt: str) -> None:
    from PIL import Image as PILImage

    ep = episode(0, size=(64, 48), encoding="bgr8", smooth=True)
    with EpisodeRecorder(RecorderConfig(str(tmp_path), image_format=fmt, jpeg_quality=95)) as recorder:
        record(recorder, ep)
    bags = bags_under(tmp_path)
    for name, messages in (("rosbags", [(t, m) for t, _, m in read_rosbags(bags)]), ("mcap", read_mcap(bags))):
        assert not [t for t, _ in messages if t in (TOPICS["before"], TOPICS["after"])], "raw frames recorded"
        for role in ("before", "after"):
            (msg,) = [m for t, m in messages if t == TOPICS[role] + "/compressed"]
            assert msg.format == f"bgr8; {fmt} compressed bgr8", name
            assert msg.header.frame_id == "cam" and msg.header.stamp.sec == ep[role].header.stamp.sec
            with PILImage.open(__import__("io").BytesIO(bytes(msg.data))) as img:
                assert img.format == fmt.upper()
                decoded = np.asarray(img.convert("RGB")).astype(int)
            expected = ep["_rgb"][role].astype(int)
            error = np.abs(decoded - expected)
            if fmt == "png":
                assert error.max() == 0, name  # lossless, and the bgr8 channel order was undone
            else:
                assert error.mean() < 3, name
                assert np.abs(decoded - expected[:, :, ::-1]).mean() > 20  # (channel order matters here)


def test_split_by_size_starts_new_bags_and_loses_nothing(tmp_path: Path) -> None:
    # one episode ~ 2 frames of 64x48x3 ~ 19 KB: a 0.03 MB limit closes a bag every second episode
    with EpisodeRecorder(RecorderConfig(str(tmp_path), max_bag_size_mb=0.03)) as recorder:
        for i in range(5):
            record(recorder, episode(i, size=(64, 48)))
    bags = bags_under(tmp_path)
    assert len(bags) == 3
    assert [len(listed_files(b)) for b in bags] == [2, 2, 1]
    for bag in bags:  # each bag is complete on its own
        assert len(read_rosbags([bag])) == 6 * len(listed_files(bag))
    ids = sorted(m.command_id for t, _, m in read_rosbags(bags) if t == TOPICS["verification"])
    assert ids == [f"cmd-{i:03d}" for i in range(5)]


def test_split_by_duration_uses_the_injected_clock(tmp_path: Path) -> None:
    now = [1000.0]
    recorder = EpisodeRecorder(RecorderConfig(str(tmp_path), max_bag_duration_s=60.0), clock=lambda: now[0])
    record(recorder, episode(0))
    now[0] += 30.0
    record(recorder, episode(1))
    now[0] += 31.0  # the bag is now 61 s old: it is closed after this episode
    record(recorder, episode(2))
    record(recorder, episode(3))
    recorder.close()
    assert [len(listed_files(b)) for b in bags_under(tmp_path)] == [3, 1]


def test_concurrent_callers_are_serialised(config: RecorderConfig) -> None:
    recorder = EpisodeRecorder(config)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(offset, 24, 4):
                record(recorder, episode(i))
                recorder.record_label(label(f"cmd-{i:03d}", "open"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    recorder.close()
    assert not errors
    messages = read_rosbags(bags_under(Path(config.directory)))
    assert sorted(m.command_id for t, _, m in messages if t == TOPICS["verification"]) == [
        f"cmd-{i:03d}" for i in range(24)]
    assert len([1 for t, _, _ in messages if t == TOPICS["label"]]) == 24
    status = recorder.status()
    assert (status.episodes_recorded, status.labels_recorded, status.closed) == (24, 24, True)


def test_closed_recorder_refuses_and_close_is_idempotent(config: RecorderConfig) -> None:
    recorder = EpisodeRecorder(config)
    record(recorder, episode(0))
    recorder.close()
    recorder.close()
    with pytest.raises(RecordingError, match="closed"):
        record(recorder, episode(1))


def test_invalid_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="image_format"):
        RecorderConfig("/tmp/x", image_format="tiff")
    with pytest.raises(ValueError, match="empty"):
        RecorderConfig("")
    params = {"recording_dir": "~/bags", "recording_image_format": "jpeg", "recording_jpeg_quality": 80,
              "recording_max_bag_size_mb": 10.0, "recording_max_bag_duration_s": 0.0, "recording_retry_s": 5.0}
    cfg = RecorderConfig.from_parameters(params.__getitem__)
    assert cfg.directory == os.path.expanduser("~/bags") and cfg.image_format == "jpeg" and cfg.retry_s == 5.0


# ---------------------------------------------------------------- kill -9
CHILD = r"""
import sys, time
sys.path.insert(0, {test_dir!r})
from pathlib import Path
from test_episode_recorder import episode, record, label
from cde_ros.episode_recorder import EpisodeRecorder, RecorderConfig, _default_writer

stall_at = {stall_at}
count = [0]

def writer(path):
    w = _default_writer(path)
    if count[0] == stall_at:  # the messages are written, the file is not closed yet: die here
        real_close = w.close
        def stalled_close():
            print("stalled", flush=True)
            time.sleep(600)
        w.close = stalled_close
    return w

recorder = EpisodeRecorder(RecorderConfig({directory!r}, max_bag_size_mb=0.05), writer_factory=writer)
i = 0
while True:
    path = record(recorder, episode(i, size=(64, 48)))
    count[0] += 1
    print("done", f"cmd-{{i:03d}}", flush=True)
    i += 1
"""


def kill_9_recorder_child(script: str, stop: Callable[[list[str], list[str]], bool]) -> tuple[list[str], str]:
    """Run a recording child (`python -c script`, which prints `done <id>` per finished episode and may print
    `stalled <id>`), read its lines until `stop(words, done)`, then SIGKILL it. Returns (done ids, stalled id)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(REPO_ROOT), env.get("PYTHONPATH", "")] if p)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env)
    done: list[str] = []
    stalled = ""
    try:
        assert child.stdout is not None
        for line in child.stdout:  # no deadline here: pytest-timeout guards a child that hangs
            words = line.split()
            if words[:1] == ["done"]:
                done.append(words[1])
            if words[:1] == ["stalled"]:
                stalled = " ".join(words[1:])  # the file it stalled in, where the child says
            if stop(words, done):
                break
        else:
            pytest.fail(f"child ended early: {child.wait()} {child.stderr.read() if child.stderr else ''}")
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    return done, stalled


@pytest.mark.parametrize("stall", [True, False], ids=["killed-inside-a-write", "killed-anywhere"])
def test_kill_9_keeps_every_completed_episode(tmp_path: Path, stall: bool) -> None:
    from cde_core.data.bag_import import find_bags

    directory = tmp_path / "rec"
    n_done = 7
    script = CHILD.format(test_dir=str(Path(__file__).parent), directory=str(directory),
                          stall_at=n_done if stall else -1)
    done, _ = kill_9_recorder_child(script, lambda words, done: (words[:1] == ["stalled"]) if stall
                                    else len(done) >= n_done)
    assert len(done) >= n_done
    bags = bags_under(directory)
    assert len(bags) >= 2  # size splits happened before the kill
    # the .partial leftovers are not taken for bags (a kill between a new bag's first file and its first
    # metadata write can leave one more, metadata-less bag, which the import recovers)
    found = find_bags([directory])
    assert set(bags) <= set(found) and not any(part.startswith(".") for b in found for part in b.parts[-2:])
    if stall:
        assert list(directory.rglob(".*.partial")), "the kill should have left an unfinished write behind"
    for name, messages in (("rosbags", [(t, m) for t, _, m in read_rosbags(bags)]), ("mcap", read_mcap(bags))):
        recorded = {m.command_id for t, m in messages if t == TOPICS["verification"]}
        assert set(done) <= recorded, name
        for i, cid in enumerate(sorted(recorded)):
            before = [m for t, m in messages if t == TOPICS["before"] and m.header.stamp.sec == 100 + 10 * i - 1]
            assert before, f"{name}: {cid} lost its before frame"
            np.testing.assert_array_equal(image_rgb(before[0]), episode(i, size=(64, 48))["_rgb"]["before"])
    if stall:
        assert recorded == set(done)  # the stalled episode never completed and is not half-visible


# ---------------------------------------------------------------- errors: unwritable directory, disk full
def test_unwritable_directory_raises_pauses_and_retries(tmp_path: Path) -> None:
    """A real kernel error (ENOTDIR: a file where the directory should be). EACCES from a read-only
    directory takes the same OSError path but cannot be provoked here: CI runs as root, which ignores
    permission bits, and the venv's interpreter lives under /root, out of reach of an unprivileged user."""
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the recording directory should be")
    now = [0.0]
    recorder = EpisodeRecorder(RecorderConfig(str(blocker / "rec"), retry_s=30.0), clock=lambda: now[0])
    with pytest.raises(RecordingError) as info:
        record(recorder, episode(0))
    assert info.value.errno == errno.ENOTDIR and "recording_dir" in str(info.value) and "retrying" in str(info.value)
    assert record(recorder, episode(1)) is None  # paused: no exception storm, the node carries on
    assert recorder.record_label(label("cmd-000", "open")) is None  # kept in memory meanwhile
    status = recorder.status()
    assert status.episodes_dropped == 1 and status.labels_waiting == 1 and status.paused_for_s == 30.0
    assert "ENOTDIR" in status.diagnostic_values()["recording_error"]
    blocker.unlink()  # the operator fixes the directory; after retry_s recording resumes
    now[0] += 31.0
    assert record(recorder, episode(2)) is not None
    recorder.close()
    messages = read_rosbags(bags_under(blocker / "rec"))
    assert {m.command_id for t, _, m in messages if t == TOPICS["verification"]} == {"cmd-002"}
    assert [m.command_id for t, _, m in messages if t == TOPICS["label"]] == ["cmd-000"]


class _FullDisk:
    """A file object that takes `budget` bytes, then fails like a full disk (ENOSPC). A tiny tmpfs would
    be the real thing, but mounting needs privileges CI does not have; this fails inside rosbags' own
    MCAP writer at the same call (file.write) the kernel's error would surface in."""

    def __init__(self, real: Any, budget: int) -> None:
        self._real, self._budget = real, budget

    def write(self, data: Any) -> int:
        if self._budget - len(data) < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._budget -= len(data)
        return self._real.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_disk_full_raises_keeps_earlier_episodes_and_recovers(config: RecorderConfig) -> None:
    full = [False]

    def writer(path: Path) -> Any:
        w = _default_writer(path)
        real_open = w.open

        def open_() -> None:
            real_open()
            if full[0]:
                w.storage.bio = _FullDisk(w.storage.bio, budget=1000)
        w.open = open_
        return w

    now = [0.0]
    recorder = EpisodeRecorder(config, writer_factory=writer, clock=lambda: now[0])
    for i in range(2):
        record(recorder, episode(i))
    full[0] = True
    with pytest.raises(RecordingError) as info:
        record(recorder, episode(2))
    assert info.value.errno == errno.ENOSPC and "disk is full" in str(info.value)
    assert record(recorder, episode(3)) is None
    first_bag = bags_under(Path(config.directory))[0]
    assert len(listed_files(first_bag)) == 2 and not list(first_bag.glob(".*.partial"))  # no half file kept
    full[0] = False
    now[0] += config.retry_s
    assert record(recorder, episode(4)) is not None
    recorder.close()
    messages = read_rosbags(bags_under(Path(config.directory)))
    assert sorted(m.command_id for t, _, m in messages if t == TOPICS["verification"]) == [
        "cmd-000", "cmd-001", "cmd-004"]
    assert len(bags_under(Path(config.directory))) == 2  # recording resumed in a new bag
    assert recorder.status().episodes_dropped == 1


def test_retry_zero_disables_recording(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    recorder = EpisodeRecorder(RecorderConfig(str(blocker / "rec"), retry_s=0.0))
    with pytest.raises(RecordingError, match="disabled"):
        record(recorder, episode(0))
    blocker.unlink()
    assert record(recorder, episode(1)) is None
    assert recorder.status().paused_for_s == float("inf")


# ---------------------------------------------------------------- labels (pure)
def test_label_fields_validate() -> None:
    fields = label_fields(label(" cmd-1 ", "close", effect_happened=False, obj="door"))
    assert (fields.command_id, fields.true_action, fields.object, fields.effect_happened) == (
        "cmd-1", "close", "door", False)
    assert fields.stamp_ns == 5000 * S
    with pytest.raises(LabelError, match="command_id"):
        label_fields(label("", "open"))
    with pytest.raises(LabelError, match="whitespace"):
        label_fields(label("c", "open drawer"))


def test_label_handler_records_valid_labels_only(config: RecorderConfig) -> None:
    recorder = EpisodeRecorder(config)
    handler = LabelHandler(recorder.record_label, known_actions=lambda: ["open", "close"])
    assert handler.on_label(label("cmd-1", "open"))
    assert handler.on_label(label("cmd-1", "slide"))  # not a model class: stored, with a warning
    assert not handler.on_label(label("", "open"))
    recorder.close()
    assert not handler.on_label(label("cmd-2", "open"))  # the recorder refuses: counted, no exception
    stats = handler.stats
    assert (stats.received, stats.recorded, stats.rejected, stats.failed) == (4, 2, 1, 1)
    messages = read_rosbags(bags_under(Path(config.directory)))
    assert [m.true_action for t, _, m in messages if t == TOPICS["label"]] == ["open", "slide"]
