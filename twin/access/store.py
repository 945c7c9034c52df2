"""What the protocol sessions need from a mail store, and the shared types.

A *backend* (``MboxBackend``, ``CyrusBackend``) serves every user of one store
root; it opens *mailboxes* for IMAP and *drops* for POP3. Every operation
returns the ``Work`` it did, so a session can report per command what the
store cost. Failures a client may cause (no such mailbox, name taken, mailbox
in use) raise ``StoreError`` whose text becomes the NO / -ERR reply; anything
else is our bug and propagates.

Flags are a bitmask of the five system flags the stores can keep
(maildir info letters, UW's Status/X-Status letters, Cyrus's system flags);
keywords are accepted by STORE but not kept (PERMANENTFLAGS says so).
\\Recent is per mailbox, not a stored flag.
"""

from __future__ import annotations

import fcntl
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from typing import Protocol

from twin.stages.work import Work

NO_WORK = Work()
"""The empty record (immutable: one shared instead of a new one per use)."""
_NO_CPU = NO_WORK.cpu  # the default (empty, read-only) cpu mapping
_tuple_new = tuple.__new__
_chain = chain.from_iterable

SEEN = 1
ANSWERED = 2
FLAGGED = 4
DELETED = 8
DRAFT = 16
ALL_FLAGS = SEEN | ANSWERED | FLAGGED | DELETED | DRAFT

FLAG_NAMES: dict[int, str] = {
    SEEN: "\\Seen",
    ANSWERED: "\\Answered",
    FLAGGED: "\\Flagged",
    DELETED: "\\Deleted",
    DRAFT: "\\Draft",
}
FLAG_BITS: dict[str, int] = {name.lower(): bit for bit, name in FLAG_NAMES.items()}

# Maildir info letters (cr.yp.to/proto/maildir.html), in the ASCII order the
# spec requires.
MAILDIR_LETTERS: tuple[tuple[str, int], ...] = (
    ("D", DRAFT),
    ("F", FLAGGED),
    ("R", ANSWERED),
    ("S", SEEN),
    ("T", DELETED),
)


def maildir_info(flags: int) -> str:
    """The ``:2,`` info letters for *flags*."""
    return "".join(letter for letter, bit in MAILDIR_LETTERS if flags & bit)


def flags_from_info(info: str) -> int:
    """Flags from maildir info letters (unknown letters ignored)."""
    flags = 0
    for letter, bit in MAILDIR_LETTERS:
        if letter in info:
            flags |= bit
    return flags


class StoreError(Exception):
    """A request the store refuses; the text is sent to the client."""


@dataclass(slots=True)
class MessageInfo:
    """What a session knows of one message without reading it."""

    uid: int
    size: int
    internaldate: int
    flags: int
    recent: bool = False


class Mailbox(Protocol):
    """An open (selected) mailbox; ``messages`` is in sequence-number order."""

    name: str
    readonly: bool
    uidvalidity: int
    uidnext: int
    messages: list[MessageInfo]

    def header(self, index: int) -> tuple[bytes, Work]:
        """CRLF header of message *index* (0-based), with its blank line."""
        ...

    def text(self, index: int) -> tuple[bytes, Work]:
        """Whole CRLF text of message *index*."""
        ...

    def bodystructure(self, index: int) -> tuple[bytes | None, Work]:
        """A cached BODYSTRUCTURE, or None when the session must parse."""
        ...

    def set_flags(self, changes: list[tuple[int, int]]) -> Work:
        """Give message index -> flags for each pair."""
        ...

    def expunge(self, uids: set[int] | None) -> tuple[list[int], Work]:
        """Remove \\Deleted messages (only *uids*); 1-based seqs, descending."""
        ...

    def checkpoint(self) -> Work: ...

    def refresh(self) -> tuple[list[int], Work]:
        """Catch up with other writers; returns expunged seqs (descending)."""
        ...

    def close(self) -> Work: ...


class Drop(Protocol):
    """A POP3 maildrop locked for one session."""

    sizes: list[int]
    uidls: list[str]

    def text(self, index: int) -> tuple[bytes, Work]: ...

    def commit(self, deleted: set[int]) -> Work: ...

    def abort(self) -> Work: ...


class Backend(Protocol):
    """All users' mailboxes in one store root."""

    kind: str

    def list_mailboxes(self, user: str) -> tuple[list[tuple[str, bool]], Work]:
        """(name, selectable) pairs, INBOX first."""
        ...

    def open(self, user: str, name: str, readonly: bool, now: float) -> tuple[
        Mailbox, Work
    ]: ...

    def status(self, user: str, name: str, now: float) -> tuple[dict[str, int], Work]:
        ...

    def create(self, user: str, name: str, now: float) -> Work: ...

    def delete(self, user: str, name: str) -> Work: ...

    def rename(self, user: str, old: str, new: str) -> Work: ...

    def append(
        self, user: str, name: str, entries: list[tuple[bytes, int, int]], now: float
    ) -> Work:
        """Add (CRLF text, flags, internaldate) messages to mailbox *name*."""
        ...

    def subscriptions(self, user: str) -> tuple[set[str], Work]: ...

    def set_subscriptions(self, user: str, names: set[str]) -> Work: ...

    def open_drop(self, user: str, now: float) -> tuple[Drop, Work]: ...


def whole_line(data: bytes) -> bytes | None:
    """*data*'s line without its CRLF (or LF) when *data* is exactly one whole
    line, what a client sends most; else None (the session's buffer loop)."""
    size = len(data)
    if size and type(data) is bytes and data.find(b"\n") == size - 1:
        return data[:-1].rstrip(b"\r")
    return None


def commands_work(commands: list[tuple[str, Work]]) -> Work:
    """The Work of the commands one ``feed`` ran (``(name, work)`` pairs)."""
    return commands[0][1] if len(commands) == 1 else sum_work(
        [work for _, work in commands]
    )


def sum_work(works) -> Work:
    """``Work() + w1 + w2 + ...`` in one pass, with exactly the same result."""
    if type(works) is not list:
        works = list(works)
    if len(works) == 1:
        work = works[0]
        if work[0] and type(work) is Work:  # the sum is the record itself
            return work
    cpus = [work[0] for work in works if work[0]]
    if not cpus:
        cpu = _NO_CPU
    elif len(cpus) == 1:
        cpu = cpus[0]
    else:
        cpu = dict(cpus[0])
        for more in cpus[1:]:
            for kind, units in more.items():
                cpu[kind] = cpu.get(kind, 0) + units
    if not works:
        return _tuple_new(Work, (cpu, (), (), 0, 0, 0, 0, 0, 0, 0, 0))
    # Work(...) in field order, without the named tuple's __new__ frame; the
    # counts (fields 3 on) added column by column
    return _tuple_new(Work, (
        cpu, tuple(_chain([work[1] for work in works])),
        tuple(_chain([work[2] for work in works])),
        *map(sum, zip(*[work[3:] for work in works], strict=True))))


def plus_cpu(work: Work, units: dict[str, int]) -> Work:
    """``work + Work(cpu=units)`` (the same record, key order included), in
    one step; *units* must not be used afterwards."""
    cpu = work.cpu
    if cpu:
        if cpu.keys().isdisjoint(units):  # (the usual case) the loop, in C
            return _tuple_new(Work, ({**cpu, **units}, *work[1:]))
        merged = dict(cpu)
        for kind, count in units.items():
            merged[kind] = merged.get(kind, 0) + count
        units = merged
    elif not units:
        units = cpu
    return _tuple_new(Work, (units, *work[1:]))


def units_plus(units: dict[str, int], work: Work) -> Work:
    """``Work(cpu=units) + work`` (the same record, key order included), in
    one step; *units* must not be used afterwards."""
    cpu = work[0]
    if cpu:
        if not units:
            units = cpu
        elif units.keys().isdisjoint(cpu):
            units = {**units, **cpu}
        else:
            for kind, count in cpu.items():
                units[kind] = units.get(kind, 0) + count
    return _tuple_new(Work, (units, *work[1:]))


def plus_net(work: Work, net_bytes: int, round_trips: int) -> Work:
    """``work + Work(net_bytes=..., net_round_trips=...)`` in one step."""
    return _tuple_new(Work, (*work[:9], work[9] + net_bytes,
                             work[10] + round_trips))


_NO_HOST_FSYNC: set[str] = set()
"""Real store roots whose backend was made with ``host_fsync=False``."""


def note_host_fsync(root: str, enabled: bool) -> None:
    """Remember whether writers under the real path *root* call ``os.fsync``
    (a backend's choice, followed by module functions such as Cyrus's
    ``index_delivery`` that are handed only the store root)."""
    if enabled:
        _NO_HOST_FSYNC.discard(root)
    else:
        _NO_HOST_FSYNC.add(root)


def host_fsync_for(root: str) -> bool:
    """Whether writers under the real path *root* really call ``os.fsync``."""
    return root not in _NO_HOST_FSYNC


def sync(handle, enabled: bool) -> None:
    """``os.fsync`` of *handle* when *enabled*: a simulator's store (settings
    ``host_fsync`` off, as ``twin.stages.maildir``) skips it; the Work counts
    the fsync either way, so results do not change."""
    if enabled:
        os.fsync(handle.fileno())


def replace_file(temporary: str, path: str, host_fsync: bool) -> None:
    """Rename *temporary* over *path*, as ``os.replace``. Without *host_fsync*
    (a simulator's scratch store) the old file is unlinked first: the same
    files result, but ext4 does not flush the new file's data as it does on a
    rename over an existing file (``auto_da_alloc``, a hidden fsync that such
    a store skips, as it skips ``os.fsync``); the replacement is then atomic
    only for readers that take the writer's lock."""
    if host_fsync:
        os.replace(temporary, path)
        return
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    os.rename(temporary, path)


def write_file(path: str, data: bytes | bytearray, host_fsync: bool) -> None:
    """Create or truncate *path* holding *data* (``os.fsync`` if *host_fsync*)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if host_fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def read_subscriptions(path: str, key: str) -> tuple[set[str], Work]:
    """Mailbox names listed one a line in *path* (a missing file is empty)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return set(), NO_WORK
    names = {line for line in data.decode("utf-8", "replace").splitlines() if line}
    return names, Work(reads=((key, len(data)),))


def write_subscriptions(path: str, key: str, names: set[str]) -> Work:
    """Replace *path* with *names*, one a line, via a temporary file and rename."""
    data = "".join(f"{name}\n" for name in sorted(names)).encode("utf-8")
    temporary = path + ".new"
    with open(temporary, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)
    return Work(writes=((key, len(data)),), files_created=1, files_renamed=1)


class FileLocks:
    """One in-process lock per file path.

    POSIX ``lockf`` locks (what ``mailbox``, Postfix and Cyrus take) do not
    exclude threads of one process, so the threaded server adds these.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def get(self, path: str) -> threading.Lock:
        lock = self._locks.get(path)  # a dict lookup is atomic
        if lock is not None:
            return lock
        with self._guard:
            lock = self._locks.get(path)
            if lock is None:
                lock = self._locks[path] = threading.Lock()
            return lock


FILE_LOCKS = FileLocks()
"""The process's lock table; shared so delivery-side calls exclude sessions."""


@contextmanager
def locked_file(path: str, create: bool = True):
    """Open *path* read-write (created if *create*) under both kinds of lock."""
    with FILE_LOCKS.get(path):
        flags = os.O_RDWR | (os.O_CREAT if create else 0)
        fd = os.open(path, flags, 0o600)
        with os.fdopen(fd, "r+b") as handle:
            fcntl.lockf(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield handle
            finally:
                fcntl.lockf(handle.fileno(), fcntl.LOCK_UN)
