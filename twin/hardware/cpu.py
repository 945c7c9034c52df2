"""The processors of a host: hardware threads as one FCFS pool, Hyper-Threading priced.

Twins a host's CPUs as ``cores x threads_per_core`` hardware threads, one
first-come first-served pool (``Threads``), so that utilisation and run-queue
length are measured like every other resource (a utilisation of 1.0 means
every thread, not every core, is busy).

The pool is reserved, not simulated: jobs are booked in arrival order, and in
a FCFS pool of ``c`` servers a job arriving at ``t`` starts at ``max(t,
earliest free_at of the c threads)`` on that thread (the Kiefer-Wolfowitz
recursion; exact, because jobs are booked when they arrive and so start in
arrival order). A job therefore costs one SimPy timeout, or none for a caller
that chains it with later work (``Cpu.reserve``). Its statistics are kept like
``twin.hardware.disk.Timeline``'s, lazily and exactly, and match a
``twin.resources.Servers`` of the same capacity.

The Hyper-Threading model: a job that gets a thread while at most ``cores``
threads are busy (itself included) has a core to itself and runs at full speed.
A job that gets a thread when more than ``cores`` are busy shares its core with
a sibling, and the core's ``1 + ht_gain`` worth of work is split between its
``threads_per_core`` threads: the job runs at speed
``(1 + ht_gain) / threads_per_core`` (0.6 of a core with 2 threads and
``ht_gain`` 0.2). With every thread busy the host does ``cores * (1 + ht_gain)``
cores' worth of work: its saturation throughput is
``cores * (1 + ht_gain) / job_seconds`` jobs a second. The speed is fixed when
the job gets its thread (a simplification: a job is not slowed or sped up when
siblings come and go during its run). The scheduler is idealised: the OS puts a
job on an idle core before a busy core's sibling thread.

``ht_gain`` comes from the profile (Intel's Hyper-Threading paper, Marr et al.,
Intel Technology Journal 6(1), 2002, reports up to 30 % on server benchmarks;
profiles document their choice).
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Generator

import simpy

from twin.hardware.disk import Timeline
from twin.hardware.profile import CpuSpec


def shared_speed(spec: CpuSpec) -> float:
    """Speed, as a fraction of a core, of a job sharing its core with siblings."""
    return (1.0 + spec.ht_gain) / spec.threads_per_core


def saturation_throughput(spec: CpuSpec, job_seconds: float) -> float:
    """Jobs a second with every thread busy, each job *job_seconds* at full speed."""
    if job_seconds <= 0:
        raise ValueError(f"job_seconds(={job_seconds}) must be > 0")
    return spec.saturation_cores / job_seconds


class Threads(Timeline):
    """*capacity* FCFS servers whose jobs are reserved on arrival."""

    __slots__ = ("_free",)

    def __init__(self, env: simpy.Environment, capacity: int, name: str = "") -> None:
        if capacity < 1:
            raise ValueError(
                f"capacity(={capacity}) of {name or 'threads'} must be >= 1"
            )
        super().__init__(env, name, capacity)
        self._free = [env.now] * capacity
        """When each thread is next free."""

    def grant(self, submit: float) -> tuple[int, float, int]:
        """(thread, start, threads busy at the start with this one) for a job.

        The threads are interchangeable, so ``_free`` is kept sorted and the
        thread free soonest is always thread 0.
        """
        free = self._free
        start = free[0]
        if start < submit:
            start = submit
        return 0, start, 1 + len(free) - bisect_right(free, start)

    def book(
        self,
        thread: int,
        start: float,
        service_s: float,
        submit: float,
        now: float | None = None,
    ) -> float:
        """Hold *thread* from *start* for *service_s*; return the end."""
        if now is None:
            now = self.env.now
        pending = self._pending
        if pending and pending[0][2] <= now:
            self._drain(now)
        if start > submit:
            self.waits.note(submit, start)
        end = start + service_s
        free = self._free
        del free[thread]
        insort(free, end)
        if end > self.free_at:
            self.free_at = end
        pending.append((submit, start, end, 1))
        return end

    def reserve(
        self,
        service_s: float,
        submit: float,
        units: int = 1,
        now: float | None = None,
    ) -> float:
        """Book a job of *service_s* submitted at *submit*; return its end."""
        thread, start, _busy = self.grant(submit)
        return self.book(thread, start, service_s, submit, now)

    def _drain(self, now: float) -> None:
        # ends are not in order across threads: fold every finished job, in
        # booking order (the leading run of finished jobs first, then any
        # finished job behind one still running)
        pending = self._pending
        busy = queue = 0.0
        jobs = 0
        while pending and pending[0][2] <= now:
            submit, start, end, _units = pending.popleft()
            busy += end - start
            queue += start - submit
            jobs += 1
        if len(pending) > 1:
            kept = []
            for entry in pending:
                submit, start, end, _units = entry
                if end <= now:
                    busy += end - start
                    queue += start - submit
                    jobs += 1
                else:
                    kept.append(entry)
            if len(kept) < len(pending):
                pending.clear()  # in place: callers hold the deque
                pending.extend(kept)
        if jobs:
            self._busy_done += busy
            self._queue_done += queue
            self._jobs_done += jobs
            self._units_done += jobs


class Cpu:
    """The hardware threads of *spec* in *env*; ``yield from cpu.run(seconds)``."""

    __slots__ = ("env", "spec", "name", "threads", "cores", "_slowdown", "_shared_at")

    def __init__(self, env: simpy.Environment, spec: CpuSpec, name: str = "") -> None:
        self.env = env
        self.spec = spec
        self.name = name
        self.threads = Threads(env, spec.threads, name)
        self.cores = spec.cores
        self._slowdown = 1.0 / shared_speed(spec)
        self._shared_at = len(self.threads._free) - spec.cores
        """A job shares its core when at most this many threads are free no
        later than its start (``threads - cores``)."""

    @property
    def jobs(self) -> int:
        """Jobs run to completion by now."""
        return self.threads.completed

    def reserve(self, seconds: float, now: float | None = None) -> float:
        """Book a job of *seconds* full-speed work arriving now; return its end.

        *now* is ``env.now`` when the caller has it already. ``Threads.grant``
        and ``Threads.book``, inlined.
        """
        submit = self.env.now if now is None else now
        if seconds <= 0:
            return submit
        threads = self.threads
        free = threads._free
        start = free[0]  # the thread free soonest (the list is sorted)
        if start < submit:
            start = submit
        # busy at the start, this job included: 1 + threads free after it;
        # more than cores when len(free) - bisect_right(...) >= cores
        if bisect_right(free, start) <= self._shared_at:
            seconds *= self._slowdown
        pending = threads._pending
        if pending and pending[0][2] <= submit:
            if len(pending) == 1:  # Threads._drain of one job, inlined
                first, begun, ended, _units = pending.popleft()
                threads._busy_done += ended - begun
                threads._queue_done += begun - first
                threads._jobs_done += 1
                threads._units_done += 1
            else:
                threads._drain(submit)
        if start > submit:
            threads.waits.note(submit, start)
        end = start + seconds
        del free[0]
        insort(free, end)
        if end > threads.free_at:
            threads.free_at = end
        pending.append((submit, start, end, 1))
        return end

    def run(self, seconds: float) -> Generator[simpy.Event, object, None]:
        """Hold one thread for *seconds* of full-speed work (longer if sharing)."""
        if seconds <= 0:
            return
        env = self.env
        end = self.reserve(seconds)
        yield env.timeout(end - env.now)
