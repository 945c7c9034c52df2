"""Disk access time by hand, and a spindle that serves one I/O at a time."""

from __future__ import annotations

import numpy as np
import pytest
import simpy

from twin.hardware import disk as disk_module
from twin.hardware.disk import (
    Disk,
    Timeline,
    WaitCounter,
    access_time_s,
    positioning_s,
    rotational_latency_s,
    transfer_s,
)
from twin.hardware.profile import DiskSpec
from twin.resources import Servers

CHEETAH = DiskSpec(
    rpm=10000,
    avg_seek_s=4.7e-3,
    track_to_track_s=0.3e-3,
    transfer_bytes_per_s=60e6,
    capacity_bytes=73_000_000_000,
)


@pytest.mark.parametrize(
    ("rpm", "expected_ms"), [(7200, 4.1667), (10000, 3.0), (15000, 2.0), (0, 0.0)]
)
def test_rotational_latency_is_half_a_revolution(rpm, expected_ms):
    # FACTS.md: 7,200 rpm 4.17 ms, 10,000 rpm 3.0 ms, 15,000 rpm 2.0 ms
    assert rotational_latency_s(rpm) * 1e3 == pytest.approx(expected_ms, abs=1e-4)


def test_random_access_by_hand():
    # 4.7 ms seek + 3.0 ms half revolution + 4096 B / 60 MB/s (0.06827 ms)
    assert access_time_s(CHEETAH, 4096) == pytest.approx(7.768267e-3, rel=1e-6)
    assert positioning_s(CHEETAH) == pytest.approx(7.7e-3)
    assert transfer_s(CHEETAH, 60e6) == pytest.approx(1.0)


def test_sequential_access_pays_track_to_track_only():
    assert access_time_s(CHEETAH, 1_000_000, sequential=True) == pytest.approx(
        0.3e-3 + 1_000_000 / 60e6
    )
    no_t2t = DiskSpec(
        rpm=7200, avg_seek_s=8e-3, transfer_bytes_per_s=1e6, capacity_bytes=1
    )
    assert access_time_s(no_t2t, 1000, sequential=True) == pytest.approx(1e-3)


def test_solid_state_has_no_rotation():
    ssd = DiskSpec(rpm=0, avg_seek_s=1e-5, transfer_bytes_per_s=2e9, capacity_bytes=1)
    assert access_time_s(ssd, 4096) == pytest.approx(1e-5 + 4096 / 2e9)


def test_bad_arguments():
    with pytest.raises(ValueError, match="rpm"):
        rotational_latency_s(-1)
    with pytest.raises(ValueError, match="nbytes"):
        transfer_s(CHEETAH, -1)


def test_spindle_serves_one_io_at_a_time():
    env = simpy.Environment()
    disk = Disk(env, CHEETAH, "d0")
    finished: list[float] = []

    def one():
        yield from disk.io(4096)
        finished.append(env.now)

    for _ in range(10):
        env.process(one())
    env.run()
    t = access_time_s(CHEETAH, 4096)
    assert finished == pytest.approx([t * (k + 1) for k in range(10)])
    assert (disk.ios, disk.bytes_moved) == (10, 40960)
    disk.spindle.sync()
    assert disk.spindle.busy_area == pytest.approx(10 * t)
    # waiting: 9, 8, ... 0 jobs for t each
    assert disk.spindle.queue_area == pytest.approx(45 * t)
    assert disk.load == 0


def test_failed_disk_refuses_io():
    env = simpy.Environment()
    disk = Disk(env, CHEETAH, "d3")
    disk.failed = True
    process = env.process(disk.io(4096))
    with pytest.raises(RuntimeError, match="disk d3 has failed"):
        env.run()
    assert not process.ok


# -- the reserved timeline against a simulated FCFS queue ---------------------------


def reference_fcfs(arrivals, services):
    """Finish times and books of the same jobs through a simulated Servers."""
    env = simpy.Environment()
    pool = Servers(env, 1, "ref")
    finished = [0.0] * len(arrivals)

    def job(index):
        yield env.timeout(arrivals[index])
        grant = pool.acquire()
        if grant is not None:
            yield grant
        yield env.timeout(services[index])
        pool.release()
        finished[index] = env.now

    for index in range(len(arrivals)):
        env.process(job(index))
    env.run()
    pool.sync()
    return finished, pool, env.now


def test_timeline_is_exactly_a_fcfs_queue_when_jobs_are_booked_on_arrival():
    rng = np.random.default_rng(7)
    arrivals = np.cumsum(rng.exponential(0.01, 400)).tolist()
    services = rng.exponential(0.009, 400).tolist()  # ~90 % busy: real queues
    expected, pool, end = reference_fcfs(arrivals, services)
    env = simpy.Environment()
    line = Timeline(env, "d")
    finished = [0.0] * len(arrivals)
    samples = []

    def job(index):
        yield env.timeout(arrivals[index])
        done = line.reserve(services[index], env.now)
        yield env.timeout(done - env.now)
        finished[index] = env.now

    def sampler():
        while True:
            yield env.timeout(0.05)
            samples.append((line.busy, line.queue_length))

    for index in range(len(arrivals)):
        env.process(job(index))
    env.process(sampler())
    env.run(until=end)  # the reference's books are at its last completion
    assert line.busy_area == pytest.approx(pool.busy_area)
    assert line.queue_area == pytest.approx(pool.queue_area)
    assert line.served == pool.served == 400
    env.run(until=end + 1)
    assert finished == pytest.approx(expected, abs=1e-12)
    assert line.queue_max == pool.queue_max > 3
    assert all(busy in (0, 1) for busy, _ in samples)
    assert max(queue for _, queue in samples) > 0


def test_accounting_is_exact_in_the_middle_of_an_io():
    env = simpy.Environment()
    line = Timeline(env, "d")
    assert line.reserve(1.0, 0.0, 10) == 1.0
    assert line.reserve(1.0, 0.0, 20) == 2.0  # queued behind the first
    assert line.reserve(1.0, 0.5, 30) == 3.0  # submitted later: queued from 0.5
    env.run(until=1.5)
    assert line.busy_area == pytest.approx(1.5)
    assert line.queue_area == pytest.approx(1.0 + 1.0)  # [0, 1] and [0.5, 1.5]
    assert (line.busy, line.queue_length, line.served) == (1, 1, 2)
    assert (line.completed, line.completed_units, line.queue_max) == (1, 10, 2)
    env.run(until=5.0)
    line.sync()
    assert (line.busy_area, line.queue_area) == pytest.approx((3.0, 2.5))
    assert (line.busy, line.queue_length, line.completed_units) == (0, 0, 60)


def test_a_booking_ahead_leaves_an_idle_window_that_later_jobs_fill():
    env = simpy.Environment()
    line = Timeline(env, "d")
    assert line.reserve(1.0, 5.0) == 6.0  # booked now, submitted at 5
    assert line.reserve(2.0, 0.0) == 2.0  # fits before it
    assert line.reserve(2.0, 1.0) == 4.0  # so does this one, after the first
    assert line.reserve(2.0, 1.0) == 8.0  # this one does not fit: after it
    assert line.free_at == 8.0
    assert line.reserve(1.0, 2.5) == 5.0  # the last second before 5
    env.run(until=10)
    assert line.busy_area == pytest.approx(8.0)


def test_io_costs_one_event_and_start_calls_back():
    env = simpy.Environment()
    disk = Disk(env, CHEETAH, "d0")
    called: list[float] = []
    disk.start(4096, False, lambda: called.append(env.now))
    env.process(disk.io(4096, sequential=True))
    env.run()
    t = access_time_s(CHEETAH, 4096)
    assert called == [pytest.approx(t)]
    assert env.now == pytest.approx(t + access_time_s(CHEETAH, 4096, True))
    assert disk.submit(4096, env.now) == pytest.approx(env.now + t)  # no event
    assert env.peek() == float("inf")


def _most_waiting(pairs, now):
    """Brute force: the most (submit, start) waits covering one t <= now."""
    points = [submit for submit, _ in pairs if submit <= now]
    return max(
        (sum(1 for s, e in pairs if s <= t < e) for t in points), default=0
    )


@pytest.mark.parametrize("fold_every", [3, 64, 8192])
def test_wait_counter_is_exact_across_folds_and_bookings_ahead(
    monkeypatch, fold_every
):
    monkeypatch.setattr(disk_module, "FOLD_EVERY", fold_every)
    rng = np.random.default_rng(7)
    env = simpy.Environment()
    waits = WaitCounter(env)
    pairs = []

    def booker(env):
        for _ in range(400):
            yield env.timeout(float(rng.exponential(0.5)))
            ahead = float(rng.exponential(0.3)) if rng.random() < 0.3 else 0.0
            submit = env.now + ahead
            start = submit + float(rng.exponential(2.0))
            waits.note(submit, start)
            pairs.append((submit, start))
            if rng.random() < 0.1:  # read in the middle, as a sampler does
                assert waits.most == _most_waiting(pairs, env.now)

    env.process(booker(env))
    env.run()
    assert waits.most == _most_waiting(pairs, env.now) > 3
    env.run(until=env.now + 100)  # the waits booked ahead count once reached
    assert waits.most == _most_waiting(pairs, env.now)


def test_wait_counter_forgets_cancelled_waits():
    env = simpy.Environment()
    waits = WaitCounter(env)
    waits.note(0.0, 5.0)
    waits.note(2.0, 6.0)  # booked ahead, then cancelled at t=1
    env.run(until=1.0)
    waits.forget_after(env.now)
    env.run(until=10.0)
    assert waits.most == 1
