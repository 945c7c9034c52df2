"""Result tables written to Parquet in batches, with pinned schemas.

Rows are plain tuples in the order of the table's schema (flat records, as Ciw
keeps them); ``TableWriter`` buffers them and writes a row group every
``batch_rows`` rows, so memory stays flat however long the run. The sampler
reads every monitored resource at a fixed simulated interval into
resources.parquet: utilisation over the interval and the queue at the instant.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.parquet as pq
import simpy

BATCH_ROWS = 65536

RESOURCE_SCHEMA = pa.schema(
    [
        ("time", pa.float64()),
        ("resource", pa.string()),
        ("utilization", pa.float64()),
        ("queue_length", pa.int64()),
        ("busy", pa.int64()),
    ]
)
"""resources.parquet: one row per resource per sampling instant."""


class Monitored(Protocol):
    capacity: int
    busy: int
    busy_area: float

    @property
    def queue_length(self) -> int: ...

    def sync(self) -> None: ...


class TableWriter:
    """Rows (tuples in schema order) to a Parquet file, one row group per batch."""

    def __init__(self, path: Path, schema: pa.Schema, batch_rows: int = BATCH_ROWS):
        self.path = path
        self.schema = schema
        self.batch_rows = batch_rows
        self.rows: list[tuple] = []
        self.written = 0
        self._writer = pq.ParquetWriter(str(path), schema)

    def append(self, row: tuple) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        columns = list(zip(*self.rows, strict=True))
        arrays = [
            pa.array(column, type=field.type)
            for column, field in zip(columns, self.schema, strict=True)
        ]
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        self.written += len(self.rows)
        self.rows = []

    def close(self) -> None:
        self.flush()
        self._writer.close()


class NullWriter:
    """Stands in for a table the scenario turned off."""

    written = 0

    def append(self, row: tuple) -> None:
        self.written += 1

    def close(self) -> None:
        pass


class ResourceSampler:
    """One row per monitored resource every *interval*, and one at the end."""

    def __init__(
        self,
        env: simpy.Environment,
        monitors: Sequence[tuple[str, Monitored]],
        interval: float,
        writer: TableWriter | NullWriter,
    ) -> None:
        self.env = env
        self.monitors = list(monitors)
        self.interval = interval
        self.writer = writer
        self.last = env.now
        self.maxima = {name: 0 for name, _ in self.monitors}
        """Largest queue seen at a sampling instant, per resource."""
        self.previous = []
        for _, resource in self.monitors:
            resource.sync()
            self.previous.append(resource.busy_area)

    def sample(self) -> None:
        now = self.env.now
        span = now - self.last
        if span <= 0:
            return
        for index, (name, resource) in enumerate(self.monitors):
            resource.sync()
            area = resource.busy_area
            utilization = (area - self.previous[index]) / (resource.capacity * span)
            self.previous[index] = area
            if resource.queue_length > self.maxima[name]:
                self.maxima[name] = resource.queue_length
            self.writer.append(
                (now, name, utilization, resource.queue_length, resource.busy)
            )
        self.last = now

    def process(self):
        """SimPy process: sample every interval."""
        while True:
            yield self.env.timeout(self.interval)
            self.sample()


def schema_with(
    base: Iterable[tuple[str, pa.DataType]], stations: Sequence[str]
) -> pa.Schema:
    """A jobs schema: *base* columns then start/end/wait/visits per station."""
    fields = list(base)
    for station in stations:
        fields += [
            (f"{station}.start", pa.float64()),
            (f"{station}.end", pa.float64()),
            (f"{station}.wait", pa.float64()),
            (f"{station}.visits", pa.int32()),
        ]
    return pa.schema(fields)
