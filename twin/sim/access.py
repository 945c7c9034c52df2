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
import re
from array import array
from collections import deque
from dataclasses import fields

import numpy as np
import simpy
from simpy.events import NORMAL, URGENT

from twin.access.auth import CredentialsFile
from twin.access.cyrusstore import (
    CyrusBackend,
    delivery_parse,
    delivery_work,
    forget_store,
    index_delivery,
    settle_store,
)
from twin.access.imap import ImapSession
from twin.access.mboxstore import MboxBackend
from twin.access.pop3 import Pop3Session
from twin.schema.mail import MailScenario
from twin.sim.sessions import SessionWorker, sessions_apart
from twin.stages.fileops import DIRECT, Files
from twin.stages.maildir import LfMessage
from twin.traffic.client import ClientState, PollMemo
from twin.traffic.mailboxes import populate
from twin.traffic.users import ReadingSettings, draw_profiles, session_arrivals
from twin.traffic.workload import MessageSpec

LOOKAHEAD_S = 600.0
"""Simulated seconds of sessions drawn ahead of the clock (``_source``)."""
AHEAD_S = 60.0
"""Simulated seconds ahead of the clock that a session worker is sent a
session to play, where nothing can change its user's mailbox before it
starts (``twin.sim.sessions``): a simulated minute is ~8 ms of the access
week's wall time, and a session the memo does not replay ~0.4 ms of play
(``benchmarks/session_lookahead.py``: 98.8 % of the sessions could go a
minute ahead, 96.0 % five minutes). Five minutes made the simulation wait
~7 s of the access week for outcomes against ~11 s, but the wall time did
not follow (alternated runs: 79.5 s against 77.5 s): the worker, further
ahead, took the other core from the writer and the front."""
DISPATCH_EVERY_S = 15.0
"""Simulated seconds between two sendings of sessions to the worker: each
sends those starting up to ``AHEAD_S`` ahead, in one frame (a frame per
session start cost the simulation ~40 µs each)."""
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
        self.store_root = stages.store_root
        self.worker: SessionWorker | None = None
        """Where the sessions are played, ahead of the clock, when not here
        (``twin.sim.sessions``): it owns the Cyrus store once populated."""
        front = getattr(model, "front_stream", None)
        if front is not None and sessions_apart(scenario):
            try:  # (its imports while this populates the store)
                self.worker = SessionWorker()
            except OSError:
                pass  # none can start: the sessions are played here
        self._init_tracking(front)
        self.population = population
        self.streams = streams
        self._populate(stages, fmt, population, host_fsync, folder)
        if self.worker is not None:
            self.states = []  # (the worker's)
            self.backend = None
            # what populate left in this process's memory is the worker's now
            forget_store(stages.store_root)
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

    def _populate(self, stages, fmt: str, population, host_fsync: bool,
                  folder) -> None:
        """Fill the store with the users' mailboxes (the message files
        through the writer) and make the backend that serves them here. With
        a session worker, the worker builds the indexes (from the plan,
        ``build_indexes``) while this process writes the mailboxes: it
        begins as soon as they are drawn."""
        files = self.files
        worker = self.worker

        def begin(plan, known) -> None:
            worker.begin(self.scenario, stages.store_root, folder, known, plan)

        stats = populate(
            stages.store_root,
            fmt,
            population,
            self.settings,
            self.streams("access.mailboxes"),
            profiles=self.profiles,
            host_fsync=host_fsync,
            # the message files go through the model's writer: a session
            # waits for its user's (ready), as for deliveries
            files=files,
            defer_index=worker is not None,
            on_plan=begin if worker is not None else None,
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

    def _init_tracking(self, front) -> None:
        """What deciding when a session may go to the worker takes (see
        ``_may_go``): the users named by messages in the simulation and by
        the front's hand-overs read and not yet made."""
        self._undispatched: deque = deque()
        """(spec, exact start) of the sessions drawn and not sent, in start
        order (worker only)."""
        self._blocked: list = []
        """Those the worker could not be sent yet, in start order."""
        self._blocked_users: dict[str, int] = {}
        """User -> that user's sessions in ``_blocked``."""
        self._recheck = False
        """Whether something that may let a blocked session go happened since
        ``_dispatch`` last looked at them: a message naming a blocked user
        left the simulation, or an earlier session of a blocked user began
        or went to the worker. Nothing else can (a hand-over read or made
        only blocks more), so the blocked are not looked at again until
        then. Looking at them at every session's start cost ~3 % of a
        profiled two-day run with a reach of four simulated minutes
        (``_dispatch`` 4.7 s, 3.2 s since, of ~43 s), 0.1 s with a minute's."""
        self._unwritten: list = []
        """Those that may go but wait for the writer to write their user's
        mail (``FileWriter.written``), in the order they were let go."""
        self.writer_waits = 0
        """Sessions that could go ahead but were held until their start for
        the writer (their user's mail not yet written)."""
        self._sent: set[int] = set()
        """Session ids sent to the worker, not begun."""
        self._chain = 0.0
        """The exact instant the last session drawn will begin at."""
        self._next_dispatch = 0.0
        """When ``_dispatch`` sends sessions next."""
        self._covered = 0.0
        """Sessions starting before this may go (``_dispatch``)."""
        self._busy: dict[str, int] = {}
        """User -> messages naming the user in the simulation."""
        self._names: dict[int, tuple[str, ...]] = {}
        """Message id -> the users its addresses may name (in the simulation)."""
        self._coming: dict[str, deque] = {}
        """User -> the hand-over times of the front's items read, not made,
        naming the user."""
        self._front = front if self.worker is not None else None
        if self._front is not None:
            self._front.watch = self.coming

    def coming(self, when: float, values: tuple) -> None:
        """The front's stream read a hand-over at *when* of the message with
        packed spec *values* (``FrontStream.watch``)."""
        coming = self._coming
        for name in _names_of(values[_SENDER], values[_RECIPIENTS]):
            times = coming.get(name)
            if times is None:
                coming[name] = deque((when,))
            else:
                times.append(when)

    def entering(self, spec) -> None:
        """The front's hand-over of message *spec* is made now."""
        names = _names_of(spec.sender, spec.recipients)
        self._names[spec.msg_id] = names
        busy, coming = self._busy, self._coming
        for name in names:
            busy[name] = busy.get(name, 0) + 1
            times = coming[name]
            times.popleft()
            if not times:
                del coming[name]

    def leaving(self, msg_id: int) -> None:
        """Message *msg_id* ended in the simulation."""
        names = self._names.pop(msg_id, None)
        if names is None:
            return
        busy = self._busy
        blocked = self._blocked_users
        for name in names:
            left = busy[name] - 1
            if left:
                busy[name] = left
            else:
                del busy[name]
                if name in blocked:
                    self._recheck = True

    def start(self, epoch_s: float) -> None:
        self.epoch = epoch_s
        if self.worker is not None:
            self._chain = self.env.now
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
        undispatched = self._undispatched if self.worker is not None else None
        while following is not None and (following.start_s < limit or not pending):
            pending.append(following)
            if undispatched is not None:
                # the instant _Starts will begin it at: the previous start
                # plus the delay to this one, as Environment.schedule adds
                chain = self._chain
                delay = following.start_s - chain
                if delay > 0:
                    chain = self._chain = chain + delay
                undispatched.append((following, chain))
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
        if self.worker is None:
            self._session(spec)
            return
        self._session_apart(spec, now)
        if now >= self._next_dispatch:
            self._next_dispatch = now + DISPATCH_EVERY_S
            self._covered = now + AHEAD_S
            self._dispatch(now)
        elif (self._recheck and self._blocked) or self._unwritten or (
                self._undispatched and self._undispatched[0][1] <= self._covered):
            # (drawn since the last sending, within its reach)
            self._dispatch(now)

    def _dispatch(self, now: float) -> None:
        """Send the worker the sessions held for the writer whose users'
        mail is now written, those held back that may go now (``_may_go``)
        and those starting before ``_covered`` (``AHEAD_S`` ahead of the
        last sending), in start order; a user's waits behind the user's
        earlier one that may not."""
        worker = self.worker
        held: set[str] = set()
        sent = False
        blocked_users = self._blocked_users
        if self._unwritten:
            still = []
            written = self.files.written
            for item in self._unwritten:
                user = item[0].user
                if user not in held and written(user):
                    self._play(*item)
                    sent = True
                    if user in blocked_users:
                        self._recheck = True  # the user's next may go now
                else:
                    held.add(user)
                    still.append(item)
            self._unwritten = still
        if self._blocked and self._recheck:
            self._recheck = False
            still = []
            for item in self._blocked:
                user = item[0].user
                if user not in held and self._may_go(*item):
                    self._send(*item)
                    sent = True
                    _forget(blocked_users, user)
                else:
                    held.add(user)
                    still.append(item)
            self._blocked = still
        undispatched = self._undispatched
        limit = self._covered
        while undispatched and undispatched[0][1] <= limit:
            item = undispatched.popleft()
            user = item[0].user
            if (user not in held and user not in blocked_users
                    and self._may_go(*item)):
                self._send(*item)
                sent = True
            else:
                held.add(user)
                self._blocked.append(item)
                blocked_users[user] = blocked_users.get(user, 0) + 1
        if sent:
            worker.flush()

    def idle(self, now: float) -> None:
        """No session starts until the next drawn: where that one is beyond
        the last sending's reach (sessions far apart), it goes now, if it
        may, rather than at its start. (One beyond reach that starts after
        the next start goes with a sending then: checking the first not
        sent instead sent ~45,000 of a simulated day's ~48,000 frames, one
        session each.)"""
        undispatched = self._undispatched
        if (undispatched and undispatched[0][1] > self._covered
                and undispatched[0][0] is self._pending[0]):
            self._covered = undispatched[0][1]
            self._dispatch(now)

    def _may_go(self, spec, start: float) -> bool:
        """Whether nothing can change *spec*'s user's mailbox before its
        *start*: no message naming the user in the simulation, none of the
        front's hand-overs before it naming the user (read that far)."""
        user = spec.user
        if start >= self.scenario.duration or user in self._busy:
            return False
        self._front.read_until(start)
        times = self._coming.get(user)
        return times is None or times[0] > start

    def _send(self, spec, start: float) -> None:
        """Send *spec* to the worker, or where the writer has not yet written
        its user's mail (the worker reads it), hold it until it has (the
        next ``_dispatch`` that finds it written, or its start): waiting for
        the writer here stopped the simulation ~1.5 ms ~900 times a
        simulated day."""
        user = spec.user
        unwritten = self._unwritten
        if (unwritten and any(item[0].user == user for item in unwritten)) or (
                not self.files.written(user)):
            unwritten.append((spec, start))
        else:
            self._play(spec, start)

    def _play(self, spec, start: float) -> None:
        self.worker.play(spec.session_id, spec, self.epoch + start)
        self._sent.add(spec.session_id)

    def _session_apart(self, spec, now: float) -> None:
        """Begin *spec* with the worker's outcome (played ahead, or now)."""
        sid = spec.session_id
        waited = sid not in self._sent
        if waited:
            # not sent ahead: it is the first drawn, blocked, held for the
            # writer or not reached
            unwritten = self._unwritten
            held = next((k for k, item in enumerate(unwritten)
                         if item[0] is spec), None)
            if held is not None:
                # it could go ahead, but its user's mail was not yet written
                del unwritten[held]
                self.writer_waits += 1
                waited = False
                if spec.user in self._blocked_users:
                    self._recheck = True  # the user's next may go now
            elif self._blocked and self._blocked[0][0] is spec:
                self._blocked.pop(0)
                _forget(self._blocked_users, spec.user)
                self._recheck = True  # the user's next may go now
            else:
                item = self._undispatched.popleft()
                if item[0] is not spec:
                    raise AssertionError("session order lost")
            # the writer has written the user's mail before the worker reads it
            self.files.ready(spec.user)
            self._play(spec, now)
        else:
            self._sent.discard(sid)
        commands, failure, read, fetched = self.worker.outcome(sid, spec.user,
                                                               waited)
        self._count(spec, commands, failure, read, fetched)

    def index(self, user: str, name: str, data: bytes | LfMessage, now: float,
              parsed: tuple | None):
        """Cyrus's lmtpd appends a delivery to the mailbox's index and cache:
        its Work (see ``index_delivery``), here or in the worker."""
        worker = self.worker
        if type(data) is LfMessage and (worker is None or parsed is None):
            data = bytes(data)  # (the form the file holds)
        if worker is None:
            return index_delivery(self.store_root, user, name, data, now,
                                  parsed=parsed)
        if parsed is None:
            parsed = delivery_parse(data)
        worker.deliver(user, name, now, parsed)
        return delivery_work(self.store_root, user, name, parsed)

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
        self._count(spec, outcome.commands, outcome.failure,
                    outcome.messages_read, outcome.bytes_fetched)

    def _count(self, spec, commands: list, failure, read: int,
               fetched: int) -> None:
        """Count *spec*'s outcome and send its first command."""
        env = self.env
        self.sessions[spec.protocol] += 1
        self.failures += bool(failure)
        self.messages_read += read
        self.bytes_fetched += fetched
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
        worker = self.worker
        if worker is not None:
            # its last deliveries indexed, every file of its written
            self.memo.hits, self.memo.misses = worker.finish()
        if self.epoch is None:
            return
        if worker is not None or isinstance(self.backend, CyrusBackend):
            settle_store(self.store_root, int(self.epoch + self.env.now))

    def close(self) -> None:
        """End the session worker (after a failure too)."""
        if self.worker is not None:
            self.worker.close()

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


_FIELDS = [field.name for field in fields(MessageSpec)]
_SENDER = _FIELDS.index("sender")
_RECIPIENTS = _FIELDS.index("recipients")
"""Where ``pack_spec``'s values hold them (before the retry schedule)."""
_WORDS = re.compile(r"[a-z0-9._+\-]+")


def _forget(counts: dict[str, int], user: str) -> None:
    """One fewer of *user*'s sessions blocked."""
    left = counts[user] - 1
    if left:
        counts[user] = left
    else:
        del counts[user]


def _names_of(sender: str, recipients) -> tuple[str, ...]:
    """The users a message's addresses may name, lower-case: each address's
    local part, or, for one with routing or quoting (``%``, ``!``, ``"``,
    several ``@``), every word in it (more names only hold sessions back)."""
    names = []
    for address in (sender, *recipients):
        if "%" in address or "!" in address or '"' in address or (
                address.count("@") > 1):
            names.extend(_WORDS.findall(address.lower()))
        else:
            names.append(address.partition("@")[0].lower())
    return tuple(set(names))


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
        load = self.load
        if load.worker is not None:
            load.idle(self.env._now)
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
