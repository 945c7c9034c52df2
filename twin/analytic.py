"""Analytic queueing results, for ``twin estimate`` and for validating the engine.

- M/M/c: Erlang C probability of waiting, ``Wq = C / (c mu - lambda)``;
- M/G/1: Pollaczek-Khinchine, ``Wq = lambda E[S^2] / (2 (1 - rho))`` (M/D/1 and
  M/M/1 are special cases);
- M/G/c with c > 1: the Allen-Cunneen approximation
  ``Wq ~ Wq(M/M/c) (1 + Cs^2) / 2``, flagged as approximate;
- open Jackson networks: the traffic equations ``lambda = gamma + lambda P``
  solved exactly, then each station as above; network response time by
  Little's law, ``sum(L_i) / sum(gamma)``.

Functions raise ``ValueError`` for unstable inputs (rho >= 1) only where a
number cannot be given; ``estimate_network`` instead marks the station.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def erlang_c(servers: int, offered: float) -> float:
    """Probability that an arrival waits in M/M/c with *offered* = lambda/mu."""
    if servers < 1:
        raise ValueError(f"servers(={servers}) must be >= 1")
    rho = offered / servers
    if not 0 <= rho < 1:
        raise ValueError(f"utilisation(={rho:g}) must be in [0, 1) for Erlang C")
    # Erlang B by the stable recursion, then C from B.
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = offered * blocking / (k + offered * blocking)
    return blocking / (1 - rho * (1 - blocking))


def mmc_wait(arrival_rate: float, mean_service: float, servers: int) -> float:
    """Mean wait in queue of M/M/c."""
    offered = arrival_rate * mean_service
    return erlang_c(servers, offered) * mean_service / (servers - offered)


def mg1_wait(arrival_rate: float, mean_service: float, second_moment: float) -> float:
    """Mean wait in queue of M/G/1 (Pollaczek-Khinchine)."""
    rho = arrival_rate * mean_service
    if not 0 <= rho < 1:
        raise ValueError(f"utilisation(={rho:g}) must be in [0, 1) for M/G/1")
    return arrival_rate * second_moment / (2 * (1 - rho))


@dataclass(frozen=True)
class StationEstimate:
    """Analytic figures of one station of a network."""

    name: str
    arrival_rate: float
    utilization: float
    wait: float
    response: float
    exact: bool
    """False where an approximation (Allen-Cunneen) was used or rho >= 1."""

    @property
    def stable(self) -> bool:
        return self.utilization < 1


@dataclass(frozen=True)
class NetworkEstimate:
    stations: list[StationEstimate]
    response: float
    """Mean time from entering to leaving the network."""


def station_estimate(
    name: str, arrival_rate: float, servers: int, mean: float, second_moment: float
) -> StationEstimate:
    """Wait and response of a FCFS station with Poisson arrivals."""
    utilization = arrival_rate * mean / servers
    if utilization >= 1:
        return StationEstimate(
            name, arrival_rate, utilization, math.inf, math.inf, False
        )
    scv = (second_moment - mean * mean) / (mean * mean) if mean > 0 else 0.0
    if servers == 1:
        wait = mg1_wait(arrival_rate, mean, second_moment)
        exact = True
    else:
        wait = mmc_wait(arrival_rate, mean, servers)
        exact = abs(scv - 1.0) < 1e-9
        if not exact:
            wait *= (1 + scv) / 2
    return StationEstimate(name, arrival_rate, utilization, wait, wait + mean, exact)


def traffic_equations(external: np.ndarray, routing: np.ndarray) -> np.ndarray:
    """Total arrival rates: solve ``lambda = gamma + lambda P``."""
    size = len(external)
    return np.linalg.solve((np.eye(size) - routing).T, external)


def estimate_network(
    names: list[str],
    external: list[float],
    routing: np.ndarray,
    servers: list[int],
    means: list[float],
    second_moments: list[float],
) -> NetworkEstimate:
    """Per-station and whole-network figures of an open network."""
    rates = traffic_equations(np.asarray(external, dtype=float), routing)
    stations = [
        station_estimate(name, float(rate), count, mean, second)
        for name, rate, count, mean, second in zip(
            names, rates, servers, means, second_moments, strict=True
        )
    ]
    entering = float(sum(external))
    in_system = sum(s.arrival_rate * s.response for s in stations)
    response = in_system / entering if entering > 0 else math.nan
    return NetworkEstimate(stations, response)
