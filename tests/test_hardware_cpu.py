"""CPU: hardware threads as one pool, Hyper-Threading speed and saturation."""

from __future__ import annotations

import numpy as np
import pytest
import simpy

from twin.hardware.cpu import Cpu, saturation_throughput, shared_speed
from twin.hardware.profile import CpuSpec, load_profile
from twin.resources import Servers

XEON = CpuSpec(
    cores=2, clock_hz=3.2e9, relative_speed=1.0, threads_per_core=2, ht_gain=0.2
)
SPARC = CpuSpec(cores=4, clock_hz=300e6, relative_speed=12.5)


def test_shared_speed_and_saturation_by_hand():
    assert shared_speed(XEON) == pytest.approx(0.6)  # (1 + 0.2) / 2
    assert XEON.saturation_cores == pytest.approx(2.4)
    assert saturation_throughput(XEON, 0.01) == pytest.approx(240.0)
    assert saturation_throughput(SPARC, 0.01) == pytest.approx(400.0)
    assert shared_speed(SPARC) == 1.0
    with pytest.raises(ValueError, match="job_seconds"):
        saturation_throughput(XEON, 0)


def finish_times(spec: CpuSpec, jobs: int, seconds: float) -> list[float]:
    env = simpy.Environment()
    cpu = Cpu(env, spec, "h.cpu")
    done: list[float] = []

    def job():
        yield from cpu.run(seconds)
        done.append(env.now)

    for _ in range(jobs):
        env.process(job())
    env.run()
    return done


def test_jobs_up_to_the_core_count_run_at_full_speed():
    assert finish_times(XEON, 2, 0.3) == pytest.approx([0.3, 0.3])


def test_a_job_sharing_a_core_runs_slower():
    # the third and fourth jobs land on siblings of busy cores: 0.3 / 0.6 = 0.5 s
    assert finish_times(XEON, 4, 0.3) == pytest.approx([0.3, 0.3, 0.5, 0.5])


def test_a_fifth_job_waits_for_a_thread():
    # freed at 0.3 with 3 threads still busy: it shares a core (0.5 s) -> 0.8
    assert finish_times(XEON, 5, 0.3) == pytest.approx([0.3, 0.3, 0.5, 0.5, 0.8])


def test_without_hyper_threading_jobs_queue():
    assert finish_times(SPARC, 5, 1.0) == pytest.approx([1, 1, 1, 1, 2])


def test_zero_seconds_holds_nothing():
    env = simpy.Environment()
    cpu = Cpu(env, XEON)
    env.process(cpu.run(0.0))
    env.run()
    assert env.now == 0 and cpu.threads.served == 0


@pytest.mark.parametrize("spec", [XEON, SPARC])
def test_simulated_saturation_matches_the_analytic_throughput(spec):
    env = simpy.Environment()
    cpu = Cpu(env, spec)
    jobs = iter(range(3000))

    def worker():
        for _ in jobs:
            yield from cpu.run(0.01)

    for _ in range(spec.threads * 3):
        env.process(worker())
    env.run()
    assert cpu.jobs == 3000
    assert cpu.jobs / env.now == pytest.approx(
        saturation_throughput(spec, 0.01), rel=0.01
    )
    cpu.threads.sync()
    assert cpu.threads.busy_area / (spec.threads * env.now) == pytest.approx(1.0, 0.01)


def test_profiles_feed_the_cpu():
    dell = load_profile("dell-pe1750").cpu
    assert saturation_throughput(dell, 1.0) == pytest.approx(2.4)
    sun = load_profile("sun-ue450").cpu
    # a job of 1 reference second takes 12.5 s on one UltraSPARC-II: 4 / 12.5 a second
    assert saturation_throughput(sun, 1.0 * sun.relative_speed) == pytest.approx(0.32)


def reference_cpu(spec: CpuSpec, arrivals, seconds):
    """The same jobs through a simulated Servers pool with the HT rule."""
    env = simpy.Environment()
    pool = Servers(env, spec.threads, "ref")
    finished = [0.0] * len(arrivals)

    def job(index):
        yield env.timeout(arrivals[index])
        grant = pool.acquire()
        if grant is not None:
            yield grant
        work = seconds[index]
        if pool.busy > spec.cores:
            work /= shared_speed(spec)
        yield env.timeout(work)
        pool.release()
        finished[index] = env.now

    for index in range(len(arrivals)):
        env.process(job(index))
    env.run()
    pool.sync()
    return finished, pool, env.now


@pytest.mark.parametrize("spec", [XEON, SPARC])
def test_booked_threads_match_a_simulated_pool(spec):
    # Poisson arrivals at ~95 % of saturation, exponential job sizes
    rng = np.random.default_rng(11)
    jobs = 600
    mean_s = 0.01 * spec.relative_speed
    arrivals = np.cumsum(
        rng.exponential(mean_s / (0.95 * spec.saturation_cores), jobs)
    ).tolist()
    seconds = rng.exponential(mean_s, jobs).tolist()
    expected, pool, end = reference_cpu(spec, arrivals, seconds)
    env = simpy.Environment()
    cpu = Cpu(env, spec, "h.cpu")
    finished = [0.0] * jobs

    def job(index):
        yield env.timeout(arrivals[index])
        yield from cpu.run(seconds[index])
        finished[index] = env.now

    for index in range(jobs):
        env.process(job(index))
    env.run(until=end)
    threads = cpu.threads
    assert threads.busy_area == pytest.approx(pool.busy_area)
    assert threads.queue_area == pytest.approx(pool.queue_area)
    assert threads.served == pool.served == jobs
    assert threads.queue_max == pool.queue_max > 1
    env.run(until=end + 1)
    assert finished == pytest.approx(expected, abs=1e-12)
    assert cpu.jobs == jobs


def test_reserve_books_without_an_event():
    env = simpy.Environment()
    cpu = Cpu(env, XEON)
    ends = [cpu.reserve(0.3) for _ in range(5)]
    assert ends == pytest.approx([0.3, 0.3, 0.5, 0.5, 0.8])
    assert env.peek() == float("inf")
    assert (cpu.threads.busy, cpu.threads.queue_length) == (4, 1)
    assert cpu.reserve(0.0) == 0.0
