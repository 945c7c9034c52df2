"""The engine of ``kind: mail``: a week of traffic through the real stages.

Each message of the workload (``twin.traffic.workload``) is a SimPy process:

1. **greylist** (if the pipeline has one): spamd checks the tuple of every
   recipient; a client spamd does not pass is held on one of spamd's
   connections while it is stuttered, then deferred (it retries on its own
   schedule, or gives up) or refused. This front of the run, arrivals
   included, is ``twin.sim.front.Front``: where spamd has a host of its own
   it runs ahead in a child process and hands each message over at the
   instant it passes (``_replay``), with the same results;
2. **smtp**: one of Postfix's smtpd processes runs the real SMTP dialogue
   (relay control, recipient validation against the directory, SASL, TLS),
   the client's round trips and transfer time elapse, the host's CPU does the
   reported work, and an accepted message is written to the queue (fsync);
3. **relay**: when the MX is not the mailbox host, the MX's smtp client hands
   the message over (a second queue file on the mailbox host);
4. **deliver**: a local delivery agent writes it into each recipient's
   mailbox (maildir or mbox, real files) on the mailbox array;
5. **remote**: users' mail to outside domains is sent by the submission host's
   smtp client, with Postfix backoff on temporary failures and a bounce after
   the maximal queue lifetime.

Every step's time is the work the real stage reported, turned into time by
the host's hardware (``twin.hardware.host.Host.execute``). Pools of processes
(spamd connections, smtpd, local and smtp delivery agents) are ``Servers``.
The jobs table has one row per message; ``twin.sim.mailstats`` names the
summary metrics. At the end the queue files on disk are counted: every
accepted message must be delivered, bounced or still queued (messages.lost 0).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pyarrow as pa
import simpy

from twin.errors import TwinError
from twin.hardware.host import Host
from twin.hardware.profile import load_profile
from twin.resources import Servers
from twin.schema.mail import MailScenario
from twin.sim.children import FRONT_CHILD_FROM_S, front_mode  # noqa: F401  (as before)
from twin.sim.delivery import Delivery
from twin.sim.front import (
    IN,
    OUT,
    Content,
    Front,
    FrontMonitor,
    FrontStream,
    book,
    rebuilt,
    unpack_spec,
)
from twin.sim.gateway import Gateway
from twin.sim.mailrecord import (
    GREYLIST,
    JOB_COLUMNS,
    SMTP,
    STATIONS,
    MessageRecord,
)
from twin.sim.mailsetup import (
    DIALOGUE_COMMANDS,
    EPOCH_S,
    build_stages,
    play_dialogue,
    submission_host,
)
from twin.sim.mailstats import Latencies, MailCounters, utilisation
from twin.sim.recorder import NullWriter, TableWriter, schema_with
from twin.sim.stats import BatchClock
from twin.sim.streams import Streams
from twin.sim.writer import FileWriter, PipedTable, start_writer
from twin.stages.fileops import DIRECT
from twin.stages.smtp import SmtpResult
from twin.stages.work import Work


class MailModel:
    """A ``MailScenario`` built in *env*, its stores and tables in *folder*."""

    def __init__(
        self,
        env: simpy.Environment,
        scenario: MailScenario,
        streams: Streams,
        folder: Path,
    ) -> None:
        self.env = env
        self.scenario = scenario
        self.folder = folder
        self.streams = streams
        # An apart front (twin.sim.front) starts first: its child runs on the
        # other core while this process builds the stores.
        self.front_stream = None
        mode = front_mode(scenario)
        if mode == "inline":
            self.front_stream = FrontStream(scenario, streams.seed, child=False)
        elif mode == "child":
            # a child pays for itself on long runs; it takes ~0.5 s to start
            try:
                self.front_stream = FrontStream(scenario, streams.seed)
            except OSError:
                pass  # none can start: the front shares this environment
        self.files = DIRECT
        self._tables: list[TableWriter | PipedTable] = []
        try:
            self._setup()
        except BaseException:
            self.close()  # no child process outlives a model that failed
            raise

    def _setup(self) -> None:
        env, scenario, streams = self.env, self.scenario, self.streams
        folder = self.folder
        # The queue and maildir files are written by a child process on the
        # other core (twin.sim.writer); a user's session waits for its
        # mailbox's writes (Files.ready) before the servers read it.
        self.files = start_writer()
        self.jobs = (
            self.table(folder / "jobs.parquet", self.schema(scenario))
            if scenario.output.jobs_table
            else NullWriter()
        )
        self.stages = build_stages(scenario, streams, folder, self.files)
        self.hosts = {
            name: Host(env, name, load_profile(spec.hardware))
            for name, spec in scenario.hosts.items()
        }
        pipeline = scenario.pipeline
        self.mx_host = pipeline.smtp.on
        self.box_host = pipeline.deliver.on
        self.submit_host = submission_host(scenario)
        self.directory_host = scenario.directory.on
        self.queue_array = {
            name: self._array(
                name,
                pipeline.smtp.queue_array if name == self.mx_host else None,
                first=True,
            )
            for name in self.stages.queues
        }
        self.box_array = self._array(self.box_host, pipeline.deliver.array, first=False)
        self.smtpd = Servers(env, pipeline.smtp.processes, f"{self.mx_host}.smtpd")
        self.submitd = Servers(
            env, scenario.submission.processes, f"{self.submit_host}.submission"
        )
        self.tls_rng = streams("smtp.tls")
        self.lf_later = pipeline.deliver.format == "maildir"
        """Whether smtpd leaves the LF form of a message that goes as it is
        to the writer (``SmtpServer.transact``'s *crs*): maildir deliveries
        take it so (``twin.stages.maildir.LfMessage``)."""
        self.remote_rng = streams("queue.remote")
        self.counters = MailCounters()
        self.clock = BatchClock(
            scenario.warmup, scenario.duration, scenario.output.batches
        )
        self.latencies = Latencies(self.clock)
        self.live: dict[int, MessageRecord] = {}
        self.in_queue = {name: 0 for name in self.stages.queues}
        self.in_queue_max = dict(self.in_queue)
        self.warm_marks: dict[str, float] = {}
        """Busy area of each monitored resource at the end of the warm-up."""
        self.access = None
        if scenario.access is not None and scenario.access.enabled:
            from twin.sim.access import AccessLoad

            access_host = scenario.access.on or self.box_host
            self.access = AccessLoad(
                env,
                scenario,
                self.stages,
                streams,
                folder,
                access_host,
                self._array(
                    access_host,
                    pipeline.deliver.array if access_host == self.box_host else None,
                    first=False,
                ),
                self._book,
                self.files,
                price=self.hosts[access_host].cpu_seconds,
                model=self,
            )
        self.cpu_seconds: dict[tuple[str, str], float] = {}
        """CPU seconds (full speed) by (host, stage), over the whole run."""
        self.gateway = Gateway(self)
        self.delivery = Delivery(self)
        self.front = None
        self.front_monitors: list[tuple[str, FrontMonitor]] = []
        """Stand-ins for the resources of an apart front."""
        self.front_events = 0
        if self.front_stream is None:
            self.front = Front(
                env,
                scenario,
                streams,
                self.stages.population,
                self.stages.greylist,
                self.hosts,
                self.cpu_seconds,
                self.counters,
                self.live,
                self,
            )
            self.spamd = self.front.spamd
        else:
            grey = pipeline.greylist
            named = [
                (name, resource.capacity)
                for name, resource in self.hosts[grey.on].monitors()
            ]
            named.append((f"{grey.on}.spamd", grey.max_connections))
            self.front_monitors = [
                (name, FrontMonitor(env, self.front_stream, index, name, capacity))
                for index, (name, capacity) in enumerate(named)
            ]
            self.spamd = self.front_monitors[-1][1]

    # -- construction --------------------------------------------------------

    @staticmethod
    def schema(scenario: MailScenario) -> pa.Schema:
        return schema_with(JOB_COLUMNS, list(STATIONS))

    def table(self, path: Path, schema: pa.Schema) -> TableWriter | PipedTable:
        """A table of the run, written by the writer process where there is
        one (``twin.sim.writer.PipedTable``); closed by ``finish``."""
        if isinstance(self.files, FileWriter):
            made = PipedTable(self.files, path, schema)
        else:
            made = TableWriter(path, schema)
        self._tables.append(made)
        return made

    def waited_seconds(self) -> dict[str, float]:
        """Host seconds the simulation waited for each of its child processes
        (the front's next frame, the writer's reports, the session worker's
        outcomes): where a run's wall time went, for its manifest. Never in
        a result: the same run waits differently on another machine."""
        waits = {}
        front = self.front_stream
        if front is not None and front.apart:
            waits["front"] = front.waited_s
        if isinstance(self.files, FileWriter):
            waits["writer"] = self.files.waited_s
        access = self.access
        if access is not None and access.worker is not None:
            waits["session_worker"] = access.worker.waited_s
        return {name: round(seconds, 3) for name, seconds in waits.items()}

    def _close_tables(self) -> None:
        for made in self._tables:
            made.close()

    def _array(self, host: str, name: str | None, *, first: bool) -> str:
        if name is not None:
            return name
        arrays = list(self.hosts[host].arrays)
        return arrays[0] if first else arrays[-1]

    def monitors(self) -> list[tuple[str, object]]:
        found: list[tuple[str, object]] = []
        apart = self.front_monitors[:-1]
        for name, host in self.hosts.items():
            if apart and name == self.scenario.pipeline.greylist.on:
                found.extend(apart)
            else:
                found.extend(host.monitors())
        pools = [
            self.gateway.filters,
            self.spamd,
            self.smtpd,
            self.submitd,
            *self.delivery.pools(),
        ]
        found.extend((pool.name, pool) for pool in pools if pool is not None)
        return found

    def start(self) -> None:
        if self.front is not None:
            self.front.start()
        else:
            self.env.process(self._replay())
        if self.access is not None:
            self.access.start(EPOCH_S)
        self.gateway.start()
        self.env.process(self._mark_warmup())

    def _mark_warmup(self):
        yield self.env.timeout(self.scenario.warmup)
        for name, resource in self.monitors():
            resource.sync()
            self.warm_marks[name] = resource.busy_area

    def _replay(self):
        """Start the rest of each message the apart front hands over, at the
        instant it does; append the rows of those that ended in the front."""
        env = self.env
        live = self.live
        access = self.access
        entering = (access.entering if access is not None
                    and access.worker is not None else None)
        for when, kind, payload in self.front_stream:
            if when > env.now:
                yield env.timeout(when - env.now)
            if kind == IN:
                values, attempts, times, content, ahead = payload
                spec = unpack_spec(values)
                if entering is not None:
                    entering(spec)
                record = MessageRecord(spec)
                record.attempts = attempts
                record.times[4 * GREYLIST : 4 * GREYLIST + 4] = times
                live[spec.msg_id] = record
                env.process(self._after_greylist(record, content, ahead))
            elif kind == OUT:
                values, content, ahead = payload
                spec = unpack_spec(values)
                if entering is not None:
                    entering(spec)
                record = MessageRecord(spec)
                live[spec.msg_id] = record
                env.process(self._outbound(record, content, ahead))
            else:
                self.jobs.append(payload)

    # -- what the front hands over (its sink, when it shares the env) --------

    def handover(self, record: MessageRecord, content: Content) -> None:
        self.env.process(self._after_greylist(record, content))

    def submit(self, record: MessageRecord, content: Content) -> None:
        self.env.process(self._outbound(record, content))

    def finished(self, record: MessageRecord) -> None:
        self.jobs.append(record.row())

    # -- the life of a message -----------------------------------------------

    def _finish(self, record: MessageRecord, outcome: str) -> None:
        record.outcome = outcome
        record.departure = self.env.now
        del self.live[record.spec.msg_id]
        self.jobs.append(record.row())
        if self.access is not None and self.access.worker is not None:
            self.access.leaving(record.spec.msg_id)

    def _after_greylist(self, record: MessageRecord, content: Content,
                        ahead: tuple | None = None):
        """An inbound message spamd let through (or no greylist): smtpd, the
        content filters, delivery. *ahead*: smtpd's side of the dialogue as
        the front played it (``twin.sim.front.Dialogues``), or None."""
        counters = self.counters
        result = yield from self._receive(record, content, inbound=True,
                                          ahead=ahead)
        if result is None:
            counters.rejected += 1
            self._finish(record, "rejected")
            return
        counters.inbound_accepted += 1
        if record.spec.is_spam:
            counters.inbound_spam_accepted += 1
        else:
            counters.inbound_ham_accepted += 1
        data = result.message
        if self.gateway.filter_host is not None:
            data = yield from self.gateway.content_filter(record, result)
            if data is None:
                return
        yield from self.delivery.after_acceptance(record, result, self.mx_host, data)

    def _outbound(self, record: MessageRecord, content: Content,
                  ahead: tuple | None = None):
        record.attempts = 1
        self.counters.attempts += 1
        result = yield from self._receive(record, content, inbound=False,
                                          ahead=ahead)
        if result is None:
            self.counters.rejected += 1
            self._finish(record, "rejected")
            return
        self.counters.outbound_accepted += 1
        yield from self.delivery.after_acceptance(record, result, self.submit_host)

    def _receive(self, record: MessageRecord, content: Content, *, inbound: bool,
                 ahead: tuple | None = None):
        """An SMTP dialogue with the client; the accepted result, or None.
        *ahead*: the front's play of smtpd's side (``Dialogues``), taken
        where it stands for this one (same second, same TLS choice)."""
        env = self.env
        spec = record.spec
        scenario = self.scenario
        if inbound:
            pool, server, host_name = self.smtpd, self.stages.mx, self.mx_host
            side = scenario.pipeline.smtp
            tls = side.tls and self.tls_rng.random() < side.tls_share
        else:
            pool, server = self.submitd, self.stages.submission
            host_name = self.submit_host
            side = scenario.submission
            tls = side.tls and spec.offsite
        queued = env.now
        grant = pool.acquire()
        if grant is not None:
            yield grant
        start = env.now
        if inbound and self.stages.spf is not None:
            refused = yield from self.gateway.spf(spec, host_name)
            if refused:
                # smtpd answers MAIL FROM with 550 and the client leaves
                yield env.timeout(side.client_rtt * 3)
                pool.release()
                record.visit(SMTP, queued, start, env.now)
                return None
        message, image, virus, as_is, crs = content
        record.image = image
        record.virus = virus
        if ahead is not None and ahead[1] == tls and ahead[0] == int(env.now):
            result: SmtpResult = rebuilt(ahead, message)
            record.parsed = ahead[5]
        else:
            if as_is and crs is None and self.lf_later:
                crs = message.count(b"\r")  # (half the time of the LF copy)
            result = play_dialogue(server, spec, message, env.now, tls=tls,
                                   as_is=as_is, crs=crs if self.lf_later else None)
        self._count_dialogue(result)
        round_trips = DIALOGUE_COMMANDS + len(spec.recipients) + (3 if tls else 0)
        talk = side.client_rtt * round_trips + result.error_sleep_s
        if result.data_reply is not None:
            talk += len(message) / side.client_bandwidth
        yield env.timeout(talk)
        work = result.work
        if result.directory_work.cpu:
            # the lookups run in the directory (slapd, or getpwnam in smtpd)
            end = self._book(
                "directory",
                self.directory_host,
                result.directory_work,
                self._array(self.directory_host, None, first=True),
            )
            if end > env.now:
                yield env.timeout(end - env.now)
            work = (result.session_work if result.session_work is not None
                    else work - result.directory_work)
        accepted = result.data_reply is not None and result.data_reply.startswith("250")
        if accepted:
            # cleanup writes the queue file before smtpd answers 250: one step
            entry = self.stages.queues[host_name].enqueue(
                result.queue_id,
                result.message,
                env.now,
                spec.sender,
                tuple(result.accepted_recipients),
            )
            self._queued(host_name, +1)
            # counted once its queue file exists, even if the run ends before
            # smtpd's 250 reaches the client: messages.lost stays exact
            self.counters.accepted += 1
            record.accepted = len(result.accepted_recipients)
            work = work + entry.work
        # (_run inlined: a generator less on every message)
        end = self._book("smtp", host_name, work, self.queue_array[host_name])
        if end > env.now:
            yield env.timeout(end - env.now)
        pool.release()
        record.visit(SMTP, queued, start, env.now)
        return result if accepted else None

    def _count_dialogue(self, result: SmtpResult) -> None:
        counters = self.counters
        counters.relay_denied += result.relay_denied
        counters.unknown_users += result.unknown_users
        outcome = result.auth.name
        if outcome == "SUCCEEDED":
            counters.auth_succeeded += 1
        elif outcome == "FAILED":
            counters.auth_failed += 1

    def _queued(self, host: str, change: int) -> None:
        count = self.in_queue[host] + change
        self.in_queue[host] = count
        if count > self.in_queue_max[host]:
            self.in_queue_max[host] = count

    def _run(self, stage: str, host: str, work: Work, array: str | None = None):
        """Spend *work* of *stage* on *host*, counting its CPU seconds."""
        target = self.hosts[host]
        key = (host, stage)
        cpu_s = target.cpu_seconds(work)
        self.cpu_seconds[key] = self.cpu_seconds.get(key, 0.0) + cpu_s
        # Host.execute inlined: one generator frame less on every step
        env = self.env
        end = target.complete_at(work, array, cpu_s)
        if end > env.now:
            yield env.timeout(end - env.now)

    _book = book

    def close(self) -> None:
        """Finish the file operations still queued (after a failure too)."""
        if self.front_stream is not None:
            self.front_stream.close()
        access = getattr(self, "access", None)
        if access is not None:
            access.close()
        if self.files is not DIRECT:
            try:
                self._close_tables()  # what they hold stays a readable table
                self.files.flush()
            except TwinError:
                pass  # the writer process failed: the run's error says why
            self.files.abandon()
        else:
            self._close_tables()

    def _front_end(self) -> dict | None:
        """What an apart front sent at its end, its counters and CPU seconds
        added to this model's; None when the front shares the environment."""
        if self.front_stream is None:
            return None
        end = self.front_stream.final()
        counters = self.counters
        for name, value in end["counters"].items():
            setattr(counters, name, getattr(counters, name) + value)
        for key, seconds in end["cpu_seconds"].items():
            self.cpu_seconds[key] = self.cpu_seconds.get(key, 0.0) + seconds
        self.front_events = end["events"]
        return end

    def queued_on_disk(self) -> int:
        """Distinct queue ids with a queue file on any host, read from disk
        (after the tables, the last rows in, and the files are all written)."""
        self._close_tables()
        self.files.close()
        ids: set[str] = set()
        for queue in self.stages.queues.values():
            for folder in ("incoming", "active", "deferred"):
                path = queue.root / folder
                if path.is_dir():
                    ids.update(entry.name for entry in os.scandir(path))
        return len(ids)

    def finish(self) -> dict[str, float]:
        counters = self.counters
        rows = {}
        for msg_id, record in self.live.items():
            record.departure = math.nan
            rows[msg_id] = record.row()
        front = self._front_end()
        if front is not None:
            rows.update(front["live_rows"])
        for msg_id in sorted(rows):
            self.jobs.append(rows[msg_id])
        summary = counters.metrics()
        queued = self.queued_on_disk()  # (every file written by then)
        if self.access is not None:
            self.access.settle()
        lost = (
            counters.accepted
            - counters.delivered
            - counters.bounced
            - counters.virus_blocked
            - queued
        )
        summary["messages.queued"] = float(queued)
        summary["messages.in_progress"] = float(len(rows))
        summary["messages.lost"] = float(lost)
        summary.update(self.latencies.metrics("latency.delivery"))
        span = self.scenario.duration - self.scenario.warmup
        monitors = self.monitors()
        summary.update(utilisation(self.warm_marks, monitors, span))
        for name, resource in monitors:
            most = getattr(resource, "queue_max", None)
            if most is not None:
                summary[f"queue.{name}.max"] = float(most)
        for host, most in self.in_queue_max.items():
            summary[f"queue.{host}.mailq.max"] = float(most)
        if self.access is not None:
            summary.update(self.access.metrics())
        summary.update(self.gateway.metrics())
        for (host_name, stage), seconds in sorted(self.cpu_seconds.items()):
            summary[f"cpu.{host_name}.{stage}.seconds"] = seconds
        for name, host in self.hosts.items():
            cache = host.page_cache
            summary[f"cache.{name}.hit_rate"] = float(cache.read_hit_rate)
        greylist = self.stages.greylist.dump() if self.stages.greylist else None
        if front is not None:
            summary[f"cache.{self.scenario.pipeline.greylist.on}.hit_rate"] = front[
                "hit_rate"
            ]
            greylist = front["greylist"]
        if greylist is not None:
            (self.folder / "greylist").mkdir(exist_ok=True)
            (self.folder / "greylist" / "spamdb.txt").write_text(greylist)
        assert lost == 0, f"messages not conserved: {lost} accepted messages lost"
        return summary
