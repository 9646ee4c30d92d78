"""The debug overlay: frames side by side, Top-K patches boxed where the grid says, verdict written."""
from __future__ import annotations

import numpy as np
import pytest

from cde_ros.overlay import TEXT_BAND, OverlayError, patch_box, render_overlay


def _red(out: np.ndarray) -> np.ndarray:
    return (out[..., 0] > 200) & (out[..., 1] < 100) & (out[..., 2] < 100)


def test_patch_five_is_boxed_in_both_halves() -> None:
    frame = np.zeros((32, 32, 3), np.uint8)
    out = render_overlay(frame, frame, (4, 4), [5], "open -> open SUCCEEDED", verdict="succeeded")
    assert out.shape == (32 + TEXT_BAND, 64, 3) and out.dtype == np.uint8
    ys, xs = np.nonzero(_red(out[:32]))
    # patch 5 = row 1, col 1 of a 4x4 grid: pixels 8..15 in each half
    assert set(ys.tolist()) <= set(range(8, 16))
    assert set(xs.tolist()) <= set(range(8, 16)) | set(range(40, 48))
    assert ((xs >= 8) & (xs < 16)).any() and ((xs >= 40) & (xs < 48)).any()
    assert out[32:].max() > 0  # text drawn


def test_grid_is_row_major_and_scaled_to_non_square_frames() -> None:
    before, after = np.zeros((20, 40, 3), np.uint8), np.zeros((20, 40, 3), np.uint8)
    out = render_overlay(before, after, (2, 4), [6], "x")  # row 1, col 2 on a 2x4 grid of 10x10 cells
    ys, xs = np.nonzero(_red(out[:20, :40]))
    assert ys.min() == 10 and ys.max() == 19 and xs.min() == 20 and xs.max() == 29
    assert patch_box(6, (2, 4), 20, 40) == (20.0, 10.0, 29.0, 19.0)


def test_frames_are_kept_and_different_sizes_fit() -> None:
    rng = np.random.default_rng(0)
    before = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    after = rng.integers(0, 256, (16, 8, 3), dtype=np.uint8)
    out = render_overlay(before, after, (2, 2), [], "nothing")
    assert out.shape == (16 + TEXT_BAND, 20, 3)
    np.testing.assert_array_equal(out[:10, :12], before)
    np.testing.assert_array_equal(out[:16, 12:20], after)


def test_out_of_grid_indices_are_skipped_and_bad_inputs_raise() -> None:
    frame = np.zeros((16, 16, 3), np.uint8)
    out = render_overlay(frame, frame, (2, 2), [4, 99, -1], "x")
    assert not _red(out[:16]).any()
    with pytest.raises(OverlayError, match="HxWx3 uint8"):
        render_overlay(np.zeros((16, 16), np.uint8), frame, (2, 2), [0], "x")
    with pytest.raises(OverlayError, match="grid must be positive"):
        render_overlay(frame, frame, (0, 2), [0], "x")


def test_verdict_colours_the_text() -> None:
    frame = np.zeros((16, 16, 3), np.uint8)
    failed = render_overlay(frame, frame, (2, 2), [], "FAILED", verdict="failed")[16:]
    succeeded = render_overlay(frame, frame, (2, 2), [], "FAILED", verdict="succeeded")[16:]
    assert failed[..., 0].max() > failed[..., 1].max() and succeeded[..., 1].max() > succeeded[..., 0].max()
