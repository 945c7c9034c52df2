"""Fast booking paths give bit-identical results to the straightforward computation.

Each fast path of ``twin.hardware`` (inlined drains, the bisected idle-window
search, the sorted thread pool, the memoised unit costs, the inlined RAID 5
small write, the precomputed round trip) is compared, float for float, with a
plain re-statement of the rule it implements, on many random inputs.
"""

from __future__ import annotations

import zlib
from collections import deque

import numpy as np
import pytest
import simpy

from twin.hardware.array import BLOCK_BYTES, Array, placement_offset
from twin.hardware.cpu import Cpu, shared_speed
from twin.hardware.disk import GAP_SLACK_S, Timeline
from twin.hardware.host import Host
from twin.hardware.network import Link
from twin.hardware.profile import ArraySpec, CpuSpec, DiskSpec, LinkSpec, load_profile
from twin.stages.work import Work


class Clock:
    """Stands in for a simpy.Environment: only ``now`` is read."""

    def __init__(self) -> None:
        self.now = 0.0


class PlainTimeline:
    """The FCFS timeline with idle windows, stated plainly (the rule of disk.py)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.free_at = 0.0
        self.pending: deque[tuple[float, float, float, int]] = deque()
        self.gaps: list[tuple[float, float]] = []
        self.busy_done = self.queue_done = 0.0
        self.jobs_done = self.units_done = 0

    def drain(self, now: float) -> None:
        busy = queue = 0.0
        jobs = units = 0
        while self.pending and self.pending[0][2] <= now:
            submit, start, end, nbytes = self.pending.popleft()
            busy += end - start
            queue += start - submit
            jobs += 1
            units += nbytes
        self.busy_done += busy
        self.queue_done += queue
        self.jobs_done += jobs
        self.units_done += units

    def reserve(self, service_s: float, submit: float, units: int) -> float:
        now = self.clock.now
        if self.pending and self.pending[0][2] <= now:
            self.drain(now)
        gaps = self.gaps
        if gaps and gaps[-1][1] <= now:
            gaps.clear()
        while gaps and gaps[0][1] <= now:
            del gaps[0]
        for index, (low, high) in enumerate(gaps):
            start = max(low, submit)
            end = start + service_s
            if end <= high + GAP_SLACK_S:
                end = min(end, high)
                gaps[index : index + 1] = [
                    gap for gap in ((low, start), (end, high)) if gap[1] > gap[0]
                ]
                self.pending.append((submit, end - service_s, end, units))
                return end
        start = max(self.free_at, submit)
        if start == submit and submit > now and self.free_at <= submit:
            gaps.append((max(self.free_at, now), submit))
        end = self.free_at = start + service_s
        self.pending.append((submit, start, end, units))
        return end

    def busy_area(self) -> float:
        now = self.clock.now
        self.drain(now)
        area = self.busy_done
        for _submit, start, end, _units in self.pending:
            if start < now:
                area += min(end, now) - start
        return area

    def queue_area(self) -> float:
        now = self.clock.now
        self.drain(now)
        area = self.queue_done
        for submit, start, _end, _units in self.pending:
            if submit < now and submit < start:
                area += min(start, now) - submit
        return area


@pytest.mark.parametrize("seed", range(6))
def test_timeline_matches_the_plain_rule_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    clock = Clock()
    fast = Timeline(clock)  # type: ignore[arg-type]
    plain = PlainTimeline(clock)
    longest = 0
    for _ in range(3000):
        clock.now += float(rng.exponential(0.004))
        ahead = float(rng.exponential(0.05)) if rng.random() < 0.6 else 0.0
        submit = clock.now + ahead
        service = float(rng.exponential(0.003))
        units = int(rng.integers(0, 9000))
        passed_now = rng.random() < 0.5
        end = fast.reserve(service, submit, units, clock.now if passed_now else None)
        assert end == plain.reserve(service, submit, units)
        assert fast._gaps == plain.gaps
        longest = max(longest, len(plain.gaps))
        if rng.random() < 0.05:
            assert fast.busy_area == plain.busy_area()
            assert fast.queue_area == plain.queue_area()
            assert fast.completed == plain.jobs_done
            assert fast.completed_units == plain.units_done
    assert longest > 8  # the bisected search was exercised
    clock.now += 10.0
    assert fast.busy_area == plain.busy_area()
    assert fast.queue_area == plain.queue_area()
    assert fast.completed == plain.jobs_done


class PlainThreads:
    """The FCFS thread pool with the Hyper-Threading rule, stated plainly."""

    def __init__(self, spec: CpuSpec) -> None:
        self.spec = spec
        self.free = [0.0] * spec.threads
        self.pending: list[tuple[float, float, float]] = []
        self.busy_done = self.queue_done = 0.0
        self.jobs_done = 0

    def drain(self, now: float) -> None:
        busy = queue = 0.0
        jobs = 0
        kept = []
        for submit, start, end in self.pending:
            if end <= now:
                busy += end - start
                queue += start - submit
                jobs += 1
            else:
                kept.append((submit, start, end))
        if jobs:
            self.pending = kept
            self.busy_done += busy
            self.queue_done += queue
            self.jobs_done += jobs

    def busy_area(self, now: float) -> float:
        self.drain(now)
        area = self.busy_done
        for _submit, start, end in self.pending:
            if start < now:
                area += min(end, now) - start
        return area

    def reserve(self, seconds: float, now: float) -> float:
        thread = min(range(len(self.free)), key=self.free.__getitem__)
        start = max(self.free[thread], now)
        busy = 1 + sum(1 for at in self.free if at > start)
        if busy > self.spec.cores:
            seconds *= 1.0 / shared_speed(self.spec)
        if self.pending and self.pending[0][2] <= now:
            self.drain(now)
        end = start + seconds
        self.free[thread] = end
        self.pending.append((now, start, end))
        return end


@pytest.mark.parametrize(
    "spec",
    [
        CpuSpec(
            cores=2, clock_hz=3.2e9, relative_speed=1.0, threads_per_core=2, ht_gain=0.2
        ),
        CpuSpec(cores=4, clock_hz=300e6, relative_speed=12.5),
        CpuSpec(cores=1, clock_hz=1e9, relative_speed=2.0),
    ],
)
def test_cpu_matches_the_plain_pool_bit_for_bit(spec):
    rng = np.random.default_rng(5)
    clock = Clock()
    cpu = Cpu(clock, spec, "h.cpu")  # type: ignore[arg-type]
    plain = PlainThreads(spec)
    for step in range(4000):
        clock.now += float(rng.exponential(0.002))
        seconds = float(rng.exponential(0.004 * spec.threads))
        if step % 3 == 0:
            end = cpu.reserve(seconds)
        elif step % 3 == 1:
            end = cpu.reserve(seconds, clock.now)
        else:  # the pool's own grant and book
            threads = cpu.threads
            thread, start, busy = threads.grant(clock.now)
            held = (
                seconds * (1.0 / shared_speed(spec)) if busy > spec.cores else seconds
            )
            end = threads.book(thread, start, held, clock.now)
        assert end == plain.reserve(seconds, clock.now)
        if rng.random() < 0.05:
            assert cpu.threads.busy_area == plain.busy_area(clock.now)
    clock.now += 100.0
    plain.drain(clock.now)
    assert cpu.threads.busy_area == plain.busy_done
    assert cpu.threads.queue_area == plain.queue_done
    assert cpu.threads.completed == plain.jobs_done == 4000


def test_cpu_seconds_matches_the_plain_sum_bit_for_bit():
    rng = np.random.default_rng(3)
    host = Host(simpy.Environment(), "mail", load_profile("dell-pe1750"))
    kinds = ["smtp.command", "smtp.byte", "imap.command", "imap.byte", "pop3.byte"]
    profile = host.profile
    for _ in range(2000):
        picked = rng.permutation(kinds)[: int(rng.integers(0, 6))]
        cpu = {str(kind): int(rng.integers(1, 10**6)) for kind in picked}
        scanned = int(rng.integers(0, 3)) * int(rng.integers(0, 5000))
        work = Work(cpu=cpu, dir_entries_scanned=scanned)
        total = 0.0
        for kind, units in cpu.items():
            total += units * profile.cost_s(kind)
        if scanned:
            total += scanned * profile.cost_s("fs.dir_entry")
        assert host.cpu_seconds(work) == total
    with pytest.raises(KeyError):
        host.cpu_seconds(Work(cpu={"smtp.command": 1, "no.such_unit": 2}))
    # (a failed pricing leaves the known kinds priced, and nothing else)
    assert "no.such_unit" not in host._unit_s


def test_link_matches_the_plain_formula_bit_for_bit():
    rng = np.random.default_rng(8)
    spec = LinkSpec(bandwidth_bytes_per_s=12.5e6, latency_s=0.000137)
    clock = Clock()
    link = Link(clock, spec, "l")  # type: ignore[arg-type]
    wire = PlainTimeline(clock)
    for _ in range(3000):
        clock.now += float(rng.exponential(0.003))
        nbytes = int(rng.integers(0, 3)) * int(rng.integers(1, 100_000))
        trips = int(rng.integers(0, 4))
        at = clock.now + (float(rng.exponential(0.01)) if rng.random() < 0.7 else 0.0)
        t = at
        if nbytes > 0:
            t = wire.reserve(nbytes / spec.bandwidth_bytes_per_s, at, nbytes)
            t += spec.latency_s
        t += 2.0 * spec.latency_s * trips
        if rng.random() < 0.5:
            assert link.reserve(nbytes, trips, at, clock.now) == t
        else:
            assert link.reserve(nbytes, trips, at) == t
    clock.now += 10.0
    assert link.wire.busy_area == wire.busy_area()
    assert link.wire.queue_area == wire.queue_area()


def test_link_round_trips_without_bytes_bit_for_bit():
    spec = LinkSpec(bandwidth_bytes_per_s=1e8, latency_s=0.0003)
    link = Link(simpy.Environment(), spec, "l")
    for trips in range(1, 50):
        at = trips * 0.1
        assert link.reserve(0, trips, at) == at + 2.0 * spec.latency_s * trips
        assert link.reserve(0, trips, at, now=0.0) == at + 2.0 * spec.latency_s * trips


CHEETAH = DiskSpec(
    rpm=10000,
    avg_seek_s=4.7e-3,
    track_to_track_s=0.3e-3,
    transfer_bytes_per_s=60e6,
    capacity_bytes=73_000_000_000,
)


@pytest.mark.parametrize("cache", [0, 256 * 1024])
def test_raid5_small_write_fast_path_matches_the_plan(cache):
    # the same writes through the inlined path and through write_plan +
    # submit_plan leave every disk with the same bookings, float for float
    rng = np.random.default_rng(21)
    spec = ArraySpec("raid5", 5, CHEETAH, controller_cache_bytes=cache)
    clock = Clock()
    fast = Array(clock, spec, "fast")  # type: ignore[arg-type]
    plain = Array(clock, spec, "plain")  # type: ignore[arg-type]
    plain._raid5_healthy = False  # every write through write_plan + submit_plan
    for index in range(3000):
        clock.now += float(rng.exponential(0.002))
        key = f"user{int(rng.integers(0, 400))}/new/{index}.host:2,"
        nbytes = int(rng.integers(1, 200_000))
        at = clock.now + (float(rng.exponential(0.01)) if rng.random() < 0.5 else 0.0)
        assert fast.offset(key) == placement_offset(key, fast.usable_bytes)
        assert fast.offset(key) == (
            zlib.crc32(key.encode()) % (fast.usable_bytes // BLOCK_BYTES)
        ) * (BLOCK_BYTES)
        choice = rng.random()
        if choice < 0.3:
            end = fast._write_disks(key, nbytes, at)
            assert end == plain.submit_plan(plain.write_plan(key, nbytes), at)
        elif choice < 0.6:
            assert fast.write_at(key, nbytes, at, clock.now) == plain.write_at(
                key, nbytes, at
            )
        else:
            fast.write_behind(key, nbytes, at, clock.now)
            plain.write_behind(key, nbytes, at)
    clock.now += 1000.0
    for mine, theirs in zip(fast.disks, plain.disks, strict=True):
        assert mine.busy_area == theirs.busy_area
        assert mine.queue_area == theirs.queue_area
        assert mine.completed_units == theirs.completed_units
    assert fast.queue_max == plain.queue_max
    assert fast.writes == plain.writes


def test_storage_steps_book_the_same_with_and_without_now():
    # Host.complete_at hands env.now down; booking without it agrees
    rng = np.random.default_rng(4)
    profile = load_profile("dell-pe1750")
    hosts = []
    for _ in range(2):
        env = simpy.Environment()
        hosts.append(Host(env, "mail", profile))
    for index in range(1500):
        writes = tuple(
            (
                f"box{int(rng.integers(0, 50))}/new/{index}.{part}",
                int(rng.integers(1, 90_000)),
            )
            for part in range(int(rng.integers(0, 3)))
        )
        reads = tuple(
            (f"box{int(rng.integers(0, 50))}/cur/{int(rng.integers(0, 9000))}", 4096)
            for _ in range(int(rng.integers(0, 2)))
        )
        work = Work(
            cpu={"fs.dir_entry": int(rng.integers(0, 90))},
            reads=reads,
            writes=writes,
            fsyncs=int(rng.integers(0, 2)),
            files_created=len(writes),
            dir_entries_scanned=int(rng.integers(0, 2)) * 40,
            net_bytes=int(rng.integers(0, 5000)),
            net_round_trips=int(rng.integers(0, 2)),
        )
        ends = []
        for host in hosts:
            host.env.run(until=index * 0.01 + 0.001)
            if host is hosts[0]:
                ends.append(host.complete_at(work, "users"))
            else:  # the step piece by piece, each reading env.now itself
                t = host.env.now
                cpu_s = host.cpu_seconds(work)
                if cpu_s > 0:
                    t = host.cpu.reserve(cpu_s)
                t = host._storage_at(work, host.array("users"), t)
                if work.net_bytes or work.net_round_trips:
                    t = host.link.reserve(work.net_bytes, work.net_round_trips, t)
                ends.append(t)
        assert ends[0] == ends[1]
    for first, second in zip(hosts[0].monitors(), hosts[1].monitors(), strict=True):
        assert first[1].busy_area == second[1].busy_area
        assert first[1].queue_area == second[1].queue_area
