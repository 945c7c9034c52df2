"""The numpy OCR engine (twin.stages.ocr.engine)."""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from twin.stages.ocr.engine import find_glyphs, read_mask
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
    _, mask = next(scansets(image.rgb, 0))
    reading = read_mask(mask)
    assert reading.pixels == 500 * 377
    assert reading.glyphs == 566
    assert reading.tried == 845
    assert reading.skew_pixels == 365350  # ink left after cleaning x 25 angles
    found = dict(match_words(reading.lines, load_word_list(), 0.25).lines_per_word)
    assert found["price"] == 1 and found["investor"] == 1


def test_stroke_shapes_tell_i_from_l():
    reading = read_mask(rendered("pill click online"))
    assert reading.lines == ("pillclickonline",)
