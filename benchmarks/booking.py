"""Booking one session command on a host: through ``book`` or inlined.

A week with readers books over two million IMAP/POP3 commands, each on the
serving host's CPU, array and link (``twin.sim.access._Exchanges``). This
times, in the same run, the same command booked ``N`` times on the Dell's
host through ``twin.sim.front.book`` (and ``Host.complete_at``), as the
access load did, and through the inlined path it takes now
(``AccessLoad.direct``), each after a loop that only moves the clock (its
time is taken off both), and prints microseconds per booking and the ratio.

    python benchmarks/booking.py [--count 300000] [--rounds 3] [--storage]

``--storage``: the command also reads a file (a FETCH of a message body)
through the page cache and the array.
"""

from __future__ import annotations

import argparse
import time

import simpy

from twin.hardware.host import Host
from twin.hardware.profile import load_profile
from twin.sim.access import _booking
from twin.sim.front import book
from twin.stages.work import Work


class _Model:
    """What ``book`` uses of a model: its clock, hosts and CPU totals."""

    def __init__(self) -> None:
        self.env = simpy.Environment()
        self.host = Host(self.env, "box", load_profile("dell-pe1750"))
        self.hosts = {"box": self.host}
        self.cpu_seconds: dict[tuple[str, str], float] = {}
        self.array = list(self.host.arrays)[-1]


def _command(storage: bool) -> Work:
    work = Work(cpu={"imap.command": 3.0}, net_bytes=600)
    if storage:
        work = work + Work(reads=(("u1/Maildir/cur/1.M1", 8000),))
    return work


def clock_only(count: int) -> float:
    model = _Model()
    env = model.env
    started = time.perf_counter()
    for number in range(count):
        env._now = number * 1e-3
    return time.perf_counter() - started


def through_book(count: int, work: Work) -> float:
    model = _Model()
    env, array = model.env, model.array
    cpu_s = model.host.cpu_seconds(work)
    started = time.perf_counter()
    for number in range(count):
        env._now = number * 1e-3
        book(model, "imap", "box", work, array, cpu_s)
    return time.perf_counter() - started


def inlined(count: int, work: Work) -> float:
    """``_Exchanges._send``'s direct path, as written there."""
    model = _Model()
    env, target = model.env, model.host
    direct = (target, target.cpu, target.array(model.array), target.link,
              model.cpu_seconds)
    booking = _booking(work, target.cpu_seconds(work))
    started = time.perf_counter()
    for number in range(count):
        now = env._now = number * 1e-3
        host, cpu, array, link, totals = direct
        cpu_s, stored, nbytes, trips = booking
        key = ("box", "imap")
        totals[key] = totals.get(key, 0.0) + cpu_s
        done = now
        if cpu_s > 0:
            done = cpu.reserve(cpu_s, now)
        if stored is not None:
            done = host._storage_at(stored, array, done, now)
        if nbytes or trips:
            done = link.reserve(nbytes, trips, done, now)
        if done < now:
            done = now
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--storage", action="store_true")
    args = parser.parse_args()
    work = _command(args.storage)
    print(f"{args.count:,} bookings of one command"
          f"{' with a file read' if args.storage else ''}, µs per booking:")
    for round_number in range(1, args.rounds + 1):
        base = clock_only(args.count)
        old = (through_book(args.count, work) - base) / args.count * 1e6
        new = (inlined(args.count, work) - base) / args.count * 1e6
        print(f"  round {round_number}: book {old:.2f}, inlined {new:.2f}, "
              f"ratio {new / old:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
