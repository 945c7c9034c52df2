"""The file operations of the stores: done now, or handed to a writer.

The queue manager and the maildir store do real file work -- create a file
and write it, rename, link, unlink, set a time stamp -- through a ``Files``
object. ``Files`` (this module) does each operation at once, in the calling
thread: what unit tests, ``twin serve`` and every tool outside the simulator
use. The simulator may pass a ``twin.sim.writer.FileWriter`` instead, which
has the same methods and does the same operations, in the same order, in a
separate process on the host's other core; it reports a failure at the next
``sync()``. A reader of the files calls ``sync()`` first: after it, every
operation asked for before is done (a no-op here).

Nothing here is counted as work: the stages report the work the operations
stand for (files created, bytes written, renames...), whoever runs them.
"""

from __future__ import annotations

import os

CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL
"""A new file, never one that exists (as Postfix and maildir writers insist)."""


IOV_MAX = 1024
"""Pieces one ``writev`` takes (Linux's UIO_MAXIOV)."""


def write_all(fd: int, parts: tuple[bytes, ...]) -> None:
    """Write every byte of *parts* to *fd* (one writev for each ``IOV_MAX``
    parts, unless one is short)."""
    if len(parts) > IOV_MAX:
        for start in range(0, len(parts), IOV_MAX):
            write_all(fd, parts[start : start + IOV_MAX])
        return
    written = os.writev(fd, parts)
    total = sum(len(part) for part in parts)
    if written < total:
        view = memoryview(b"".join(parts))[written:]
        while view:
            view = view[os.write(fd, view) :]


def create(path: str, parts: tuple[bytes, ...], fsync: bool,
           strip_cr: bool = False) -> None:
    """Create *path* (it must not exist), write *parts*, flush if *fsync*.
    *strip_cr*: write them without their CRs (``stripped``)."""
    if strip_cr:
        parts = stripped(parts)
    fd = os.open(path, CREATE_FLAGS, 0o600)
    try:
        write_all(fd, parts)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def stripped(parts: tuple) -> tuple[bytes, ...]:
    """*parts* (bytes, or views of them) without their CRs: the LF form of
    CRLF lines (``twin.stages.maildir.LfMessage``), made by whoever writes
    the file -- in the simulator, the writer process on the other core."""
    # (replace deletes a byte at memchr's pace: ~2x translate(None, b"\\r"))
    return tuple([bytes(part).replace(b"\r", b"") for part in parts])


def link_new(source: str, target: str) -> None:
    """Link *source* to *target* (which must not exist), then unlink *source*.

    The maildir move from ``tmp/`` to ``new/`` as Postfix local(8) makes it
    (``sane_link``); on a name clash *source* is removed and the error raised.
    """
    try:
        os.link(source, target)
    finally:
        os.unlink(source)


def set_mtime(path: str, stamp: float) -> None:
    os.utime(path, (stamp, stamp))


def make_directory(path: str) -> None:
    os.mkdir(path, 0o700)


OPERATIONS = {
    "create": create,
    "mkdir": make_directory,
    "rename": os.rename,
    "link_new": link_new,
    "unlink": os.unlink,
    "set_mtime": set_mtime,
}
"""Operation name -> function: what a writer may be asked to do."""


class Files:
    """File operations done at once in the calling thread."""

    def create(
        self,
        path: str,
        parts: tuple[bytes, ...],
        fsync: bool,
        transient: bool = False,
        strip_cr: bool = False,
    ) -> None:
        """Create *path* with *parts* (see ``create``). *transient* says the
        file is likely removed soon (a queue file): a writer that batches may
        write it after operations on other paths asked for later, up to the
        next ``sync`` or a size limit, so that it need not be written at all
        (its folder must be one that nothing renames or removes).
        *strip_cr*: the file holds *parts* without their CRs."""
        create(path, parts, fsync, strip_cr)

    def mkdir(self, path: str) -> None:
        """Make the directory *path* (mode 0700); it must not exist."""
        make_directory(path)

    def rename(self, source: str, target: str, new: bool = False) -> None:
        """Rename *source* to *target*; *new* says nothing is at *target* (a
        writer that batches may then fold a file made and moved in one batch
        into a create that a later removal cancels wholly)."""
        os.rename(source, target)

    def link_new(self, source: str, target: str) -> None:
        link_new(source, target)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def set_mtime(self, path: str, stamp: float) -> None:
        set_mtime(path, stamp)

    def touch(self, key: str, due: float | None = None) -> None:
        """The operations so far touched *key*, which a reader may ask for
        from simulated time *due* on (nothing to remember here)."""

    def tick(self, now: float) -> None:
        """Simulated time is *now* (nothing waits for it here)."""

    def behind(self) -> bool:
        """Whether a writer that works apart has more to do than it holds
        ahead, so that asking for more would wait (never here)."""
        return False

    def ready(self, key: str) -> None:
        """The operations that touched *key* are done (always true here)."""

    def written(self, key: str) -> bool:
        """Whether the operations that touched *key* are done, without
        waiting (always here)."""
        return True

    def expect_readers(self) -> None:
        """Readers will call ``ready`` (nothing to prepare here)."""

    def sync(self) -> None:
        """Every operation asked for so far is done (always true here)."""

    def close(self) -> None:
        """Nothing to release."""


DIRECT = Files()
"""The shared at-once ``Files``: it holds no state."""
