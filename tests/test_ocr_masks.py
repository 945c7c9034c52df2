"""Text masks: Otsu, cleaning, deskew and scansets (twin.stages.ocr.masks)."""

import numpy as np

from twin.stages.ocr.masks import (
    SKEW_ANGLES_DEG,
    clean_mask,
    deskew,
    deskew_counted,
    despeckle,
    otsu_threshold,
    scansets,
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
    names = [name for name, _ in scansets(rgb, colour_layers=4)]
    assert names[:2] == ["otsu", "otsu-inverse"]
    first = next(scansets(rgb, 0))[1]
    assert first.sum() == 300  # the dark text side, not the light background
    assert len(list(scansets(rgb, 0))) == 2


def test_deskew_levels_a_sheared_line():
    mask = np.zeros((60, 300), dtype=bool)
    for x in range(20, 280, 6):
        y = 20 + round((x - 150) * np.tan(np.radians(2.0)))
        mask[y : y + 10, x : x + 3] = True
    level = deskew(mask)
    rows = np.flatnonzero(level.any(axis=1))
    assert rows[-1] - rows[0] + 1 <= 12  # one band about 10 px tall again
    assert level.sum() == mask.sum()
    flat = np.zeros((40, 100), dtype=bool)
    flat[10:20, 10:90:4] = True
    assert deskew(flat) is flat


def test_deskew_counts_ink_pixels_per_angle():
    mask = np.zeros((40, 100), dtype=bool)
    mask[10:20, 10:90:4] = True
    _, examined = deskew_counted(mask)
    assert examined == int(mask.sum()) * len(SKEW_ANGLES_DEG) == 200 * 25
    assert deskew_counted(np.zeros((5, 5), dtype=bool))[1] == 0


def test_despeckle_removes_lone_specks_and_keeps_thin_strokes():
    gray = np.full((20, 20), 230, dtype=np.uint8)
    gray[5, 5] = 10  # a lone dark speck
    gray[2:18, 12] = 20  # a 1 px stroke
    clean = despeckle(gray)
    assert clean[5, 5] >= 230 - 24
    assert (clean[2:18, 12] == 20).all()
