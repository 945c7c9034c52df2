"""Text masks for the OCR engine: binarise, clean, level.

Twins the image preparation of FuzzyOCR's scansets (FACTS.md "FuzzyOCR": the
image is converted and pre-processed, then read by gocr/ocrad in several
passes). ``scansets`` yields binary text masks of an RGB image, most
promising first: Otsu on luminance with the text on the side away from the
border colour, the opposite polarity (both taken from the grey image rotated
level when its text is skewed), then "decolorize" layers (the pixels
of one dominant colour after a median-cut quantisation to 8 colours, for
text drawn in one colour over a busy picture). ``clean_mask`` drops isolated
pixels (in a noisy mask also those with a single neighbour: specks stuck to a
glyph), rules and frames (ink runs longer than a line is tall or a rule is
long) and filled shapes (ink within an 11 x 11 fully inked square);
``skew_angle`` finds text skewed by up to 3 degrees and ``rotate`` levels it
(a true bilinear rotation about the centre, not a shear, so glyphs keep their
upright shape: the grey image for the Otsu scansets, the mask itself in
``deskew`` for the others); ``despeckle`` clips lone noise pixels of the grey
image into their neighbours' range before Otsu. All vectorised: cumulative
sums along one axis, no per-pixel Python.

Raises nothing; an empty image gives empty masks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

MAX_LINE_HEIGHT_PX = 90
"""Lines outside 5..90 px are not text (too small to read, or a picture)."""


RULE_LENGTH_PX = 120
"""Horizontal ink runs longer than this are rules or underlines, not glyphs."""


THICK_RADIUS_PX = 5
"""A pixel whose whole 11 x 11 square is ink lies inside a filled shape."""


NOISY_SHARE = 0.0001
"""A mask with more lone ink pixels than this share of its pixels is noisy: its
ink pixels with a single ink neighbour (specks stuck to a glyph) go too."""


SPECKLE_MARGIN = 24
"""A pixel more than this many grey levels outside its neighbours' range is a speck."""


MIN_ROTATE_DEG = 0.5
"""Skews smaller than this are left alone: a quarter degree moves a 250 px line
by one pixel, while the interpolation would blur every stroke."""


SKEW_ANGLES_DEG = tuple(sorted((a / 4 for a in range(-12, 13)), key=abs))
"""Skew angles tried by ``deskew``: -3..3 degrees in quarter-degree steps, level
first (a tilt must beat it to be used)."""


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


def _neighbours(mask: np.ndarray) -> np.ndarray:
    """How many of its 8 neighbours are ink, for every pixel."""
    padded = np.pad(mask, 1).view(np.uint8)
    rows, cols = mask.shape
    near = np.zeros(mask.shape, dtype=np.uint8)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if dy != 1 or dx != 1:
                near += padded[dy : dy + rows, dx : dx + cols]
    return near


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
    """Drop isolated pixels (and, in a noisy mask, pixels with one neighbour),
    rules and frames, and filled shapes."""
    near = _neighbours(mask)
    kept = mask & (near > 0)
    if np.count_nonzero(mask) - np.count_nonzero(kept) > NOISY_SHARE * mask.size:
        kept &= near > 1
    kept &= ~_long_runs(kept, MAX_LINE_HEIGHT_PX, 0)
    kept &= ~_long_runs(kept, RULE_LENGTH_PX, 1)
    return kept & ~_thick(kept)


def deskew(mask: np.ndarray) -> np.ndarray:
    """Rotate the mask so that text lines run level (skew up to 3 degrees)."""
    return deskew_counted(mask)[0]


def skew_angle(mask: np.ndarray) -> tuple[float, int]:
    """The skew of the text lines in degrees (a line rises ``tan(angle)`` rows
    per column, image rows counting down) and the ink pixels projected to find
    it, once per angle tried.

    The angle is the one whose row projection of the ink, taken along lines of
    that slope, is most peaked (the largest sum of squared row counts), tried
    in quarter-degree steps; level unless a tilt beats it.
    """
    ys, xs = np.nonzero(mask)
    if len(ys) < 50:
        return 0.0, 0
    centred = xs - mask.shape[1] // 2
    best_angle, best_peak = 0.0, -1.0
    for angle in SKEW_ANGLES_DEG:
        rows = ys - np.round(centred * np.tan(np.radians(angle))).astype(np.int64)
        counts = np.bincount(rows - rows.min()).astype(np.float64)
        peak = float((counts**2).sum())
        if peak > best_peak * 1.0001:
            best_angle, best_peak = angle, peak
    return best_angle, len(ys) * len(SKEW_ANGLES_DEG)


def rotate(image: np.ndarray, angle_deg: float, fill: float) -> np.ndarray:
    """Rotate a 2-D image about its centre so that lines of slope
    ``tan(angle_deg)`` run level: every output pixel samples the input
    bilinearly (outside it, ``fill``). Same shape, float32."""
    height, width = image.shape
    cos = np.float32(np.cos(np.radians(angle_deg)))
    sin = np.float32(np.sin(np.radians(angle_deg)))
    cy, cx = (height - 1) / 2, (width - 1) / 2
    dy = (np.arange(height, dtype=np.float32) - cy)[:, None]
    dx = (np.arange(width, dtype=np.float32) - cx)[None, :]
    src_x = cx + dx * cos - dy * sin
    src_y = cy + dx * sin + dy * cos
    x0 = np.floor(src_x)
    y0 = np.floor(src_y)
    fx, fy = src_x - x0, src_y - y0
    padded = np.pad(image.astype(np.float32), 1, constant_values=fill)
    x0 = np.clip(x0.astype(np.int32) + 1, 0, width)
    y0 = np.clip(y0.astype(np.int32) + 1, 0, height)
    upper = padded[y0, x0] * (1 - fx) + padded[y0, x0 + 1] * fx
    lower = padded[y0 + 1, x0] * (1 - fx) + padded[y0 + 1, x0 + 1] * fx
    return upper * (1 - fy) + lower * fy


def rotate_mask(mask: np.ndarray, angle_deg: float) -> tuple[np.ndarray, int]:
    """Rotate the ink's bounding box (plus a margin) level by ``angle_deg``
    (``rotate``); a pixel is ink when at least half its sample is. Returns the
    levelled mask (same shape) and the pixels interpolated."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if abs(angle_deg) < MIN_ROTATE_DEG or len(rows) == 0:
        return mask, 0
    top, bottom = int(rows[0]), int(rows[-1]) + 1
    left, right = int(cols[0]), int(cols[-1]) + 1
    slope = abs(np.tan(np.radians(angle_deg)))
    margin = int(np.ceil(slope * (right - left) / 2)) + 1
    side = int(np.ceil(slope * (bottom - top) / 2)) + 1
    top, bottom = max(top - margin, 0), min(bottom + margin, mask.shape[0])
    left, right = max(left - side, 0), min(right + side, mask.shape[1])
    level = np.zeros_like(mask)
    box = rotate(mask[top:bottom, left:right], angle_deg, 0.0)
    level[top:bottom, left:right] = box >= 0.5
    return level, box.size


def deskew_counted(mask: np.ndarray) -> tuple[np.ndarray, int, int]:
    """``deskew`` and the work it did: ink pixels projected to find the skew
    (``skew_angle``) and pixels interpolated to rotate it away (``rotate_mask``)."""
    angle, examined = skew_angle(mask)
    level, interpolated = rotate_mask(mask, angle)
    return level, examined, interpolated


def despeckle(gray: np.ndarray) -> np.ndarray:
    """Clip every pixel into the range of its 8 neighbours, widened by
    SPECKLE_MARGIN: a lone speck (salt-and-pepper noise) takes its surroundings'
    level, while a pixel of any stroke, which has stroke neighbours, keeps its own."""
    if gray.shape[0] < 3 or gray.shape[1] < 3:
        return gray
    padded = np.pad(gray, 1, mode="edge")
    rows, cols = gray.shape
    low = np.full(gray.shape, 255, dtype=np.uint8)
    high = np.zeros(gray.shape, dtype=np.uint8)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if dy == 1 and dx == 1:
                continue
            near = padded[dy : dy + rows, dx : dx + cols]
            np.minimum(low, near, out=low)
            np.maximum(high, near, out=high)
    low = np.maximum(low.astype(np.int16) - SPECKLE_MARGIN, 0)
    high = np.minimum(high.astype(np.int16) + SPECKLE_MARGIN, 255)
    return np.clip(gray, low, high).astype(np.uint8)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma of an RGB array, 8 bit."""
    weights = np.array([299, 587, 114], dtype=np.uint32)
    return ((rgb.astype(np.uint32) @ weights) // 1000).astype(np.uint8)


@dataclass(frozen=True, slots=True)
class Scanset:
    """One binary text mask of an image and the levelling work done for it.

    ``levelled``: the mask was cut from the grey image rotated level (the Otsu
    scansets), so the reader need not deskew it again; ``skew_pixels``: ink
    pixels projected to find the skew (``skew_angle``, once per angle tried);
    ``rotated_pixels``: grey pixels interpolated by ``rotate``. The work is
    counted on the first scanset that needed it."""

    name: str
    mask: np.ndarray
    levelled: bool = False
    skew_pixels: int = 0
    rotated_pixels: int = 0


def scansets(rgb: np.ndarray, colour_layers: int) -> Iterator[Scanset]:
    """Binary text masks of an RGB image, most promising first.

    ``otsu``: the Otsu class away from the border's typical brightness;
    ``otsu-inverse``: the other class (both from the grey image rotated by
    the skew of the ``otsu`` text, when it is skewed); ``colour-N``: the pixels
    of the N-th most frequent colour after median-cut quantisation to 8
    colours, the most frequent (background) one left out.
    """
    gray = despeckle(luminance(rgb))
    threshold = otsu_threshold(gray)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    dark_background = np.median(border) <= threshold
    bright = gray > threshold
    angle, examined = skew_angle(clean_mask(bright if dark_background else ~bright))
    rotated = 0
    if abs(angle) >= MIN_ROTATE_DEG:
        level = rotate(gray, angle, float(np.median(border)))
        bright = level > threshold
        rotated = level.size
    text, other = (bright, ~bright) if dark_background else (~bright, bright)
    yield Scanset("otsu", text, True, examined, rotated)
    yield Scanset("otsu-inverse", other, True)
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
        yield Scanset(f"colour-{rank}", indices == colour)
