"""Image spam and ordinary images for the FuzzyOCR twin, drawn with Pillow.

Generates what a 2006-2007 gateway saw (the tricks of FuzzyOCR's sample
messages, tests/data/fuzzyocr/README): stock-pump and pharmacy text in
random fonts, sizes and colours, with speckle noise and confetti, filled
shapes behind the text, a slight rotation, images split into strips sent as
several parts, animated GIFs that reveal one line a frame, and a
Content-Type that names the wrong format; and ordinary images that must not
score: photo-like pictures (smooth gradients, blobs and sensor noise) and
logos (shapes and a short name). Every message is real MIME bytes with fixed
boundaries and headers, so the same generator state gives the same bytes.

All randomness comes from the ``numpy.random.Generator`` passed in. Fonts
are those of ``glyphs.template_fonts`` (Pillow's default, DejaVu when
installed). Raises ValueError for an unknown trick.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from email.mime.image import MIMEImage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from twin.stages.ocr.glyphs import FONT_DIRS, TEMPLATE_FONTS

TRICKS = (
    "plain",
    "noise",
    "shapes",
    "rotate",
    "split",
    "animated",
    "wrong_ctype",
    "jpeg",
    "png",
)

_COMPANIES = (
    "Quantum Energy",
    "Cash Now",
    "Red Reef Labs",
    "Makeup Limited",
    "PRG Group",
    "Amerityre",
    "Golden Apple Oil",
    "Sino Gas",
)
_FILLER = (
    "Hot pick for this week",
    "Do not miss this one",
    "Act fast",
    "Shares are moving up",
    "Watch this one on Monday",
    "Huge upside",
    "Get in before the rest",
    "Big gains ahead",
)
_PHARMA = ("viagra", "cialis", "levitra", "xanax", "valium", "meridia")
_LEGIT_NAMES = (
    "Campus Cafe",
    "ECE Dept",
    "Seminar Room",
    "Lab Tour",
    "Welcome",
    "Holiday Party",
    "Group Photo",
    "Poster Session",
)


@dataclass(frozen=True, slots=True)
class GeneratedMessage:
    """A generated message, whether it is spam, and the list words planted."""

    raw: bytes
    spam: bool
    planted: tuple[str, ...]
    tricks: tuple[str, ...]


def _fonts(size: int) -> list[ImageFont.FreeTypeFont | ImageFont.ImageFont]:
    fonts: list[ImageFont.FreeTypeFont | ImageFont.ImageFont] = [
        ImageFont.load_default(size=size)
    ]
    for directory in FONT_DIRS:
        for name in TEMPLATE_FONTS:
            path = directory / name
            if path.is_file():
                fonts.append(ImageFont.truetype(str(path), size))
    return fonts


def spam_lines(rng: np.random.Generator) -> tuple[list[str], tuple[str, ...]]:
    """Text lines of one spam image and the word-list words they contain."""
    if rng.random() < 0.6:
        company = str(rng.choice(_COMPANIES))
        symbol = "".join(rng.choice(list("ABCDEFGHKMNPRSTWXZ"), 4))
        price = rng.integers(5, 99)
        lines = [
            f"{symbol} Breaking News Alert",
            f"Company: {company} Inc.",
            f"Symbol: {symbol}",
            f"Current Price: $0.{price:02d}",
            f"Target Price: ${rng.integers(1, 9)}.00",
            "Strong Buy Recommendation",
            str(rng.choice(_FILLER)),
        ]
        planted = (
            "breaking",
            "news",
            "alert",
            "company",
            "symbol",
            "price",
            "target",
            "buy",
            "recommendation",
        )
    else:
        drugs = [str(d) for d in rng.choice(_PHARMA, 3, replace=False)]
        lines = [
            "Online Pharmacy",
            f"{drugs[0].upper()} $3.{rng.integers(10, 99)} per pill",
            f"{drugs[1].capitalize()} from $1.{rng.integers(10, 99)}",
            f"{drugs[2].capitalize()} soft tabs",
            "No Prescription needed",
            "Click here to order",
        ]
        planted = ("pharmacy", *drugs, "prescription", "click here")
    return lines, planted


def _colour(rng: np.random.Generator, dark: bool) -> tuple[int, int, int]:
    low, high = (0, 110) if dark else (170, 256)
    return tuple(int(v) for v in rng.integers(low, high, 3))


def _draw_text(
    rng: np.random.Generator, lines: list[str], tricks: set[str]
) -> Image.Image:
    size = int(rng.integers(13, 27))
    fonts = _fonts(size)
    font = fonts[int(rng.integers(len(fonts)))]
    spacing = int(size * 1.5)
    width = int(min(780, max(font.getlength(t) for t in lines) + 40))
    height = spacing * len(lines) + 30
    background = _colour(rng, dark=False)
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    if "shapes" in tricks:
        for _ in range(int(rng.integers(2, 5))):
            x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
            w, h = int(rng.integers(30, 160)), int(rng.integers(30, 120))
            box = [x, y, x + w, y + h]
            fill = _colour(rng, dark=False)
            if rng.random() < 0.5:
                draw.ellipse(box, fill=fill)
            else:
                draw.rectangle(box, fill=fill)
    draw.fontmode = "1" if rng.random() < 0.5 else "L"
    for number, text in enumerate(lines):
        x = 15 + int(rng.integers(0, 10))
        draw.text(
            (x, 15 + number * spacing), text, fill=_colour(rng, dark=True), font=font
        )
    if "noise" in tricks:
        pixels = np.asarray(image).copy()
        count = pixels.shape[0] * pixels.shape[1] // 60
        ys = rng.integers(0, pixels.shape[0], count)
        xs = rng.integers(0, pixels.shape[1], count)
        pixels[ys, xs] = rng.integers(0, 256, (count, 3))
        image = Image.fromarray(pixels)
    if "rotate" in tricks:
        image = image.rotate(
            float(rng.uniform(-2.5, 2.5)),
            resample=Image.BICUBIC,
            expand=True,
            fillcolor=background,
        )
    return image


def _encode(image: Image.Image, image_format: str) -> bytes:
    out = io.BytesIO()
    if image_format == "GIF":
        image.convert("P", palette=Image.Palette.ADAPTIVE, colors=64).save(out, "GIF")
    elif image_format == "JPEG":
        image.convert("RGB").save(out, "JPEG", quality=80)
    else:
        image.save(out, "PNG")
    return out.getvalue()


def _animated(rng: np.random.Generator, image: Image.Image, lines: int) -> bytes:
    """An animated GIF revealing the picture in ``lines`` horizontal bands."""
    width, height = image.size
    blank = Image.new("RGB", image.size, image.getpixel((0, 0)))
    frames = []
    for k in range(1, lines + 1):
        frame = blank.copy()
        cut = height * k // lines
        frame.paste(image.crop((0, 0, width, cut)), (0, 0))
        frames.append(frame.convert("P", palette=Image.Palette.ADAPTIVE, colors=64))
    out = io.BytesIO()
    durations = [int(rng.integers(100, 500))] * (lines - 1) + [60000]
    frames[0].save(
        out, "GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0
    )
    return out.getvalue()


def _message(
    rng: np.random.Generator,
    images: list[tuple[bytes, str, str]],
    subject: str,
    body: str,
) -> bytes:
    serial = int(rng.integers(10**8, 10**9))
    outer = MIMEMultipart("related", boundary=f"----=_NextPart_{serial:09d}_outer")
    outer["From"] = f"sender{serial % 997}@example.net"
    outer["To"] = "user@ece.example.edu"
    outer["Subject"] = subject
    outer["Date"] = "Tue, 08 Aug 2006 10:04:01 +0200"
    outer["Message-ID"] = f"<{serial}@example.net>"
    outer.attach(MIMEText(body, "plain", "us-ascii"))
    for number, (data, subtype, name) in enumerate(images):
        part = MIMEImage(data, _subtype=subtype)
        part.add_header("Content-Disposition", "inline", filename=name)
        part.add_header("Content-ID", f"<img{number}.{serial}>")
        outer.attach(part)
    return outer.as_bytes()


def spam_image(
    rng: np.random.Generator, tricks: tuple[str, ...] = ("plain",)
) -> tuple[Image.Image, tuple[str, ...], int]:
    """One spam picture, the list words planted in it and its number of lines."""
    unknown = set(tricks) - set(TRICKS)
    if unknown:
        raise ValueError(f"unknown tricks {sorted(unknown)}; allowed {TRICKS}")
    lines, planted = spam_lines(rng)
    return _draw_text(rng, lines, set(tricks)), planted, len(lines)


def spam_message(
    rng: np.random.Generator, tricks: tuple[str, ...] | None = None
) -> GeneratedMessage:
    """One image-spam message; ``tricks`` None draws one or two at random."""
    if tricks is None:
        tricks = tuple(
            str(t) for t in rng.choice(TRICKS, int(rng.integers(1, 3)), replace=False)
        )
    image, planted, lines = spam_image(rng, tricks)
    chosen = set(tricks)
    image_format = "JPEG" if "jpeg" in chosen else "PNG" if "png" in chosen else "GIF"
    subtype = {"GIF": "gif", "JPEG": "jpeg", "PNG": "png"}[image_format]
    if "wrong_ctype" in chosen:
        subtype = "jpeg" if image_format != "JPEG" else "gif"
    ext = {"GIF": "gif", "JPEG": "jpg", "PNG": "png"}[image_format]
    if "animated" in chosen:
        parts = [
            (
                _animated(rng, image, lines),
                "gif" if subtype != "jpeg" else "jpeg",
                "news.gif",
            )
        ]
    elif "split" in chosen:
        width, height = image.size
        cut = height // 2
        parts = [
            (
                _encode(image.crop((0, 0, width, cut)), image_format),
                subtype,
                f"a.{ext}",
            ),
            (
                _encode(image.crop((0, cut, width, height)), image_format),
                subtype,
                f"b.{ext}",
            ),
        ]
    else:
        parts = [
            (_encode(image, image_format), subtype, f"img{rng.integers(999)}.{ext}")
        ]
    raw = _message(rng, parts, "To take on supplier", "with a noiseless step")
    return GeneratedMessage(raw, True, planted, tuple(tricks))


def photo_image(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A photo-like picture: gradients, soft blobs and sensor noise."""
    y = np.linspace(0.0, 1.0, height)[:, None, None]
    x = np.linspace(0.0, 1.0, width)[None, :, None]
    top, bottom = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    pixels = top + (bottom - top) * y + rng.uniform(-60, 60, 3) * x
    for _ in range(int(rng.integers(3, 9))):
        cy, cx = rng.uniform(0, 1, 2)
        radius = rng.uniform(0.05, 0.3)
        blob = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * radius**2))
        pixels = pixels + blob * rng.uniform(-120, 120, 3)
    pixels = pixels + rng.normal(0, rng.uniform(2, 14), (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def logo_image(rng: np.random.Generator) -> Image.Image:
    """A logo: a few filled shapes and a short name that is no spam word."""
    width, height = int(rng.integers(120, 360)), int(rng.integers(60, 160))
    image = Image.new("RGB", (width, height), _colour(rng, dark=False))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(1, 4))):
        x, y = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
        box = [x, y, x + int(rng.integers(20, 80)), y + int(rng.integers(20, 60))]
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
    fonts = _fonts(int(rng.integers(14, 30)))
    draw.text(
        (10, height // 2),
        str(rng.choice(_LEGIT_NAMES)),
        fill=_colour(rng, dark=True),
        font=fonts[int(rng.integers(len(fonts)))],
    )
    return image


def legit_message(rng: np.random.Generator) -> GeneratedMessage:
    """An ordinary message with a photo or a logo attached."""
    if rng.random() < 0.6:
        image = photo_image(
            rng, int(rng.integers(200, 640)), int(rng.integers(150, 480))
        )
        data, subtype, name = _encode(image, "JPEG"), "jpeg", "photo.jpg"
    else:
        image = logo_image(rng)
        fmt = "GIF" if rng.random() < 0.5 else "PNG"
        data, subtype, name = _encode(image, fmt), fmt.lower(), f"logo.{fmt.lower()}"
    raw = _message(
        rng,
        [(data, subtype, name)],
        "Photos from Friday",
        "Here are the pictures from the lab tour.",
    )
    return GeneratedMessage(raw, False, (), ())
