"""Named random streams derived from the scenario seed.

Every random draw of a run comes from ``Streams(seed).generator(name)``: a
numpy ``Generator`` whose ``SeedSequence`` has the scenario seed as entropy and
a spawn key derived from *name* (SHA-256, not Python's salted ``hash``). So a
stream depends only on the seed and its name: two configurations run with the
same seed see the same arrivals (common random numbers), and adding a stream
never shifts another.
"""

from __future__ import annotations

import hashlib

import numpy as np


def spawn_key(name: str) -> tuple[int, ...]:
    """Four 32-bit words of SHA-256(*name*): a stable spawn key."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))


class Streams:
    """The random streams of one run with seed *seed*."""

    def __init__(self, seed: int) -> None:
        if seed < 0:
            raise ValueError(f"seed(={seed}) must be >= 0")
        self.seed = int(seed)
        self._made: dict[str, np.random.Generator] = {}

    def generator(self, name: str) -> np.random.Generator:
        """The generator of stream *name*; the same object on every call."""
        made = self._made.get(name)
        if made is None:
            sequence = np.random.SeedSequence(self.seed, spawn_key=spawn_key(name))
            made = np.random.Generator(np.random.PCG64(sequence))
            self._made[name] = made
        return made

    __call__ = generator

    @property
    def names(self) -> list[str]:
        return sorted(self._made)
