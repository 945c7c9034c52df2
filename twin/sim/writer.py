"""A writer process: the stores' file operations done on the host's other core.

Creating, writing, renaming and unlinking queue and maildir files is a large
share of a run's wall time, nearly all of it in the kernel, and none of it
changes a simulated result: the stages count the work and the hardware model
times it. ``FileWriter`` has the methods of ``twin.stages.fileops.Files``; it
batches the operations and pipes them to a child process (``main`` of this
module) that does them in the same order, while the simulation goes
on. The files are the same as if they were written at once.

``sync()`` waits until every operation sent so far is done and raises
``TwinError`` naming the first that failed (the child stops at a failure:
what follows may depend on it). A reader of the store calls it first, or,
for one user's mailbox, ``ready(user)`` after the writer calls
``touch(user)``: that waits only for the batches that touched it, which the
child has nearly always done already (after ``expect_readers()`` a batch that
touches a key goes to the child at once).
``close()`` syncs and ends the child; ``abandon()`` ends it without asking
how its operations went (after a failed run). Where no child can be started
the operations are done at once, in process.

Frames on the pipe: little-endian 8-byte counts -- the pickle's size, the
number of data pieces, their total size, each piece's size -- then a pickled
list of ``(operation, arguments)`` tuples (operation names from
``twin.stages.fileops.OPERATIONS``), then the data pieces, so message bytes
are copied only by the kernel. A ``create``'s arguments name its parts by
their numbers among the batch's pieces: a part the batch holds already (the
same bytes object, such as one message in the queue files of two hosts) goes
down the pipe once. After each batch the child answers one line on its stdout:
the number of batches done, then ``ok`` or ``error <what failed>``.

Operations that cancel out within a batch are folded before it goes: a file
the batch creates and then renames or links elsewhere is created there at
once, and one it creates and then removes is never written (``create_over``
and ``discard`` keep rename's replacing of a file that was there). Most queue
files live a second of simulated time: for a day of the ece-2007-dell mail
path, with batches of 1 MB, the pipe carried 225 MB instead of 372 MB and the
child did 33,044 operations instead of 73,330, 15,169 of them removals of
names never written (``reports/s7/opcount.py``). Batches of 4 MB fold more and
share more pieces: 173 MB in 78 batches instead of 306
(``reports/s9/opcount.py``). The files at every ``sync`` are the same.

A batch that a reader may wait for goes at once (``expect_readers``), or,
when the caller says from what simulated time a reader may ask for it
(``touch(key, due)``), at the first ``tick(now)`` within ``READ_MARGIN_S`` of
that time: the deliveries of users who read later share a batch. The
files in it created ``transient`` (queue files) that nothing has used since
are held back for the next batch, so that their removal a second later still
folds them away: a simulated day with readers wrote and removed 7,031 queue
files before, 74 after.
"""

from __future__ import annotations

import gc
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

try:
    import fcntl
except ImportError:  # not on this platform: the default pipe size it is
    fcntl = None

from twin.errors import TwinError
from twin.sim.children import (  # noqa: F401  (CHILD_NICE: as before)
    CHILD_NICE,
    WRITER_CODE,
    exit_status,
    spawn_child,
)
from twin.sim.recorder import BATCH_ROWS
from twin.stages import fileops

_HEAD = struct.Struct("<QQQ")
IOV_MAX = fileops.IOV_MAX
_CHILD = WRITER_CODE
_CREATES = frozenset(("create", "create_over"))
"""Operations that write data pieces (``create_over``: a folded rename)."""
BATCH_BYTES = 4 << 20
"""Bytes of file data gathered before a batch goes down the pipe. A larger
batch folds more and sends a shared piece once more often; with 1 MB batches
the simulation waited on the full pipe ~4 times as long (two simulated days
of the mail path: 0.9-2.3 s against 0.45-0.5 s, ``os.writev`` timed in the
parent)."""
BATCH_OPERATIONS = 8192
PIPE_BYTES = 1 << 20
"""Pipe capacity asked of Linux (F_SETPIPE_SZ), so a batch rarely blocks."""
TABLE_CHUNK = 4096
"""Rows a ``PipedTable`` sends at once."""
ROW_BYTES = 256
"""About what a row of a table adds to a batch, pickled (for its size)."""
BACKLOG_BATCHES = 8
"""Batches the child holds read but not yet done (at most ~32 MB of data)."""
BUFFER_BYTES = BATCH_BYTES + (1 << 20)
"""The child's smallest frame buffer: a batch's data and its operations."""
SEND_AHEAD = 2
"""Batches the parent's sender thread holds, the one it is writing included.
Writing a 4 MB batch into a 1 MB pipe waits on the child four times; the
simulation waited so ~1.5 s of a 20 s week when it wrote them itself."""
SEND_AT_ONCE_BYTES = 256 << 10
"""A batch this small, with nothing before it in the sender thread, is
written by the simulation itself: a run with readers sends thousands of
small batches (each a mailbox a session waits for), and handing each to the
thread cost that run ~3 s of kernel time."""
READ_MARGIN_S = 180.0
"""Simulated seconds before a reader may ask for a touched key at which its
batch goes (``touch`` with a *due* time, then ``tick``): a simulated minute
is ~8 ms of an access week's wall time, time enough for the child to write
a batch of deliveries before the session that reads them."""
HEAR_EVERY = 16
"""Batches sent between two looks at the child's reports (a line of ~10
bytes a batch: thousands fit in the report pipe). A look after every batch
mostly found nothing -- 21,000 of the 60,000 reads of two simulated days with
readers failed, each raising BlockingIOError -- while ``ready`` and ``sync``
read the reports they wait for anyway."""
_NEVER = float("inf")
_GONE = "the writer process ended unexpectedly; run again"
"""What a failure reads when the child is gone without a report."""


def widen_pipe(pipe) -> None:
    """Ask Linux for a pipe of PIPE_BYTES (F_SETPIPE_SZ) where it can."""
    setpipe = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl else None
    if setpipe is not None:
        try:
            fcntl.fcntl(pipe.fileno(), setpipe, PIPE_BYTES)
        except OSError:
            pass  # a smaller pipe only makes one side wait more often


class FileWriter:
    """``Files`` whose operations run in a child process, in order."""

    def __init__(self) -> None:
        self._batch: list[tuple[str, tuple]] = []
        self._pieces: list = []
        """The batch's file data, each distinct object once."""
        self._sizes: list[int] = []
        self._piece_of: dict[int, int] = {}
        """id() of a piece -> its number (the batch keeps every piece alive)."""
        self._bytes = 0
        self._fresh: dict[str, tuple[int, bool]] = {}
        """Path -> (index in the batch of the ``create`` that made the file
        there, whether it replaced a file that may have been there), while
        nothing else in the batch has used that path since."""
        self._seen: dict[str, int] = {}
        """Path -> index in the batch of the last operation naming it."""
        self._dropped = 0
        """Operations of the batch cancelled (left as None)."""
        self._transient: list[int] = []
        """Indexes in the batch of the ``create`` calls marked transient."""
        self._sent = 0
        """Batches sent to the child; the one being gathered is number sent + 1."""
        self._done = 0
        """Batches the child reported done."""
        self._failure = ""
        self._heard = b""
        self._closed = False
        self.waited_s = 0.0
        """Host seconds the simulation spent waiting for the child's reports
        (a diagnostic for the run's manifest, never in a result)."""
        self._touched: dict[str, int] = {}
        """Key -> the batch of its last operation (``touch``)."""
        self._eager = False
        """Send a batch as soon as it touches a key (``expect_readers``)."""
        self._send_at = _NEVER
        """Simulated time from which ``tick`` sends the batch: the earliest
        *due* of its ``touch`` calls less ``READ_MARGIN_S``."""
        self._process = spawn_child(_CHILD)
        self._pipe = self._process.stdin
        self._fd = self._pipe.fileno()
        self._answers = self._process.stdout
        self._answers_fd = self._answers.fileno()
        os.set_blocking(self._answers_fd, False)
        widen_pipe(self._pipe)
        self._outbox: deque = deque()
        """Frames (pieces, sizes) for the sender thread; the first is the one
        it is writing; None ends it."""
        self._posted = threading.Condition()
        self._broken = False
        """The sender thread could not write: the child is gone."""
        self._sender = threading.Thread(
            target=self._sending, name="twin-writer-send", daemon=True
        )
        self._sender.start()

    # -- the operations of Files ---------------------------------------------

    def create(
        self,
        path: str,
        parts: tuple[bytes, ...],
        fsync: bool,
        transient: bool = False,
        strip_cr: bool = False,
    ) -> None:
        numbers, added = self._numbered(parts)
        index = len(self._batch)
        if fsync:  # a file asked to be flushed is always written
            self._fresh.pop(path, None)
        else:
            self._fresh[path] = (index, False)
            if transient:
                self._transient.append(index)
        self._seen[path] = index
        # (the CRs are stripped by the child, off the simulation's core)
        self._add("create", (path, numbers, fsync, strip_cr) if strip_cr
                  else (path, numbers, fsync), added)

    def _numbered(self, parts: tuple[bytes, ...]) -> tuple[tuple[int, ...], int]:
        """The numbers of *parts* among the batch's pieces (each distinct
        object once: the data goes down the pipe as it is, after the pickle),
        and the bytes the new ones add."""
        piece_of = self._piece_of
        pieces = self._pieces
        numbers = []
        added = 0
        for part in parts:
            number = piece_of.get(id(part))
            if number is None:
                number = piece_of[id(part)] = len(pieces)
                pieces.append(part)
                size = len(part) if type(part) is bytes else memoryview(part).nbytes
                self._sizes.append(size)
                added += size
            numbers.append(number)
        return tuple(numbers), added

    def mkdir(self, path: str) -> None:
        self._named(path)
        self._add("mkdir", (path,), 0)

    def rename(self, source: str, target: str, new: bool = False) -> None:
        if not self._moved(source, target, "create" if new else "create_over"):
            self._named(source, target)
            self._add("rename", (source, target), 0)

    def link_new(self, source: str, target: str) -> None:
        if not self._moved(source, target, "create"):
            self._named(source, target)
            self._add("link_new", (source, target), 0)

    def unlink(self, path: str) -> None:
        made = self._fresh.pop(path, None)
        if made is not None:
            # made in this very batch and used by nothing since: neither the
            # file nor its data need reach the disk (a queue file that lived a
            # second, the usual case); where it was renamed onto a file that
            # may have been there, that file goes
            index, replaced = made
            self._batch[index] = ("discard", (path,)) if replaced else None
            self._dropped += 1
            self._seen[path] = index
            return
        self._named(path)
        self._add("unlink", (path,), 0)

    def set_mtime(self, path: str, stamp: float) -> None:
        self._named(path)
        self._add("set_mtime", (path, stamp), 0)

    # -- tables ----------------------------------------------------------------

    def table_open(self, path: str, schema, batch_rows: int) -> None:
        """Start the Parquet table *path* (``twin.sim.recorder.TableWriter``)."""
        self._add("table_open", (path, schema, batch_rows), 0)

    def table_rows(self, path: str, rows: list[tuple]) -> None:
        """Rows for the table *path*, in order."""
        self._add("table_rows", (path, rows), ROW_BYTES * len(rows))

    def table_close(self, path: str) -> None:
        """Write the rest of the table *path* and its footer."""
        self._add("table_close", (path,), 0)

    # -- operations that cancel out within a batch ---------------------------

    def _named(self, *paths: str) -> None:
        """An operation about to join the batch uses *paths*."""
        index = len(self._batch)
        fresh = self._fresh
        seen = self._seen
        for path in paths:
            fresh.pop(path, None)
            seen[path] = index

    def _moved(self, source: str, target: str, how: str) -> bool:
        """Fold a move of a file this batch made into its ``create``: the file
        is written under *target* at once (*how*: ``create`` where the target
        must not exist, as for link_new; ``create_over`` where a file there is
        replaced, as rename does). Only where nothing in the batch named
        *target* or its folder since the file was made, so that no operation
        in between sees a difference. True if folded."""
        fresh = self._fresh
        made = fresh.get(source)
        if made is None or made[1]:
            # not made here, or made over a file that was there: moving it on
            # would leave that file behind
            return False
        index = made[0]
        seen = self._seen
        if seen.get(target, -1) >= index or seen.get(
            target.rpartition("/")[0], -1
        ) >= index:
            return False
        del fresh[source]
        _, arguments = self._batch[index]
        self._batch[index] = (how, (target, *arguments[1:]))
        fresh[target] = (index, how == "create_over")
        seen[target] = index
        return True

    def touch(self, key: str, due: float | None = None) -> None:
        """The operations asked for so far touch *key* (a user's mailbox).

        After ``expect_readers`` their batch goes at once; or, given *due*
        (the simulated time before which no reader asks for *key*), at the
        first ``tick`` within ``READ_MARGIN_S`` of the earliest such time:
        a batch then gathers the deliveries of users who will not read for a
        while, instead of one batch for each delivery."""
        if not self._batch:  # all of them are on their way already
            self._touched[key] = self._sent
            return
        self._touched[key] = self._sent + 1
        if self._eager:
            if due is None:
                self._send(hold=True)
            elif due - READ_MARGIN_S < self._send_at:
                self._send_at = due - READ_MARGIN_S

    def tick(self, now: float) -> None:
        """Simulated time is *now*: send the batch if a reader may soon ask
        for a key it touched (see ``touch``)."""
        if now >= self._send_at:
            self._send(hold=True)

    def expect_readers(self) -> None:
        """Readers will wait for keys (``ready``): from now on a batch that
        touches a key goes to the child at once, so that it is nearly always
        done before its reader asks, instead of being sent by ``ready`` and
        waited for (a simulated day with users reading mail waited ~460
        times, 4-8 s in all, before this)."""
        self._eager = True

    def ready(self, key: str) -> None:
        """Wait until the operations that touched *key* are done (``sync`` for
        one key: seldom a wait, as the child is usually far ahead)."""
        needed = self._touched.get(key, 0)
        if needed > self._done:
            self._wait_for(needed)

    def written(self, key: str) -> bool:
        """Whether the operations that touched *key* are done, without
        waiting: if not, they are on their way to the child (sent now if
        they were still gathered). False after a failure, which ``ready``
        then reports."""
        if self._failure:
            return False
        needed = self._touched.get(key, 0)
        if needed <= self._done:
            return True
        if self._closed:
            return False
        if needed > self._sent:
            self._send()
        self._hear(block=False)
        return needed <= self._done and not self._failure

    def sync(self) -> None:
        """Wait for every operation so far; TwinError naming the first failure."""
        self._wait_for(self._sent + 1 if self._batch else self._sent)

    def _wait_for(self, batch: int) -> None:
        if self._closed:
            if batch > self._done:
                raise TwinError("store: file operations after the writer was closed")
            return
        if batch > self._sent:
            self._send()
        self._hear(block=False)
        while self._done < batch and not self._failure:
            if self._broken:
                self._hear(block=False)
                self._failure = self._failure or self._gone()
                break
            self._hear(block=True)
        if self._failure:
            raise TwinError(f"store: {self._failure}")

    def _hear(self, block: bool) -> None:
        """Read the child's reports: one line ``<batch> ok|error <what>`` each."""
        while True:
            if block:
                started = time.perf_counter()
                select.select([self._answers_fd], [], [])
                self.waited_s += time.perf_counter() - started
            try:
                chunk = os.read(self._answers_fd, 65536)
            except BlockingIOError:
                return
            if not chunk:
                if self._done < self._sent and not self._failure:
                    self._failure = self._gone()
                return
            self._heard += chunk
            *lines, self._heard = self._heard.split(b"\n")
            for line in lines:
                number, _, status = line.decode("utf-8", "replace").partition(" ")
                self._done = max(self._done, int(number))
                if status != "ok" and not self._failure:
                    self._failure = status.removeprefix("error ")
            if block and lines:
                return

    def _gone(self) -> str:
        """What a failure reads when the child is gone without a report: how
        it ended, where that is known within a second."""
        try:
            code = self._process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return _GONE
        return _GONE.replace("unexpectedly", f"unexpectedly ({exit_status(code)})")

    def flush(self) -> None:
        """Send the operations gathered so far, without waiting for them."""
        if self._batch and not self._closed:
            self._send()

    def close(self) -> None:
        """Sync, then end the child."""
        try:
            self.sync()
        finally:
            self.abandon()

    def abandon(self) -> None:
        """End the child without asking how its operations went: it does what
        it holds (a minute at most, then it is killed) and exits."""
        if self._closed:
            return
        self._closed = True
        process = self._process
        self._post(None)
        self._sender.join(timeout=60)  # what it holds goes first
        if self._sender.is_alive():  # a child that takes nothing more
            process.kill()
            self._sender.join()
        try:
            self._pipe.close()
        except OSError:
            pass  # the child is gone already
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self._answers.close()

    # -- batching ------------------------------------------------------------

    def _add(self, operation: str, arguments: tuple, size: int) -> None:
        self._batch.append((operation, arguments))
        self._bytes += size
        if self._bytes >= BATCH_BYTES or len(self._batch) >= BATCH_OPERATIONS:
            self._send()

    def _send(self, hold: bool = False) -> None:
        """Send the batch; with *hold*, keep its transient files back for the
        next one (``_held``)."""
        held = self._held() if hold and self._transient else ()
        batch, pieces, sizes = self._batch, self._pieces, self._sizes
        if self._dropped:
            batch, pieces, sizes = _without_dropped(batch, pieces, sizes)
        meta = pickle.dumps(batch, protocol=5)
        old_pieces = self._pieces
        self._batch = []
        self._pieces = []
        self._sizes = []
        self._piece_of = {}
        self._bytes = 0
        self._fresh = {}
        self._seen = {}
        self._dropped = 0
        self._transient = []
        self._send_at = _NEVER
        for operation, (path, numbers, *rest), replaced in held:
            # the next batch starts with them, as if just asked for (no size
            # check: they fitted in this one)
            numbers, added = self._numbered(tuple(old_pieces[n] for n in numbers))
            index = len(self._batch)
            self._batch.append((operation, (path, numbers, *rest)))
            self._bytes += added
            self._fresh[path] = (index, replaced)
            self._seen[path] = index
            self._transient.append(index)
        head = struct.pack(
            f"<QQQ{len(sizes)}Q", len(meta), len(sizes), sum(sizes), *sizes
        )
        self._post(([head, meta, *pieces], [len(head), len(meta), *sizes]))
        self._sent += 1
        if not self._sent % HEAR_EVERY:
            self._hear(block=False)  # keep the child's report pipe from filling

    def behind(self) -> bool:
        """Whether the sender thread holds ``SEND_AHEAD`` batches: the next
        one sent would wait for the child (``Files.behind``)."""
        return len(self._outbox) >= SEND_AHEAD

    def _post(self, frame: tuple[list, list[int]] | None) -> None:
        """Give *frame* to the sender thread, once it holds fewer than
        ``SEND_AHEAD`` (None: the last, and no wait)."""
        posted = self._posted
        with posted:
            if (
                frame is not None
                and not self._outbox
                and not self._broken
                and sum(frame[1]) <= SEND_AT_ONCE_BYTES
            ):
                # the thread is idle and the pipe takes this much at once: a
                # hop through the thread would cost more than it saves
                try:
                    _write_vector(self._fd, *frame)
                except (OSError, ValueError):
                    self._broken = True
                    raise TwinError(f"store: {self._gone()}") from None
                return
            while (
                frame is not None
                and len(self._outbox) >= SEND_AHEAD
                and not self._broken
            ):
                posted.wait()
            if self._broken and frame is not None:
                raise TwinError(f"store: {self._gone()}")
            self._outbox.append(frame)
            posted.notify_all()

    def _sending(self) -> None:
        """The sender thread: write each posted frame down the pipe, in order
        (the GIL is free while ``os.writev`` waits on the child)."""
        outbox, posted = self._outbox, self._posted
        while True:
            with posted:
                while not outbox:
                    posted.wait()
                frame = outbox[0]
            if frame is None:
                return
            try:
                _write_vector(self._fd, *frame)
            except (OSError, ValueError):
                with posted:
                    self._broken = True
                    outbox.clear()
                    posted.notify_all()
                return
            with posted:
                outbox.popleft()
                posted.notify_all()

    def _held(self) -> list[tuple[str, tuple, bool]]:
        """Take out of the batch (as cancelled) the transient files that
        nothing in it has used since they were made, nor their folder: the
        operations after them touch other paths, so doing those first leaves
        the same files once these are done. A queue file removed a second
        later is then folded away in the next batch instead of being written
        and removed, although a reader's ``touch`` sends the batch at once.
        Returns (operation, arguments, replaced) of each, in order."""
        batch, fresh, seen = self._batch, self._fresh, self._seen
        held = []
        for index in self._transient:
            item = batch[index]
            if item is None or item[0] not in _CREATES:
                continue  # folded away, or turned into a discard
            path = item[1][0]
            made = fresh.get(path)
            if made is None or made[0] != index:
                continue  # used since it was made
            if seen.get(path.rpartition("/")[0], -1) > index:
                continue  # its folder was named since
            del fresh[path]
            batch[index] = None
            self._dropped += 1
            held.append((item[0], item[1], made[1]))
        return held


def _without_dropped(
    batch: list, pieces: list, sizes: list[int]
) -> tuple[list, list, list[int]]:
    """*batch* without its cancelled operations, and only the pieces the rest
    still write (renumbered)."""
    kept = []
    kept_pieces: list = []
    kept_sizes: list[int] = []
    renumbered: dict[int, int] = {}
    for item in batch:
        if item is None:
            continue
        operation, arguments = item
        if operation in _CREATES:
            path, numbers, *rest = arguments
            new_numbers = []
            for number in numbers:
                new = renumbered.get(number)
                if new is None:
                    new = renumbered[number] = len(kept_pieces)
                    kept_pieces.append(pieces[number])
                    kept_sizes.append(sizes[number])
                new_numbers.append(new)
            item = (operation, (path, tuple(new_numbers), *rest))
        kept.append(item)
    return kept, kept_pieces, kept_sizes


def _write_vector(fd: int, pieces: list, sizes: list[int]) -> None:
    """Write every byte of *pieces* (of *sizes* bytes) to *fd*, ``IOV_MAX``
    pieces at most a call."""
    index = 0
    while index < len(pieces):
        group = pieces[index : index + IOV_MAX]
        written = os.writev(fd, group)
        total = sum(sizes[index : index + IOV_MAX])
        index += len(group)
        if written < total:  # a short write: finish this group byte by byte
            rest = memoryview(b"".join(group))[written:]
            while rest:
                rest = rest[os.write(fd, rest) :]


class PipedTable:
    """A ``TableWriter`` whose rows the writer process converts and writes.

    Turning rows of Python objects into Arrow columns takes the simulation's
    GIL (and pyarrow imports pandas the first time: ~0.4 s); in the writer
    process it costs the run only pickling the rows. The child writes them
    with a ``TableWriter`` of the same schema and row groups, so the file is
    the same. ``close`` sends the footer; ``FileWriter.sync`` (or ``close``)
    then reports a failure."""

    def __init__(
        self,
        files: FileWriter,
        path: Path,
        schema,
        batch_rows: int = BATCH_ROWS,
        chunk: int = TABLE_CHUNK,
    ) -> None:
        self.files = files
        self.path = str(path)
        self.chunk = chunk
        self.rows: list[tuple] = []
        self.written = 0
        self.closed = False
        files.table_open(self.path, schema, batch_rows)

    def append(self, row: tuple) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.chunk:
            self._send()

    def _send(self) -> None:
        if self.rows:
            self.files.table_rows(self.path, self.rows)
            self.written += len(self.rows)
            self.rows = []

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._send()
        self.files.table_close(self.path)


def start_writer() -> FileWriter | fileops.Files:
    """A ``FileWriter``, or the at-once ``Files`` where none can start."""
    if os.environ.get("MAILTWIN_WRITER", "1") == "0":
        return fileops.DIRECT
    try:
        return FileWriter()
    except OSError:
        return fileops.DIRECT


# -- the child ---------------------------------------------------------------


def _frame(stream, spare: deque) -> tuple[list, bytearray] | None:
    """The next batch on *stream* and the buffer its pieces are views of, or
    None at its end.

    The frame after its head is read by one call into one buffer, not a read
    for each piece, so the parent, when blocked on a full pipe, is woken
    about once a batch rather than once a piece. The buffer is one of
    *spare* (those of batches done) where one is large enough: a new one is
    zeroed and faulted in page by page (page faults were 8.5 % of the
    writer's CPU, perf, these among them; 7.4 % after, most pyarrow's)."""
    head = stream.read(_HEAD.size)
    if len(head) < _HEAD.size:
        return None
    meta_size, count, data_size = _HEAD.unpack(head)
    need = 8 * count + meta_size + data_size
    try:
        rest = spare.pop()
    except IndexError:
        rest = None
    if rest is None or len(rest) < need:
        rest = bytearray(max(need, BUFFER_BYTES))
    view = memoryview(rest)[:need]
    if stream.readinto(view) < need:
        return None
    sizes = struct.unpack_from(f"<{count}Q", rest)
    start = 8 * count + meta_size
    batch = pickle.loads(view[8 * count : start])
    buffers = []
    for size in sizes:
        buffers.append(view[start : start + size])
        start += size
    for index, (operation, arguments) in enumerate(batch):
        if operation in _CREATES:
            path, numbers, *rest = arguments  # (fsync, and strip_cr if given)
            batch[index] = (
                operation,
                (path, tuple([buffers[number] for number in numbers]), *rest),
            )
    return batch, rest


def _frames(
    stream, batches: deque, ready: threading.Condition, spare: deque
) -> None:
    """Read frames from *stream* into *batches* ((batch, buffer) each; None
    at the end), into the buffers of *spare* where it can."""
    while True:
        batch = _frame(stream, spare)
        with ready:
            # a bounded backlog: beyond it the pipe fills and the simulation
            # waits, rather than this process holding gigabytes of messages
            while len(batches) >= BACKLOG_BATCHES:
                ready.wait()
            batches.append(batch)
            ready.notify_all()
        if batch is None:
            return


def _create_over(path: str, parts: tuple, fsync: bool,
                 strip_cr: bool = False) -> None:
    """``create`` in place of whatever file is at *path*: a file made and then
    renamed onto *path* within one batch (rename replaces a target). Made at
    once where nothing is there (a maildir delivery's name is new: unlinking
    first failed 31,000 times in two simulated days with readers, strace)."""
    if strip_cr:
        parts = fileops.stripped(parts)
    try:
        fileops.create(path, parts, fsync)
    except FileExistsError:
        os.unlink(path)
        fileops.create(path, parts, fsync)


def _discard(path: str) -> None:
    """Remove *path* if it is there: a file renamed onto it and then removed
    within one batch."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


_TABLES: dict = {}
"""Path -> the child's ``TableWriter`` of each table open."""


class _TableError(OSError):
    """pyarrow refused a table's rows (a row that does not fit its schema)."""


def _table_call(call, *arguments) -> None:
    try:
        call(*arguments)
    except OSError:
        raise
    except Exception as error:  # pyarrow's, reported as the others are
        raise _TableError(str(error)) from error


def _table_open(path: str, schema, batch_rows: int) -> None:
    from twin.sim.recorder import TableWriter

    def table_open() -> None:
        _TABLES[path] = TableWriter(Path(path), schema, batch_rows)

    _table_call(table_open)


def _table_rows(path: str, rows: list[tuple]) -> None:
    # as TableWriter.append does, a row group every batch_rows rows (so a bad
    # row shows when its group is converted: at a later call, or the close)
    table = _TABLES[path]

    def table_rows() -> None:
        start = 0
        room = table.batch_rows - len(table.rows)
        while len(rows) - start >= room:
            table.rows.extend(rows[start : start + room])
            table.flush()
            start += room
            room = table.batch_rows
        table.rows.extend(rows[start:])

    _table_call(table_rows)


def _table_close(path: str) -> None:
    _table_call(_TABLES.pop(path).close)


def _describe(operation: str, arguments: tuple, error: OSError) -> str:
    path = arguments[0] if arguments else ""
    reason = error.strerror or str(error)
    if isinstance(error, _TableError):
        return f"error {operation} {path}: {reason} (a row that does not fit the table)"
    return f"error {operation} {path}: {reason} (check free space and permissions)"


def _do(batch: list, operations: dict) -> str:
    """Do *batch*'s operations in order; what failed, or ''."""
    for operation, arguments in batch:
        try:
            operations[operation](*arguments)
        except OSError as error:
            return _describe(operation, arguments, error)
    return ""


def main() -> int:
    """Do the operations read from stdin; answer each sync on stdout."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    # A batch's operations are tuples of tuples, freed by their counts: the
    # collector's passes over them were ~5 % of the writer's CPU (perf), and
    # with thresholds as the run's still ~3 %; left off, it found 330
    # objects in cycles after two simulated days with readers (a one-off
    # gc.collect() at the end)
    gc.disable()
    batches: deque = deque()
    spare: deque = deque()
    ready = threading.Condition()
    # A reader thread keeps the pipe drained while this one is in the kernel,
    # so the simulation seldom waits on a full pipe.
    reader = threading.Thread(
        target=_frames,
        args=(sys.stdin.buffer, batches, ready, spare),
        daemon=True,
    )
    reader.start()
    out = sys.stdout.buffer
    failure = ""
    done = 0
    operations = {
        **fileops.OPERATIONS,
        "create_over": _create_over,
        "discard": _discard,
        "table_open": _table_open,
        "table_rows": _table_rows,
        "table_close": _table_close,
    }
    while True:
        with ready:
            while not batches:
                ready.wait()
            batch = batches.popleft()
            ready.notify_all()
        if batch is None:
            return 1 if failure else 0
        batch, buffer = batch
        if not failure:
            failure = _do(batch, operations)
        batch = None  # its views of the buffer die with it: refill it
        spare.append(buffer)
        done += 1
        out.write(f"{done} {failure or 'ok'}\n".encode())
        out.flush()


if __name__ == "__main__":
    sys.exit(main())
