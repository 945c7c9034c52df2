"""Users reading mail in the twin: real IMAP/POP3 sessions over the run's store.

At the start the store is filled with the users' existing mailboxes
(``twin.traffic.mailboxes.populate``: real files, ``access.mailbox_scale`` of
full size). Then every client session of the reading model
(``twin.traffic.users.session_arrivals``) is played by the scripted client
(``twin.traffic.client.run_session``) against the real server session in
process -- Cyrus on maildir, UW IMAP / QPopper on mbox -- at its simulated
start time, and each command's reported work is spent on the serving host's
CPU and mailbox array, with the client's round trip between commands. A
command's response time runs from sending it to its last byte of reply.

Metrics: ``access.sessions``, ``access.sessions.imap``, ``access.sessions.pop3``,
``access.failures``, ``access.messages_read``, ``access.bytes_fetched``,
``latency.imap.<command>.{mean,p50,p95,p99}`` and
``latency.pop3.<command>...`` per command class, ``latency.pop3.session...``
and ``latency.imap.session...`` (whole sessions), all after the warm-up;
``access.mailbox_messages`` and ``access.mailbox_bytes`` at the start.
"""

from __future__ import annotations

import os
from array import array
from collections import deque

import numpy as np
import simpy
from simpy.events import NORMAL, URGENT

from twin.access.auth import CredentialsFile
from twin.access.cyrusstore import CyrusBackend, settle_store
from twin.access.imap import ImapSession
from twin.access.mboxstore import MboxBackend
from twin.access.pop3 import Pop3Session
from twin.schema.mail import MailScenario
from twin.stages.fileops import DIRECT, Files
from twin.traffic.client import ClientState, PollMemo
from twin.traffic.mailboxes import populate
from twin.traffic.users import ReadingSettings, draw_profiles, session_arrivals

LOOKAHEAD_S = 600.0
"""Simulated seconds of sessions drawn ahead of the clock (``_source``)."""
_NEVER = float("inf")
FAST_FORWARD = os.environ.get("MAILTWIN_FAST_FORWARD", "1") != "0"
"""Whether a reply that is the environment's next event is handled at once
instead of queued (``_Exchanges._reply``): the same times, fewer events
(``MAILTWIN_FAST_FORWARD=0``: every reply queued)."""


def reading_settings(scenario: MailScenario) -> ReadingSettings:
    spec = scenario.access
    return ReadingSettings(
        mailbox_scale=spec.mailbox_scale,
        imap_share=spec.imap_share,
        idle_share=spec.idle_share,
        imap_poll_interval_s=spec.imap_poll_interval,
        pop3_poll_interval_s=spec.pop3_poll_interval,
        flag_sync_messages=spec.flag_sync_messages,
    )


class AccessLoad:
    """The reading load of one run.

    *book* books work as ``MailModel._book`` does: ``book(stage, host, work,
    array, cpu_s)`` spends it on the host from now and returns when it is
    done; *price* gives a Work's CPU seconds on the host (``cpu_s``; default:
    *book* prices it). *files* is the model's file writer
    (``twin.stages.fileops``). *model* (a ``MailModel``, with *price*): the
    commands are booked on its host directly, as *book* would book them
    (``_Exchanges``), without the calls between.
    """

    def __init__(
        self,
        env: simpy.Environment,
        scenario: MailScenario,
        stages,
        streams,
        folder,
        host: str,
        array_name: str,
        book,
        files: Files = DIRECT,
        price=None,
        model=None,
    ) -> None:
        self.env = env
        self.files = files
        """Who writes the deliveries (``twin.sim.writer``): a session waits for
        its user's mailbox to be written (``ready``) before it reads it."""
        files.expect_readers()
        self.scenario = scenario
        self.host = host
        self.array = array_name
        self.book = book
        self.price = price
        self.model = model
        self.direct: tuple | None = None
        """(host, CPU, array, link, CPU totals) when commands are booked on
        the host directly (set by ``start``; see ``_Exchanges._send``)."""
        self._priced: dict[int, tuple[list, list]] = {}
        """By user: the commands of the user's last session and their CPU
        seconds, or their bookings (``_booking``): a replayed poll has the
        same list, priced once."""
        self.settings = reading_settings(scenario)
        self.epoch = None
        population = stages.population
        self.profiles = draw_profiles(
            self.settings, population, streams("access.profiles")
        )
        fmt = scenario.pipeline.deliver.format
        # the store is the run's scratch copy: real fsyncs only when the
        # delivery stages make them too (the Work counts them either way)
        host_fsync = scenario.pipeline.deliver.host_fsync
        stats = populate(
            stages.store_root,
            fmt,
            population,
            self.settings,
            streams("access.mailboxes"),
            profiles=self.profiles,
            host_fsync=host_fsync,
            # the message files go through the model's writer: a session
            # waits for its user's (ready), as for deliveries
            files=files,
        )
        self.stats = stats
        self.states = [ClientState(known) for known in stats.known_messages]
        self.backend = (
            # the run's store changes only through the model's writers, all
            # of which tell the backend (sessions, index_delivery)
            CyrusBackend(stages.store_root, host_fsync=host_fsync,
                         sole_writer=True)
            if fmt == "maildir"
            else MboxBackend(stages.store_root, host_fsync=host_fsync)
        )
        self.directory = CredentialsFile(folder / "credentials.csv")
        self.population = population
        self.streams = streams
        self.warmup = scenario.warmup
        self.rtt = scenario.access.client_rtt
        """Seconds from a reply's last byte to the client's next command."""
        self.latencies: dict[str, array] = {}
        # command class -> its latency samples (in self.latencies), by protocol
        self._samples: dict[str, dict[str, array]] = {"imap": {}, "pop3": {}}
        # polls that changed nothing are replayed, not played again (same
        # commands, replies and Work; see PollMemo)
        self.memo = PollMemo()
        self.sessions = {"imap": 0, "pop3": 0}
        self._starts: dict[str, deque] = {}
        """By user: the start times of the user's sessions drawn, not begun."""
        self._drawn_until = 0.0
        """Every session starting before this has been drawn (``_draw``)."""
        self._pending: deque = deque()
        """The sessions drawn, not begun, in start order."""
        self._specs = iter(())
        self._following = None
        """The next session not drawn yet (None: no more)."""
        self.failures = 0
        self.messages_read = 0
        self.bytes_fetched = 0

    def start(self, epoch_s: float) -> None:
        self.epoch = epoch_s
        model = self.model
        if model is not None and self.price is not None:
            target = model.hosts[self.host]
            self.direct = (target, target.cpu, target.array(self.array),
                           target.link, model.cpu_seconds)
        self._source()

    def _source(self) -> None:
        """Begin each session of the reading model at its start time.

        The sessions of the next ``LOOKAHEAD_S`` are drawn ahead (their own
        stream: the same draws), so that a delivery knows when its user
        reads next (``delivered``). Not a SimPy process but one event, set
        again for each start (``_Starts``): the same events in the same order
        as a process yielding a timeout per session, without its frames."""
        self._specs = session_arrivals(
            self.settings,
            self.population,
            self.scenario.duration,
            self.streams("access.sessions"),
            profiles=self.profiles,
        )
        self._following = next(self._specs, None)
        _Starts(self)

    def _draw(self, now: float) -> float | None:
        """Draw the sessions starting before *now* + ``LOOKAHEAD_S`` (at least
        one, while any is left); the delay until the next one begins (None:
        no session is left)."""
        pending = self._pending
        starts = self._starts
        following = self._following
        limit = now + LOOKAHEAD_S
        while following is not None and (following.start_s < limit or not pending):
            pending.append(following)
            user_starts = starts.get(following.user)
            if user_starts is None:
                starts[following.user] = deque((following.start_s,))
            else:
                user_starts.append(following.start_s)
            following = next(self._specs, None)
        self._following = following
        # every session starting before this is in pending
        self._drawn_until = _NEVER if following is None else following.start_s
        if not pending:
            return None
        return pending[0].start_s - now

    def _begin(self, now: float) -> None:
        """Begin the first session drawn (it starts *now*)."""
        spec = self._pending.popleft()
        user_starts = self._starts[spec.user]
        user_starts.popleft()
        if not user_starts:
            del self._starts[spec.user]
        self.files.tick(now)
        self._session(spec)

    def delivered(self, user: str) -> None:
        """Mail was just written into *user*'s mailbox: the writer is told
        when the user's next session starts, so that the write goes before
        it (``FileWriter.touch``)."""
        user_starts = self._starts.get(user)
        files = self.files
        files.touch(user, self._drawn_until if user_starts is None
                    else user_starts[0])
        files.tick(self.env.now)

    def _samples_of(self, protocol: str, name: str) -> array:
        """The latency samples of *protocol*'s command class *name*."""
        label = f"latency.{protocol}.{name}"
        values = self.latencies.get(label)
        if values is None:
            values = self.latencies[label] = array("d")
        self._samples[protocol][name] = values
        return values

    def _session(self, spec) -> None:
        """Play *spec* now and send its first command (see ``_Exchanges``)."""
        env = self.env
        epoch = self.epoch
        kind = ImapSession if spec.protocol == "imap" else Pop3Session
        backend, directory = self.backend, self.directory

        def make_session():
            return kind(backend, directory, now_fn=lambda: epoch + env.now)

        self.files.ready(spec.user)
        outcome = self.memo.play(spec, make_session, self.states[spec.user_index],
                                 lambda: backend.signature(spec.user))
        self.sessions[spec.protocol] += 1
        self.failures += bool(outcome.failure)
        self.messages_read += outcome.messages_read
        self.bytes_fetched += outcome.bytes_fetched
        commands = outcome.commands
        if commands:
            priced = self._priced.get(spec.user_index)
            if priced is not None and priced[0] is commands:
                prices = priced[1]
            elif self.price is None:
                prices = [None] * len(commands)
            else:
                price = self.price
                if self.direct is None:
                    prices = [price(work) for _, work in commands]
                else:
                    prices = [_booking(work, price(work)) for _, work in commands]
                self._priced[spec.user_index] = (commands, prices)
            _Exchanges(self, spec.protocol, commands, prices, env.now >= self.warmup)
        elif env.now >= self.warmup:
            self._session_sample(spec.protocol, 0.0)

    def _session_sample(self, protocol: str, seconds: float) -> None:
        values = self._samples[protocol].get("session")
        if values is None:
            values = self._samples_of(protocol, "session")
        values.append(seconds)

    def settle(self) -> None:
        """The run is over and every file written: note the store's state in
        its indexes (``settle_store``: the simulated end as the maildirs'
        mtime), so that they are the same from run to run and in step for
        ``twin serve``."""
        if isinstance(self.backend, CyrusBackend) and self.epoch is not None:
            settle_store(self.backend.root, int(self.epoch + self.env.now))

    def metrics(self) -> dict[str, float]:
        out = {
            "access.sessions": float(sum(self.sessions.values())),
            "access.sessions.imap": float(self.sessions["imap"]),
            "access.sessions.pop3": float(self.sessions["pop3"]),
            "access.failures": float(self.failures),
            "access.messages_read": float(self.messages_read),
            "access.bytes_fetched": float(self.bytes_fetched),
            "access.mailbox_messages": float(self.stats.messages),
            "access.mailbox_bytes": float(self.stats.message_bytes),
        }
        for name, values in sorted(self.latencies.items()):
            data = np.frombuffer(values, dtype=float)
            out[f"{name}.mean"] = float(data.mean())
            for label, q in (("p50", 50), ("p95", 95), ("p99", 99)):
                out[f"{name}.{label}"] = float(np.percentile(data, q))
            out[f"{name}.count"] = float(len(data))
        return out


class _Starts(simpy.Event):
    """The reading load's session starts: one event, scheduled again for
    each start (see ``AccessLoad._source``).

    Like the process it replaced, it is first triggered at once with urgent
    priority (a process's start), draws ahead and waits for the first start;
    at each start it begins the session (and any other starting then), draws
    ahead and waits again: the same schedule calls in the same order."""

    def __init__(self, load: AccessLoad) -> None:
        env = load.env
        self.env = env
        self.load = load
        self._ok = True
        self._value = None
        # functions, not bound methods: no reference cycle (_Exchanges)
        self._resume = [_Starts._fire]
        self.callbacks = [_Starts._first]
        env.schedule(self, URGENT)

    def _first(self) -> None:
        delay = self.load._draw(self.env._now)
        if delay is not None and delay <= 0:
            self._fire()  # a session starts at once
        else:
            self._wait(delay)

    def _fire(self) -> None:
        load = self.load
        now = self.env._now
        while True:
            load._begin(now)
            delay = load._draw(now)
            if delay is None or delay > 0:
                self._wait(delay)
                return

    def _wait(self, delay: float | None) -> None:
        if delay is None:
            return  # every session has begun
        self.callbacks = self._resume
        self.env.schedule(self, NORMAL, delay)


def _booking(work, cpu_s: float) -> tuple:
    """How ``_Exchanges`` books *work* directly: (CPU seconds, the Work where
    it touches storage else None, network bytes, round trips)."""
    return (cpu_s, work if work.touches_storage else None, work.net_bytes,
            work.net_round_trips)


class _Exchanges(simpy.Event):
    """One session's commands in the simulation, one after another.

    Each command is booked on the serving host when it is sent (its work
    spent from then, ``book``) and the next is sent when its reply is back,
    a client round trip later; each command's latency runs from sending to
    its reply. A week has hundreds of thousands of sessions, so a session is
    not a SimPy process but this one event, scheduled again for each reply
    (``Environment.schedule``): the same order of bookings as a process
    yielding a timeout per command, at under half the cost (a bare SimPy
    sketch of 40,000 sessions of 8 commands: 0.19 s against 0.45 s).
    *record*: the latencies count (the session began after the warm-up).
    """

    def __init__(self, load: AccessLoad, protocol: str, commands: list,
                 prices: list, record: bool) -> None:
        env = load.env
        self.env = env
        self._ok = True
        self._value = None
        self.load = load
        self.protocol = protocol
        self.key = (load.host, protocol)
        """Where the commands' CPU seconds are counted (direct booking)."""
        self.commands = commands
        self.prices = prices
        self.samples = load._samples[protocol] if record else None
        self.started = env.now
        self.number = 0
        # the function, not the bound method: an event that held a method of
        # its own would be a reference cycle, left to the cyclic collector
        # (which then took 1.7 s of a two-day run's ~50 s)
        self._resume = [_Exchanges._reply]
        self._send(env.now)

    def _send(self, now: float) -> None:
        """Book command ``number`` now; its reply is back at the event."""
        delay = self._book(now)
        self.sent = now
        self.callbacks = self._resume
        self.env.schedule(self, NORMAL, delay)

    def _book(self, now: float) -> float:
        """Book command ``number`` now; the delay until its reply is back.

        With the load's ``direct`` booking, what ``book`` and
        ``Host.complete_at`` do, inlined (the same calls in the same order:
        the same times and totals): a week has over two million commands."""
        load = self.load
        number = self.number
        direct = load.direct
        if direct is None:
            done = load.book(self.protocol, load.host, self.commands[number][1],
                             load.array, self.prices[number])
        else:
            host, cpu, target, link, totals = direct
            cpu_s, work, nbytes, trips = self.prices[number]
            key = self.key
            totals[key] = totals.get(key, 0.0) + cpu_s
            done = now
            if cpu_s > 0:
                done = cpu.reserve(cpu_s, now)
            if work is not None:
                done = host._storage_at(work, target, done, now)
            if nbytes or trips:
                done = link.reserve(nbytes, trips, done, now)
            if done < now:
                done = now
        return done - now + load.rtt

    def _reply(self) -> None:
        """The reply to command ``number`` is back: note its latency, send the
        next command.

        (Called by the environment with the event, which is self.) When the
        next reply would be the environment's next event anyway -- every
        event queued comes later -- it is not queued: the clock is set to it
        and it is handled here (``FAST_FORWARD``), as ``Environment.step``
        would have, in the same order: a week's commands mostly find the
        environment idle until their reply."""
        env = self.env
        now = env._now
        queue = env._queue
        samples = self.samples
        commands = self.commands
        count = len(commands)
        number = self.number
        while True:
            if samples is not None:
                name = commands[number][0]
                values = samples.get(name)
                if values is None:
                    values = self.load._samples_of(self.protocol, name)
                values.append(now - self.sent)
            number += 1
            if number >= count:
                if samples is not None:
                    self.load._session_sample(self.protocol, now - self.started)
                return
            self.number = number
            delay = self._book(now)
            self.sent = now
            at = now + delay  # what Environment.schedule would queue it at
            if not FAST_FORWARD or (queue and queue[0][0] <= at):
                # something else comes first (or at the same instant)
                self.callbacks = self._resume
                env.schedule(self, NORMAL, delay)
                return
            env._now = now = at
