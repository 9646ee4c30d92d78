"""Fuzzing what a robot can send the node, at the level of the pure logic the callbacks call.

Every case must end in one of two ways: a valid result, or the module's own specific error type with
a message (ImageConversionError / CommandEventError, or a pairing outcome whose reason says what is
wrong). Any other exception is a crash of the node's worker and fails the test. Cases per test are set
by `max_examples` (README "Reliability" sums them); the DDS-level counterpart is
test_perception_node_ros.py::test_bad_images_and_commands_give_reasons_and_the_node_survives.
"""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cde_ros.command_events import CommandEventError, event_from_command
from cde_ros.command_pairing import Captured
from cde_ros.image_conversion import ENCODINGS, MAX_PIXELS, ImageConversionError, message_to_rgb

sensor_msgs = pytest.importorskip("sensor_msgs.msg")
S = 1_000_000_000
UINT32 = 2**32 - 1

encodings = st.sampled_from([*ENCODINGS, "yuv422", "bayer_rggb8", "RGB8", "", "rgb8\x00", "16UC3", "64FC1"])
dims = st.one_of(st.integers(0, 40), st.sampled_from([1, 2**16, 2**20, 2**31 - 1, UINT32]))


def _check_rgb(rgb: np.ndarray, width: int, height: int) -> None:
    assert rgb.dtype == np.uint8 and rgb.shape == (height, width, 3)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(width=dims, height=dims, encoding=encodings, step=st.one_of(st.integers(0, 200), st.just(UINT32)),
       bigendian=st.integers(0, 255), data=st.binary(max_size=4000))
def test_any_image_header_and_payload_converts_or_says_why(width: int, height: int, encoding: str, step: int,
                                                           bigendian: int, data: bytes) -> None:
    msg = sensor_msgs.Image(width=width, height=height, encoding=encoding, step=step, is_bigendian=bigendian,
                            data=data)
    try:
        rgb = message_to_rgb(msg)
    except ImageConversionError as exc:
        assert str(exc)  # a reason, never an empty message
        return
    _check_rgb(rgb, width, height)
    assert width * height <= MAX_PIXELS


@settings(max_examples=300, deadline=None)
@given(width=st.integers(1, 16), height=st.integers(1, 16), bigendian=st.booleans(),
       values=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=256, max_size=256))
def test_float_images_with_nan_and_inf_stay_in_range(width: int, height: int, bigendian: bool,
                                                     values: list[float]) -> None:
    floats = np.asarray(values[: width * height], dtype=">f4" if bigendian else "<f4").reshape(height, width)
    msg = sensor_msgs.Image(width=width, height=height, encoding="32FC1", step=width * 4, is_bigendian=bigendian,
                            data=floats.tobytes())
    rgb = message_to_rgb(msg)
    _check_rgb(rgb, width, height)
    finite = np.isfinite(floats.astype(np.float64))
    assert (rgb[~finite] == 0).all()  # NaN/inf never leak into the model as garbage intensities


def _encoded(fmt: str, width: int, height: int, seed: int) -> bytes:
    from PIL import Image

    rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format=fmt)
    return out.getvalue()


@settings(max_examples=300, deadline=None)
@given(fmt=st.sampled_from(["PNG", "JPEG", "PPM"]), width=st.integers(1, 24), height=st.integers(1, 24),
       seed=st.integers(0, 2**31 - 1), cut=st.floats(0.0, 1.0), flips=st.lists(st.integers(0, 10_000), max_size=4),
       label=st.sampled_from(["jpeg", "png", "rgb8; jpeg compressed bgr8", "", "tiff"]))
def test_truncated_or_corrupted_compressed_images_decode_or_say_why(fmt: str, width: int, height: int, seed: int,
                                                                    cut: float, flips: list[int], label: str) -> None:
    data = bytearray(_encoded(fmt, width, height, seed))
    data = data[: int(math.ceil(len(data) * cut))]
    for position in flips:
        if data:
            data[position % len(data)] ^= 0xFF
    msg = sensor_msgs.CompressedImage(format=label, data=bytes(data))
    try:
        rgb = message_to_rgb(msg)
    except ImageConversionError as exc:
        assert "compressed image" in str(exc)
        return
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=600), label=st.text(max_size=12))
def test_random_bytes_as_compressed_images(data: bytes, label: str) -> None:
    try:
        rgb = message_to_rgb(sensor_msgs.CompressedImage(format=label, data=data))
    except ImageConversionError as exc:
        assert str(exc)
        return
    assert rgb.dtype == np.uint8 and rgb.shape[2] == 3


IMAGE_MAGIC = [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"\xff\xd8\xff", b"\xff\xd8\xff\xc0\x00\x11\x08", b"P6\n",
               b"P5 ", b"P4\n", b"P3\n", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*", b"RIFF"]


@settings(max_examples=300, deadline=None)
@given(magic=st.sampled_from(IMAGE_MAGIC), body=st.binary(max_size=400), label=st.sampled_from(["png", "jpeg", ""]))
def test_random_bytes_behind_an_image_header_decode_or_say_why(magic: bytes, body: bytes, label: str) -> None:
    """Random bytes after a real format's magic reach its decoder's header parser (a malformed PPM header raised
    ValueError, a huge declared size PIL's DecompressionBombError): a result or our error, nothing else."""
    try:
        rgb = message_to_rgb(sensor_msgs.CompressedImage(format=label, data=magic + body))
    except ImageConversionError as exc:
        assert "compressed image" in str(exc)
        return
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.size <= 3 * MAX_PIXELS


@settings(max_examples=200, deadline=None)
@given(width=st.integers(0, 2**32 - 1), height=st.integers(0, 2**32 - 1), fmt=st.sampled_from(["PNG", "PPM", "JPEG"]))
def test_any_declared_size_is_refused_before_decoding_when_over_the_bound(width: int, height: int, fmt: str) -> None:
    """A header's declared size, however large, never reaches the decoder when over MAX_PIXELS."""
    import struct
    import zlib

    if fmt == "PNG":
        ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
        data = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))
    elif fmt == "PPM":
        data = f"P6\n{width} {height}\n255\n".encode() + b"\0" * 12
    else:
        width, height = width % 65536, height % 65536  # JPEG sizes are 16-bit
        data = b"\xff\xd8\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00\xff\xd9"
    try:
        rgb = message_to_rgb(sensor_msgs.CompressedImage(format=fmt.lower(), data=data))
    except ImageConversionError as exc:
        if width * height > MAX_PIXELS:
            assert "refused before decoding" in str(exc) and f"{width}x{height}" in str(exc)
        return
    assert width * height <= MAX_PIXELS and rgb.shape == (height, width, 3)


command_ids = st.sampled_from(["a", "b", "c", "", "a" * 300, "ü/ñ", "dup"])
actions = st.sampled_from(["open", "close", "none", "", "fly", "OPEN"])
stamps = st.sampled_from([0, -5, 1, 10 * S, 10 * S + 1, 9 * S, 2**62, 1_700_000_000 * S])  # sim vs wall clocks
command = st.tuples(command_ids, actions, st.integers(-3, 5), stamps)


@settings(max_examples=500, deadline=None)
@given(st.lists(command, max_size=30), st.booleans())
def test_any_command_sequence_is_answered_with_reasons(events: list[tuple[str, str, int, int]],
                                                       know_actions: bool) -> None:
    """Unknown actions, duplicate ids, FINISHED without STARTED, out-of-order / future / zero / negative stamps,
    sim-time vs wall-time stamps, through event_from_command and the node's pairing (as its worker does): each
    message becomes an event or a CommandEventError with a message; every id that was seen is answered exactly
    once, and never verified when its start came after its end or named an unknown action."""
    from cde_ros.command_pairing import CommandPairing, OutcomeKind, PairingLimits
    from cde_ros.frame_buffer import FrameBuffer

    frames = FrameBuffer(10**7, 10**9)
    for stamp in sorted({s for s in (1, 9 * S, 10 * S, 10 * S + 1, 11 * S, 2**62)}):
        frames.add(stamp, "frame", 1)
    pairing = CommandPairing(PairingLimits(settle_s=0.0, max_open_commands=4, max_before_frame_age_s=1e9), frames,
                             lambda frame, mask: Captured(frame.stamp_ns, None, 1),
                             known_actions=frozenset({"open", "close", "none"}) if know_actions else None)
    answers: dict[str, list] = {}
    seen: set[str] = set()
    for now, (command_id, action, phase, stamp) in enumerate(events):
        try:
            event = event_from_command(command_id, action, "drawer", phase, stamp)
            outcomes = pairing.on_event(event, float(now))
        except CommandEventError as exc:
            assert str(exc)
            if not command_id:
                continue  # no id: logged and dropped by the node, nothing to answer
            outcomes = pairing.on_invalid(command_id, action, str(exc), stamp)
        seen.add(command_id)
        for o in outcomes + pairing.poll(float(now)):
            if o.kind != OutcomeKind.NOTE:
                answers.setdefault(o.command_id, []).append(o)
        assert pairing.open_count <= 4
    for o in pairing.poll(10.0**6):
        answers.setdefault(o.command_id, []).append(o)
    assert set(answers) == seen and all(len(a) == 1 for a in answers.values())
    for (o,) in answers.values():
        if o.kind == OutcomeKind.READY:
            assert o.start is not None and o.end_event is not None and o.start.stamp_ns <= o.end_event.stamp_ns
            assert not know_actions or o.start.action in {"open", "close", "none"}
        else:
            assert o.reason
