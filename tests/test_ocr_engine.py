"""The numpy OCR engine (twin.stages.ocr.engine)."""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from twin.stages.ocr.engine import (
    clean_mask,
    default_recogniser,
    find_glyphs,
    normalised_label,
    otsu_threshold,
    read_mask,
    scansets,
)
from twin.stages.ocr.images import decode, image_parts
from twin.stages.ocr.words import load_word_list, match_words

DATA = Path(__file__).parent / "data" / "fuzzyocr"


def rendered(text, size=22):
    image = Image.new("L", (16 * size * len(text) // 10 + 40, size * 2), 255)
    ImageDraw.Draw(image).text(
        (10, size // 3), text, fill=0, font=ImageFont.load_default(size=size)
    )
    return np.asarray(image) < 128


def test_labels_are_normalised_the_fuzzyocr_way():
    assert [normalised_label(c) for c in "A!;|081$."] == list("aiiioal") + ["", ""]


def test_otsu_splits_a_bimodal_image():
    gray = np.array([[20] * 50 + [200] * 50], dtype=np.uint8)
    threshold = otsu_threshold(gray)
    assert 20 <= threshold < 200


def test_clean_mask_keeps_strokes_and_drops_specks_rules_and_blobs():
    mask = np.zeros((120, 300), dtype=bool)
    mask[10:30, 10:13] = True  # a stroke, 3 px wide
    mask[50, 50] = True  # a speck
    mask[60, 5:290] = True  # a rule longer than 120 px
    mask[70:110, 150:200] = True  # a filled box
    cleaned = clean_mask(mask)
    assert cleaned.sum() == 20 * 3
    assert cleaned[10:30, 10:13].all()


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


def test_scansets_order_and_polarity():
    rgb = np.full((40, 60, 3), 240, dtype=np.uint8)
    rgb[10:20, 10:40] = (20, 20, 120)
    names = [name for name, _ in scansets(rgb, colour_layers=4)]
    assert names[:2] == ["otsu", "otsu-inverse"]
    first = next(scansets(rgb, 0))[1]
    assert first.sum() == 300  # the dark text side, not the light background
    assert len(list(scansets(rgb, 0))) == 2


def test_sample_png_is_read_with_exact_work():
    raw = (DATA / "ocr-png.eml").read_bytes()
    image = decode(image_parts(raw).parts[0].data, "PNG")
    _, mask = next(scansets(image.rgb, 0))
    reading = read_mask(mask)
    assert reading.pixels == 500 * 377
    assert reading.glyphs == 593
    found = dict(match_words(reading.lines, load_word_list(), 0.25).lines_per_word)
    assert found["recommendation"] == 1 and found["investor"] == 2


def test_recogniser_is_built_once():
    assert default_recogniser() is default_recogniser()
    assert default_recogniser().size > 500
