"""The mailboxes as they stand at the start of the week, written as real files.

``populate(store_root, fmt, population, settings, rng)`` fills a mail store
with each user's kept mail, drawn from the user model
(``twin.traffic.users``: heavy-tailed counts and sizes, the unread share, POP3
users who delete holding only waiting mail), in the layout the delivery stages
and the access servers use:

- ``"maildir"``: ``<user>/Maildir/{cur,new,tmp}`` (``twin.stages.maildir``),
  every kept message a file in ``cur/`` named ``<time>.I<n>.<host>:2,S`` when
  read and ``...:2,`` when not (an IMAP server has seen them all, so ``new/``
  is empty); ``<time>`` runs over the last ``history_days`` before the
  simulation epoch, increasing with ``n``. With ``index=True`` (the default)
  the Cyrus index and cache of each INBOX are built eagerly as it is written
  (``CyrusBackend.index_written``: a reconstruct that takes the bytes just
  written instead of reading them back; the same files, noting the epoch as
  the mtime of ``new/`` and ``cur/``, which they are given), so no session of
  the simulated week pays for it; with ``index=False`` the backend rebuilds
  it lazily at the first open; with ``defer_index=True`` nothing builds it
  here: ``MailboxStats.index_plan`` says how, and
  ``build_indexes`` builds the same indexes from it in another process (a
  session worker, ``twin.sim.sessions``: the one that serves them, while this
  one goes on).
- ``"mbox"``: the spool file ``<user>`` (``twin.stages.mbox``), messages in
  time order after ``From `` lines, each carrying the headers UW IMAP leaves
  (``Status: RO`` read / ``O`` unread, ``X-UID``, and ``X-IMAPbase`` in the
  first), so UW's first open finds nothing to renumber or rewrite.

With ``files`` (a simulator's writer process, ``twin.sim.writer``) the
message files are written by that process while this one draws the next
mailboxes; ``files.touch(user)`` follows each user's files (a reader calls
``files.ready(user)``), and the bytes, names and indexes are the same.

Either way UIDs are 1..n in time order, which is what ``known_messages`` tells
a client that has already seen them (``twin.traffic.client.ClientState``).

Messages are real and readable by ``mailbox.Maildir`` / ``mailbox.mbox``: a
varied header (From, To, Subject, Date, Message-ID, ...) and a body cut from
a shared corpus of text lines; messages over ``ATTACHMENT_BYTES`` are
multipart/mixed with a base64 attachment cut from a shared base64 corpus.
Each message is exactly its drawn size (LF line ends, as local delivery
writes them). ``settings.mailbox_scale`` multiplies the counts (stochastic
rounding) to shrink the store for tests.

Randomness comes only from *rng* (profiles, when not given, then a fixed
number of draws per user); attachment bytes come from a generator spawned
from it (``Generator.spawn``, which draws nothing), so the same seed writes
the same bytes and another seed other attachments. Raises ``ValueError`` for
an unknown format or profiles that do not match the population.
"""

from __future__ import annotations

import base64
import copy
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from twin.access.cyrusstore import CyrusBackend
from twin.stages.fileops import DIRECT, Files
from twin.stages.maildir import SIMULATION_EPOCH_S, MaildirSettings, maildir_path
from twin.stages.mbox import mbox_path
from twin.traffic.population import Population
from twin.traffic.users import DAY_S, ReadingSettings, UserProfiles, draw_profiles

FORMATS = ("maildir", "mbox")
ATTACHMENT_BYTES = 16_384  # assumption: larger kept mail carries an attachment
HERE_SHARE = 0.2
"""With a writer process, the share of the message bytes written here at once
(whole mailboxes, the first while the running share is below it): the
writer's creates cost more than the drawing here, so both processes stay busy
(ece-2007-dell on the 2-core VM: about even CPU at 0.2-0.25,
reports/s8 measurements in the report). Whenever the writer is behind
(``Files.behind``: the next batch would wait for it) the next mailbox is
written here too, rather than wait: with a session worker building the
indexes (``defer_index``) the writer, niced, got ~40 % of a core and the
populating process waited ~40 % of the time. Files are the same either way."""
_TEXT_CORPUS_BYTES = 1 << 16
_BOUNDARY = b"=_twin_part_0"
_WORDS = (
    b"the lab report for experiment four is due on monday please bring your "
    b"notes to the group meeting we will review the simulation results and "
    b"discuss the schedule for the thesis chapter the seminar on low power "
    b"design moved to room two ten thanks for the quick reply about the "
    b"cluster account grading of the midterm is finished the board checkout "
    b"sheet is on the door of lab b regards"
).split()
_SUBJECTS = (
    b"lab 4 grading", b"Re: homework question", b"seminar on Thursday",
    b"faculty meeting moved", b"Re: thesis draft", b"qualifying exam schedule",
    b"Re: simulation results", b"group meeting tomorrow", b"Re: paper review",
    b"course evaluations due", b"Re: cluster account", b"printer fixed",
)
_SENDERS = (b"ann", b"raj", b"wei", b"maria", b"tom", b"kate", b"omar", b"lisa",
            b"hans", b"yuki", b"dan", b"nina")
_MONTHS = (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep",
           b"Oct", b"Nov", b"Dec")
_DAYS = (b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun")


@dataclass(frozen=True, slots=True)
class MailboxStats:
    """What ``populate`` wrote.

    ``message_bytes`` is the sum of message sizes (what ``mailbox`` returns
    for each message); ``file_bytes`` what was written to disk (mbox adds the
    ``From `` lines and blank separators). ``known_messages[i]`` is how many
    of user i's messages their client has already seen (all, except the mail
    waiting for a POP3 user who deletes).
    """

    format: str
    users: int
    messages: int
    unread: int
    message_bytes: int
    file_bytes: int
    largest_mailbox_bytes: int
    per_user_messages: tuple[int, ...]
    per_user_bytes: tuple[int, ...]
    known_messages: tuple[int, ...]
    indexed: bool
    index_plan: IndexPlan | None = field(default=None, compare=False, repr=False)
    """What builds the indexes elsewhere (``build_indexes``), when
    ``populate(defer_index=True)`` left them to be built."""


@dataclass(frozen=True, slots=True)
class IndexPlan:
    """A maildir store ``populate`` wrote without its INBOX indexes, and what
    ``build_indexes`` needs to build them: the same bytes drawn again from
    the same generator (an undrawn copy of the attachment corpus), so the
    indexes are those ``populate`` would have built itself. Small: a
    user's drawn sizes and stamps, not the messages."""

    root: str
    domain: bytes
    host: str
    epoch: float
    dirs_s: int
    host_fsync: bool
    corpus: _Base64Corpus
    users: tuple[tuple[str, list[int], list[int], int], ...]
    """(user, sizes, stamps, seen_upto) of each user with an INBOX."""


@lru_cache(maxsize=1)
def _text_corpus() -> bytes:
    """Lines of words (at most 72 columns, LF), no line starting with "From "."""
    lines, line, index = [], [], 0
    size = 0
    while size < _TEXT_CORPUS_BYTES:
        word = _WORDS[(index * 7 + index // len(_WORDS)) % len(_WORDS)]
        index += 1
        if sum(len(w) + 1 for w in line) + len(word) > 72:
            text = b" ".join(line) + b"\n"
            lines.append(text)
            size += len(text)
            line = []
        line.append(word)
    return b"".join(lines)


class _Base64Corpus:
    """Base64 lines (76 columns, LF) of random bytes drawn from *rng*.

    Grown in fixed chunks of whole lines, so its first n bytes never depend on
    how often it grew: a message's attachment depends only on the generator.
    """

    CHUNK_RAW_BYTES = 57 * 4096  # 4,096 lines of 76 characters

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._chunks: list[bytes] = []
        self._data = b""

    def get(self, size: int) -> bytes:
        """At least *size* bytes of the corpus (all of it that exists)."""
        if len(self._data) < size:
            total = len(self._data)
            while total < size:
                raw = self._rng.integers(0, 256, self.CHUNK_RAW_BYTES, dtype=np.uint8)
                chunk = base64.encodebytes(raw.tobytes())
                self._chunks.append(chunk)
                total += len(chunk)
            self._data = b"".join(self._chunks)
        return self._data


def _corpus_rng(rng: np.random.Generator) -> np.random.Generator:
    """A generator for attachment bytes, derived from *rng* without drawing
    from it (so the mailbox draws stay as they are); a Generator built without
    a SeedSequence gives one draw for the seed instead."""
    try:
        return rng.spawn(1)[0]
    except (TypeError, ValueError, AttributeError):
        return np.random.default_rng(int(rng.integers(0, 2**63)))


def _date(unix: int) -> bytes:
    t = time.gmtime(unix)
    return b"%s, %d %s %04d %02d:%02d:%02d +0000" % (
        _DAYS[t.tm_wday], t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour,
        t.tm_min, t.tm_sec)


def _message(user: bytes, domain: bytes, k: int, unix: int, size: int,
             extra: bytes, corpus: _Base64Corpus) -> list[bytes]:
    """Pieces of one message of exactly *size* bytes (LF, ends with LF)."""
    sender = _SENDERS[k % len(_SENDERS)]
    multipart = size > ATTACHMENT_BYTES
    ctype = (b"multipart/mixed; boundary=\"" + _BOUNDARY + b"\"" if multipart
             else b"text/plain; charset=us-ascii")
    date = _date(unix)
    header = (
        b"Received: from mx.example.org by mail." + domain + b" with ESMTP id I%d"
        b"; " % k + date + b"\n"
        b"From: " + sender + b" <" + sender + b"@example.org>\n"
        b"To: " + user + b"@" + domain + b"\n"
        b"Subject: " + _SUBJECTS[(k * 5) % len(_SUBJECTS)] + b" (%d)\n" % k
        + b"Date: " + date + b"\n"
        b"Message-ID: <%d.I%d." % (unix, k) + user + b"@example.org>\n"
        b"MIME-Version: 1.0\n"
        b"Content-Type: " + ctype + b"\n" + extra + b"\n"
    )
    room = size - len(header)
    text = _text_corpus()
    if not multipart:
        length = max(room - 1, 0)
        start = (k * 7919) % (len(text) - length) if length < len(text) else 0
        return [header, text[start : start + length], b"\n"]
    intro = (b"--" + _BOUNDARY + b"\nContent-Type: text/plain; charset=us-ascii\n\n"
             + text[:400] + b"\n--" + _BOUNDARY
             + b"\nContent-Type: application/octet-stream; name=\"data%d.bin\"\n" % k
             + b"Content-Transfer-Encoding: base64\n\n")
    closing = b"\n--" + _BOUNDARY + b"--\n"
    length = room - len(intro) - len(closing)
    # a view of the corpus, not a copy: writers join or write the pieces
    return [header, intro, memoryview(corpus.get(length))[:length], closing]


def _sizes(settings: ReadingSettings, median: float, count: int,
           rng: np.random.Generator) -> np.ndarray:
    raw = median * np.exp(rng.normal(0.0, settings.message_size_sigma, count))
    return np.clip(np.rint(raw), settings.min_size_bytes,
                   settings.max_size_bytes).astype(np.int64)


def populate(store_root: str | Path, fmt: str, population: Population,
             settings: ReadingSettings, rng: np.random.Generator,
             profiles: UserProfiles | None = None, index: bool = True,
             maildir_settings: MaildirSettings | None = None,
             host_fsync: bool = True, files: Files | None = None,
             defer_index: bool = False,
             on_plan: Callable[[IndexPlan, tuple[int, ...]], None] | None = None,
             ) -> MailboxStats:
    """Write every user's mailbox under *store_root* (created if missing).

    *host_fsync* is the ``CyrusBackend`` setting the indexes are built with
    (False: no real ``os.fsync``, as in a simulator's store).

    *files* (a simulator's ``twin.sim.writer.FileWriter``): the message
    files are created through it, in a writer process, while this one goes
    on drawing the next mailboxes (all but ``HERE_SHARE`` of the bytes,
    written here at once); ``files.touch(user)`` follows each user's files
    it writes, so a reader calls ``files.ready(user)`` before it reads them. The
    directories are still made here (the delivery stage and the index files
    need them now). Each maildir's index is built from the bytes alone, and
    the mtime it notes for ``new/`` and ``cur/`` (the simulation epoch) is
    set on them by the writer after the files (``set_mtime``). The mbox
    spool files are synced before the return (the mbox delivery stage
    appends to them at once, not through the writer). The files are the
    same bytes either way. None: written at once, here.

    *defer_index* (maildir, with *index*): build no index here; the stats'
    ``index_plan`` builds them (``build_indexes``), each noting the same
    mtime of ``new/`` and ``cur/``, which is set on them here as without.
    *on_plan* gets that plan and the stats' ``known_messages`` as soon as
    they are drawn, before any message is written, the users' maildir
    folders made (a builder in another process can start at once: it reads
    none of the message files).
    """
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} must be one of {', '.join(FORMATS)}")
    if profiles is None:
        profiles = draw_profiles(settings, population, rng)
    elif len(profiles.imap) != len(population):
        raise ValueError(
            f"profiles cover {len(profiles.imap)} users, population has "
            f"{len(population)}"
        )
    root = Path(store_root)
    root.mkdir(parents=True, exist_ok=True)
    (root / ".format").write_text(fmt + "\n", encoding="ascii")
    md = maildir_settings or MaildirSettings()
    epoch = md.epoch_offset_s if fmt == "maildir" else SIMULATION_EPOCH_S
    host = md.hostname.replace("/", "\\057").replace(":", "\\072")
    domain = population.local_domain.encode()
    n_users = len(population)
    scaled = profiles.mailbox_messages * settings.mailbox_scale
    counts = np.floor(scaled + rng.random(n_users)).astype(np.int64)
    history_s = settings.history_days * DAY_S
    corpus_rng = _corpus_rng(rng)
    later = fmt == "maildir" and index and defer_index
    # undrawn: the plan's builder draws the same bytes again
    plan_corpus = _Base64Corpus(copy.deepcopy(corpus_rng)) if later else None
    corpus = _Base64Corpus(corpus_rng)
    per_messages, per_bytes, known = [], [], []
    # Cyrus indexes are built as each maildir is written, from the bytes
    # written (no read back); the same files as a reconstruct afterwards
    # (a simulator's store, without host fsyncs, has this writer alone)
    backend = (CyrusBackend(root, host_fsync=host_fsync,
                            sole_writer=not host_fsync)
               if fmt == "maildir" and index and not later else None)
    # what the writer gives new/ and cur/ after a user's files, and what the
    # index notes of them: a whole second (exact as a float), the epoch
    dirs_s = int(epoch)
    unread_total = file_total = 0
    bytes_here = bytes_all = 0
    drawn = []
    for user_index, user in enumerate(population.usernames):
        count = int(counts[user_index])
        sizes = _sizes(settings, float(profiles.size_median_bytes[user_index]), count,
                       rng)
        ages = np.sort(rng.random(count))[::-1] * history_s
        stamps = (epoch - 60 - ages).astype(np.int64).tolist()
        waiting = not profiles.imap[user_index] and not profiles.keep_on_server[
            user_index]
        unread_count = count if waiting else min(
            count, int(math.floor(count * settings.unread_share + rng.random())))
        drawn.append((user, sizes.tolist(), stamps, count - unread_count))
        per_messages.append(count)
        per_bytes.append(int(sizes.sum()))
        known.append(0 if waiting else count)
        unread_total += unread_count
    message_total = sum(per_bytes)
    plan = None
    if later:
        for user, *_ in drawn:  # the index builder may start at once
            _make_maildir(root, user)
        plan = IndexPlan(str(root), domain, host, float(epoch), dirs_s, host_fsync,
                         plan_corpus, tuple(drawn))
        if on_plan is not None:
            on_plan(plan, tuple(known))
    for user, sizes, stamps, seen_upto in drawn:
        args = (root, user, domain, sizes, stamps, seen_upto, corpus)
        if files is None:
            if fmt == "maildir":
                texts = None if later else {}
                written = _write_maildir(*args, host, texts, made=later)
                if backend is not None or later:
                    _index_inbox(backend, root, user, texts, epoch, dirs_s, DIRECT)
            else:
                written = _write_mbox(*args)
        else:
            # a share of the mailboxes is written here at once, so that both
            # processes are busy (the writer's kernel work is the larger),
            # and any while the writer is behind, rather than wait for it
            user_bytes = sum(sizes)
            here = HERE_SHARE > 0 and (
                bytes_here <= HERE_SHARE * (bytes_all + user_bytes)
                or files.behind())
            sink = DIRECT if here else files
            bytes_all += user_bytes
            if here:
                bytes_here += user_bytes
            if fmt == "maildir":
                texts = None if later else {}
                written = _write_maildir(*args, host, texts, sink, made=later)
                if backend is not None or later:
                    _index_inbox(backend, root, user, texts, epoch, dirs_s, sink)
            else:
                written = _write_mbox(*args, sink)
            if not here:
                files.touch(user)
        file_total += written
    if files is not None and fmt == "mbox":
        files.sync()  # mbox delivery appends at once, without waiting
    indexed = backend is not None or later
    return MailboxStats(fmt, n_users, int(counts.sum()), unread_total, message_total,
                        file_total, max(per_bytes, default=0), tuple(per_messages),
                        tuple(per_bytes), tuple(known), indexed, plan)


def build_indexes(plan: IndexPlan, backend: CyrusBackend | None = None) -> None:
    """Build the INBOX indexes ``populate(defer_index=True)`` left to build,
    with *backend* (one over ``plan.root``, which keeps them in memory; a new
    one when None): the same index and cache files as ``populate`` builds,
    from the same bytes drawn again, none of the message files read (the
    writer process may not have written them yet)."""
    if backend is None:
        backend = CyrusBackend(plan.root, host_fsync=plan.host_fsync,
                               sole_writer=not plan.host_fsync)
    corpus = copy.deepcopy(plan.corpus)  # the plan stays undrawn
    pending_ns = plan.dirs_s * 1_000_000_000
    for user, sizes, stamps, seen_upto in plan.users:
        texts = {name: b"".join(pieces) for name, pieces in _maildir_pieces(
            user, plan.domain, sizes, stamps, seen_upto, corpus, plan.host)}
        backend.index_written(user, texts, plan.epoch, pending_ns)


def _index_inbox(backend: CyrusBackend | None, root: Path, user: str,
                 texts: dict[str, bytes] | None, epoch: float, dirs_s: int,
                 sink: Files) -> None:
    """Build *user*'s INBOX index from the bytes alone (*texts*, as written),
    noting *dirs_s* as the mtime of ``new/`` and ``cur/``, which *sink* gives
    them once it has written their files: the same store whoever writes it.
    No *backend*: only the mtimes (``build_indexes`` builds the index)."""
    if backend is not None:
        backend.index_written(user, texts, float(epoch), dirs_s * 1_000_000_000)
    inbox = str(maildir_path(root, user))
    sink.set_mtime(inbox + "/new", dirs_s)
    sink.set_mtime(inbox + "/cur", dirs_s)


def _write_maildir(root: Path, user: str, domain: bytes, sizes: list[int],
                   stamps: list[int], seen_upto: int, corpus: _Base64Corpus,
                   host: str, texts: dict[str, bytes] | None = None,
                   files: Files | None = None, made: bool = False) -> int:
    """Write one user's maildir (the files through *files* when given; the
    directories here, unless *made*); *texts* gets each file's name in
    ``cur/`` and bytes."""
    inbox = maildir_path(root, user) if made else _make_maildir(root, user)
    cur = str(inbox / "cur")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    total = 0
    for size, (filename, pieces) in zip(sizes, _maildir_pieces(
            user, domain, sizes, stamps, seen_upto, corpus, host), strict=True):
        path = f"{cur}/{filename}"
        text = b"".join(pieces)
        if files is not None:
            if len(text) != size:
                raise AssertionError(f"made {len(text)} of {size} bytes for {path}")
            files.create(path, (text,), False)
            if texts is not None:
                texts[filename] = text
            total += size
            continue
        fd = os.open(path, flags, 0o600)
        try:
            wrote = os.write(fd, text)
        finally:
            os.close(fd)
        if texts is not None:
            texts[filename] = text
        if wrote != size:
            raise AssertionError(f"wrote {wrote} of {size} bytes to {path}")
        total += size
    return total


def _make_maildir(root: Path, user: str) -> Path:
    """Make *user*'s ``tmp/``, ``new/`` and ``cur/`` (if missing); the maildir."""
    inbox = maildir_path(root, user)
    for sub in ("tmp", "new", "cur"):
        os.makedirs(inbox / sub, mode=0o700, exist_ok=True)
    return inbox


def _maildir_pieces(user: str, domain: bytes, sizes: list[int], stamps: list[int],
                    seen_upto: int, corpus: _Base64Corpus, host: str):
    """Each of one user's maildir messages: its file name in ``cur/`` and the
    pieces of its bytes, in order (what ``_write_maildir`` writes and
    ``build_indexes`` indexes)."""
    name = user.encode()
    for k, (size, stamp) in enumerate(zip(sizes, stamps, strict=True), start=1):
        info = ":2,S" if k <= seen_upto else ":2,"
        yield (f"{stamp}.I{k:07d}.{host}{info}",
               _message(name, domain, k, stamp, size, b"", corpus))


def _write_mbox(root: Path, user: str, domain: bytes, sizes: list[int],
                stamps: list[int], seen_upto: int, corpus: _Base64Corpus,
                files: Files | None = None) -> int:
    """Write one user's spool file (through *files* when given)."""
    path = mbox_path(root, user)
    if files is not None:
        parts: list = []
        total = _mbox_pieces(parts.append, user, domain, sizes, stamps, seen_upto,
                             corpus)
        files.create(str(path), tuple(parts), False)
        return total
    with open(path, "wb") as out:
        return _mbox_pieces(out.write, user, domain, sizes, stamps, seen_upto, corpus)


def _mbox_pieces(write, user: str, domain: bytes, sizes: list[int],
                 stamps: list[int], seen_upto: int, corpus: _Base64Corpus) -> int:
    """Pass the spool file's pieces in order to *write*; the bytes in all."""
    name = user.encode()
    total = 0
    for k, (size, stamp) in enumerate(zip(sizes, stamps, strict=True), start=1):
        status = b"Status: RO\n" if k <= seen_upto else b"Status: O\n"
        extra = status + b"X-UID: %d\n" % k
        if k == 1:
            extra = b"X-IMAPbase: %d %d\n" % (stamps[0], len(sizes)) + extra
        pieces = _message(name, domain, k, stamp, size, extra, corpus)
        from_line = b"From %s@example.org  %s\n" % (
            _SENDERS[k % len(_SENDERS)], time.asctime(time.gmtime(stamp)).encode())
        write(from_line)
        for piece in pieces:
            write(piece)
        write(b"\n")
        total += len(from_line) + size + 1
    return total
