"""Cyrus-style IMAP and POP3 access over maildir: index and cache files.

Twins the 2007 access stack (FACTS.md "Cyrus: per mailbox cyrus.header,
cyrus.index (fixed records), cyrus.cache"). Messages stay maildir files
(written by the delivery stage, readable by ``mailbox.Maildir``); next to them
every mailbox directory holds

- ``cyrus.index``: a 64-byte header (magic, version, record size, UIDVALIDITY,
  UIDNEXT, record count, last UID seen by a read-write session, mtimes of
  ``new/`` and ``cur/`` when last in step) and one fixed ``RECORD_BYTES`` record
  per message: UID, internal date, CRLF size, header size, flags, where the
  file is, its name, and its entry in the cache;
- ``cyrus.cache``: per message the CRLF header block and the BODYSTRUCTURE.

Delivery calls ``index_delivery`` after it links a message into ``new/``, so
the index stays current at the cost of one appended record and cache entry;
SELECT then reads the index alone, FETCH of flags/sizes reads nothing more and
FETCH of headers or ENVELOPE reads the cache. A missing or damaged index is
rebuilt from the maildir (every message read, as Cyrus ``reconstruct`` does);
when ``new/`` or ``cur/`` changed behind the index's back the directories are
rescanned.

Change detection never depends on the host's clock for changes made in this
process: every writer here (sessions through the backend, ``index_delivery``,
rebuilds) bumps a process-wide generation of the mailbox folder and notes the
directories' state it left in step with the index, and an open mailbox
re-reads its index when the generation moved on. The file system's mtimes
(and the index's size and mtime) are consulted only for changes made outside
the process (``twin serve`` over a maildir someone else edits).

Flag changes rewrite one record in place and rename the file to its
``cur/NAME:2,FLAGS`` name; EXPUNGE unlinks the files and rewrites index and
cache. APPEND names its files ``<time>.M<serial>.twin`` from the simulated
time and a serial of the folder's (skipping names in use), never the host's
process id, so file names (and the disk blocks they map to) repeat run to run.

Layout under the store root: ``<user>/Maildir`` is INBOX, ``<user>/Maildir/.A.B``
the maildir++ folder ``A/B`` (so ``.`` is not allowed in names),
``<user>/Maildir/subscriptions`` the subscriptions.

Simulation shortcut (no effect on replies or Work): a closed mailbox leaves
its in-memory index with the backend, and the next open of that folder takes
it instead of re-reading the file while it is still in step (the same
generation and index stat, see above), reporting the read it stands for; an
index held by an open mailbox is never shared. ``index_delivery`` appends
its record to such a kept index too when the kept copy was in step with the
file, so the next open after a delivery reuses it as well. A backend made
with ``sole_writer=True`` tells changes by the generation alone (see
``CyrusBackend``) and does not stat the directories to note their mtimes in
the index header: it notes ``_SOLE_DIRS`` while a run goes on, and
``settle_store`` gives the directories the simulated end as their mtime and
notes it at the run's end, so index files repeat run to run (no host clock
in them) and ``twin serve`` finds them in step.

``CyrusBackend(root, host_fsync=False)`` (the simulator's store, as the
delivery stages' ``host_fsync`` setting) skips the real ``os.fsync`` calls,
and replaces index and cache by unlink and rename rather than a rename over
the old file (which makes ext4 flush the new file: ``store.replace_file``);
the Work counts them either way, so results do not change.

Limits: file names longer than ``NAME_BYTES`` cannot be indexed and are left
out; a writer outside the process that changes a directory within the file
system's timestamp granularity of the last indexed change may go unseen until
the next change; a file whose name does not start with its delivery time gets
its internal date from the file's mtime (as a maildir server would).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

from twin.access.imapfetch import bodystructure
from twin.access.message import parse_crlf_leaf, parse_lf_bare, parse_mime, to_crlf
from twin.access.names import MailboxNameError, check_user, split_name
from twin.access.store import (
    DELETED,
    FILE_LOCKS,
    NO_WORK,
    MessageInfo,
    StoreError,
    flags_from_info,
    host_fsync_for,
    maildir_info,
    note_host_fsync,
    plus_cpu,
    read_subscriptions,
    replace_file,
    sum_work,
    sync,
    write_file,
    write_subscriptions,
)
from twin.stages.work import Work

_tuple_new = tuple.__new__
_NO_CPU = NO_WORK.cpu  # Work()'s cpu (the records below are built positionally)
_U32 = struct.Struct("<I").pack

CPU_UNITS: dict[str, str] = {
    "cyrus.record": "one index record read, written or rebuilt",
    "cyrus.cache_byte": "one byte of the header cache served",
    "cyrus.parse_byte": "one byte of a message parsed to index it (delivery, rebuild)",
}

MAGIC = b"TWCYRIX1"
HEADER = struct.Struct("<8sIIIIIIqq")
HEADER_BYTES = 64
NAME_BYTES = 128
RECORD = struct.Struct(f"<IIIIBBHQI{NAME_BYTES}s")
RECORD_BYTES = RECORD.size
_PACK_RECORD = RECORD.pack
NEW, CUR, CUR_BARE = 0, 1, 2  # file in new/, in cur/ with ":2,info", in cur/ as is
INDEX, CACHE, LOCK = "cyrus.index", "cyrus.cache", "cyrus.header"
_STAMP = re.compile(r"(\d{1,12})[.]")


@dataclass(slots=True)
class _Record:
    info: MessageInfo
    header_size: int
    location: int
    name: str
    cache_offset: int
    cache_length: int

    def pack(self) -> bytes:
        raw = self.name.encode()
        info = self.info
        return _PACK_RECORD(info.uid, info.internaldate, info.size, self.header_size,
                            info.flags, self.location, len(raw), self.cache_offset,
                            self.cache_length, raw)

    def filename(self) -> str:
        # "new/NAME" as os.path.join("new", NAME) makes it (NAME is relative)
        location = self.location
        if location == NEW:
            return "new/" + self.name
        if location == CUR:
            flags = self.info.flags
            info = _INFOS.get(flags)
            if info is None:
                info = maildir_info(flags)
            return "cur/" + self.name + ":2," + info
        return "cur/" + self.name


_INFOS: dict[int, str] = {flags: maildir_info(flags) for flags in range(32)}
"""``maildir_info`` of every set of the five flags."""

_RECORDS_FORMAT = RECORD.format[1:]  # one record's fields, without the "<"
_PACKERS: dict[int, struct.Struct] = {}
"""Record count -> a ``Struct`` of that many records back to back."""
_PACKERS_KEEP = 256
_PACKERS_MAX = 512  # records per Struct (its format string grows with them)


def pack_records(records: list[_Record]) -> bytes:
    """``b"".join([r.pack() for r in records])`` in one ``struct`` call (the
    ``<`` format has no padding, so the records pack back to back)."""
    count = len(records)
    packer = _PACKERS.get(count)
    if packer is None:
        if count > _PACKERS_MAX or len(_PACKERS) >= _PACKERS_KEEP:
            return b"".join([r.pack() for r in records])
        packer = _PACKERS[count] = struct.Struct("<" + _RECORDS_FORMAT * count)
    values = []
    extend = values.extend
    for r in records:
        info = r.info
        raw = r.name.encode()
        extend((info.uid, info.internaldate, info.size, r.header_size, info.flags,
                r.location, len(raw), r.cache_offset, r.cache_length, raw))
    return packer.pack(*values)


def _unpack(raw: bytes) -> _Record:
    uid, date, size, hsize, flags, location, length, offset, clen, name = (
        RECORD.unpack(raw)
    )
    return _Record(MessageInfo(uid, size, date, flags), hsize, location,
                   name[:length].decode(), offset, clen)


_PARSED: dict[bytes, tuple[int, bytes, int]] = {}
_PARSED_KEEP = 64
_PARSED_MAX_BYTES = 1 << 18  # so the remembered messages stay under 16 MiB


def _parse_delivered(message: bytes) -> tuple[int, bytes, int]:
    """(CRLF size, cache entry, header size) of the delivered bytes *message*.

    Remembers the last few: a message delivered to several local recipients
    is parsed once (each delivery still reports its parse in the Work, as
    lmtpd parses per delivery; only the simulator's wall time is saved).
    """
    known = _PARSED.get(message)
    if known is None:
        known = _parse_stored(message)
        if len(message) <= _PARSED_MAX_BYTES:
            if len(_PARSED) >= _PARSED_KEEP:
                del _PARSED[next(iter(_PARSED))]
            _PARSED[message] = known
    return known


def delivery_parse(message: bytes) -> tuple[int, bytes, int]:
    """What ``index_delivery`` parses of the delivered bytes *message* (its
    *parsed*): for a caller that parses them elsewhere, ahead of time."""
    return _parse_stored(message)


def _parse_stored(raw: bytes) -> tuple[int, bytes, int]:
    """(CRLF size, cache entry, header size) of a message as stored or
    delivered, *raw*: the same as ``_cache_entry(to_crlf(raw))``, but measured
    in place (``parse_lf``) without the CRLF copy unless it has bare CRs."""
    lf = raw
    if b"\r" in raw:  # (parse_lf would answer None)
        known = parse_crlf_leaf(raw)  # CRLF ends only, one entity: in place
        if known is not None:
            return (known[1], *_entry_of(known[0]))
        # CRLF ends (SMTP data): to_crlf folds them to LF first, so without
        # bare CRs the LF form measures the same
        lf = raw.replace(b"\r\n", b"\n")
        if b"\r" in lf:  # bare CRs as well
            text = to_crlf(raw)
            return (len(text), *_cache_entry(text))
    root, size = parse_lf_bare(lf)
    return (size, *_entry_of(root))


def _cache_entry(text: bytes) -> tuple[bytes, int]:
    """Cache bytes (header, BODYSTRUCTURE) of CRLF *text*, and the header size."""
    return _entry_of(parse_mime(text))


def _entry_of(tree) -> tuple[bytes, int]:
    header = tree.header  # split_message(text)[0], as the parse split it
    structure = bodystructure(tree)
    entry = _U32(len(header)) + header + _U32(len(structure)) + structure
    return entry, len(header)


def _split_name(filename: str) -> tuple[str, int, int]:
    """(base name, location, flags) of a file in new/ or cur/."""
    if ":2," in filename:
        base, _, info = filename.partition(":2,")
        return base, CUR, flags_from_info(info)
    return filename, CUR_BARE, 0


def _read_file(path: str) -> bytes:
    """All of the file *path* (FileNotFoundError when there is none)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        want = os.fstat(fd).st_size + 1
        data = os.read(fd, want)
        if len(data) < want:  # a short read of a regular file: its end
            return data
        chunks = [data]
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _stamp_of(name: str, path: str) -> int:
    match = _STAMP.match(name)
    if match:
        return int(match.group(1)) & 0xFFFFFFFF
    return int(os.stat(path).st_mtime) & 0xFFFFFFFF


_HEADERS_MADE: set[str] = set()
"""Folders whose lock file (cyrus.header) is known to exist (sole writers)."""


_LOCK_PATHS: dict[str, str] = {}
"""Folder -> the path of its lock file."""


class _lock:
    """Cyrus locks a mailbox through its cyrus.header; index and cache are
    replaced by rename, so they cannot carry the lock themselves. (What
    ``locked_file`` does, on a bare descriptor: the same lock calls.)

    With *sole* (a ``sole_writer`` store: no other process touches it) the
    in-process lock alone excludes every writer, so the POSIX lock is not
    taken; the cyrus.header file is still created at the first lock, so the
    store holds the same files. The Work counts the lock either way."""

    __slots__ = ("_folder", "_path", "_fd", "_guard", "_sole")

    def __init__(self, folder: str, sole: bool = False) -> None:
        self._folder = folder
        path = _LOCK_PATHS.get(folder)
        if path is None:
            if len(_LOCK_PATHS) > 1 << 16:
                _LOCK_PATHS.clear()
            path = _LOCK_PATHS[folder] = os.path.join(folder, LOCK)
        self._path = path
        self._sole = sole

    def __enter__(self) -> None:
        self._guard = FILE_LOCKS.get(self._path)
        self._guard.acquire()
        if self._sole and self._folder in _HEADERS_MADE:
            self._fd = -1
            return
        try:
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            if self._sole:
                with _SHARED_GUARD:
                    _HEADERS_MADE.add(self._folder)
                    _note_folder(self._folder)
                os.close(self._fd)
                self._fd = -1
                return
            try:
                fcntl.lockf(self._fd, fcntl.LOCK_EX)
            except BaseException:
                os.close(self._fd)
                raise
        except BaseException:
            self._guard.release()
            raise

    def __exit__(self, *exc) -> None:
        if self._fd < 0:
            self._guard.release()
            return
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
        finally:
            self._guard.release()


class _Shared:
    """What this process knows of one mailbox folder: *generation* counts
    the changes made here to its index, cache or directories, and *dirs* is
    the (``new/``, ``cur/``) mtimes at the last moment a writer here left the
    index in step with the directories (None: not known yet; ``_STALE``: a
    writer here changed them without indexing the change)."""

    __slots__ = ("generation", "dirs", "idle", "paths", "cache_writes", "parent")

    def __init__(self, folder: str) -> None:
        self.generation = 0
        # the directory a maildir++ folder (".A") sits in; None for INBOX
        self.parent = (os.path.dirname(folder)
                       if os.path.basename(folder).startswith(".") else None)
        # how many times a writer here wrote the folder's cyrus.cache: an
        # index's copy of the cache bytes is good while it matches
        self.cache_writes = 0
        self.dirs: tuple[int, int] | None = None
        # the index a closed mailbox left with its backend (not held by an
        # open mailbox), which index_delivery keeps in step when it can
        self.idle: _Index | None = None
        self.paths: tuple[str, str, str] | None = None  # index, new/, cur/


_STALE = (-1, -1)
_SOLE_DIRS = (0, 0)
"""What a sole writer's index notes as its directories' mtimes while a run
goes on (see ``_Index.dirs_synced``, ``settle_store``)."""
_NO_STAMP = (-2, -2)  # a sole writer's copy that did not stat the file
_LOCKED = Work(locks=1)
_SOLE_ROOTS: set[str] = set()
"""Real store roots whose last backend was made with ``sole_writer=True``."""
_SHARED: dict[str, _Shared] = {}
_SHARED_GUARD = threading.Lock()


_BY_PARENT: dict[str, set[str]] = {}
"""Known folders (in ``_SHARED`` or ``_HEADERS_MADE``) by parent directory:
a maildir++ folder and its subfolders (``.A``, ``.A.B``) share one."""


def _shared(folder: str) -> _Shared:
    with _SHARED_GUARD:
        state = _SHARED.get(folder)
        if state is None:
            state = _SHARED[folder] = _Shared(folder)
            _note_folder(folder)
        return state


def _note_folder(folder: str) -> None:
    parent = os.path.dirname(folder)
    known = _BY_PARENT.get(parent)
    if known is None:
        known = _BY_PARENT[parent] = set()
    known.add(folder)


class _Spares(dict):
    """A backend's kept indexes by folder (see ``CyrusBackend._spare``), and
    *subfolders*: parent directory -> the maildir++ folders (``.A``, ``.A.B``)
    ever kept there, so that forgetting a folder looks at its siblings only."""

    __slots__ = ("subfolders",)

    def __init__(self) -> None:
        super().__init__()
        self.subfolders: dict[str, set[str]] = {}


def _leave(spare: _Spares, index: _Index) -> None:
    """Leave *index* (no longer held by an open mailbox) in *spare*."""
    folder = index.folder
    spare[folder] = index
    index.shared.idle = index
    index.held = False
    parent = index.shared.parent
    if parent is not None:
        known = spare.subfolders.get(parent)
        if known is None:
            known = spare.subfolders[parent] = set()
        known.add(folder)


def _forget(folder: str) -> None:
    """Drop what is known of *folder* and its subfolders (deleted, renamed)."""
    with _SHARED_GUARD:
        siblings = _BY_PARENT.get(os.path.dirname(folder), ())
        for known in [k for k in siblings if k == folder or k.startswith(folder + ".")]:
            _SHARED.pop(known, None)
            _HEADERS_MADE.discard(known)
            siblings.discard(known)


def forget_store(store_root: str | Path) -> None:
    """Drop what this process knows of every folder under *store_root* (the
    store goes on in another process: ``twin.sim.sessions``)."""
    prefix = os.path.join(os.path.realpath(store_root), "")
    with _SHARED_GUARD:
        for folder in [k for k in _SHARED if k.startswith(prefix)]:
            del _SHARED[folder]
            _HEADERS_MADE.discard(folder)
        for parent in [k for k in _BY_PARENT if k.startswith(prefix)]:
            del _BY_PARENT[parent]


_DIR_PATHS: dict[str, tuple[str, str]] = {}


def _dir_mtimes(folder: str) -> tuple[int, int]:
    paths = _DIR_PATHS.get(folder)
    if paths is None:
        if len(_DIR_PATHS) > 1 << 16:
            _DIR_PATHS.clear()
        paths = _DIR_PATHS[folder] = (os.path.join(folder, "new"),
                                      os.path.join(folder, "cur"))
    try:
        return os.stat(paths[0]).st_mtime_ns, os.stat(paths[1]).st_mtime_ns
    except FileNotFoundError:
        return 0, 0


_INDEX_PATHS: dict[str, tuple[str, str]] = {}
"""Folder -> the paths of its index and cache files."""


class _Index:
    """The in-memory copy of one mailbox's index header and records."""

    def __init__(self, folder: str, key: str, host_fsync: bool = True,
                 sole_writer: bool = False) -> None:
        self.folder = folder
        self.host_fsync = host_fsync  # really call os.fsync (Work counts it)
        self.sole_writer = sole_writer  # no writers outside the process: no stats
        self.key = key  # folder path relative to the store root
        paths = _INDEX_PATHS.get(folder)
        if paths is None:
            if len(_INDEX_PATHS) > 1 << 16:
                _INDEX_PATHS.clear()
            paths = _INDEX_PATHS[folder] = (os.path.join(folder, INDEX),
                                            os.path.join(folder, CACHE))
        self.path, self.cache_path = paths
        self.uidvalidity = 0
        self.uidnext = 1
        self.recent_uid = 0
        self.mtimes = (0, 0)
        self.records: list[_Record] = []
        self.stamp = (-1, -1)
        self.shared = _shared(folder)
        self.generation = -1  # the shared generation the records are in step with
        # the cache file's bytes as of the folder's cache_writes count
        # cache_serial (sole writers only: no one else writes the file):
        # cache_image then the entries deliveries appended since (cache_more),
        # cache_size bytes in all
        self.cache_image: bytes | None = None
        self.cache_more: list[bytes | bytearray] = []
        self.cache_size = 0
        self.cache_serial = -1
        self.held = False  # taken by a backend (open mailbox, append, status)
        # (threshold, records list) of the last open: every record of that
        # list up to the threshold UID was marked not recent then, and none
        # marked recent since (``CyrusBackend._open`` marks the rest only)
        self.recent_marked: tuple[int, list | None] = (-1, None)

    def changed(self, info: os.stat_result) -> bool:
        """Whether the index file (whose stat is *info*) changed since this
        copy was last in step: a writer in this process bumped the
        generation, or (outside writers only) the file's size or mtime moved."""
        return (self.shared.generation != self.generation
                or (info.st_size, info.st_mtime_ns) != self.stamp)

    def in_step(self, info: os.stat_result) -> None:
        """Note that this copy matches the index file whose stat is *info*."""
        self.generation = self.shared.generation
        self.stamp = (info.st_size, info.st_mtime_ns)

    def bump(self, info: os.stat_result | None = None) -> None:
        """Count a change made here; with *info* (the index file's stat
        afterwards) this copy is in step with it."""
        with _SHARED_GUARD:
            self.shared.generation += 1
        if info is not None:
            self.in_step(info)

    def bump_written(self, fd: int) -> None:
        """``bump(os.fstat(fd))`` after this copy wrote the index file open as
        *fd*. A sole writer's copy tells changes by the generation alone
        (``reuse``, ``disk_positions``, ``catch_up``, and ``_index_append``
        for sole stores), so it skips the fstat and marks its stamp unknown
        (``_NO_STAMP``, never equal to a file's)."""
        if not self.sole_writer:
            self.bump(os.fstat(fd))
            return
        with _SHARED_GUARD:
            self.shared.generation += 1
        self.generation = self.shared.generation
        self.stamp = _NO_STAMP

    def dirs_moved(self) -> bool:
        """Whether ``new/`` or ``cur/`` changed behind the index's back."""
        known = self.shared.dirs
        if self.sole_writer and known is not None:
            return known == _STALE  # only this process's writers change it
        current = _dir_mtimes(self.folder)
        if known is None:  # first sight in this process: the header's note
            if current != self.mtimes:
                return True
            self.shared.dirs = current
            return False
        return current != known

    def dirs_synced(self, mtimes: tuple[int, int] | None = None) -> None:
        """Note that index and directories are in step now (*mtimes*: the
        directories' mtimes as their writer will leave them, instead of a
        stat of them as they are). A sole writer notes ``_SOLE_DIRS``
        instead of the stat: it tells changes by the generation alone, and
        the directories' mtimes are the host's clock (``settle_store`` notes
        them at the end of a run)."""
        if mtimes is None:
            mtimes = _SOLE_DIRS if self.sole_writer else _dir_mtimes(self.folder)
        self.mtimes = mtimes
        self.shared.dirs = mtimes

    def header_bytes(self, count: int | None = None) -> bytes:
        count = len(self.records) if count is None else count
        return HEADER.pack(MAGIC, 1, RECORD_BYTES, self.uidvalidity, self.uidnext,
                           count, self.recent_uid, *self.mtimes
                           ).ljust(HEADER_BYTES, b"\0")

    def read(self) -> Work | None:
        """Load the index file; None when it is missing or not ours."""
        try:
            with open(self.path, "rb") as handle:
                data = handle.read()
                info = os.fstat(handle.fileno())
        except FileNotFoundError:
            return None
        if len(data) < HEADER_BYTES:
            return None
        magic, version, size, validity, uidnext, count, recent, new, cur = (
            HEADER.unpack_from(data)
        )
        if (magic != MAGIC or version != 1 or size != RECORD_BYTES
                or len(data) != HEADER_BYTES + count * RECORD_BYTES):
            return None
        self.uidvalidity, self.uidnext, self.recent_uid = validity, uidnext, recent
        self.mtimes = (new, cur)
        self.records = [
            _unpack(data[offset : offset + RECORD_BYTES])
            for offset in range(HEADER_BYTES, len(data), RECORD_BYTES)
        ]
        self.in_step(info)
        return Work(cpu={"cyrus.record": count}, reads=((self.key + INDEX, len(data)),))

    def reuse(self) -> Work | None:
        """What ``read`` would report, when this copy is still in step with
        the index file (nothing changed it since): the simulator's shortcut
        for a mailbox opened again, same Work; None when it must be read."""
        if _SHARED.get(self.folder) is not self.shared:
            return None  # the folder was deleted or renamed since
        if self.sole_writer:
            if self.shared.generation != self.generation:
                return None
        else:
            try:
                info = os.stat(self.path)
            except FileNotFoundError:
                return None
            if self.changed(info):
                return None
        count = len(self.records)
        # Work(cpu={"cyrus.record": count}, reads=((key + INDEX, size),))
        return _tuple_new(Work, (
            {"cyrus.record": count},
            ((self.key + INDEX, HEADER_BYTES + count * RECORD_BYTES),), (),
            0, 0, 0, 0, 0, 0, 0, 0))

    def write_all(self, cache: bytes | None) -> Work:
        """Replace the index (and the cache, if given) with the in-memory state."""
        records = self.records
        data = self.header_bytes() + pack_records(records)
        targets = [(self.path, data, INDEX)]
        if cache is not None:
            targets.insert(0, (self.cache_path, cache, CACHE))
        in_place = self.sole_writer and not self.host_fsync
        if cache is not None:
            self.cache_written()  # first: a failed write leaves no copy trusted
        for path, content, _ in targets:
            if in_place:
                # a sole writer's scratch store: the same bytes written over
                # the old file (no new inode, unlink and rename); readers all
                # take the in-process lock and tell changes by the generation
                _overwrite(path, content)
            else:
                temporary = path + ".NEW"
                write_file(temporary, content, self.host_fsync)
                replace_file(temporary, path, self.host_fsync)
        if cache is not None and self.sole_writer:
            self._keep_cache(cache)  # what the file holds now
        if self.sole_writer:
            self.bump_written(-1)
        else:
            self.bump(os.stat(self.path))
        # Work(cpu={"cyrus.record": n}) + Work(writes=((key + name, len),),
        # fsyncs=1, files_created=1, files_renamed=1) for each target, in one
        key, done = self.key, len(targets)
        return _tuple_new(Work, (
            {"cyrus.record": len(records)}, (),
            tuple([(key + name, len(content)) for _, content, name in targets]),
            done, done, done, 0, 0, 0, 0, 0))

    def cache_written(self) -> None:
        """Count a write of the cache file (call it before writing): every
        copy of the cache bytes kept so far stops being trusted."""
        with _SHARED_GUARD:
            self.shared.cache_writes += 1
        self.cache_image = None

    def _keep_cache(self, cache: bytes) -> None:
        self.cache_image, self.cache_more = cache, []
        self.cache_size = len(cache)
        self.cache_serial = self.shared.cache_writes

    def cache_appended(self, size: int, entry: bytearray) -> bool:
        """A delivery appended *entry* to the cache file, which held *size*
        bytes (the count of cache writes taken before it wrote): keep the
        copy in step if it was the file's bytes; whether it was."""
        if self.cache_image is None or self.cache_size != size or (
                self.cache_serial != self.shared.cache_writes - 1):
            return False
        self.cache_more.append(entry)
        self.cache_size += len(entry)
        self.cache_serial = self.shared.cache_writes
        return True

    def read_cache(self) -> tuple[bytes, Work]:
        """The cache file's bytes and the Work of reading them. A sole
        writer's index keeps them while no writer here wrote the file (the
        simulator's shortcut: same bytes, same Work, no read)."""
        cache = self.cache_image
        shared = self.shared
        if (cache is not None and self.cache_serial == shared.cache_writes
                and _SHARED.get(self.folder) is shared):
            if self.cache_more:  # the entries deliveries appended since
                cache = self.cache_image = cache + b"".join(self.cache_more)
                self.cache_more = []
            # Work(reads=((self.key + CACHE, len(cache)),))
            return cache, _tuple_new(Work, (_NO_CPU, ((self.key + CACHE, len(cache)),),
                                            (), 0, 0, 0, 0, 0, 0, 0, 0))
        try:
            with open(self.cache_path, "rb") as handle:
                cache = handle.read()
        except FileNotFoundError:
            cache = b""
        if self.sole_writer:
            self._keep_cache(cache)
        return cache, Work(reads=((self.key + CACHE, len(cache)),))

    def add_file(self, subdir: str, filename: str, cache: bytearray,
                 internaldate: int | None, text: bytes | None = None,
                 cache_offset: int | None = None,
                 parsed: tuple[int, bytes, int] | None = None) -> Work:
        """Index one maildir file, appending its entry to *cache* (whose end is
        at *cache_offset* in the file, default its length); read it unless
        *text* (its CRLF text) or *parsed* (``_parse_delivered`` of it) is
        given."""
        if subdir == "new":
            base, location, flags = filename, NEW, 0
        else:
            base, location, flags = _split_name(filename)
        if len(base.encode()) > NAME_BYTES:
            return NO_WORK
        reads = ()
        if parsed is not None:
            size, entry, header_size = parsed
        elif text is not None:
            size = len(text)
            entry, header_size = _cache_entry(text)
        else:
            with open(os.path.join(self.folder, subdir, filename), "rb") as handle:
                raw = handle.read()
            reads = ((self.key + subdir + "/" + filename, len(raw)),)
            size, entry, header_size = _parse_stored(raw)
        date = internaldate if internaldate is not None else _stamp_of(
            base, os.path.join(self.folder, subdir, filename))
        self.records.append(_Record(
            MessageInfo(self.uidnext, size, date, flags), header_size, location,
            base, len(cache) if cache_offset is None else cache_offset, len(entry)))
        self.uidnext += 1
        cache += entry
        # Work(cpu={"cyrus.parse_byte": size, "cyrus.record": 1}, reads=reads)
        return _tuple_new(Work, ({"cyrus.parse_byte": size, "cyrus.record": 1}, reads,
                                 (), 0, 0, 0, 0, 0, 0, 0, 0))

    def rebuild(self, now: float, texts: dict[str, bytes] | None = None,
                pending_mtime_ns: int | None = None) -> Work:
        """Reconstruct index and cache from the maildir (reads every message,
        but those whose bytes *texts* holds by file name). With
        *pending_mtime_ns* *texts* is the whole mailbox, every file in
        ``cur/`` (a writer process may not have written them yet): the
        listing is taken from it (the names ``os.listdir`` would find, so the
        same records, order and Work) and the directories' state noted is
        that mtime, which the caller gives ``new/`` and ``cur/`` once the
        files are written."""
        if pending_mtime_ns is None:
            names, work = self._listing()
        else:
            names, work = _listing_of(texts or {})
        self.uidvalidity = max(1, int(now)) & 0xFFFFFFFF
        self.uidnext, self.recent_uid, self.records = 1, 0, []
        cache = bytearray()
        texts = texts or {}
        works = [work]
        for _, subdir, filename in sorted(names, key=_listing_key):
            raw = texts.get(filename)
            works.append(self.add_file(subdir, filename, cache, None, None, None,
                                       None if raw is None else _parse_stored(raw)))
        self.dirs_synced(None if pending_mtime_ns is None
                         else (pending_mtime_ns, pending_mtime_ns))
        works.append(self.write_all(bytes(cache)))
        return sum_work(works)  # the same as adding them up one by one

    def _listing(self) -> tuple[list[tuple[int, str, str]], Work]:
        names = []
        scanned = 0
        for subdir in ("new", "cur"):
            try:
                entries = os.listdir(os.path.join(self.folder, subdir))
            except FileNotFoundError:
                continue
            scanned += len(entries)
            for entry in entries:
                if not entry.startswith("."):
                    names.append((_stamp_key(entry), subdir, entry))
        return names, Work(dir_entries_scanned=scanned)

    def find_file(self, record: _Record) -> Work:
        """Look for *record*'s file under another name (flags changed outside)."""
        names, work = self._listing()
        for _, subdir, filename in names:
            if subdir == "new" and filename == record.name:
                record.location = NEW
            elif subdir == "cur" and _split_name(filename)[0] == record.name:
                _, record.location, flags = _split_name(filename)
                if record.location == CUR:
                    record.info.flags = flags
        return work

    def disk_positions(self, fd: int) -> dict[int, int] | None:
        """UID -> record number on disk if the index file (open as the
        descriptor *fd*) changed since we read it (another session wrote it),
        else None. Call under the lock."""
        if self.sole_writer:
            if self.shared.generation == self.generation:
                return None
            size = os.fstat(fd).st_size
        else:
            info = os.fstat(fd)
            if not self.changed(info):
                return None
            size = info.st_size
        data = os.pread(fd, size, 0)
        return {
            struct.unpack_from("<I", data, offset)[0]: number
            for number, offset in enumerate(
                range(HEADER_BYTES, len(data), RECORD_BYTES)
            )
        }

    def catch_up(self) -> Work | None:
        """Re-read a changed index, then rescan if the directories moved on;
        None when nothing changed."""
        if self.sole_writer:
            index_changed = self.shared.generation != self.generation
        else:
            try:
                info = os.stat(self.path)
            except FileNotFoundError:
                return None
            index_changed = self.changed(info)
        if not index_changed and not self.dirs_moved():
            return None
        with _lock(self.folder, self.sole_writer):
            work = Work(locks=1)
            if index_changed:
                got = self.read()
                if got is None:
                    return None
                work += got
            if self.dirs_moved():
                work += self.resync()
        return work

    def resync(self) -> Work:
        """Bring the index in line with new/ and cur/ after outside changes."""
        names, work = self._listing()
        where = {}
        for _, subdir, filename in names:
            base = filename if subdir == "new" else _split_name(filename)[0]
            where[base] = (subdir, filename)
        cache, got = self.read_cache()
        work += got
        kept = []
        for record in self.records:
            found = where.pop(record.name, None)
            if found is None:
                continue
            subdir, filename = found
            if subdir == "new":
                record.location = NEW
            else:
                _, record.location, flags = _split_name(filename)
                if record.location == CUR:
                    record.info.flags = flags
            kept.append(record)
        self.records = kept
        grown = bytearray(cache)
        for base in sorted(where, key=lambda b: (_stamp_key(b), _arrival_key(b), b)):
            subdir, filename = where[base]
            work += self.add_file(subdir, filename, grown, None)
        self.dirs_synced()
        return work + self.write_all(bytes(grown))


def _listing_of(texts: dict[str, bytes]) -> tuple[list[tuple[int, str, str]], Work]:
    """``_Index._listing`` of a maildir whose ``cur/`` holds exactly the files
    *texts* names and whose ``new/`` is empty."""
    names = [(_stamp_key(entry), "cur", entry) for entry in texts
             if not entry.startswith(".")]
    return names, Work(dir_entries_scanned=len(texts))


def _stamp_key(name: str) -> int:
    match = _STAMP.match(name)
    return int(match.group(1)) if match else 0


_DIGITS = re.compile(r"(\d+)")


def _arrival_key(base: str) -> tuple:
    """Order of arrival of maildir base names: their numbers compared as numbers.

    Maildir names are ``<seconds>.<unique>.<host>``; within a second the
    unique part counts up (``M<usec>P<pid>Q<n>`` of Python's mailbox, ``M<id>``
    of the twin), so "M99999" comes before "M100000" as the writer meant.
    """
    parts = _DIGITS.split(base)
    parts[1::2] = [int(digits) for digits in parts[1::2]]
    return tuple(parts)


def _listing_key(entry: tuple[int, str, str]) -> tuple:
    stamp, subdir, filename = entry
    base = filename if subdir == "new" else _split_name(filename)[0]
    return stamp, _arrival_key(base), subdir, filename


class CyrusMailbox:
    """A selected maildir mailbox seen through its Cyrus-style index."""

    def __init__(self, name: str, index: _Index, readonly: bool,
                 spare: _Spares | None = None) -> None:
        self.name = name
        self.readonly = readonly
        self._index = index
        self._spare = spare  # where close() leaves the index for the next open
        self._cache: bytes | None = None
        self.messages: list[MessageInfo] = [r.info for r in index.records]
        self._records_seen = index.records

    @property
    def uidvalidity(self) -> int:
        return self._index.uidvalidity

    @property
    def uidnext(self) -> int:
        return self._index.uidnext

    def _cache_bytes(self) -> tuple[bytes, Work]:
        if self._cache is None:
            self._cache, work = self._index.read_cache()
            return self._cache, work
        return self._cache, NO_WORK

    def _entry(self, index: int) -> tuple[bytes, bytes, Work]:
        record = self._index.records[index]
        cache, work = self._cache_bytes()
        entry = cache[record.cache_offset : record.cache_offset + record.cache_length]
        if len(entry) < 8:
            return b"\r\n", b"", work
        size = struct.unpack_from("<I", entry)[0]
        header = entry[4 : 4 + size]
        structure = entry[8 + size :]
        return header, structure, plus_cpu(work, {"cyrus.cache_byte": len(entry)})

    def header(self, index: int) -> tuple[bytes, Work]:
        header, _, work = self._entry(index)
        return header, work

    def bodystructure(self, index: int) -> tuple[bytes | None, Work]:
        _, structure, work = self._entry(index)
        return structure or None, work

    def text(self, index: int) -> tuple[bytes, Work]:
        record = self._index.records[index]
        name = record.filename()
        try:
            raw = _read_file(self._index.folder + "/" + name)
            found = None
        except FileNotFoundError:
            found = self._index.find_file(record)  # moved by someone: look again
            name = record.filename()
            try:
                raw = _read_file(os.path.join(self._index.folder, name))
            except FileNotFoundError:
                raise StoreError("message file vanished; try NOOP") from None
        key = self._index.key + name.replace(os.sep, "/")
        work = _tuple_new(Work, (_NO_CPU, ((key, len(raw)),), (), 0, 0, 0, 0, 0, 0, 0,
                                 0))  # Work(reads=((key, len(raw)),))
        return to_crlf(raw), work if found is None else found + work

    def set_flags(self, changes: list[tuple[int, int]]) -> Work:
        """Rename each file to its new flags and rewrite its record in place."""
        if self.readonly:
            return NO_WORK
        index = self._index
        with _lock(index.folder, index.sole_writer):
            fd = os.open(index.path, os.O_RDWR)
            try:
                return self._set_flags(fd, changes)
            finally:
                os.close(fd)

    def _set_flags(self, fd: int, changes: list[tuple[int, int]]) -> Work:
        index = self._index
        folder = index.folder
        positions = index.disk_positions(fd)
        renamed = records = 0
        work = _LOCKED
        records_of = index.records
        for number, flags in changes:
            record = records_of[number]
            info = record.info
            if info.flags == flags and record.location == CUR:
                continue
            old = folder + "/" + record.filename()  # os.path.join's result
            info.flags = flags
            record.location = CUR
            # folder + "/" + record.filename(), in line (now in cur/ with info)
            new = (folder + "/cur/" + record.name + ":2,"
                   + (_INFOS.get(flags) or maildir_info(flags)))
            if old != new:
                try:
                    os.rename(old, new)
                    renamed += 1
                except FileNotFoundError:
                    work += index.find_file(record)
            place = number if positions is None else positions.get(record.info.uid)
            if place is None:
                continue  # expunged by another session; NOOP will tell
            os.pwrite(fd, record.pack(), HEADER_BYTES + place * RECORD_BYTES)
            records += 1
        writes = ((index.key + INDEX, RECORD_BYTES),) * records
        if positions is None:  # the header is still ours to rewrite
            index.dirs_synced()
            os.pwrite(fd, index.header_bytes(), 0)
            index.bump_written(fd)
            writes += ((index.key + INDEX, HEADER_BYTES),)
        else:  # records written where the other writer keeps them
            index.bump()
            if index.shared.dirs != _STALE:
                index.shared.dirs = (_SOLE_DIRS if index.sole_writer
                                     else _dir_mtimes(index.folder))
        if work is _LOCKED:  # no file looked for: one record, as the sum
            # Work(cpu=..., writes=writes, files_renamed=renamed, locks=1)
            return _tuple_new(Work, ({"cyrus.record": records} if records else _NO_CPU,
                                     (), writes, 0, 0, renamed, 0, 0, 1, 0, 0))
        if records:
            return work + Work(cpu={"cyrus.record": records}, writes=writes,
                               files_renamed=renamed)
        return work + Work(writes=writes, files_renamed=renamed)

    def expunge(self, uids: set[int] | None) -> tuple[list[int], Work]:
        """Unlink \\Deleted files and rewrite index and cache without them."""
        if self.readonly:
            return [], NO_WORK
        index = self._index
        work = _LOCKED  # Work(locks=1)
        with _lock(index.folder, index.sole_writer):
            if index.sole_writer and index.shared.generation == index.generation:
                moved = False  # what disk_positions says, without the file
            else:
                fd = os.open(index.path, os.O_RDONLY)
                try:
                    moved = index.disk_positions(fd) is not None
                finally:
                    os.close(fd)
            if moved:
                work += index.read() or NO_WORK  # another writer: start fresh
                self._cache = None
            records = index.records
            gone, kept = [], []  # (numbers ascending)
            if uids is None:
                for number, r in enumerate(records):
                    if r.info.flags & DELETED:
                        gone.append(number)
                    else:
                        kept.append(r)
            else:
                for number, r in enumerate(records):
                    if r.info.flags & DELETED and r.info.uid in uids:
                        gone.append(number)
                    else:
                        kept.append(r)
            if not gone:
                return self._reconcile(), work
            deleted = 0
            folder = index.folder
            for number in gone:
                try:
                    os.unlink(folder + "/" + records[number].filename())
                    deleted += 1
                except FileNotFoundError:
                    pass
            if deleted:  # (a count alone: adding it once is adding it each time)
                # work + Work(files_deleted=deleted), in one step
                work = _tuple_new(Work, (*work[:6], work[6] + deleted, *work[7:]))
            cache, got = self._cache_bytes()
            if got is not NO_WORK:
                work += got
            entries = []
            offset = 0  # the compacted cache's length so far
            for record in kept:
                start = record.cache_offset
                entry = cache[start : start + record.cache_length]
                record.cache_offset = offset
                offset += len(entry)
                entries.append(entry)
            index.records = kept
            threshold, marked = index.recent_marked
            if marked is records:  # fewer of the same records: still marked
                index.recent_marked = (threshold, kept)
            index.dirs_synced()
            self._cache = b"".join(entries)
            work += index.write_all(self._cache)
        return self._reconcile(), work

    def _reconcile(self) -> list[int]:
        """Adopt the index's records; expunged sequence numbers, descending."""
        records = self._index.records
        infos = [r.info for r in records]
        # the usual case (this mailbox's own expunge): the records' infos are
        # the messages' own objects, in order, less some; then no recent flag
        # changes and the gone ones are those passed over (UIDs are unique)
        messages = self.messages
        if len(infos) <= len(messages):
            gone, left, ahead = [], len(infos), 0
            for number, message in enumerate(messages, 1):
                if ahead < left and infos[ahead] is message:
                    ahead += 1
                else:
                    gone.append(number)
            if ahead == left:
                self.messages = infos
                self._records_seen = records
                gone.reverse()
                return gone
        return self._reconcile_infos(records, infos)

    def _reconcile_infos(self, records: list[_Record], infos: list[MessageInfo]
                         ) -> list[int]:
        """``_reconcile`` for any *records* (*infos*: their infos)."""
        before = {m.uid: m for m in self.messages}
        recent_uid = self._index.recent_uid
        self._index.recent_marked = (-1, None)  # some may turn recent again
        for info in infos:
            old = before.get(info.uid)
            if old is not info:  # (a message keeps its own flag)
                info.recent = (old.recent if old is not None
                               else info.uid > recent_uid)
        kept = {info.uid for info in infos}
        gone = [i + 1 for i, m in enumerate(self.messages) if m.uid not in kept]
        self.messages = infos
        self._records_seen = records
        return sorted(gone, reverse=True)

    def checkpoint(self) -> Work:
        return NO_WORK  # records are written as flags change

    def close(self) -> Work:
        if self._spare is not None:
            _leave(self._spare, self._index)
            self._spare = None
        return NO_WORK

    def refresh(self) -> tuple[list[int], Work]:
        """Re-read the index if another session or a delivery changed it."""
        work = self._index.catch_up()
        if work is None:
            return [], NO_WORK
        self._cache = None
        return self._reconcile(), work


class CyrusDrop:
    """Cyrus pop3d over INBOX: sizes from the index, UIDL ``uidvalidity.uid``."""

    def __init__(self, backend: CyrusBackend, user: str, mailbox: CyrusMailbox
                 ) -> None:
        self._backend = backend
        self._user = user
        self._mailbox = mailbox
        self.sizes = [m.size for m in mailbox.messages]
        self.uidls = [f"{mailbox.uidvalidity}.{m.uid}" for m in mailbox.messages]
        self._open = True

    def text(self, index: int) -> tuple[bytes, Work]:
        return self._mailbox.text(index)

    def commit(self, deleted: set[int]) -> Work:
        if not self._open:
            return NO_WORK
        self._open = False
        work = NO_WORK
        try:
            if deleted:
                uids = {self._mailbox.messages[i].uid for i in deleted}
                work += self._mailbox.set_flags([
                    (i, self._mailbox.messages[i].flags | DELETED) for i in deleted
                ])
                work += self._mailbox.expunge(uids)[1]
        finally:
            self._mailbox.close()
            self._backend.release_drop(self._user)
        return work

    def abort(self) -> Work:
        return self.commit(set())


class CyrusBackend:
    """All users' maildirs under one store root, served Cyrus-style.

    *sole_writer* (the simulator's store) promises that nothing outside this
    process changes the store and that every writer in it goes through a
    backend or ``index_delivery`` (so bumps the folder's generation): changes
    are then told by the generation alone, without the index and directory
    stats that look for outside writers. Replies and Work are the same.
    """

    kind = "maildir"

    def __init__(self, root: str | Path, host_fsync: bool = True,
                 sole_writer: bool = False) -> None:
        self.root = os.path.realpath(root)
        self.host_fsync = host_fsync
        self.sole_writer = sole_writer
        note_host_fsync(self.root, host_fsync)
        if sole_writer:  # index_delivery, handed the root, follows suit
            _SOLE_ROOTS.add(self.root)
        else:
            _SOLE_ROOTS.discard(self.root)
        self._pop_guard = threading.Lock()
        self._pop_users: set[str] = set()
        self._serials: dict[str, int] = {}
        """Folder -> the last serial APPEND named a file with there: one per
        folder, so a mailbox's names do not depend on what was appended to
        other users' mailboxes before (a session worker plays the users'
        sessions in another order than the clock's)."""
        # folder -> the index of a mailbox closed there, reused by the next
        # open while no writer changed the file (the simulator's shortcut: a
        # poll of an unchanged mailbox re-reads nothing; the Work is the same)
        self._spare = _Spares()
        self._inboxes: dict[str, tuple[str, str, str]] = {}
        self._user_inboxes: dict[str, tuple[str, str, str]] = {}  # by login
        # (login, mailbox name) -> _folder's answer (sole writers only)
        self._folders: dict[tuple[str, str], tuple[str, str, str]] = {}
        self.index_counts = {"reused": 0, "read": 0}

    def _maildir(self, user: str) -> str:
        try:
            return os.path.join(self.root, check_user(user), "Maildir")
        except MailboxNameError as exc:
            raise StoreError(str(exc)) from None

    def signature(self, user: str, name: str = "INBOX") -> tuple | None:
        """A value that changes whenever mailbox *name* of *user* may have:
        this process's change count of the folder and its directory state,
        and the stats of its index and directories (outside writers); None
        when not known yet. A simulator may key a memo of sessions that
        changed nothing on it (``twin.traffic.client.PollMemo``)."""
        try:
            _, folder, _ = self._folder(user, name)
        except StoreError:
            return None
        shared = _SHARED.get(folder)
        if shared is None or shared.dirs is None or shared.dirs == _STALE:
            return None
        if self.sole_writer:
            return shared, shared.generation, shared.dirs
        paths = shared.paths
        if paths is None:
            paths = shared.paths = (os.path.join(folder, INDEX),
                                    os.path.join(folder, "new"),
                                    os.path.join(folder, "cur"))
        stat = os.stat
        try:
            info = stat(paths[0])
            mtimes = (stat(paths[1]).st_mtime_ns, stat(paths[2]).st_mtime_ns)
        except FileNotFoundError:
            return None
        return (shared, shared.generation, shared.dirs, info.st_size,
                info.st_mtime_ns, info.st_ino, mtimes)

    def _drop_spares(self, folder: str) -> None:
        """Forget kept indexes of *folder* and its subfolders (gone, renamed)."""
        spare = self._spare
        spare.pop(folder, None)
        # maildir++ keeps ``.A`` and ``.A.B`` side by side in the user's
        # Maildir: look among the folders kept there
        kept = spare.subfolders.get(os.path.dirname(folder))
        if kept:
            prefix = folder + "."
            for known in [k for k in kept if k == folder or k.startswith(prefix)]:
                spare.pop(known, None)
                kept.discard(known)

    def _folder(self, user: str, name: str) -> tuple[str, str, str]:
        """(canonical name, folder path, key prefix) of mailbox *name*."""
        if name == "INBOX":
            known = self._user_inboxes.get(user)
            if known is not None:
                return known
        maildir = self._maildir(user)
        if name.upper() == "INBOX":  # the maildir itself: nothing to resolve
            known = self._inboxes.get(maildir)
            if known is None:
                known = self._inboxes[maildir] = (
                    "INBOX", maildir,
                    os.path.relpath(maildir, self.root).replace(os.sep, "/") + "/")
            if len(self._user_inboxes) < 1 << 16:
                self._user_inboxes[user] = known
            return known
        if self.sole_writer:  # no one else makes symlinks: resolved once
            known = self._folders.get((user, name))
            if known is not None:
                return known
        try:
            parts = split_name(name, forbidden=".")
        except MailboxNameError as exc:
            raise StoreError(str(exc)) from None
        if parts == ("INBOX",):
            folder = maildir
        else:
            folder = os.path.join(maildir, "." + ".".join(parts))
        real = os.path.realpath(folder)
        if real != os.path.realpath(maildir) and not real.startswith(
            os.path.realpath(maildir) + os.sep
        ):
            raise StoreError(f"mailbox {name!r} is outside the user's maildir")
        key = os.path.relpath(folder, self.root).replace(os.sep, "/") + "/"
        known = "/".join(parts), folder, key
        if self.sole_writer and len(self._folders) < 1 << 16:
            self._folders[(user, name)] = known
        return known

    def _load(self, user: str, name: str, now: float, create_inbox: bool,
              texts: dict[str, bytes] | None = None,
              pending_mtime_ns: int | None = None) -> tuple[str, _Index, Work]:
        canonical, folder, key = self._folder(user, name)
        work = NO_WORK
        shared = _SHARED.get(folder) if self.sole_writer else None
        known = shared is not None and shared.dirs is not None and (
            shared.dirs != _STALE)  # made or seen here: deleted only here
        if not known and not os.path.isdir(os.path.join(folder, "cur")):
            if canonical != "INBOX" or not create_inbox:
                raise StoreError(f"mailbox {name!r} does not exist")
            for sub in ("cur", "new", "tmp"):
                os.makedirs(os.path.join(folder, sub), exist_ok=True)
            work += Work(files_created=3)
        index = self._spare.pop(folder, None)
        if index is None and shared is not None:
            # one left by another sole-writer backend of this store (the one
            # that populated it) serves as well: reuse() checks it is in step
            index = shared.idle
            if index is not None and (index.key != key or not index.sole_writer
                                      or index.host_fsync != self.host_fsync):
                index = None
        if index is not None:
            if index.held:
                index = None  # taken by a mailbox of the backend that left it
            elif index.shared.idle is index:
                index.shared.idle = None  # about to be held: deliveries keep off
        with _lock(folder, self.sole_writer):
            got = None if index is None else index.reuse()
            if got is None:
                index = _Index(folder, key, self.host_fsync, self.sole_writer)
                got = index.read()
                self.index_counts["read"] += 1
            else:
                self.index_counts["reused"] += 1
            index.held = True
            if got is not None and pending_mtime_ns is not None:
                index.held = False
                raise StoreError(f"mailbox {name!r} of {user!r} has an index already")
            if got is None:
                work += index.rebuild(now, texts, pending_mtime_ns)
            else:
                # (NO_WORK + got is got)
                work = got if work is NO_WORK else work + got
                if index.dirs_moved():
                    work += index.resync()
        # work + Work(locks=1), in one step
        return canonical, index, _tuple_new(Work, (*work[:8], work[8] + 1, *work[9:]))

    def list_mailboxes(self, user: str) -> tuple[list[tuple[str, bool]], Work]:
        maildir = self._maildir(user)
        try:
            entries = os.listdir(maildir)
        except FileNotFoundError:
            entries = []
        names = {"INBOX": True}
        for entry in entries:
            if len(entry) > 1 and entry[0] == "." and entry[1] != "." and os.path.isdir(
                os.path.join(maildir, entry, "cur")
            ):
                parts = entry[1:].split(".")
                for depth in range(1, len(parts)):
                    names.setdefault("/".join(parts[:depth]), False)
                names["/".join(parts)] = True
        ordered = [("INBOX", True)] + sorted(
            (n, s) for n, s in names.items() if n != "INBOX"
        )
        return ordered, Work(dir_entries_scanned=len(entries))

    def open(self, user: str, name: str, readonly: bool, now: float
             ) -> tuple[CyrusMailbox, Work]:
        return self._open(user, name, readonly, now)

    def index_written(self, user: str, texts: dict[str, bytes], now: float,
                      pending_mtime_ns: int | None = None) -> Work:
        """Open and close INBOX read-write as a first session does, building
        the index (a reconstruct) when it has none, with the bytes of the
        files *texts* names (file name in ``new/`` or ``cur/`` -> bytes as
        written) taken from there instead of read back: a writer that has
        just written them indexes them (those reads are not in the Work).

        *pending_mtime_ns* (an INBOX whose ``new/``, ``cur/`` and ``tmp/``
        exist and that has no index yet): *texts* is the whole mailbox, every
        file in ``cur/`` named after its delivery time, and a writer process
        may not have written them yet. The index is built from *texts* alone
        (the same bytes as a reconstruct afterwards: same listing, order and
        records), reading nothing of the maildir, and notes
        *pending_mtime_ns* as the mtime of ``new/`` and ``cur/``: the caller
        sets both to it after the files are written (through the same
        writer), so the index's note is true once the writer is done."""
        mailbox, work = self._open(user, "INBOX", False, now, texts,
                                   pending_mtime_ns)
        return work + mailbox.close()

    def _open(self, user: str, name: str, readonly: bool, now: float,
              texts: dict[str, bytes] | None = None,
              pending_mtime_ns: int | None = None) -> tuple[CyrusMailbox, Work]:
        canonical, index, work = self._load(user, name, now, create_inbox=True,
                                            texts=texts,
                                            pending_mtime_ns=pending_mtime_ns)
        recent_uid = index.recent_uid
        records = index.records
        start = 0
        threshold, marked = index.recent_marked
        if marked is records and threshold <= recent_uid:
            # the records up to the last open's threshold are not recent
            # still: mark those after it (a mailbox opened every few minutes
            # has few), which are in UID order at the end
            start = len(records)
            while start and records[start - 1].info.uid > threshold:
                start -= 1
        for number in range(start, len(records)):
            info = records[number].info
            info.recent = info.uid > recent_uid
        index.recent_marked = (recent_uid, records)
        if not readonly and index.uidnext - 1 > index.recent_uid:
            index.recent_uid = index.uidnext - 1
            with _lock(index.folder, index.sole_writer):
                fd = os.open(index.path, os.O_RDWR)
                try:
                    os.pwrite(fd, index.header_bytes(), 0)
                    index.bump_written(fd)
                finally:
                    os.close(fd)
            work += Work(writes=((index.key + INDEX, HEADER_BYTES),), locks=1)
        return CyrusMailbox(canonical, index, readonly, self._spare), work

    def status(self, user: str, name: str, now: float
               ) -> tuple[dict[str, int], Work]:
        _, index, work = self._load(user, name, now, create_inbox=True)
        _leave(self._spare, index)
        records = index.records
        return {
            "MESSAGES": len(records),
            "RECENT": sum(1 for r in records if r.info.uid > index.recent_uid),
            "UIDNEXT": index.uidnext,
            "UIDVALIDITY": index.uidvalidity,
            "UNSEEN": sum(1 for r in records if not r.info.flags & 1),
        }, work

    def create(self, user: str, name: str, now: float) -> Work:
        canonical, folder, key = self._folder(user, name)
        if canonical == "INBOX" or os.path.lexists(folder):
            raise StoreError(f"mailbox {name!r} already exists")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(folder, sub))
        _forget(folder)
        self._drop_spares(folder)
        index = _Index(folder, key, self.host_fsync, self.sole_writer)
        index.uidvalidity = max(1, int(now)) & 0xFFFFFFFF
        index.dirs_synced()
        return Work(files_created=4) + index.write_all(b"")

    def delete(self, user: str, name: str) -> Work:
        canonical, folder, _ = self._folder(user, name)
        if canonical == "INBOX":
            raise StoreError("INBOX cannot be deleted")
        if not os.path.isdir(folder) or os.path.islink(folder):
            raise StoreError(f"mailbox {name!r} does not exist")
        count = sum(len(files) + len(dirs) for _, dirs, files in os.walk(folder)) + 1
        shutil.rmtree(folder)
        _forget(folder)
        self._drop_spares(folder)
        return Work(files_deleted=count)

    def rename(self, user: str, old: str, new: str) -> Work:
        old_name, old_folder, _ = self._folder(user, old)
        new_name, new_folder, _ = self._folder(user, new)
        if "INBOX" in (old_name, new_name):
            raise StoreError("renaming INBOX is not supported")
        if not os.path.isdir(old_folder):
            raise StoreError(f"mailbox {old!r} does not exist")
        if os.path.lexists(new_folder):
            raise StoreError(f"mailbox {new!r} already exists")
        maildir = os.path.dirname(old_folder)
        prefix = os.path.basename(old_folder) + "."
        moves = [(old_folder, new_folder)] + [
            (os.path.join(maildir, entry),
             new_folder + "." + entry[len(prefix):])
            for entry in sorted(os.listdir(maildir)) if entry.startswith(prefix)
        ]
        for source, target in moves:
            os.rename(source, target)
        _forget(old_folder)
        _forget(new_folder)
        self._drop_spares(old_folder)
        self._drop_spares(new_folder)
        return Work(files_renamed=len(moves), dir_entries_scanned=len(moves))

    def append(self, user: str, name: str, entries: list[tuple[bytes, int, int]],
               now: float) -> Work:
        try:
            canonical, index, work = self._load(user, name, now, create_inbox=True)
        except StoreError as exc:
            raise StoreError(f"[TRYCREATE] {exc}") from None
        with _lock(index.folder, index.sole_writer):
            cache, got = index.read_cache()
            work += got
            grown = bytearray(cache)
            for text, flags, internaldate in entries:
                final = ":2," + maildir_info(flags)
                while True:
                    with self._pop_guard:
                        serial = self._serials.get(index.folder, 0) + 1
                        self._serials[index.folder] = serial
                    base = f"{int(now)}.M{serial}.twin"
                    temporary = os.path.join(index.folder, "tmp", base)
                    if not (os.path.lexists(temporary) or os.path.lexists(
                            os.path.join(index.folder, "cur", base + final))):
                        break
                final = base + final
                with open(temporary, "wb") as handle:
                    handle.write(text)
                    handle.flush()
                    sync(handle, self.host_fsync)
                os.rename(temporary, os.path.join(index.folder, "cur", final))
                work += Work(writes=((index.key + "cur/" + final, len(text)),),
                             fsyncs=1, files_created=1, files_renamed=1)
                work += index.add_file("cur", final, grown, internaldate, text)
            index.dirs_synced()
            work += index.write_all(bytes(grown))
        # in step with the file it just wrote: the next open or append of
        # the folder takes it instead of reading the file (same Work)
        _leave(self._spare, index)
        return work

    def subscriptions(self, user: str) -> tuple[set[str], Work]:
        path = os.path.join(self._maildir(user), "subscriptions")
        return read_subscriptions(path, os.path.relpath(path, self.root))

    def set_subscriptions(self, user: str, names: set[str]) -> Work:
        maildir = self._maildir(user)
        os.makedirs(maildir, exist_ok=True)
        path = os.path.join(maildir, "subscriptions")
        return write_subscriptions(path, os.path.relpath(path, self.root), names)

    def open_drop(self, user: str, now: float) -> tuple[CyrusDrop, Work]:
        user = user.lower()
        with self._pop_guard:
            if user in self._pop_users:
                raise StoreError("[IN-USE] maildrop already locked by a session")
            self._pop_users.add(user)
        try:
            mailbox, work = self.open(user, "INBOX", True, now)
        except BaseException:
            self.release_drop(user)
            raise
        mailbox.readonly = False  # pop3d neither clears \Recent nor sets \Seen
        return CyrusDrop(self, user, mailbox), work

    def release_drop(self, user: str) -> None:
        with self._pop_guard:
            self._pop_users.discard(user)


def _folder_ok(folder_part: str) -> bool:
    """Whether *folder_part* is a maildir++ folder directory (``.A.B``)."""
    if not folder_part.startswith("."):
        return False
    try:
        split_name(folder_part[1:].replace(".", "/"), forbidden=".")
    except MailboxNameError:
        return False
    return True


def _unindexed(index: _Index) -> None:
    """A delivery changed *index*'s folder without indexing the message:
    whoever looks next rescans (or rebuilds), whatever the clock did."""
    index.bump()
    index.shared.dirs = _STALE


def settle_store(store_root: str | Path, mtime_s: int) -> int:
    """At the end of a simulator's run over a sole-writer store: give ``new/``
    and ``cur/`` of every indexed maildir folder under *store_root* the mtime
    *mtime_s* (the simulated end, as populate gives them the simulated start)
    and note it in the folder's index header, then forget what this process
    knew of them. The index files are then the same from run to run (no host
    clock in them), and a backend opened on the store afterwards (``twin
    serve``) finds every index in step with its directories instead of
    rescanning them. Call it once every writer is done; the number of
    indexes settled."""
    root = os.path.realpath(store_root)
    note = mtime_s * 1_000_000_000
    stamp = struct.pack("<qq", note, note)
    offset = HEADER.size - len(stamp)  # the header ends with the two mtimes
    settled = 0
    with os.scandir(root) as users:
        homes = sorted(entry.path for entry in users
                       if entry.is_dir(follow_symlinks=False))
    for home in homes:
        inbox = os.path.join(home, "Maildir")
        try:
            with os.scandir(inbox) as entries:
                folders = [inbox] + sorted(
                    entry.path for entry in entries
                    if entry.name.startswith(".") and entry.is_dir(
                        follow_symlinks=False))
        except FileNotFoundError:
            continue
        for folder in folders:
            try:
                fd = os.open(os.path.join(folder, INDEX), os.O_RDWR)
            except FileNotFoundError:
                continue
            try:
                head = os.pread(fd, HEADER_BYTES, 0)
                if len(head) < HEADER_BYTES or head[:len(MAGIC)] != MAGIC:
                    continue  # not ours: the next open rebuilds it
                try:
                    for sub in ("new", "cur"):
                        os.utime(os.path.join(folder, sub), ns=(note, note))
                except FileNotFoundError:
                    continue  # not a whole maildir: the next open sees to it
                os.pwrite(fd, stamp, offset)
                settled += 1
            finally:
                os.close(fd)
            _forget(folder)
    return settled


def index_delivery(store_root: str | Path, user: str, filename: str, message: bytes,
                   now: float, host_fsync: bool | None = None,
                   parsed: tuple[int, bytes, int] | None = None) -> Work:
    """Add a just-delivered maildir file to its mailbox's index and cache.

    *filename* is the file's path relative to the user's ``Maildir`` (for
    example ``new/1199.M1P2.host`` or ``.Lists/new/1199.M1P2.host``); a bare
    name means INBOX's ``new/``. *message* is the delivered bytes (so nothing
    is read back) and *now* its internal date. When the mailbox has no index
    yet nothing is done: the next open rebuilds it. *host_fsync* says whether
    to really call ``os.fsync`` (the Work counts two either way); None follows
    the last ``CyrusBackend`` made for this store root (default: yes).
    *parsed*: ``delivery_parse(message)``, where the caller has it (made
    elsewhere: the Work still counts the parse, as lmtpd makes it). Raises
    ValueError for a *filename* that is not a file in a maildir's ``new/`` or
    ``cur/``.
    """
    folder, key, real_root, subdir, base = _delivery_target(store_root, user,
                                                            filename)
    if host_fsync is None:
        host_fsync = host_fsync_for(real_root)
    index = _Index(folder, key)
    sole = real_root in _SOLE_ROOTS
    # a sole writer's store whose folder has an index kept in step (see
    # _index_append): the file is there, as no one else removes it
    if not (sole and index.shared.idle is not None) and not os.path.exists(
            index.path):
        _unindexed(index)
        return NO_WORK
    with _lock(folder, sole):
        try:
            fd = os.open(index.path, os.O_RDWR)
        except FileNotFoundError:  # (the hint above was wrong)
            _unindexed(index)
            return NO_WORK
        try:
            work = _index_append(index, fd, subdir, base, message, now, host_fsync,
                                 sole, parsed)
        finally:
            os.close(fd)
    if work is None or not index.records:
        return work or NO_WORK
    return _delivered(work, index.key, index.records[-1].cache_length)


def _delivered(work: Work, key: str, entry_bytes: int) -> Work:
    """``index_delivery``'s Work: *work* (the record's) and the index and
    cache updates of folder *key*, an entry of *entry_bytes* appended."""
    # work + Work(reads=..., writes=..., fsyncs=2, locks=1), in one step
    return _tuple_new(Work, (
        work[0],
        work[1] + ((key + INDEX, HEADER_BYTES),),
        work[2] + ((key + CACHE, entry_bytes), (key + INDEX, RECORD_BYTES),
                   (key + INDEX, HEADER_BYTES)),
        work[3] + 2, work[4], work[5], work[6], work[7], work[8] + 1, work[9],
        work[10]))


def delivery_work(store_root: str | Path, user: str, filename: str,
                  parsed: tuple[int, bytes, int]) -> Work:
    """The Work ``index_delivery`` reports for *filename* delivered to *user*
    with *parsed* (``delivery_parse`` of the bytes) into a folder that has an
    index in step, as a run's mailboxes do once populated: it depends on the
    message and the folder, not on what the mailbox holds, so a simulation
    can book it without the mailbox (``twin.sim.sessions``, whose worker
    checks it against the Work of the real update). ValueError as
    ``index_delivery``."""
    _, key, _, subdir, base = _delivery_target(store_root, user, filename)
    if subdir != "new":
        base = _split_name(base)[0]
    if len(base.encode()) > NAME_BYTES:
        return NO_WORK  # not indexed (add_file)
    size, entry, _ = parsed
    # _Index.add_file's Work(cpu={...}) for a parsed message
    work = _tuple_new(Work, ({"cyrus.parse_byte": size, "cyrus.record": 1}, (),
                             (), 0, 0, 0, 0, 0, 0, 0, 0))
    return _delivered(work, key, len(entry))


def _index_append(index: _Index, fd: int, subdir: str, base: str, message: bytes,
                  now: float, host_fsync: bool, sole: bool = False,
                  parsed: tuple[int, bytes, int] | None = None) -> Work | None:
    """``index_delivery``'s work under the folder lock, on the index file's
    descriptor *fd*: None (after marking the folder unindexed) when the index
    is damaged; else the Work of indexing the message (the record is then
    ``index.records[-1]``, none when its name is too long). *sole*: the
    store's backend is a sole writer (see ``CyrusBackend``)."""
    shared = index.shared
    # the index a closed mailbox left behind, if it is in step with the file
    # as it stands, takes the new record too (simulator shortcut: the next
    # open reuses it instead of reading the file, with the same Work)
    idle = shared.idle
    stepped = (sole and idle is not None and idle.sole_writer
               and idle.generation == shared.generation)
    if stepped:
        # a sole writer's kept copy in step (no change since, which every
        # writer would have counted): its header and records are the file's,
        # so the header read and the stats are left out
        validity, uidnext, recent = idle.uidvalidity, idle.uidnext, idle.recent_uid
        count = len(idle.records)
        size = HEADER_BYTES + count * RECORD_BYTES
    else:
        head = os.pread(fd, HEADER_BYTES, 0)
        before = os.fstat(fd)
        size = before.st_size
        if len(head) < HEADER_BYTES:
            _unindexed(index)
            return None
        magic, version, record_size, validity, uidnext, count, recent, _, _ = (
            HEADER.unpack_from(head)
        )
        if (magic != MAGIC or record_size != RECORD_BYTES
                or size != HEADER_BYTES + count * RECORD_BYTES):
            _unindexed(index)
            return None  # damaged: the next open rebuilds it
        if idle is not None and not (
                idle.generation == shared.generation
                and idle.stamp == (size, before.st_mtime_ns)
                and len(idle.records) == count and idle.uidnext == uidnext
                and idle.uidvalidity == validity and idle.recent_uid == recent):
            idle = None
    index.uidvalidity, index.uidnext, index.recent_uid = validity, uidnext, recent
    cache_fd = os.open(index.cache_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                       0o666)
    try:
        entry = bytearray()
        if (stepped and idle.cache_image is not None
                and idle.cache_serial == shared.cache_writes):
            cache_size = idle.cache_size  # the file's size (sole writer)
        else:
            cache_size = os.fstat(cache_fd).st_size
        work = index.add_file(subdir, base, entry, int(now), None, cache_size,
                              _parse_delivered(message) if parsed is None else parsed)
        if not index.records:
            _unindexed(index)
            return work  # name too long to index
        index.cache_written()  # first: a failed write leaves no copy trusted
        _write_all_fd(cache_fd, entry)
        if host_fsync:
            os.fsync(cache_fd)
    finally:
        os.close(cache_fd)
    if idle is not None:
        # the kept index's copy of the cache grows by the entry as the file
        # did, if it was the file's bytes (every other copy is dropped)
        idle.cache_appended(cache_size, entry)
    stale = shared.dirs == _STALE
    index.dirs_synced()
    if stale:
        shared.dirs = _STALE  # an earlier change is still unindexed
    record = index.records[-1]
    os.pwrite(fd, record.pack(), size)
    os.pwrite(fd, index.header_bytes(count + 1), 0)
    if host_fsync:
        os.fsync(fd)
    index.bump()
    if idle is not None:
        idle.records.append(record)
        idle.uidnext = index.uidnext
        idle.mtimes = index.mtimes
        if stepped:
            idle.generation = shared.generation
            idle.stamp = _NO_STAMP
        else:
            idle.in_step(os.fstat(fd))
    return work


def _overwrite(path: str, data: bytes | bytearray) -> None:
    """Make *path* hold *data*: written from offset 0 over what it held, then
    cut to length (never truncated to zero first, which would make ext4
    flush the new data at close as a replace-by-truncate, ``auto_da_alloc``)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o666)
    try:
        _write_all_fd(fd, data)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def _write_all_fd(fd: int, data: bytes | bytearray) -> None:
    """Write all of *data* to the descriptor *fd* (short writes continued)."""
    if not data:
        return
    done = os.write(fd, data)  # all of it, as a rule: no view needed
    if done < len(data):
        view = memoryview(data)[done:]
        while view:
            view = view[os.write(fd, view):]


_TARGETS: dict[tuple[str, str, str], tuple[str, str, str]] = {}


def _delivery_target(store_root: str | Path, user: str, filename: str
                     ) -> tuple[str, str, str, str, str]:
    """(folder, key prefix, real store root, subdir, base name) of *filename*
    delivered to *user* (see ``index_delivery``); ValueError for a bad
    *filename* or user."""
    if filename[:4] == "new/" and os.sep == "/":  # INBOX's new/ (the usual)
        base = filename[4:]
        if base and base[0] != "." and "/" not in base:
            known = _TARGETS.get((str(store_root), user, ""))
            if known is not None:
                return (*known, "new", base)
    parts = filename.replace(os.sep, "/").split("/")
    if len(parts) == 1:
        parts = ["new", parts[0]]
    if len(parts) == 2:
        parts = [""] + parts
    folder_part, subdir, base = parts if len(parts) == 3 else ("", "", "")
    if subdir not in ("new", "cur") or not base or base.startswith(".") or (
        folder_part and not _folder_ok(folder_part)
    ):
        raise ValueError(
            f"filename {filename!r} must be [.Folder/]new/NAME or [.Folder/]cur/NAME "
            "relative to the user's Maildir"
        )
    cache_key = (str(store_root), user, folder_part)
    known = _TARGETS.get(cache_key)
    if known is None:
        known = _TARGETS[cache_key] = _resolve_target(store_root, user, folder_part)
    return (*known, subdir, base)


def _resolve_target(store_root: str | Path, user: str, folder_part: str
                    ) -> tuple[str, str, str]:
    real_root = os.path.realpath(store_root)
    try:
        maildir = os.path.join(real_root, check_user(user), "Maildir")
    except MailboxNameError as exc:
        raise ValueError(str(exc)) from None
    folder = os.path.join(maildir, folder_part) if folder_part else maildir
    key = os.path.relpath(folder, real_root).replace(os.sep, "/") + "/"
    if len(_TARGETS) > 1 << 16:
        _TARGETS.clear()
    return folder, key, real_root
