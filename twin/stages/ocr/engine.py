"""The OCR engine of the FuzzyOCR twin: read the text lines of a binary mask.

Twins what gocr/ocrad did for FuzzyOCR (FACTS.md "FuzzyOCR": "OCR (gocr, ocrad;
several passes)"), written in numpy so that it really reads the text of an
image and the work it counts (pixels examined, glyphs recognised) is the work
a real OCR pass had to do. ``masks.scansets`` makes the masks;
``read_mask`` cleans one (``masks.clean_mask``) and levels it unless the
scanset came levelled (``masks.deskew_counted``),
finds text lines by row projection and glyphs by column projection inside
each line (an i-dot stays with its stem), splits runs too wide for one
character at their thinnest column, and recognises every glyph
(``glyphs.Recogniser``). A wide glyph that reads poorly is tried again as
its connected components (kerned pairs such as "Ta" share columns) or cut at
every column of its middle half (touching pairs such as "rt", whose join is
rarely the thinnest column), keeping the cut whose worse part reads best
when that is clearly better than the whole. Neighbours that read better
joined are joined (an m whose thin joins fell below the threshold), and
shapes settle what the template grid cannot: a stroke with a dot is i (j
below the baseline), one without is l (I with serifs on both sides or
between capitals), and a $ needs its bar above and below the s. Labels come
normalised the FuzzyOCR way, so a line is a string of lower-case letters.

Raises nothing for odd images; an empty mask reads no lines.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from twin.stages.ocr.glyphs import (
    Recogniser,
    default_recogniser,
    glyph_features,
    integral,
    normalised_label,
)
from twin.stages.ocr.masks import MAX_LINE_HEIGHT_PX, clean_mask, deskew_counted

MIN_GLYPH_HEIGHT_PX = 5
"""Ink bands lower than this are specks, not text lines."""

TOUCHING_LINES = 1.6
"""Ink bands this many median band heights tall may be two touching lines."""

TOUCH_SHARE = 0.15
"""Two touching lines meet in a row holding at most this share of the ink of
the band's fullest row."""

SPLIT_DISTANCE = 2.0
"""Wide glyphs read worse than this are tried as their connected parts."""

SPLIT_WIDTH = 0.5
"""Glyphs wider than this many line heights may be two glyphs."""

DOT_SHARE = 0.45
"""A stroke whose top ink part ends above this share of its height is dotted."""

DESCENDER_SHARE = 0.12
"""A dotted stroke reaching this share of the line height below the baseline is j."""

_STROKES = np.array(list("iljI1|!;"), dtype=object)

_DOTTED = frozenset("ij;")

_NUMERIC = frozenset("0123456789$.,%")

_DIGIT_LIKE = frozenset("oOlIiSsZzB")

_X_HEIGHT = np.array(list("acemnorsuvwxz"), dtype=object)

X_HEIGHT_SLACK = 0.1
"""A stroke whose top is within this share of the line height of the x-height
starts there (a half of a broken u or n)."""

HALVES_DISTANCE = 1.5
"""Two x-height strokes are joined when they read closer than this as one
glyph that is not a stroke."""

DESCENT_SHARE = 0.3
"""A line without descenders is taken to reach this share of its height below
the baseline (the median glyph bottom), as the templates' "Hg" line does."""

MERGE_ROUNDS = 2
"""Rounds of joining neighbours: an m broken in three parts needs two."""

MERGE_WIDTH = 1.1
"""Joined glyphs are at most this many line heights wide."""

MERGE_GAP_PX = 2
"""Only neighbours at most this many blank columns apart are joined."""

MERGE_WORSE = 1.5
"""Pairs whose parts both read closer than this are left alone."""

MERGE_GAIN = 0.75
"""A joined pair must read this much closer than the worse of its parts."""

CUT_GAIN = 0.75
"""A glyph cut at a column must read at least this much closer in every part."""


@dataclass(frozen=True, slots=True)
class Reading:
    """What one OCR pass read: normalised text lines and the work it did.

    ``pixels`` examined, ``glyphs`` recognised in the final reading, ``tried``
    extra glyph boxes recognised while re-segmenting (parts of wide glyphs,
    joined neighbours), ``skew_pixels`` ink pixels projected by ``deskew``
    (once per angle tried) and ``rotated_pixels`` mask pixels it interpolated
    (none for a mask already levelled)."""

    lines: tuple[str, ...]
    pixels: int
    glyphs: int
    tried: int = 0
    skew_pixels: int = 0
    rotated_pixels: int = 0


_normalised = functools.lru_cache(maxsize=None)(normalised_label)


def _runs(flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends (exclusive) of the runs of True in a 1-D array."""
    padded = np.concatenate(([False], flags, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return edges[0::2], edges[1::2]


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


def _split_touching_lines(
    rows: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Cut ink bands more than TOUCHING_LINES times the median band tall at
    their faintest middle row when it holds at most TOUCH_SHARE of the band's
    fullest row: two lines joined where a descender meets the caps below."""
    heights = ends - starts
    usable = heights[heights >= MIN_GLYPH_HEIGHT_PX]
    if len(usable) < 2:
        return starts, ends
    limit = TOUCHING_LINES * float(np.median(usable))
    if not (heights > limit).any():
        return starts, ends
    bands: list[tuple[int, int]] = []
    stack = [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)][::-1]
    while stack:
        top, bottom = stack.pop()
        height = bottom - top
        if height <= limit:
            bands.append((top, bottom))
            continue
        low, high = top + height // 4, bottom - height // 4
        middle = rows[low:high]
        cut = low + int(np.argmin(middle))
        if rows[cut] > TOUCH_SHARE * rows[top:bottom].max():
            bands.append((top, bottom))
            continue
        stack += [(cut + 1, bottom), (top, cut + 1)]
    return (
        np.array([b[0] for b in bands], dtype=starts.dtype),
        np.array([b[1] for b in bands], dtype=ends.dtype),
    )


def find_glyphs(mask: np.ndarray, max_lines: int = 200) -> _Glyphs:
    """Text lines by row projection, glyphs by column projection inside a line."""
    rows = mask.sum(axis=1)
    starts, ends = _split_touching_lines(rows, *_runs(rows > 0))
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
        baseline = float(np.median(lower))
        depth = max(bottom - top, int(round(baseline * (1.0 + DESCENT_SHARE))))
        boxes.append(
            np.stack(
                [
                    top + upper,
                    top + lower,
                    left,
                    right,
                    np.full(count, top),
                    np.full(count, top + depth),
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


def _components(crop: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Boxes (y0, y1, x0, x1) of the 8-connected parts of a small crop, merging
    a part into another whose columns contain it (an i-dot into its stem)."""
    padded = np.pad(crop, ((0, 0), (1, 1)))
    edges = np.diff(padded.astype(np.int8), axis=1)
    run_rows, run_starts = np.nonzero(edges == 1)
    _, run_ends = np.nonzero(edges == -1)
    parent = list(range(len(run_rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    by_row: dict[int, list[int]] = {}
    for index, row in enumerate(run_rows.tolist()):
        by_row.setdefault(row, []).append(index)
    for index, row in enumerate(run_rows.tolist()):
        for other in by_row.get(row - 1, ()):
            if (
                run_starts[other] <= run_ends[index]
                and run_starts[index] <= (run_ends[other])
            ):
                parent[root(other)] = root(index)
    boxes: dict[int, list[int]] = {}
    for index in range(len(run_rows)):
        y, x0, x1 = int(run_rows[index]), int(run_starts[index]), int(run_ends[index])
        box = boxes.setdefault(root(index), [y, y + 1, x0, x1])
        box[0], box[1] = min(box[0], y), max(box[1], y + 1)
        box[2], box[3] = min(box[2], x0), max(box[3], x1)
    parts = sorted(boxes.values(), key=lambda b: -(b[3] - b[2]))
    kept: list[list[int]] = []
    for box in parts:
        home = next(
            (k for k in kept if k[2] - 1 <= box[2] and box[3] <= k[3] + 1), None
        )
        if home is None:
            kept.append(box)
        else:
            home[0], home[1] = min(home[0], box[0]), max(home[1], box[1])
    return sorted((tuple(k) for k in kept), key=lambda b: b[2])


def _cut_touching(crop: np.ndarray) -> list[list[tuple[int, int, int, int]]]:
    """Ways to cut touching glyphs in two: at every column of the middle half
    (an r's arm may touch the next letter where neither is thin), two boxes
    per way, each trimmed to the rows its columns ink."""
    height, width = crop.shape
    cuts = np.arange(max(width // 4, 1), width - width // 4)
    if len(cuts) == 0:
        return []
    # rows inked left of each cut (OR over columns so far) and right of it
    left = np.logical_or.accumulate(crop, axis=1)[:, cuts - 1]
    right = np.logical_or.accumulate(crop[:, ::-1], axis=1)[:, ::-1][:, cuts]
    ways = []
    for number, cut in enumerate(cuts.tolist()):
        boxes = []
        for rows, x0, x1 in ((left[:, number], 0, cut), (right[:, number], cut, width)):
            if not rows.any():
                break
            top = int(rows.argmax())
            bottom = height - int(rows[::-1].argmax())
            boxes.append((top, bottom, x0, x1))
        if len(boxes) == 2:
            ways.append(boxes)
    return ways


def _resegment(
    cleaned: np.ndarray,
    table: np.ndarray,
    glyphs: _Glyphs,
    labels: np.ndarray,
    distances: np.ndarray,
    recogniser: Recogniser,
) -> tuple[_Glyphs, np.ndarray, np.ndarray, int]:
    """Split poorly read wide glyphs into their connected parts (kerned pairs
    such as "Ta" share columns) when the parts read better than the whole."""
    heights = glyphs.line_bottom - glyphs.line_top
    suspects = np.flatnonzero(
        (glyphs.x1 - glyphs.x0 > SPLIT_WIDTH * heights) & (distances > SPLIT_DISTANCE)
    )
    if len(suspects) == 0:
        return glyphs, labels, distances, 0
    pieces: list[tuple[int, int, int, int, int]] = []
    groups: list[tuple[int, bool, list[int]]] = []
    for index in suspects.tolist():
        y0, y1 = int(glyphs.line_top[index]), int(glyphs.line_bottom[index])
        x0, x1 = int(glyphs.x0[index]), int(glyphs.x1[index])
        crop = cleaned[y0:y1, x0:x1]
        parts = _components(crop)
        ways = [parts] if len(parts) >= 2 else _cut_touching(crop)
        for way in ways:
            numbers = []
            for top, bottom, left, right in way:
                numbers.append(len(pieces))
                pieces.append((y0 + top, y0 + bottom, x0 + left, x0 + right, index))
            groups.append((index, len(parts) < 2, numbers))
    if not pieces:
        return glyphs, labels, distances, 0
    py0, py1, px0, px1, owner = (np.array(v) for v in zip(*pieces, strict=True))
    features = glyph_features(
        table, py0, py1, px0, px1, glyphs.line_top[owner], glyphs.line_bottom[owner]
    )
    piece_labels, piece_distances = recogniser.classify_chars(features)
    chosen_way: dict[int, tuple[float, list[int]]] = {}
    for index, cut, numbers in groups:
        if cut:
            score = float(piece_distances[numbers].max())
            better = score < CUT_GAIN * distances[index]
        else:
            score = float(piece_distances[numbers].mean())
            better = score < distances[index]
        if better and score < chosen_way.get(index, (np.inf, []))[0]:
            chosen_way[index] = (score, numbers)
    drop = np.zeros(len(labels), dtype=bool)
    extra: list[int] = []
    for index, (_, numbers) in chosen_way.items():
        drop[index] = True
        extra += numbers
    if not extra:
        return glyphs, labels, distances, len(pieces)
    chosen = np.array(extra)
    keep = ~drop

    def merged(old: np.ndarray, new: np.ndarray) -> np.ndarray:
        return np.concatenate([old[keep], new[chosen]])

    line = merged(glyphs.line, glyphs.line[owner])
    x0 = merged(glyphs.x0, px0)
    order = np.lexsort((x0, line))
    result = _Glyphs(
        merged(glyphs.y0, py0)[order],
        merged(glyphs.y1, py1)[order],
        x0[order],
        merged(glyphs.x1, px1)[order],
        merged(glyphs.line_top, glyphs.line_top[owner])[order],
        merged(glyphs.line_bottom, glyphs.line_bottom[owner])[order],
        line[order],
    )
    return (
        result,
        np.concatenate([labels[keep], piece_labels[chosen]])[order],
        np.concatenate([distances[keep], piece_distances[chosen]])[order],
        len(pieces),
    )


def _short_strokes(glyphs: _Glyphs, labels: np.ndarray) -> np.ndarray:
    """Glyphs read as strokes (l, I, 1...) that start at their line's x-height
    (the median top of its x-height letters, within X_HEIGHT_SLACK of the line
    height): halves of a u or n whose thin join was lost. A real l or I rises
    above the x-height and an i has its dot."""
    short = np.zeros(len(labels), dtype=bool)
    strokes = np.isin(labels, _STROKES)
    if not strokes.any():
        return short
    small = np.isin(labels, _X_HEIGHT)
    for line in np.unique(glyphs.line[strokes]).tolist():
        members = glyphs.line == line
        tops = glyphs.y0[members & small]
        if len(tops) == 0:
            continue
        height = glyphs.line_bottom[members][0] - glyphs.line_top[members][0]
        near = np.abs(glyphs.y0 - np.median(tops)) <= X_HEIGHT_SLACK * height
        short |= members & strokes & near
    return short


def _merge_broken(
    table: np.ndarray,
    glyphs: _Glyphs,
    labels: np.ndarray,
    distances: np.ndarray,
    recogniser: Recogniser,
) -> tuple[_Glyphs, np.ndarray, np.ndarray, int]:
    """Join neighbours of a line that read better as one glyph (an m whose thin
    joins fell below the threshold reads as three strokes). A pair is joined
    when the joined box is at most MERGE_WIDTH line heights wide and reads
    closer than MERGE_GAIN times the worse of its parts; left to right, so a
    joined pair may take the next part in the next round. Returns the glyph
    boxes tried as well."""
    tried = 0
    for _ in range(int(MERGE_ROUNDS)):
        count = len(glyphs.y0)
        if count < 2:
            break
        a = np.arange(count - 1)
        b = a + 1
        heights = glyphs.line_bottom[a] - glyphs.line_top[a]
        y0 = np.minimum(glyphs.y0[a], glyphs.y0[b])
        y1 = np.maximum(glyphs.y1[a], glyphs.y1[b])
        x1 = np.maximum(glyphs.x1[a], glyphs.x1[b])
        worse = np.maximum(distances[a], distances[b])
        short = _short_strokes(glyphs, labels)
        halves = short[a] & short[b]
        candidates = np.flatnonzero(
            (glyphs.line[a] == glyphs.line[b])
            & (x1 - glyphs.x0[a] <= MERGE_WIDTH * heights)
            & (glyphs.x0[b] - glyphs.x1[a] <= MERGE_GAP_PX)
            & ((worse > MERGE_WORSE) | halves)
        )
        if len(candidates) == 0:
            break
        tried += len(candidates)
        features = glyph_features(
            table,
            y0[candidates],
            y1[candidates],
            glyphs.x0[candidates],
            x1[candidates],
            glyphs.line_top[candidates],
            glyphs.line_bottom[candidates],
        )
        joined_labels, joined = recogniser.classify_chars(features)
        good = (
            (joined < MERGE_GAIN * worse[candidates])
            | (
                halves[candidates]
                & (joined < HALVES_DISTANCE)
                & ~np.isin(joined_labels, _STROKES)
            )
        ) & (joined_labels != "")
        if not good.any():
            break
        keep = np.ones(count, dtype=bool)
        y0n, y1n, x1n = glyphs.y0.copy(), glyphs.y1.copy(), glyphs.x1.copy()
        labels, distances = labels.copy(), distances.copy()
        taken = -1
        for slot in np.flatnonzero(good).tolist():
            left = int(candidates[slot])
            if left <= taken:
                continue
            taken = left + 1
            keep[left + 1] = False
            y0n[left], y1n[left], x1n[left] = y0[left], y1[left], x1[left]
            labels[left], distances[left] = joined_labels[slot], joined[slot]
        glyphs = _Glyphs(
            y0n[keep],
            y1n[keep],
            glyphs.x0[keep],
            x1n[keep],
            glyphs.line_top[keep],
            glyphs.line_bottom[keep],
            glyphs.line[keep],
        )
        labels, distances = labels[keep], distances[keep]
    return glyphs, labels, distances, tried


def _capital_i(crop: np.ndarray) -> bool:
    """A stroke whose top serif reaches out on both sides alike: I, not l (a
    plain bar is read l, the far more frequent letter)."""
    stem = np.flatnonzero(crop[len(crop) // 2])
    top = np.flatnonzero(crop[0])
    if len(stem) == 0 or len(top) == 0:
        return False
    left = int(stem[0] - top[0])
    right = int(top[-1] - stem[-1])
    return left >= 1 and right >= 1 and abs(left - right) <= 1


def _among_capitals(line: np.ndarray, labels: np.ndarray, index: int) -> bool:
    """A glyph whose neighbours on its line (both, or the one it has) read as
    capital letters: a plain bar there is I ("CIALIS"), not l."""
    neighbours = [
        str(labels[other])
        for other in (index - 1, index + 1)
        if 0 <= other < len(labels) and line[other] == line[index]
    ]
    return bool(neighbours) and all(
        len(n) == 1 and n.isupper() and n not in _STROKES for n in neighbours
    )


def _dotted_strokes(
    cleaned: np.ndarray, glyphs: _Glyphs, labels: np.ndarray
) -> np.ndarray:
    """Tell i, l and j apart by their shape, not the template grid (a small i-dot
    gap is lost in a GRID x GRID cell): a stroke with a dot above it is i, or j
    when it reaches below the line's baseline (the median glyph bottom); a
    stroke without one is l, or I between capitals ("CIALIS")."""
    strokes = np.flatnonzero(np.isin(labels, _STROKES))
    if len(strokes) == 0:
        return labels
    original = labels
    labels = labels.copy()
    baselines: dict[int, float] = {}
    for index in strokes.tolist():
        y0, y1 = int(glyphs.y0[index]), int(glyphs.y1[index])
        crop = cleaned[y0:y1, glyphs.x0[index] : glyphs.x1[index]]
        per_row = crop.sum(axis=1)
        starts, ends = _runs(per_row > 0)
        stem = int(np.argmax(ends - starts))
        stroke = float(np.median(per_row[starts[stem] : ends[stem]]))
        dot = int(per_row[starts[0] : ends[0]].sum()) if stem > 0 else 0
        dotted = (
            stem > 0
            and ends[0] <= DOT_SHARE * len(per_row)
            and dot >= max(2.0, 0.5 * stroke * stroke)
        )
        if not dotted:
            if _among_capitals(glyphs.line, original, index):
                labels[index] = "I"
            elif labels[index] in _DOTTED or (
                labels[index] in "I|" and not _capital_i(crop)
            ):
                labels[index] = "l"
            continue
        line = int(glyphs.line[index])
        if line not in baselines:
            bottoms = glyphs.y1[glyphs.line == line]
            baselines[line] = float(np.median(bottoms))
        height = int(glyphs.line_bottom[index] - glyphs.line_top[index])
        below = y1 - baselines[line] > DESCENDER_SHARE * height
        labels[index] = "j" if below else "i"
    return labels


def _dollars(cleaned: np.ndarray, glyphs: _Glyphs, labels: np.ndarray) -> np.ndarray:
    """A $ has its bar sticking out of the s both above and below: rows of
    ink narrower than half the glyph, in its middle third, over and under the
    rows of the s. Without both stubs (a noise speck makes a small s as tall as
    a $ only on one side) it is read s."""
    dollars = np.flatnonzero(labels == "$")
    if len(dollars) == 0:
        return labels
    labels = labels.copy()
    for index in dollars.tolist():
        crop = cleaned[
            glyphs.y0[index] : glyphs.y1[index], glyphs.x0[index] : glyphs.x1[index]
        ]
        width = crop.shape[1]
        wide = np.flatnonzero(crop.sum(axis=1) > width / 2)
        if len(wide) == 0:
            continue
        middle = crop[:, width // 3 : width - width // 3].any(axis=1)
        above = middle[: wide[0]].any()
        below = middle[wide[-1] + 1 :].any()
        if not (above and below):
            labels[index] = "s"
    return labels


def _eights(glyphs: _Glyphs, labels: np.ndarray) -> np.ndarray:
    """An 8 among letters is B ("Buy", "Breaking"): at least one neighbour on
    its line reads as a letter that no digit looks like, and none reads as a
    digit or a price sign. The two differ only in the left side of a few
    pixels in small fonts, where the template grid can not tell them apart."""
    eights = np.flatnonzero(labels == "8")
    if len(eights) == 0:
        return labels
    labels = labels.copy()
    for index in eights.tolist():
        neighbours = [
            str(labels[other])
            for other in (index - 1, index + 1)
            if 0 <= other < len(labels) and glyphs.line[other] == glyphs.line[index]
        ]
        if any(n in _NUMERIC for n in neighbours):
            continue
        if any(n.isalpha() and n not in _DIGIT_LIKE for n in neighbours):
            labels[index] = "B"
    return labels


def read_mask(
    mask: np.ndarray,
    recogniser: Recogniser | None = None,
    max_lines: int = 200,
    levelled: bool = False,
) -> Reading:
    """Read the text of one binary mask (True = ink); ``levelled`` masks (cut
    from a grey image already rotated level, ``masks.Scanset.levelled``) are
    not deskewed again."""
    recogniser = recogniser or default_recogniser()
    cleaned = clean_mask(mask)
    skew_pixels = rotated = 0
    if not levelled:
        cleaned, skew_pixels, rotated = deskew_counted(cleaned)
    glyphs = find_glyphs(cleaned, max_lines)
    if len(glyphs.y0) == 0:
        return Reading((), int(mask.size), 0, 0, skew_pixels, rotated)
    table = integral(cleaned)
    features = glyph_features(
        table,
        glyphs.y0,
        glyphs.y1,
        glyphs.x0,
        glyphs.x1,
        glyphs.line_top,
        glyphs.line_bottom,
    )
    labels, distances = recogniser.classify_chars(features)
    glyphs, labels, distances, pieces = _resegment(
        cleaned, table, glyphs, labels, distances, recogniser
    )
    glyphs, labels, distances, joined = _merge_broken(
        table, glyphs, labels, distances, recogniser
    )
    labels = _dotted_strokes(cleaned, glyphs, labels)
    labels = _dollars(cleaned, glyphs, labels)
    labels = _eights(glyphs, labels)
    lines: list[str] = []
    breaks = np.flatnonzero(np.diff(glyphs.line)) + 1
    for chunk in np.split(labels, breaks):
        text = "".join(_normalised(c) for c in chunk.tolist())
        if text:
            lines.append(text)
    return Reading(
        tuple(lines),
        int(mask.size),
        len(glyphs.y0),
        pieces + joined,
        skew_pixels,
        rotated,
    )
