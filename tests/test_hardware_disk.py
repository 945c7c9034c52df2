"""Disk access time by hand, and a spindle that serves one I/O at a time."""

from __future__ import annotations

import pytest
import simpy

from twin.hardware.disk import (
    Disk,
    access_time_s,
    positioning_s,
    rotational_latency_s,
    transfer_s,
)
from twin.hardware.profile import DiskSpec

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
