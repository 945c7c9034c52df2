"""The engine of ``kind: mail``: a week of traffic through the real stages.

Each message of the workload (``twin.traffic.workload``) is a SimPy process:

1. **greylist** (if the pipeline has one): spamd checks the tuple of every
   recipient; a client spamd does not pass is held on one of spamd's
   connections while it is stuttered, then deferred (it retries on its own
   schedule, or gives up) or refused;
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

from twin.hardware.host import Host
from twin.hardware.profile import load_profile
from twin.resources import Servers
from twin.schema.mail import MailScenario
from twin.sim.delivery import DIALOGUE_COMMANDS, Delivery
from twin.sim.gateway import Gateway
from twin.sim.mailrecord import (
    GREYLIST,
    JOB_COLUMNS,
    SMTP,
    STATIONS,
    MessageRecord,
)
from twin.sim.mailsetup import (
    EPOCH_S,
    build_stages,
    submission_host,
    traffic_settings,
)
from twin.sim.mailstats import Latencies, MailCounters, utilisation
from twin.sim.recorder import NullWriter, TableWriter, schema_with
from twin.sim.stats import BatchClock
from twin.sim.streams import Streams
from twin.sim.writer import start_writer
from twin.stages.fileops import DIRECT
from twin.stages.greylist import GreylistDecision
from twin.stages.smtp import SmtpResult
from twin.stages.work import Work
from twin.traffic.corpus import Corpus
from twin.traffic.infect import infect
from twin.traffic.message import render
from twin.traffic.workload import generate


class MailModel:
    """A ``MailScenario`` built in *env*, its stores and tables in *folder*."""

    def __init__(
        self,
        env: simpy.Environment,
        scenario: MailScenario,
        streams: Streams,
        jobs: TableWriter | NullWriter,
        folder: Path,
    ) -> None:
        self.env = env
        self.scenario = scenario
        self.jobs = jobs
        self.folder = folder
        self.streams = streams
        # The queue and maildir files are written by a child process on the
        # other core (twin.sim.writer); a user's session waits for its
        # mailbox's writes (Files.ready) before the servers read it.
        self.files = start_writer()
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
        grey = pipeline.greylist
        self.spamd = (
            Servers(env, grey.max_connections, f"{grey.on}.spamd")
            if self.stages.greylist is not None
            else None
        )
        self.smtpd = Servers(env, pipeline.smtp.processes, f"{self.mx_host}.smtpd")
        self.submitd = Servers(
            env, scenario.submission.processes, f"{self.submit_host}.submission"
        )
        self.render_rng = streams("traffic.render")
        self.corpus = (
            Corpus(scenario.traffic.corpus, scenario.seed)
            if scenario.traffic.corpus
            else None
        )
        self.tls_rng = streams("smtp.tls")
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
            )
        self.cpu_seconds: dict[tuple[str, str], float] = {}
        """CPU seconds (full speed) by (host, stage), over the whole run."""
        self.gateway = Gateway(self)
        self.delivery = Delivery(self)

    # -- construction --------------------------------------------------------

    @staticmethod
    def schema(scenario: MailScenario) -> pa.Schema:
        return schema_with(JOB_COLUMNS, list(STATIONS))

    def _array(self, host: str, name: str | None, *, first: bool) -> str:
        if name is not None:
            return name
        arrays = list(self.hosts[host].arrays)
        return arrays[0] if first else arrays[-1]

    def monitors(self) -> list[tuple[str, object]]:
        found: list[tuple[str, object]] = []
        for host in self.hosts.values():
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
        self.env.process(self._source())
        if self.access is not None:
            self.access.start(EPOCH_S)
        self.gateway.start()
        self.env.process(self._mark_warmup())

    def _mark_warmup(self):
        yield self.env.timeout(self.scenario.warmup)
        for name, resource in self.monitors():
            resource.sync()
            self.warm_marks[name] = resource.busy_area

    def _source(self):
        env = self.env
        specs = generate(
            traffic_settings(self.scenario),
            self.stages.population,
            self.scenario.duration,
            self.streams,
        )
        counters = self.counters
        for spec in specs:
            delay = spec.arrival_s - env.now
            if delay > 0:
                yield env.timeout(delay)
            counters.offered += 1
            if spec.kind == "outbound":
                counters.offered_outbound += 1
            else:
                counters.offered_inbound += 1
                counters.offered_spam += spec.is_spam
            record = MessageRecord(spec)
            self.live[spec.msg_id] = record
            if spec.kind == "outbound":
                env.process(self._outbound(record))
            else:
                env.process(self._inbound(record))

    # -- the life of a message -----------------------------------------------

    def _finish(self, record: MessageRecord, outcome: str) -> None:
        record.outcome = outcome
        record.departure = self.env.now
        del self.live[record.spec.msg_id]
        self.jobs.append(record.row())

    def _inbound(self, record: MessageRecord):
        spec = record.spec
        env = self.env
        counters = self.counters
        while True:
            record.attempts += 1
            counters.attempts += 1
            if self.stages.greylist is not None:
                verdict = yield from self._greylist(record)
                if verdict is GreylistDecision.DEFERRED:
                    again = (
                        spec.retry.next_attempt(record.attempts, env.now)
                        if spec.retry is not None
                        else None
                    )
                    if again is None or again >= self.scenario.duration:
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
            result = yield from self._receive(record, inbound=True)
            if result is None:
                counters.rejected += 1
                self._finish(record, "rejected")
                return
            break
        counters.inbound_accepted += 1
        if spec.is_spam:
            counters.inbound_spam_accepted += 1
        else:
            counters.inbound_ham_accepted += 1
        data = result.message
        if self.gateway.filter_host is not None:
            data = yield from self.gateway.content_filter(record, result)
            if data is None:
                return
        yield from self.delivery.after_acceptance(record, result, self.mx_host, data)

    def _outbound(self, record: MessageRecord):
        record.attempts = 1
        self.counters.attempts += 1
        result = yield from self._receive(record, inbound=False)
        if result is None:
            self.counters.rejected += 1
            self._finish(record, "rejected")
            return
        self.counters.outbound_accepted += 1
        yield from self.delivery.after_acceptance(record, result, self.submit_host)

    def _greylist(self, record: MessageRecord):
        """Run spamd's check; hold a connection while it stutters the client."""
        env = self.env
        spec = record.spec
        grey = self.stages.greylist
        grey_host = self.scenario.pipeline.greylist.on
        queued = env.now
        first = grey.check(
            spec.client_ip, spec.helo, spec.sender, spec.recipients[0], env.now
        )
        work = first.work
        decision = first.decision
        counters = self.counters
        if decision in (GreylistDecision.PASSED, GreylistDecision.WHITELISTED):
            # pf sends a passed client straight to the MTA; spamd holds nothing.
            yield from self._run("greylist", grey_host, work)
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

    def _receive(self, record: MessageRecord, *, inbound: bool):
        """An SMTP dialogue with the client; the accepted result, or None."""
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
        image = inbound and self.gateway.with_image(spec)
        if image:
            message = image
            record.image = True
        elif self.corpus is not None:
            message = self.corpus.message(spec.is_spam, spec.msg_id)
        else:
            message = render(spec, self.stages.population, self.render_rng)
        if inbound and self.gateway.viral(spec):
            message = infect(message)
            record.virus = True
        queue_id = f"M{spec.msg_id:08X}"
        result: SmtpResult = server.transact(
            spec.client_ip,
            spec.helo,
            spec.sender,
            spec.recipients,
            message,
            auth=spec.auth,
            tls=tls,
            now=env.now,
            queue_id=queue_id,
        )
        self._count_dialogue(result)
        round_trips = DIALOGUE_COMMANDS + len(spec.recipients) + (3 if tls else 0)
        talk = side.client_rtt * round_trips + result.error_sleep_s
        if result.data_reply is not None:
            talk += len(message) / side.client_bandwidth
        yield env.timeout(talk)
        work = result.work
        if result.directory_work.cpu:
            # the lookups run in the directory (slapd, or getpwnam in smtpd)
            yield from self._run(
                "directory",
                self.directory_host,
                result.directory_work,
                self._array(self.directory_host, None, first=True),
            )
            work = work - result.directory_work
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
        yield from self._run("smtp", host_name, work, self.queue_array[host_name])
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

    def _book(self, stage: str, host: str, work: Work, array: str | None = None):
        """Book *work* of *stage* on *host* now, counting its CPU; its end time.

        For a step followed by a wait of its own (a stutter, a dialogue): the
        caller folds both into one timeout.
        """
        target = self.hosts[host]
        key = (host, stage)
        cpu_s = target.cpu_seconds(work)
        self.cpu_seconds[key] = self.cpu_seconds.get(key, 0.0) + cpu_s
        return max(target.complete_at(work, array, cpu_s), self.env.now)

    def close(self) -> None:
        """Finish the file operations still queued (after a failure too)."""
        if self.files is not DIRECT:
            self.files.abandon()

    def queued_on_disk(self) -> int:
        """Distinct queue ids with a queue file on any host, read from disk."""
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
        for msg_id in sorted(self.live):
            record = self.live[msg_id]
            record.departure = math.nan
            self.jobs.append(record.row())
        summary = counters.metrics()
        queued = self.queued_on_disk()
        lost = (
            counters.accepted
            - counters.delivered
            - counters.bounced
            - counters.virus_blocked
            - queued
        )
        summary["messages.queued"] = float(queued)
        summary["messages.in_progress"] = float(len(self.live))
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
        if self.stages.greylist is not None:
            (self.folder / "greylist").mkdir(exist_ok=True)
            (self.folder / "greylist" / "spamdb.txt").write_text(
                self.stages.greylist.dump()
            )
        assert lost == 0, f"messages not conserved: {lost} accepted messages lost"
        return summary
