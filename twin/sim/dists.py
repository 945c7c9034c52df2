"""Service and inter-arrival distributions, drawn in buffered blocks.

A ``Sampler`` is called with no arguments and returns one draw; it refills a
block of ``BLOCK`` numpy draws at a time, which is an order of magnitude
cheaper than one numpy call per draw. Each also knows its mean and second
moment, which the analytic estimates (Pollaczek-Khinchine) need.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

BLOCK = 4096


class Sampler:
    """Draws of one distribution from *rng*, refilled *BLOCK* at a time."""

    __slots__ = ("_fill", "_block", "_index", "mean", "second_moment", "label")

    def __init__(
        self,
        fill: Callable[[int], np.ndarray],
        mean: float,
        second_moment: float,
        label: str,
    ) -> None:
        self._fill = fill
        self._block: list[float] = []
        self._index = 0
        self.mean = mean
        self.second_moment = second_moment
        self.label = label

    def __call__(self) -> float:
        index = self._index
        if index >= len(self._block):
            self._block = self._fill(BLOCK).tolist()
            index = 0
        self._index = index + 1
        return self._block[index]

    @property
    def scv(self) -> float:
        """Squared coefficient of variation, Var/mean^2."""
        if self.mean == 0:
            return 0.0
        return (self.second_moment - self.mean**2) / self.mean**2


def exponential(rng: np.random.Generator, mean: float) -> Sampler:
    return Sampler(
        lambda n: rng.exponential(mean, n),
        mean,
        2 * mean**2,
        f"exponential(mean={mean:g})",
    )


def deterministic(mean: float) -> Sampler:
    return Sampler(
        lambda n: np.full(n, mean), mean, mean**2, f"deterministic({mean:g})"
    )


def erlang(rng: np.random.Generator, mean: float, k: int) -> Sampler:
    if k < 1:
        raise ValueError(f"erlang k(={k}) must be >= 1")
    scale = mean / k
    return Sampler(
        lambda n: rng.gamma(k, scale, n),
        mean,
        mean**2 * (1 + 1 / k),
        f"erlang(k={k}, mean={mean:g})",
    )


def lognormal(rng: np.random.Generator, mean: float, cv: float) -> Sampler:
    if mean <= 0 or cv <= 0:
        raise ValueError(f"lognormal needs mean(={mean}) > 0 and cv(={cv}) > 0")
    sigma2 = math.log1p(cv * cv)
    mu = math.log(mean) - sigma2 / 2
    sigma = math.sqrt(sigma2)
    return Sampler(
        lambda n: rng.lognormal(mu, sigma, n),
        mean,
        mean**2 * (1 + cv * cv),
        f"lognormal(mean={mean:g}, cv={cv:g})",
    )


def uniform(rng: np.random.Generator, low: float, high: float) -> Sampler:
    if not low < high:
        raise ValueError(f"uniform needs low(={low}) < high(={high})")
    mean = (low + high) / 2
    second = (low * low + low * high + high * high) / 3
    return Sampler(
        lambda n: rng.uniform(low, high, n), mean, second, f"uniform({low:g}, {high:g})"
    )


def empirical(rng: np.random.Generator, values: Sequence[float]) -> Sampler:
    if not values:
        raise ValueError("empirical needs at least one value")
    table = np.asarray(values, dtype=float)
    return Sampler(
        lambda n: table[rng.integers(0, len(table), n)],
        float(table.mean()),
        float((table**2).mean()),
        f"empirical({len(table)} values)",
    )


def unit_uniform(rng: np.random.Generator) -> Sampler:
    """Uniform draws on [0, 1), for routing decisions."""
    return Sampler(rng.random, 0.5, 1 / 3, "uniform(0, 1)")


def from_spec(spec, rng: np.random.Generator) -> Sampler:
    """The sampler of a ``twin.schema.queueing.Service``."""
    if spec.dist == "exponential":
        return exponential(rng, spec.mean)
    if spec.dist == "deterministic":
        return deterministic(spec.mean)
    if spec.dist == "erlang":
        return erlang(rng, spec.mean, spec.k)
    if spec.dist == "lognormal":
        return lognormal(rng, spec.mean, spec.cv)
    if spec.dist == "uniform":
        return uniform(rng, spec.low, spec.high)
    if spec.dist == "empirical":
        return empirical(rng, spec.values)
    raise ValueError(f"unknown distribution {spec.dist!r}")
