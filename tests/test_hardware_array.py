"""Disk arrays: layout, RAID plans by hand, capacity math, and SimPy throughput."""

from __future__ import annotations

import pytest
import simpy

from twin.hardware.array import (
    CACHE_BUS_BYTES_PER_S,
    CACHE_COMMAND_S,
    Array,
    ArrayLostError,
    degraded_read_ios,
    placement_offset,
    raid5_data_disk,
    raid5_parity_disk,
    random_iops,
    rebuild_time_s,
    usable_bytes,
    write_penalty,
)
from twin.hardware.disk import access_time_s
from twin.hardware.profile import ArraySpec, DiskSpec

CHEETAH = DiskSpec(
    rpm=10000,
    avg_seek_s=4.7e-3,
    track_to_track_s=0.3e-3,
    transfer_bytes_per_s=60e6,
    capacity_bytes=73_000_000_000,
)
T = access_time_s(CHEETAH, 4096)  # 7.768 ms: one random 4 KiB I/O
UNIT = 64 * 1024


def make(level: str, disks: int, cache: int = 0, disk: DiskSpec = CHEETAH) -> Array:
    spec = ArraySpec(level, disks, disk, controller_cache_bytes=cache)
    return Array(simpy.Environment(), spec, "a")


def ios(plan) -> int:
    return sum(len(phase) for phase in plan)


# -- capacity math by hand ------------------------------------------------------


def test_write_penalties():
    assert write_penalty("single", 1) == 1
    assert write_penalty("raid1", 2) == 2  # FACTS.md: RAID 1 write = 2 I/Os
    assert write_penalty("raid10", 14) == 2
    assert write_penalty("raid5", 14) == 4  # FACTS.md: 4 I/Os on 2 spindles
    assert write_penalty("raid5", 3) == 3  # reconstruct-write is cheaper on 3


def test_random_iops_by_hand():
    # PE1750 users array: 14 x 10k rpm, t = 4.7 + 3.0 + 0.068 ms = 7.768 ms
    assert T == pytest.approx(7.768267e-3, rel=1e-6)
    assert random_iops("raid5", 14, CHEETAH, 1.0) == pytest.approx(14 / T)  # 1802/s
    assert random_iops("raid5", 14, CHEETAH, 0.0) == pytest.approx(
        14 / (4 * T)
    )  # 451/s
    assert random_iops("raid5", 14, CHEETAH, 0.5) == pytest.approx(14 / (2.5 * T))
    assert random_iops("raid1", 2, CHEETAH, 1.0) == pytest.approx(2 / T)
    assert random_iops("raid1", 2, CHEETAH, 0.0) == pytest.approx(1 / T)
    assert random_iops("raid10", 14, CHEETAH, 0.0) == pytest.approx(7 / T)
    assert random_iops("single", 1, CHEETAH, 0.3) == pytest.approx(1 / T)
    with pytest.raises(ValueError, match="read_fraction"):
        random_iops("raid5", 4, CHEETAH, 1.5)
    with pytest.raises(ValueError, match="level"):
        write_penalty("raid6", 6)


def test_capacity_math():
    assert usable_bytes("raid5", 14, CHEETAH) == 13 * 73_000_000_000
    assert usable_bytes("raid10", 14, CHEETAH) == 7 * 73_000_000_000
    assert usable_bytes("raid1", 2, CHEETAH) == 73_000_000_000
    assert degraded_read_ios("raid5", 14) == 13
    assert degraded_read_ios("raid1", 2) == 1
    assert rebuild_time_s(CHEETAH) == pytest.approx(73e9 / 60e6)  # ~20 min


def test_raid5_layout_rotates_parity():
    # n = 4: row 0 parity on disk 3, data 0 1 2; row 1 parity 2, data 3 0 1 ...
    assert [raid5_parity_disk(row, 4) for row in range(5)] == [3, 2, 1, 0, 3]
    assert [raid5_data_disk(unit, 4) for unit in range(12)] == [
        0, 1, 2,
        3, 0, 1,
        2, 3, 0,
        1, 2, 3,
    ]  # fmt: skip


def test_placement_is_stable_and_block_aligned():
    offset = placement_offset("alice/new/1.M1P2.host", 10**12)
    assert offset == placement_offset("alice/new/1.M1P2.host", 10**12)
    assert offset % 4096 == 0 and 0 <= offset < 10**12
    assert offset != placement_offset("alice/new/2.M1P2.host", 10**12)


# -- plans ------------------------------------------------------------------------


def test_raid5_reads_hit_one_disk():
    array = make("raid5", 4)
    assert array.read_plan_at(0, 4096) == [[(0, 4096)]]
    assert array.read_plan_at(3 * UNIT, 4096) == [[(3, 4096)]]  # row 1, first data
    assert array.read_plan_at(UNIT - 2048, 4096) == [[(0, 2048), (1, 2048)]]
    assert array.read_demand_s("some/key", 4096) == pytest.approx(T)


def test_raid5_small_write_is_four_ios_on_two_spindles():
    array = make("raid5", 4)
    plan = array.write_plan_at(0, 4096)
    assert plan == [[(0, 4096), (3, 4096)], [(0, 4096), (3, 4096)]]
    assert array.plan_demand_s(plan) == pytest.approx(4 * T)


def test_raid5_full_row_write_has_no_reads():
    array = make("raid5", 4)
    assert array.write_plan_at(0, 3 * UNIT) == [
        [(0, UNIT), (1, UNIT), (2, UNIT), (3, UNIT)]
    ]


def test_raid5_half_row_write_reconstructs():
    # two of three data units: reading the third (1 I/O) beats reading 2 + parity
    array = make("raid5", 4)
    assert array.write_plan_at(0, 2 * UNIT) == [
        [(2, UNIT)],
        [(0, UNIT), (1, UNIT), (3, UNIT)],
    ]


def test_raid5_degraded_read_reads_every_survivor():
    array = make("raid5", 4)
    array.fail_disk(0)
    assert array.read_plan_at(0, 4096) == [[(1, 4096), (2, 4096), (3, 4096)]]
    assert array.plan_demand_s(array.read_plan_at(0, 4096)) == pytest.approx(3 * T)
    assert array.read_plan_at(UNIT, 4096) == [[(1, 4096)]]  # not on the failed disk
    assert array.capacity == 3


def test_raid5_degraded_writes():
    array = make("raid5", 4)
    array.fail_disk(0)
    # the data disk is gone: read the other data units, write parity alone
    assert array.write_plan_at(0, 4096) == [[(1, 4096), (2, 4096)], [(3, 4096)]]
    # a healthy row's small write still reads old data and parity
    assert array.write_plan_at(UNIT, 4096) == [
        [(1, 4096), (3, 4096)],
        [(1, 4096), (3, 4096)],
    ]
    other = make("raid5", 4)
    other.fail_disk(3)  # row 0's parity: write the data alone
    assert other.write_plan_at(0, 4096) == [[(0, 4096)]]
    assert other.write_plan_at(0, 3 * UNIT) == [[(0, UNIT), (1, UNIT), (2, UNIT)]]


def test_raid5_two_failures_lose_the_array():
    array = make("raid5", 4)
    array.fail_disk(1)
    assert not array.lost
    array.fail_disk(2)
    assert array.lost
    with pytest.raises(ArrayLostError, match="disks \\[1, 2\\] failed"):
        array.read_plan_at(0, 4096)
    with pytest.raises(ValueError, match="already failed"):
        array.fail_disk(1)
    with pytest.raises(ValueError, match="disk index"):
        array.fail_disk(4)


def test_raid1_reads_one_writes_both():
    array = make("raid1", 2)
    assert array.read_plan_at(0, 8192) == [[(0, 8192)]]
    assert array.write_plan_at(0, 8192) == [[(0, 8192), (1, 8192)]]
    array.disks[0].free_at = 1.0  # disk 0 busy: the read goes to its mirror
    assert array.read_plan_at(0, 8192) == [[(1, 8192)]]
    array.disks[0].free_at = 0.0
    array.fail_disk(1)
    assert array.read_plan_at(0, 8192) == [[(0, 8192)]]
    assert array.write_plan_at(0, 8192) == [[(0, 8192)]]
    assert not array.lost
    array.fail_disk(0)
    assert array.lost


def test_raid10_stripes_over_mirrored_pairs():
    array = make("raid10", 4)
    assert array.write_plan_at(0, 4096) == [[(0, 4096), (1, 4096)]]
    assert array.write_plan_at(UNIT, 4096) == [[(2, 4096), (3, 4096)]]
    assert array.read_plan_at(UNIT, 4096) == [[(2, 4096)]]
    array.fail_disk(2)
    assert array.read_plan_at(UNIT, 4096) == [[(3, 4096)]]
    assert array.write_plan_at(UNIT, 4096) == [[(3, 4096)]]
    array.fail_disk(0)
    assert not array.lost  # one of each pair
    array.fail_disk(1)
    assert array.lost


# -- SimPy ------------------------------------------------------------------------


def closed_loop_throughput(array: Array, write: bool, jobs: int, workers: int) -> float:
    """Completions a second between the 25th and 75th percentile of completions."""
    env = array.env
    counter = iter(range(jobs))
    stamps: list[float] = []

    def worker():
        for index in counter:
            if write:
                yield from array.write(f"mail/{index}", 4096)
            else:
                yield from array.read(f"mail/{index}", 4096)
            stamps.append(env.now)

    for _ in range(workers):
        env.process(worker())
    env.run()
    low, high = jobs // 4, 3 * jobs // 4
    return (high - low) / (stamps[high] - stamps[low])


@pytest.mark.parametrize(
    ("level", "disks", "write"),
    [("raid5", 5, True), ("raid5", 5, False), ("raid1", 2, True), ("raid10", 4, True)],
)
def test_simulated_random_iops_match_the_analytic_figure(level, disks, write):
    array = make(level, disks)
    simulated = closed_loop_throughput(array, write, jobs=4000, workers=300)
    analytic = random_iops(level, disks, CHEETAH, 0.0 if write else 1.0)
    assert simulated == pytest.approx(analytic, rel=0.03)


def test_simulated_degraded_reads_halve_raid5_read_rate():
    # n = 4 with one disk failed: a quarter of the blocks cost 3 I/Os, the rest 1,
    # on 3 spindles: 3 / (t * (0.25 * 3 + 0.75)) = 2 / t, half the healthy 4 / t
    array = make("raid5", 4)
    array.fail_disk(2)
    simulated = closed_loop_throughput(array, False, jobs=4000, workers=300)
    assert simulated == pytest.approx(2 / T, rel=0.03)
    assert 0.2 < array.degraded_reads / array.reads < 0.3


def test_raid1_write_waits_for_both_disks():
    array = make("raid1", 2)
    env = array.env
    assert array.disks[1].reserve(0.1, 0.0) == 0.1  # disk 1 is busy until 0.1
    done: list[float] = []

    def writer():
        yield from array.write("x", 4096)
        done.append(env.now)

    env.process(writer())
    env.run()
    assert done == [pytest.approx(0.1 + T)]
    assert array.disks[1].queue_area == pytest.approx(0.1)  # the write waited


def test_write_back_cache_acknowledges_fast_and_blocks_when_full():
    array = make("single", 1, cache=8192)
    env = array.env
    acks: list[float] = []

    def writer():
        yield from array.write("x", 4096)
        acks.append(env.now)

    for _ in range(3):
        env.process(writer())
    env.run()
    ack = CACHE_COMMAND_S + 4096 / CACHE_BUS_BYTES_PER_S
    # two fit at once; the third waits for the first destage (one disk I/O)
    assert acks == pytest.approx([ack, ack, ack + T + ack])
    # destages queue on the spindle and cost no event: booked until ack + 3t
    assert array.disks[0].free_at == pytest.approx(ack + 3 * T)
    assert array.dirty_bytes == 8192 and array.disks[0].ios == 1
    env.run(until=ack + 3 * T + 1e-9)
    assert array.disks[0].ios == 3
    assert array.dirty_bytes == 0


def test_write_larger_than_the_cache_goes_to_the_disks():
    array = make("single", 1, cache=4096)
    env = array.env
    env.process(array.write("big", 1_000_000))
    env.run()
    assert env.now == pytest.approx(access_time_s(CHEETAH, 1_000_000))


def test_a_disk_failing_under_a_write_in_flight_is_skipped():
    array = make("raid5", 4)
    env = array.env
    done: list[float] = []

    def writer():
        yield from array.write_through("x", 4096)
        done.append(env.now)

    def failure():
        yield env.timeout(T / 2)  # during the reads of the read-modify-write
        disk, parity = (index for index, _ in array.write_plan("x", 4096)[0])
        array.fail_disk(parity)

    env.process(writer())
    env.process(failure())
    env.run()
    assert done == [pytest.approx(2 * T)]  # the reads finish; one write is left
    assert sum(disk.ios for disk in array.disks) == 3


def test_write_behind_is_not_waited_for():
    array = make("single", 1, cache=4096)
    env = array.env
    array.write_behind("a", 4096)
    array.write_behind("b", 4096)  # waits for room, off the critical path
    assert env.now == 0 and array.dirty_bytes == 4096
    env.run()
    assert env.now == 0  # nobody waits: no event at all
    assert array.disks[0].free_at == pytest.approx(2 * T)
    env.run(until=1.5 * T)
    assert array.dirty_bytes == 4096 and array.disks[0].ios == 1  # "b" destaging
    env.run(until=2 * T + 1e-9)
    assert array.dirty_bytes == 0
    assert array.writes == 2 and array.disks[0].ios == 2


def test_io_on_a_lost_array_fails():
    array = make("single", 1)
    array.fail_disk(0)
    array.env.process(array.read("x", 4096))
    with pytest.raises(ArrayLostError):
        array.env.run()


def test_rebuild_reads_every_survivor_and_writes_the_replacement():
    small = DiskSpec(
        rpm=10000,
        avg_seek_s=4.7e-3,
        track_to_track_s=0.3e-3,
        transfer_bytes_per_s=60e6,
        capacity_bytes=64 * 1024 * 1024,
    )
    array = make("raid5", 4, disk=small)
    env = array.env
    array.fail_disk(1)
    assert array.capacity == 3
    env.process(array.rebuild(1, chunk_bytes=16 * 1024 * 1024))
    env.run()
    chunk_s = 0.3e-3 + 16 * 1024 * 1024 / 60e6
    # 4 chunks, each: survivors read in parallel, then the replacement written
    assert env.now == pytest.approx(4 * 2 * chunk_s)
    assert array.failed == set() and not array.disks[1].failed
    assert array.capacity == 4
    array.sync()
    assert array.busy_area == pytest.approx(4 * 4 * chunk_s)  # 3 reads + 1 write
    assert array.disks[1].ios == 4
    with pytest.raises(ValueError, match="has not failed"):
        next(array.rebuild(1))


def test_monitor_view_sums_the_disks():
    array = make("raid5", 4)
    env = array.env
    env.process(array.write("m", 4096))
    env.run()
    array.sync()
    assert array.busy_area == pytest.approx(4 * T)
    assert array.served == 4
    assert (array.busy, array.queue_length, array.capacity) == (0, 0, 4)
    assert array.queue_area == pytest.approx(0.0)


def test_destages_and_write_behind_cost_no_event():
    array = make("raid5", 4, cache=1 << 20)
    env = array.env
    for k in range(50):
        array.write_behind(f"mail/{k}", 4096)
    assert env.peek() == float("inf")  # nothing scheduled: all booked
    ack = array.write_at("x", 4096, 0.0)
    assert ack == pytest.approx(CACHE_COMMAND_S + 4096 / CACHE_BUS_BYTES_PER_S)
    assert env.peek() == float("inf")
    env.run(until=10.0)
    assert array.served == 51 * 4 and array.dirty_bytes == 0


def test_a_full_cache_grants_room_first_come_first_served():
    array = make("single", 1, cache=8192)
    array.write_behind("a", 8192)  # fills the cache until T
    big = array.write_at("b", 8192, 0.0)  # waits for all of "a"
    small = array.write_at("c", 4096, 0.0)  # waits behind "b", not just for room
    ack = CACHE_COMMAND_S + 8192 / CACHE_BUS_BYTES_PER_S
    t_a = access_time_s(CHEETAH, 8192)
    assert big == pytest.approx(t_a + ack)
    # "b" destages from t_a + ack until t_a + ack + t_a: "c" gets room then
    assert small == pytest.approx(
        2 * t_a + ack + CACHE_COMMAND_S + 4096 / CACHE_BUS_BYTES_PER_S
    )


def test_a_raid5_write_books_both_phases_and_a_later_read_fills_the_gap():
    array = make("raid5", 4)
    env = array.env
    array.disks[3].reserve(2 * T, 0.0)  # the parity disk is busy for 2t first
    plan = array.write_plan_at(0, 4096)  # data on disk 0, parity on disk 3
    # reads end at t (data) and 3t (parity); both writes run from 3t to 4t
    assert array.submit_plan(plan, 0.0) == pytest.approx(4 * T)
    # the data disk idles from t to 3t: a read arriving now is served there
    assert array.disks[0].submit(4096, 0.0) == pytest.approx(2 * T)
    assert array.disks[0].submit(4096, 0.0) == pytest.approx(3 * T)
    assert array.disks[0].submit(4096, 0.0) == pytest.approx(5 * T)  # now full
    env.run(until=1.0)
    assert array.disks[0].ios == 5 and array.disks[3].ios == 3
    assert array.busy_area == pytest.approx(2 * T + 4 * T + 3 * T)


def test_queue_max_counts_the_ios_waiting_on_all_disks():
    array = make("raid1", 2)
    env = array.env
    for _ in range(4):
        env.process(array.write("x", 4096))  # every write on both disks
    env.run()
    assert env.now == pytest.approx(4 * T)
    assert array.disks[0].queue_max == array.disks[1].queue_max == 3
    assert array.queue_max == 6
    assert array.queue_area == pytest.approx(2 * (1 + 2 + 3) * T)
    # RAID 5: disk 1 busy for 3t; a small write on disks 1 (data) and 3 (parity)
    raid5 = make("raid5", 4)
    raid5.disks[1].reserve(3 * T, 0.0)
    assert raid5.submit_plan(raid5.write_plan_at(UNIT, 4096), 0.0) == pytest.approx(
        5 * T
    )
    assert raid5.queue_max == 1  # the data read waits; the parity read does not
    assert raid5.submit_plan([[(3, 4096)]], 0.0) == pytest.approx(2 * T)
    assert raid5.queue_max == 2  # behind the parity read, in the idle window
