"""Contact sheet of a demo run: every command's before/after frames, large enough to read, with its text.

The node's overlay is sized for a live 96 px stream; a person reviewing a run needs every command on one
page, frames scaled up (nearest neighbour, so pixels stay honest), the robot mask tinted, the changed
patches boxed and the full command ids and reasons readable: wrapped by pixel width, never cut. Pure
numpy + Pillow, so it renders (and is tested) without ROS.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Font = Union[ImageFont.FreeTypeFont, ImageFont.ImageFont]
Colour = tuple[int, int, int]

FRAME_PX = 288          # longest side of a scaled frame: 96 px x 3, exact nearest-neighbour
TEXT_WIDTH = 400        # text panel beside the frames
FONT_SIZE = 16
MAX_WIDTH = 2400        # the sheet wraps panels into as many columns as fit
PAD = 10
GAP = 8
BORDER = 4              # panel border in the verdict's colour, so right/wrong is seen at a glance
MASK_TINT: Colour = (40, 110, 255)
MASK_ALPHA = 0.4
BOX_AFTER: Colour = (255, 30, 30)
BOX_BEFORE: Colour = (255, 150, 150)
BOX_AFTER_WIDTH = 3
BOX_BEFORE_WIDTH = 1
RIGHT: Colour = (20, 140, 40)
WRONG: Colour = (210, 30, 30)
UNKNOWN: Colour = (125, 125, 125)
INK: Colour = (25, 25, 25)
MUTED: Colour = (95, 95, 95)
PANEL_BG: Colour = (255, 255, 255)
SHEET_BG: Colour = (225, 225, 225)
FRAME_BG: Colour = (0, 0, 0)


class ContactSheetError(ValueError):
    """A row cannot be drawn (frame not HxWx3 uint8, mask of another size, bad grid); the message says which."""


@dataclass
class SheetRow:
    """One command as the sheet shows it; everything but the id and the frames may be missing."""

    command_id: str
    before_rgb: np.ndarray
    after_rgb: np.ndarray
    before_mask: Optional[np.ndarray] = None   # HxW bool/uint8, nonzero = robot pixels
    after_mask: Optional[np.ndarray] = None
    grid: Optional[tuple[int, int]] = None     # the model's (rows, cols) patch grid
    changed_patches: Sequence[int] = field(default_factory=tuple)  # row-major indices on `grid`
    commanded_action: Optional[str] = None
    recognised_action: Optional[str] = None
    recognised_confidence: Optional[float] = None
    verdict: Optional[str] = None
    reason: Optional[str] = None
    true_action: Optional[str] = None
    verdict_correct: Optional[bool] = None     # was the verdict right given the ground truth
    effect_magnitude: Optional[float] = None

    def __post_init__(self) -> None:
        validate_row(self)


def _where(row: SheetRow, index: Optional[int]) -> str:
    return f"row {index} ({row.command_id!r})" if index is not None else f"row {row.command_id!r}"


def _check_frame(name: str, image: object, where: str) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 \
            or 0 in image.shape[:2]:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ContactSheetError(f"{where}: {name} must be a non-empty HxWx3 uint8 array, got {shape} {dtype}")


def _check_mask(name: str, mask: object, frame: np.ndarray, where: str) -> None:
    if mask is None:
        return
    if not isinstance(mask, np.ndarray) or mask.ndim != 2 or mask.dtype not in (np.bool_, np.uint8):
        shape = getattr(mask, "shape", None)
        dtype = getattr(mask, "dtype", type(mask).__name__)
        raise ContactSheetError(f"{where}: {name} must be an HxW bool or uint8 array, got {shape} {dtype}")
    if mask.shape != frame.shape[:2]:
        raise ContactSheetError(f"{where}: {name} is {mask.shape[0]}x{mask.shape[1]} but its frame is "
                                f"{frame.shape[0]}x{frame.shape[1]}")


def _check_grid(grid: object, where: str) -> None:
    if grid is None:
        return
    try:
        rows, cols = (int(g) for g in grid)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ContactSheetError(f"{where}: grid must be (rows, cols), got {grid!r}") from None
    if rows <= 0 or cols <= 0:
        raise ContactSheetError(f"{where}: grid must be positive, got {grid!r}")


def validate_row(row: SheetRow, index: Optional[int] = None) -> None:
    """Raise ContactSheetError naming the field when `row` cannot be drawn."""
    where = _where(row, index)
    _check_frame("before_rgb", row.before_rgb, where)
    _check_frame("after_rgb", row.after_rgb, where)
    _check_mask("before_mask", row.before_mask, row.before_rgb, where)
    _check_mask("after_mask", row.after_mask, row.after_rgb, where)
    _check_grid(row.grid, where)


def load_font(size: int = FONT_SIZE) -> Font:
    """Pillow's bundled font at `size` (Pillow >= 10.1 with FreeType); else the fixed bitmap default."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: no size argument
        return ImageFont.load_default()


_MEASURE = ImageDraw.Draw(Image.new("RGB", (1, 1)))


def text_width(text: str, font: Font) -> float:
    """Rendered width of `text` in pixels."""
    return float(_MEASURE.textlength(text, font=font))


def line_height(font: Font) -> int:
    """Pixel height of one line of `font` plus a little leading."""
    top, bottom = _MEASURE.textbbox((0, 0), "Ag|/_", font=font)[1::2]
    return int(bottom - min(top, 0)) + 4


_BREAK_AFTER = "/_-:.,;"


def _split_long_word(word: str, width: float, font: Font, prefix: str = "") -> list[str]:
    """Cut a word wider than `width` into pieces that fit (the first after `prefix`, the start of the
    current line), preferring to cut after '/', '_', '-', ... when that does not waste most of the line."""
    pieces: list[str] = []
    rest = word
    while rest:
        if text_width(prefix + rest, font) <= width:
            pieces.append(rest)
            break
        fit = 0
        while fit < len(rest) and text_width(prefix + rest[:fit + 1], font) <= width:
            fit += 1
        if fit == 0 and prefix:  # nothing fits on the current line: start a fresh one
            pieces.append("")
            prefix = ""
            continue
        fit = max(fit, 1)  # at least one character, so a too-narrow width cannot loop forever
        cut = max((i + 1 for i in range(fit) if rest[i] in _BREAK_AFTER), default=0)
        if cut < max(1, fit // 4):
            cut = fit
        pieces.append(rest[:cut])
        rest, prefix = rest[cut:], ""
    return pieces


def wrap_text(text: str, width: float, font: Optional[Font] = None) -> list[str]:
    """`text` as lines that each render within `width` pixels; nothing is dropped: words are kept whole
    where they fit, longer ones (ids, paths) are cut, and the pieces joined give the text back (runs of
    whitespace read as one space)."""
    font = font if font is not None else load_font()
    lines: list[str] = []
    for paragraph in str(text).split("\n"):
        current = ""
        for word in paragraph.split():
            candidate = f"{current} {word}" if current else word
            if text_width(candidate, font) <= width:
                current = candidate
                continue
            if text_width(word, font) <= width:
                lines.append(current)
                current = word
                continue
            prefix = f"{current} " if current else ""
            first, *more = _split_long_word(word, width, font, prefix)
            if first:
                current = prefix + first
            if more:
                if current:
                    lines.append(current)
                *whole, current = more
                lines.extend(whole)
        lines.append(current)
    return lines


def scaled_size(height: int, width: int, frame_px: int = FRAME_PX) -> tuple[int, int]:
    """(H, W) of a frame scaled so its longest side is `frame_px`, aspect kept."""
    scale = frame_px / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def patch_rect(index: int, grid: tuple[int, int], height: int, width: int) -> tuple[int, int, int, int]:
    """Inclusive integer pixel box (x0, y0, x1, y1) of row-major patch `index` on a (rows, cols) grid over an
    HxW (scaled) frame; neighbouring boxes share no pixel."""
    rows, cols = int(grid[0]), int(grid[1])
    r, c = divmod(int(index), cols)
    return (round(c * width / cols), round(r * height / rows),
            round((c + 1) * width / cols) - 1, round((r + 1) * height / rows) - 1)


def render_frame(rgb: np.ndarray, mask: Optional[np.ndarray] = None, grid: Optional[tuple[int, int]] = None,
                 patches: Sequence[int] = (), strong: bool = True, frame_px: int = FRAME_PX) -> np.ndarray:
    """One frame scaled up (nearest neighbour), the mask tinted, the patches boxed (`strong`: the after
    frame's bold red; else the before frame's thin pale one). Indices outside the grid are skipped."""
    _check_frame("frame", rgb, "render_frame")
    _check_mask("mask", mask, rgb, "render_frame")
    _check_grid(grid, "render_frame")
    h, w = scaled_size(rgb.shape[0], rgb.shape[1], frame_px)
    image = Image.fromarray(rgb).resize((w, h), Image.Resampling.NEAREST)
    if mask is not None:
        scaled_mask = np.asarray(Image.fromarray((mask != 0).astype(np.uint8) * 255)
                                 .resize((w, h), Image.Resampling.NEAREST)) > 0
        pixels = np.asarray(image).astype(np.float32)
        tint = np.asarray(MASK_TINT, np.float32)
        pixels[scaled_mask] = (1 - MASK_ALPHA) * pixels[scaled_mask] + MASK_ALPHA * tint
        image = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
    if grid is not None and patches:
        draw = ImageDraw.Draw(image)
        colour, line = (BOX_AFTER, BOX_AFTER_WIDTH) if strong else (BOX_BEFORE, BOX_BEFORE_WIDTH)
        for index in patches:
            if 0 <= int(index) < int(grid[0]) * int(grid[1]):
                draw.rectangle(patch_rect(int(index), grid, h, w), outline=colour, width=line)
    return np.asarray(image)


def verdict_colour(row: SheetRow) -> Colour:
    """Green when the verdict was right, red when wrong, grey when nobody knows."""
    return UNKNOWN if row.verdict_correct is None else (RIGHT if row.verdict_correct else WRONG)


def _dash(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def row_fields(row: SheetRow, number: int = 1) -> list[tuple[str, Colour]]:
    """The text panel's fields (the row's `number` and command id first), each with its colour; a missing
    value reads '-'."""
    recognised = _dash(row.recognised_action)
    if row.recognised_action and row.recognised_confidence is not None:
        recognised += f" ({row.recognised_confidence:.2f})"
    correct = {None: "not checked", True: "correct", False: "WRONG"}[row.verdict_correct]
    verdict = f"{row.verdict.upper() if row.verdict else '-'}  [{correct}]"
    patches = ", ".join(str(int(p)) for p in row.changed_patches) or "-"
    if row.grid is not None:
        rows, cols = int(row.grid[0]), int(row.grid[1])
        outside = [int(p) for p in row.changed_patches if not 0 <= int(p) < rows * cols]
        patches += f" on {rows}x{cols}" + (f" ({len(outside)} outside the grid)" if outside else "")
    magnitude = "-" if row.effect_magnitude is None else f"{row.effect_magnitude:.3f}"
    return [
        (f"#{number}  {row.command_id}", INK),
        (f"commanded: {_dash(row.commanded_action)}", INK),
        (f"recognised: {recognised}", INK),
        (f"verdict: {verdict}", verdict_colour(row)),
        (f"true action: {_dash(row.true_action)}", INK),
        (f"effect magnitude: {magnitude}", INK),
        (f"changed patches: {patches}", MUTED),
        (f"reason: {_dash(row.reason)}", MUTED),
    ]


def render_panel(row: SheetRow, number: int, font: Optional[Font] = None, frame_px: int = FRAME_PX,
                 text_width_px: int = TEXT_WIDTH) -> Image.Image:
    """One command: 'before' | 'after' (labelled, scaled, tinted, boxed) and the wrapped text beside them,
    inside a border in the verdict's colour."""
    font = font if font is not None else load_font()
    lh = line_height(font)
    before = render_frame(row.before_rgb, row.before_mask, row.grid, row.changed_patches, False, frame_px)
    after = render_frame(row.after_rgb, row.after_mask, row.grid, row.changed_patches, True, frame_px)
    lines: list[tuple[str, Colour]] = []
    for text, colour in row_fields(row, number):
        lines.extend((line, colour) for line in wrap_text(text, text_width_px, font))
    inner = BORDER + PAD
    frames_h = lh + frame_px
    text_h = lh * len(lines)
    width = 2 * inner + 2 * frame_px + GAP + 2 * GAP + text_width_px
    height = 2 * inner + max(frames_h, text_h)
    panel = Image.new("RGB", (width, height), PANEL_BG)
    draw = ImageDraw.Draw(panel)
    draw.rectangle([0, 0, width - 1, height - 1], outline=verdict_colour(row), width=BORDER)
    for k, (label, frame) in enumerate((("before", before), ("after", after))):
        x = inner + k * (frame_px + GAP)
        draw.text((x, inner), label, fill=INK, font=font)
        box = Image.new("RGB", (frame_px, frame_px), FRAME_BG)
        box.paste(Image.fromarray(frame), ((frame_px - frame.shape[1]) // 2, (frame_px - frame.shape[0]) // 2))
        panel.paste(box, (x, inner + lh))
    x, y = inner + 2 * frame_px + 3 * GAP, inner
    for text, colour in lines:
        draw.text((x, y), text, fill=colour, font=font)
        y += lh
    return panel


def render_contact_sheet(rows: Sequence[SheetRow], title: Optional[str] = None, columns: Optional[int] = None,
                         max_width: int = MAX_WIDTH, frame_px: int = FRAME_PX,
                         font_size: int = FONT_SIZE) -> np.ndarray:
    """-> HxWx3 uint8: a header (title, counts right/wrong/unknown) and every row as a panel, in reading
    order, in as many columns as fit `max_width` (or `columns`)."""
    for index, row in enumerate(rows):
        validate_row(row, index)
    font = load_font(font_size)
    lh = line_height(font)
    panels = [render_panel(row, i + 1, font, frame_px) for i, row in enumerate(rows)]
    panel_w = max((p.width for p in panels), default=2 * frame_px + TEXT_WIDTH)
    fit = max(1, (max_width - PAD) // (panel_w + PAD))
    cols = max(1, min(columns if columns is not None else fit, max(1, len(panels))))
    sheet_w = PAD + cols * (panel_w + PAD)
    right = sum(r.verdict_correct is True for r in rows)
    wrong = sum(r.verdict_correct is False for r in rows)
    counts = f"{len(rows)} commands: {right} right, {wrong} wrong, {len(rows) - right - wrong} unknown"
    header = [line for text in ([title] if title else []) + [counts] for line in wrap_text(text, sheet_w - 2 * PAD, font)]
    grid_rows = [panels[i:i + cols] for i in range(0, len(panels), cols)]
    heights = [max(p.height for p in band) for band in grid_rows]
    top = PAD + lh * len(header) + PAD
    sheet = Image.new("RGB", (sheet_w, top + sum(h + PAD for h in heights)), SHEET_BG)
    draw = ImageDraw.Draw(sheet)
    for k, line in enumerate(header):
        draw.text((PAD, PAD + k * lh), line, fill=INK, font=font)
    y = top
    for band, band_h in zip(grid_rows, heights):
        for c, panel in enumerate(band):
            sheet.paste(panel, (PAD + c * (panel_w + PAD), y))
        y += band_h + PAD
    return np.asarray(sheet)


def save_contact_sheet(rows: Sequence[SheetRow], path: Union[str, Path], title: Optional[str] = None) -> Path:
    """Render `rows` and write the sheet as a PNG at `path` (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(render_contact_sheet(rows, title)).save(path, format="PNG")
    return path
