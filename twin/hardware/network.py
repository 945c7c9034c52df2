"""A host's network link: transmission holds the link, latency only delays.

Twins the host's network interface and the LAN behind it as one link of
``bandwidth_bytes_per_s`` shared by all of the host's traffic, in and out (one
first-come first-served wire: a half-duplex simplification, so utilisation
counts both directions against one bandwidth; assumption, pessimistic for a
full-duplex switched port).

The wire is a ``twin.hardware.disk.Timeline``: a transfer's wire interval is
reserved when it is submitted (``start = max(submit, free_at)``), so a whole
transfer, transmission and latency, is one SimPy timeout, or none for a
caller that chains it (``Link.reserve``). The wire's statistics are those of a
``twin.resources.Servers`` of capacity 1. ``bytes_sent`` and ``round_trips``
count transfers as they are booked.

A transfer of ``nbytes`` with ``round_trips``:

    hold the link for nbytes / bandwidth            (queueing behind others)
    then wait, without holding it,
        latency_s                 if nbytes > 0    (the last bit's one-way trip)
      + 2 * latency_s * round_trips                (each exchange: there and back)

``latency_s`` is one-way. A round trip (a directory lookup, an SMTP command and
its reply) costs twice the latency; its few bytes belong in ``nbytes``. The
latency of the far end's processing is not the link's: a stage that waits on
another host models that host.
"""

from __future__ import annotations

from collections.abc import Generator

import simpy

from twin.hardware.disk import Timeline
from twin.hardware.profile import LinkSpec


def transmission_s(link: LinkSpec, nbytes: float) -> float:
    """Seconds the link is held to send *nbytes*."""
    if nbytes < 0:
        raise ValueError(f"nbytes(={nbytes}) must be >= 0")
    return nbytes / link.bandwidth_bytes_per_s


def delay_s(link: LinkSpec, nbytes: float, round_trips: int = 0) -> float:
    """Seconds of latency, not holding the link, for a transfer."""
    if round_trips < 0:
        raise ValueError(f"round_trips(={round_trips}) must be >= 0")
    return (link.latency_s if nbytes > 0 else 0.0) + 2.0 * link.latency_s * round_trips


def transfer_time_s(link: LinkSpec, nbytes: float, round_trips: int = 0) -> float:
    """Seconds of a transfer on an idle link: transmission plus latency."""
    return transmission_s(link, nbytes) + delay_s(link, nbytes, round_trips)


class Link:
    """The link of *spec* in *env*; ``yield from link.transfer(nbytes, trips)``."""

    __slots__ = (
        "env",
        "spec",
        "name",
        "wire",
        "bytes_sent",
        "round_trips",
        "_rate",
        "_latency_s",
        "_round_trip_s",
    )

    def __init__(self, env: simpy.Environment, spec: LinkSpec, name: str = "") -> None:
        self.env = env
        self.spec = spec
        self.name = name
        self.wire = Timeline(env, name)
        self.bytes_sent = 0
        self.round_trips = 0
        self._rate = spec.bandwidth_bytes_per_s
        self._latency_s = spec.latency_s
        self._round_trip_s = 2.0 * spec.latency_s
        """There and back (``2.0 * latency_s``: the first product of ``delay_s``)."""

    def reserve(
        self,
        nbytes: int,
        round_trips: int = 0,
        at: float | None = None,
        now: float | None = None,
    ) -> float:
        """Book a transfer submitted at *at* (default now); return when it is done.

        *now* is ``env.now`` when the caller has it already.
        """
        if round_trips < 0:
            raise ValueError(f"round_trips(={round_trips}) must be >= 0")
        if now is None:
            now = self.env.now
        t = now if at is None else at
        if nbytes > 0:
            t = self.wire.reserve(nbytes / self._rate, t, nbytes, now) + self._latency_s
            self.bytes_sent += nbytes
        if round_trips:
            t += self._round_trip_s * round_trips
            self.round_trips += round_trips
        return t

    def transfer(
        self, nbytes: int, round_trips: int = 0
    ) -> Generator[simpy.Event, object, None]:
        """Send *nbytes* and make *round_trips* exchanges."""
        env = self.env
        end = self.reserve(nbytes, round_trips)
        if end > env.now:
            yield env.timeout(end - env.now)
