"""FuzzyOCR's image hash database: known spam images skip the OCR.

Twins the optional image hashing of FuzzyOCR (FACTS.md "FuzzyOCR": "image hash
(size, h, w, colour count, top colours) checked against a DB of known spam
images ... learn hashes"; entries kept 35 days). The key of an image is its
file size, height, width, number of distinct colours and the five most
frequent colours with their pixel counts; colours are counted at 15 bits
(5 bits a channel) so one bincount does it. Matching is exact. An entry
remembers the score and words of the OCR hit that taught it, and when it was
last seen; ``expire`` (and every lookup) drops entries unseen for
``expiry_s`` of simulated time.

``save``/``load`` keep the database in a tab-separated text file, one entry
a line: key, score, first seen, last seen, description. Raises ValueError on
a malformed file or a negative expiry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

EXPIRY_S = 35 * 86400.0
"""FuzzyOCR v3 kept image hashes 35 days (FACTS.md "FuzzyOCR")."""

TOP_COLOURS = 5


@dataclass(frozen=True, slots=True)
class HashEntry:
    score: float
    first_seen_s: float
    last_seen_s: float
    description: str


def image_key(data_bytes: int, rgb: np.ndarray) -> str:
    """The hash key of a decoded image: size:height:width:colours:top colours."""
    height, width = rgb.shape[:2]
    packed = (
        (rgb[:, :, 0].astype(np.uint16) >> 3) << 10
        | (rgb[:, :, 1].astype(np.uint16) >> 3) << 5
        | rgb[:, :, 2].astype(np.uint16) >> 3
    )
    counts = np.bincount(packed.ravel(), minlength=1 << 15)
    colours = int(np.count_nonzero(counts))
    top = np.argsort(-counts, kind="stable")[:TOP_COLOURS]
    tops = ",".join(f"{int(c):04x}x{int(counts[c])}" for c in top if counts[c])
    return f"{data_bytes}:{height}:{width}:{colours}:{tops}"


class HashDb:
    """Known spam image keys with their score; verbs ``lookup``, ``learn``."""

    def __init__(self, expiry_s: float = EXPIRY_S) -> None:
        if not expiry_s > 0:
            raise ValueError(f"expiry_s={expiry_s} must be > 0 s")
        self.expiry_s = expiry_s
        self.entries: dict[str, HashEntry] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def expire(self, now: float) -> int:
        """Drop entries not seen for ``expiry_s``; returns how many went."""
        old = [
            k for k, e in self.entries.items() if now - e.last_seen_s > self.expiry_s
        ]
        for key in old:
            del self.entries[key]
        return len(old)

    def lookup(self, key: str, now: float) -> HashEntry | None:
        """The entry for ``key`` if known and fresh; a hit refreshes it."""
        entry = self.entries.get(key)
        if entry is None:
            return None
        if now - entry.last_seen_s > self.expiry_s:
            del self.entries[key]
            return None
        fresh = HashEntry(entry.score, entry.first_seen_s, now, entry.description)
        self.entries[key] = fresh
        return fresh

    def learn(self, key: str, score: float, description: str, now: float) -> None:
        """Remember a spam image (FuzzyOCR learns every image that scored)."""
        old = self.entries.get(key)
        first = old.first_seen_s if old is not None else now
        flat = " ".join(description.split())
        self.entries[key] = HashEntry(score, first, now, flat)

    def save(self, path: str | Path) -> int:
        """Write the database; returns the bytes written."""
        lines = [
            f"{key}\t{e.score!r}\t{e.first_seen_s!r}\t{e.last_seen_s!r}\t"
            f"{e.description}\n"
            for key, e in sorted(self.entries.items())
        ]
        text = "".join(lines)
        Path(path).write_text(text, encoding="utf-8")
        return len(text.encode("utf-8"))

    @classmethod
    def load(cls, path: str | Path, expiry_s: float = EXPIRY_S) -> HashDb:
        """Read a database written by ``save``."""
        database = cls(expiry_s)
        text = Path(path).read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), start=1):
            fields = line.split("\t")
            if len(fields) != 5:
                raise ValueError(
                    f"hash database {str(path)!r} line {number}: "
                    f"{len(fields)} fields, expected 5"
                )
            key, score, first, last, description = fields
            try:
                entry = HashEntry(float(score), float(first), float(last), description)
            except ValueError:
                raise ValueError(
                    f"hash database {str(path)!r} line {number}: bad number"
                ) from None
            database.entries[key] = entry
        return database
