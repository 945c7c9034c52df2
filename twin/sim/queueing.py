"""The engine of ``kind: queueing``: an open network of FCFS multi-server stations.

Jobs arrive in Poisson streams, visit stations (each a ``twin.resources.Servers``
pool whose service time is drawn from its distribution) and are routed by the
stations' probabilities until they exit. The model records one row per job
(jobs.parquet) and batch-means statistics after the warm-up for summary.json:

- ``station.<name>.wait.mean``, ``.response.mean`` (per visit),
  ``.utilization`` (busy servers / servers), ``.throughput`` (visits/s),
  ``.queue.mean`` (jobs waiting), each with a ``.ci95`` sibling;
- ``jobs.response.mean`` (+ ``.ci95``) from arrival to exit, ``jobs.arrived``,
  ``jobs.completed``, ``jobs.in_system`` (at the end).

Draws come from streams named ``arrivals.<class>``, ``service.<station>`` and
``route.<station>``, so adding a station or a stream leaves the others' draws
as they were.
"""

from __future__ import annotations

import math
from bisect import bisect_right

import numpy as np
import pyarrow as pa
import simpy

from twin.resources import Servers
from twin.schema.queueing import EXIT, QueueingScenario
from twin.sim import dists
from twin.sim.recorder import NullWriter, TableWriter, schema_with
from twin.sim.stats import BatchClock, Tally, mean_ci
from twin.sim.streams import Streams

JOB_COLUMNS = (
    ("job_id", pa.int64()),
    ("class", pa.string()),
    ("arrival", pa.float64()),
    ("departure", pa.float64()),
    ("response", pa.float64()),
    ("outcome", pa.string()),
)


def jobs_schema(stations: list[str]) -> pa.Schema:
    """The pinned schema of jobs.parquet for a network with *stations*."""
    return schema_with(JOB_COLUMNS, stations)


class _Station:
    """One station at run time: its servers, its draws and its tallies."""

    __slots__ = (
        "name",
        "index",
        "servers",
        "service",
        "targets",
        "cumulative",
        "uniform",
        "waits",
        "responses",
        "area_marks",
    )

    def __init__(
        self,
        env: simpy.Environment,
        name: str,
        index: int,
        spec,
        streams: Streams,
        batches: int,
    ) -> None:
        self.name = name
        self.index = index
        self.servers = Servers(env, spec.servers, name)
        self.service = dists.from_spec(spec.service, streams(f"service.{name}"))
        self.targets: list[str] = list(spec.next)
        self.cumulative = list(np.cumsum([spec.next[t] for t in self.targets]))
        self.cumulative[-1] = 1.0
        self.uniform = dists.unit_uniform(streams(f"route.{name}"))
        self.waits = Tally(batches)
        self.responses = Tally(batches)
        self.area_marks: list[tuple[float, float]] = []


class QueueingModel:
    """A ``QueueingScenario`` built in *env*, writing job rows to *jobs*."""

    def __init__(
        self,
        env: simpy.Environment,
        scenario: QueueingScenario,
        streams: Streams,
        jobs: TableWriter | NullWriter,
    ) -> None:
        self.env = env
        self.scenario = scenario
        self.jobs = jobs
        output = scenario.output
        self.clock = BatchClock(scenario.warmup, scenario.duration, output.batches)
        names = list(scenario.stations)
        self.stations = [
            _Station(env, name, index, scenario.stations[name], streams, output.batches)
            for index, name in enumerate(names)
        ]
        by_name = {station.name: station.index for station in self.stations}
        self.routes = [
            [
                by_name.get(target, -1) if target != EXIT else -1
                for target in station.targets
            ]
            for station in self.stations
        ]
        self.responses = Tally(output.batches)
        self.live: dict[int, tuple[str, float, list]] = {}
        self.arrived = 0
        self.completed = 0
        self._streams = streams

    @staticmethod
    def schema(scenario: QueueingScenario) -> pa.Schema:
        return jobs_schema(list(scenario.stations))

    def monitors(self) -> list[tuple[str, Servers]]:
        return [(station.name, station.servers) for station in self.stations]

    def start(self) -> None:
        by_name = {station.name: station.index for station in self.stations}
        for arrival in self.scenario.arrivals:
            label = arrival.name or arrival.to
            interval = dists.exponential(
                self._streams(f"arrivals.{label}"), 1.0 / arrival.rate
            )
            self.env.process(self._arrivals(label, by_name[arrival.to], interval))
        self.env.process(self._mark_batches())

    def _arrivals(self, label: str, first: int, interval: dists.Sampler):
        env = self.env
        timeout = env.timeout
        process = env.process
        job = self._job
        while True:
            yield timeout(interval())
            self.arrived += 1
            process(job(self.arrived, label, first))

    def _mark_batches(self):
        for boundary in self.clock.boundaries():
            if boundary > self.env.now:
                yield self.env.timeout(boundary - self.env.now)
            for station in self.stations:
                station.servers.sync()
                station.area_marks.append(
                    (station.servers.busy_area, station.servers.queue_area)
                )

    def _job(self, job_id: int, label: str, index: int):
        env = self.env
        stations = self.stations
        routes = self.routes
        clock = self.clock
        arrival = env.now
        record = [math.nan, math.nan, 0.0, 0] * len(stations)
        self.live[job_id] = (label, arrival, record)
        while index >= 0:
            station = stations[index]
            servers = station.servers
            queued = env.now
            grant = servers.acquire()
            if grant is not None:
                yield grant
            start = env.now
            yield env.timeout(station.service())
            servers.release()
            end = env.now
            wait = start - queued
            batch = clock.index(end)
            if batch >= 0:
                station.waits.add(batch, wait)
                station.responses.add(batch, end - queued)
            base = 4 * index
            if record[base + 3] == 0:
                record[base] = start
            record[base + 1] = end
            record[base + 2] += wait
            record[base + 3] += 1
            position = bisect_right(station.cumulative, station.uniform())
            index = routes[index][position]
        departure = env.now
        del self.live[job_id]
        self.completed += 1
        batch = clock.index(departure)
        if batch >= 0:
            self.responses.add(batch, departure - arrival)
        self.jobs.append(
            (
                job_id,
                label,
                arrival,
                departure,
                departure - arrival,
                "completed",
                *record,
            )
        )

    def finish(self) -> dict[str, float]:
        """Write the rows of jobs still inside and return the summary metrics."""
        for job_id in sorted(self.live):
            label, arrival, record = self.live[job_id]
            self.jobs.append(
                (job_id, label, arrival, math.nan, math.nan, "in_system", *record)
            )
        summary: dict[str, float] = {}
        length = self.clock.length
        for station in self.stations:
            prefix = f"station.{station.name}"
            _put(summary, f"{prefix}.wait.mean", station.waits.mean_ci())
            _put(summary, f"{prefix}.response.mean", station.responses.mean_ci())
            marks = np.asarray(station.area_marks, dtype=float)
            capacity = station.servers.capacity
            if len(marks) >= 2:
                busy = np.diff(marks[:, 0]) / (capacity * length)
                queue = np.diff(marks[:, 1]) / length
            else:
                busy = queue = np.asarray([math.nan])
            _put(summary, f"{prefix}.utilization", mean_ci(busy))
            _put(summary, f"{prefix}.queue.mean", mean_ci(queue))
            counts = np.asarray(station.responses.counts, dtype=float) / length
            _put(summary, f"{prefix}.throughput", mean_ci(counts))
            summary[f"{prefix}.servers"] = float(capacity)
            summary[f"{prefix}.queue.max"] = float(station.servers.queue_max)
        _put(summary, "jobs.response.mean", self.responses.mean_ci())
        summary["jobs.arrived"] = float(self.arrived)
        summary["jobs.completed"] = float(self.completed)
        summary["jobs.in_system"] = float(len(self.live))
        return summary


def _put(summary: dict[str, float], name: str, estimate: tuple[float, float]) -> None:
    summary[name] = estimate[0]
    summary[f"{name}.ci95"] = estimate[1]
