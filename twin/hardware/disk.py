"""A disk drive: access time by hand, and a spindle that serves one I/O at a time.

Twins one drive of a host's array. An I/O costs positioning plus transfer:

    random:      avg_seek_s + rotational latency (half a revolution) + bytes / rate
    sequential:  track_to_track_s + bytes / rate

Rotational latency is half a revolution, ``30 / rpm`` seconds: 7,200 rpm 4.17 ms,
10,000 rpm 3.0 ms, 15,000 rpm 2.0 ms (FACTS.md "Hardware"). A *sequential* I/O
continues where the previous one on the drive ended (a rebuild streaming a
disk end to end); the drive's read-ahead and write-behind keep the next sector
under the head, so it pays at most a track-to-track seek and no rotational wait
(assumption; datasheets quote sustained rates for exactly this case). A
solid-state device is ``rpm`` 0 with ``avg_seek_s`` as its access time.

``Disk`` is one spindle: a ``twin.resources.Servers`` of capacity 1, so its
busy and queue integrals are kept like every other resource's. A failed disk
refuses I/O (``RuntimeError``): the array routes around it; I/Os already
queued on it when it fails still finish.

Two ways to do an I/O: ``yield from disk.io(nbytes)`` inside a SimPy process,
or ``disk.start(nbytes, sequential, done)``, which calls ``done()`` when the I/O
completes without a process of its own (the array fans out parallel I/Os this
way: a SimPy process per I/O would triple the events of a run).
"""

from __future__ import annotations

from collections.abc import Callable, Generator

import simpy

from twin.hardware.profile import DiskSpec
from twin.resources import Servers


def rotational_latency_s(rpm: float) -> float:
    """Half a revolution in seconds; 0 for solid state (``rpm`` 0)."""
    if rpm < 0:
        raise ValueError(f"rpm(={rpm}) must be >= 0")
    return 30.0 / rpm if rpm else 0.0


def positioning_s(disk: DiskSpec, sequential: bool = False) -> float:
    """Seconds before data moves: seek plus rotational wait, or track-to-track."""
    if sequential:
        return disk.track_to_track_s
    return disk.avg_seek_s + rotational_latency_s(disk.rpm)


def transfer_s(disk: DiskSpec, nbytes: float) -> float:
    """Seconds to move *nbytes* at the drive's sustained rate."""
    if nbytes < 0:
        raise ValueError(f"nbytes(={nbytes}) must be >= 0")
    return nbytes / disk.transfer_bytes_per_s


def access_time_s(disk: DiskSpec, nbytes: float, sequential: bool = False) -> float:
    """Service time of one I/O of *nbytes*: positioning plus transfer."""
    return positioning_s(disk, sequential) + transfer_s(disk, nbytes)


class Disk:
    """One drive of *spec* in *env*: a single spindle serving I/Os first come first."""

    __slots__ = (
        "env",
        "spec",
        "name",
        "spindle",
        "failed",
        "ios",
        "bytes_moved",
        "_random_s",
        "_sequential_s",
        "_rate",
    )

    def __init__(self, env: simpy.Environment, spec: DiskSpec, name: str = "") -> None:
        self.env = env
        self.spec = spec
        self.name = name
        self.spindle = Servers(env, 1, name)
        self.failed = False
        self.ios = 0
        """I/Os completed."""
        self.bytes_moved = 0
        """Bytes read or written by completed I/Os."""
        self._random_s = positioning_s(spec, sequential=False)
        self._sequential_s = positioning_s(spec, sequential=True)
        self._rate = spec.transfer_bytes_per_s

    def service_s(self, nbytes: int, sequential: bool = False) -> float:
        """``access_time_s`` of this drive, from precomputed positioning times."""
        positioning = self._sequential_s if sequential else self._random_s
        return positioning + nbytes / self._rate

    def io(
        self, nbytes: int, sequential: bool = False
    ) -> Generator[simpy.Event, object, None]:
        """Read or write *nbytes* (the spindle does not care which); ``yield from``."""
        if self.failed:
            raise RuntimeError(f"disk {self.name or '?'} has failed: no I/O possible")
        grant = self.spindle.acquire()
        if grant is not None:
            yield grant
        yield self.env.timeout(self.service_s(nbytes, sequential))
        self.spindle.release()
        self.ios += 1
        self.bytes_moved += nbytes

    def start(self, nbytes: int, sequential: bool, done: Callable[[], object]) -> None:
        """Queue an I/O of *nbytes* now and call ``done()`` when it completes."""
        if self.failed:
            raise RuntimeError(f"disk {self.name or '?'} has failed: no I/O possible")
        service_s = self.service_s(nbytes, sequential)
        grant = self.spindle.acquire()
        if grant is None:
            self._serve(service_s, nbytes, done)
        else:
            grant.callbacks.append(
                lambda _event: self._serve(service_s, nbytes, done)  # type: ignore[union-attr]
            )

    def _serve(self, service_s: float, nbytes: int, done: Callable[[], object]) -> None:
        timeout = self.env.timeout(service_s)
        timeout.callbacks.append(  # type: ignore[union-attr]
            lambda _event: self._finish(nbytes, done)
        )

    def _finish(self, nbytes: int, done: Callable[[], object]) -> None:
        self.spindle.release()
        self.ios += 1
        self.bytes_moved += nbytes
        done()

    @property
    def load(self) -> int:
        """I/Os in service or waiting: how busy the drive is right now."""
        return self.spindle.busy + self.spindle.queue_length
