"""A session's commands as one rescheduled event: the same times as a process.

``twin.sim.access._Exchanges`` replaced a SimPy process per session (one
timeout per command). These tests hold it to that process, written out here
as the reference, on a shared FCFS server where sessions overlap and queue.
"""

import gc
import weakref
from array import array

import numpy as np
import pytest
import simpy

from twin.hardware.disk import Timeline
from twin.hardware.host import Host
from twin.hardware.profile import load_profile
from twin.sim.access import _booking, _Exchanges
from twin.sim.front import book
from twin.stages.work import Work


class _Load:
    """What ``_Exchanges`` uses of an ``AccessLoad``: one FCFS server whose
    service time is the command's CPU units, and the latency samples."""

    direct = None  # booked through book()

    def __init__(self, env, rtt: float):
        self.env = env
        self.host, self.array, self.rtt = "box", None, rtt
        self.server = Timeline(env, "cpu")
        self.booked = []
        self.latencies: dict[str, array] = {}
        self._samples = {"imap": {}, "pop3": {}}

    def book(self, stage, host, work, array_name, cpu_s=None):
        service = work.cpu["units"] if cpu_s is None else cpu_s
        self.booked.append((self.env.now, stage, service))
        return max(self.server.reserve(service, self.env.now), self.env.now)

    def _samples_of(self, protocol, name):
        values = self.latencies.setdefault(f"latency.{protocol}.{name}", array("d"))
        self._samples[protocol][name] = values
        return values

    def _session_sample(self, protocol, seconds):
        values = self._samples[protocol].get("session")
        if values is None:
            values = self._samples_of(protocol, "session")
        values.append(seconds)


def _reference(env, load, protocol, commands, record):
    """The process each session was before ``_Exchanges``."""
    started = env.now
    for name, work in commands:
        sent = env.now
        yield env.timeout(load.book(protocol, load.host, work, load.array)
                          - sent + load.rtt)
        if record:
            load._samples[protocol].get(name) or load._samples_of(protocol, name)
            load._samples[protocol][name].append(env.now - sent)
    if record:
        load._session_sample(protocol, env.now - started)


def _sessions(seed: int, count: int, gap: float = 0.02):
    """*count* sessions, *gap* seconds apart on average."""
    rng = np.random.default_rng(seed)
    names = ["login", "select", "fetch_flags", "fetch_body", "logout"]
    out = []
    start = 0.0
    for number in range(count):
        start += float(rng.exponential(gap))
        commands = [
            (names[int(k)], Work(cpu={"units": float(rng.exponential(0.01))}))
            for k in rng.integers(0, len(names), int(rng.integers(1, 9)))
        ]
        out.append((start, "imap" if number % 3 else "pop3", commands,
                    number % 4 != 0))
    return out


def _run(sessions, rtt: float, events: bool):
    env = simpy.Environment()
    load = _Load(env, rtt)

    def source():
        for start, protocol, commands, record in sessions:
            yield env.timeout(start - env.now)
            if events:
                _Exchanges(load, protocol, commands, [None] * len(commands), record)
            else:
                env.process(_reference(env, load, protocol, commands, record))

    env.process(source())
    env.run()
    return load, env.now


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_exchanges_book_and_time_as_the_process_did(seed):
    sessions = _sessions(seed, 300)
    new, new_end = _run(sessions, 0.005, events=True)
    old, old_end = _run(sessions, 0.005, events=False)
    assert new.booked == old.booked  # same commands, same times, same order
    assert new_end == old_end
    assert new.latencies.keys() == old.latencies.keys()
    for name, values in old.latencies.items():
        assert list(new.latencies[name]) == list(values), name
    # the server was shared: recorded commands queued behind others' work
    waited = sum(sum(v) for k, v in new.latencies.items()
                 if not k.endswith(".session"))
    alone = sum(work.cpu["units"] + 0.005
                for _, _, commands, record in sessions if record
                for _, work in commands)
    assert waited > alone * 1.05
    sessions_recorded = sum(1 for *_, record in sessions if record)
    assert sum(len(v) for k, v in new.latencies.items()
               if k.endswith(".session")) == sessions_recorded


@pytest.mark.parametrize("seed", [1, 2])
def test_replies_with_nothing_before_them_are_not_queued(seed, monkeypatch):
    """``FAST_FORWARD``: a reply that is the environment's next event is
    handled at once, not queued -- the same bookings, times and latencies
    as queued replies and as the process, with fewer events."""
    from twin.sim import access
    from twin.sim.run import events_processed

    sessions = _sessions(seed, 300, gap=0.1)
    runs = {}
    for fast in (True, False):
        monkeypatch.setattr(access, "FAST_FORWARD", fast)
        env = simpy.Environment()
        load = _Load(env, 0.005)

        def source(env=env, load=load):
            for start, protocol, commands, record in sessions:
                yield env.timeout(start - env.now)
                _Exchanges(load, protocol, commands, [None] * len(commands),
                           record)

        env.process(source())
        env.run()
        runs[fast] = (load, env.now, events_processed(env))
    (fast, fast_end, fast_events), (slow, slow_end, slow_events) = (
        runs[True], runs[False])
    assert fast.booked == slow.booked and fast_end == slow_end
    for name, values in slow.latencies.items():
        assert list(fast.latencies[name]) == list(values), name
    # some replies came first, some found another session's event before them
    commands = sum(len(commands) for _, _, commands, _ in sessions)
    assert commands // 4 < slow_events - fast_events < commands * 3 // 4


def test_a_command_takes_its_service_and_a_round_trip():
    env = simpy.Environment()
    load = _Load(env, 0.25)
    commands = [("login", Work(cpu={"units": 1.0})),
                ("logout", Work(cpu={"units": 2.0}))]
    _Exchanges(load, "imap", commands, [None, None], True)
    env.run()
    assert list(load.latencies["latency.imap.login"]) == [1.25]
    assert list(load.latencies["latency.imap.logout"]) == [2.25]
    assert list(load.latencies["latency.imap.session"]) == [3.5]
    assert load.booked == [(0.0, "imap", 1.0), (1.25, "imap", 2.0)]


def test_given_prices_are_booked_as_they_are():
    env = simpy.Environment()
    load = _Load(env, 0.0)
    commands = [("login", Work(cpu={"units": 1.0}))]
    _Exchanges(load, "pop3", commands, [4.0], False)  # the caller's price wins
    env.run()
    assert load.booked == [(0.0, "pop3", 4.0)]
    assert env.now == 4.0
    assert load.latencies == {}  # before the warm-up: nothing recorded


def test_a_finished_session_is_freed_without_the_cyclic_collector():
    """No reference cycle: a week has hundreds of thousands of sessions, and
    cycles among them cost the collector 1.7 s of a two-day run (~50 s)."""
    env = simpy.Environment()
    load = _Load(env, 0.1)
    commands = [("login", Work(cpu={"units": 1.0})),
                ("select", Work(cpu={"units": 0.5}))]
    gc.collect()
    gc.disable()
    try:
        ref = weakref.ref(_Exchanges(load, "imap", commands, [None, None], True))
        assert ref() is not None  # scheduled: the environment holds it
        env.run()
        assert ref() is None  # freed by its reference count alone
    finally:
        gc.enable()


class _HostLoad(_Load):
    """A load on a real host (the Dell's CPU, RAID 5 array and link), booked
    as ``AccessLoad`` books: through ``book``, or directly (``direct``)."""

    def __init__(self, env, rtt: float, direct: bool):
        super().__init__(env, rtt)
        self.hosts = {"box": Host(env, "box", load_profile("dell-pe1750"))}
        self.cpu_seconds = {}
        target = self.hosts["box"]
        self.array = list(target.arrays)[-1]
        if direct:
            self.direct = (target, target.cpu, target.array(self.array),
                           target.link, self.cpu_seconds)

    def book(self, stage, host, work, array_name, cpu_s=None):
        return book(self, stage, host, work, array_name, cpu_s)


def _host_sessions(seed: int, count: int):
    """Sessions whose commands use CPU, the network and the array: reads of
    message files, index writes with and without fsync, renames."""
    rng = np.random.default_rng(seed)
    out = []
    start = 0.0
    for number in range(count):
        start += float(rng.exponential(0.004))
        commands = []
        for k in range(int(rng.integers(1, 9))):
            kind = int(rng.integers(0, 4))
            user = f"u{int(rng.integers(0, 40))}/"
            work = Work(cpu={"imap.command": float(rng.integers(1, 30))},
                        net_bytes=int(rng.integers(0, 20000)),
                        net_round_trips=int(kind == 3))
            if kind == 1:
                nbytes = int(rng.integers(1, 9000))
                work = work + Work(reads=((user + f"m{k}", nbytes),))
            elif kind == 2:
                work = work + Work(writes=((user + "cyrus.index", 4096),),
                                   fsyncs=int(rng.integers(0, 2)), files_renamed=1)
            commands.append((f"c{kind}", work))
        out.append((start, "imap" if number % 3 else "pop3", commands, number % 5 != 0))
    return out


def _run_on_host(sessions, direct: bool):
    env = simpy.Environment()
    load = _HostLoad(env, 0.002, direct)
    target = load.hosts["box"]

    def source():
        for start, protocol, commands, record in sessions:
            yield env.timeout(start - env.now)
            prices = [target.cpu_seconds(work) for _, work in commands]
            if direct:
                prices = [_booking(work, cpu_s)
                          for (_, work), cpu_s in zip(commands, prices, strict=True)]
            _Exchanges(load, protocol, commands, prices, record)

    env.process(source())
    env.run()
    return load, env.now


@pytest.mark.parametrize("seed", [4, 5])
def test_direct_booking_is_book_inlined(seed):
    """``AccessLoad.direct``: the same times, CPU totals and resource state
    as booking each command through ``book`` and ``Host.complete_at``."""
    sessions = _host_sessions(seed, 400)
    new, new_end = _run_on_host(sessions, direct=True)
    old, old_end = _run_on_host(sessions, direct=False)
    assert new_end == old_end
    assert new.cpu_seconds == old.cpu_seconds and new.cpu_seconds
    assert new.latencies.keys() == old.latencies.keys()
    for name, values in old.latencies.items():
        assert list(new.latencies[name]) == list(values), name
    for (name, a), (_, b) in zip(new.hosts["box"].monitors(),
                                 old.hosts["box"].monitors(), strict=True):
        a.sync(), b.sync()
        assert (a.busy_area, a.jobs_done if hasattr(a, "jobs_done") else 0) == (
            b.busy_area, b.jobs_done if hasattr(b, "jobs_done") else 0), name
    # the array and the link were used, and queued
    target = new.hosts["box"]
    assert target.array(new.array).reads > 0 and target.link.bytes_sent > 0
    waited = sum(sum(v) for k, v in new.latencies.items() if not k.endswith(".session"))
    assert waited > 0
