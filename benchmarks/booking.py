"""Booking one session command on a host: through ``book`` or inlined.

A week with readers books over two million IMAP/POP3 commands, each on the
serving host's CPU, array and link (``twin.sim.access._Exchanges``). This
times, in the same run, ``_Exchanges._send`` sending the same command ``N``
times on the Dell's host, booked through ``twin.sim.front.book`` (and
``Host.complete_at``), as the access load did, and directly, as it does now
(``AccessLoad.direct``), less a loop that only moves the clock, and prints
microseconds per command (the booking and the scheduling of its reply) and
the ratio.

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
from twin.sim.access import _booking, _Exchanges
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


class _Load:
    """What ``_Exchanges._send`` uses of an ``AccessLoad``."""

    def __init__(self, model: _Model, direct: bool) -> None:
        self.model, self.env = model, model.env
        self.host, self.array, self.rtt = "box", model.array, 0.001
        self._samples = {"imap": {}}  # (no latency is recorded)
        target = model.host
        self.direct = ((target, target.cpu, target.array(model.array), target.link,
                        model.cpu_seconds) if direct else None)

    def book(self, stage, host, work, array, cpu_s=None) -> float:
        return book(self.model, stage, host, work, array, cpu_s)


def sending(count: int, work: Work, direct: bool) -> float:
    """Seconds for *count* calls of ``_Exchanges._send`` (the booking and the
    scheduling of the reply), through ``book`` or directly."""
    model = _Model()
    env = model.env
    load = _Load(model, direct)
    cpu_s = model.host.cpu_seconds(work)
    prices = [_booking(work, cpu_s) if direct else cpu_s]
    # a session of one command (sent once here), sent again and again below
    exchange = _Exchanges(load, "imap", [("fetch", work)], prices, False)
    queue = env._queue
    queue.clear()
    send = exchange._send
    started = time.perf_counter()
    for number in range(count):
        now = env._now = number * 1e-3
        send(now)
        queue.clear()  # the reply is not wanted: only the booking is timed
    return time.perf_counter() - started


def clock_only(count: int) -> float:
    model = _Model()
    env = model.env
    queue = env._queue
    started = time.perf_counter()
    for number in range(count):
        env._now = number * 1e-3
        queue.clear()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--storage", action="store_true")
    args = parser.parse_args()
    work = _command(args.storage)
    print(f"{args.count:,} sends of one command"
          f"{' with a file read' if args.storage else ''} (booked, its reply "
          "scheduled), µs each:")
    for round_number in range(1, args.rounds + 1):
        base = clock_only(args.count)
        old = (sending(args.count, work, False) - base) / args.count * 1e6
        new = (sending(args.count, work, True) - base) / args.count * 1e6
        print(f"  round {round_number}: through book {old:.2f}, directly {new:.2f}, "
              f"ratio {new / old:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
