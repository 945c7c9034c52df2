"""The engine against queueing theory: M/M/1, M/M/c, M/D/1, M/G/1, Jackson.

For every station metric the analytic value (computed here from closed forms,
not from the engine) must lie inside the reported 95% interval and within 3%
of the simulated mean. These runs take a few seconds each.
"""

import math
from pathlib import Path

import pytest

from twin.scenario import load_scenario
from twin.sim.run import run_scenario

ROOT = Path(__file__).parent.parent / "scenarios" / "validation"


def erlang_c(c, a):
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


def mmc(lam, mean, c):
    wait = erlang_c(c, lam * mean) * mean / (c - lam * mean)
    return {
        "utilization": lam * mean / c,
        "wait.mean": wait,
        "response.mean": wait + mean,
        "throughput": lam,
    }


def mg1(lam, mean, second):
    wait = lam * second / (2 * (1 - lam * mean))
    return {
        "utilization": lam * mean,
        "wait.mean": wait,
        "response.mean": wait + mean,
        "throughput": lam,
    }


def jackson():
    l1 = 1.5 / (1 - 0.6 * 0.2)
    rates = {"s1": l1, "s2": 0.6 * l1, "s3": 0.4 * l1}
    stations = {
        "s1": mmc(rates["s1"], 0.8, 2),
        "s2": mmc(rates["s2"], 0.5, 1),
        "s3": mmc(rates["s3"], 1.0, 1),
    }
    in_system = sum(rates[name] * stations[name]["response.mean"] for name in rates)
    return stations, in_system / 1.5


CASES = {
    "mm1": ({"server": mmc(0.7, 1.0, 1)}, 1.0 + 0.7 / 0.3),
    "mm4": ({"s1": mmc(3.2, 1.0, 4)}, mmc(3.2, 1.0, 4)["response.mean"]),
    "md1": ({"server": mg1(0.8, 1.0, 1.0)}, 3.0),
    "mg1": ({"server": mg1(0.75, 1.0, 1 + 1 / 3)}, 3.0),
    "mg1-lognormal": ({"server": mg1(0.7, 1.0, 1.25)}, 1.0 + 0.7 * 1.25 / 0.6),
    "jackson": jackson(),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_simulation_matches_theory(name, tmp_path):
    stations, network = CASES[name]
    scenario = load_scenario(ROOT / f"{name}.yaml")
    summary = run_scenario(scenario, tmp_path / name, quiet=True).summary
    checks = [
        (f"station.{station}.{metric}", value)
        for station, metrics in stations.items()
        for metric, value in metrics.items()
    ]
    checks.append(("jobs.response.mean", network))
    for metric, theory in checks:
        mean, half = summary[metric], summary[f"{metric}.ci95"]
        assert abs(mean - theory) <= half, (metric, theory, mean, half)
        assert abs(mean - theory) <= 0.03 * mean, (metric, theory, mean)
