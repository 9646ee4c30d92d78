"""The demo's contact sheet: every command drawn, frames scaled, mask tinted, the right patch boxed, text
wrapped by pixel width and never cut, bad rows refused with a message naming the problem."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cde_ros.demo.contact_sheet import (FRAME_PX, MASK_TINT, MAX_WIDTH, RIGHT, UNKNOWN, WRONG, ContactSheetError,
                                        SheetRow, load_font, patch_rect, render_contact_sheet, render_frame,
                                        render_panel, row_fields, save_contact_sheet, text_width, wrap_text)

LONG_ID = "/sim_arm/open/3f2a9c0d5e6b47a18c2d9e0f1a2b3c4d"
LONG_REASON = ("the recognised action's confidence 0.31 is under the uncertainty threshold 0.50 and the effect "
               "magnitude 0.09 sits between the no-effect and the effect thresholds, so no verdict is given")


def _solid(colour: tuple[int, int, int], size: int = 96) -> np.ndarray:
    return np.broadcast_to(np.asarray(colour, np.uint8), (size, size, 3)).copy()


def _row(i: int = 0, **fields) -> SheetRow:
    base = dict(command_id=f"/sim_arm/open/{i:032x}", before_rgb=_solid((128, 128, 128)),
                after_rgb=_solid((128, 128, 128)), grid=(6, 6), changed_patches=[7],
                commanded_action="open", recognised_action="open", recognised_confidence=0.9,
                verdict="succeeded", reason="ok", true_action="open", verdict_correct=True, effect_magnitude=0.4)
    base.update(fields)
    return SheetRow(**base)


def _colour_count(image: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int(np.all(image == np.asarray(colour, np.uint8), axis=-1).sum())


def test_every_row_is_on_the_sheet_and_it_grows_with_the_rows() -> None:
    # each row's after frame in its own colour (no patches, no mask): every colour must be there, full size
    colours = [(3 + 5 * i, 250 - 5 * i, 17 + (i % 7)) for i in range(48)]
    rows = [_row(i, after_rgb=_solid(c), changed_patches=[]) for i, c in enumerate(colours)]
    one = render_contact_sheet(rows[:1])
    many = render_contact_sheet(rows)
    assert one.dtype == np.uint8 and one.ndim == 3 and one.shape[2] == 3
    assert many.shape[0] > 4 * one.shape[0]
    assert many.shape[1] <= MAX_WIDTH and many.shape[0] < 12000  # columns of panels, not one long strip
    for c in colours:
        assert _colour_count(many, c) >= FRAME_PX * FRAME_PX, c
    assert _colour_count(one, colours[1]) == 0


def test_frames_are_scaled_up_nearest_neighbour() -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    out = render_frame(frame)
    assert out.shape == (FRAME_PX, FRAME_PX, 3) and FRAME_PX >= 256
    k = FRAME_PX // 96
    np.testing.assert_array_equal(out, np.repeat(np.repeat(frame, k, 0), k, 1))
    assert render_frame(rng.integers(0, 256, (48, 96, 3), dtype=np.uint8)).shape == (FRAME_PX // 2, FRAME_PX, 3)


def test_long_id_and_reason_are_wrapped_not_cut() -> None:
    font = load_font()
    width = 180
    for text in (LONG_ID, LONG_REASON, f"#12 {LONG_ID}", f"reason: {LONG_REASON} {LONG_ID}"):
        lines = wrap_text(text, width, font)
        assert len(lines) >= 2, text
        assert all(text_width(line, font) <= width for line in lines), lines
        assert "".join(lines).replace(" ", "") == text.replace(" ", "")  # every character, in order
    id_lines = wrap_text(LONG_ID, width, font)
    assert "".join(id_lines) == LONG_ID
    assert id_lines[0] == "/sim_arm/open/"  # cut after the separator, not in the middle of "open"
    assert wrap_text("a b", 1, font) == ["a", "b"]  # narrower than a letter: one per line, no endless loop


def test_the_panel_holds_the_whole_text() -> None:
    font = load_font()
    short = render_panel(_row(), 1, font)
    long = render_panel(_row(command_id=LONG_ID * 3, reason=LONG_REASON * 4), 1, font)
    assert long.height > short.height and long.width == short.width
    fields = dict(line.split(": ", 1) for line, _ in row_fields(_row(reason=LONG_REASON))[1:])
    assert fields["reason"] == LONG_REASON and fields["recognised"] == "open (0.90)"


def test_mask_tint_changes_exactly_the_masked_pixels() -> None:
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 200, (96, 96, 3), dtype=np.uint8)
    mask = np.zeros((96, 96), bool)
    mask[20:50, 30:70] = True
    mask[80, 5] = True
    plain, tinted = render_frame(frame), render_frame(frame, mask)
    k = FRAME_PX // 96
    scaled = np.repeat(np.repeat(mask, k, 0), k, 1)
    changed = np.any(plain != tinted, axis=-1)
    np.testing.assert_array_equal(changed, scaled)
    # towards the tint colour (blue), and the same for a 0/255 uint8 mask
    assert (tinted[scaled][:, 2].astype(int) >= plain[scaled][:, 2]).all()
    np.testing.assert_array_equal(render_frame(frame, mask.astype(np.uint8) * 255), tinted)
    assert MASK_TINT[2] > MASK_TINT[0]


@pytest.mark.parametrize("strong", [True, False])
def test_the_box_is_on_the_right_patch(strong: bool) -> None:
    frame = _solid((128, 128, 128))
    grid, k = (6, 6), 14  # row 2, col 2
    plain = render_frame(frame, grid=grid)
    boxed = render_frame(frame, grid=grid, patches=[k], strong=strong)
    x0, y0, x1, y1 = patch_rect(k, grid, FRAME_PX, FRAME_PX)
    assert (x0, y0, x1, y1) == (96, 96, 143, 143)
    changed = np.any(plain != boxed, axis=-1)
    ys, xs = np.nonzero(changed)
    assert ys.min() == y0 and ys.max() == y1 and xs.min() == x0 and xs.max() == x1
    border = np.zeros_like(changed)
    border[y0:y1 + 1, x0:x1 + 1] = True
    border[y0 + 1:y1, x0 + 1:x1] = False  # the one-pixel outer ring of the box
    assert changed[border].all()
    assert not changed[y0 + 4:y1 - 3, x0 + 4:x1 - 3].any()  # inside the box untouched
    outside = np.ones_like(changed)
    outside[y0:y1 + 1, x0:x1 + 1] = False
    assert not changed[outside].any()


def test_the_after_box_is_bolder_and_out_of_grid_patches_are_skipped() -> None:
    frame = _solid((128, 128, 128))
    plain = render_frame(frame, grid=(6, 6))
    after = np.any(render_frame(frame, grid=(6, 6), patches=[14], strong=True) != plain, axis=-1).sum()
    before = np.any(render_frame(frame, grid=(6, 6), patches=[14], strong=False) != plain, axis=-1).sum()
    assert after > before > 0
    np.testing.assert_array_equal(render_frame(frame, grid=(6, 6), patches=[36, -1]), plain)
    texts = [t for t, _ in row_fields(_row(changed_patches=[3, 99]))]
    assert "changed patches: 3, 99 on 6x6 (1 outside the grid)" in texts  # said on the sheet, not hidden


def test_verdict_colour_follows_whether_it_was_right() -> None:
    def verdict_line(**kw) -> tuple[str, tuple[int, int, int]]:
        return next(f for f in row_fields(_row(**kw)) if f[0].startswith("verdict:"))

    assert verdict_line(verdict_correct=True)[1] == RIGHT
    assert verdict_line(verdict_correct=False) == ("verdict: SUCCEEDED  [WRONG]", WRONG)
    assert verdict_line(verdict_correct=None)[1] == UNKNOWN
    panel_right = np.asarray(render_panel(_row(verdict_correct=True), 1))
    panel_wrong = np.asarray(render_panel(_row(verdict_correct=False), 1))
    assert _colour_count(panel_right, RIGHT) > 0 and _colour_count(panel_right, WRONG) == 0
    assert _colour_count(panel_wrong, WRONG) > 0 and _colour_count(panel_wrong, RIGHT) == 0


def test_missing_optional_fields_do_not_crash(tmp_path: Path) -> None:
    bare = SheetRow(command_id="bare", before_rgb=_solid((10, 20, 30), 32),
                    after_rgb=np.zeros((20, 40, 3), np.uint8))
    fields = [text for text, _ in row_fields(bare)]
    assert "recognised: -" in fields and "reason: -" in fields and "effect magnitude: -" in fields
    assert "changed patches: -" in fields and any(f.startswith("verdict: -") for f in fields)
    uncertain = _row(recognised_action=None, recognised_confidence=None, verdict="uncertain",
                     verdict_correct=None, effect_magnitude=None, reason=LONG_REASON, grid=None)
    sheet = render_contact_sheet([bare, uncertain], title="t")
    assert sheet.shape[0] > FRAME_PX
    assert render_contact_sheet([]).shape[2] == 3  # an empty run still gives an image
    path = save_contact_sheet([bare, uncertain], tmp_path / "sub" / "sheet.png", title="t")
    np.testing.assert_array_equal(np.asarray(Image.open(path).convert("RGB")), sheet)


@pytest.mark.parametrize("change, message", [
    (dict(before_rgb=np.zeros((96, 96), np.uint8)), "before_rgb must be a non-empty HxWx3 uint8"),
    (dict(after_rgb=np.zeros((96, 96, 3), np.float32)), "after_rgb must be a non-empty HxWx3 uint8"),
    (dict(after_rgb=np.zeros((96, 96, 4), np.uint8)), "after_rgb must be a non-empty HxWx3 uint8"),
    (dict(before_mask=np.zeros((64, 64), bool)), "before_mask is 64x64 but its frame is 96x96"),
    (dict(after_mask=np.zeros((96, 96), np.float32)), "after_mask must be an HxW bool or uint8"),
    (dict(grid=(0, 6)), "grid must be positive"),
    (dict(grid=(6,)), r"grid must be \(rows, cols\)"),
])
def test_bad_inputs_raise_naming_the_problem(change: dict, message: str) -> None:
    with pytest.raises(ContactSheetError, match=message) as info:
        _row(**change)
    assert isinstance(info.value, ValueError)
    row = _row()
    for key, value in change.items():
        setattr(row, key, value)  # changed after construction: the sheet checks again, naming the row
    with pytest.raises(ValueError, match=rf"row 1 .*{message}"):
        render_contact_sheet([_row(), row])
    with pytest.raises(ValueError, match="frame must be"):
        render_frame(np.zeros((4, 4, 3), np.int64))
