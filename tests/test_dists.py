"""Samplers: moments as documented, draws matching them."""

import numpy as np
import pytest

from twin.sim import dists


@pytest.mark.parametrize(
    ("make", "mean", "second"),
    [
        (lambda r: dists.exponential(r, 2.0), 2.0, 8.0),
        (lambda r: dists.deterministic(1.5), 1.5, 2.25),
        (lambda r: dists.erlang(r, 2.0, 4), 2.0, 4.0 * 1.25),
        (lambda r: dists.lognormal(r, 1.0, 0.5), 1.0, 1.25),
        (lambda r: dists.uniform(r, 1.0, 3.0), 2.0, 13 / 3),
        (lambda r: dists.empirical(r, [1.0, 2.0, 3.0]), 2.0, 14 / 3),
    ],
)
def test_moments_and_draws(make, mean, second):
    sampler = make(np.random.default_rng(3))
    assert sampler.mean == pytest.approx(mean)
    assert sampler.second_moment == pytest.approx(second)
    draws = np.array([sampler() for _ in range(60000)])
    spread = np.sqrt(max(second - mean**2, 1e-12) / len(draws))
    assert abs(draws.mean() - mean) < 5 * spread + 1e-12
    assert draws.min() >= 0


def test_bad_parameters():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="k"):
        dists.erlang(rng, 1.0, 0)
    with pytest.raises(ValueError, match="low"):
        dists.uniform(rng, 2.0, 1.0)
    with pytest.raises(ValueError, match="at least one"):
        dists.empirical(rng, [])
