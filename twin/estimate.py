"""``twin estimate``: the analytic answer, in a second, without simulating.

For ``kind: queueing`` the whole network (Erlang C, Pollaczek-Khinchine,
Jackson); for any scenario at least the operational-law utilisation of every
resource, ``U = X * S``, with a warning where a resource's utilisation is >= 1
(the scenario cannot reach a steady state: its queues grow without bound).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from twin.analytic import NetworkEstimate, estimate_network
from twin.scenario import Scenario
from twin.schema.queueing import EXIT, QueueingScenario
from twin.sim import dists


@dataclass
class Estimate:
    """Rows of a table, metrics by name, and warnings."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        widths = [len(column) for column in self.columns]
        for row in self.rows:
            widths = [
                max(width, len(cell)) for width, cell in zip(widths, row, strict=True)
            ]
        out = [self.title]
        out.append(
            "  ".join(
                c.ljust(w) for c, w in zip(self.columns, widths, strict=True)
            ).rstrip()
        )
        for row in self.rows:
            out.append(
                "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            )
        out.extend(f"warning: {warning}" for warning in self.warnings)
        return out


def queueing_network(model: QueueingScenario) -> NetworkEstimate:
    """The analytic figures of a queueing scenario."""
    names = list(model.stations)
    index = {name: position for position, name in enumerate(names)}
    external = [0.0] * len(names)
    for arrival in model.arrivals:
        external[index[arrival.to]] += arrival.rate
    routing = np.zeros((len(names), len(names)))
    for name, station in model.stations.items():
        for target, probability in station.next.items():
            if target != EXIT:
                routing[index[name], index[target]] += probability
    rng = np.random.default_rng(0)  # unused: moments need no draws
    samplers = [dists.from_spec(model.stations[name].service, rng) for name in names]
    return estimate_network(
        names,
        external,
        routing,
        [model.stations[name].servers for name in names],
        [sampler.mean for sampler in samplers],
        [sampler.second_moment for sampler in samplers],
    )


def _fmt(value: float) -> str:
    if value == float("inf"):
        return "inf"
    return f"{value:.4g}"


def estimate_queueing(model: QueueingScenario) -> Estimate:
    network = queueing_network(model)
    result = Estimate(
        f"{model.name}: analytic estimate (open network)",
        [
            "station",
            "arrivals/s",
            "servers",
            "utilization",
            "wait (s)",
            "response (s)",
            "method",
        ],
    )
    for station in network.stations:
        spec = model.stations[station.name]
        method = "Erlang C" if spec.servers > 1 else "Pollaczek-Khinchine"
        if not station.exact and station.stable:
            method = "Allen-Cunneen (approx.)"
        result.rows.append(
            [
                station.name,
                _fmt(station.arrival_rate),
                str(spec.servers),
                _fmt(station.utilization),
                _fmt(station.wait),
                _fmt(station.response),
                method,
            ]
        )
        prefix = f"station.{station.name}"
        result.metrics[f"{prefix}.utilization"] = station.utilization
        result.metrics[f"{prefix}.wait.mean"] = station.wait
        result.metrics[f"{prefix}.response.mean"] = station.response
        result.metrics[f"{prefix}.throughput"] = station.arrival_rate
        if not station.stable:
            result.warnings.append(
                f"station {station.name}: utilisation {station.utilization:.3g} >= 1, "
                "its queue grows without bound (add servers or lower the rate)"
            )
    result.metrics["jobs.response.mean"] = network.response
    result.rows.append(
        [
            "(network)",
            _fmt(sum(a.rate for a in model.arrivals)),
            "",
            "",
            "",
            _fmt(network.response),
            "Jackson / Little",
        ]
    )
    return result


def estimate(scenario: Scenario) -> Estimate:
    """The analytic estimate of any scenario."""
    if scenario.kind == "queueing":
        return estimate_queueing(scenario.model)
    from twin.sim.mailload import estimate_mail

    return estimate_mail(scenario.model)
