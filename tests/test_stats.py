"""Batch means and the t quantiles behind the 95% intervals."""

import math

import numpy as np
import pytest

from twin.sim.stats import BatchClock, Tally, mean_ci, t975


def test_t_quantiles_match_tables():
    assert t975(1) == pytest.approx(12.706)
    assert t975(29) == pytest.approx(2.045)
    assert t975(40) == pytest.approx(2.021, abs=1e-3)
    assert t975(120) == pytest.approx(1.980, abs=1e-3)


def test_mean_ci_by_hand():
    values = np.array([1.0, 2.0, 3.0, 4.0])
    mean, half = mean_ci(values)
    assert mean == 2.5
    assert half == pytest.approx(3.182 * np.std(values, ddof=1) / 2)
    assert math.isnan(mean_ci(np.array([1.0]))[1])


def test_batch_clock_and_tally():
    clock = BatchClock(100.0, 400.0, 3)
    assert clock.index(50) == -1
    assert clock.index(100) == 0
    assert clock.index(299.9) == 1
    assert clock.index(400) == 2
    tally = Tally(3)
    tally.add(0, 1.0)
    tally.add(0, 3.0)
    tally.add(2, 5.0)
    means = tally.batch_means()
    assert means[0] == 2.0 and math.isnan(means[1]) and means[2] == 5.0
    assert tally.total_count() == 3
