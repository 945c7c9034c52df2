"""The eighth round of hardware fast paths books exactly what the general paths book.

Covered: the one-phase write of a healthy single disk or RAID 1 and the
one-I/O read of a healthy single disk or RAID 5 (``Array._write_disks``,
``Array.read_at``), the RAID 5 small write with its two phases inlined, the
inlined controller-cache hold, the idle-window pre-check of
``Timeline.reserve``, ``Host.complete_at`` with the storage step inlined and the
only array precomputed, ``Cpu.reserve``'s precomputed sharing threshold and
``PageCache``'s eviction bookkeeping. Every comparison is of floats with ``==``.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import simpy

from twin.hardware.array import Array
from twin.hardware.cpu import Cpu
from twin.hardware.disk import GAP_SCAN, Timeline
from twin.hardware.host import Host
from twin.hardware.memory import PageCache
from twin.hardware.profile import ArraySpec, CpuSpec, DiskSpec, load_profile
from twin.stages.work import Work


class Clock:
    """Stands in for a simpy.Environment: only ``now`` is read."""

    def __init__(self) -> None:
        self.now = 0.0


CHEETAH = DiskSpec(
    rpm=10_000,
    avg_seek_s=4.7e-3,
    track_to_track_s=0.3e-3,
    transfer_bytes_per_s=60e6,
    capacity_bytes=73_000_000_000,
)


def _general(array: Array) -> Array:
    """Turn *array*'s fast paths off: every I/O through its plan."""
    array._raid5_healthy = False
    array._write_all = None
    array._single = None
    return array


def _same_disks(fast: Array, plain: Array) -> None:
    for mine, theirs in zip(fast.disks, plain.disks, strict=True):
        assert list(mine._pending) == list(theirs._pending)
        assert mine._gaps == theirs._gaps
        assert mine.free_at == theirs.free_at
        assert mine.busy_area == theirs.busy_area
        assert mine.queue_area == theirs.queue_area
        assert mine.completed_units == theirs.completed_units
        assert mine.queue_max == theirs.queue_max
    assert fast.queue_max == plain.queue_max
    assert fast.busy_area == plain.busy_area
    assert fast.writes == plain.writes
    assert fast.reads == plain.reads
    assert fast.degraded_reads == plain.degraded_reads
    assert fast.dirty_bytes == plain.dirty_bytes


def _advance(clock, seconds: float) -> None:
    """Move *clock* (a Clock or a simpy.Environment) on by *seconds*."""
    if isinstance(clock, Clock):
        clock.now += seconds
    else:
        clock.run(until=clock.now + seconds)


def _drive(fast: Array, plain: Array, clock, seed: int, steps: int) -> None:
    """Random reads and writes on both arrays, which share *clock*."""
    rng = np.random.default_rng(seed)
    for index in range(steps):
        _advance(clock, float(rng.exponential(0.003)))
        key = f"user{int(rng.integers(0, 300))}/cur/{index}.host:2,S"
        nbytes = int(rng.integers(1, 150_000))
        at = clock.now + (float(rng.exponential(0.02)) if rng.random() < 0.6 else 0.0)
        now = clock.now if rng.random() < 0.5 else None
        choice = rng.random()
        if choice < 0.25:
            assert fast._write_disks(key, nbytes, at, now) == plain.submit_plan(
                plain.write_plan(key, nbytes), at
            )
        elif choice < 0.5:
            assert fast.write_at(key, nbytes, at, now) == plain.write_at(
                key, nbytes, at
            )
        elif choice < 0.75:
            fast.write_behind(key, nbytes, at, now)
            plain.write_behind(key, nbytes, at)
        else:
            nbytes = int(rng.integers(1, 20_000))
            assert fast.read_at(key, nbytes, at, now) == plain.read_at(key, nbytes, at)


@pytest.mark.parametrize(
    ("level", "disks", "cache"),
    [
        ("single", 1, 0),
        ("single", 1, 512 * 1024),
        ("raid1", 2, 0),
        ("raid1", 2, 128 * 1024 * 1024),
        ("raid1", 3, 256 * 1024),
        ("raid5", 14, 128 * 1024 * 1024),
        ("raid5", 4, 0),
        ("raid10", 4, 256 * 1024),
    ],
)
def test_fast_paths_book_what_the_plans_book(level, disks, cache):
    clock = Clock()
    spec = ArraySpec(level, disks, CHEETAH, controller_cache_bytes=cache)
    fast = Array(clock, spec, "fast")  # type: ignore[arg-type]
    plain = _general(Array(clock, spec, "plain"))  # type: ignore[arg-type]
    assert (fast._write_all is not None) == (level in ("single", "raid1"))
    assert (fast._single is not None) == (level == "single")
    _drive(fast, plain, clock, seed=disks * 7 + cache % 97, steps=2500)
    clock.now += 1000.0
    _same_disks(fast, plain)
    assert fast.served == plain.served > 0


@pytest.mark.parametrize(("level", "disks"), [("raid1", 2), ("raid1", 3), ("raid5", 5)])
def test_a_failure_and_a_rebuild_switch_the_fast_paths_off_and_on(level, disks):
    env = simpy.Environment()
    spec = ArraySpec(level, disks, CHEETAH, controller_cache_bytes=64 * 1024)
    fast = Array(env, spec, "fast")
    plain = _general(Array(env, spec, "plain"))
    _drive(fast, plain, env, seed=1, steps=300)
    env.run(until=env.now + 1.0)
    fast.fail_disk(1)
    plain.fail_disk(1)
    assert fast._write_all is None and fast._single is None
    assert not fast._raid5_healthy
    for index in range(200):  # degraded: both through the plans
        key = f"k{index}"
        assert fast.write_at(key, 4096, env.now) == plain.write_at(key, 4096, env.now)
        assert fast.read_at(key, 4096, env.now) == plain.read_at(key, 4096, env.now)
        env.run(until=env.now + 0.01)
    process = env.process(fast.rebuild(1, chunk_bytes=CHEETAH.capacity_bytes // 4))
    env.process(plain.rebuild(1, chunk_bytes=CHEETAH.capacity_bytes // 4))
    env.run(until=process)
    assert (fast._write_all is not None) == (level == "raid1")
    assert fast._raid5_healthy == (level == "raid5")
    if fast._write_all is not None:  # the replacement disk is written too
        assert fast._write_all == tuple(fast.disks)
    _general(plain)
    for index in range(300):
        key = f"after{index}"
        at = env.now + 0.001 * (index % 3)
        assert fast.write_at(key, 8192, at) == plain.write_at(key, 8192, at)
        fast.write_behind(key, 4096, at)
        plain.write_behind(key, 4096, at)
        assert fast.read_at(key, 4096, at) == plain.read_at(key, 4096, at)
        env.run(until=env.now + 0.004)
    env.run(until=env.now + 100.0)
    _same_disks(fast, plain)


class ScanningTimeline(Timeline):
    """``Timeline.reserve`` as it was: every booking scans the idle windows."""

    __slots__ = ()

    def reserve(self, service_s, submit, units=0, now=None):  # noqa: D102
        if now is None:
            now = self.env.now
        if self._pending and self._pending[0][2] <= now:
            self._drain(now)
        gaps = self._gaps
        if gaps:
            if gaps[-1][1] <= now:
                gaps.clear()
            else:
                end = self._fill_gap(service_s, submit, now)
                if end is not None:
                    start = self.last_start = end - service_s
                    if start > submit:
                        self.waits.note(submit, start)
                    self._pending.append((submit, start, end, units))
                    return end
        free_at = self.free_at
        if free_at > submit:
            start = free_at
            self.waits.note(submit, start)
        else:
            start = submit
            if submit > now:
                gaps.append((free_at if free_at > now else now, submit))
        self.last_start = start
        end = self.free_at = start + service_s
        self._pending.append((submit, start, end, units))
        return end


@pytest.mark.parametrize("seed", range(5))
def test_the_window_precheck_finds_what_the_scan_finds(seed):
    # bookings far ahead leave many windows (more than GAP_SCAN, so the
    # bisection runs too); short jobs fit, long ones skip the scan
    rng = np.random.default_rng(100 + seed)
    clock = Clock()
    fast = Timeline(clock)  # type: ignore[arg-type]
    plain = ScanningTimeline(clock)  # type: ignore[arg-type]
    most = fitted = 0
    for _ in range(4000):
        clock.now += float(rng.exponential(0.002))
        ahead = float(rng.exponential(0.08)) if rng.random() < 0.7 else 0.0
        submit = clock.now + ahead
        service = float(rng.exponential(0.004)) if rng.random() < 0.8 else 1e-10
        units = int(rng.integers(0, 5000))
        now = clock.now if rng.random() < 0.5 else None
        end = fast.reserve(service, submit, units, now)
        assert end == plain.reserve(service, submit, units)
        assert fast.last_start == plain.last_start
        assert fast._gaps == plain._gaps
        fitted += end < fast.free_at
        most = max(most, len(fast._gaps))
    assert most > GAP_SCAN and fitted > 50
    clock.now += 10.0
    assert list(fast._pending) == list(plain._pending)
    assert fast.busy_area == plain.busy_area
    assert fast.queue_area == plain.queue_area
    assert fast.queue_max == plain.queue_max


def _plain_storage(host: Host, work: Work, array: str | None) -> float:
    """A step piece by piece: the CPU, ``Host._storage_at``, the link."""
    t = host.env.now
    cpu_s = host.cpu_seconds(work)
    if cpu_s > 0:
        t = host.cpu.reserve(cpu_s)
    if work.touches_storage:
        t = host._storage_at(work, host.array(array), t)
    if work.net_bytes or work.net_round_trips:
        t = host.link.reserve(work.net_bytes, work.net_round_trips, t)
    return t


def _random_work(rng: np.random.Generator, index: int) -> Work:
    writes = tuple(
        (
            f"box{int(rng.integers(0, 40))}/new/{index}.{part}",
            int(rng.integers(0, 90_000)),
        )
        for part in range(int(rng.integers(0, 3)))
    )
    reads = tuple(
        (f"box{int(rng.integers(0, 40))}/cur/{int(rng.integers(0, 3000))}", 8192)
        for _ in range(int(rng.integers(0, 3)))
    )
    return Work(
        cpu={"fs.dir_entry": int(rng.integers(0, 50))},
        reads=reads if rng.random() < 0.7 else (),
        writes=writes if rng.random() < 0.7 else (),
        fsyncs=int(rng.random() < 0.4),
        files_created=int(rng.integers(0, 2)),
        files_renamed=int(rng.integers(0, 2)),
        files_deleted=int(rng.random() < 0.2),
        dir_entries_scanned=int(rng.random() < 0.3) * int(rng.integers(1, 200)),
        locks=int(rng.random() < 0.1),
        net_bytes=int(rng.integers(0, 3)) * 1000,
        net_round_trips=int(rng.integers(0, 2)),
    )


@pytest.mark.parametrize(
    ("hardware", "array"),
    [("dell-pe1750", "users"), ("dell-pe1750", "system"), ("openbsd-gateway", None)],
)
def test_complete_at_books_what_storage_at_books(hardware, array):
    rng = np.random.default_rng(8)
    profile = load_profile(hardware)
    fast = Host(simpy.Environment(), "mail", profile)
    plain = Host(simpy.Environment(), "mail", profile)
    if array is None:
        assert fast._only_array is fast.array(None)
    for index in range(2000):
        work = _random_work(rng, index)
        for host in (fast, plain):
            host.env.run(until=index * 0.004 + 0.001)
        end = fast.complete_at(work, array)
        assert end == _plain_storage(plain, work, array)
    assert fast.background_writes == plain.background_writes > 0
    assert fast.page_cache._files == plain.page_cache._files
    assert fast.page_cache.used_bytes == plain.page_cache.used_bytes
    for host in (fast, plain):
        host.env.run(until=host.env.now + 60.0)
    for mine, theirs in zip(fast.monitors(), plain.monitors(), strict=True):
        assert mine[1].busy_area == theirs[1].busy_area
        assert mine[1].queue_area == theirs[1].queue_area
        assert mine[1].served == theirs[1].served
    for name, target in fast.arrays.items():
        assert target.writes == plain.arrays[name].writes
        assert target.reads == plain.arrays[name].reads
        assert target.queue_max == plain.arrays[name].queue_max


def test_metadata_without_files_goes_to_the_host_wide_key():
    # a step that deletes a file without naming one journals at "<host>:/"
    profile = load_profile("dell-pe1750")
    host = Host(simpy.Environment(), "mail", profile)
    work = Work(files_deleted=2)
    host.complete_at(work, "users")
    assert host.background_writes == 1
    assert host.arrays["users"].writes == 1
    synchronous = Work(files_renamed=1, fsyncs=1)
    assert host.complete_at(synchronous, "users") > 0.0
    assert host.arrays["users"].writes == 2


def test_a_host_with_several_arrays_still_needs_a_name():
    host = Host(simpy.Environment(), "mail", load_profile("dell-pe1750"))
    assert host._only_array is None
    with pytest.raises(ValueError, match="names no array"):
        host.complete_at(Work(writes=(("a/b", 10),)))
    with pytest.raises(ValueError, match="no array 'spool'"):
        host.complete_at(Work(writes=(("a/b", 10),)), "spool")


@pytest.mark.parametrize(("cores", "per_core"), [(1, 2), (2, 2), (2, 1), (4, 2)])
def test_cpu_sharing_threshold_matches_the_busy_count(cores, per_core):
    rng = np.random.default_rng(cores * 10 + per_core)
    spec = CpuSpec(
        cores=cores,
        clock_hz=3.2e9,
        relative_speed=1.0,
        threads_per_core=per_core,
        ht_gain=0.2 if per_core > 1 else 0.0,
    )
    env = simpy.Environment()
    cpu = Cpu(env, spec, "cpu")
    clock = Clock()
    plain = Cpu(clock, spec, "plain")  # type: ignore[arg-type]
    slowed = 0
    for _ in range(3000):
        clock.now += float(rng.exponential(0.0015))
        env.run(until=clock.now)
        seconds = float(rng.exponential(0.004))
        # the rule by hand: threads busy at the start, this job included
        threads = plain.threads
        thread, start, busy = threads.grant(clock.now)
        shared = busy > cores
        slowed += shared
        expected = threads.book(
            thread,
            start,
            seconds * (1.0 / ((1.0 + spec.ht_gain) / per_core)) if shared else seconds,
            clock.now,
        )
        assert cpu.reserve(seconds) == expected
    assert (slowed > 0) == (per_core > 1)
    env.run(until=clock.now + 100.0)
    clock.now += 100.0
    assert cpu.threads.busy_area == plain.threads.busy_area


def test_page_cache_eviction_keeps_exact_counts():
    rng = np.random.default_rng(3)
    cache = PageCache(200_000)
    files: OrderedDict[str, int] = OrderedDict()
    used = evicted = 0
    for _ in range(5000):
        key = f"f{int(rng.integers(0, 60))}"
        nbytes = int(rng.integers(0, 260_000))
        have = files.get(key, 0)
        if rng.random() < 0.5:
            missing = cache.read(key, nbytes)
            assert missing == max(0, nbytes - have)
        else:
            cache.write(key, nbytes)
        if have:
            files.move_to_end(key)
        keep = min(nbytes, 200_000)
        if keep > have:
            files[key] = keep
            used += keep - have
            while used > 200_000:
                _victim, size = files.popitem(last=False)
                used -= size
                evicted += size
        assert cache.used_bytes == used <= 200_000
        assert cache.evicted_bytes == evicted
        assert cache._files == files
    assert evicted > 0
