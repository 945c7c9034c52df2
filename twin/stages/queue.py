"""The Postfix queue manager: queue files, retry backoff and expiry bounces.

Twins Postfix ``cleanup`` + ``qmgr`` (``src/qmgr/qmgr_active.c``) on a real
directory: a message accepted by the SMTP stage is written once to
``incoming/<queue id>``, flushed, and renamed into ``active/`` (cleanup writes,
qmgr moves); a delivered message is unlinked; a failed attempt moves the file to
``deferred/`` with its mtime set to the next attempt; a message whose time in
the queue reached ``maximal_queue_lifetime`` is bounced (a short RFC 3464
notice is composed from the queue file) and removed. Postfix hashes
``deferred/`` into subdirectories; this twin keeps each queue flat.

Decides: the next attempt time of a deferred message and whether it expired.

Retry rule (FACTS.md "MTA retries"), ``BackoffRule.QUEUE_AGE`` (the default) is
Postfix's own, ``qmgr_active_done_3_generic`` in qmgr_active.c: after a failed
attempt the file's time stamp moves ``delay`` into the future, where ``delay``
is the message's time in the queue (``now - enqueued_at``) clamped to
``[minimal_backoff_time, maximal_backoff_time]``; as each retry happens about
``delay`` later, the interval roughly doubles per failure. The alternative
``BackoffRule.DOUBLING`` uses ``minimal_backoff_time * 2**(attempts - 1)``
clamped the same way. Either way the deferred queue is scanned every
``queue_run_delay`` (scans at simulated times 0, d, 2d, ...: qmgr starts with
the run), and a file is picked up by the first scan at or after its time stamp::

    next_attempt_at = ceil((now + delay) / queue_run_delay) * queue_run_delay

A message expires when ``now >= enqueued_at + maximal_queue_lifetime`` at the
end of a failed attempt (the same test as qmgr_active.c); the caller then calls
``bounce`` instead of ``deferred``.

Counts: files created, renamed and deleted, bytes written (one write of the
envelope and message, key ``queue/<queue id>``), fsyncs (counted whether or not
``host_fsync`` really calls ``os.fsync``), bytes read by the bounce, and CPU
units ``queue.*`` (``CPU_UNITS``). The bounce message is returned as bytes; a
caller that sends it enqueues it as a new message (as Postfix's bounce daemon
hands it to cleanup), so it is counted as accepted like any other.

Scenario keys (via ``QueueSettings``): queue_run_delay, minimal_backoff_time,
maximal_backoff_time, maximal_queue_lifetime, backoff rule, host name, epoch.

Raises ValueError for a bad setting, an unsafe or duplicate queue id, an
unknown queue id, ``deferred`` on an expired message and ``bounce`` on one not
yet expired.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from email.utils import formatdate
from enum import Enum
from pathlib import Path
from types import MappingProxyType

from twin.stages.fileops import DIRECT, Files
from twin.stages.work import Work

CPU_UNITS: dict[str, str] = {
    "queue.message": "a message accepted into the queue (cleanup + qmgr bookkeeping)",
    "queue.byte": "a byte copied into a queue file, or read back by the bounce daemon",
    "queue.update": "a queue state change after a delivery attempt",
    "queue.bounce": "a delivery status notification composed",
}

# Simulated time 0 is Monday 5 March 2007 00:00:00 UTC: assumption, a week in
# the era of the current server (DESIGN.md); only dates in generated mail use it.
SIMULATION_EPOCH_S = 1173052800

DAY_S = 86400.0

_UPDATE_CPU = MappingProxyType({"queue.update": 1})

_QUEUE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")

INCOMING = "incoming"
ACTIVE = "active"
DEFERRED = "deferred"


class BackoffRule(Enum):
    """How the delay before the next attempt is chosen (see module docstring)."""

    QUEUE_AGE = "queue_age"  # Postfix 2.x qmgr_active.c: clamp(time in queue)
    DOUBLING = "doubling"  # clamp(minimal_backoff * 2**(attempts - 1))


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """Postfix queue parameters; defaults are Postfix 2.4 and later.

    FACTS.md "MTA retries": queue_run_delay 300 s, minimal_backoff_time 300 s,
    maximal_backoff_time 4000 s (before 2.4: 1000/1000/4000, see ``preset``),
    maximal_queue_lifetime 5 d. ``host_fsync`` says whether ``os.fsync`` is
    really called on the host; the Work counts the fsync either way.
    """

    queue_run_delay_s: float = 300.0
    minimal_backoff_time_s: float = 300.0
    maximal_backoff_time_s: float = 4000.0
    maximal_queue_lifetime_s: float = 5 * DAY_S
    backoff_rule: BackoffRule = BackoffRule.QUEUE_AGE
    hostname: str = "mail.example.edu"  # assumption: the twinned host's name
    epoch_offset_s: int = SIMULATION_EPOCH_S
    host_fsync: bool = False

    def __post_init__(self) -> None:
        for name in (
            "queue_run_delay_s",
            "minimal_backoff_time_s",
            "maximal_backoff_time_s",
            "maximal_queue_lifetime_s",
        ):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name}={value!r} must be > 0 seconds")
        if self.maximal_backoff_time_s < self.minimal_backoff_time_s:
            raise ValueError(
                f"maximal_backoff_time_s={self.maximal_backoff_time_s!r} must be >= "
                f"minimal_backoff_time_s={self.minimal_backoff_time_s!r}"
            )
        if not isinstance(self.backoff_rule, BackoffRule):
            raise ValueError(
                f"backoff_rule={self.backoff_rule!r} must be one of "
                f"{[rule.value for rule in BackoffRule]}"
            )
        if not self.hostname or any(c in self.hostname for c in " \t\r\n/"):
            raise ValueError(f"hostname={self.hostname!r} must be a non-empty name")

    @classmethod
    def preset(cls, version: str, **overrides: object) -> QueueSettings:
        """Settings of a Postfix release: ``"2.4"`` (and later) or ``"pre-2.4"``."""
        if version == "2.4":
            timers = {}
        elif version == "pre-2.4":
            # FACTS.md "MTA retries": Postfix before 2.4 used 1000 s / 1000 s / 4000 s.
            timers = {
                "queue_run_delay_s": 1000.0,
                "minimal_backoff_time_s": 1000.0,
                "maximal_backoff_time_s": 4000.0,
            }
        else:
            raise ValueError(f"version={version!r} must be '2.4' or 'pre-2.4'")
        return cls(**{**timers, **overrides})  # type: ignore[arg-type]


class QueueDecision(Enum):
    QUEUED = "queued"
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    BOUNCED = "bounced"


@dataclass(frozen=True, slots=True)
class QueueResult:
    """A message written to the queue (``enqueue``)."""

    decision: QueueDecision
    reason: str
    queue_id: str
    size_bytes: int  # queue file size: envelope records + message
    work: Work


@dataclass(frozen=True, slots=True)
class Deferral:
    """A failed attempt: the message waits in ``deferred/``."""

    decision: QueueDecision
    reason: str
    next_attempt_at: float  # simulated seconds, on a deferred-queue scan
    delay_s: float  # the backoff before alignment to the scan
    work: Work


@dataclass(frozen=True, slots=True)
class Bounce:
    """An expired message, removed; ``message`` is the notice to send."""

    decision: QueueDecision
    reason: str
    message: bytes
    recipient: str  # the envelope sender, or "postmaster" for a null sender
    work: Work


class _Entry:
    __slots__ = ("enqueued_at", "sender", "recipients", "size", "directory")

    def __init__(
        self,
        enqueued_at: float,
        sender: str,
        recipients: tuple[str, ...],
        size: int,
    ) -> None:
        self.enqueued_at = enqueued_at
        self.sender = sender
        self.recipients = recipients
        self.size = size
        self.directory = ACTIVE


class QueueManager:
    """The queue directories under ``root`` and the messages in them.

    ``root`` gets ``incoming/``, ``active/`` and ``deferred/`` (created here, as
    ``postfix check`` does at installation: not counted as work). The manager
    keeps one small record per queued message in memory, so no call lists a
    directory.
    """

    def __init__(
        self, root: Path, settings: QueueSettings, files: Files = DIRECT
    ) -> None:
        self.root = Path(root)
        self.settings = settings
        self.files = files
        """Who does the file operations (``twin.stages.fileops``): at once."""
        self._dirs = {
            name: str(self.root / name) for name in (INCOMING, ACTIVE, DEFERRED)
        }
        for directory in self._dirs.values():
            os.makedirs(directory, exist_ok=True)
        self._entries: dict[str, _Entry] = {}
        self.accepted_count = 0
        self.delivered_count = 0
        self.bounced_count = 0

    # -- verbs ---------------------------------------------------------------

    def enqueue(
        self,
        queue_id: str,
        message: bytes,
        now: float,
        sender: str = "",
        recipients: tuple[str, ...] = (),
    ) -> QueueResult:
        """Write ``message`` as queue file ``queue_id`` and make it active."""
        if queue_id in self._entries:
            raise ValueError(f"queue id {queue_id!r} is already queued")
        if _QUEUE_ID.fullmatch(queue_id) is None:
            raise ValueError(
                f"queue id {queue_id!r} must be 1-64 letters, digits, '_' or '-'"
            )
        for address in (sender, *recipients):
            if "\n" in address or "\r" in address:
                raise ValueError(f"address {address!r} must not contain a newline")
        # Envelope records in the spirit of Postfix's queue file (time, sender,
        # recipients, then the message content); one write of both parts.
        arrival = self.settings.epoch_offset_s + int(now)
        rcpt_records = "".join(f"R {rcpt}\n" for rcpt in recipients)
        envelope = f"T {arrival}\nS {sender}\n{rcpt_records}M\n"
        head = envelope.encode("utf-8", "surrogateescape")
        incoming = f"{self._dirs[INCOMING]}/{queue_id}"
        files = self.files
        # (transient: most queue files are removed within a second)
        files.create(
            incoming, (head, message), self.settings.host_fsync, transient=True
        )
        # (new: a queue id names one file at a time, in one queue folder)
        files.rename(incoming, f"{self._dirs[ACTIVE]}/{queue_id}", new=True)
        size = len(head) + len(message)
        self._entries[queue_id] = _Entry(now, sender, tuple(recipients), size)
        self.accepted_count += 1
        work = Work(
            cpu={"queue.message": 1, "queue.byte": size},
            writes=((f"queue/{queue_id}", size),),
            fsyncs=1,
            files_created=1,
            files_renamed=1,
        )
        return QueueResult(
            QueueDecision.QUEUED,
            f"queued {queue_id}: {size} bytes in active",
            queue_id,
            size,
            work,
        )

    def delivered(self, queue_id: str, now: float) -> Work:
        """All recipients done: remove the queue file."""
        entry = self._entry(queue_id)
        renames = self._to_active(queue_id, entry)
        self.files.unlink(f"{self._dirs[ACTIVE]}/{queue_id}")
        del self._entries[queue_id]
        self.delivered_count += 1
        return Work(cpu=_UPDATE_CPU, files_renamed=renames, files_deleted=1)

    def deferred(self, queue_id: str, now: float, attempts: int) -> Deferral:
        """A failed attempt (``attempts`` failures so far, >= 1): wait in deferred."""
        entry = self._entry(queue_id)
        if attempts < 1:
            raise ValueError(f"attempts={attempts!r} must be >= 1")
        if self.expired(queue_id, now):
            raise ValueError(
                f"message {queue_id} expired at "
                f"{entry.enqueued_at + self.settings.maximal_queue_lifetime_s} s "
                f"(now {now} s): bounce it instead of deferring"
            )
        renames = self._to_active(queue_id, entry)
        delay = self.backoff_s(queue_id, now, attempts)
        next_attempt_at = self.next_queue_run(now + delay)
        deferred = f"{self._dirs[DEFERRED]}/{queue_id}"
        self.files.rename(f"{self._dirs[ACTIVE]}/{queue_id}", deferred, new=True)
        # qmgr_active_defer sets the file's time stamp to the next attempt.
        self.files.set_mtime(deferred, self.settings.epoch_offset_s + next_attempt_at)
        entry.directory = DEFERRED
        work = Work(cpu=_UPDATE_CPU, files_renamed=renames + 1)
        return Deferral(
            QueueDecision.DEFERRED,
            f"deferred {queue_id} after {attempts} attempt(s): backoff {delay:g} s, "
            f"next queue run at {next_attempt_at:g} s",
            next_attempt_at,
            delay,
            work,
        )

    def bounce(self, queue_id: str, now: float) -> Bounce:
        """Return an expired message to its sender and remove it from the queue."""
        entry = self._entry(queue_id)
        if not self.expired(queue_id, now):
            raise ValueError(
                f"message {queue_id} has been queued {now - entry.enqueued_at:g} s, "
                f"less than maximal_queue_lifetime_s="
                f"{self.settings.maximal_queue_lifetime_s:g}: defer it instead"
            )
        renames = self._to_active(queue_id, entry)
        path = f"{self._dirs[ACTIVE]}/{queue_id}"
        self.files.sync()  # the file and its move back to active are done
        with open(path, "rb") as queue_file:
            content = queue_file.read()
        self.files.unlink(path)
        del self._entries[queue_id]
        self.bounced_count += 1
        recipient = entry.sender or "postmaster"
        notice = self._compose_bounce(queue_id, entry, now, recipient, content)
        work = Work(
            cpu={"queue.update": 1, "queue.bounce": 1, "queue.byte": len(content)},
            reads=((f"queue/{queue_id}", len(content)),),
            files_renamed=renames,
            files_deleted=1,
        )
        return Bounce(
            QueueDecision.BOUNCED,
            f"bounced {queue_id} to {recipient}: queued "
            f"{(now - entry.enqueued_at) / DAY_S:.2f} days",
            notice,
            recipient,
            work,
        )

    # -- questions -----------------------------------------------------------

    def expired(self, queue_id: str, now: float) -> bool:
        """Whether the message's queue lifetime is over (qmgr_active.c test)."""
        entry = self._entry(queue_id)
        return now >= entry.enqueued_at + self.settings.maximal_queue_lifetime_s

    def backoff_s(self, queue_id: str, now: float, attempts: int) -> float:
        """The delay before the next attempt, before alignment to a queue run."""
        settings = self.settings
        if settings.backoff_rule is BackoffRule.QUEUE_AGE:
            delay = now - self._entry(queue_id).enqueued_at
        else:
            delay = settings.minimal_backoff_time_s * 2.0 ** min(attempts - 1, 60)
        return min(
            max(delay, settings.minimal_backoff_time_s), settings.maximal_backoff_time_s
        )

    def next_queue_run(self, at: float) -> float:
        """The first deferred-queue scan at or after simulated time ``at``."""
        run = self.settings.queue_run_delay_s
        return math.ceil(at / run) * run

    def pending(self) -> int:
        """Messages still queued (active or deferred)."""
        return len(self._entries)

    def location(self, queue_id: str) -> Path:
        """Where the queue file of ``queue_id`` is now (once ``files`` synced)."""
        return Path(self._dirs[self._entry(queue_id).directory]) / queue_id

    # -- helpers -------------------------------------------------------------

    def _entry(self, queue_id: str) -> _Entry:
        try:
            return self._entries[queue_id]
        except KeyError:
            raise ValueError(f"queue id {queue_id!r} is not queued") from None

    def _to_active(self, queue_id: str, entry: _Entry) -> int:
        """Move a deferred file back to active for its attempt; renames done."""
        if entry.directory == ACTIVE:
            return 0
        self.files.rename(
            f"{self._dirs[DEFERRED]}/{queue_id}",
            f"{self._dirs[ACTIVE]}/{queue_id}",
            new=True,
        )
        entry.directory = ACTIVE
        return 1

    def _compose_bounce(
        self,
        queue_id: str,
        entry: _Entry,
        now: float,
        recipient: str,
        content: bytes,
    ) -> bytes:
        settings = self.settings
        host = settings.hostname
        date = formatdate(settings.epoch_offset_s + int(now), usegmt=True)
        arrival = formatdate(
            settings.epoch_offset_s + int(entry.enqueued_at), usegmt=True
        )
        boundary = f"{queue_id}.{settings.epoch_offset_s + int(now)}/{host}"
        days = (now - entry.enqueued_at) / DAY_S
        per_recipient = "".join(
            f"\nFinal-Recipient: rfc822; {rcpt}\nAction: failed\nStatus: 4.4.7\n"
            f"Diagnostic-Code: X-Postfix; delivery time expired\n"
            for rcpt in entry.recipients
        )
        text = (
            f"From: MAILER-DAEMON@{host} (Mail Delivery System)\n"
            f"To: {recipient}\n"
            "Subject: Undelivered Mail Returned to Sender\n"
            f"Date: {date}\n"
            f"Message-Id: <{queue_id}.{settings.epoch_offset_s + int(now)}@{host}>\n"
            "Auto-Submitted: auto-replied\n"
            "MIME-Version: 1.0\n"
            "Content-Type: multipart/report; report-type=delivery-status;\n"
            f'\tboundary="{boundary}"\n'
            "\n"
            f"--{boundary}\n"
            "Content-Description: Notification\n"
            "Content-Type: text/plain; charset=us-ascii\n"
            "\n"
            f"This is the mail system at host {host}.\n"
            "\n"
            "Your message could not be delivered to one or more recipients.\n"
            f"It was in the queue for {days:.1f} days; it has been returned.\n"
            "\n"
            f"--{boundary}\n"
            "Content-Description: Delivery report\n"
            "Content-Type: message/delivery-status\n"
            "\n"
            f"Reporting-MTA: dns; {host}\n"
            f"X-Postfix-Queue-ID: {queue_id}\n"
            f"Arrival-Date: {arrival}\n"
            f"{per_recipient}"
            "\n"
            f"--{boundary}\n"
            "Content-Description: Undelivered Message Headers\n"
            "Content-Type: text/rfc822-headers\n"
            "\n"
        ).encode("utf-8", "surrogateescape")
        return text + _original_headers(content) + f"\n--{boundary}--\n".encode()


def _original_headers(content: bytes) -> bytes:
    """The header block of the message inside a queue file, LF line ends."""
    start = content.find(b"\nM\n") + 3
    message = content[start:].replace(b"\r\n", b"\n")
    end = message.find(b"\n\n")
    return message if end < 0 else message[: end + 1]

