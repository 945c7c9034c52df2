"""Local delivery to maildir, as Postfix local(8) does it, on real files.

Twins the maildir protocol of cr.yp.to/proto/maildir.html (FACTS.md "Mail
stores and access") as Postfix's ``src/local/maildir.c`` runs it: write the
message to ``tmp/<name>``, flush it, link it into ``new/<name>`` and unlink the
``tmp/`` name (a move that never overwrites: one directory move, counted as one
rename). No locks. ``<name>`` is ``time.unique.host``: ``time`` is the
simulated ``now`` in whole seconds plus ``epoch_offset_s``, ``unique`` comes
from the caller (it must be unique per host and second, e.g. ``P<pid>Q<n>``),
``host`` is the host name with ``/`` and ``:`` written ``\\057`` and ``\\072``.

Layout (all paths come from ``maildir_path``): ``root/<user>/Maildir/`` with
``tmp``, ``new``, ``cur``; a Maildir++ subfolder ``Sent`` (or ``Lists.x``) is
``root/<user>/Maildir/.Sent/`` with the same three plus a ``maildirfolder``
file. The first delivery to a folder creates what is missing, each directory
(and the marker file) counted as a file created.

Line ends: stored messages have LF line ends, as Postfix local delivery writes
them (the queue keeps lines as records; local(8) ends each with ``\\n``): CRLF
becomes LF and a last line without an end gets one. ``lf_message`` does this.

Counts per delivery: one file created, one write of the stored bytes (key
``<user>/Maildir/new/<name>``, relative to the store root), one fsync (counted
even when ``host_fsync`` is off and ``os.fsync`` is skipped), one rename, plus
any directories created; CPU units ``deliver.message`` and ``deliver.byte``.

Scenario keys (via ``MaildirSettings``): host name, epoch, host_fsync.

Raises ValueError for a bad user, folder or ``unique`` name, negative ``now``,
or a name already present in ``tmp/`` or ``new/`` (a ``unique`` reused in the
same second: the message is not written).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from twin.stages.fileops import DIRECT, Files
from twin.stages.work import Work

CPU_UNITS: dict[str, str] = {
    "deliver.message": "a message delivered by local(8): lookup, open, close",
    "deliver.byte": "a byte copied into a mailbox (with line-end conversion)",
}

# Simulated time 0 is Monday 5 March 2007 00:00:00 UTC: assumption, a week in
# the era of the current server (DESIGN.md); same value as twin.stages.queue.
SIMULATION_EPOCH_S = 1173052800

# Login names as /etc/passwd and LDAP uid allow them here; no path separators.
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
# cr.yp.to: the unique part must not hold '/', ':' or '.' (dots split the name).
_UNIQUE = re.compile(r"[A-Za-z0-9_#=,-]{1,64}")
# Maildir++ folder names: dot-separated parts, no '/', no empty part.
_FOLDER = re.compile(r"[A-Za-z0-9_&,+= -]+(?:\.[A-Za-z0-9_&,+= -]+)*")

MAILDIR = "Maildir"
SUBDIRS = ("tmp", "new", "cur")
FOLDER_MARKER = "maildirfolder"


def maildir_path(root: Path, user: str, folder: str = "") -> Path:
    """The maildir of ``user``'s folder (``""`` is the inbox) under ``root``."""
    base = Path(root) / user / MAILDIR
    return base / f".{folder}" if folder else base


_BARE_CR = re.compile(rb"\r[^\n]")
"""A CR before anything but an LF (one at the very end is checked apart: a
plain class scans faster than a lookahead)."""


def lf_message(message: bytes) -> bytes:
    """``message`` with LF line ends and a final LF (empty stays empty).

    A CR not before an LF is data and stays."""
    if b"\r" in message and b"\r\n" in message:  # (the first finds no CR fast)
        if _BARE_CR.search(message) is None and not message.endswith(b"\r"):
            # every CR ends a line: dropping them all (deleting one byte
            # runs at memchr's pace: twice translate(None, b"\\r"), where
            # replacing CRLF by LF pays a search for every line)
            message = message.replace(b"\r", b"")
        else:
            message = message.replace(b"\r\n", b"\n")
    if message and not message.endswith(b"\n"):
        message += b"\n"
    return message


class LfMessage:
    """A message's ``lf_message`` form, not yet made: *head*, in LF form
    already (no CR), then *crlf*, every CR of which ends a line, ending in
    CRLF; *size* is the form's length. ``bytes()`` makes it; a delivery
    writes it with the CRs stripped as the file is written
    (``Files.create(strip_cr=True)``): in the simulator, by the writer
    process, so the simulation makes no pass over the bytes (for the mail
    week's ~1 GB of maildir deliveries, about 1 s of the simulation's CPU
    by estimate, at the ~0.9 GB/s ``bytes.translate`` ran at here; half
    that deleting the CRs with ``bytes.replace``, as this does now)."""

    __slots__ = ("head", "crlf", "size")

    def __init__(self, head: bytes, crlf: bytes, size: int) -> None:
        self.head = head
        self.crlf = crlf
        self.size = size

    def __bytes__(self) -> bytes:
        return self.head + self.crlf.replace(b"\r", b"")

    def __len__(self) -> int:
        return self.size


@dataclass(frozen=True, slots=True)
class MaildirSettings:
    """Settings of maildir delivery on one host."""

    hostname: str = "mail.example.edu"  # assumption: the twinned host's name
    epoch_offset_s: int = SIMULATION_EPOCH_S
    host_fsync: bool = False  # really call os.fsync; the Work counts it anyway

    def __post_init__(self) -> None:
        if not self.hostname or any(c in self.hostname for c in " \t\r\n"):
            raise ValueError(f"hostname={self.hostname!r} must be a non-empty name")
        if self.epoch_offset_s < 0:
            raise ValueError(f"epoch_offset_s={self.epoch_offset_s!r} must be >= 0")


class DeliveryDecision(Enum):
    DELIVERED = "delivered"


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """One message stored in a mailbox (maildir or mbox)."""

    decision: DeliveryDecision
    reason: str
    key: str  # the file written, relative to the store root
    size_bytes: int  # bytes written to the mailbox
    work: Work


class MaildirStore:
    """Maildirs of many users under ``root``; holds no file open between calls.

    It remembers which folders exist (a dict of ready paths), so a delivery
    makes no stat or directory listing: open, write, close, link, unlink.
    """

    def __init__(
        self, root: Path, settings: MaildirSettings, files: Files = DIRECT
    ) -> None:
        self.root = Path(root)
        self.settings = settings
        self.files = files
        """Who does the file operations (``twin.stages.fileops``): at once.
        A ``FileWriter`` reports a name clash at its ``sync``, not here."""
        os.makedirs(self.root, exist_ok=True)
        self._host = settings.hostname.replace("/", "\\057").replace(":", "\\072")
        # (user, folder) -> (tmp dir, new dir, key prefix of new/)
        self._ready: dict[tuple[str, str], tuple[str, str, str]] = {}
        self._made: set[str] = set()  # directories known to exist (or asked for)

    def deliver(
        self,
        user: str,
        message: bytes | LfMessage,
        now: float,
        unique: str,
        folder: str = "",
    ) -> DeliveryResult:
        """Store ``message`` in ``new/`` of ``user``'s maildir folder (in
        ``lf_message`` form; an ``LfMessage`` is that form already)."""
        if _UNIQUE.fullmatch(unique) is None:
            raise ValueError(
                f"unique={unique!r} must be 1-64 of letters, digits, '_#=,-'"
            )
        if now < 0:
            raise ValueError(f"now={now!r} must be >= 0 simulated seconds")
        ready = self._ready.get((user, folder))
        created = 0
        if ready is None:
            ready, created = self._make_folder(user, folder)
        if type(message) is LfMessage:
            parts, size, strip = (message.head, message.crlf), message.size, True
        else:
            body = lf_message(message)
            parts, size, strip = (body,), len(body), False
        tmp_dir, new_dir, prefix = ready
        name = f"{self.settings.epoch_offset_s + int(now)}.{unique}.{self._host}"
        tmp = f"{tmp_dir}/{name}"
        files = self.files
        try:
            files.create(tmp, parts, self.settings.host_fsync, strip_cr=strip)
        except FileExistsError:
            raise ValueError(f"maildir name {name!r} is already in {tmp_dir}") from None
        try:
            files.link_new(tmp, f"{new_dir}/{name}")
        except FileExistsError:
            raise ValueError(f"maildir name {name!r} is already in {new_dir}") from None
        key = prefix + name
        work = Work(
            cpu={"deliver.message": 1, "deliver.byte": size},
            writes=((key, size),),
            fsyncs=1,
            files_created=1 + created,
            files_renamed=1,
        )
        return DeliveryResult(
            DeliveryDecision.DELIVERED,
            f"delivered {size} bytes to {key}",
            key,
            size,
            work,
        )

    def folder_path(self, user: str, folder: str = "") -> Path:
        """The maildir of ``user``'s folder in this store."""
        return maildir_path(self.root, user, folder)

    def _make_folder(self, user: str, folder: str) -> tuple[tuple[str, str, str], int]:
        """Create the folder's missing directories; (ready paths, files created)."""
        if _USER.fullmatch(user) is None:
            raise ValueError(
                f"user={user!r} must be 1-64 of letters, digits, '._-', "
                "not starting with '.' or '-'"
            )
        if folder and _FOLDER.fullmatch(folder) is None:
            raise ValueError(
                f"folder={folder!r} must be a Maildir++ name: dot-separated parts "
                "of letters, digits, spaces and '_&,+=-'"
            )
        inbox = maildir_path(self.root, user)
        chain = [inbox.parent, inbox, *(inbox / sub for sub in SUBDIRS)]
        box = inbox
        if folder:
            box = maildir_path(self.root, user, folder)
            chain += [box, *(box / sub for sub in SUBDIRS)]
        # a stat finds what exists; only missing parts are made (by ``files``,
        # so a writer process makes them before the files that go in them)
        files = self.files
        created = 0
        made = self._made
        for directory in map(str, chain):
            if directory not in made and not os.path.isdir(directory):
                files.mkdir(directory)
                created += 1
            made.add(directory)
        if folder and not os.path.exists(box / FOLDER_MARKER):
            files.create(str(box / FOLDER_MARKER), (), False)
            created += 1
        relative = box.relative_to(self.root).as_posix()
        ready = (str(box / "tmp"), str(box / "new"), f"{relative}/new/")
        self._ready[(user, folder)] = ready
        return ready, created
