"""Glyph recognition for the OCR engine: features, font templates, matching.

Every glyph box is normalised to a GRID x GRID grid of ink coverage (area
sums of an integral image, all glyphs at once) plus its aspect ratio, its
height relative to its line, its vertical position in the line and its size;
the grid is projected on its principal axes (PCA of the templates) and the
glyph takes the label of the nearest template. Templates are rendered from
the fonts Pillow can load offline: its default font (Aileron, scalable) and
DejaVu when the system has it, at several sizes, with and without
antialiasing; templates of one label closer than TEMPLATE_SPACING_PX are
kept once. Glyphs farther than REJECT_DISTANCE from every template are noise.

Labels are normalised the FuzzyOCR way (FACTS.md "FuzzyOCR"): letters lower
case, ``!;|081`` as ``iiioal``, other symbols dropped.
"""

from __future__ import annotations

import functools
import string
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

GRID = 10
"""Glyphs are normalised to GRID x GRID cells of ink coverage."""


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


TEMPLATE_SIZES_PX = tuple(range(10, 31))


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


def integral(mask: np.ndarray) -> np.ndarray:
    table = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.int32)
    np.cumsum(mask, axis=0, dtype=np.int32, out=table[1:, 1:])
    np.cumsum(table[1:, 1:], axis=1, out=table[1:, 1:])
    return table


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


def _spread_out(points: np.ndarray, labels: np.ndarray, spacing: float) -> np.ndarray:
    """Mask keeping, per label, templates at least ``spacing`` from each other."""
    keep = np.zeros(len(points), dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        group = points[members].astype(np.float64)
        norms = (group**2).sum(axis=1)
        squared = norms[:, None] + norms[None, :] - 2.0 * group @ group.T
        close = squared < spacing**2
        blocked = np.zeros(len(members), dtype=bool)
        for index in range(len(members)):
            if blocked[index]:
                continue
            keep[members[index]] = True
            blocked |= close[index]
    return keep


class Recogniser:
    """Nearest-template glyph classifier over rendered font templates."""

    def __init__(self, features: np.ndarray, chars: list[str]) -> None:
        cells = GRID * GRID
        self.mean = features[:, :cells].mean(axis=0)
        centred = features[:, :cells] - self.mean
        # principal axes from the small cells x cells covariance, not an SVD of
        # the tens of thousands of rendered templates
        _, vectors = np.linalg.eigh(centred.T @ centred)
        self.basis = vectors[:, ::-1][:, :_PCA_DIMENSIONS].copy()
        projected = self._project(features)
        names = np.array([normalised_label(c) for c in chars], dtype=object)
        keep = _spread_out(projected, np.array(chars), TEMPLATE_SPACING_PX)
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

    def classify(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised labels of the glyphs ('' for rejected ones) and distances."""
        best, nearest = self._nearest(features)
        labels = self.labels[best]
        labels[nearest > REJECT_DISTANCE] = ""
        return labels, nearest

    def classify_chars(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Template characters, not normalised ('' for rejected), and distances."""
        best, nearest = self._nearest(features)
        chars = self.chars[best]
        chars[nearest > REJECT_DISTANCE] = ""
        return chars, nearest

    def _nearest(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Index of the nearest template of every glyph and its distance."""
        if len(features) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        projected = self._project(features)
        distances = (
            (projected**2).sum(axis=1)[:, None]
            - 2.0 * projected @ self.templates.T
            + self.template_norms[None, :]
        )
        best = distances.argmin(axis=1)
        nearest = np.sqrt(np.maximum(distances[np.arange(len(best)), best], 0.0))
        return best, nearest


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


_GAP = "   "
"""Blank between template characters, wide enough that no two share a column."""


def _render_templates(
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont, mode: str
) -> tuple[np.ndarray, list[str]]:
    """Features of every CHARSET character of one font, drawn in one call (one
    FreeType layout per font, not one per character). Advances are measured
    in the drawing mode: unantialiased ("1") text is hinted and its advances
    differ, so unhinted ones drift a box onto the previous character (the
    small default font's p was an o, and sample text read o as p)."""
    size = int(getattr(font, "size", 11))
    text = _GAP.join(CHARSET)
    origin = size // 2
    width = int(font.getlength(text, mode=mode)) + 2 * size
    canvas = Image.new("L", (width, size * 3), 0)
    draw = ImageDraw.Draw(canvas)
    draw.fontmode = mode
    draw.text((origin, origin), "Hg" + _GAP + text, fill=255, font=font)
    mask = np.asarray(canvas) >= 128
    offset = origin + font.getlength("Hg" + _GAP, mode=mode)
    hg = mask[:, : int(offset)]
    line_rows = np.flatnonzero(hg.any(axis=1))
    line_top, line_bottom = int(line_rows[0]), int(line_rows[-1]) + 1
    gap = font.getlength(_GAP, mode=mode)
    table = integral(mask)
    boxes = []
    labels = []
    x = offset
    for char in CHARSET:
        advance = font.getlength(char, mode=mode)
        left = max(int(x - gap / 2), 0)
        right = int(x + advance + gap / 2)
        x += advance + gap
        part = mask[:, left:right]
        cols = np.flatnonzero(part.any(axis=0))
        if len(cols) == 0:
            continue
        rows = np.flatnonzero(part.any(axis=1))
        boxes.append((rows[0], rows[-1] + 1, left + cols[0], left + cols[-1] + 1))
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
