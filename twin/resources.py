"""Servers: a first-come first-served pool of identical servers that keeps its books.

The one queueing primitive of the simulator. Stations of the engine, CPU cores,
disk spindles and connection slots are all ``Servers``. It is leaner than
``simpy.Resource`` (a free server is taken without scheduling an event) and it
integrates, as it goes, what the statistics need: busy-server seconds, queue
length seconds, the number of jobs served, and the high-water mark of the queue.

Usage inside a SimPy process::

    grant = pool.acquire()
    if grant is not None:
        yield grant          # wait for a server
    yield env.timeout(service_time)
    pool.release()

``acquire`` returns ``None`` when a server was free (the caller holds it at
once) and an event to wait for otherwise; ``release`` hands the server to the
oldest waiter or frees it.

Raises ``ValueError`` for a capacity below 1 and ``RuntimeError`` when released
more often than acquired.
"""

from __future__ import annotations

from collections import deque

import simpy


class Servers:
    """*capacity* identical FCFS servers in *env*, named *name* in results."""

    __slots__ = (
        "env",
        "name",
        "capacity",
        "busy",
        "_waiting",
        "_last",
        "busy_area",
        "queue_area",
        "served",
        "queue_max",
    )

    def __init__(self, env: simpy.Environment, capacity: int, name: str = "") -> None:
        if capacity < 1:
            raise ValueError(
                f"capacity(={capacity}) of {name or 'servers'} must be >= 1"
            )
        self.env = env
        self.name = name
        self.capacity = int(capacity)
        self.busy = 0
        self._waiting: deque[simpy.Event] = deque()
        self._last = env.now
        self.busy_area = 0.0
        """Integral of busy servers over simulated time (server-seconds)."""
        self.queue_area = 0.0
        """Integral of the number waiting over simulated time (job-seconds)."""
        self.served = 0
        """Jobs that have been granted a server so far."""
        self.queue_max = 0
        """Most jobs ever waiting at once."""

    @property
    def queue_length(self) -> int:
        return len(self._waiting)

    def _account(self) -> None:
        now = self.env.now
        span = now - self._last
        if span:
            self.busy_area += self.busy * span
            self.queue_area += len(self._waiting) * span
            self._last = now

    def sync(self) -> None:
        """Bring the integrals up to the current simulated time."""
        self._account()

    def acquire(self) -> simpy.Event | None:
        """Take a server: ``None`` if one was free, else an event to yield."""
        self._account()
        if self.busy < self.capacity:
            self.busy += 1
            self.served += 1
            return None
        grant = self.env.event()
        self._waiting.append(grant)
        if len(self._waiting) > self.queue_max:
            self.queue_max = len(self._waiting)
        return grant

    def release(self) -> None:
        """Give back a server; the oldest waiter, if any, gets it at once."""
        self._account()
        if self._waiting:
            self.served += 1
            self._waiting.popleft().succeed()
        elif self.busy > 0:
            self.busy -= 1
        else:
            raise RuntimeError(f"{self.name or 'servers'}: released more than acquired")
