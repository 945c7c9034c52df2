"""Batch means: point estimates and 95% confidence intervals after the warm-up.

The time after the warm-up is cut into ``batches`` equal batches. A per-job
quantity (a wait, a response time) is summed into the batch in which the job
finishes; a time-integrated quantity (busy servers) is read from cumulative
integrals at the batch boundaries. The estimate is the grand mean, and the
95% half-width is ``t(0.975, B-1) * s / sqrt(B)`` over the B batch means
(Law & Kelton, batch means). Batches with no observation are left out.
"""

from __future__ import annotations

import math

import numpy as np

# Student t 0.975 quantiles for 1..30 degrees of freedom (standard tables).
_T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with *df* degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom(={df}) must be >= 1")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959963984540054
    # Cornish-Fisher expansion; error below 1e-4 for df > 30.
    return (
        z
        + (z**3 + z) / (4 * df)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
    )


def mean_ci(batch_means: np.ndarray) -> tuple[float, float]:
    """Grand mean and 95% half-width of *batch_means* (NaNs left out)."""
    values = np.asarray(batch_means, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan, math.nan
    if values.size == 1:
        return float(values[0]), math.nan
    half = t975(values.size - 1) * float(values.std(ddof=1)) / math.sqrt(values.size)
    return float(values.mean()), half


class BatchClock:
    """Maps a simulated time to its batch after the warm-up (-1 before it)."""

    __slots__ = ("warmup", "length", "count")

    def __init__(self, warmup: float, duration: float, count: int) -> None:
        if not duration > warmup:
            raise ValueError(f"duration(={duration}) must exceed warmup(={warmup})")
        self.warmup = warmup
        self.length = (duration - warmup) / count
        self.count = count

    def index(self, now: float) -> int:
        if now < self.warmup:
            return -1
        return min(int((now - self.warmup) / self.length), self.count - 1)

    def boundaries(self) -> list[float]:
        return [self.warmup + i * self.length for i in range(self.count + 1)]


class Tally:
    """Per-batch sums and counts of one per-job quantity."""

    __slots__ = ("sums", "counts")

    def __init__(self, batches: int) -> None:
        self.sums = [0.0] * batches
        self.counts = [0] * batches

    def add(self, batch: int, value: float) -> None:
        self.sums[batch] += value
        self.counts[batch] += 1

    def batch_means(self) -> np.ndarray:
        sums = np.asarray(self.sums)
        counts = np.asarray(self.counts)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)

    def total_count(self) -> int:
        return int(sum(self.counts))

    def mean_ci(self) -> tuple[float, float]:
        return mean_ci(self.batch_means())
