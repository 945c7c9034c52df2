"""A modelled host: turns a stage's Work into simulated time on its hardware.

Twins one machine of the mail system (the Sun E450, the Dell PE1750, the spamd
gateway) from its ``HardwareProfile``: a ``Cpu``, named ``Array`` s, a
``PageCache`` and a ``Link``. ``Host.execute(work, array)`` is the SimPy side
of the one contract (DESIGN.md: stages report work, hardware turns work into
time), in three steps, one after the other:

1. CPU: ``cpu_seconds(work)`` = sum of units x ``profile.cost_s(kind)``, plus
   ``dir_entries_scanned`` x the cost of ``fs.dir_entry`` (defined here), run
   holding one hardware thread.
2. Storage, on the named array: a directory scan reads its entries
   (``DIR_ENTRY_BYTES`` each) and every ``reads`` pair goes through the page
   cache, misses becoming disk reads (one positioning plus a sequential
   transfer). Every ``writes`` pair populates the page cache. With
   ``fsyncs`` > 0 the writes are synchronous: the process waits for them
   (through the controller cache if the array has one). Without, they are
   written back off the critical path: started at once, nobody waits. Each
   ``files_created``, ``files_renamed`` and ``files_deleted`` dirties one
   ``METADATA_IO_BYTES`` block, and a step's dirty blocks go to disk together
   as one journal commit (one positioning, then their bytes) at the
   directory (the folder of the step's first written, else read, file; a step
   with neither uses one host-wide key), synchronous when ``fsyncs`` > 0 and
   written back otherwise (assumption: ext3's journal commits a transaction's
   metadata in one sequential write, with the fsync'ed file in ordered mode;
   UFS writes directory updates synchronously, which an fsyncing mail store
   matches). ``locks`` (fcntl) write nothing.
3. Network: ``net_bytes`` over the link, then ``net_round_trips`` round trips
   of latency (``twin.hardware.network``).

Every resource books its time when asked (``twin.hardware.disk.Timeline``):
``complete_at(work, array)`` books the CPU job now, the storage I/Os from the
CPU's end and the transfer from the storage's end, and returns when the step
is done; ``execute`` is that plus one ``env.timeout`` (none when nothing
takes time). The page cache is consulted when the step is booked. Storage
and network booked ahead of their start are the approximation documented in
``twin.hardware.disk`` (a request arriving in between cannot overtake them);
the CPU, booked at arrival, is exact.

A step that touches storage without naming an array uses the host's only array;
with several it is a ``ValueError``. ``demand(work, array)`` gives the expected
busy seconds of each resource for operational-law estimates (U = X x D, per
server divide by ``capacity``) without SimPy, and ``monitors()`` names every
measured resource for the sampler.

CPU unit kinds defined here (``CPU_UNITS``), with reference costs in
``REFERENCE_COSTS`` that a ``hardware/costs/fs.yaml`` entry would replace:
``fs.dir_entry``. Raises ``KeyError`` for a unit kind without a cost.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping

import simpy

from twin.hardware.array import Array
from twin.hardware.cpu import Cpu
from twin.hardware.memory import PageCache
from twin.hardware.network import Link, transmission_s
from twin.hardware.profile import HardwareProfile
from twin.stages.work import Work

CPU_UNITS: dict[str, str] = {
    "fs.dir_entry": "one directory entry returned by readdir and parsed by the reader",
}

REFERENCE_COSTS: dict[str, float] = {
    # assumption: getdents from a cached directory costs ~0.2 us an entry on a
    # 3.2 GHz Xeon; the reader (a maildir IMAP/POP server) parses the name and
    # its ":2,FLAGS" suffix and often stats the file (~1-2 us): ~2 us in all.
    "fs.dir_entry": 2.0e-6,
}

DIR_ENTRY_BYTES = 64
"""On-disk bytes of one directory entry: an ext3 entry is 8 bytes plus the name
rounded to 4; maildir names run ~40-60 characters (assumption)."""

METADATA_IO_BYTES = 4096
"""One metadata update writes one filesystem block (4 KiB on ext3 and on the UFS
fragment-sized directory block; assumption)."""


def _directory_key(work: Work, host_name: str) -> str:
    """The directory a step's metadata lives in: its first file's folder."""
    for key, _ in work.writes or work.reads:
        folder, slash, _name = key.rpartition("/")
        return f"{folder}/" if slash else "/"
    return f"{host_name}:/"


class Host:
    """Host *name* in *env* built from *profile*.

    *costs* replaces the profile's reference cost table (seconds per unit on
    the reference core); the profile's ``relative_speed`` and overrides still
    apply.
    """

    def __init__(
        self,
        env: simpy.Environment,
        name: str,
        profile: HardwareProfile,
        costs: Mapping[str, float] | None = None,
    ) -> None:
        if not name:
            raise ValueError("host name must not be empty")
        self.env = env
        self.name = name
        table = dict(REFERENCE_COSTS)
        table.update(profile.reference_costs if costs is None else costs)
        self.profile = profile.with_costs(table)
        self.cpu = Cpu(env, profile.cpu, f"{name}.cpu")
        self.arrays: dict[str, Array] = {
            array_name: Array(env, spec, f"{name}.{array_name}")
            for array_name, spec in profile.arrays.items()
        }
        self.page_cache = PageCache(profile.memory.page_cache_bytes)
        self.link = Link(env, profile.link, f"{name}.link")
        self._only_array = (
            next(iter(self.arrays.values())) if len(self.arrays) == 1 else None
        )
        """``array(None)``: the host's only array, None with several (or none)."""
        self._unit_s: dict[str, float] = {}
        self.background_writes = 0
        """Writes handed to background write-back so far."""

    # -- pure ----------------------------------------------------------------

    def unit_s(self, kind: str) -> float:
        """Seconds one unit of *kind* takes on one core of this host."""
        seconds = self._unit_s.get(kind)
        if seconds is None:
            seconds = self._unit_s[kind] = self.profile.cost_s(kind)
        return seconds

    def cpu_seconds(self, work: Work) -> float:
        """Full-speed CPU seconds of *work* on this host."""
        unit_s = self._unit_s
        total = 0.0
        try:
            for kind, units in work[0].items():  # work.cpu
                total += units * unit_s[kind]
        except KeyError:  # a kind seen for the first time: price it, start over
            for kind in work[0]:
                self.unit_s(kind)
            return self.cpu_seconds(work)
        scanned = work[7]  # work.dir_entries_scanned
        if scanned:
            total += scanned * self.unit_s("fs.dir_entry")
        return total

    def array(self, name: str | None) -> Array:
        """The array called *name*, or the only one when *name* is None."""
        if name is None:
            if len(self.arrays) == 1:
                return next(iter(self.arrays.values()))
            raise ValueError(
                f"work on host {self.name} touches storage but names no array; "
                f"arrays: {', '.join(self.arrays)}"
            )
        try:
            return self.arrays[name]
        except KeyError:
            raise ValueError(
                f"host {self.name} has no array {name!r}; "
                f"arrays: {', '.join(self.arrays)}"
            ) from None

    def demand(self, work: Work, array: str | None = None) -> dict[str, float]:
        """Busy seconds *work* puts on each resource, keyed like ``monitors()``.

        CPU: full-speed seconds on one thread. Array: spindle-seconds summed
        over its disks, counting reads the page cache holds now as hits (an
        empty cache: all misses) and every write, synchronous or not. Link:
        transmission seconds (latency holds nothing).
        """
        result = {f"{self.name}.cpu": self.cpu_seconds(work)}
        if work.touches_storage:
            target = self.array(array)
            cache = self.page_cache
            seconds = 0.0
            folder = _directory_key(work, self.name)
            if work.dir_entries_scanned:
                wanted = work.dir_entries_scanned * DIR_ENTRY_BYTES
                seconds += target.read_demand_s(
                    folder, max(0, wanted - cache.cached(folder))
                )
            for key, nbytes in work.reads:
                seconds += target.read_demand_s(key, max(0, nbytes - cache.cached(key)))
            for key, nbytes in work.writes:
                seconds += target.write_demand_s(key, nbytes)
            metadata = _metadata_writes(work)
            if metadata:
                seconds += target.write_demand_s(folder, metadata * METADATA_IO_BYTES)
            result[target.name] = seconds
        result[self.link.name] = transmission_s(self.profile.link, work.net_bytes)
        return result

    def monitors(self) -> list[tuple[str, object]]:
        """(name, resource) of every measured resource, Servers-like objects."""
        found: list[tuple[str, object]] = [(self.cpu.name, self.cpu.threads)]
        found.extend((array.name, array) for array in self.arrays.values())
        found.append((self.link.name, self.link.wire))
        return found

    # -- SimPy ---------------------------------------------------------------

    def complete_at(
        self, work: Work, array: str | None = None, cpu_s: float | None = None
    ) -> float:
        """Book *work* on this host now; return when it is done (no event).

        *cpu_s* is ``cpu_seconds(work)`` when the caller has it already.
        """
        (
            _cpu,
            reads,
            writes,
            fsyncs,
            created,
            renamed,
            deleted,
            scanned,
            locks,
            net_bytes,
            round_trips,
        ) = work
        now = t = self.env.now
        target = None
        if (
            reads
            or writes
            or fsyncs
            or created
            or renamed
            or deleted
            or scanned
            or locks
        ):  # Work.touches_storage, inlined: most steps are CPU and network only
            if array is None:
                target = self._only_array
                if target is None:
                    target = self.array(array)  # raises: no or several arrays
            else:
                target = self.arrays.get(array)
                if target is None:
                    target = self.array(array)  # raises: no such array
        if cpu_s is None:
            cpu_s = self.cpu_seconds(work)
        if cpu_s > 0:
            t = self.cpu.reserve(cpu_s, now)
        if target is not None:
            t = self._storage_at(work, target, t, now)
        if net_bytes or round_trips:
            t = self.link.reserve(net_bytes, round_trips, t, now)
        return t

    def execute(
        self, work: Work, array: str | None = None, cpu_s: float | None = None
    ) -> Generator[simpy.Event, object, None]:
        """Spend *work* on this host: CPU, then storage, then network."""
        env = self.env
        end = self.complete_at(work, array, cpu_s)
        if end > env.now:
            yield env.timeout(end - env.now)

    def _storage_at(
        self, work: Work, target: Array, t: float, now: float | None = None
    ) -> float:
        """Book the storage of *work* from *t*; return when the step may go on.

        *now* is ``env.now`` when the caller has it already.
        """
        if now is None:
            now = self.env.now
        # the storage fields of Work, in order (locks are counted elsewhere)
        reads, writes, fsyncs, created, renamed, deleted, scanned = work[1:8]
        cache = self.page_cache
        folder = ""  # the step's directory (_directory_key), when it needs one
        if scanned:
            folder = _directory_key(work, self.name)
            missing = cache.read(folder, scanned * DIR_ENTRY_BYTES)
            if missing:
                t = target.read_at(folder, missing, t, now)
        for key, nbytes in reads:
            missing = cache.read(key, nbytes)
            if missing:
                t = target.read_at(key, missing, t, now)
        synchronous = fsyncs > 0
        metadata = created + renamed + deleted
        if synchronous:
            for key, nbytes in writes:
                cache.write(key, nbytes)
                t = target.write_at(key, nbytes, t, now)
            if metadata:
                # one journal commit carries all of a step's directory updates
                folder = folder or _directory_key(work, self.name)
                t = target.write_at(folder, metadata * METADATA_IO_BYTES, t, now)
            return t
        if writes or metadata:
            # each write handed over as the page cache takes it (the cache and
            # the array share no state: what "cache all, then hand all over"
            # books)
            behind = target.write_behind
            count = 0
            for key, nbytes in writes:
                cache.write(key, nbytes)
                if nbytes > 0:
                    behind(key, nbytes, t, now)
                    count += 1
            if metadata:
                folder = folder or _directory_key(work, self.name)
                behind(folder, metadata * METADATA_IO_BYTES, t, now)
                count += 1
            self.background_writes += count
        return t


def _metadata_writes(work: Work) -> int:
    """Directory blocks a step dirties; fcntl locks write nothing to disk."""
    return work.files_created + work.files_renamed + work.files_deleted
