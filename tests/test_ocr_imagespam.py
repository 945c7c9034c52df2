"""Generated image spam and ordinary images (twin.stages.ocr.imagespam)."""

import numpy as np
import pytest

from twin.stages.ocr.images import decode, image_parts, sniff_format
from twin.stages.ocr.imagespam import (
    TRICKS,
    legit_message,
    spam_image,
    spam_message,
)


def test_same_seed_same_bytes():
    a = spam_message(np.random.default_rng(11))
    b = spam_message(np.random.default_rng(11))
    assert a == b
    assert legit_message(np.random.default_rng(3)) == legit_message(
        np.random.default_rng(3)
    )


@pytest.mark.parametrize("trick", TRICKS)
def test_each_trick_gives_a_real_mime_message(trick):
    message = spam_message(np.random.default_rng(1), (trick,))
    assert message.spam and message.tricks == (trick,) and message.planted
    parts = image_parts(message.raw).parts
    assert len(parts) == (2 if trick == "split" else 1)
    formats = {sniff_format(p.data) for p in parts}
    expected = {"jpeg": "JPEG", "png": "PNG"}.get(trick, "GIF")
    assert formats == {expected}
    declared = parts[0].content_type
    if trick == "wrong_ctype":
        assert declared == "image/jpeg"
    else:
        assert declared == f"image/{expected.lower()}"
    image = decode(parts[0].data, expected)
    assert image.corrupt is None
    assert image.frames == (message_lines(message) if trick == "animated" else 1)


def message_lines(message):
    return 7 if "breaking" in message.planted else 6


def test_spam_image_and_unknown_trick():
    image, planted, lines = spam_image(np.random.default_rng(4))
    assert image.mode == "RGB" and lines in (6, 7) and len(planted) >= 5
    with pytest.raises(ValueError, match="unknown tricks \\['blink'\\]"):
        spam_image(np.random.default_rng(4), ("blink",))


def test_legit_messages_carry_one_image_and_no_words():
    rng = np.random.default_rng(9)
    for _ in range(5):
        message = legit_message(rng)
        assert not message.spam and message.planted == ()
        assert len(image_parts(message.raw).parts) == 1
