"""Finding, sniffing and decoding image parts (twin.stages.ocr.images)."""

import io
from pathlib import Path

import numpy as np
from PIL import Image

from twin.stages.ocr.images import (
    decode,
    image_parts,
    image_size,
    sniff_format,
    wrong_content_type,
)

DATA = Path(__file__).parent / "data" / "fuzzyocr"


def parts_of(name):
    return image_parts((DATA / name).read_bytes())


def test_image_parts_of_the_samples():
    gif = parts_of("ocr-gif.eml")
    assert [(p.content_type, p.filename) for p in gif.parts] == [
        ("image/jpeg", "sbillet")
    ]
    assert gif.scanned_bytes == 16108 and gif.decoded_bytes == 9779
    assert len(gif.parts[0].data) == 7239
    multi = parts_of("ocr-multi.eml")
    assert [p.filename for p in multi.parts] == ["rubblein9.gif", "seductive.gif"]


def test_message_without_image_header_is_not_parsed():
    raw = b"Subject: hi\r\nContent-Type: text/plain\r\n\r\nno pictures here\r\n"
    found = image_parts(raw)
    assert found.parts == () and found.scanned_bytes == len(raw)
    assert found.decoded_bytes == 0


def test_octet_stream_with_image_name_counts_as_image():
    raw = (
        b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
        b"Content-Type: application/octet-stream; name=a.png\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--XX--\r\n"
    )
    found = image_parts(raw)
    assert [p.data for p in found.parts] == [b"\x89PNG\r\n\x1a\n"]


def test_magic_bytes_and_wrong_content_type():
    assert sniff_format(b"GIF89a...") == "GIF"
    assert sniff_format(b"GIF87a...") == "GIF"
    assert sniff_format(b"\xff\xd8\xff\xe0") == "JPEG"
    assert sniff_format(b"\x89PNG\r\n\x1a\n") == "PNG"
    assert sniff_format(b"BM6\x00") is None
    assert wrong_content_type("image/jpeg", "GIF")
    assert not wrong_content_type("image/pjpeg", "JPEG")
    assert not wrong_content_type("image/x-png", "PNG")
    assert not wrong_content_type("application/octet-stream", "GIF")


def test_corrupt_gif_is_reported_and_partly_decoded():
    data = parts_of("ocr-gif.eml").parts[0].data
    image = decode(data, "GIF")
    assert image.corrupt is not None and "decoding aborted" in image.corrupt
    assert (image.width, image.height, image.frames) == (549, 327, 1)
    assert image.rgb.shape == (327, 549, 3)
    assert image.pixels_decoded == 549 * 327


def test_animated_gif_frames_are_assembled():
    data = parts_of("ocr-animated.eml").parts[0].data
    image = decode(data, "GIF")
    assert image.corrupt is None and image.frames == 7
    assert image.pixels_decoded == 447 * 361 * 7
    # the last composite holds the text of every frame: the top line is red ink
    top = image.rgb[10:30, 10:340]
    assert (top[:, :, 0] > 150).any() and (top[:, :, 1] < 80).any()


def test_image_size_from_header_and_garbage():
    out = io.BytesIO()
    Image.fromarray(np.zeros((7, 9, 3), np.uint8)).save(out, "PNG")
    assert image_size(out.getvalue()) == (9, 7)
    assert image_size(b"GIF89a garbage") is None
    assert decode(b"\xff\xd8\xff garbage", "JPEG").rgb is None
