"""A host's network link: transmission holds the link, latency only delays.

Twins the host's network interface and the LAN behind it as one link of
``bandwidth_bytes_per_s`` shared by all of the host's traffic, in and out (one
``twin.resources.Servers`` of capacity 1: a half-duplex simplification, so
utilisation counts both directions against one bandwidth; assumption,
pessimistic for a full-duplex switched port).

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

from twin.hardware.profile import LinkSpec
from twin.resources import Servers


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

    __slots__ = ("env", "spec", "name", "wire", "bytes_sent", "round_trips")

    def __init__(self, env: simpy.Environment, spec: LinkSpec, name: str = "") -> None:
        self.env = env
        self.spec = spec
        self.name = name
        self.wire = Servers(env, 1, name)
        self.bytes_sent = 0
        self.round_trips = 0

    def transfer(
        self, nbytes: int, round_trips: int = 0
    ) -> Generator[simpy.Event, object, None]:
        """Send *nbytes* and make *round_trips* exchanges."""
        if nbytes > 0:
            wire = self.wire
            grant = wire.acquire()
            if grant is not None:
                yield grant
            yield self.env.timeout(nbytes / self.spec.bandwidth_bytes_per_s)
            wire.release()
            self.bytes_sent += nbytes
        wait = delay_s(self.spec, nbytes, round_trips)
        self.round_trips += round_trips
        if wait > 0:
            yield self.env.timeout(wait)
