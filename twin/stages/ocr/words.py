"""FuzzyOCR's word list and fuzzy word matching of OCR text.

Twins the matching step of FuzzyOCR (FACTS.md "FuzzyOCR"): OCR text is
normalised (``!;|081`` read as ``iiioal``, letters only, lower case), then
every word of the word list is looked for in every line as an approximate
substring: the smallest edit distance between the word and any stretch of the
line, divided by the word's length, must not exceed the threshold (0.25 in
v3; a word may carry its own, ``word::0.2``, as in FuzzyOcr.words). A word
counts once per line it matches in; when the counts add up to
``counts_required`` or more the score is ``base + (count - counts_required) *
add``.

The matching is vectorised over words, lines and line positions at once;
``match_words`` reports the number of dynamic-programming cells it filled,
the work unit of this step.

Raises ValueError on a malformed word list or bad thresholds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_WORD_LIST = (
    Path(__file__).resolve().parents[2] / "data" / "ocr" / ("FuzzyOcr.words")
)

_TRANSLATION = str.maketrans("!;|081", "iiioal")


@dataclass(frozen=True, slots=True)
class Word:
    """One word-list entry; ``threshold`` None means the plugin-wide one."""

    text: str
    threshold: float | None = None


@dataclass(frozen=True, slots=True)
class WordMatches:
    """Lines matched per word (words with no match left out) and cells filled."""

    lines_per_word: tuple[tuple[str, int], ...]
    cells: int

    @property
    def total(self) -> int:
        return sum(count for _, count in self.lines_per_word)


def normalise(text: str) -> str:
    """FuzzyOCR's normalisation: ``!;|081`` -> ``iiioal``, letters only, lower."""
    translated = text.translate(_TRANSLATION).lower()
    return "".join(c for c in translated if "a" <= c <= "z")


def parse_word_list(text: str, source: str = "word list") -> tuple[Word, ...]:
    """Words of a FuzzyOcr.words file: one a line, ``#`` comments, ``::threshold``."""
    words: dict[str, Word] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, threshold_text = line.partition("::")
        normalised = normalise(word)
        if not normalised:
            raise ValueError(f"{source}:{number}: word {word!r} has no letters")
        threshold = None
        if threshold_text:
            try:
                threshold = float(threshold_text)
            except ValueError:
                raise ValueError(
                    f"{source}:{number}: threshold {threshold_text!r} is not a number"
                ) from None
            if not 0.0 <= threshold < 1.0:
                raise ValueError(
                    f"{source}:{number}: threshold {threshold} must be in 0..1"
                )
        if normalised not in words:
            words[normalised] = Word(normalised, threshold)
    return tuple(words.values())


def load_word_list(path: str | Path | None = None) -> tuple[Word, ...]:
    """Read a word list (None: the FuzzyOcr.words shipped in twin/data/ocr)."""
    file = Path(path) if path is not None else DEFAULT_WORD_LIST
    return parse_word_list(file.read_text(encoding="utf-8"), str(file))


def _codes(texts: Sequence[str], width: int, pad: int) -> np.ndarray:
    table = np.full((len(texts), width), pad, dtype=np.uint8)
    for row, text in enumerate(texts):
        table[row, : len(text)] = np.frombuffer(text.encode("ascii"), np.uint8)
    return table


def match_words(
    lines: Iterable[str], words: Sequence[Word], threshold: float
) -> WordMatches:
    """Count, for every word, the normalised lines it approximately occurs in."""
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold={threshold} must be in 0..1")
    texts = [t for t in (normalise(line) for line in lines) if t]
    if not texts or not words:
        return WordMatches((), 0)
    width = max(len(t) for t in texts)
    longest = max(len(w.text) for w in words)
    line_codes = _codes(texts, width, 0)
    word_codes = _codes([w.text for w in words], longest, 255)
    lengths = np.array([len(w.text) for w in words])
    limits = np.array(
        [threshold if w.threshold is None else w.threshold for w in words]
    )
    columns = np.arange(width + 1, dtype=np.int32)
    # D[i][j]: edits to match the first i letters of a word ending at line char j;
    # a match may start anywhere (D[0][j] = 0).
    previous = np.zeros((len(words), len(texts), width + 1), dtype=np.int32)
    best = np.zeros((len(words), len(texts)), dtype=np.int32)
    for i in range(1, longest + 1):
        letter = word_codes[:, i - 1][:, None, None]
        diagonal = previous[:, :, :-1] + (line_codes[None, :, :] != letter)
        step = np.minimum(diagonal, previous[:, :, 1:] + 1)
        start = np.full((len(words), len(texts), 1), i, dtype=np.int32)
        candidates = np.concatenate([start, step], axis=2) - columns
        current = np.minimum.accumulate(candidates, axis=2) + columns
        done = lengths == i
        if done.any():
            best[done] = current[done].min(axis=2)
        previous = current
    relative = best / lengths[:, None]
    matched = (relative <= limits[:, None] + 1e-9).sum(axis=1)
    cells = int(lengths.sum()) * int(sum(len(t) for t in texts))
    found = tuple(
        (word.text, int(count))
        for word, count in zip(words, matched, strict=True)
        if count
    )
    return WordMatches(found, cells)


def fuzzy_score(
    total: int, counts_required: int, base_score: float, add_score: float
) -> float:
    """FuzzyOCR's score for ``total`` word-line matches (0 below the minimum)."""
    if total < counts_required:
        return 0.0
    return base_score + (total - counts_required) * add_score
