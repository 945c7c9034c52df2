"""The FuzzyOCR stage of the gateway: OCR of attached images for SpamAssassin.

Twins the FuzzyOCR 3 SpamAssassin plugin (FACTS.md "FuzzyOCR") on one message:
skipped when disabled or when the score SpamAssassin already gave is at or
above ``autodisable_score`` (or at or below ``autodisable_negative_score``);
else, for up to ``max_images`` image parts (``images.image_parts``): the format
is sniffed by magic bytes (a disagreeing Content-Type scores
FUZZY_OCR_WRONG_CTYPE), images outside the size limits are skipped, the image
is decoded (a decoding error scores FUZZY_OCR_CORRUPT_IMG and what was decoded
is still read), optionally looked up by hash (a known spam image scores
FUZZY_OCR_KNOWN_HASH with its remembered score, without OCR), and read by the
scansets of ``masks.scansets`` in turn. For each word of the word list the
number of lines it matches is the largest any scanset read; scanning stops
once the words found reach ``counts_required`` (FuzzyOCR's minimal scanset).
FUZZY_OCR scores ``base + (count - counts_required) * add`` for the image with
the most word matches, and its hash is learnt.

Timeout: FuzzyOCR gave up after ``timeout_s`` of wall time. The twin has no
wall clock, so the stage prices the work it has counted so far with
``reference_cost_s`` (seconds per unit; the defaults are the reference-CPU
costs of hardware/costs/ocr.yaml, a scenario on a slower host passes them
scaled by the host's relative speed) and stops after the step that crosses
``timeout_s``: the OCR words are then dropped (TIMED_OUT) while the wrong
Content-Type and corrupt-image hits found so far stay, as in the plugin.

Counts (CPU_UNITS): the message, its bytes scanned, encoded bytes decoded,
images handled, GIF frames assembled, pixels decoded, image hashes and the
pixels they histogram, pixels despeckled, OCR passes, the pixels each pass
examined, ink pixels projected to find the skew, pixels interpolated to rotate
skewed text level, glyphs recognised and the extra glyph boxes tried while
re-segmenting, and fuzzy-matching cells. No
disk work: the hash database lives in memory (``HashDb.save`` persists it
when the caller wants).

Scenario keys: the fields of ``OcrSettings``. Raises ValueError on bad
settings or a bad word list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType

from twin.stages.ocr.engine import read_mask
from twin.stages.ocr.hashdb import EXPIRY_S, HashDb, image_key
from twin.stages.ocr.images import (
    decode,
    image_parts,
    image_size,
    sniff_format,
    wrong_content_type,
)
from twin.stages.ocr.masks import scansets
from twin.stages.ocr.words import Word, fuzzy_score, load_word_list, match_words
from twin.stages.work import Work

CPU_UNITS: dict[str, str] = {
    "ocr.message": "one message handed to the plugin (part list walked)",
    "ocr.byte": "one message byte scanned for image parts",
    "ocr.decode_byte": "one base64 byte of an image part decoded",
    "ocr.image": "one image handled (temp file, helper processes, format check)",
    "ocr.frame": "one GIF frame assembled (gifsicle)",
    "ocr.pixel": "one pixel decoded and converted to PNM",
    "ocr.hash": "one image hash computed and looked up",
    "ocr.hash_pixel": "one pixel counted into the colour histogram of a hash",
    "ocr.pass": "one OCR pass (scanset) started: a gocr/ocrad process",
    "ocr.pass_pixel": "one pixel examined by an OCR pass",
    "ocr.glyph": "one glyph recognised by an OCR pass",
    "ocr.glyph_try": "one extra glyph box recognised while re-segmenting a pass",
    "ocr.skew_pixel": "one ink pixel projected at one trial skew angle",
    "ocr.rotate_pixel": "one pixel interpolated (bilinear) rotating an image level",
    "ocr.despeckle_pixel": "one pixel despeckled before thresholding",
    "ocr.match_cell": "one cell of the fuzzy word-matching table",
}

REFERENCE_COST_S: Mapping[str, float] = MappingProxyType(
    {
        "ocr.message": 1.0e-4,
        "ocr.byte": 5.0e-9,
        "ocr.decode_byte": 1.0e-8,
        "ocr.image": 1.5e-2,
        "ocr.frame": 1.0e-3,
        "ocr.pixel": 3.0e-8,
        "ocr.hash": 5.0e-3,
        "ocr.hash_pixel": 2.0e-8,
        "ocr.pass": 5.0e-3,
        "ocr.pass_pixel": 7.0e-7,
        "ocr.glyph": 3.6e-4,
        "ocr.glyph_try": 3.6e-4,
        "ocr.skew_pixel": 3.0e-9,
        "ocr.rotate_pixel": 1.6e-8,
        "ocr.despeckle_pixel": 6.0e-9,
        "ocr.match_cell": 2.0e-8,
    }
)
"""Seconds per unit on the reference core; the same as hardware/costs/ocr.yaml."""

FUZZY_OCR = "FUZZY_OCR"
FUZZY_OCR_WRONG_CTYPE = "FUZZY_OCR_WRONG_CTYPE"
FUZZY_OCR_CORRUPT_IMG = "FUZZY_OCR_CORRUPT_IMG"
FUZZY_OCR_KNOWN_HASH = "FUZZY_OCR_KNOWN_HASH"


class OcrDecision(Enum):
    NOT_SCANNED = "not_scanned"
    CLEAN = "clean"
    SPAM = "spam"
    TIMED_OUT = "timed_out"


@dataclass(frozen=True, slots=True)
class OcrSettings:
    """FuzzyOCR 3 settings (FACTS.md "FuzzyOCR" unless said otherwise).

    ``threshold`` 0.25, ``counts_required`` 2, ``base_score`` 5,
    ``add_score`` 1, images 4..800 px (``min_/max_height_px``,
    ``min_/max_width_px``), ``timeout_s`` 10, ``autodisable_score`` 10 and
    ``autodisable_negative_score`` -5, ``hash_expiry_s`` 35 days; hashing is
    optional in FuzzyOCR, so ``use_hash_db`` is off by default.
    ``wrong_ctype_score`` 1.5 and ``corrupt_image_score`` 2.5 are the scores
    shown in FuzzyOCR's samples/README. ``max_images`` 5 (assumption: a cap
    per message). ``colour_layers`` 4 (assumption: the decolorize scansets,
    one per dominant colour). ``word_list_path`` None reads the FuzzyOcr.words
    shipped in twin/data/ocr. ``reference_cost_s`` prices work for the timeout.
    """

    enabled: bool = True
    threshold: float = 0.25
    counts_required: int = 2
    base_score: float = 5.0
    add_score: float = 1.0
    wrong_ctype_score: float = 1.5
    corrupt_image_score: float = 2.5
    min_height_px: int = 4
    min_width_px: int = 4
    max_height_px: int = 800
    max_width_px: int = 800
    timeout_s: float = 10.0
    max_images: int = 5
    autodisable_score: float = 10.0
    autodisable_negative_score: float = -5.0
    use_hash_db: bool = False
    hash_expiry_s: float = EXPIRY_S
    colour_layers: int = 4
    word_list_path: str | None = None
    reference_cost_s: Mapping[str, float] = field(
        default_factory=lambda: REFERENCE_COST_S
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold < 1.0:
            raise ValueError(f"threshold={self.threshold} must be in 0..1")
        bounds = {
            "counts_required": (1, 1000),
            "min_height_px": (1, 100_000),
            "min_width_px": (1, 100_000),
            "max_height_px": (1, 100_000),
            "max_width_px": (1, 100_000),
            "max_images": (0, 1000),
            "colour_layers": (0, 8),
        }
        for name, (low, high) in bounds.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"{name}={value} must be in {low}..{high}")
        if self.min_height_px > self.max_height_px:
            raise ValueError(
                f"min_height_px={self.min_height_px} exceeds "
                f"max_height_px={self.max_height_px}"
            )
        if self.min_width_px > self.max_width_px:
            raise ValueError(
                f"min_width_px={self.min_width_px} exceeds "
                f"max_width_px={self.max_width_px}"
            )
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s={self.timeout_s} must be > 0 s")
        if not self.hash_expiry_s > 0:
            raise ValueError(f"hash_expiry_s={self.hash_expiry_s} must be > 0 s")
        if self.autodisable_negative_score >= self.autodisable_score:
            raise ValueError(
                f"autodisable_negative_score={self.autodisable_negative_score} "
                f"must be below autodisable_score={self.autodisable_score}"
            )
        for name in (
            "base_score",
            "add_score",
            "wrong_ctype_score",
            "corrupt_image_score",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")
        missing = set(CPU_UNITS) - set(self.reference_cost_s)
        if missing:
            raise ValueError(f"reference_cost_s lacks {sorted(missing)}")
        negative = [k for k, v in self.reference_cost_s.items() if v < 0]
        if negative:
            raise ValueError(f"reference_cost_s has negative costs for {negative}")


@dataclass(frozen=True, slots=True)
class OcrResult:
    """Decision, total score, the rules hit, the words found and the work."""

    decision: OcrDecision
    score: float
    hits: tuple[tuple[str, float, str], ...]
    words: tuple[tuple[str, int], ...]
    reason: str
    work: Work


class _Meter:
    """Counts work units and prices them for the timeout."""

    __slots__ = ("cpu", "costs", "seconds")

    def __init__(self, costs: Mapping[str, float]) -> None:
        self.cpu = dict.fromkeys(CPU_UNITS, 0)
        self.costs = costs
        self.seconds = 0.0

    def add(self, kind: str, units: int) -> None:
        self.cpu[kind] += units
        self.seconds += units * self.costs[kind]

    def work(self) -> Work:
        return Work(cpu={k: v for k, v in self.cpu.items() if v})


class FuzzyOcr:
    """The plugin with its word list and hash database; verb ``check``."""

    def __init__(
        self,
        settings: OcrSettings | None = None,
        words: tuple[Word, ...] | None = None,
        hash_db: HashDb | None = None,
    ) -> None:
        self.settings = settings or OcrSettings()
        self.words = (
            words if words is not None else load_word_list(self.settings.word_list_path)
        )
        self.hash_db = (
            hash_db if hash_db is not None else HashDb(self.settings.hash_expiry_s)
        )

    def check(
        self, message: bytes, now: float, current_score: float = 0.0
    ) -> OcrResult:
        """Scan the images of one message; ``current_score`` is SpamAssassin's."""
        settings = self.settings
        meter = _Meter(settings.reference_cost_s)
        if not settings.enabled:
            return self._result(OcrDecision.NOT_SCANNED, [], (), "disabled", meter)
        meter.add("ocr.message", 1)
        if current_score >= settings.autodisable_score or (
            current_score <= settings.autodisable_negative_score
        ):
            return self._result(
                OcrDecision.NOT_SCANNED,
                [],
                (),
                f"autodisabled: score {current_score:g} outside "
                f"{settings.autodisable_negative_score:g}.."
                f"{settings.autodisable_score:g}",
                meter,
            )
        found = image_parts(message)
        meter.add("ocr.byte", found.scanned_bytes)
        meter.add("ocr.decode_byte", found.decoded_bytes)
        if not found.parts:
            return self._result(OcrDecision.NOT_SCANNED, [], (), "no images", meter)
        hits: list[tuple[str, float, str]] = []
        best_words: tuple[tuple[str, int], ...] = ()
        best_score = 0.0
        known: tuple[float, str] | None = None
        notes: list[str] = []
        for index, part in enumerate(found.parts):
            if index >= settings.max_images:
                notes.append(f"{len(found.parts) - index} images over max_images")
                break
            meter.add("ocr.image", 1)
            image_format = sniff_format(part.data)
            if image_format is None:
                notes.append(f"image {index + 1}: unknown format")
                continue
            if wrong_content_type(part.content_type, image_format) and not any(
                h[0] == FUZZY_OCR_WRONG_CTYPE for h in hits
            ):
                hits.append(
                    (
                        FUZZY_OCR_WRONG_CTYPE,
                        settings.wrong_ctype_score,
                        f'image has format "{image_format}" but content-type is '
                        f'"{part.content_type}"',
                    )
                )
            size = image_size(part.data)
            if size is not None and not (
                settings.min_width_px <= size[0] <= settings.max_width_px
                and settings.min_height_px <= size[1] <= settings.max_height_px
            ):
                notes.append(f"image {index + 1}: {size[0]}x{size[1]} px out of limits")
                continue
            image = decode(part.data, image_format)
            meter.add("ocr.frame", image.frames if image_format == "GIF" else 0)
            meter.add("ocr.pixel", image.pixels_decoded)
            if image.corrupt is not None and not any(
                h[0] == FUZZY_OCR_CORRUPT_IMG for h in hits
            ):
                hits.append(
                    (
                        FUZZY_OCR_CORRUPT_IMG,
                        settings.corrupt_image_score,
                        f"corrupt image: {image.corrupt}",
                    )
                )
            if image.rgb is None:
                continue
            key = None
            if settings.use_hash_db:
                meter.add("ocr.hash", 1)
                meter.add(
                    "ocr.hash_pixel", int(image.rgb.shape[0] * image.rgb.shape[1])
                )
                key = image_key(len(part.data), image.rgb)
                entry = self.hash_db.lookup(key, now)
                if entry is not None:
                    if known is None or entry.score > known[0]:
                        known = (entry.score, entry.description)
                    continue
            if meter.seconds > settings.timeout_s:
                return self._timed_out(hits, meter)
            words = self._read(image.rgb, meter)
            if meter.seconds > settings.timeout_s:
                return self._timed_out(hits, meter)
            total = sum(count for _, count in words)
            score = fuzzy_score(
                total, settings.counts_required, settings.base_score, settings.add_score
            )
            if score > 0 and key is not None:
                self.hash_db.learn(key, score, _describe(words), now)
            if score > best_score:
                best_score, best_words = score, words
        if known is not None and known[0] >= best_score:
            hits.append(
                (FUZZY_OCR_KNOWN_HASH, known[0], f"image known as spam: {known[1]}")
            )
        elif best_score > 0:
            hits.append((FUZZY_OCR, best_score, _describe(best_words)))
        decision = OcrDecision.SPAM if hits else OcrDecision.CLEAN
        reason = (
            "; ".join(f"{name} {score:g}" for name, score, _ in hits)
            if hits
            else "no spam words in images"
        )
        if notes:
            reason += "; " + "; ".join(notes)
        return self._result(decision, hits, best_words, reason, meter)

    def _read(self, rgb, meter: _Meter) -> tuple[tuple[str, int], ...]:
        """Run the scansets until enough words are found; words by max over passes."""
        settings = self.settings
        best: dict[str, int] = {}
        meter.add("ocr.despeckle_pixel", int(rgb.shape[0] * rgb.shape[1]))
        for scanset in scansets(rgb, settings.colour_layers):
            meter.add("ocr.pass", 1)
            reading = read_mask(scanset.mask, levelled=scanset.levelled)
            meter.add("ocr.pass_pixel", reading.pixels)
            meter.add("ocr.glyph", reading.glyphs)
            meter.add("ocr.glyph_try", reading.tried)
            meter.add("ocr.skew_pixel", scanset.skew_pixels + reading.skew_pixels)
            meter.add(
                "ocr.rotate_pixel", scanset.rotated_pixels + reading.rotated_pixels
            )
            matches = match_words(reading.lines, self.words, settings.threshold)
            meter.add("ocr.match_cell", matches.cells)
            for word, count in matches.lines_per_word:
                best[word] = max(best.get(word, 0), count)
            if sum(best.values()) >= settings.counts_required:
                break
            if meter.seconds > settings.timeout_s:
                break
        order = {w.text: i for i, w in enumerate(self.words)}
        return tuple(sorted(best.items(), key=lambda item: order[item[0]]))

    def _timed_out(
        self, hits: list[tuple[str, float, str]], meter: _Meter
    ) -> OcrResult:
        return self._result(
            OcrDecision.TIMED_OUT,
            hits,
            (),
            f"timed out: {meter.seconds:.2f} s of reference CPU over "
            f"timeout_s={self.settings.timeout_s:g}",
            meter,
        )

    @staticmethod
    def _result(
        decision: OcrDecision,
        hits: list[tuple[str, float, str]],
        words: tuple[tuple[str, int], ...],
        reason: str,
        meter: _Meter,
    ) -> OcrResult:
        score = round(sum(h[1] for h in hits), 6)
        return OcrResult(decision, score, tuple(hits), words, reason, meter.work())


def _describe(words: tuple[tuple[str, int], ...]) -> str:
    listed = ", ".join(f'"{word}" in {count} lines' for word, count in words)
    total = sum(count for _, count in words)
    return f"words found: {listed} ({total} word occurrences found)"
