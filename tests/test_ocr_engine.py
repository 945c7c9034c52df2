"""The numpy OCR engine (twin.stages.ocr.engine)."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from twin.stages.ocr.engine import (
    _eights,
    _Glyphs,
    _split_touching_lines,
    find_glyphs,
    read_mask,
)
from twin.stages.ocr.images import decode, image_parts
from twin.stages.ocr.masks import clean_mask, scansets
from twin.stages.ocr.words import load_word_list, match_words

DATA = Path(__file__).parent / "data" / "fuzzyocr"


def rendered(text, size=22):
    image = Image.new("L", (16 * size * len(text) // 10 + 40, size * 2), 255)
    ImageDraw.Draw(image).text(
        (10, size // 3), text, fill=0, font=ImageFont.load_default(size=size)
    )
    return np.asarray(image) < 128


def test_rendered_words_are_read():
    reading = read_mask(rendered("Strong Buy Recommendation"))
    assert len(reading.lines) == 1
    found = match_words(reading.lines, load_word_list(), 0.25)
    assert dict(found.lines_per_word) == {"buy": 1, "recommendation": 1}
    assert reading.glyphs == len("StrongBuyRecommendation")


def test_glyph_boxes_of_two_lines():
    mask = np.vstack([rendered("Price"), rendered("Stock")])
    glyphs = find_glyphs(clean_mask(mask))
    assert list(np.bincount(glyphs.line)) == [5, 5]
    assert (glyphs.x1 > glyphs.x0).all() and (glyphs.y1 > glyphs.y0).all()


def test_sample_png_is_read_with_exact_work():
    raw = (DATA / "ocr-png.eml").read_bytes()
    image = decode(image_parts(raw).parts[0].data, "PNG")
    scanset = next(scansets(image.rgb, 0))
    assert scanset.levelled and scanset.rotated_pixels == 0  # level already
    assert scanset.skew_pixels == 14614 * 25  # ink left after cleaning x 25 angles
    reading = read_mask(scanset.mask, levelled=True)
    assert reading.pixels == 500 * 377
    assert reading.glyphs == 747  # 572 before touching lines were cut apart
    assert reading.tried == 1006
    assert reading.skew_pixels == reading.rotated_pixels == 0
    found = dict(match_words(reading.lines, load_word_list(), 0.25).lines_per_word)
    assert found["price"] == 2 and found["investor"] == 2 and found["service"] == 1
    # the o of the sample's small monospace font is read o, not p
    assert "global" in reading.lines[0] and "corporat" in reading.lines[1]
    # lines whose descenders touch the capitals below are read apart
    assert any("servlceavallable" in line for line in reading.lines)
    unlevelled = read_mask(scanset.mask)
    assert unlevelled.skew_pixels == 14614 * 25 and unlevelled.lines == reading.lines


def test_stroke_shapes_tell_i_from_l():
    reading = read_mask(rendered("pill click online"))
    assert reading.lines == ("pillclickonline",)


def touching(text, overlap_after, size=13):
    """Glyphs of DejaVu Sans Bold drawn 2 px apart, the pair after index
    ``overlap_after`` overlapping by one column (touching)."""
    font = ImageFont.truetype(
        "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", size
    )
    parts = []
    for char in text:
        image = Image.new("L", (2 * size, 2 * size), 255)
        draw = ImageDraw.Draw(image)
        draw.fontmode = "1"
        draw.text((4, 4), char, fill=0, font=font)
        ink = np.asarray(image) < 128
        cols = np.flatnonzero(ink.any(axis=0))
        parts.append(ink[:, cols[0] : cols[-1] + 1])
    mask = np.zeros((2 * size, sum(p.shape[1] + 2 for p in parts) + 20), dtype=bool)
    x = 10
    for index, part in enumerate(parts):
        mask[:, x : x + part.shape[1]] |= part
        x += part.shape[1] + (-1 if index == overlap_after else 2)
    return mask


def test_touching_pairs_are_cut_where_both_parts_read_best():
    if not Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf").is_file():
        pytest.skip("DejaVu fonts not installed")
    reading = read_mask(touching("Alert", 3))  # r touching t
    assert reading.lines == ("alert",)
    assert reading.glyphs == 5 and reading.tried > 0


def test_a_bar_between_capitals_is_i():
    assert read_mask(rendered("CIALIS")).lines == ("cialis",)  # not "clalls"
    assert read_mask(rendered("Click")).lines == ("click",)  # l beside a small c


def test_an_eight_among_letters_is_b_and_among_digits_stays_eight():
    labels = np.array(list("8uy$0.48"), dtype=object)
    line = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    zeros = np.zeros(len(labels), dtype=np.int64)
    glyphs = _Glyphs(zeros, zeros, zeros, zeros, zeros, zeros, line)
    assert "".join(_eights(glyphs, labels)) == "Buy$0.48"


def test_touching_lines_are_cut_at_their_faintest_row():
    rows = np.zeros(32, dtype=np.int64)
    rows[1:14] = 9
    rows[7] = 1  # a descender meeting the capitals below
    rows[16:22] = rows[24:30] = 9
    starts, ends = _split_touching_lines(
        rows, np.array([1, 16, 24]), np.array([14, 22, 30])
    )
    assert starts.tolist() == [1, 8, 16, 24] and ends.tolist() == [8, 14, 22, 30]
    rows[7] = 5  # a full row: one tall line, not two
    starts, _ = _split_touching_lines(
        rows, np.array([1, 16, 24]), np.array([14, 22, 30])
    )
    assert starts.tolist() == [1, 16, 24]
