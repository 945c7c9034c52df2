"""UW IMAP and QPopper over mbox spools: whole-file parses and rewrites.

Twins the 2004 access stack (FACTS.md "Mail stores and access"):

- UW IMAP's unix driver (``unix.c``) parses the whole file when a mailbox is
  opened, keeps flags in ``Status:`` (R seen, O old) / ``X-Status:`` (A
  answered, F flagged, T draft, D deleted) / ``X-UID:`` headers and the
  UIDVALIDITY and last UID in an ``X-IMAPbase:`` header of the first message
  (a leading ``X-IMAP:`` pseudo-message is read too). Flag changes, new UIDs
  and clearing \\Recent (setting O) make the mailbox dirty; a checkpoint
  (CHECK, CLOSE, LOGOUT, EXPUNGE, switching mailbox) rewrites every kept
  message: O(mailbox size) bytes written and one fsync.
- QPopper copies the whole drop to ``.<user>.pop`` at login and truncates the
  spool; at QUIT the kept messages and any mail that arrived meanwhile are
  written back to the spool and the copy is removed.

Layout under the store root (``store/`` of a run folder): ``<user>`` is the
INBOX spool, ``<user>.folders/<name>[/<name>...]`` hold other mailboxes (a
directory is a \\Noselect parent), ``<user>.mailboxlist`` the subscriptions,
``.<user>.pop`` QPopper's copy. Messages are split on ``From `` lines exactly
as Python's ``mailbox.mbox`` does, so both read the same messages; appends
escape body ``From `` lines as ``>From``.

Locks: POSIX ``lockf`` on the spool (what ``mailbox`` and Postfix take) plus an
in-process lock per file, since POSIX locks do not exclude threads.

Simulation shortcut (no effect on replies or Work): the backend keeps each
file's last parse and reuses it while the file is unchanged, parses only the
tail when it merely grew (deliveries append), and records its own rewrites;
per-message parses are memoized by a digest of the message's bytes. The Work
still says what UW IMAP does: read and scan it all.

Change detection never depends on the host's clock for changes made in this
process: every writer here (sessions through the backend, QPopper's take and
write-back, and deliveries that call ``note_delivery``) bumps a process-wide
count of appends or of rewrites of the file, and a reader compares the counts
it last saw. For writers outside the process (``twin serve`` over a spool that
another program changes) it also compares size, mtime, inode and a digest of
the first and last ``EDGE_BYTES`` of the file, so a same-size rewrite within
the file system's timestamp granularity is still seen unless it changes only
bytes in the middle of a large file (the remaining limit, for outside writers
only). A file is taken as merely grown when no rewrite was counted, its inode
is the same and its old first and last ``EDGE_BYTES`` are unchanged.

``MboxBackend(root, host_fsync=False)`` (the simulator's store, as the
delivery stages' ``host_fsync`` setting) skips the real ``os.fsync`` calls;
the Work counts them either way.

Work counted: ``reads``/``writes`` of the spool, its copy and folders (keys are
paths relative to the store root), ``fsyncs``, ``locks``, ``files_*``; CPU
kinds in ``CPU_UNITS``.
"""

from __future__ import annotations

import calendar
import hashlib
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass
from hashlib import blake2b
from pathlib import Path

from twin.access.message import crlf_size, header_fields, to_crlf
from twin.access.names import MailboxNameError, check_user, split_name
from twin.access.store import (
    ALL_FLAGS,
    ANSWERED,
    DELETED,
    DRAFT,
    FLAGGED,
    NO_WORK,
    SEEN,
    MessageInfo,
    StoreError,
    locked_file,
    read_subscriptions,
    sync,
    write_subscriptions,
)
from twin.stages.work import Work

CPU_UNITS: dict[str, str] = {
    "mbox.byte": "one byte of an mbox file scanned for From lines and headers",
    "mbox.message": "one message's header parsed for Status/X-Status/X-UID",
    "mbox.rewrite_byte": "one byte copied while rewriting an mbox file",
}

HIDDEN_FIELDS = frozenset(
    {b"status", b"x-status", b"x-uid", b"x-imapbase", b"x-imap", b"x-keywords",
     b"content-length"}
)
"""Fields UW IMAP keeps for itself and never shows a client."""

_X_STATUS = (("A", ANSWERED), ("F", FLAGGED), ("T", DRAFT), ("D", DELETED))
_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
     "Dec"), start=1)}
_FROM_DATE = re.compile(
    rb"([A-Z][a-z]{2}) +(\d{1,2}) (\d{1,2}):(\d{2})(?::(\d{2}))?"
    rb"(?: [A-Z]{3,5}| [+-]\d{4})* (\d{4})"
)
_FROM_ESCAPE = re.compile(rb"^(>*From )", re.MULTILINE)


@dataclass(slots=True)
class _Span:
    """Where one message lies in the file, and what its header says."""

    start: int
    body_start: int
    end: int
    from_line: bytes
    header: bytes  # raw header as in the file (LF), without the blank line
    visible: bytes  # CRLF header shown to clients, with its blank line
    info: MessageInfo
    has_uid: bool
    uidl: str = ""
    parsed: _Parsed | None = None  # the parse of the bytes it covers, if known
    status: tuple[int, bool, int, tuple[int, int] | None] | None = None


@dataclass(slots=True)
class _Parsed:
    """One message's parse, offsets relative to its ``From `` line.

    A pure function of the message's bytes (from its ``From `` line up to the
    next one, or the end of the file), so it is memoized by their digest;
    ``_rewrite`` derives the parse of what it writes instead of re-reading it.
    """

    body_start: int
    end: int
    from_line: bytes
    header: bytes
    visible: bytes
    size: int
    internaldate: int
    status: tuple[int, bool, int, tuple[int, int] | None]
    pop: tuple[int, str] | None = None  # QPopper's (octets, UIDL), when asked
    # (flags, uid, X-IMAPbase) this header was written with, by our rewrite
    written: tuple[int, int, tuple[int, int] | None] | None = None


EDGE_BYTES = 4096
"""Bytes at each end of a file digested to notice outside same-size rewrites."""


class _Changes:
    """Changes made in this process to one mbox file: *appends* counts writes
    that only added messages at the end, *rewrites* everything else."""

    __slots__ = ("appends", "rewrites")

    def __init__(self) -> None:
        self.appends = 0
        self.rewrites = 0


_CHANGES: dict[str, _Changes] = {}
_CHANGES_GUARD = threading.Lock()


def _changes(path: str) -> _Changes:
    state = _CHANGES.get(path)
    if state is None:
        with _CHANGES_GUARD:
            state = _CHANGES.setdefault(path, _Changes())
    return state


def note_change(path: str | os.PathLike, append: bool = False) -> None:
    """Count a change made in this process to the mbox file *path*: an append
    of whole messages at its end (*append*) or any other write. Readers in
    this process then look at the file again whatever its stat says."""
    path = os.fspath(path)
    _bump(os.path.join(os.path.realpath(os.path.dirname(path) or "."),
                       os.path.basename(path)), append)


def note_delivery(store_root: str | os.PathLike, user: str) -> None:
    """Count a delivery appended to *user*'s spool under *store_root* (what
    ``twin.stages.mbox`` writes) so readers here do not rely on its mtime."""
    _bump(os.path.join(os.path.realpath(store_root), user), append=True)


def _bump(path: str, append: bool = False) -> None:
    """``note_change`` for a path already under the backend's real root."""
    state = _changes(path)
    with _CHANGES_GUARD:
        if append:
            state.appends += 1
        else:
            state.rewrites += 1


def _bump_tree(path: str) -> None:
    """Count a rewrite of *path* and of every file known under it."""
    _bump(path)
    with _CHANGES_GUARD:
        for known, state in _CHANGES.items():
            if known.startswith(path + os.sep):
                state.rewrites += 1


@dataclass(frozen=True, slots=True)
class _Stamp:
    """What a reader saw of a file: change counts, stat and edge digests."""

    appends: int
    rewrites: int
    size: int
    mtime_ns: int
    ino: int
    head: bytes  # digest of the first min(size, EDGE_BYTES) bytes
    tail: bytes  # digest of the last min(size, EDGE_BYTES) bytes


_NO_STAMP = _Stamp(-1, -1, -1, -1, -1, b"", b"")


def _digest(data: bytes) -> bytes:
    return blake2b(data, digest_size=16).digest()


def _pread(handle, offset: int, size: int) -> bytes:
    return os.pread(handle.fileno(), size, offset)


def _stamp(path: str, handle, info: os.stat_result,
           data: bytes | None = None) -> _Stamp:
    """The stamp of locked *handle* (stat *info*); *data* is its content, when
    in memory (it must be the whole file)."""
    state = _changes(path)
    size = info.st_size
    edge = min(size, EDGE_BYTES)
    if data is not None:
        head, tail = data[:edge], data[size - edge :]
    else:
        head = _pread(handle, 0, edge)
        tail = head if edge == size else _pread(handle, size - edge, edge)
    return _Stamp(state.appends, state.rewrites, size, info.st_mtime_ns,
                  info.st_ino, _digest(head), _digest(tail))


def _unchanged(stamp: _Stamp, path: str, handle, info: os.stat_result) -> bool:
    """Whether locked *handle* (stat *info*) still holds what *stamp* saw."""
    state = _changes(path)
    if (state.appends != stamp.appends
            or state.rewrites != stamp.rewrites or info.st_size != stamp.size
            or info.st_mtime_ns != stamp.mtime_ns or info.st_ino != stamp.ino):
        return False
    size = stamp.size
    edge = min(size, EDGE_BYTES)
    head = _pread(handle, 0, edge)
    if _digest(head) != stamp.head:
        return False
    return _digest(head if edge == size else _pread(handle, size - edge, edge)
                   ) == stamp.tail


def _grown(stamp: _Stamp, path: str, handle, info: os.stat_result) -> bool:
    """Whether locked *handle* (stat *info*) is what *stamp* saw plus an
    appended tail: no rewrite counted, same inode, old edges intact."""
    state = _changes(path)
    if (state.rewrites != stamp.rewrites
            or info.st_ino != stamp.ino or not 0 <= stamp.size < info.st_size):
        return False
    size = stamp.size
    edge = min(size, EDGE_BYTES)
    return (_digest(_pread(handle, 0, edge)) == stamp.head
            and _digest(_pread(handle, size - edge, edge)) == stamp.tail)


_MEMO: dict[bytes, _Parsed] = {}
_MEMO_LIMIT = 20_000
"""Parses by message digest; content-addressed, so never stale, only bounded."""


def _status_flags(header: bytes) -> tuple[int, bool, int, tuple[int, int] | None]:
    """(flags, old, uid, (uidvalidity, uidlast) or None) from UW's headers."""
    return _fields_status(header_fields(to_crlf(header)))


def _fields_status(fields: list[tuple[bytes, bytes]]
                   ) -> tuple[int, bool, int, tuple[int, int] | None]:
    flags, old, uid, base = 0, False, 0, None
    for name, raw in fields:
        if name not in HIDDEN_FIELDS:
            continue
        value = raw[raw.find(b":") + 1 :].strip()
        if name == b"status":
            old = b"O" in value
            if b"R" in value:
                flags |= SEEN
        elif name == b"x-status":
            for letter, bit in _X_STATUS:
                if letter.encode() in value:
                    flags |= bit
        elif name == b"x-uid":
            uid = int(value) if value.isdigit() and len(value) < 11 else 0
        elif name in (b"x-imapbase", b"x-imap"):
            words = value.split()
            if len(words) >= 2 and words[0].isdigit() and words[1].isdigit():
                base = (int(words[0]) & 0xFFFFFFFF, int(words[1]) & 0xFFFFFFFF)
    return flags, old, uid, base


def _from_date(from_line: bytes) -> int:
    match = _FROM_DATE.search(from_line)
    if not match:
        return 0
    month = _MONTHS.get(match.group(1).decode())
    if month is None:
        return 0
    try:
        return calendar.timegm(
            (int(match.group(6)), month, int(match.group(2)), int(match.group(3)),
             int(match.group(4)), int(match.group(5) or 0), 0, 0, 0)
        )
    except (ValueError, OverflowError):
        return 0


def _parse_chunk(chunk: bytes) -> _Parsed:
    """Parse one message: *chunk* runs from its ``From `` line to the next one."""
    size = len(chunk)
    end = size - 1 if chunk.endswith(b"\n\n") else size
    line_end = chunk.find(b"\n", 0, end)
    header_start = end if line_end < 0 else line_end + 1
    if chunk[header_start : header_start + 1] == b"\n":
        body_start = header_start + 1
        header = b""
    else:
        blank = chunk.find(b"\n\n", header_start, end)
        body_start = end if blank < 0 else blank + 2
        header = chunk[header_start : end if blank < 0 else blank + 1]
    from_line = chunk[:header_start]
    fields = header_fields(to_crlf(header))
    visible = b"".join(
        raw for name, raw in fields if name not in HIDDEN_FIELDS
    ) + b"\r\n"
    size_crlf = len(visible) + crlf_size(chunk[body_start:end])
    return _Parsed(body_start, end, from_line, header, visible, size_crlf,
                   _from_date(from_line), _fields_status(fields))


def _chunks(data: bytes, base: int = 0) -> list[tuple[int, _Parsed]]:
    """(offset, parse) of each message of *data* (an mbox file from *base*)."""
    out: list[tuple[int, _Parsed]] = []
    pos = 0 if data.startswith(b"From ") else data.find(b"\nFrom ") + 1
    if pos == 0 and not data.startswith(b"From "):
        return out
    view = memoryview(data)
    memo = _MEMO
    while True:
        nxt = data.find(b"\nFrom ", pos) + 1
        stop = nxt or len(data)
        key = blake2b(view[pos:stop], digest_size=20).digest()
        parsed = memo.get(key)
        if parsed is None:
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            parsed = memo[key] = _parse_chunk(data[pos:stop])
        out.append((base + pos, parsed))
        if nxt == 0:
            return out
        pos = nxt


def _span(start: int, parsed: _Parsed) -> _Span:
    return _Span(start, start + parsed.body_start, start + parsed.end,
                 parsed.from_line, parsed.header, parsed.visible,
                 MessageInfo(0, parsed.size, parsed.internaldate, 0), False,
                 parsed=parsed, status=parsed.status)


def scan(data: bytes, base: int = 0) -> list[_Span]:
    """Split *data* (an mbox file from offset *base*) as ``mailbox.mbox`` does."""
    return [_span(start, parsed) for start, parsed in _chunks(data, base)]


def _stripped(span: _Span) -> bytes:
    """The header fields a client sees, LF-terminated, as UW writes them back."""
    if b"\r" not in span.header:
        # visible is exactly these fields in CRLF form (for scan-made spans and,
        # since re-parsing them yields the same fields, for rewritten ones)
        return span.visible[:-2].replace(b"\r\n", b"\n")
    return b"".join(
        raw for name, raw in header_fields(to_crlf(span.header))
        if name not in HIDDEN_FIELDS
    ).replace(b"\r\n", b"\n")


def _status_of(span: _Span) -> tuple[int, bool, int, tuple[int, int] | None]:
    return span.status if span.status is not None else _status_flags(span.header)


def _status_header(flags: int) -> bytes:
    status = b"Status: RO\n" if flags & SEEN else b"Status: O\n"
    letters = "".join(letter for letter, bit in _X_STATUS if flags & bit)
    return status + (b"X-Status: " + letters.encode() + b"\n")


class MboxMailbox:
    """A UW-style selected mbox mailbox: parsed whole, rewritten on checkpoint."""

    def __init__(self, backend: MboxBackend, name: str, path: str, key: str,
                 readonly: bool, now: float) -> None:
        self.name = name
        self.readonly = readonly
        self._backend = backend
        self._path = path
        self._key = key
        self._now = now
        self._spans: list[_Span] = []
        self.messages: list[MessageInfo] = []
        self.uidvalidity = 0
        self.uidnext = 1
        self._dirty = False
        self._stamp = _NO_STAMP

    # -- parsing -------------------------------------------------------------
    def load(self) -> Work:
        """Parse the whole file; clear \\Recent (set O) when read-write."""
        with locked_file(self._path) as handle:
            # UW reads and parses the whole file; the simulator reuses the
            # backend's parse of an unchanged file (same work reported)
            items, size = self._backend.parsed(self._path, handle)
            self._stamp = self._backend.stamp_of(self._path)
        spans = [_span(start, parsed) for start, parsed in items]
        work = self._adopt(spans, size, first=True)
        recent = [s for s in self._spans if s.info.recent]
        if recent and not self.readonly:
            self._dirty = True  # UW writes Status: O for every recent message
        return work + Work(reads=((self._key, size),), locks=1)

    def _adopt(self, spans: list[_Span], size: int, first: bool) -> Work:
        """Take parsed spans: read their flags and UIDs, give UIDs to new ones."""
        if first and spans:
            base = _status_of(spans[0])[3]
            if base is not None and b"\nX-IMAP:" in b"\n" + spans[0].header:
                self.uidvalidity, self.uidnext = base[0], base[1] + 1
                spans = spans[1:]  # UW's FOLDER INTERNAL DATA pseudo-message
            elif base is not None:
                self.uidvalidity, self.uidnext = base[0], base[1] + 1
        if not self.uidvalidity:
            self.uidvalidity = max(1, int(self._now)) & 0xFFFFFFFF
            self._dirty = self._dirty or (bool(spans) and not self.readonly)
        last = self._spans[-1].info.uid if self._spans else 0
        for span in spans:
            flags, old, uid, _ = _status_of(span)
            span.info.flags = flags
            span.info.recent = not old
            if last < uid < self.uidnext:
                span.has_uid = True
            else:
                uid = self.uidnext  # missing or out of order: UW renumbers
                self.uidnext += 1
                self._dirty = self._dirty or not self.readonly
            span.info.uid = last = uid
        self._spans.extend(spans)
        self.messages = [span.info for span in self._spans]
        return Work(cpu={"mbox.byte": size, "mbox.message": len(spans)})

    def _restamp(self, handle, data: bytes | None = None) -> None:
        self._stamp = _stamp(self._path, handle, os.fstat(handle.fileno()), data)

    # -- reading -------------------------------------------------------------
    def header(self, index: int) -> tuple[bytes, Work]:
        return self._spans[index].visible, NO_WORK

    def text(self, index: int) -> tuple[bytes, Work]:
        span = self._spans[index]
        with open(self._path, "rb") as handle:
            handle.seek(span.body_start)
            body = handle.read(span.end - span.body_start)
        return span.visible + to_crlf(body), Work(reads=((self._key, len(body)),))

    def bodystructure(self, index: int) -> tuple[bytes | None, Work]:
        return None, NO_WORK

    # -- changing ------------------------------------------------------------
    def set_flags(self, changes: list[tuple[int, int]]) -> Work:
        for index, flags in changes:
            if self.messages[index].flags != flags:
                self.messages[index].flags = flags
                self._dirty = True
        return NO_WORK

    def expunge(self, uids: set[int] | None) -> tuple[list[int], Work]:
        gone = [
            i for i, info in enumerate(self.messages)
            if info.flags & DELETED and (uids is None or info.uid in uids)
        ]
        if not gone:
            return [], self.checkpoint()
        work = self._rewrite(set(gone))
        return [i + 1 for i in reversed(gone)], work

    def checkpoint(self) -> Work:
        if self.readonly or not self._dirty:
            return NO_WORK
        return self._rewrite(set())

    def close(self) -> Work:
        return self.checkpoint()

    def refresh(self) -> tuple[list[int], Work]:
        """Pick up appended mail; reparse if another writer rewrote the file."""
        with locked_file(self._path) as handle:
            info = os.fstat(handle.fileno())
            if _unchanged(self._stamp, self._path, handle, info):
                return [], NO_WORK
            known = self._stamp.size
            if _grown(self._stamp, self._path, handle, info):
                handle.seek(known)
                tail = handle.read()
                skip = len(tail) - len(tail.lstrip(b"\n"))
                if tail.startswith(b"From ", skip):
                    self._restamp(handle)
                    spans = scan(tail[skip:], known + skip)
                    work = self._adopt(spans, len(tail), first=not self._spans)
                    return [], work + Work(reads=((self._key, len(tail)),), locks=1)
            handle.seek(0)
            data = handle.read()
            self._restamp(handle, data)
        return self._reconcile(data)

    def _reconcile(self, data: bytes) -> tuple[list[int], Work]:
        old = {info.uid: info for info in self.messages}
        self._spans, self.uidvalidity = [], 0
        work = self._adopt(scan(data), len(data), first=True)
        kept = {info.uid for info in self.messages}
        gone = [i + 1 for i, uid in enumerate(old) if uid not in kept]
        for info in self.messages:
            if info.uid in old:
                info.recent = old[info.uid].recent
        return sorted(gone, reverse=True), work + Work(
            reads=((self._key, len(data)),), locks=1
        )

    def _rewrite(self, drop: set[int]) -> Work:
        """Write every kept message back, with fresh UW headers (O(file size))."""
        with locked_file(self._path) as handle:
            data = handle.read()
            if len(data) < self._stamp.size:
                raise StoreError("mailbox was changed by another program; reselect")
            end = self._spans[-1].end if self._spans else 0
            extra_spans = []
            if len(data) > self._stamp.size >= 0:
                # mail delivered since the last look: keep it, after ours
                tail_start = max(self._stamp.size, end)
                tail = data[tail_start:]
                skip = len(tail) - len(tail.lstrip(b"\n"))
                extra_spans = scan(tail[skip:], tail_start + skip)
            self._adopt(extra_spans, 0, first=False)
            pieces: list[bytes] = []
            spans: list[_Span] = []
            # the parse of what we write, message by message, for the cache
            items: list[tuple[int, _Parsed | None]] = []
            offset = 0
            for index, span in enumerate(self._spans):
                if index in drop:
                    continue
                if pieces:
                    pieces.append(b"\n")
                    offset += 1
                base = None if spans else (self.uidvalidity, self.uidnext - 1)
                written = (span.info.flags & ALL_FLAGS, span.info.uid, base)
                parsed = span.parsed
                if parsed is not None and not (
                    parsed.body_start == span.body_start - span.start
                    and parsed.end == span.end - span.start
                    and span.from_line.endswith(b"\n")
                    and b"\r" not in span.header
                ):
                    parsed = None  # not provably what a fresh parse would see
                start = offset
                if (parsed is not None and parsed.written == written
                        and (span.end == span.body_start
                             or data[span.end - 1] == 10)):
                    # already exactly as UW writes it: the same bytes again
                    header, head_size = span.header, parsed.body_start
                    pieces.append(data[span.start : span.end])
                    offset += span.end - span.start
                else:
                    header = _stripped(span)
                    if base is not None:
                        header += b"X-IMAPbase: %d %d\n" % base
                    header += _status_header(span.info.flags)
                    header += b"X-UID: %d\n" % span.info.uid
                    body = data[span.body_start : span.end]
                    body_crlf = 0 if parsed is None else parsed.size - len(
                        parsed.visible)
                    if body and not body.endswith(b"\n"):
                        body_crlf += 1 if body.endswith(b"\r") else 2
                        body += b"\n"
                    head = span.from_line + header + b"\n"
                    head_size = len(head)
                    pieces += (head, body)
                    offset += head_size + len(body)
                    if parsed is not None:
                        # what scan() finds in these bytes (unless they end the
                        # file, which is parsed for real below)
                        parsed = _Parsed(
                            head_size, head_size + len(body), span.from_line,
                            header, span.visible, len(span.visible) + body_crlf,
                            parsed.internaldate,
                            (written[0], True, written[1] if written[1] < 10**10
                             else 0, None if base is None else
                             (base[0] & 0xFFFFFFFF, base[1] & 0xFFFFFFFF)),
                            written=written,
                        )
                items.append((start, parsed))
                spans.append(_Span(start, start + head_size, offset, span.from_line,
                                   header, span.visible, span.info, True,
                                   parsed=parsed,
                                   status=None if parsed is None else parsed.status))
            content = b"".join(pieces)
            if items and all(parsed is not None for _, parsed in items):
                start = items[-1][0]  # the last one ends the file: parse it
                items[-1] = _chunks(content[start:], start)[0]
            else:
                items = _chunks(content)
            handle.seek(0)
            handle.write(content)
            handle.truncate()
            handle.flush()
            sync(handle, self._backend.host_fsync)
            _bump(self._path)
            self._restamp(handle, content)
            self._backend.remember(self._path, handle, content, items)
        self._spans = spans
        self.messages = [span.info for span in spans]
        self._dirty = False
        return Work(
            cpu={"mbox.rewrite_byte": len(content), "mbox.byte": len(data)},
            reads=((self._key, len(data)),),
            writes=((self._key, len(content)),),
            fsyncs=1,
            locks=1,
        )


class QpopperDrop:
    """A QPopper session's private copy of one user's spool."""

    def __init__(self, backend: MboxBackend, user: str, spool: str,
                 copy: str) -> None:
        self._backend = backend
        self._user = user
        self._spool = spool
        self._copy = copy
        self._spans: list[_Span] = []
        self.sizes: list[int] = []
        self.uidls: list[str] = []
        self._open = False

    def take(self) -> Work:
        """Copy the spool (plus a stale copy left by a dead session) aside."""
        with locked_file(self._spool) as handle:
            data = handle.read()
            stale = b""
            if os.path.exists(self._copy):
                with open(self._copy, "rb") as old:
                    stale = old.read()
            combined = _join_mbox(stale, data)
            with open(self._copy, "wb") as out:
                out.write(combined)
                out.flush()
                sync(out, self._backend.host_fsync)
            handle.seek(0)
            handle.truncate()
            sync(handle, self._backend.host_fsync)
            _bump(self._spool)
            self._backend.forget(self._spool)
        self._open = True
        self._spans = scan(combined)
        for span in self._spans:
            parsed = span.parsed
            if parsed.pop is None:  # memoized with the message's parse
                parsed.pop = _pop_listing(combined, span)
            octets, uidl = parsed.pop
            self.sizes.append(octets)
            self.uidls.append(uidl)
        copy_key = _relkey(self._backend.root, self._copy)
        spool_key = _relkey(self._backend.root, self._spool)
        return Work(
            cpu={"mbox.byte": len(combined), "mbox.message": len(self._spans),
                 "mbox.rewrite_byte": len(combined)},
            reads=((spool_key, len(data)),) + (((copy_key, len(stale)),) if stale
                                               else ()),
            writes=((copy_key, len(combined)), (spool_key, 0)),
            fsyncs=2,
            files_created=0 if stale else 1,
            locks=1,
        )

    def text(self, index: int) -> tuple[bytes, Work]:
        span = self._spans[index]
        start = span.start + len(span.from_line)
        with open(self._copy, "rb") as handle:
            handle.seek(start)
            raw = handle.read(span.end - start)
        return to_crlf(raw), Work(reads=((_relkey(self._backend.root, self._copy),
                                          len(raw)),))

    def commit(self, deleted: set[int]) -> Work:
        """Write kept messages and newly arrived mail back; remove the copy."""
        if not self._open:
            return NO_WORK
        self._open = False
        with open(self._copy, "rb") as handle:
            copy = handle.read()
        kept = [
            copy[span.start : span.end]
            for index, span in enumerate(self._spans) if index not in deleted
        ]
        with locked_file(self._spool) as handle:
            arrived = handle.read()
            content = _join_mbox(b"\n".join(kept) + (b"\n" if kept else b""),
                                 arrived) if kept else arrived
            wrote = 0
            if kept:
                handle.seek(0)
                handle.write(content)
                handle.truncate()
                handle.flush()
                sync(handle, self._backend.host_fsync)
                wrote = len(content)
                _bump(self._spool)
                self._backend.forget(self._spool)
            os.unlink(self._copy)
        self._backend.release_drop(self._user)
        spool_key = _relkey(self._backend.root, self._spool)
        copy_key = _relkey(self._backend.root, self._copy)
        return Work(
            cpu={"mbox.rewrite_byte": wrote},
            reads=((copy_key, len(copy)), (spool_key, len(arrived))),
            writes=((spool_key, wrote),) if kept else (),
            fsyncs=1 if kept else 0,
            files_deleted=1,
            locks=1,
        )

    def abort(self) -> Work:
        """A dropped connection keeps every message (RFC 1939: no UPDATE state)."""
        return self.commit(set())


def _pop_listing(data: bytes, span: _Span) -> tuple[int, str]:
    """QPopper's (octets, UIDL) of one message: X-UIDL if present, else an MD5."""
    raw = data[span.start + len(span.from_line) : span.end]
    uidl = None
    for name, field in header_fields(to_crlf(span.header)):
        if name == b"x-uidl":
            uidl = field[field.find(b":") + 1 :].strip()[:70]
    return crlf_size(raw), (
        uidl.decode("ascii", "replace") if uidl else
        hashlib.md5(span.visible + _body(data, span)).hexdigest()
    )


def _body(data: bytes, span: _Span) -> bytes:
    return data[span.body_start : span.end]


def _join_mbox(first: bytes, second: bytes) -> bytes:
    """Concatenate two mbox texts with the blank line ``mailbox.mbox`` expects."""
    if not first:
        return second
    if not second:
        return first
    if first.endswith(b"\n\n"):
        return first + second
    return first + (b"\n" if first.endswith(b"\n") else b"\n\n") + second


def _relkey(root: str, path: str) -> str:
    return os.path.relpath(path, root)


class MboxBackend:
    """All users' mbox spools and folders under one store root."""

    kind = "mbox"

    def __init__(self, root: str | Path, host_fsync: bool = True) -> None:
        self.root = os.path.realpath(root)
        self.host_fsync = host_fsync  # really call os.fsync (Work counts it)
        self._pop_guard = threading.Lock()
        self._pop_users: set[str] = set()
        # path -> (stamp, [(offset, parse)]): each file's last parse, so the
        # simulator need not redo what UW IMAP redoes every open
        self._parses: dict[str, tuple[_Stamp, list[tuple[int, _Parsed]]]] = {}
        self.parse_counts = {"reused": 0, "tail": 0, "whole": 0}

    # -- the parse cache -------------------------------------------------------
    def parsed(self, path: str, handle) -> tuple[list[tuple[int, _Parsed]], int]:
        """(offset, parse) of every message of locked *handle*, and its size.

        Reused while the file is unchanged (see the module doc: change counts
        of this process, then stat and edge digests); when the file only grew
        (deliveries append) the tail from the last known message is parsed;
        otherwise the whole file. Writers in this module update or drop it.
        """
        info = os.fstat(handle.fileno())
        known = self._parses.get(path)
        if known is not None:
            stamp, items = known
            if _unchanged(stamp, path, handle, info):
                self.parse_counts["reused"] += 1
                return items, info.st_size
            if items and _grown(stamp, path, handle, info):
                start, last = items[-1]
                handle.seek(start)
                tail = handle.read()
                if tail.startswith(last.from_line):
                    items = items[:-1] + _chunks(tail, start)
                    self._parses[path] = (_stamp(path, handle, info), items)
                    self.parse_counts["tail"] += 1
                    return items, info.st_size
        handle.seek(0)
        data = handle.read()
        items = _chunks(data)
        self._parses[path] = (_stamp(path, handle, info, data), items)
        self.parse_counts["whole"] += 1
        return items, len(data)

    def stamp_of(self, path: str) -> _Stamp:
        """The stamp of the last parse of *path* (``parsed`` just made one)."""
        known = self._parses.get(path)
        return _NO_STAMP if known is None else known[0]

    def remember(self, path: str, handle, content: bytes,
                 items: list[tuple[int, _Parsed]]) -> None:
        """Record *items*, the parse of *content* just written to locked *handle*."""
        info = os.fstat(handle.fileno())
        if info.st_size == len(content):
            self._parses[path] = (_stamp(path, handle, info, content), items)
        else:
            self.forget(path)

    def forget(self, path: str, tree: bool = False) -> None:
        """Drop the parse of *path* (and, with *tree*, of anything under it)."""
        self._parses.pop(path, None)
        if tree:
            for known in [p for p in list(self._parses)
                          if p.startswith(path + os.sep)]:
                self._parses.pop(known, None)

    def signature(self, user: str, name: str = "INBOX") -> None:
        """Always None: sessions over mbox are not memoized (see Cyrus)."""
        return None

    # -- paths ---------------------------------------------------------------
    def _user(self, user: str) -> str:
        try:
            user = check_user(user)
        except MailboxNameError as exc:
            raise StoreError(str(exc)) from None
        if user.endswith((".folders", ".mailboxlist", ".pop", ".lock")):
            raise StoreError(f"user name {user!r} collides with store files")
        return user

    def _path(self, user: str, name: str) -> tuple[str, str]:
        """(canonical name, path) of mailbox *name*; raises StoreError if unsafe."""
        user = self._user(user)
        try:
            parts = split_name(name)
        except MailboxNameError as exc:
            raise StoreError(str(exc)) from None
        if parts == ("INBOX",):
            return "INBOX", os.path.join(self.root, user)
        folders = os.path.join(self.root, user + ".folders")
        path = os.path.join(folders, *parts)
        real = os.path.realpath(path)
        if not real.startswith(os.path.realpath(folders) + os.sep):
            raise StoreError(f"mailbox {name!r} is outside the user's folders")
        return "/".join(parts), path

    # -- mailbox operations ----------------------------------------------------
    def list_mailboxes(self, user: str) -> tuple[list[tuple[str, bool]], Work]:
        user = self._user(user)
        names: list[tuple[str, bool]] = [("INBOX", True)]
        folders = os.path.join(self.root, user + ".folders")
        scanned = 0
        for top, dirs, files in os.walk(folders):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            scanned += len(dirs) + len(files)
            rel = os.path.relpath(top, folders)
            prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            for entry in dirs:
                names.append((prefix + entry, False))
            for entry in sorted(files):
                if not entry.startswith(".") and not entry.endswith(".lock"):
                    names.append((prefix + entry, True))
        return names, Work(dir_entries_scanned=scanned)

    def open(self, user: str, name: str, readonly: bool, now: float
             ) -> tuple[MboxMailbox, Work]:
        canonical, path = self._path(user, name)
        if canonical != "INBOX" and not os.path.isfile(path):
            raise StoreError(f"mailbox {name!r} does not exist")
        mailbox = MboxMailbox(self, canonical, path, _relkey(self.root, path),
                              readonly, now)
        return mailbox, mailbox.load()

    def status(self, user: str, name: str, now: float
               ) -> tuple[dict[str, int], Work]:
        mailbox, work = self.open(user, name, True, now)
        counts = {
            "MESSAGES": len(mailbox.messages),
            "RECENT": sum(1 for m in mailbox.messages if m.recent),
            "UIDNEXT": mailbox.uidnext,
            "UIDVALIDITY": mailbox.uidvalidity,
            "UNSEEN": sum(1 for m in mailbox.messages if not m.flags & SEEN),
        }
        return counts, work

    def create(self, user: str, name: str, now: float) -> Work:
        canonical, path = self._path(user, name)
        if canonical == "INBOX" or os.path.lexists(path):
            raise StoreError(f"mailbox {name!r} already exists")
        parent = os.path.dirname(path)
        if os.path.isfile(parent):
            raise StoreError(f"mailbox {name!r} would sit inside a mailbox file")
        os.makedirs(parent, exist_ok=True)
        with open(path, "xb"):
            pass
        _bump(path)
        return Work(files_created=1)

    def delete(self, user: str, name: str) -> Work:
        canonical, path = self._path(user, name)
        if canonical == "INBOX":
            raise StoreError("INBOX cannot be deleted")
        if os.path.isdir(path) and not os.path.islink(path):
            if os.listdir(path):
                raise StoreError(f"mailbox {name!r} has children")
            os.rmdir(path)
        elif os.path.isfile(path):
            os.unlink(path)
            _bump(path)
            self.forget(path)
        else:
            raise StoreError(f"mailbox {name!r} does not exist")
        return Work(files_deleted=1)

    def rename(self, user: str, old: str, new: str) -> Work:
        old_name, old_path = self._path(user, old)
        new_name, new_path = self._path(user, new)
        if old_name == "INBOX" or new_name == "INBOX":
            raise StoreError("renaming INBOX is not supported")
        if not os.path.lexists(old_path):
            raise StoreError(f"mailbox {old!r} does not exist")
        if os.path.lexists(new_path):
            raise StoreError(f"mailbox {new!r} already exists")
        os.makedirs(os.path.dirname(new_path), exist_ok=True)
        shutil.move(old_path, new_path)
        _bump_tree(old_path)
        _bump_tree(new_path)
        self.forget(old_path, tree=True)
        self.forget(new_path, tree=True)
        return Work(files_renamed=1)

    def append(self, user: str, name: str, entries: list[tuple[bytes, int, int]],
               now: float) -> Work:
        canonical, path = self._path(user, name)
        if canonical != "INBOX" and not os.path.isfile(path):
            raise StoreError(f"[TRYCREATE] mailbox {name!r} does not exist")
        pieces = []
        for text, flags, internaldate in entries:
            plain = text.replace(b"\r\n", b"\n")
            end = plain.find(b"\n\n")
            header, body = (plain, b"") if end < 0 else (plain[: end + 1],
                                                          plain[end + 2 :])
            header = b"".join(
                raw for name_, raw in header_fields(to_crlf(header))
                if name_ not in HIDDEN_FIELDS
            ).replace(b"\r\n", b"\n")
            body = _FROM_ESCAPE.sub(rb">\1", body)
            if body and not body.endswith(b"\n"):
                body += b"\n"
            stamp = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(internaldate))
            pieces.append(b"From MAILER-DAEMON " + stamp.encode() + b"\n" + header
                          + _status_header(flags) + b"\n" + body)
        content = b"\n".join(pieces)
        with locked_file(path) as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            if size:
                handle.seek(max(0, size - 2))
                tail = handle.read()
                handle.seek(0, os.SEEK_END)
                content = _join_mbox(tail, content)[len(tail):]
            handle.write(content)
            handle.flush()
            sync(handle, self.host_fsync)
            _bump(path, append=True)
        key = _relkey(self.root, path)
        return Work(cpu={"mbox.rewrite_byte": len(content)},
                    writes=((key, len(content)),), fsyncs=1, locks=1)

    def subscriptions(self, user: str) -> tuple[set[str], Work]:
        user = self._user(user)
        path = os.path.join(self.root, user + ".mailboxlist")
        return read_subscriptions(path, _relkey(self.root, path))

    def set_subscriptions(self, user: str, names: set[str]) -> Work:
        user = self._user(user)
        path = os.path.join(self.root, user + ".mailboxlist")
        return write_subscriptions(path, _relkey(self.root, path), names)

    def open_drop(self, user: str, now: float) -> tuple[QpopperDrop, Work]:
        user = self._user(user)
        with self._pop_guard:
            if user in self._pop_users:
                raise StoreError("[IN-USE] maildrop already locked by a session")
            self._pop_users.add(user)
        drop = QpopperDrop(self, user, os.path.join(self.root, user),
                           os.path.join(self.root, f".{user}.pop"))
        try:
            return drop, drop.take()
        except BaseException:
            self.release_drop(user)
            raise

    def release_drop(self, user: str) -> None:
        with self._pop_guard:
            self._pop_users.discard(user)
