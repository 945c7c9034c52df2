"""Glyph features, templates and the recogniser (twin.stages.ocr.glyphs)."""

import numpy as np
from PIL import ImageFont

from twin.stages.ocr.glyphs import (
    CHARSET,
    GRID,
    _render_templates,
    default_recogniser,
    glyph_features,
    integral,
    normalised_label,
)


def test_labels_are_normalised_the_fuzzyocr_way():
    assert [normalised_label(c) for c in "A!;|081$."] == list("aiiioal") + ["", ""]


def test_recogniser_is_built_once():
    assert default_recogniser() is default_recogniser()
    assert default_recogniser().size > 500


def test_features_of_a_filled_box_and_a_bar():
    mask = np.zeros((30, 40), dtype=bool)
    mask[5:25, 5:25] = True  # a 20 x 20 square
    mask[5:25, 30:33] = True  # a 3 x 20 bar
    table = integral(mask)
    features = glyph_features(
        table,
        np.array([5, 5]),
        np.array([25, 25]),
        np.array([5, 30]),
        np.array([25, 33]),
        np.array([5, 5]),
        np.array([25, 25]),
    )
    assert features.shape == (2, GRID * GRID + 4)
    assert (features[:, : GRID * GRID] == 1.0).all()
    assert features[0, GRID * GRID] == 0.0  # square: log aspect 0
    assert features[1, GRID * GRID] < -3.0  # narrow bar


def test_recogniser_reads_its_own_kind_of_glyph():
    recogniser = default_recogniser()
    mask = np.zeros((30, 30), dtype=bool)
    mask[4:26, 13:17] = True  # a vertical stroke: l, i or I
    features = glyph_features(
        integral(mask),
        np.array([4]),
        np.array([26]),
        np.array([13]),
        np.array([17]),
        np.array([4]),
        np.array([26]),
    )
    labels, distances = recogniser.classify(features)
    assert labels[0] in ("l", "i") and distances[0] < 2.0


def test_template_boxes_hold_their_own_character():
    # hinted ("1") advances differ from unhinted ones; measured in the wrong
    # mode the boxes drifted and the 10 px p template was an o
    for mode in ("1", "L"):
        features, labels = _render_templates(ImageFont.load_default(size=10), mode)
        assert labels == [c for c in CHARSET if c != " "]
        by_label = dict(zip(labels, features, strict=True))
        heights = {c: by_label[c][-1] for c in "opbq"}  # size: log of box height
        assert heights["p"] > heights["o"] and heights["q"] > heights["o"]
        assert not np.allclose(by_label["p"], by_label["o"])
