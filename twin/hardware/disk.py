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

A spindle is a first-come first-served single server, so the moment an I/O
completes is known when it is submitted: ``start = max(submit, free_at)``,
``end = start + service``, and ``free_at`` moves to ``end``. ``Timeline`` keeps
such reservations instead of SimPy events: an I/O nobody waits for costs no
event at all, a waiter needs one ``env.timeout(end - now)``. The statistics a
``twin.resources.Servers`` keeps (``busy_area``, ``queue_area``, ``served``,
``busy``, ``queue_length``, ``queue_max``, ``sync()``) are computed lazily
from the reserved ``(submit, start, end)`` intervals, exactly: busy while
``start <= t < end``, waiting while ``submit <= t < start``.

Reservation order stands for arrival order at the drive. A submission in the
future (the second phase of a RAID plan, a destage after the controller's
acknowledgement, the next step of a host's work) is booked when it is
computed, so a request submitted later in simulated time but before that
moment cannot overtake it: an approximation, since the real drive would serve
the earlier arrival first. The idle window such a booking leaves before it is
kept, and a later job that fits in it (at or after its own submission) is
placed there, so the drive does not idle while work waits behind a booking
(without this a saturated RAID 5 loses half its throughput to the gaps
between a small write's two phases). With every job submitted when it is
booked, as for a plain read, the timeline is exactly a FCFS queue.

``Disk`` is one spindle: a ``Timeline``. A failed disk refuses I/O
(``RuntimeError``): the array routes around it; I/Os already submitted to it
when it fails still finish, and reserved I/Os whose submission lies in the
future are dropped (``cancel_future``).

Ways to do an I/O: ``end = disk.reserve(disk.service_s(nbytes), submit,
nbytes)`` (no event), ``yield from disk.io(nbytes)`` inside a SimPy process
(one timeout), or ``disk.start(nbytes, sequential, done)``, which calls
``done()`` when the I/O completes (one timeout with a callback).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Generator

import numpy as np
import simpy

from twin.hardware.profile import DiskSpec


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


GAP_SLACK_S = 1e-9
"""A job fits an idle window that is at most this much too short (float noise)."""


GAP_SCAN = 8
"""Idle windows ``Timeline._fill_gap`` scans one by one before bisecting."""


def _gap_limit(gap: tuple[float, float]) -> float:
    """The latest end a job may have to fit idle window *gap*."""
    return gap[1] + GAP_SLACK_S


FOLD_EVERY = 8192
"""Waits noted between two folds of ``WaitCounter`` (a bound on its memory)."""


class WaitCounter:
    """The most jobs waiting at once, exactly, from the (submit, start) of each wait.

    A job waits while ``submit <= t < start``. ``note`` only records the pair
    (two appends: it is called for every I/O that waits); ``most`` sweeps the
    recorded waits up to ``env.now`` and keeps the maximum. Every
    ``FOLD_EVERY`` waits the same sweep folds the record, keeping only the
    waits still going on, so memory stays bounded. A wait booked ahead of its
    submission counts once simulated time reaches it; one recorded after a
    sweep that passed its submission counts from that sweep on.
    """

    __slots__ = ("env", "_most", "_since", "_submits", "_starts", "_fold_at")

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self._most = 0
        self._since = env.now
        """Waiting before this moment is folded into ``_most``."""
        self._submits = array("d")
        self._starts = array("d")
        self._fold_at = FOLD_EVERY

    def note(self, submit: float, start: float) -> None:
        """A job waits from *submit* to *start* (> *submit*)."""
        self._submits.append(submit)
        self._starts.append(start)
        if len(self._starts) >= self._fold_at:
            self._fold()

    @property
    def most(self) -> int:
        """The most jobs waiting at once up to now."""
        self._fold()
        return self._most

    def _fold(self) -> None:
        """Sweep the recorded waits up to now; keep those not over by then."""
        now = self.env.now
        count = len(self._starts)
        if count:
            submits = np.maximum(
                np.frombuffer(self._submits, dtype=np.float64), self._since
            )
            starts = np.frombuffer(self._starts, dtype=np.float64)
            begun = (submits < starts) & (submits <= now)
            ended = begun & (starts <= now)
            times = np.concatenate((starts[ended], submits[begun]))
            steps = np.concatenate(
                (
                    np.full(int(ended.sum()), -1, dtype=np.int64),
                    np.ones(int(begun.sum()), dtype=np.int64),
                )
            )
            if len(times):
                order = np.lexsort((steps, times))  # at a tie, leave before join
                most = int(np.cumsum(steps[order]).max())
                if most > self._most:
                    self._most = most
            kept = starts > now
            self._submits = array("d", submits[kept].tobytes())
            self._starts = array("d", starts[kept].tobytes())
        self._since = now
        self._fold_at = max(FOLD_EVERY, 2 * len(self._starts))

    def forget_after(self, now: float) -> None:
        """Drop jobs to be submitted after *now* (they were cancelled)."""
        submits = np.frombuffer(self._submits, dtype=np.float64)
        starts = np.frombuffer(self._starts, dtype=np.float64)
        kept = submits <= now
        self._submits = array("d", submits[kept].tobytes())
        self._starts = array("d", starts[kept].tobytes())


class Timeline:
    """A FCFS single server in *env* whose jobs are reserved, not simulated.

    ``reserve(service_s, submit, units)`` books a job submitted at *submit*
    (now or later) and returns its completion time. Servers-like statistics
    (see the module docstring) are exact at ``env.now`` whenever read.
    Subclasses with several servers override ``reserve`` and ``capacity``.
    """

    __slots__ = (
        "env",
        "name",
        "capacity",
        "free_at",
        "_pending",
        "_gaps",
        "_busy_done",
        "_queue_done",
        "_jobs_done",
        "_units_done",
        "waits",
        "last_start",
    )

    def __init__(self, env: simpy.Environment, name: str = "", capacity: int = 1):
        self.env = env
        self.name = name
        self.capacity = capacity
        self.free_at = env.now
        """When the server is next free (the end of its last reservation)."""
        self._pending: deque[tuple[float, float, float, int]] = deque()
        """(submit, start, end, units) of reserved jobs not yet drained."""
        self._gaps: list[tuple[float, float]] = []
        """Idle windows before ``free_at`` left by jobs booked ahead of time."""
        self._busy_done = 0.0
        self._queue_done = 0.0
        self._jobs_done = 0
        self._units_done = 0
        self.waits = WaitCounter(env)
        """Counts the jobs waiting at once, for ``queue_max``."""
        self.last_start = env.now
        """Start of the job booked last."""

    def reserve(
        self,
        service_s: float,
        submit: float,
        units: int = 0,
        now: float | None = None,
    ) -> float:
        """Book a job of *service_s* submitted at *submit*; return its end.

        *now* is ``env.now`` when the caller has it already.
        """
        if now is None:
            now = self.env.now
        pending = self._pending
        if pending and pending[0][2] <= now:
            if len(pending) == 1 or pending[1][2] > now:
                # _drain(now) of one job, inlined: the common case
                submit_, start, end, done_units = pending.popleft()
                self._busy_done += end - start
                self._queue_done += start - submit_
                self._jobs_done += 1
                self._units_done += done_units
            else:
                self._drain(now)
        gaps = self._gaps
        if gaps:
            last = gaps[-1][1]  # the windows' ends are in order: the latest
            if last <= now:  # every idle window is over
                gaps.clear()
            elif submit + service_s > last + GAP_SLACK_S:
                # the job ends after every window, wherever placed: none fits
                # (what _fill_gap finds, without the scan); drop the windows
                # already over as it does
                while gaps[0][1] <= now:
                    del gaps[0]
            else:
                end = self._fill_gap(service_s, submit, now)
                if end is not None:
                    start = self.last_start = end - service_s
                    if start > submit:
                        self.waits.note(submit, start)
                    pending.append((submit, start, end, units))
                    return end
        free_at = self.free_at
        if free_at > submit:
            start = free_at
            self.waits.note(submit, start)
        else:
            start = submit
            if submit > now:  # idle until a future submission: others may use it
                gaps.append((free_at if free_at > now else now, submit))
        self.last_start = start
        end = self.free_at = start + service_s
        pending.append((submit, start, end, units))
        return end

    def _fill_gap(self, service_s: float, submit: float, now: float) -> float | None:
        """Place a job in the first idle window it fits; its end, or None."""
        gaps = self._gaps
        while gaps and gaps[0][1] <= now:
            del gaps[0]
        index = 0
        count = len(gaps)
        if count > GAP_SCAN:
            # the windows are in time order, their ends too; a job ends at or
            # after submit + service_s, so none ending before that fits: skip them
            index = bisect_left(gaps, submit + service_s, key=_gap_limit)
        while index < count:  # (gaps changes only on the way out)
            low, high = gaps[index]
            start = low if low > submit else submit
            end = start + service_s
            if end <= high + GAP_SLACK_S:
                if end > high:
                    end = high
                # what is left of the window: before the job, after it, both
                if start > low:
                    gaps[index] = (low, start)
                    if high > end:
                        gaps.insert(index + 1, (end, high))
                elif high > end:
                    gaps[index] = (end, high)
                else:
                    del gaps[index]
                return end
            index += 1
        return None

    def _drain(self, now: float) -> None:
        """Fold jobs that ended by *now* into the totals."""
        pending = self._pending
        busy = queue = 0.0
        jobs = units = 0
        while pending and pending[0][2] <= now:
            submit, start, end, nbytes = pending.popleft()
            busy += end - start
            queue += start - submit
            jobs += 1
            units += nbytes
        self._busy_done += busy
        self._queue_done += queue
        self._jobs_done += jobs
        self._units_done += units

    def cancel_future(self) -> int:
        """Drop reserved jobs submitted after now; return how many."""
        now = self.env.now
        pending = self._pending
        kept = [entry for entry in pending if entry[0] <= now]
        dropped = len(pending) - len(kept)
        if dropped:
            self._pending = deque(kept)
            self._gaps = []
            self.waits.forget_after(now)
            self.free_at = max((entry[2] for entry in kept), default=now)
        return dropped

    # -- the sampler's view, like twin.resources.Servers ----------------------

    @property
    def queue_max(self) -> int:
        """Most jobs waiting at once (see ``WaitCounter``)."""
        return self.waits.most

    def sync(self) -> None:
        """Fold finished jobs into the totals (the statistics are always exact)."""
        self._drain(self.env.now)

    @property
    def busy_area(self) -> float:
        """Integral of busy servers over simulated time so far (server-seconds)."""
        now = self.env.now
        self._drain(now)
        area = self._busy_done
        for _submit, start, end, _units in self._pending:
            if start < now:
                area += (end if end < now else now) - start
        return area

    @property
    def queue_area(self) -> float:
        """Integral of the number waiting over simulated time so far (job-seconds)."""
        now = self.env.now
        self._drain(now)
        area = self._queue_done
        for submit, start, _end, _units in self._pending:
            if submit < now and submit < start:
                area += (start if start < now else now) - submit
        return area

    @property
    def served(self) -> int:
        """Jobs that have started service so far."""
        now = self.env.now
        self._drain(now)
        return self._jobs_done + sum(1 for entry in self._pending if entry[1] <= now)

    @property
    def busy(self) -> int:
        """Servers busy now."""
        now = self.env.now
        return sum(1 for entry in self._pending if entry[1] <= now < entry[2])

    @property
    def queue_length(self) -> int:
        """Jobs submitted and waiting now."""
        now = self.env.now
        return sum(1 for entry in self._pending if entry[0] <= now < entry[1])

    @property
    def completed(self) -> int:
        """Jobs finished by now."""
        self._drain(self.env.now)
        return self._jobs_done

    @property
    def completed_units(self) -> int:
        """Units (bytes, for a disk or link) of the jobs finished by now."""
        self._drain(self.env.now)
        return self._units_done


class Disk(Timeline):
    """One drive of *spec* in *env*: a single spindle serving I/Os first come first."""

    __slots__ = ("spec", "failed", "_random_s", "_sequential_s", "_rate")

    def __init__(self, env: simpy.Environment, spec: DiskSpec, name: str = "") -> None:
        super().__init__(env, name)
        self.spec = spec
        self.failed = False
        self._random_s = positioning_s(spec, sequential=False)
        self._sequential_s = positioning_s(spec, sequential=True)
        self._rate = spec.transfer_bytes_per_s

    @property
    def spindle(self) -> Disk:
        """The spindle's statistics (the disk itself: kept for older callers)."""
        return self

    @property
    def ios(self) -> int:
        """I/Os completed by now."""
        return self.completed

    @property
    def bytes_moved(self) -> int:
        """Bytes read or written by I/Os completed by now."""
        return self.completed_units

    def service_s(self, nbytes: int, sequential: bool = False) -> float:
        """``access_time_s`` of this drive, from precomputed positioning times."""
        positioning = self._sequential_s if sequential else self._random_s
        return positioning + nbytes / self._rate

    def submit(self, nbytes: int, at: float, sequential: bool = False) -> float:
        """Reserve an I/O of *nbytes* submitted at *at*; return when it completes."""
        if self.failed:
            raise RuntimeError(f"disk {self.name or '?'} has failed: no I/O possible")
        positioning = self._sequential_s if sequential else self._random_s
        return self.reserve(positioning + nbytes / self._rate, at, nbytes)

    def io(
        self, nbytes: int, sequential: bool = False
    ) -> Generator[simpy.Event, object, None]:
        """Read or write *nbytes* (the spindle does not care which); ``yield from``."""
        env = self.env
        end = self.submit(nbytes, env.now, sequential)
        yield env.timeout(end - env.now)

    def start(self, nbytes: int, sequential: bool, done: Callable[[], object]) -> None:
        """Queue an I/O of *nbytes* now and call ``done()`` when it completes."""
        env = self.env
        end = self.submit(nbytes, env.now, sequential)
        env.timeout(end - env.now).callbacks.append(  # type: ignore[union-attr]
            lambda _event: done()
        )

    @property
    def load(self) -> int:
        """I/Os in service or waiting: how busy the drive is right now."""
        now = self.env.now
        return sum(1 for entry in self._pending if entry[0] <= now < entry[2])
