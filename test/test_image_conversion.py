"""Image conversion from sensor_msgs fields: every encoding, row padding, endianness, bad input."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from array import array
from types import SimpleNamespace

from cde_ros.image_conversion import (ENCODINGS, MAX_PIXELS, ImageConversionError, compressed_to_rgb,
                                      declared_size, image_to_rgb, _ros2_cv_bridge, message_to_rgb,
                                      rgb_to_image_fields)

RGB_ORDER = {"rgb8": [0, 1, 2], "bgr8": [2, 1, 0], "rgba8": [0, 1, 2, 3], "bgra8": [2, 1, 0, 3]}


def _pack(rgb: np.ndarray, encoding: str, padding: int) -> tuple[bytes, int]:
    """Lay out an RGB(A) image as `encoding` rows with `padding` extra bytes per row."""
    height, width = rgb.shape[:2]
    if encoding in ("rgba8", "bgra8"):
        rgb = np.concatenate([rgb, np.full((height, width, 1), 255, np.uint8)], axis=2)
        pixels = rgb[:, :, [0, 1, 2, 3] if encoding == "rgba8" else [2, 1, 0, 3]]
    else:
        pixels = rgb[:, :, RGB_ORDER[encoding]]
    rows = pixels.reshape(height, -1)
    padded = np.concatenate([rows, np.full((height, padding), 7, np.uint8)], axis=1)
    return padded.tobytes(), padded.shape[1]


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 24), st.integers(1, 24), st.sampled_from(["rgb8", "bgr8", "rgba8", "bgra8"]),
       st.integers(0, 9), st.integers(0, 2**31 - 1))
def test_colour_round_trip(width: int, height: int, encoding: str, padding: int, seed: int) -> None:
    rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    data, step = _pack(rgb, encoding, padding)
    np.testing.assert_array_equal(image_to_rgb(width, height, encoding, step, False, data), rgb)


@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
def test_16bit_endianness_and_step(encoding: str, bigendian: bool) -> None:
    values = np.array([[0, 1000, 65535], [256, 512, 30000]], dtype=np.uint16)
    data = values.astype(">u2" if bigendian else "<u2").tobytes()
    padded = b"".join(data[r * 6:(r + 1) * 6] + b"\0\0" for r in range(2))
    out = image_to_rgb(3, 2, encoding, 8, bigendian, padded)
    assert out.shape == (2, 3, 3) and np.all(out[..., 0] == out[..., 1])
    if encoding == "mono16":
        np.testing.assert_array_equal(out[..., 0], values >> 8)
    else:  # depth: min-max scaled
        assert out[0, 0, 0] == 0 and out[0, 2, 0] == 255


def test_float_depth_with_nan_and_inf() -> None:
    values = np.array([[np.nan, 1.0, 2.0], [np.inf, 3.0, -np.inf]], dtype=np.float32)
    out = image_to_rgb(3, 2, "32FC1", 12, False, values.tobytes())
    assert out[0, 0, 0] == 0 and out[1, 0, 0] == 0 and out[0, 1, 0] == 0 and out[1, 1, 0] == 255
    all_nan = np.full((2, 2), np.nan, np.float32)
    assert image_to_rgb(2, 2, "32FC1", 8, False, all_nan.tobytes()).max() == 0


def test_mono8() -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = image_to_rgb(4, 3, "mono8", 4, False, gray.tobytes())
    np.testing.assert_array_equal(out[..., 2], gray)


@pytest.mark.parametrize("args, match", [
    ((4, 3, "yuv422", 8, False, b"\0" * 24), "unsupported encoding"),
    ((4, 3, "rgb8", 11, False, b"\0" * 36), "step 11 <"),
    ((4, 3, "rgb8", 12, False, b"\0" * 30), "bytes"),
    ((0, 3, "rgb8", 0, False, b""), "no pixels"),
    ((100_000, 100_000, "rgb8", 300_000, False, b""), "exceeds"),
])
def test_bad_images_raise_specific_errors(args: tuple, match: str) -> None:
    with pytest.raises(ImageConversionError, match=match):
        image_to_rgb(*args)


def test_compressed_png_and_jpeg_and_garbage() -> None:
    from PIL import Image

    rgb = np.random.default_rng(0).integers(0, 256, (8, 10, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    np.testing.assert_array_equal(compressed_to_rgb("png", buf.getvalue()), rgb)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG")
    assert compressed_to_rgb("jpeg", buf.getvalue()).shape == (8, 10, 3)
    with pytest.raises(ImageConversionError, match="does not decode"):
        compressed_to_rgb("jpeg", b"\xff\xd8 not really a jpeg")
    with pytest.raises(ImageConversionError, match="no data"):
        compressed_to_rgb("jpeg", b"")


def test_every_listed_encoding_converts() -> None:
    for encoding, (channels, kind, _) in ENCODINGS.items():
        itemsize = np.dtype(kind).itemsize
        out = image_to_rgb(2, 2, encoding, 2 * channels * itemsize, False, b"\x01" * (4 * channels * itemsize))
        assert out.shape == (2, 2, 3) and out.dtype == np.uint8, encoding


def _padded_rows(values: np.ndarray, padding: int) -> tuple[bytes, int]:
    rows = values.view(np.uint8).reshape(values.shape[0], -1)
    padded = np.concatenate([rows, np.full((values.shape[0], padding), 0xAB, np.uint8)], axis=1)
    return padded.tobytes(), padded.shape[1]


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 20), st.integers(1, 20), st.sampled_from(["mono8", "8UC1", "mono16", "16UC1"]),
       st.booleans(), st.integers(0, 7), st.integers(0, 2**31 - 1))
def test_single_channel_round_trip(width: int, height: int, encoding: str, bigendian: bool, padding: int,
                                   seed: int) -> None:
    """Random sizes, row padding and byte order: the grey level is what the encoding promises, in all three
    channels (8-bit as is, mono16 its top byte, 16UC1 min-max scaled)."""
    rng = np.random.default_rng(seed)
    wide = encoding in ("mono16", "16UC1")
    values = rng.integers(0, 65536 if wide else 256, (height, width)).astype(
        (">u2" if bigendian else "<u2") if wide else "u1")
    data, step = _padded_rows(values, padding)
    out = image_to_rgb(width, height, encoding, step, bigendian, data)
    native = values.astype(np.int64)
    if encoding == "mono16":
        expected = native >> 8
    elif encoding == "16UC1":
        lo, hi = native.min(), native.max()
        expected = np.zeros_like(native) if hi == lo else ((native - lo) / (hi - lo) * 255.0).astype(np.int64)
    else:
        expected = native
    assert out.shape == (height, width, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 0], expected)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.booleans(), st.integers(0, 2), st.integers(0, 2**31 - 1))
def test_float_depth_round_trip(width: int, height: int, bigendian: bool, pad_floats: int, seed: int) -> None:
    """32FC1 with NaN/inf sprinkled in: finite values keep their order, non-finite become 0, never a crash."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(-5, 50, (height, width)).astype(">f4" if bigendian else "<f4")
    values[rng.random((height, width)) < 0.2] = np.nan
    values[rng.random((height, width)) < 0.1] = np.inf
    data, step = _padded_rows(values, pad_floats * 4)
    grey = image_to_rgb(width, height, "32FC1", step, bigendian, data)[..., 0].astype(int)
    finite = np.isfinite(values)
    assert (grey[~finite] == 0).all()
    if finite.sum() > 1:
        order = np.argsort(values[finite].astype(float), kind="stable")
        assert (np.diff(grey[finite][order]) >= 0).all()  # monotone in depth


def test_message_to_rgb_dispatches_on_message_fields() -> None:
    """Image-like and CompressedImage-like objects (the fields rclpy messages have, array.array data)."""
    from PIL import Image

    rgb = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    fields = rgb_to_image_fields(rgb)
    fields["data"] = array("B", fields["data"])
    np.testing.assert_array_equal(message_to_rgb(SimpleNamespace(**fields)), rgb)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    np.testing.assert_array_equal(message_to_rgb(SimpleNamespace(format="png", data=array("B", buf.getvalue()))),
                                  rgb)
    if _ros2_cv_bridge() is None:  # without a ROS 2 cv_bridge, encodings outside our table are refused
        with pytest.raises(ImageConversionError, match="unsupported encoding 'bayer_rggb8'"):
            message_to_rgb(SimpleNamespace(**dict(fields, encoding="bayer_rggb8")))


def test_conversion_error_is_a_value_error() -> None:
    assert issubclass(ImageConversionError, ValueError)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A valid PNG stream whose IHDR declares width x height rgb8 while carrying a few bytes of pixels: what a
    decompression bomb looks like to the header reader (issue 13's attack frame)."""
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _png_chunk(b"IEND", b""))


def bomb_jpeg(width: int = 60000, height: int = 60000) -> bytes:
    """SOI, a baseline frame header declaring width x height, EOI."""
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + sof + b"\xff\xd9"


MALFORMED_PPM = {  # PIL raised ValueError (not OSError) for each of these before issue 13's fix
    "maxval 0": b"P6\n4 4\n0\n" + b"\0" * 48,
    "maxval over 16 bits": b"P6\n4 4\n70000\n" + b"\0" * 96,
    "non-numeric size": b"P6 x y 255\n" + b"\0" * 48,
}


@pytest.mark.parametrize("data, declared", [(bomb_png(), "PNG header declares 20000x20000"),
                                            (bomb_jpeg(), "JPEG header declares 60000x60000"),
                                            (b"P6\n30000 30000\n255\n" + b"\0" * 16, "PPM header declares 30000x30000")])
def test_decompression_bomb_is_refused_before_decoding_with_size_and_limit(data: bytes, declared: str) -> None:
    """PIL raised its own DecompressionBombError (not an OSError) for the 20000x20000 PNG: it escaped the node."""
    with pytest.raises(ImageConversionError, match=declared) as info:
        compressed_to_rgb("png", data)
    assert f"limit of {MAX_PIXELS} pixels" in str(info.value) and "refused before decoding" in str(info.value)


def test_bomb_in_a_format_without_our_header_reader_still_becomes_our_error() -> None:
    """A GIF declaring 65535x65535 trips PIL's own bomb check inside Image.open; that is ours too."""
    gif = b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00" + b",\0\0\0\0" + struct.pack(
        "<HH", 65535, 65535) + b"\x00\x02\x02\x44\x01\x00;"
    with pytest.raises(ImageConversionError, match=f"65535|{MAX_PIXELS}"):
        compressed_to_rgb("gif", gif)


@pytest.mark.parametrize("case", sorted(MALFORMED_PPM))
def test_malformed_ppm_header_becomes_our_error(case: str) -> None:
    with pytest.raises(ImageConversionError, match=r"compressed image \(ppm\) does not decode: ValueError"):
        compressed_to_rgb("ppm", MALFORMED_PPM[case])


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "PPM"])
def test_declared_size_reads_real_headers(fmt: str) -> None:
    from PIL import Image

    rgb = np.random.default_rng(3).integers(0, 256, (13, 29, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt)
    assert declared_size(buf.getvalue()) == (fmt, 29, 13)
    assert compressed_to_rgb(fmt.lower(), buf.getvalue()).shape == (13, 29, 3)


def test_declared_size_ignores_what_it_cannot_read() -> None:
    assert declared_size(b"") is None and declared_size(b"GIF89a") is None
    assert declared_size(b"P6\n# a comment 9 9\n7 5\n255\n") == ("PPM", 7, 5)
    assert declared_size(b"P6\n-4 4\n") is None and declared_size(b"\xff\xd8\xff\xda\x00\x02") is None
