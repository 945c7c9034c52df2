"""Local delivery to mbox spool files, as Postfix local(8) does it, on real files.

Twins an mbox append (FACTS.md "Mail stores and access"; Postfix
``src/global/mail_copy.c``): the spool file is ``root/<user>`` (as
``/var/mail/<user>``). Under a dotlock ``root/<user>.lock`` (created
exclusively, removed afterwards) and an fcntl lock on the open file, one
append writes::

    From <sender>  <asctime date>       (two spaces, as mail_copy.c writes it)
    <message, LF line ends, From_-quoted>
    <blank line>

The date is the simulated ``now`` plus ``epoch_offset_s``, in asctime format,
UTC (Postfix uses local time). A null sender is written ``MAILER-DAEMON``.

Quoting is mboxrd: a line matching ``>*From `` gets one more ``>``, so
``From `` becomes ``>From `` and ``>From `` becomes ``>>From ``; a reader
removes one ``>`` from such lines and gets the message back byte for byte.
(Postfix itself quotes only ``From `` lines, mboxo, which is not reversible.)
The blank line is always added, even after a message that ends in one
(Postfix skips it then; readers such as Python's ``mailbox.mbox`` drop exactly
one blank line before the next ``From ``). Line ends are LF, as in
``twin.stages.maildir.lf_message``. Postfix's added Return-Path and
Delivered-To headers are not written. If the write fails, the file is cut back
to its size before the append, as mail_copy.c does.

Counts per delivery: one lock (fcntl), the dotlock as one file created and one
deleted, one more file created when the spool file is new, one write of the
appended bytes (key ``<user>``, relative to the store root), one fsync
(counted whether or not ``host_fsync`` really calls ``os.fsync``); CPU units
``deliver.message``, ``deliver.byte`` (bytes appended) and ``deliver.mbox_line``
(message lines checked for quoting). The file is never reread: its size before
the append comes from ``fstat`` on the open file.

Scenario keys (via ``MboxSettings``): epoch, host_fsync.

Raises ValueError for a bad user or sender, or negative ``now``; RuntimeError
when the dotlock already exists (a stale lock: deliveries here do not overlap).
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from twin.stages.maildir import (
    SIMULATION_EPOCH_S,
    DeliveryDecision,
    DeliveryResult,
    LfMessage,
    lf_message,
)
from twin.stages.work import Work

CPU_UNITS: dict[str, str] = {
    "deliver.message": "a message delivered by local(8): lookup, open, close",
    "deliver.byte": "a byte appended to a mailbox (with line-end conversion)",
    "deliver.mbox_line": "a message line checked for From_ quoting",
}

# Spool names as login names; '<user>.lock' is the dotlock, so no '.lock' users.
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
_SENDER = re.compile(r"\S{1,512}")
# Quoting: a leading literal newline lets re scan fast, a literal replacement
# keeps re.sub in C; the first line is checked on its own.
_FROM_LINE = re.compile(rb"\n(?=>*From )")
_QUOTED_LINE = re.compile(rb"\n>(?=>*From )")
_FIRST_FROM = re.compile(rb">*From ")
_FIRST_QUOTED = re.compile(rb">+From ")

NULL_SENDER = "MAILER-DAEMON"  # mail_copy.c: MAIL_ADDR_MAIL_DAEMON
DOTLOCK_SUFFIX = ".lock"


def mbox_path(root: Path, user: str) -> Path:
    """The spool file of ``user`` under ``root``."""
    return Path(root) / user


def unquote_mboxrd(body: bytes) -> bytes:
    """Undo the mboxrd quoting: one ``>`` less on each ``>+From `` line."""
    body = _QUOTED_LINE.sub(b"\n", body)
    return body[1:] if _FIRST_QUOTED.match(body) else body


@dataclass(frozen=True, slots=True)
class MboxSettings:
    """Settings of mbox delivery on one host."""

    epoch_offset_s: int = SIMULATION_EPOCH_S
    host_fsync: bool = False  # really call os.fsync; the Work counts it anyway

    def __post_init__(self) -> None:
        if self.epoch_offset_s < 0:
            raise ValueError(f"epoch_offset_s={self.epoch_offset_s!r} must be >= 0")


class MboxStore:
    """mbox spool files of many users under ``root``; no file open between calls."""

    def __init__(self, root: Path, settings: MboxSettings) -> None:
        self.root = Path(root)
        self.settings = settings
        os.makedirs(self.root, exist_ok=True)
        self._paths: dict[str, str] = {}  # user -> spool file path, once validated

    def deliver(
        self, user: str, message: bytes | LfMessage, now: float, sender: str = ""
    ) -> DeliveryResult:
        """Append ``message`` to ``user``'s spool file under both locks."""
        if now < 0:
            raise ValueError(f"now={now!r} must be >= 0 simulated seconds")
        if sender and _SENDER.fullmatch(sender) is None:
            raise ValueError(f"sender={sender!r} must be an address without spaces")
        path = self._paths.get(user)
        if path is None:
            path = self._path(user)
        if type(message) is LfMessage:
            message = bytes(message)
        body = lf_message(message)
        lines = body.count(b"\n")
        if b"From " in body:
            body = _FROM_LINE.sub(b"\n>", body)
            if _FIRST_FROM.match(body):
                body = b">" + body
        stamp = time.asctime(time.gmtime(self.settings.epoch_offset_s + int(now)))
        head = f"From {sender or NULL_SENDER}  {stamp}\n".encode()
        appended = len(head) + len(body) + 1
        created = self._append(path, head, body)
        work = Work(
            cpu={
                "deliver.message": 1,
                "deliver.byte": appended,
                "deliver.mbox_line": lines,
            },
            writes=((user, appended),),
            fsyncs=1,
            files_created=1 + created,
            files_deleted=1,
            locks=1,
        )
        return DeliveryResult(
            DeliveryDecision.DELIVERED,
            f"appended {appended} bytes to mbox {user}",
            user,
            appended,
            work,
        )

    def mailbox_size_bytes(self, user: str) -> int:
        """The size of ``user``'s spool file now (0 when there is none)."""
        try:
            return os.stat(mbox_path(self.root, user)).st_size
        except FileNotFoundError:
            return 0

    def _append(self, path: str, head: bytes, body: bytes) -> int:
        """Append under dotlock + fcntl lock; 1 if the spool file was created."""
        dotlock = path + DOTLOCK_SUFFIX
        try:
            os.close(os.open(dotlock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            raise RuntimeError(
                f"dotlock {dotlock} exists: a stale lock (deliveries do not overlap)"
            ) from None
        created = 0
        try:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            except FileNotFoundError:
                fd = os.open(
                    path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600
                )
                created = 1
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX)
                size_before = os.fstat(fd).st_size
                try:
                    view = memoryview(b"".join((head, body, b"\n")))
                    while view:
                        view = view[os.write(fd, view) :]
                    if self.settings.host_fsync:
                        os.fsync(fd)
                except OSError:
                    os.ftruncate(fd, size_before)  # mail_copy.c: undo a partial copy
                    raise
            finally:
                os.close(fd)  # also releases the fcntl lock
        finally:
            os.unlink(dotlock)
        return created

    def _path(self, user: str) -> str:
        if _USER.fullmatch(user) is None or user.endswith(DOTLOCK_SUFFIX):
            raise ValueError(
                f"user={user!r} must be 1-64 of letters, digits, '._-', "
                f"not starting with '.' or '-' nor ending with {DOTLOCK_SUFFIX!r}"
            )
        path = str(mbox_path(self.root, user))
        self._paths[user] = path
        return path
