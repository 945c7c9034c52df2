"""Image parts of a message for FuzzyOCR: find, sniff, check and decode them.

Twins FuzzyOCR's front half (FACTS.md "FuzzyOCR"): every ``image/*`` part (and
an ``application/octet-stream`` part whose file name ends in .gif, .jpg,
.jpeg or .png) is base64-decoded; its real format is recognised by magic
bytes (GIF, JPEG, PNG); a declared type that disagrees is a wrong
Content-Type; the image is decoded with Pillow, an animated GIF assembled
frame by frame (the last composite is read, as gifsicle's unoptimised output
was), and a decoding error marks it corrupt while the part decoded so far
is still read (giffix did the same).

Counts what it did for the stage: message bytes scanned, encoded bytes
decoded, frames assembled, pixels decoded. A message with no image header at
all is rejected by one precompiled regex without parsing.

Raises nothing for damaged input.
"""

from __future__ import annotations

import email
import email.policy
import io
import re
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

GIF = "GIF"
JPEG = "JPEG"
PNG = "PNG"

_MAGIC = (
    (b"GIF87a", GIF),
    (b"GIF89a", GIF),
    (b"\xff\xd8\xff", JPEG),
    (b"\x89PNG\r\n\x1a\n", PNG),
)
_DECLARED = {
    "image/gif": GIF,
    "image/jpeg": JPEG,
    "image/jpg": JPEG,
    "image/pjpeg": JPEG,
    "image/png": PNG,
    "image/x-png": PNG,
}
_IMAGE_NAME = re.compile(r"\.(gif|jpe?g|png)$", re.I)
_MAY_HAVE_IMAGE = re.compile(
    rb"content-type:\s*(?:image/|application/octet-stream)", re.I
)


@dataclass(frozen=True, slots=True)
class ImagePart:
    """One image-like MIME part, decoded from its transfer encoding."""

    content_type: str
    filename: str
    data: bytes
    encoded_bytes: int


@dataclass(frozen=True, slots=True)
class MessageImages:
    parts: tuple[ImagePart, ...]
    scanned_bytes: int
    decoded_bytes: int


@dataclass(frozen=True, slots=True)
class DecodedImage:
    """A decoded image: its RGB pixels (None if undecodable) and what it cost."""

    format: str
    width: int
    height: int
    frames: int
    rgb: np.ndarray | None
    corrupt: str | None
    pixels_decoded: int
    colours: int


def image_parts(message: bytes) -> MessageImages:
    """Every image part of a raw message (RFC 5322 + MIME)."""
    if not _MAY_HAVE_IMAGE.search(message):
        return MessageImages((), len(message), 0)
    parsed = email.message_from_bytes(message, policy=email.policy.compat32)
    parts: list[ImagePart] = []
    decoded = 0
    for part in parsed.walk():
        if part.is_multipart():
            continue
        content_type = part.get_content_type()
        filename = part.get_filename() or ""
        if not (
            content_type.startswith("image/")
            or (
                content_type == "application/octet-stream"
                and _IMAGE_NAME.search(filename)
            )
        ):
            continue
        raw = part.get_payload(decode=False)
        encoded = len(raw) if isinstance(raw, str) else 0
        data = part.get_payload(decode=True) or b""
        decoded += encoded
        parts.append(ImagePart(content_type, filename, data, encoded))
    return MessageImages(tuple(parts), len(message), decoded)


def sniff_format(data: bytes) -> str | None:
    """GIF, JPEG or PNG by magic bytes, else None (FuzzyOCR skips others)."""
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    return None


def wrong_content_type(content_type: str, image_format: str) -> bool:
    """True when the declared image type names a different format."""
    declared = _DECLARED.get(content_type)
    return declared is not None and declared != image_format


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the image header, None if unreadable."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (OSError, ValueError, SyntaxError):
        return None


def decode(data: bytes, image_format: str) -> DecodedImage:
    """Decode all frames; a decoding error keeps what was decoded and says why."""
    try:
        image = Image.open(io.BytesIO(data))
    except (OSError, ValueError, SyntaxError) as error:
        return DecodedImage(image_format, 0, 0, 0, None, str(error), 0, 0)
    width, height = image.size
    frames = 0
    corrupt: str | None = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while True:
            try:
                if frames:
                    image.seek(frames)
                image.load()
                frames += 1
            except EOFError:
                break
            except (OSError, ValueError, SyntaxError) as error:
                corrupt = f"{image_format} decoding aborted: {error}"
                frames += 1
                break
            if not getattr(image, "is_animated", False):
                break
    colours = 0
    if image.mode == "P":
        palette = image.getpalette() or []
        colours = len(palette) // 3
    try:
        rgb = np.asarray(image.convert("RGB"))
    except (OSError, ValueError):
        return DecodedImage(
            image_format,
            width,
            height,
            frames,
            None,
            corrupt or "no pixels decoded",
            0,
            colours,
        )
    pixels = width * height * frames
    return DecodedImage(
        image_format, width, height, frames, rgb, corrupt, pixels, colours
    )
