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
from twin.sim.access import _Exchanges
from twin.stages.work import Work


class _Load:
    """What ``_Exchanges`` uses of an ``AccessLoad``: one FCFS server whose
    service time is the command's CPU units, and the latency samples."""

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


def _sessions(seed: int, count: int):
    rng = np.random.default_rng(seed)
    names = ["login", "select", "fetch_flags", "fetch_body", "logout"]
    out = []
    start = 0.0
    for number in range(count):
        start += float(rng.exponential(0.02))
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
