"""Disk arrays: where a file's blocks land, and how many spindles an I/O keeps busy.

Twins a host's RAID set (single disk, RAID 1, RAID 5, RAID 10), optionally behind
a controller with a battery-backed write-back cache (the PE1750's PERC 4,
FACTS.md). Each I/O is turned into a *plan*: phases of physical I/Os, one per
disk, the I/Os of a phase running in parallel on their spindles and the next
phase starting when all are done. Each physical I/O is one positioning plus a
transfer (``twin.hardware.disk``).

- single: the one disk.
- RAID 1 (all disks mirror each other): a read goes to the least busy live
  disk; a write goes to every live disk in parallel and is done when all are
  (FACTS.md: RAID 1 write = 2 I/Os).
- RAID 5, left-symmetric rotating parity: row ``r`` has its parity on disk
  ``n-1 - r mod n`` and data unit ``j`` on disk ``(parity + 1 + j) mod n``. A
  read hits the disk holding the block. A small write reads old data and old
  parity in parallel, then writes both in parallel: 4 I/Os on 2 spindles
  (FACTS.md). When fewer reads do, the controller reconstructs instead: reads
  the row's untouched data units, then writes data and parity. A write of a
  whole row writes all ``n`` disks with no reads.
  Degraded (one disk failed): a read of a block on the failed disk reads the
  same range on every survivor and reconstructs (FACTS.md); a write to the
  failed disk reads the untouched units and writes parity; a write whose
  parity disk failed writes the data alone. Two failures lose the array. A
  disk that fails while an I/O's plan is in flight has its remaining share
  skipped; I/Os already queued on it finish.
- RAID 10: stripe units over mirrored pairs ``(0,1), (2,3), ...``; a read goes
  to the less busy live member of the pair, a write to both.

Where a request lands: a file's first byte is at a block-aligned offset derived
from a stable hash of its key (``zlib.crc32``, not Python's salted ``hash``),
so runs are reproducible and a re-read lands where the write did.

The write-back cache (``controller_cache_bytes`` > 0): a write that fits is
acknowledged once copied into the cache and destaged in the background (the
physical I/O runs on its own and frees its room after); when the cache is full,
writers wait (FIFO) for room. ``write_behind`` is the operating system's
write-back: the same, but the writer does not wait at all. A write larger than
the whole cache goes straight to the disks. Destaging does not coalesce small
writes into full rows (assumption: pessimistic for RAID 5).

Capacity math by hand: ``write_penalty``, ``random_iops``, ``usable_bytes``,
``degraded_read_ios``, ``rebuild_time_s``. For the sampler an ``Array`` offers
``busy_area``, ``queue_area``, ``busy``, ``queue_length``, ``served``,
``capacity`` and ``sync()`` like ``twin.resources.Servers``, summed over its
disks, with ``capacity`` the number of live disks.

Raises ``ValueError`` for bad arguments and ``ArrayLostError`` for I/O on an
array that has lost data.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Callable, Generator, Iterator

import simpy

from twin.hardware.disk import Disk, access_time_s
from twin.hardware.profile import RAID_LEVELS, ArraySpec, DiskSpec

BLOCK_BYTES = 4096
"""Placement granularity of a file's first byte: one filesystem block (ext3/UFS
default; assumption)."""

CACHE_COMMAND_S = 1.0e-4
"""Controller overhead to accept a write into its cache (assumption: ~0.1 ms)."""

CACHE_BUS_BYTES_PER_S = 533e6
"""Copy rate into the controller cache: 64-bit 66 MHz PCI, 533 MB/s (PERC 4/DC's
bus; assumption for other controllers)."""

REBUILD_CHUNK_BYTES = 16 * 1024 * 1024
"""Rebuild I/O size: large enough to keep the event count of a rebuild small,
small enough that foreground I/O waits at most a few hundred ms behind it
(assumption)."""

Phase = list[tuple[int, int]]
"""Physical I/Os that run in parallel: (disk index, bytes)."""


def _nothing() -> None:
    """Completion callback of I/O nobody waits for."""


class ArrayLostError(RuntimeError):
    """I/O on an array that has lost more disks than its level survives."""


# ---------------------------------------------------------------------------
# capacity math, by hand


def write_penalty(level: str, disks: int) -> int:
    """Physical I/Os per small random write.

    single 1; RAID 1: one per mirror; RAID 10: 2; RAID 5: 4 (read data, read
    parity, write both), but 3 with 3 disks, where reading the one other data
    unit and writing data and parity is cheaper.
    """
    _check_level(level, disks)
    if level == "single":
        return 1
    if level == "raid1":
        return disks
    if level == "raid10":
        return 2
    return 4 if disks >= 4 else 3


def random_iops(
    level: str,
    disks: int,
    disk: DiskSpec,
    read_fraction: float,
    io_bytes: int = BLOCK_BYTES,
) -> float:
    """Small random I/Os a second the array sustains with every spindle busy.

    Each logical read costs one physical I/O, each write ``write_penalty``; all
    spindles share the load evenly, each physical I/O takes ``t`` (a random
    access of *io_bytes*). So ``disks / (t * (f + (1 - f) * penalty))``: RAID 5
    of N disks, reads N/t, small writes N/(4t).
    """
    if not 0.0 <= read_fraction <= 1.0:
        raise ValueError(f"read_fraction(={read_fraction}) must be in [0, 1]")
    penalty = write_penalty(level, disks)
    t = access_time_s(disk, io_bytes)
    return disks / (t * (read_fraction + (1.0 - read_fraction) * penalty))


def usable_bytes(level: str, disks: int, disk: DiskSpec) -> int:
    """Bytes the array holds for files."""
    _check_level(level, disks)
    if level in ("single", "raid1"):
        return disk.capacity_bytes
    if level == "raid5":
        return (disks - 1) * disk.capacity_bytes
    return disks // 2 * disk.capacity_bytes


def degraded_read_ios(level: str, disks: int) -> int:
    """Physical I/Os for a small read of a block on the failed disk."""
    _check_level(level, disks)
    if level == "raid5":
        return disks - 1
    if level == "single":
        raise ValueError("a single disk has no redundancy: a failed disk loses data")
    return 1


def rebuild_time_s(disk: DiskSpec) -> float:
    """Lower bound of a rebuild: the replacement written end to end at full rate.

    Survivors are read in parallel at the same rate; foreground I/O and any
    controller throttling only add to it.
    """
    return disk.capacity_bytes / disk.transfer_bytes_per_s


def _check_level(level: str, disks: int) -> None:
    if level not in RAID_LEVELS:
        raise ValueError(f"level(={level!r}) must be one of {', '.join(RAID_LEVELS)}")
    if disks < 1:
        raise ValueError(f"disks(={disks}) must be >= 1")


def raid5_parity_disk(row: int, disks: int) -> int:
    """Disk holding the parity of *row* (left-symmetric: rotating from the last)."""
    return disks - 1 - row % disks


def raid5_data_disk(unit: int, disks: int) -> int:
    """Disk holding logical stripe unit *unit*: the disks after the row's parity."""
    row, j = divmod(unit, disks - 1)
    return (raid5_parity_disk(row, disks) + 1 + j) % disks


def placement_offset(key: str, usable: int) -> int:
    """Block-aligned offset of *key*'s first byte in an array of *usable* bytes."""
    blocks = max(1, usable // BLOCK_BYTES)
    return (zlib.crc32(key.encode()) % blocks) * BLOCK_BYTES


# ---------------------------------------------------------------------------
# the write-back cache


class _WriteCache:
    """Bytes of controller cache; writers wait first come first for room."""

    __slots__ = ("env", "capacity", "free", "_waiting")

    def __init__(self, env: simpy.Environment, capacity: int) -> None:
        self.env = env
        self.capacity = capacity
        self.free = capacity
        self._waiting: deque[tuple[int, simpy.Event]] = deque()

    def reserve(self, nbytes: int) -> simpy.Event | None:
        if not self._waiting and nbytes <= self.free:
            self.free -= nbytes
            return None
        grant = self.env.event()
        self._waiting.append((nbytes, grant))
        return grant

    def release(self, nbytes: int) -> None:
        self.free += nbytes
        while self._waiting and self._waiting[0][0] <= self.free:
            size, grant = self._waiting.popleft()
            self.free -= size
            grant.succeed()

    @property
    def dirty_bytes(self) -> int:
        return self.capacity - self.free


# ---------------------------------------------------------------------------
# the array


class Array:
    """The disks of *spec* in *env* under one RAID level, named *name*."""

    def __init__(self, env: simpy.Environment, spec: ArraySpec, name: str = "") -> None:
        self.env = env
        self.spec = spec
        self.name = name
        self.disks = [
            Disk(env, spec.disk, f"{name}.disk{index}") for index in range(spec.disks)
        ]
        self.failed: set[int] = set()
        self.usable_bytes = usable_bytes(spec.level, spec.disks, spec.disk)
        self.cache = (
            _WriteCache(env, spec.controller_cache_bytes)
            if spec.controller_cache_bytes > 0
            else None
        )
        self.reads = 0
        self.writes = 0
        self.degraded_reads = 0
        """Reads that needed reconstruction from the survivors."""
        self._retired_busy_area = 0.0
        self._retired_queue_area = 0.0
        self._retired_served = 0

    # -- state ---------------------------------------------------------------

    @property
    def lost(self) -> bool:
        """True when more disks failed than the level survives."""
        level = self.spec.level
        if not self.failed:
            return False
        if level == "single":
            return True
        if level == "raid1":
            return len(self.failed) == len(self.disks)
        if level == "raid5":
            return len(self.failed) > 1
        return any(
            index in self.failed and index ^ 1 in self.failed for index in self.failed
        )

    def fail_disk(self, index: int) -> None:
        """Disk *index* stops; I/Os already queued on it still finish."""
        if not 0 <= index < len(self.disks):
            raise ValueError(f"disk index(={index}) must be in [0, {len(self.disks)})")
        if index in self.failed:
            raise ValueError(f"disk {index} of array {self.name} has already failed")
        self.disks[index].failed = True
        self.failed.add(index)

    def offset(self, key: str) -> int:
        return placement_offset(key, self.usable_bytes)

    # -- plans ---------------------------------------------------------------

    def _segments(self, offset: int, nbytes: int) -> Iterator[tuple[int, int]]:
        """(stripe unit index, bytes) pieces of a logical byte range."""
        unit_bytes = self.spec.stripe_unit_bytes
        unit, within = divmod(offset, unit_bytes)
        while nbytes > 0:
            length = min(unit_bytes - within, nbytes)
            yield unit, length
            nbytes -= length
            unit += 1
            within = 0

    def _least_busy(self, candidates: list[int]) -> int:
        live = [index for index in candidates if index not in self.failed]
        disks = self.disks
        return min(live, key=lambda index: (disks[index].load, disks[index].ios))

    def _check_alive(self) -> None:
        if self.lost:
            raise ArrayLostError(
                f"array {self.name} ({self.spec.level}) has lost data: disks "
                f"{sorted(self.failed)} failed"
            )

    def read_plan(self, key: str, nbytes: int) -> list[Phase]:
        """Physical I/Os of reading *nbytes* of file *key*, in phases."""
        return self._read_plan(self.offset(key), nbytes)[0]

    def read_plan_at(self, offset: int, nbytes: int) -> list[Phase]:
        """Physical I/Os of reading *nbytes* at logical byte *offset*."""
        return self._read_plan(offset, nbytes)[0]

    def _read_plan(self, offset: int, nbytes: int) -> tuple[list[Phase], bool]:
        """The read plan, and whether it reconstructs from the survivors."""
        self._check_alive()
        level = self.spec.level
        if nbytes <= 0:
            return [], False
        if level == "single":
            return [[(0, nbytes)]], False
        if level == "raid1":
            return [[(self._least_busy(list(range(len(self.disks)))), nbytes)]], False
        reads: dict[int, int] = {}
        n = len(self.disks)
        unit, within = divmod(offset, self.spec.stripe_unit_bytes)
        if (
            level == "raid5"
            and not self.failed
            and within + nbytes <= self.spec.stripe_unit_bytes
        ):  # the common case: one block of one stripe unit
            return [[(raid5_data_disk(unit, n), nbytes)]], False
        if level == "raid10":
            pairs = n // 2
            for unit, length in self._segments(offset, nbytes):
                pair = unit % pairs
                disk = self._least_busy([2 * pair, 2 * pair + 1])
                reads[disk] = reads.get(disk, 0) + length
            return [list(reads.items())], False
        degraded = False
        for unit, length in self._segments(offset, nbytes):
            disk = raid5_data_disk(unit, n)
            if disk in self.failed:
                degraded = True
                for survivor in range(n):
                    if survivor != disk:
                        reads[survivor] = reads.get(survivor, 0) + length
            else:
                reads[disk] = reads.get(disk, 0) + length
        return [list(reads.items())], degraded

    def write_plan(self, key: str, nbytes: int) -> list[Phase]:
        """Physical I/Os of writing *nbytes* of file *key* to the disks, in phases."""
        return self.write_plan_at(self.offset(key), nbytes)

    def write_plan_at(self, offset: int, nbytes: int) -> list[Phase]:
        """Physical I/Os of writing *nbytes* at logical byte *offset*, in phases."""
        self._check_alive()
        level = self.spec.level
        if nbytes <= 0:
            return []
        if level == "single":
            return [[(0, nbytes)]]
        if level == "raid1":
            live = [
                index for index in range(len(self.disks)) if index not in self.failed
            ]
            return [[(index, nbytes) for index in live]]
        if level == "raid10":
            writes: dict[int, int] = {}
            pairs = len(self.disks) // 2
            for unit, length in self._segments(offset, nbytes):
                pair = unit % pairs
                for disk in (2 * pair, 2 * pair + 1):
                    if disk not in self.failed:
                        writes[disk] = writes.get(disk, 0) + length
            return [list(writes.items())]
        return self._raid5_write_plan(offset, nbytes)

    def _raid5_write_plan(self, offset: int, nbytes: int) -> list[Phase]:
        n = len(self.disks)
        unit_bytes = self.spec.stripe_unit_bytes
        failed = self.failed
        unit, within = divmod(offset, unit_bytes)
        if not failed and n >= 4 and within + nbytes <= unit_bytes:
            # the common case, a small write inside one stripe unit:
            # read old data and parity, then write both
            row, j = divmod(unit, n - 1)
            parity = n - 1 - row % n
            disk = (parity + 1 + j) % n
            return [
                [(disk, nbytes), (parity, nbytes)],
                [(disk, nbytes), (parity, nbytes)],
            ]
        rows: dict[int, dict[int, int]] = {}
        for unit, length in self._segments(offset, nbytes):
            row, j = divmod(unit, n - 1)
            rows.setdefault(row, {})[j] = length
        reads: dict[int, int] = {}
        writes: dict[int, int] = {}
        for row, touched in rows.items():
            parity = raid5_parity_disk(row, n)
            span = max(touched.values())
            data_disks = {(parity + 1 + j) % n: length for j, length in touched.items()}
            if parity in failed:  # nothing to keep consistent: write the data alone
                for disk, length in data_disks.items():
                    writes[disk] = writes.get(disk, 0) + length
                continue
            if len(touched) == n - 1 and min(touched.values()) == unit_bytes:
                for disk in range(n):  # a full row: new parity from new data alone
                    if disk not in failed:
                        writes[disk] = writes.get(disk, 0) + unit_bytes
                continue
            untouched = [(parity + 1 + j) % n for j in range(n - 1) if j not in touched]
            must_reconstruct = any(disk in failed for disk in data_disks)
            can_reconstruct = not any(disk in failed for disk in untouched)
            if must_reconstruct or (
                can_reconstruct and len(untouched) < len(data_disks) + 1
            ):  # reconstruct-write: read the other data units, write data + parity
                for disk in untouched:
                    reads[disk] = reads.get(disk, 0) + span
            else:  # read-modify-write: read old data and parity
                for disk, length in data_disks.items():
                    reads[disk] = reads.get(disk, 0) + length
                reads[parity] = reads.get(parity, 0) + span
            for disk, length in data_disks.items():
                if disk not in failed:
                    writes[disk] = writes.get(disk, 0) + length
            writes[parity] = writes.get(parity, 0) + span
        if reads:
            return [list(reads.items()), list(writes.items())]
        return [list(writes.items())]

    def plan_demand_s(self, plan: list[Phase]) -> float:
        """Disk-busy seconds of a plan, summed over spindles (random I/Os)."""
        disk = self.spec.disk
        return sum(access_time_s(disk, nbytes) for phase in plan for _, nbytes in phase)

    # -- SimPy ---------------------------------------------------------------

    def start_plan(
        self, plan: list[Phase], done: Callable[[], object], sequential: bool = False
    ) -> None:
        """Run *plan* without a process: phase after phase, then call ``done()``."""
        disks = self.disks
        phases = iter(plan)

        def next_phase() -> None:
            phase = next(phases, None)
            while phase is not None and any(disks[i].failed for i, _ in phase):
                # a disk failed since the plan was made: its share is skipped
                # (the data lives on in parity or on the mirror)
                phase = [(i, nbytes) for i, nbytes in phase if not disks[i].failed]
                if not phase:
                    phase = next(phases, None)
            if phase is None:
                done()
                return
            left = len(phase)

            def one_done() -> None:
                nonlocal left
                left -= 1
                if not left:
                    next_phase()

            for index, nbytes in phase:
                disks[index].start(nbytes, sequential, one_done)

        next_phase()

    def _run(
        self, plan: list[Phase], sequential: bool = False
    ) -> Generator[simpy.Event, object, None]:
        if len(plan) == 1 and len(plan[0]) == 1:
            index, nbytes = plan[0][0]
            if not self.disks[index].failed:
                yield from self.disks[index].io(nbytes, sequential)
        elif plan:
            finished = self.env.event()
            self.start_plan(plan, finished.succeed, sequential)
            yield finished

    def read(self, key: str, nbytes: int) -> Generator[simpy.Event, object, None]:
        """Read *nbytes* of file *key* from the disks; ``yield from``."""
        if nbytes <= 0:
            return
        plan, degraded = self._read_plan(self.offset(key), nbytes)
        self.reads += 1
        self.degraded_reads += degraded
        yield from self._run(plan)

    def write_through(
        self, key: str, nbytes: int
    ) -> Generator[simpy.Event, object, None]:
        """Write *nbytes* of file *key* to the disks themselves, bypassing the cache."""
        if nbytes <= 0:
            return
        yield from self._run(self.write_plan(key, nbytes))

    def write(self, key: str, nbytes: int) -> Generator[simpy.Event, object, None]:
        """Write *nbytes* of file *key*; done when acknowledged (cache or disks)."""
        if nbytes <= 0:
            return
        self._check_alive()
        self.writes += 1
        cache = self.cache
        if cache is None or nbytes > cache.capacity:
            yield from self.write_through(key, nbytes)
            return
        grant = cache.reserve(nbytes)
        if grant is not None:
            yield grant
        yield self.env.timeout(CACHE_COMMAND_S + nbytes / CACHE_BUS_BYTES_PER_S)
        self._destage(key, nbytes)

    def write_behind(self, key: str, nbytes: int) -> None:
        """Write *nbytes* of file *key* off the critical path; nobody waits.

        The operating system's write-back: the I/O starts now (once it has
        room in the controller cache, if any) and runs on its own.
        """
        if nbytes <= 0:
            return
        self._check_alive()
        self.writes += 1
        cache = self.cache
        if cache is None or nbytes > cache.capacity:
            self.start_plan(self.write_plan(key, nbytes), _nothing)
            return
        grant = cache.reserve(nbytes)
        if grant is None:
            self._destage(key, nbytes)
        else:
            grant.callbacks.append(  # type: ignore[union-attr]
                lambda _event: self._destage(key, nbytes)
            )

    def _destage(self, key: str, nbytes: int) -> None:
        """Write cached bytes to the disks, then free their room in the cache."""
        cache = self.cache
        self.start_plan(
            self.write_plan(key, nbytes),
            lambda: cache.release(nbytes),  # type: ignore[union-attr]
        )

    def write_demand_s(self, key: str, nbytes: int) -> float:
        """Disk-busy seconds a write of *nbytes* of *key* causes (now or destaged)."""
        return self.plan_demand_s(self.write_plan(key, nbytes))

    def read_demand_s(self, key: str, nbytes: int) -> float:
        """Disk-busy seconds a read of *nbytes* of *key* from the disks causes."""
        return self.plan_demand_s(self.read_plan(key, nbytes))

    def rebuild(
        self,
        index: int,
        chunk_bytes: int = REBUILD_CHUNK_BYTES,
        pause_s: float = 0.0,
    ) -> Generator[simpy.Event, object, None]:
        """Replace failed disk *index* and rebuild it; a SimPy process body.

        Reads every survivor (RAID 5) or the mirror (RAID 1, 10) end to end in
        *chunk_bytes* pieces, in parallel, and writes each piece to the new disk;
        *pause_s* between pieces throttles it like a controller's rebuild rate.
        Foreground I/O keeps treating the disk as failed until the rebuild ends.
        """
        if index not in self.failed:
            raise ValueError(f"disk {index} of array {self.name} has not failed")
        if chunk_bytes < 1:
            raise ValueError(f"chunk_bytes(={chunk_bytes}) must be >= 1")
        if pause_s < 0:
            raise ValueError(f"pause_s(={pause_s}) must be >= 0")
        self._check_alive()
        level = self.spec.level
        if level == "raid5":
            sources = [disk for disk in range(len(self.disks)) if disk != index]
        elif level == "raid10":
            sources = [index ^ 1]
        else:
            sources = [self._least_busy(list(range(len(self.disks))))]
        replacement = Disk(self.env, self.spec.disk, self.disks[index].name)
        remaining = self.spec.disk.capacity_bytes
        while remaining > 0:
            size = min(chunk_bytes, remaining)
            self._check_alive()
            yield from self._run([[(disk, size) for disk in sources]], sequential=True)
            yield from replacement.io(size, sequential=True)
            remaining -= size
            if pause_s and remaining:
                yield self.env.timeout(pause_s)
        old = self.disks[index]
        old.spindle.sync()
        self._retired_busy_area += old.spindle.busy_area
        self._retired_queue_area += old.spindle.queue_area
        self._retired_served += old.spindle.served
        replacement.spindle.sync()
        self.disks[index] = replacement
        self.failed.discard(index)

    # -- the sampler's view: Servers-like, summed over the disks ---------------

    def sync(self) -> None:
        for disk in self.disks:
            disk.spindle.sync()

    @property
    def capacity(self) -> int:
        """Live disks (at least 1, so that a utilisation is always defined)."""
        return max(1, len(self.disks) - len(self.failed))

    @property
    def busy(self) -> int:
        return sum(disk.spindle.busy for disk in self.disks)

    @property
    def queue_length(self) -> int:
        return sum(disk.spindle.queue_length for disk in self.disks)

    @property
    def busy_area(self) -> float:
        """Busy spindle-seconds so far, of every disk the array ever had."""
        return self._retired_busy_area + sum(
            disk.spindle.busy_area for disk in self.disks
        )

    @property
    def queue_area(self) -> float:
        return self._retired_queue_area + sum(
            disk.spindle.queue_area for disk in self.disks
        )

    @property
    def served(self) -> int:
        return self._retired_served + sum(disk.spindle.served for disk in self.disks)

    @property
    def dirty_bytes(self) -> int:
        """Bytes in the controller cache waiting to be destaged."""
        return self.cache.dirty_bytes if self.cache is not None else 0
