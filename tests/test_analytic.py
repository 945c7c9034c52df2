"""Analytic formulas against textbook numbers computed by hand."""

import math

import numpy as np
import pytest

from twin.analytic import erlang_c, estimate_network, mg1_wait, mmc_wait


def erlang_c_direct(c, a):
    """Erlang C from its defining sum (independent of the module's recursion)."""
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


@pytest.mark.parametrize(("c", "a"), [(1, 0.5), (4, 3.2), (10, 8.0), (2, 1.9)])
def test_erlang_c(c, a):
    assert erlang_c(c, a) == pytest.approx(erlang_c_direct(c, a))


def test_mm1_and_mm4_waits():
    assert mmc_wait(0.7, 1.0, 1) == pytest.approx(0.7 / 0.3)
    assert mmc_wait(3.2, 1.0, 4) == pytest.approx(0.7455, abs=1e-4)


def test_pollaczek_khinchine():
    # M/D/1 at rho 0.8: Wq = rho D / (2 (1 - rho)) = 2.
    assert mg1_wait(0.8, 1.0, 1.0) == pytest.approx(2.0)
    # M/M/1 is the special case E[S^2] = 2 mean^2.
    assert mg1_wait(0.7, 1.0, 2.0) == pytest.approx(mmc_wait(0.7, 1.0, 1))
    with pytest.raises(ValueError, match="utilisation"):
        mg1_wait(1.0, 1.0, 1.0)


def test_jackson_network_with_feedback():
    routing = np.array([[0, 0.6, 0.4], [0.2, 0, 0], [0, 0, 0]])
    result = estimate_network(
        ["s1", "s2", "s3"],
        [1.5, 0, 0],
        routing,
        [2, 1, 1],
        [0.8, 0.5, 1.0],
        [1.28, 0.5, 2.0],
    )
    rates = [s.arrival_rate for s in result.stations]
    assert rates == pytest.approx([1.5 / 0.88, 0.6 * 1.5 / 0.88, 0.4 * 1.5 / 0.88])
    s3 = result.stations[2]
    assert s3.wait == pytest.approx(s3.utilization / (1 / 1.0 - s3.arrival_rate))
    in_system = sum(s.arrival_rate * s.response for s in result.stations)
    assert result.response == pytest.approx(in_system / 1.5)


def test_unstable_station_is_marked_not_raised():
    result = estimate_network(["s"], [2.0], np.zeros((1, 1)), [1], [1.0], [2.0])
    assert not result.stations[0].stable
    assert result.stations[0].wait == math.inf
