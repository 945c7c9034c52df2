"""The OCR engine of the FuzzyOCR twin: binarise, find lines and glyphs, recognise.

Twins what gocr/ocrad did for FuzzyOCR (FACTS.md "FuzzyOCR": "OCR (gocr, ocrad;
several passes)"), written in numpy so that it really reads the text of an
image and the work it counts (pixels examined, glyphs recognised) is the work
a real OCR pass had to do:

1. A *scanset* turns the image into a binary text mask. ``scansets`` yields
   them in FuzzyOCR's spirit: Otsu on luminance with the text on the side away
   from the border colour, the opposite polarity, then "decolorize" layers,
   one per dominant colour of a median-cut quantisation (text drawn in one
   colour over a busy picture, as in the obfuscated sample).
2. ``read_mask`` removes isolated pixels and thick blobs (filled shapes are
   not strokes), finds text lines by row projection and glyphs by column
   projection inside each line (an i-dot stays with its stem), splits glyph
   runs that are too wide for one character at their thinnest column.
3. Every glyph is normalised to a 10 x 10 grid of ink coverage (area sums of
   an integral image, all glyphs at once) plus its aspect ratio, its height
   relative to the line and its vertical position; nearest-template matching
   in a PCA space against templates rendered from the fonts Pillow can load
   offline: the default font (Aileron, scalable) and DejaVu when the system
   has it. Glyphs far from every template are rejected (no letter).

Each glyph's label is already normalised the FuzzyOCR way (``words.py``):
letters lower case, ``!;|081`` as ``iiioal``, other symbols dropped.

Raises nothing for odd images; ``read_mask`` on an empty mask reads no lines.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

GRID = 10
"""Glyphs are normalised to GRID x GRID cells of ink coverage."""

MIN_GLYPH_HEIGHT_PX = 5
MAX_LINE_HEIGHT_PX = 90
"""Lines outside 5..90 px are not text (too small to read, or a picture)."""

RULE_LENGTH_PX = 120
"""Horizontal ink runs longer than this are rules or underlines, not glyphs."""

THICK_RADIUS_PX = 5
"""A pixel whose whole 11 x 11 square is ink lies inside a filled shape."""

REJECT_DISTANCE = 3.5
"""Glyphs farther than this from every template (feature units) are noise."""

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"),)
TEMPLATE_FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSansCondensed.ttf",
    "DejaVuSansCondensed-Bold.ttf",
)
TEMPLATE_SIZES_PX = (10, 11, 12, 13, 15, 18, 23, 30)
TEMPLATE_FONT_MODES = ("1", "L")
"""Rendered without antialiasing (as Windows drew GIF text) and with it."""
TEMPLATE_SPACING_PX = 1.5
"""Templates of one label closer than this in PCA space are kept once."""
CHARSET = string.ascii_letters + string.digits + "$.,:;!?%-/&'\"*+@"

_NORMALISED = {"!": "i", ";": "i", "|": "i", "0": "o", "8": "a", "1": "l"}

_ASPECT_WEIGHT = 2.0
_HEIGHT_WEIGHT = 2.0
_CENTRE_WEIGHT = 2.0
_SIZE_WEIGHT = 0.8
_PCA_DIMENSIONS = 36


def normalised_label(char: str) -> str:
    """FuzzyOCR's normalisation of one recognised character ('' when dropped)."""
    if char.isascii() and char.isalpha():
        return char.lower()
    return _NORMALISED.get(char, "")


@dataclass(frozen=True, slots=True)
class Reading:
    """What one OCR pass read: normalised text lines and the work it did."""

    lines: tuple[str, ...]
    pixels: int
    glyphs: int


def otsu_threshold(gray: np.ndarray) -> int:
    """Otsu's threshold of an 8-bit image: pixels > threshold are the bright class."""
    hist = np.bincount(gray.ravel(), minlength=256).astype(np.float64)
    total = hist.sum()
    if total == 0:
        return 127
    levels = np.arange(256, dtype=np.float64)
    weight_dark = np.cumsum(hist)
    mass_dark = np.cumsum(hist * levels)
    weight_bright = total - weight_dark
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_dark = mass_dark / weight_dark
        mean_bright = (mass_dark[-1] - mass_dark) / weight_bright
        between = weight_dark * weight_bright * (mean_dark - mean_bright) ** 2
    between = np.nan_to_num(between, nan=-1.0)
    return int(np.argmax(between[:255]))


def _integral(mask: np.ndarray) -> np.ndarray:
    table = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.int32)
    np.cumsum(mask, axis=0, dtype=np.int32, out=table[1:, 1:])
    np.cumsum(table[1:, 1:], axis=1, out=table[1:, 1:])
    return table


def _window_all(mask: np.ndarray, length: int, axis: int) -> np.ndarray:
    """Starts of the windows of ``length`` pixels along ``axis`` that are all ink."""
    size = mask.shape[axis]
    if size < length:
        shape = list(mask.shape)
        shape[axis] = 0
        return np.zeros(shape, dtype=bool)
    count = np.zeros(
        (size + 1, mask.shape[1]) if axis == 0 else (mask.shape[0], size + 1),
        dtype=np.int32,
    )
    if axis == 0:
        np.cumsum(mask, axis=0, out=count[1:])
        return (count[length:] - count[:-length]) == length
    np.cumsum(mask, axis=1, out=count[:, 1:])
    return (count[:, length:] - count[:, :-length]) == length


def _cover(starts: np.ndarray, length: int, axis: int) -> np.ndarray:
    """Pixels covered by windows of ``length`` beginning at ``starts`` (dilation)."""
    if axis == 1:
        return _cover(starts.T, length, 0).T
    windows = starts.shape[0]
    size = windows + length - 1
    count = np.zeros((size + 1, starts.shape[1]), dtype=np.int32)
    np.cumsum(starts, axis=0, out=count[1 : windows + 1])
    count[windows + 1 :] = count[windows]
    index = np.arange(size)
    low = np.maximum(index + 1 - length, 0)
    return (count[index + 1] - count[low]) > 0


def _long_runs(mask: np.ndarray, length: int, axis: int) -> np.ndarray:
    """Pixels in runs of ink longer than ``length`` along ``axis``."""
    found = np.zeros_like(mask)
    lines = np.flatnonzero(mask.sum(axis=axis) > length)
    if len(lines) == 0:
        return found
    part = mask[:, lines] if axis == 0 else mask[lines, :]
    starts = _window_all(part, length + 1, axis)
    if not starts.any():
        return found
    covered = _cover(starts, length + 1, axis)
    if axis == 0:
        found[:, lines] = covered
    else:
        found[lines, :] = covered
    return found


def _has_neighbour(mask: np.ndarray) -> np.ndarray:
    """Ink pixels with at least one ink pixel among their 8 neighbours."""
    padded = np.pad(mask, 1)
    rows, cols = mask.shape
    near = np.zeros_like(mask)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if dy != 1 or dx != 1:
                near |= padded[dy : dy + rows, dx : dx + cols]
    return mask & near


def _thick(mask: np.ndarray) -> np.ndarray:
    """Pixels of filled shapes: within reach of a fully inked square."""
    side = 2 * THICK_RADIUS_PX + 1
    across = _window_all(mask, side, 1)
    if not across.any():
        return np.zeros_like(mask)
    core = _window_all(across, side, 0)
    if not core.any():
        return np.zeros_like(mask)
    return _cover(_cover(core, side, 0), side, 1)


def clean_mask(mask: np.ndarray) -> np.ndarray:
    """Drop isolated pixels, rules and frames, and filled shapes."""
    kept = _has_neighbour(mask)
    kept &= ~_long_runs(kept, MAX_LINE_HEIGHT_PX, 0)
    kept &= ~_long_runs(kept, RULE_LENGTH_PX, 1)
    return kept & ~_thick(kept)


def _runs(flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends (exclusive) of the runs of True in a 1-D array."""
    padded = np.concatenate(([False], flags, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return edges[0::2], edges[1::2]


def glyph_features(
    table: np.ndarray,
    y0: np.ndarray,
    y1: np.ndarray,
    x0: np.ndarray,
    x1: np.ndarray,
    line_top: np.ndarray,
    line_bottom: np.ndarray,
) -> np.ndarray:
    """Feature vectors of many glyph boxes of one mask, from its integral table."""
    height = y1 - y0
    width = x1 - x0
    steps = np.arange(GRID + 1)
    ys = y0[:, None] + (height[:, None] * steps) // GRID
    xs = x0[:, None] + (width[:, None] * steps) // GRID
    ys_start, xs_start = ys[:, :-1], xs[:, :-1]
    ys_end = np.maximum(ys[:, 1:], ys_start + 1)
    xs_end = np.maximum(xs[:, 1:], xs_start + 1)
    a = table[ys_end[:, :, None], xs_end[:, None, :]]
    b = table[ys_start[:, :, None], xs_end[:, None, :]]
    c = table[ys_end[:, :, None], xs_start[:, None, :]]
    d = table[ys_start[:, :, None], xs_start[:, None, :]]
    area = (ys_end - ys_start)[:, :, None] * (xs_end - xs_start)[:, None, :]
    cells = ((a - b - c + d) / area).reshape(len(y0), GRID * GRID)
    line_height = np.maximum(line_bottom - line_top, 1)
    extras = np.stack(
        [
            _ASPECT_WEIGHT * np.log(width / height),
            _HEIGHT_WEIGHT * height / line_height,
            _CENTRE_WEIGHT * ((y0 + y1) / 2 - line_top) / line_height,
            _SIZE_WEIGHT * np.log(height),
        ],
        axis=1,
    )
    return np.hstack([cells, extras])


@dataclass(frozen=True, slots=True)
class _Glyphs:
    """Glyph boxes of one mask, in reading order, with their line numbers."""

    y0: np.ndarray
    y1: np.ndarray
    x0: np.ndarray
    x1: np.ndarray
    line_top: np.ndarray
    line_bottom: np.ndarray
    line: np.ndarray


def find_glyphs(mask: np.ndarray, max_lines: int = 200) -> _Glyphs:
    """Text lines by row projection, glyphs by column projection inside a line."""
    rows = mask.sum(axis=1)
    starts, ends = _runs(rows > 0)
    boxes: list[np.ndarray] = []
    for number, (top, bottom) in enumerate(
        zip(starts[:max_lines], ends[:max_lines], strict=True)
    ):
        if not MIN_GLYPH_HEIGHT_PX <= bottom - top <= MAX_LINE_HEIGHT_PX:
            continue
        band = mask[top:bottom]
        left, right = _runs(band.any(axis=0))
        if len(left) == 0:
            continue
        per_row = np.add.reduceat(band, left, axis=1) > 0
        upper = per_row.argmax(axis=0)
        lower = (bottom - top) - per_row[::-1].argmax(axis=0)
        left, right, upper, lower = _split_wide(
            band, left, right, upper, lower, bottom - top
        )
        count = len(left)
        boxes.append(
            np.stack(
                [
                    top + upper,
                    top + lower,
                    left,
                    right,
                    np.full(count, top),
                    np.full(count, bottom),
                    np.full(count, number),
                ]
            )
        )
    if not boxes:
        empty = np.zeros(0, dtype=np.int64)
        return _Glyphs(empty, empty, empty, empty, empty, empty, empty)
    table = np.hstack(boxes)
    return _Glyphs(*table)


def _split_wide(
    band: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    upper: np.ndarray,
    lower: np.ndarray,
    line_height: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cut runs wider than 1.3 line heights at their thinnest inner column."""
    wide = np.flatnonzero(right - left > 1.3 * line_height)
    if len(wide) == 0:
        return left, right, upper, lower
    pieces: list[tuple[int, int]] = []
    keep = np.ones(len(left), dtype=bool)
    for index in wide:
        keep[index] = False
        stack = [(int(left[index]), int(right[index]))]
        while stack:
            a, b = stack.pop()
            if b - a <= 1.3 * line_height:
                pieces.append((a, b))
                continue
            margin = max(2, line_height // 3)
            profile = band[:, a + margin : b - margin].sum(axis=0)
            cut = a + margin + int(np.argmin(profile))
            stack += [(cut, b), (a, cut)]
    left2 = np.array([p[0] for p in pieces], dtype=left.dtype)
    right2 = np.array([p[1] for p in pieces], dtype=left.dtype)
    rows = np.stack([band[:, a:b].any(axis=1) for a, b in pieces], axis=1)
    has_ink = rows.any(axis=0)
    upper2 = rows.argmax(axis=0)
    lower2 = band.shape[0] - rows[::-1].argmax(axis=0)
    left = np.concatenate([left[keep], left2[has_ink]])
    right = np.concatenate([right[keep], right2[has_ink]])
    upper = np.concatenate([upper[keep], upper2[has_ink]])
    lower = np.concatenate([lower[keep], lower2[has_ink]])
    order = np.argsort(left, kind="stable")
    return left[order], right[order], upper[order], lower[order]


def _spread_out(points: np.ndarray, labels: np.ndarray, spacing: float) -> np.ndarray:
    """Mask keeping, per label, templates at least ``spacing`` from each other."""
    keep = np.zeros(len(points), dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        chosen: list[int] = []
        for index in members:
            if chosen:
                gap = np.sqrt(((points[chosen] - points[index]) ** 2).sum(axis=1))
                if gap.min() < spacing:
                    continue
            chosen.append(index)
        keep[chosen] = True
    return keep


class Recogniser:
    """Nearest-template glyph classifier over rendered font templates."""

    def __init__(self, features: np.ndarray, chars: list[str]) -> None:
        cells = GRID * GRID
        self.mean = features[:, :cells].mean(axis=0)
        centred = features[:, :cells] - self.mean
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        self.basis = vt[:_PCA_DIMENSIONS].T.copy()
        projected = self._project(features)
        names = np.array([normalised_label(c) for c in chars], dtype=object)
        keep = _spread_out(projected, names, TEMPLATE_SPACING_PX)
        self.chars = np.array(chars, dtype=object)[keep]
        self.templates = projected[keep]
        self.template_norms = (self.templates**2).sum(axis=1)
        self.labels = names[keep]
        self.size = int(keep.sum())

    def _project(self, features: np.ndarray) -> np.ndarray:
        """Cells onto the principal axes; the shape extras are kept as they are."""
        cells = GRID * GRID
        reduced = (features[:, :cells] - self.mean) @ self.basis
        return np.hstack([reduced, features[:, cells:]]).astype(np.float32)

    def classify(self, features: np.ndarray) -> np.ndarray:
        """Normalised labels of the glyphs ('' for rejected ones)."""
        if len(features) == 0:
            return np.zeros(0, dtype=object)
        projected = self._project(features)
        distances = (
            (projected**2).sum(axis=1)[:, None]
            - 2.0 * projected @ self.templates.T
            + self.template_norms[None, :]
        )
        best = distances.argmin(axis=1)
        nearest = np.sqrt(np.maximum(distances[np.arange(len(best)), best], 0.0))
        labels = self.labels[best]
        labels[nearest > REJECT_DISTANCE] = ""
        return labels


def template_fonts() -> list[ImageFont.FreeTypeFont | ImageFont.ImageFont]:
    """The fonts templates are rendered from: Pillow's default and DejaVu if present."""
    fonts: list[ImageFont.FreeTypeFont | ImageFont.ImageFont] = []
    for size in TEMPLATE_SIZES_PX:
        fonts.append(ImageFont.load_default(size=size))
        for directory in FONT_DIRS:
            for name in TEMPLATE_FONTS:
                path = directory / name
                if path.is_file():
                    fonts.append(ImageFont.truetype(str(path), size))
    return fonts


def _render_templates(
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont, mode: str
) -> tuple[np.ndarray, list[str]]:
    size = int(getattr(font, "size", 11))
    canvas = Image.new("L", (len(CHARSET) * size * 2 + 4 * size, size * 3), 0)
    draw = ImageDraw.Draw(canvas)
    draw.fontmode = mode
    origin = size // 2
    line = Image.new("L", canvas.size, 0)
    line_draw = ImageDraw.Draw(line)
    line_draw.fontmode = mode
    line_draw.text((origin, origin), "Hg", fill=255, font=font)
    line_rows = np.flatnonzero(np.asarray(line).any(axis=1) > 0)
    line_top, line_bottom = int(line_rows[0]), int(line_rows[-1]) + 1
    x = origin
    positions = []
    for char in CHARSET:
        draw.text((x, origin), char, fill=255, font=font)
        positions.append(x)
        x += size * 2
    mask = np.asarray(canvas) >= 128
    table = _integral(mask)
    boxes = []
    labels = []
    for char, start in zip(CHARSET, positions, strict=True):
        part = mask[:, start : start + size * 2]
        cols = np.flatnonzero(part.any(axis=0))
        rows = np.flatnonzero(part.any(axis=1))
        if len(cols) == 0:
            continue
        boxes.append((rows[0], rows[-1] + 1, start + cols[0], start + cols[-1] + 1))
        labels.append(char)
    y0, y1, x0, x1 = (np.array(v) for v in zip(*boxes, strict=True))
    count = len(boxes)
    features = glyph_features(
        table,
        y0,
        y1,
        x0,
        x1,
        np.full(count, line_top),
        np.full(count, line_bottom),
    )
    return features, labels


@functools.lru_cache(maxsize=1)
def default_recogniser() -> Recogniser:
    """The recogniser built once per process from ``template_fonts``."""
    features = []
    labels: list[str] = []
    for font in template_fonts():
        for mode in TEMPLATE_FONT_MODES:
            font_features, font_labels = _render_templates(font, mode)
            features.append(font_features)
            labels += font_labels
    return Recogniser(np.vstack(features), labels)


def read_mask(
    mask: np.ndarray, recogniser: Recogniser | None = None, max_lines: int = 200
) -> Reading:
    """Read the text of one binary mask (True = ink)."""
    recogniser = recogniser or default_recogniser()
    cleaned = clean_mask(mask)
    glyphs = find_glyphs(cleaned, max_lines)
    count = len(glyphs.y0)
    if count == 0:
        return Reading((), int(mask.size), 0)
    table = _integral(cleaned)
    features = glyph_features(
        table,
        glyphs.y0,
        glyphs.y1,
        glyphs.x0,
        glyphs.x1,
        glyphs.line_top,
        glyphs.line_bottom,
    )
    labels = recogniser.classify(features)
    lines: list[str] = []
    breaks = np.flatnonzero(np.diff(glyphs.line)) + 1
    for chunk in np.split(labels, breaks):
        text = "".join(chunk)
        if text:
            lines.append(text)
    return Reading(tuple(lines), int(mask.size), count)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma of an RGB array, 8 bit."""
    weights = np.array([299, 587, 114], dtype=np.uint32)
    return ((rgb.astype(np.uint32) @ weights) // 1000).astype(np.uint8)


def scansets(rgb: np.ndarray, colour_layers: int) -> Iterator[tuple[str, np.ndarray]]:
    """Binary text masks of an RGB image, most promising first.

    ``otsu``: the Otsu class away from the border's typical brightness;
    ``otsu-inverse``: the other class; ``colour-N``: the pixels of the N-th most
    frequent colour after median-cut quantisation to 8 colours, the most
    frequent (background) one left out.
    """
    gray = luminance(rgb)
    threshold = otsu_threshold(gray)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    dark_background = np.median(border) <= threshold
    bright = gray > threshold
    yield "otsu", bright if dark_background else ~bright
    yield "otsu-inverse", ~bright if dark_background else bright
    if colour_layers <= 0:
        return
    quantised = Image.fromarray(rgb).quantize(
        colors=8, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    indices = np.asarray(quantised)
    counts = np.bincount(indices.ravel(), minlength=8)
    order = np.argsort(-counts, kind="stable")
    share = counts / indices.size
    yielded = 0
    for rank, colour in enumerate(order[1:], start=1):
        if yielded >= colour_layers:
            break
        if not 0.003 <= share[colour] <= 0.5:
            continue
        yielded += 1
        yield f"colour-{rank}", indices == colour
