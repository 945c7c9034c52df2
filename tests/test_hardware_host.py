"""A host: Work -> CPU, storage through the page cache and arrays, then network."""

from __future__ import annotations

import pytest
import simpy

from twin.hardware.array import CACHE_BUS_BYTES_PER_S, CACHE_COMMAND_S
from twin.hardware.disk import access_time_s
from twin.hardware.host import DIR_ENTRY_BYTES, REFERENCE_COSTS, Host
from twin.hardware.profile import load_profile
from twin.stages.work import Work

COSTS = {"smtp.command": 2.0e-5, "smtp.byte": 1.0e-8}
SUN = load_profile("sun-ue450")
DELL = load_profile("dell-pe1750")
T_SUN = access_time_s(SUN.arrays["users"].disk, 4096)  # 11.54 ms: 7,200 rpm
ACK = CACHE_COMMAND_S + 4096 / CACHE_BUS_BYTES_PER_S


def host(profile=SUN, name="mail") -> Host:
    return Host(simpy.Environment(), name, profile, COSTS)


def timed(machine: Host, work: Work, array: str | None = "users") -> float:
    """Simulated seconds until execute() returns (background work may go on)."""
    env = machine.env
    start = env.now
    ended: list[float] = []

    def step():
        yield from machine.execute(work, array)
        ended.append(env.now)

    env.process(step())
    env.run()
    return ended[0] - start


def test_cpu_seconds_scale_with_the_profile():
    work = Work(cpu={"smtp.command": 10, "smtp.byte": 5000})
    assert host(DELL).cpu_seconds(work) == pytest.approx(10 * 2e-5 + 5000 * 1e-8)
    assert host(SUN).cpu_seconds(work) == pytest.approx(12.5 * 2.5e-4)
    scan = Work(dir_entries_scanned=100)
    assert REFERENCE_COSTS["fs.dir_entry"] == 2.0e-6
    assert host(DELL).cpu_seconds(scan) == pytest.approx(100 * 2.0e-6)


def test_unknown_unit_names_the_cost_file():
    with pytest.raises(KeyError, match=r"hardware/costs/imap\.yaml"):
        host().cpu_seconds(Work(cpu={"imap.command": 1}))


def test_costs_default_to_the_profile_table():
    machine = Host(simpy.Environment(), "mail", DELL.with_costs({"x.y": 1e-3}))
    assert machine.cpu_seconds(Work(cpu={"x.y": 2})) == pytest.approx(2e-3)


def test_cpu_then_read_through_the_page_cache_then_network():
    machine = host(SUN)
    work = Work(
        cpu={"smtp.command": 10},
        reads=(("alice/mbox", 4096),),
        net_bytes=1000,
        net_round_trips=1,
    )
    cpu_s = 10 * 2e-5 * 12.5
    net_s = 1000 / 12.5e6 + 0.1e-3 + 2 * 0.1e-3
    assert timed(machine, work) == pytest.approx(cpu_s + T_SUN + net_s)
    # the second time the page cache holds the file: no disk
    assert timed(machine, work) == pytest.approx(cpu_s + net_s)
    assert machine.page_cache.read_hits == 1
    assert machine.arrays["users"].reads == 1


def test_fsynced_writes_wait_for_the_disks():
    # Sun, software RAID 5, no cache: each small write is read-modify-write, two
    # phases of one random I/O; the data, then one journal commit carrying the
    # create and the rename (two 4 KiB blocks): 2 writes in a row
    machine = host(SUN)
    work = Work(
        writes=(("alice/new/1", 4096),), fsyncs=1, files_created=1, files_renamed=1
    )
    journal = access_time_s(SUN.arrays["users"].disk, 8192)
    assert timed(machine, work) == pytest.approx(2 * T_SUN + 2 * journal)
    assert machine.arrays["users"].served == 8  # 2 writes x 4 I/Os
    assert machine.page_cache.cached("alice/new/1") == 4096


def test_writes_without_fsync_are_written_back_later():
    machine = host(SUN)
    work = Work(writes=(("alice/new/1", 4096),), files_created=1, files_renamed=1)
    assert timed(machine, work) == 0.0
    # both writes start at once: the data file's two spindles finish at 2t;
    # the journal commit (two blocks) at the directory's two spindles, queued
    # behind them when they share a spindle, else in parallel
    users = machine.arrays["users"]
    journal = access_time_s(SUN.arrays["users"].disk, 8192)
    # here they land on different spindle pairs: both finish after two phases
    ends = sorted(disk.free_at for disk in users.disks if disk.free_at > 0)
    assert ends == pytest.approx([2 * T_SUN] * 2 + [2 * journal] * 2)
    assert machine.background_writes == 2
    machine.env.run(until=5 * T_SUN)  # nobody waits: run the clock on
    assert users.served == 8


def test_controller_cache_acknowledges_fsynced_writes():
    machine = host(DELL)
    work = Work(
        writes=(("alice/new/1", 4096),), fsyncs=1, files_created=1, files_renamed=1
    )
    # the data block, then the journal commit of two blocks: two acknowledgements
    journal_ack = CACHE_COMMAND_S + 8192 / CACHE_BUS_BYTES_PER_S
    assert timed(machine, work) == pytest.approx(ACK + journal_ack)
    users = machine.arrays["users"]
    assert users.dirty_bytes > 0  # acknowledged before the disks have it
    machine.env.run(until=1.0)
    assert users.served == 8 and users.dirty_bytes == 0  # destaged by now


def test_directory_scan_costs_cpu_and_reads():
    machine = host(SUN)
    work = Work(dir_entries_scanned=100, reads=(("bob/cur/1", 2000),))
    disk = SUN.arrays["users"].disk
    expected = (
        100 * 2e-6 * 12.5
        + access_time_s(disk, 100 * DIR_ENTRY_BYTES)
        + access_time_s(disk, 2000)
    )
    assert timed(machine, work) == pytest.approx(expected)
    assert machine.page_cache.cached("bob/cur/") == 6400


def test_demand_is_keyed_like_the_monitors():
    machine = host(SUN)
    assert [name for name, _ in machine.monitors()] == [
        "mail.cpu",
        "mail.system",
        "mail.users",
        "mail.link",
    ]
    assert machine.monitors()[0][1] is machine.cpu.threads
    assert machine.monitors()[2][1] is machine.arrays["users"]
    work = Work(
        cpu={"smtp.command": 10},
        reads=(("alice/mbox", 4096),),
        writes=(("alice/new/1", 4096),),
        fsyncs=1,
        net_bytes=1000,
    )
    assert machine.demand(work, "users") == pytest.approx(
        {
            "mail.cpu": 10 * 2e-5 * 12.5,
            "mail.users": T_SUN + 4 * T_SUN,  # a read, and a small RAID 5 write
            "mail.link": 1000 / 12.5e6,
        }
    )


def test_simulated_disk_busy_time_matches_the_demand():
    machine = host(SUN)
    works = [
        Work(writes=((f"u{k}/new/{k}", 4096),), fsyncs=1, files_created=1)
        for k in range(20)
    ]
    expected = sum(machine.demand(work, "users")["mail.users"] for work in works)
    env = machine.env

    def deliveries():
        for work in works:
            yield from machine.execute(work, "users")

    env.process(deliveries())
    env.run()
    users = machine.arrays["users"]
    users.sync()
    assert users.busy_area == pytest.approx(expected)


def test_array_choice():
    gateway = Host(simpy.Environment(), "spamd", load_profile("openbsd-gateway"))
    assert timed(gateway, Work(reads=(("spamd/db", 4096),)), None) > 0
    with pytest.raises(ValueError, match="names no array"):
        host(DELL).array(None)
    with pytest.raises(ValueError, match="no array 'spool'"):
        host(DELL).array("spool")
    with pytest.raises(ValueError, match="host name"):
        Host(simpy.Environment(), "", DELL)


def test_a_step_costs_one_event_and_complete_at_books_it():
    machine = host(SUN)
    env = machine.env
    work = Work(
        cpu={"smtp.command": 10},
        reads=(("alice/mbox", 4096),),
        writes=(("alice/new/1", 4096),),
        fsyncs=1,
        net_bytes=1000,
        net_round_trips=1,
    )
    cpu_s = 10 * 2e-5 * 12.5
    net_s = 1000 / 12.5e6 + 0.1e-3 + 2 * 0.1e-3
    steps = 0

    def step():
        yield from machine.execute(work, "users")

    env.process(step())
    while env.peek() < float("inf"):
        env.step()
        steps += 1
    # the process starts, its one timeout fires, the process ends
    assert steps == 3
    assert env.now == pytest.approx(cpu_s + T_SUN + 2 * T_SUN + net_s)
    # complete_at books the same without any event (the read is now cached)
    again = machine.complete_at(work, "users")
    assert again == pytest.approx(env.now + cpu_s + 2 * T_SUN + net_s)
    assert env.peek() == float("inf")
