"""Text masks: Otsu, cleaning, deskew and scansets (twin.stages.ocr.masks)."""

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from twin.stages.ocr.masks import (
    MIN_ROTATE_DEG,
    SKEW_ANGLES_DEG,
    clean_mask,
    deskew,
    deskew_counted,
    despeckle,
    otsu_threshold,
    rotate,
    scansets,
    skew_angle,
)


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


def test_scansets_order_and_polarity():
    rgb = np.full((40, 60, 3), 240, dtype=np.uint8)
    rgb[10:20, 10:40] = (20, 20, 120)
    names = [scanset.name for scanset in scansets(rgb, colour_layers=4)]
    assert names[:2] == ["otsu", "otsu-inverse"]
    first = next(scansets(rgb, 0))
    assert first.mask.sum() == 300  # the dark text side, not the light background
    assert first.levelled and first.rotated_pixels == 0  # nothing to level
    assert len(list(scansets(rgb, 0))) == 2


def test_clean_mask_drops_specks_stuck_to_glyphs_only_when_noisy():
    mask = np.zeros((100, 100), dtype=bool)
    mask[10:30, 10:13] = True  # a stroke
    mask[30, 13] = True  # a speck touching its corner: one neighbour
    assert clean_mask(mask)[30, 13]  # a clean mask keeps it (a stroke's tip)
    mask[50:100:4, 50:100:4] = True  # 169 lone specks: a noisy mask
    cleaned = clean_mask(mask)
    assert not cleaned[30, 13] and cleaned.sum() == 20 * 3


def test_deskew_levels_a_skewed_line():
    mask = np.zeros((60, 300), dtype=bool)
    for x in range(20, 280, 6):
        y = 20 + round((x - 150) * np.tan(np.radians(2.0)))
        mask[y : y + 10, x : x + 3] = True
    assert skew_angle(mask)[0] == 2.0
    level, examined, interpolated = deskew_counted(mask)
    rows = np.flatnonzero(level.any(axis=1))
    assert rows[-1] - rows[0] + 1 <= 12  # one band about 10 px tall again
    assert abs(int(level.sum()) - int(mask.sum())) < 0.1 * mask.sum()
    assert examined == int(mask.sum()) * len(SKEW_ANGLES_DEG)
    assert 0 < interpolated <= mask.size  # the ink's box, not the whole mask
    flat = np.zeros((40, 100), dtype=bool)
    flat[10:20, 10:90:4] = True
    assert deskew(flat) is flat


def test_deskew_counts_ink_pixels_per_angle():
    mask = np.zeros((40, 100), dtype=bool)
    mask[10:20, 10:90:4] = True
    level, examined, interpolated = deskew_counted(mask)
    assert examined == int(mask.sum()) * len(SKEW_ANGLES_DEG) == 200 * 25
    assert interpolated == 0 and level is mask
    assert deskew_counted(np.zeros((5, 5), dtype=bool))[1:] == (0, 0)


def test_rotate_is_bilinear_about_the_centre():
    image = np.arange(25, dtype=np.float32).reshape(5, 5)
    assert np.allclose(rotate(image, 0.0, 0.0), image)
    turned = rotate(image, 1.0, -1.0)
    assert turned[2, 2] == image[2, 2]  # the centre stays
    assert turned.shape == image.shape and turned.dtype == np.float32


def test_scansets_rotate_a_skewed_image_level():
    image = Image.new("L", (320, 60), 240)
    font = ImageFont.load_default(size=20)
    ImageDraw.Draw(image).text((10, 15), "Strong Buy Recommendation", 0, font=font)
    skewed = image.rotate(2.0, resample=Image.BICUBIC, fillcolor=240)
    rgb = np.repeat(np.asarray(skewed)[:, :, None], 3, axis=2)
    first = next(scansets(rgb, 0))
    assert first.levelled and first.rotated_pixels == 320 * 60
    assert first.skew_pixels > 0 and first.skew_pixels % len(SKEW_ANGLES_DEG) == 0
    assert skew_angle(clean_mask(first.mask))[0] == 0.0  # level now
    level = next(scansets(np.repeat(np.asarray(image)[:, :, None], 3, axis=2), 0))
    assert level.rotated_pixels == 0 and MIN_ROTATE_DEG > SKEW_ANGLES_DEG[1]


def test_despeckle_removes_lone_specks_and_keeps_thin_strokes():
    gray = np.full((20, 20), 230, dtype=np.uint8)
    gray[5, 5] = 10  # a lone dark speck
    gray[2:18, 12] = 20  # a 1 px stroke
    clean = despeckle(gray)
    assert clean[5, 5] >= 230 - 24
    assert (clean[2:18, 12] == 20).all()
