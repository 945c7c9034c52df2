"""The front of a mail scenario: the workload's arrivals and spamd's greylisting.

``Front`` offers every message of the workload (``twin.traffic.workload``)
and runs the greylisting loop of an inbound one: spamd checks the tuple of
every recipient; a client spamd does not pass is held on one of spamd's
connections while it is stuttered, then deferred (it retries on its own
schedule, or gives up) or refused. What passes is handed over to the rest of
the pipeline (``twin.sim.mail.MailModel``) through a *sink*: ``handover``
(an inbound message to smtpd, now), ``submit`` (a user's message, at its
arrival) and ``finished`` (a message that ended in the front: abandoned or
refused). What the client sends after DATA is made as it is handed over
(``Contents``).

Nothing after greylisting sends a message back through it: a message smtpd
refuses is refused for good, and the greylisting host's CPU, disks and
connection slots serve nothing else when spamd has a host of its own (ECE
2007: OpenBSD spamd in front of the gateway). The front then depends on
nothing the rest does, so it can run ahead as a SimPy model of its own --
the feed-forward cut of conservative parallel discrete-event simulation,
with unlimited lookahead. ``front_apart`` says when that holds; the
``MailModel`` then starts ``FrontStream``, which runs the front in a child
process on the host's other core and reads its hand-overs, in time order,
as a stream of items; the
child also sends the state of its monitored resources at every instant the
run samples them (``FrontMonitor`` stands in for them in the parent) and, at
the end, its counters and greylist. The results are the same whichever way
the front runs; where the greylisting host serves anything else (postgrey on
the MX), for a run shorter than a simulated day, or where no child can start,
the front runs in the model's own environment.

Frames on the child's stdout: a little-endian 8-byte size, then a pickled
list of items ``(time, kind, payload)``; kinds ``IN``, ``OUT``, ``ROW``,
``SNAP`` and, last, ``END``.
"""

from __future__ import annotations

import gc
import math
import os
import pickle
import sys
import tempfile
import threading
import time
import zlib
from collections import deque
from dataclasses import fields, replace
from operator import attrgetter
from pathlib import Path

import numpy as np
import simpy

from twin.errors import TwinError
from twin.hardware.host import Host
from twin.hardware.profile import load_profile
from twin.resources import Servers
from twin.schema.mail import MailScenario
from twin.sim.children import (  # noqa: F401  (front_apart: as before)
    FRAME_HEAD,
    FRONT_CODE,
    adopt,
    exit_status,
    front_apart,
    spawn_child,
    write_frame,
)
from twin.sim.mailrecord import GREYLIST, MessageRecord
from twin.sim.mailsetup import (
    DIALOGUE_COMMANDS,
    greylist_settings,
    play_dialogue,
    population_settings,
    smtp_servers,
    traffic_settings,
)
from twin.sim.mailstats import MailCounters
from twin.sim.streams import Streams
from twin.sim.writer import widen_pipe
from twin.stages.greylist import Greylist, GreylistDecision
from twin.stages.maildir import lf_message
from twin.stages.smtp import SmtpResult, goes_as_is
from twin.traffic.corpus import Corpus
from twin.traffic.infect import infect
from twin.traffic.message import rendered
from twin.traffic.population import Population
from twin.traffic.workload import MessageSpec, generate

IN, OUT, ROW, SNAP, END = range(5)
"""Kinds of the items the front sends: an inbound message handed to smtpd,
a user's message submitted, the jobs row of a message that ended in the
front, the state of its monitored resources, the end."""

BATCH_ITEMS = 2_000
"""Items per frame at most (a frame of rows and snapshots is ~0.5 MB)."""
FIRST_ITEMS = 32
"""Items in the first frame; each next one holds 4 times as many, up to
``BATCH_ITEMS``: the simulation starts on the first while the front makes
the next (a first frame of 2,000 items took the front ~0.17 s to make)."""
BATCH_BYTES = 4 << 20
"""Message bytes per frame at most."""
READ_AHEAD = 4
"""Frames the parent's reader thread holds ahead of the simulation."""

_SENT_FIELDS = tuple(f.name for f in fields(MessageSpec) if f.name != "retry")
_RETRY_AT = [f.name for f in fields(MessageSpec)].index("retry")
_pack = attrgetter(*_SENT_FIELDS)


def pack_spec(spec: MessageSpec) -> tuple:
    """*spec*'s fields but its retry schedule, which only the front uses
    (a schedule is most of the time of unpickling a spec)."""
    return _pack(spec)


def unpack_spec(values: tuple) -> MessageSpec:
    """The ``MessageSpec`` of ``pack_spec``'s *values*, without retries."""
    return MessageSpec(*values[:_RETRY_AT], None, *values[_RETRY_AT:])


def book(model, stage: str, host: str, work, array: str | None = None,
         cpu_s: float | None = None) -> float:
    """Book *work* of *stage* on *host* of *model* now, counting its CPU
    seconds; when it is done.

    *model* has ``env``, ``hosts`` and ``cpu_seconds`` (a ``MailModel`` or a
    ``Front``): for a step followed by a wait of its own (a stutter, a
    dialogue) the caller folds both into one timeout. *cpu_s* is the host's
    ``cpu_seconds(work)`` when the caller has it already."""
    target = model.hosts[host]
    key = (host, stage)
    if cpu_s is None:
        cpu_s = target.cpu_seconds(work)
    model.cpu_seconds[key] = model.cpu_seconds.get(key, 0.0) + cpu_s
    return max(target.complete_at(work, array, cpu_s), model.env.now)


class Front:
    """Arrivals and greylisting of *scenario* in *env*, handed to *sink*.

    *hosts*, *cpu_seconds*, *counters* and *live* are the model's own when
    the front shares its environment, the front's when it runs apart."""

    def __init__(
        self,
        env: simpy.Environment,
        scenario: MailScenario,
        streams: Streams,
        population: Population,
        greylist: Greylist | None,
        hosts: dict[str, Host],
        cpu_seconds: dict[tuple[str, str], float],
        counters: MailCounters,
        live: dict[int, MessageRecord],
        sink,
    ) -> None:
        self.env = env
        self.scenario = scenario
        self.streams = streams
        self.population = population
        self.greylist = greylist
        self.hosts = hosts
        self.cpu_seconds = cpu_seconds
        self.counters = counters
        self.live = live
        self.sink = sink
        grey = scenario.pipeline.greylist
        self.contents = Contents(scenario, streams, population)
        self.grey_host = grey.on if greylist is not None else None
        self.spamd = (
            Servers(env, grey.max_connections, f"{grey.on}.spamd")
            if greylist is not None
            else None
        )

    _book = book

    def monitors(self) -> list[tuple[str, object]]:
        """The greylisting host's resources and spamd's connections."""
        if self.greylist is None:
            return []
        found = list(self.hosts[self.grey_host].monitors())
        found.append((self.spamd.name, self.spamd))
        return found

    def start(self) -> None:
        self.env.process(self._source())

    def _source(self):
        env = self.env
        specs = generate(
            traffic_settings(self.scenario),
            self.population,
            self.scenario.duration,
            self.streams,
        )
        counters = self.counters
        live = self.live
        sink = self.sink
        for spec in specs:
            delay = spec.arrival_s - env.now
            if delay > 0:
                yield env.timeout(delay)
            counters.offered += 1
            record = MessageRecord(spec)
            live[spec.msg_id] = record
            if spec.kind == "outbound":
                counters.offered_outbound += 1
                sink.submit(record, self.contents.make(spec, False))
            else:
                counters.offered_inbound += 1
                counters.offered_spam += spec.is_spam
                env.process(self._inbound(record))

    def _finish(self, record: MessageRecord, outcome: str) -> None:
        record.outcome = outcome
        record.departure = self.env.now
        del self.live[record.spec.msg_id]
        self.sink.finished(record)

    def _inbound(self, record: MessageRecord):
        spec = record.spec
        env = self.env
        counters = self.counters
        duration = self.scenario.duration
        while True:
            record.attempts += 1
            counters.attempts += 1
            if self.greylist is None:
                break
            verdict = yield from self._greylist(record)
            if verdict is GreylistDecision.DEFERRED:
                again = (
                    spec.retry.next_attempt(record.attempts, env.now)
                    if spec.retry is not None
                    else None
                )
                if again is None or again >= duration:
                    if again is None:
                        counters.abandoned += 1
                        self._finish(record, "abandoned")
                    return
                yield env.timeout(max(again - env.now, 0.0))
                continue
            if verdict in (GreylistDecision.TRAPPED, GreylistDecision.BLACKLISTED):
                counters.rejected += 1
                self._finish(record, "rejected")
                return
            break
        self.sink.handover(record, self.contents.make(spec, True))

    def _greylist(self, record: MessageRecord):
        """Run spamd's check; hold a connection while it stutters the client."""
        env = self.env
        spec = record.spec
        grey = self.greylist
        grey_host = self.grey_host
        queued = env.now
        first = grey.check(
            spec.client_ip, spec.helo, spec.sender, spec.recipients[0], env.now
        )
        work = first.work
        decision = first.decision
        counters = self.counters
        if decision in (GreylistDecision.PASSED, GreylistDecision.WHITELISTED):
            # pf sends a passed client straight to the MTA; spamd holds nothing.
            end = self._book("greylist", grey_host, work)
            if end > env.now:
                yield env.timeout(end - env.now)
            if decision is GreylistDecision.PASSED:
                counters.greylist_passed += 1
            else:
                counters.greylist_whitelisted += 1
            record.visit(GREYLIST, queued, queued, env.now)
            return decision
        stutter = first.stutter_s
        for recipient in spec.recipients[1:]:
            other = grey.check(
                spec.client_ip, spec.helo, spec.sender, recipient, env.now
            )
            work = work + other.work
            if other.decision is GreylistDecision.TRAPPED:
                decision = GreylistDecision.TRAPPED
        grant = self.spamd.acquire()
        if grant is not None:
            yield grant
        start = env.now
        end = self._book("greylist", grey_host, work)
        rtt = self.scenario.pipeline.smtp.client_rtt
        talk = stutter + rtt * (DIALOGUE_COMMANDS + len(spec.recipients))
        yield env.timeout(end - start + talk)
        self.spamd.release()
        record.visit(GREYLIST, queued, start, env.now)
        if decision is GreylistDecision.DEFERRED:
            counters.greylist_deferred += 1
        elif decision is GreylistDecision.TRAPPED:
            counters.greylist_trapped += 1
        else:
            counters.greylist_blacklisted += 1
        return decision


Content = tuple[bytes, bool, bool, bool, "int | None"]
"""A message as its client sends it after DATA; whether it holds an image;
whether a virus; whether it goes as it is (``twin.stages.smtp.goes_as_is``,
looked at here, on the front's core, rather than by the SMTP stage); the
number of CRs in it where they were counted (for ``SmtpServer.transact``'s
*crs*, of a message that goes as it is: a rendered message's are counted
from its pieces, and an apart front counts those of the others that go into
maildirs), else None."""


class Contents:
    """What the client of each message sends: a message the workload renders
    (``twin.traffic.message``) or one of the scenario's corpus, image spam
    or a legit message with a picture (FuzzyOCR's input), a virus in spam.
    Images and viruses are drawn per message from the scenario seed, so every
    configuration sees the same ones; rendering draws from one stream, in the
    order the front hands messages over."""

    def __init__(
        self, scenario: MailScenario, streams: Streams, population: Population
    ) -> None:
        self.seed = scenario.seed
        self.inbound = scenario.traffic.inbound
        self.population = population
        self.render_rng = streams("traffic.render")
        self.corpus = (
            Corpus(scenario.traffic.corpus, scenario.seed)
            if scenario.traffic.corpus
            else None
        )

    def make(self, spec: MessageSpec, inbound: bool) -> Content:
        image = self.image(spec) if inbound else None
        as_is = crs = None
        if image is not None:
            message = image
        elif self.corpus is not None:
            message = self.corpus.message(spec.is_spam, spec.msg_id)
        else:
            message, as_is, crs = rendered(spec, self.population, self.render_rng)
        virus = inbound and self.viral(spec)
        if virus:
            message = infect(message)
            as_is = crs = None
        if as_is is None:
            as_is = goes_as_is(message)
        # the CRs of a rendered message, counted from its pieces: where it
        # goes as it is, smtpd takes them (its LF form left to the writer)
        return message, image is not None, virus, as_is, crs if as_is else None

    def image(self, spec: MessageSpec) -> bytes | None:
        """Image spam (or a legit message with a picture) for *spec*, if drawn."""
        inbound = self.inbound
        share = inbound.image_spam_share if spec.is_spam else inbound.legit_image_share
        if share <= 0:
            return None
        key = f"{self.seed}:image:{spec.msg_id}".encode()
        if zlib.crc32(key) / 2**32 >= share:
            return None
        from twin.stages.ocr.imagespam import legit_message, spam_message

        rng = np.random.default_rng([self.seed, spec.msg_id, 0x1A6E])
        made = spam_message(rng) if spec.is_spam else legit_message(rng)
        return made.raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")

    def viral(self, spec: MessageSpec) -> bool:
        """Whether inbound spam *spec* carries a virus (a draw keyed by its id)."""
        share = self.inbound.virus_share
        if not spec.is_spam or share <= 0:
            return False
        key = f"{self.seed}:virus:{spec.msg_id}".encode()
        return zlib.crc32(key) / 2**32 < share


# -- smtpd's side of the dialogues, ahead ------------------------------------


def dialogues_ahead(scenario: MailScenario) -> bool:
    """Whether an apart front of *scenario* also plays smtpd's side of each
    message's SMTP dialogue (``Dialogues``): where users read mail, whose
    sessions keep the simulation's core full while the front's has room, and
    where nothing may delay a dialogue past its hand-over (SPF checks do).
    ``MAILTWIN_FRONT_SMTP=0`` turns it off (the results are the same)."""
    if os.environ.get("MAILTWIN_FRONT_SMTP", "1") == "0":
        return False
    access = scenario.access
    return (access is not None and access.enabled
            and scenario.pipeline.spf is None)


class Dialogues:
    """smtpd's side of each message's SMTP dialogue, played by the front at
    the hand-over (a simulator shortcut: the same ``SmtpServer.transact``).

    ``SmtpServer.transact`` depends on its arguments, the user directory and
    the second of *now* (the Received: header's date) alone, so the front,
    with its own servers over the same directory, can play it when it hands
    a message over, and the simulation take its result
    (``MailModel._receive``, through ``rebuilt``) when its smtpd starts the
    dialogue within that second with the same TLS choice -- which it draws
    from its own ``smtp.tls`` stream in the order of the hand-overs, as this
    does -- and play it itself otherwise. Only messages that go as they are
    (``goes_as_is``) are played here: their queued bytes are the Received:
    header and the message, so only the header goes down the pipe."""

    def __init__(self, scenario: MailScenario, population: Population,
                 streams: Streams) -> None:
        with tempfile.TemporaryDirectory(prefix="twin-front-") as folder:
            # the directory is read into memory as it is opened
            self.mx, self.submission = smtp_servers(scenario, population,
                                                    Path(folder))
        # lmtpd indexes what it delivers into Cyrus's cache: its parse of
        # the message is made here too (index_delivery takes it)
        self.parse = None
        if scenario.pipeline.deliver.format == "maildir":
            from twin.access.cyrusstore import delivery_parse

            self.parse = delivery_parse
        side = scenario.pipeline.smtp
        self.tls_share = side.tls_share if side.tls else None
        self.tls_rng = streams("smtp.tls")
        self.submission_tls = scenario.submission.tls

    def inbound(self, spec: MessageSpec, content: Content, now: float):
        # drawn for every inbound message, as MailModel._receive does
        tls = self.tls_share is not None and self.tls_rng.random() < self.tls_share
        return self._dialogue(self.mx, spec, content, now, tls, self.parse)

    def outbound(self, spec: MessageSpec, content: Content, now: float):
        tls = bool(self.submission_tls and spec.offsite)
        return self._dialogue(self.submission, spec, content, now, tls, self.parse)

    @staticmethod
    def _dialogue(server, spec: MessageSpec, content: Content, now: float,
                  tls: bool, parse=None):
        """(second of *now*, TLS, the result without its bytes, the Received:
        header, the message's LF form where the result had one, *parse* of
        the queued bytes' LF form where there is one), or None."""
        message = content[0]
        if not content[3] or not message:
            return None
        result = play_dialogue(server, spec, message, now, tls=tls, as_is=True)
        header = None
        queued = result.message
        if queued is not None:
            cut = len(queued) - len(message)
            if cut < 0 or queued[cut:] != message:
                return None  # not the header and the message: played there
            header = queued[:cut]
        # the LF form's pass over the bytes is made here too: a copy
        # through the pipe costs the simulation less than the pass
        body_lf = parsed = None
        if result.message_lf is not None:
            body_lf = message.replace(b"\r", b"")
            if parse is not None:
                parsed = parse(result.message_lf)
        return (int(now), tls, replace(result, message=None, message_lf=None),
                header, body_lf, parsed)


def rebuilt(ahead: tuple, message: bytes) -> SmtpResult:
    """The ``SmtpResult`` a ``Dialogues`` entry stands for, of *message*:
    what ``SmtpServer.transact`` answers (the queued bytes, their LF form)."""
    _, _, result, header, body_lf, _ = ahead
    if header is None:
        return result
    return replace(
        result,
        message=header + message,
        message_lf=None if body_lf is None else lf_message(header) + body_lf,
    )


# -- the front on its own ----------------------------------------------------


class _Sink:
    """Collects what an apart front hands over, as items in batches."""

    def __init__(self, env: simpy.Environment, live: dict, emit,
                 dialogues: Dialogues | None = None,
                 count_crs: bool = False) -> None:
        self.env = env
        self.live = live
        self.emit = emit
        self.dialogues = dialogues
        self.count_crs = count_crs and dialogues is None
        """Whether to count the CRs of the messages that go as they are
        (``Content``): the simulation's smtpd then leaves their LF form to
        the writer process (``SmtpServer.transact``'s *crs*)."""
        self.batch: list[tuple] = []
        self.bytes = 0
        self.items = FIRST_ITEMS

    def _put(self, item: tuple) -> None:
        batch = self.batch
        batch.append(item)
        if len(batch) >= self.items or self.bytes >= BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.batch:
            self.emit(self.batch)
            self.batch = []
            self.bytes = 0
            self.items = min(4 * self.items, BATCH_ITEMS)

    def _counted(self, content: Content) -> Content:
        if self.count_crs and content[3] and content[4] is None:
            message = content[0]
            return (message, content[1], content[2], True, message.count(b"\r"))
        return content

    def handover(self, record: MessageRecord, content: Content) -> None:
        del self.live[record.spec.msg_id]
        content = self._counted(content)
        # what the front filled in: the attempts and the greylist station
        times = record.times[4 * GREYLIST : 4 * GREYLIST + 4]
        now = self.env.now
        dialogues = self.dialogues
        ahead = (None if dialogues is None
                 else dialogues.inbound(record.spec, content, now))
        sent = (pack_spec(record.spec), record.attempts, times, content, ahead)
        self.bytes += len(content[0])
        self._put((now, IN, sent))

    def submit(self, record: MessageRecord, content: Content) -> None:
        del self.live[record.spec.msg_id]
        content = self._counted(content)
        self.bytes += len(content[0])
        now = self.env.now
        dialogues = self.dialogues
        ahead = (None if dialogues is None
                 else dialogues.outbound(record.spec, content, now))
        self._put((now, OUT, (pack_spec(record.spec), content, ahead)))

    def finished(self, record: MessageRecord) -> None:
        self._put((self.env.now, ROW, record.row()))


def run_apart(scenario: MailScenario, seed: int, emit) -> None:
    """Run the front of *scenario* alone over its duration, giving *emit*
    each batch of items (the last holds ``END``)."""
    env = simpy.Environment()
    streams = Streams(seed)
    population = Population(population_settings(scenario), streams("population"))
    greylist = Greylist(greylist_settings(scenario, population))
    name = scenario.pipeline.greylist.on
    hosts = {name: Host(env, name, load_profile(scenario.hosts[name].hardware))}
    live: dict[int, MessageRecord] = {}
    counters = MailCounters()
    dialogues = (Dialogues(scenario, population, streams)
                 if dialogues_ahead(scenario) else None)
    sink = _Sink(env, live, emit, dialogues,
                 count_crs=scenario.pipeline.deliver.format == "maildir")
    front = Front(
        env, scenario, streams, population, greylist, hosts, {}, counters, live, sink
    )
    monitors = [resource for _, resource in front.monitors()]

    def snapshot() -> None:
        state = []
        for resource in monitors:
            resource.sync()
            state.append(
                (
                    resource.busy_area,
                    resource.queue_length,
                    resource.busy,
                    getattr(resource, "queue_max", None),
                )
            )
        sink._put((env.now, SNAP, state))

    def sampling(every: float):
        # the instants the run's sampler and warm-up mark read resources at,
        # reached by the same sums of timeouts, so the times are equal floats
        while True:
            yield env.timeout(every)
            snapshot()

    def warm():
        yield env.timeout(scenario.warmup)
        snapshot()

    snapshot()
    front.start()
    env.process(sampling(scenario.output.sample_interval))
    env.process(warm())
    env.run(until=scenario.duration)
    snapshot()
    for record in live.values():
        record.departure = math.nan
    end = {
        "counters": {f.name: getattr(counters, f.name) for f in fields(counters)},
        "cpu_seconds": front.cpu_seconds,
        "live_rows": {msg_id: record.row() for msg_id, record in live.items()},
        "hit_rate": float(hosts[name].page_cache.read_hit_rate),
        "greylist": greylist.dump(),
        "events": _events(env),
    }
    sink._put((env.now, END, end))
    sink.flush()


def _events(env: simpy.Environment) -> int:
    from twin.sim.run import events_processed

    return events_processed(env)


def _run_child(scenario: MailScenario, seed: int, out) -> None:
    """Run the front into the pipe of the binary stream *out*, a frame per
    batch (written to its file descriptor: ``write_frame``)."""
    fd = out.fileno()

    def emit(batch: list) -> None:
        write_frame(fd, pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))

    from twin.sim.children import RUN_GC_THRESHOLDS

    gc.freeze()
    gc.set_threshold(*RUN_GC_THRESHOLDS)
    run_apart(scenario, seed, emit)


def child_main() -> None:
    """A spawned child: read (scenario, seed) on stdin, frames to stdout."""
    try:
        scenario, seed = pickle.load(sys.stdin.buffer)
    except EOFError:  # started early for a run that did not need it
        os._exit(0)
    try:
        _run_child(scenario, seed, sys.stdout.buffer)
    except BrokenPipeError:  # the parent stopped reading: it failed or ended
        os._exit(0)


_CHILD = FRONT_CODE


# -- the parent's side -------------------------------------------------------


class FrontStream:
    """The items of an apart front, in time order, as the parent reads them.

    Iterating gives the ``IN``, ``OUT`` and ``ROW`` items; ``snapshot(t)``
    the state of the front's monitored resources at instant *t* (reading
    ahead as far as needed); ``final()`` the ``END`` payload. With
    *child* False the front is run here, to its end, before the first item
    is read: every item is held at once, so this is for short runs and tests.
    Raises ``OSError`` where no child can start."""

    def __init__(self, scenario: MailScenario, seed: int, child: bool = True) -> None:
        self.items: deque = deque()
        self.watch = None
        """Called with (time, packed spec) of each hand-over as it is read
        (the session worker's bookkeeping, ``AccessLoad.coming``)."""
        self.snapshots: dict[float, list] = {}
        self.ended: dict | None = None
        self.waited_s = 0.0
        """Host seconds the simulation spent waiting for the child's next
        frame (a diagnostic for the run's manifest, never in a result)."""
        self._process = None
        self._batches: deque = deque()
        self._errors = None
        self.apart = child
        """Whether the front runs in a child process (read as it goes)."""
        if child:
            self._start(scenario, seed)
        else:
            run_apart(scenario, seed, self._batches.append)

    def _start(self, scenario: MailScenario, seed: int) -> None:
        # spawned, not forked: a forked child shares the parent's pages until
        # either writes them, and copying them cost the week's run ~5 s of
        # kernel time more than the child's ~0.6 s of imports
        waiting = adopt(_CHILD)  # started early by twin run (children.py)
        if waiting is not None:
            self._process, self._errors = waiting
        else:
            self._errors = tempfile.TemporaryFile()
            self._process = spawn_child(_CHILD, stderr=self._errors)
        self._pipe = self._process.stdout
        widen_pipe(self._pipe)
        # a thread reads the frames as the child writes them: reading a 4 MB
        # frame through a 1 MB pipe when it was needed waited on the child
        # (on the other core, beside the writer) four times a frame
        self._frames: deque = deque()
        self._arrived = threading.Condition()
        self._stopping = False
        self._reader = threading.Thread(
            target=self._reading, name="twin-front-read", daemon=True
        )
        self._reader.start()
        try:
            pickle.dump((scenario, seed), self._process.stdin)
            self._process.stdin.close()
        except OSError:
            self._fail()

    def _reading(self) -> None:
        """The reader thread: frames off the pipe into ``_frames``, at most
        ``READ_AHEAD`` ahead of the simulation; None after the last (or a
        broken one)."""
        pipe, frames, arrived = self._pipe, self._frames, self._arrived
        while True:
            data = None
            try:
                head = pipe.read(FRAME_HEAD.size)
                if len(head) == FRAME_HEAD.size:
                    (size,) = FRAME_HEAD.unpack(head)
                    data = pipe.read(size)
                    if len(data) < size:
                        data = None
            except Exception:  # closed under it, or a frame beyond reading:
                data = None  # the simulation names the child's failure
            with arrived:
                while len(frames) >= READ_AHEAD and not self._stopping:
                    arrived.wait()
                frames.append(data)
                arrived.notify_all()
            if data is None:
                return

    def _next_batch(self) -> list | None:
        if self._process is None:
            return self._batches.popleft() if self._batches else None
        arrived = self._arrived
        with arrived:
            if not self._frames:
                started = time.perf_counter()
                while not self._frames:
                    arrived.wait()
                self.waited_s += time.perf_counter() - started
            data = self._frames.popleft()
            arrived.notify_all()
        if data is None:
            self._fail()
        return pickle.loads(data)

    def _fail(self):
        self._process.wait()
        self._errors.seek(0)
        lines = self._errors.read().decode("utf-8", "replace").strip().splitlines()
        last = lines[-1] if lines else exit_status(self._process.returncode)
        raise TwinError(f"the front of the run (arrivals, greylisting) failed: {last}")

    def _read(self) -> bool:
        """One more batch into the buffer; False once the end was read."""
        if self.ended is not None:
            return False
        batch = self._next_batch()
        if batch is None:
            raise TwinError("the front of the run ended without its last frame")
        items = self.items
        watch = self.watch
        for item in batch:
            kind = item[1]
            if kind == SNAP:
                self.snapshots[item[0]] = item[2]
            elif kind == END:
                self.ended = item[2]
            else:
                items.append(item)
                if watch is not None and kind != ROW:
                    watch(item[0], item[2][0])
        return True

    def read_until(self, when: float) -> None:
        """Read hand-overs until one at or after simulated time *when* is in
        ``items`` (or the end was read): whoever reads ahead then knows every
        hand-over before *when*."""
        items = self.items
        while self.ended is None and (not items or items[-1][0] < when):
            self._read()

    def __iter__(self):
        items = self.items
        while True:
            while items:
                yield items.popleft()
            if not self._read() and not items:
                return

    def snapshot(self, now: float) -> list:
        snapshots = self.snapshots
        while now not in snapshots:
            if not self._read():
                raise TwinError(
                    f"the front of the run has no state of its resources at t={now} s"
                )
        return snapshots[now]

    def final(self) -> dict:
        while self._read():
            pass
        self.close()
        return self.ended

    def close(self) -> None:
        """End the child (at once, after a failure)."""
        process = self._process
        if process is None:
            return
        self._process = None
        if process.poll() is None and self.ended is None:
            process.kill()
        with self._arrived:
            self._stopping = True
            self._arrived.notify_all()
        self._reader.join()  # it reads to the end of the pipe and stops
        process.wait()
        self._pipe.close()
        self._errors.close()


class FrontMonitor:
    """One resource of an apart front as the parent's sampler sees it: its
    state at the instant of each ``sync``, as the front sent it."""

    __slots__ = (
        "name",
        "capacity",
        "busy",
        "busy_area",
        "queue_length",
        "queue_max",
        "_stream",
        "_index",
        "_env",
    )

    def __init__(
        self,
        env: simpy.Environment,
        stream: FrontStream,
        index: int,
        name: str,
        capacity: int,
    ) -> None:
        self.name = name
        self.capacity = capacity
        self.busy = 0
        self.busy_area = 0.0
        self.queue_length = 0
        self.queue_max = None
        self._stream = stream
        self._index = index
        self._env = env

    def sync(self) -> None:
        state = self._stream.snapshot(self._env.now)[self._index]
        self.busy_area, self.queue_length, self.busy, self.queue_max = state
