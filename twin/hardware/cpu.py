"""The processors of a host: hardware threads as one FCFS pool, Hyper-Threading priced.

Twins a host's CPUs as ``cores x threads_per_core`` hardware threads, one
``twin.resources.Servers`` pool, so that utilisation and run-queue length are
measured like every other resource (a utilisation of 1.0 means every thread,
not every core, is busy).

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

from collections.abc import Generator

import simpy

from twin.hardware.profile import CpuSpec
from twin.resources import Servers


def shared_speed(spec: CpuSpec) -> float:
    """Speed, as a fraction of a core, of a job sharing its core with siblings."""
    return (1.0 + spec.ht_gain) / spec.threads_per_core


def saturation_throughput(spec: CpuSpec, job_seconds: float) -> float:
    """Jobs a second with every thread busy, each job *job_seconds* at full speed."""
    if job_seconds <= 0:
        raise ValueError(f"job_seconds(={job_seconds}) must be > 0")
    return spec.saturation_cores / job_seconds


class Cpu:
    """The hardware threads of *spec* in *env*; ``yield from cpu.run(seconds)``."""

    __slots__ = ("env", "spec", "name", "threads", "cores", "_slowdown", "jobs")

    def __init__(self, env: simpy.Environment, spec: CpuSpec, name: str = "") -> None:
        self.env = env
        self.spec = spec
        self.name = name
        self.threads = Servers(env, spec.threads, name)
        self.cores = spec.cores
        self._slowdown = 1.0 / shared_speed(spec)
        self.jobs = 0
        """Jobs run to completion."""

    def run(self, seconds: float) -> Generator[simpy.Event, object, None]:
        """Hold one thread for *seconds* of full-speed work (longer if sharing)."""
        if seconds <= 0:
            return
        threads = self.threads
        grant = threads.acquire()
        if grant is not None:
            yield grant
        if threads.busy > self.cores:
            seconds *= self._slowdown
        yield self.env.timeout(seconds)
        threads.release()
        self.jobs += 1
