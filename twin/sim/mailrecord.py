"""One row of jobs.parquet per message of a mail scenario, and its schema.

``MessageRecord`` collects what happened to one message (outcome, attempts,
accepted recipients, delivery latency, filter verdict) and, per station of
``STATIONS``, the first start, the last end, the total wait and the visits,
as the queueing engine's rows do. ``JOB_COLUMNS`` plus the station columns
(``twin.sim.recorder.schema_with``) pin the table's schema.
"""

from __future__ import annotations

import math

import pyarrow as pa

from twin.traffic.workload import MessageSpec

STATIONS = ("greylist", "smtp", "filter", "relay", "deliver", "remote")
GREYLIST, SMTP, FILTER, RELAY, DELIVER, REMOTE = range(len(STATIONS))

JOB_COLUMNS = (
    ("job_id", pa.int64()),
    ("class", pa.string()),
    ("aim", pa.string()),
    ("is_spam", pa.bool_()),
    ("arrival", pa.float64()),
    ("departure", pa.float64()),
    ("response", pa.float64()),
    ("outcome", pa.string()),
    ("attempts", pa.int32()),
    ("recipients", pa.int32()),
    ("accepted_recipients", pa.int32()),
    ("size_bytes", pa.int64()),
    ("latency", pa.float64()),
    ("virus", pa.bool_()),
    ("filter_verdict", pa.string()),
)


class MessageRecord:
    """What happened to one message, for its row in jobs.parquet."""

    __slots__ = (
        "virus",
        "image",
        "verdict",
        "spec",
        "outcome",
        "attempts",
        "accepted",
        "latency",
        "times",
        "departure",
        "parsed",
    )

    def __init__(self, spec: MessageSpec) -> None:
        self.spec = spec
        self.virus = False
        self.image = False
        """Whether the workload gave the message an image (FuzzyOCR's input)."""
        self.verdict = ""
        self.outcome = "in_progress"
        self.attempts = 0
        self.accepted = 0
        self.latency = math.nan
        self.departure = math.nan
        self.times = [math.nan, math.nan, 0.0, 0] * len(STATIONS)
        self.parsed = None
        """The Cyrus parse of the LF form of the message as queued, where the
        front made it (``twin.sim.front.Dialogues``), for its deliveries."""

    def visit(self, station: int, queued: float, start: float, end: float) -> None:
        base = 4 * station
        times = self.times
        if times[base + 3] == 0:
            times[base] = start
        times[base + 1] = end
        times[base + 2] += start - queued
        times[base + 3] += 1

    def row(self) -> tuple:
        spec = self.spec
        response = self.departure - spec.arrival_s
        return (
            spec.msg_id,
            spec.kind,
            spec.aim,
            spec.is_spam,
            spec.arrival_s,
            self.departure,
            response,
            self.outcome,
            self.attempts,
            len(spec.recipients),
            self.accepted,
            spec.size_bytes,
            self.latency,
            self.virus,
            self.verdict,
            *self.times,
        )
