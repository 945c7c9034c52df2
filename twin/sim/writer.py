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
number of data pieces, each piece's size -- then a pickled list of
``(operation, arguments)`` tuples (operation names from
``twin.stages.fileops.OPERATIONS``), then the data pieces, so message bytes
are copied only by the kernel. A ``create``'s arguments name its parts by
their numbers among the batch's pieces: a part the batch holds already (the
same bytes object, such as one message in the queue files of two hosts) goes
down the pipe once. After each batch the child answers one line on its stdout:
the number of batches done, then ``ok`` or ``error <what failed>``.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path

try:
    import fcntl
except ImportError:  # not on this platform: the default pipe size it is
    fcntl = None

from twin.errors import TwinError
from twin.stages import fileops

_PAIR = struct.Struct("<QQ")
IOV_MAX = 1024
_CHILD = "from twin.sim.writer import main; sys.exit(main())"
BATCH_BYTES = 1 << 20
"""Bytes of file data gathered before a batch goes down the pipe."""
BATCH_OPERATIONS = 2048
PIPE_BYTES = 1 << 20
BACKLOG_BATCHES = 16
"""Batches the child holds read but not yet done (at most ~16 MB of data)."""
"""Pipe capacity asked of Linux (F_SETPIPE_SZ), so a batch rarely blocks."""


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
        self._sent = 0
        """Batches sent to the child; the one being gathered is number sent + 1."""
        self._done = 0
        """Batches the child reported done."""
        self._failure = ""
        self._heard = b""
        self._closed = False
        self._touched: dict[str, int] = {}
        """Key -> the batch of its last operation (``touch``)."""
        self._eager = False
        """Send a batch as soon as it touches a key (``expect_readers``)."""
        # the child imports this very package, wherever it was imported from
        root = str(Path(__file__).resolve().parents[2])
        code = f"import sys; sys.path.insert(0, {root!r}); {_CHILD}"
        self._process = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        self._pipe = self._process.stdin
        self._fd = self._pipe.fileno()
        self._answers = self._process.stdout
        self._answers_fd = self._answers.fileno()
        os.set_blocking(self._answers_fd, False)
        setpipe = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl else None
        if setpipe is not None:
            try:
                fcntl.fcntl(self._pipe.fileno(), setpipe, PIPE_BYTES)
            except OSError:
                pass  # a smaller pipe only makes the simulation wait more often

    # -- the operations of Files ---------------------------------------------

    def create(self, path: str, parts: tuple[bytes, ...], fsync: bool) -> None:
        # the data goes down the pipe as it is, after the pickle, once a batch
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
        self._add("create", (path, tuple(numbers), fsync), added)

    def mkdir(self, path: str) -> None:
        self._add("mkdir", (path,), 0)

    def rename(self, source: str, target: str) -> None:
        self._add("rename", (source, target), 0)

    def link_new(self, source: str, target: str) -> None:
        self._add("link_new", (source, target), 0)

    def unlink(self, path: str) -> None:
        self._add("unlink", (path,), 0)

    def set_mtime(self, path: str, stamp: float) -> None:
        self._add("set_mtime", (path, stamp), 0)

    def touch(self, key: str) -> None:
        """The operations asked for so far touch *key* (a user's mailbox)."""
        if not self._batch:  # all of them are on their way already
            self._touched[key] = self._sent
            return
        self._touched[key] = self._sent + 1
        if self._eager:
            self._send()

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
            self._hear(block=True)
        if self._failure:
            raise TwinError(f"store: {self._failure}")

    def _hear(self, block: bool) -> None:
        """Read the child's reports: one line ``<batch> ok|error <what>`` each."""
        while True:
            if block:
                select.select([self._answers_fd], [], [])
            try:
                chunk = os.read(self._answers_fd, 65536)
            except BlockingIOError:
                return
            if not chunk:
                if self._done < self._sent and not self._failure:
                    self._failure = "the writer process ended unexpectedly; run again"
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

    def _send(self) -> None:
        meta = pickle.dumps(self._batch, protocol=5)
        pieces, sizes = self._pieces, self._sizes
        self._batch = []
        self._pieces = []
        self._sizes = []
        self._piece_of = {}
        self._bytes = 0
        head = struct.pack(f"<QQ{len(sizes)}Q", len(meta), len(sizes), *sizes)
        try:
            _write_vector(
                self._fd, [head, meta, *pieces], [len(head), len(meta), *sizes]
            )
        except (BrokenPipeError, ValueError):
            raise TwinError(
                "store: the writer process ended unexpectedly; run again"
            ) from None
        self._sent += 1
        self._hear(block=False)  # keep the child's report pipe from filling


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


def start_writer() -> FileWriter | fileops.Files:
    """A ``FileWriter``, or the at-once ``Files`` where none can start."""
    if os.environ.get("MAILTWIN_WRITER", "1") == "0":
        return fileops.DIRECT
    try:
        return FileWriter()
    except OSError:
        return fileops.DIRECT


# -- the child ---------------------------------------------------------------


def _frame(stream) -> list | None:
    """The next batch on *stream*, or None at its end."""
    head = stream.read(_PAIR.size)
    if len(head) < _PAIR.size:
        return None
    meta_size, count = _PAIR.unpack(head)
    sizes = stream.read(8 * count)
    if len(sizes) < 8 * count:
        return None
    meta = stream.read(meta_size)
    buffers = []
    for size in struct.unpack(f"<{count}Q", sizes):
        buffer = bytearray(size)
        if stream.readinto(buffer) < size:
            return None
        buffers.append(buffer)
    if len(meta) < meta_size:
        return None
    batch = pickle.loads(meta)
    for index, (operation, arguments) in enumerate(batch):
        if operation == "create":
            path, numbers, fsync = arguments
            batch[index] = (
                operation,
                (path, tuple([buffers[number] for number in numbers]), fsync),
            )
    return batch


def _frames(stream, batches: deque, ready: threading.Condition) -> None:
    """Read frames from *stream* into *batches* (None at the end)."""
    while True:
        batch = _frame(stream)
        with ready:
            # a bounded backlog: beyond it the pipe fills and the simulation
            # waits, rather than this process holding gigabytes of messages
            while len(batches) >= BACKLOG_BATCHES:
                ready.wait()
            batches.append(batch)
            ready.notify_all()
        if batch is None:
            return


def _describe(operation: str, arguments: tuple, error: OSError) -> str:
    path = arguments[0] if arguments else ""
    reason = error.strerror or str(error)
    return f"error {operation} {path}: {reason} (check free space and permissions)"


def main() -> int:
    """Do the operations read from stdin; answer each sync on stdout."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    batches: deque = deque()
    ready = threading.Condition()
    # A reader thread keeps the pipe drained while this one is in the kernel,
    # so the simulation seldom waits on a full pipe.
    reader = threading.Thread(
        target=_frames, args=(sys.stdin.buffer, batches, ready), daemon=True
    )
    reader.start()
    out = sys.stdout.buffer
    failure = ""
    done = 0
    operations = fileops.OPERATIONS
    while True:
        with ready:
            while not batches:
                ready.wait()
            batch = batches.popleft()
            ready.notify_all()
        if batch is None:
            return 1 if failure else 0
        if not failure:
            for operation, arguments in batch:
                try:
                    operations[operation](*arguments)
                except OSError as error:
                    failure = _describe(operation, arguments, error)
                    break
        done += 1
        out.write(f"{done} {failure or 'ok'}\n".encode())
        out.flush()


if __name__ == "__main__":
    sys.exit(main())
