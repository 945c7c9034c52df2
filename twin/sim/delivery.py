"""Delivery in a mail scenario: from the queue to the mailboxes and the Internet.

``Delivery`` takes an accepted message from the host that queued it:

- ``hand_over``: the MX's smtp client passes it to the mailbox host (a second
  queue file there), when the two are different hosts;
- ``deliver_local``: a local delivery agent writes it into each local
  recipient's mailbox (maildir or mbox, real files) on the mailbox array;
- ``deliver_remote``: the smtp client sends users' mail to outside domains,
  with Postfix backoff on temporary failures and a bounce (delivered to a
  local sender) after the maximal queue lifetime.

Pools of agents (``Servers``) bound the concurrency as Postfix's defaults do.
It works on the ``MailModel`` it belongs to.
"""

from __future__ import annotations

from twin.resources import Servers
from twin.sim.mailrecord import DELIVER, RELAY, REMOTE, MessageRecord
from twin.sim.mailsetup import DIALOGUE_COMMANDS, EPOCH_S
from twin.stages.maildir import lf_message
from twin.stages.smtp import RcptStatus, SmtpResult
from twin.stages.work import Work

LOCAL_AGENTS = 20
"""Concurrent local deliveries (Postfix default_destination_concurrency_limit)."""
SMTP_AGENTS = 100
"""Concurrent smtp client processes (Postfix default_process_limit)."""
RELAY_AGENTS = 20
"""Concurrent deliveries from the MX to the mailbox host (one destination:
default_destination_concurrency_limit)."""


def _handover_work(size: int) -> Work:
    """CPU of one side of an SMTP hand-over of *size* bytes between our hosts."""
    return Work(
        cpu={
            "smtp.session": 1,
            "smtp.command": DIALOGUE_COMMANDS + 1,
            "smtp.byte": size,
        }
    )


class Delivery:
    """The delivery agents of *model*."""

    def __init__(self, model) -> None:
        self.model = model
        env = model.env
        self.local = Servers(env, LOCAL_AGENTS, f"{model.box_host}.local")
        self.relay = Servers(env, RELAY_AGENTS, f"{model.mx_host}.relay")
        self.smtp_out = Servers(env, SMTP_AGENTS, f"{model.submit_host}.smtp")

    def pools(self) -> list[Servers]:
        return [self.local, self.relay, self.smtp_out]

    def after_acceptance(
        self,
        record: MessageRecord,
        result: SmtpResult,
        at: str,
        data: bytes | None = None,
    ):
        """Deliver an accepted message locally and remotely; finish its record."""
        local_users = []
        remote = []
        for outcome in result.recipients:
            if outcome.status is RcptStatus.ACCEPTED:
                if outcome.local_user:
                    local_users.append(outcome.local_user)
                else:
                    remote.append(outcome.resolved or outcome.address)
        data = result.message if data is None else data
        queue_id = result.queue_id
        holder = at
        if local_users and at != self.model.box_host:
            yield from self.hand_over(record, queue_id, data, at)
            holder = self.model.box_host
        # every store writes LF line ends: convert once, not per recipient
        # (the Cyrus index measures LF or CRLF bytes alike)
        parsed = None
        if not local_users:
            local_data = data
        elif data is result.message and result.message_lf is not None:
            local_data = result.message_lf  # (the dialogue had it)
            parsed = record.parsed  # (and the front its parse, if it played it)
        else:
            local_data = lf_message(data)
        for user in local_users:
            yield from self.deliver_local(record, user, local_data, parsed)
        bounced = False
        if remote:
            bounced = yield from self.deliver_remote(
                record, queue_id, data, holder, len(remote)
            )
        if not bounced:
            queue = self.model.stages.queues[holder]
            work = queue.delivered(queue_id, self.model.env.now)
            model = self.model
            model._queued(holder, -1)
            # (MailModel._run inlined here and below: a generator less a step)
            end = model._book("queue", holder, work, model.queue_array[holder])
            env = model.env
            if end > env.now:
                yield env.timeout(end - env.now)
            self.model.counters.delivered += 1
            record.latency = self.model.env.now - record.spec.arrival_s
            self.model.latencies.add(record.spec.arrival_s, record.latency)
            self.model._finish(record, "delivered")
        else:
            self.model.counters.bounced += 1
            self.model._finish(record, "bounced")

    def hand_over(self, record: MessageRecord, queue_id: str, data: bytes, source: str):
        """The MX's smtp client passes the message to the mailbox host."""
        env = self.model.env
        queued = env.now
        grant = self.relay.acquire()
        if grant is not None:
            yield grant
        start = env.now
        size = len(data)
        side = _handover_work(size)
        model = self.model
        box = model.box_host
        end = model._book(
            "relay",
            source,
            Work(cpu=side.cpu, net_bytes=size, net_round_trips=DIALOGUE_COMMANDS),
        )
        if end > env.now:
            yield env.timeout(end - env.now)
        end = model._book("smtp", box, side)
        if end > env.now:
            yield env.timeout(end - env.now)
        entry = model.stages.queues[box].enqueue(
            queue_id, data, env.now, record.spec.sender, record.spec.recipients
        )
        model._queued(box, +1)
        end = model._book("queue", box, entry.work, model.queue_array[box])
        if end > env.now:
            yield env.timeout(end - env.now)
        done = model.stages.queues[source].delivered(queue_id, env.now)
        model._queued(source, -1)
        end = model._book("queue", source, done, model.queue_array[source])
        if end > env.now:
            yield env.timeout(end - env.now)
        self.relay.release()
        record.visit(RELAY, queued, start, env.now)

    def deliver_local(self, record: MessageRecord, user: str, data: bytes,
                      parsed: tuple | None = None):
        """Write *data* into *user*'s mailbox (and Cyrus's index, given the
        readers: *parsed*, the parse of *data* where the front made it)."""
        env = self.model.env
        queued = env.now
        grant = self.local.acquire()
        if grant is not None:
            yield grant
        start = env.now
        store = self.model.stages.store
        work = None
        if self.model.scenario.pipeline.deliver.format == "maildir":
            done = store.deliver(user, data, env.now, f"M{record.spec.msg_id}")
            access = self.model.access
            if access is None:
                self.model.files.touch(user)
            else:  # a reader of this mailbox waits for it
                access.delivered(user)
                # Cyrus's lmtpd appends the message to the mailbox's index and
                # cache as it delivers, so readers never rescan the folder
                name = done.key.split("/Maildir/", 1)[1]
                work = done.work + access.index(user, name, data,
                                                EPOCH_S + env.now, parsed)
        else:
            done = store.deliver(user, data, env.now, record.spec.sender)
        model = self.model
        end = model._book("deliver", model.box_host, work or done.work,
                          model.box_array)
        if end > env.now:
            yield env.timeout(end - env.now)
        self.local.release()
        self.model.counters.deliveries_local += 1
        record.visit(DELIVER, queued, start, env.now)

    def deliver_remote(
        self,
        record: MessageRecord,
        queue_id: str,
        data: bytes,
        holder: str,
        destinations: int,
    ):
        """Send to outside domains with Postfix backoff; True when bounced."""
        env = self.model.env
        queue_settings = self.model.scenario.queue
        queue = self.model.stages.queues[holder]
        unreachable = (
            self.model.remote_rng.random() < queue_settings.remote_unreachable_share
        )
        attempts = 0
        size = len(data)
        while True:
            attempts += 1
            queued = env.now
            grant = self.smtp_out.acquire()
            if grant is not None:
                yield grant
            start = env.now
            talk = queue_settings.remote_rtt * (DIALOGUE_COMMANDS + destinations)
            end = self.model._book(
                "relay",
                holder,
                Work(cpu=_handover_work(size).cpu, net_bytes=size, net_round_trips=0),
            )
            wire = size / queue_settings.remote_bandwidth
            yield env.timeout(end - start + talk + wire)
            failed = unreachable or (
                self.model.remote_rng.random() < queue_settings.remote_tempfail_share
            )
            self.smtp_out.release()
            record.visit(REMOTE, queued, start, env.now)
            if not failed:
                self.model.counters.deliveries_remote += destinations
                return False
            self.model.counters.remote_deferred += 1
            if queue.expired(queue_id, env.now):
                bounce = queue.bounce(queue_id, env.now)
                self.model._queued(holder, -1)
                yield from self.model._run(
                    "queue", holder, bounce.work, self.model.queue_array[holder]
                )
                sender = record.spec.sender
                user, _, domain = sender.partition("@")
                if (
                    domain == self.model.scenario.domain
                    and self.model.stages.population.is_user(user)
                ):
                    yield from self.deliver_local(record, user, bounce.message)
                return True
            deferral = queue.deferred(queue_id, env.now, attempts)
            yield from self.model._run(
                "queue", holder, deferral.work, self.model.queue_array[holder]
            )
            yield env.timeout(max(deferral.next_attempt_at - env.now, 0.0))

    # -- the end -------------------------------------------------------------
