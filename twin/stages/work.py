"""Work: what a stage did, counted in units the hardware model turns into time.

This is the one contract of mailtwin (see DESIGN.md): a stage decides for real
and reports the *work* it did; the host's hardware model turns that work into
simulated service time. A ``Work`` record therefore never holds seconds.

Counts are additive integers:

- ``cpu``: CPU work by unit kind, e.g. ``{"smtp.command": 9, "smtp.byte": 5120}``.
  Unit kinds are named ``<stage>.<unit>``; every stage module lists the kinds it
  reports in a ``CPU_UNITS`` mapping (kind -> meaning), and every kind has a
  reference cost in ``hardware/costs/<stage>.yaml`` (seconds per unit on the
  reference CPU), which a hardware profile scales and may override.
- ``reads`` / ``writes``: file data moved to or from storage, as
  ``(file key, bytes)`` pairs. The key names the file (a path relative to the
  store is fine) so the page cache can serve re-reads of recent data. Each pair
  costs one positioning plus a sequential transfer of its bytes.
- ``fsyncs``: synchronous flushes; data written before a flush must reach the
  disk before the stage's step is over. Writes without a flush are written
  back later, off the critical path.
- ``files_created``, ``files_renamed``, ``files_deleted``: directory updates
  (metadata writes).
- ``dir_entries_scanned``: directory entries read (a readdir of a maildir).
- ``locks``: file locks taken (mbox fcntl/dotlock).
- ``net_bytes`` and ``net_round_trips``: traffic on the host's link (a lookup
  against a directory server is one round trip).

Only stages build Work; nothing here knows of SimPy or hardware.
"""

from __future__ import annotations

from collections.abc import Mapping
from operator import add as _add
from types import MappingProxyType
from typing import NamedTuple

_NO_CPU: Mapping[str, int] = MappingProxyType({})
_tuple_new = tuple.__new__


class Work(NamedTuple):
    """Additive counts of the work one stage step did (never seconds).

    Immutable; a named tuple rather than a frozen dataclass because stages
    make several on every step of every message, and a tuple is made in a
    third of the time. ``+`` adds two records (it is not tuple concatenation).
    """

    cpu: Mapping[str, int] = _NO_CPU
    reads: tuple[tuple[str, int], ...] = ()
    writes: tuple[tuple[str, int], ...] = ()
    fsyncs: int = 0
    files_created: int = 0
    files_renamed: int = 0
    files_deleted: int = 0
    dir_entries_scanned: int = 0
    locks: int = 0
    net_bytes: int = 0
    net_round_trips: int = 0

    def __add__(self, other: Work) -> Work:
        if not isinstance(other, Work):
            return NotImplemented
        if not other.cpu:
            cpu = self.cpu
        elif not self.cpu:
            cpu = other.cpu
        else:
            merged = dict(self.cpu)
            for kind, units in other.cpu.items():
                merged[kind] = merged.get(kind, 0) + units
            cpu = merged
        # positional, in field order: a third of the keyword construction
        return _tuple_new(
            Work,
            (
                cpu,
                self[1] + other[1],  # reads
                self[2] + other[2],  # writes
                *map(_add, self[3:], other[3:]),  # the counts
            ),
        )

    def __sub__(self, part: Work) -> Work:
        """What is left of this work without *part* (a piece it includes).

        Raises ValueError when *part* is not contained in this work.
        """
        if not isinstance(part, Work):
            return NotImplemented
        cpu = dict(self.cpu)
        for kind, units in part.cpu.items():
            left = cpu.get(kind, 0) - units
            if left < 0:
                raise ValueError(
                    f"cannot take {units} {kind} units from {cpu.get(kind, 0)}"
                )
            if left:
                cpu[kind] = left
            else:
                cpu.pop(kind, None)
        reads = list(self.reads)
        writes = list(self.writes)
        for pairs, taken in ((reads, part.reads), (writes, part.writes)):
            for pair in taken:
                if pair not in pairs:
                    raise ValueError(f"cannot take {pair} from work that lacks it")
                pairs.remove(pair)
        counts = {}
        for name in (
            "fsyncs",
            "files_created",
            "files_renamed",
            "files_deleted",
            "dir_entries_scanned",
            "locks",
            "net_bytes",
            "net_round_trips",
        ):
            left = getattr(self, name) - getattr(part, name)
            if left < 0:
                raise ValueError(
                    f"cannot take {getattr(part, name)} {name} from "
                    f"{getattr(self, name)}"
                )
            counts[name] = left
        return Work(cpu=cpu, reads=tuple(reads), writes=tuple(writes), **counts)

    def __reduce__(self):
        # pickled (a child process's result): the empty CPU of most records
        # is a shared mapping proxy, which does not pickle
        cpu = self[0]
        return _unpickled, (
            None if cpu is _NO_CPU else dict(cpu), *self[1:])

    @property
    def bytes_read(self) -> int:
        return sum(n for _, n in self.reads)

    @property
    def bytes_written(self) -> int:
        return sum(n for _, n in self.writes)

    @property
    def touches_storage(self) -> bool:
        return bool(
            self.reads
            or self.writes
            or self.fsyncs
            or self.files_created
            or self.files_renamed
            or self.files_deleted
            or self.dir_entries_scanned
            or self.locks
        )


NO_WORK = Work()


def cpu_work(**units: int) -> Work:
    """Work of CPU units only; keyword names use ``__`` for the dot.

    ``cpu_work(smtp__command=3)`` is ``Work(cpu={"smtp.command": 3})``.
    """
    return Work(cpu={kind.replace("__", "."): n for kind, n in units.items() if n})


def _unpickled(cpu, *counts) -> Work:
    """A pickled ``Work`` again (``Work.__reduce__``)."""
    return _tuple_new(Work, (_NO_CPU if cpu is None else cpu, *counts))
