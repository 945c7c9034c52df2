"""Disk arrays: where a file's blocks land, and how many spindles an I/O keeps busy.

Twins a host's RAID set (single disk, RAID 1, RAID 5, RAID 10), optionally behind
a controller with a battery-backed write-back cache (the PE1750's PERC 4,
FACTS.md). Each I/O is turned into a *plan*: phases of physical I/Os, one per
disk, the I/Os of a phase running in parallel on their spindles and the next
phase starting when all are done. Each physical I/O is one positioning plus a
transfer (``twin.hardware.disk``).

Timing is reserved, not simulated (``twin.hardware.disk.Timeline``): when a
plan is submitted at time ``t`` its phases are booked at once, phase 1 on each
disk at ``max(t, free_at)``, phase 2 on each disk at ``max(end of phase 1,
that disk's free_at)``, and the plan's completion is returned. An I/O nobody
waits for (``write_behind``, a controller-cache destage) costs no SimPy event;
a waiter yields one timeout. Reservation order stands for arrival order at
the disks: a later request cannot overtake an earlier request's reserved
phase 2 or destage (see ``twin.hardware.disk``).

- single: the one disk.
- RAID 1 (all disks mirror each other): a read goes to the least busy live
  disk (the one free soonest); a write goes to every live disk in parallel
  and is done when all are (FACTS.md: RAID 1 write = 2 I/Os).
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
  skipped (its reserved I/Os submitted after the failure are dropped; the
  plan's completion time, fixed at submission, stays: an approximation for a
  rare event); I/Os already submitted to it finish.
- RAID 10: stripe units over mirrored pairs ``(0,1), (2,3), ...``; a read goes
  to the less busy (free soonest) live member of the pair, a write to both.

Where a request lands: a file's first byte is at a block-aligned offset derived
from a stable hash of its key (``zlib.crc32``, not Python's salted ``hash``),
so runs are reproducible and a re-read lands where the write did.

The write-back cache (``controller_cache_bytes`` > 0): a write that fits is
acknowledged once copied into the cache and destaged in the background (the
physical I/O runs on its own and frees its room after); when the cache is full,
writers wait (FIFO) for room. Both are computed: a destage's completion time is
known when it is booked, so the cache keeps a heap of (completion, bytes) and
frees room lazily; a writer that finds it full is granted room at the
completion that frees enough, after every earlier waiter's grant.
``write_behind`` is the operating system's write-back: the same, but the
writer does not wait at all. A write larger than
the whole cache goes straight to the disks. Destaging does not coalesce small
writes into full rows (assumption: pessimistic for RAID 5).

Capacity math by hand: ``write_penalty``, ``random_iops``, ``usable_bytes``,
``degraded_read_ios``, ``rebuild_time_s``. For the sampler an ``Array`` offers
``busy_area``, ``queue_area``, ``busy``, ``queue_length``, ``served``,
``capacity`` and ``sync()`` like ``twin.resources.Servers``, summed over its
disks (and the disks a rebuild replaced), with ``capacity`` the number of live
disks, and ``queue_max``: the most I/Os waiting at once over all its disks
up to now, exact (``twin.hardware.disk.WaitCounter``; an I/O booked ahead
counts once simulated time reaches its submission).

Non-generator forms for callers that chain work into one timeout (``Host``):
``submit_plan``, ``read_at``, ``write_at``, ``write_through_at`` return the
completion (or acknowledgement) time of a request submitted at a given time.

Raises ``ValueError`` for bad arguments and ``ArrayLostError`` for I/O on an
array that has lost data.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Generator, Iterator
from heapq import heappop, heappush
from zlib import crc32

import simpy

from twin.hardware.disk import Disk, WaitCounter, access_time_s, positioning_s
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


def raid5_unit_disks(unit: int, disks: int) -> tuple[int, int]:
    """(disk holding stripe unit *unit*, disk holding its row's parity)."""
    row, j = divmod(unit, disks - 1)
    parity = disks - 1 - row % disks
    return (parity + 1 + j) % disks, parity


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
    """Bytes of controller cache, its room granted first come first, by time.

    Each held write is ``(destaged_at, granted_at, nbytes)`` on a heap; room is
    freed lazily, when a later grant looks. Grants never go back in time: a
    writer arriving while an earlier one waits is granted after it (FIFO).
    """

    __slots__ = ("env", "capacity", "_held", "_used", "_floor", "_freed")

    def __init__(self, env: simpy.Environment, capacity: int) -> None:
        self.env = env
        self.capacity = capacity
        self._held: list[tuple[float, float, int]] = []
        self._used = 0
        """Bytes of the entries on the heap."""
        self._floor = env.now
        """The latest grant so far."""
        self._freed: list[tuple[float, float, int]] = []
        """Entries taken off the heap before their destage ended (for dirty_bytes)."""

    def grant(self, nbytes: int, at: float, now: float | None = None) -> float:
        """When a writer asking at *at* gets *nbytes* of room (>= *at*).

        *now* is ``env.now`` when the caller has it already.
        """
        floor = self._floor
        start = at if at > floor else floor
        held = self._held
        if now is None:
            now = self.env.now
        while held and held[0][0] <= start:
            entry = heappop(held)
            self._used -= entry[2]
            if entry[0] > now:
                self._freed.append(entry)
        granted = start
        while self.capacity - self._used < nbytes:
            entry = heappop(held)
            self._used -= entry[2]
            if entry[0] > now:
                self._freed.append(entry)
            granted = entry[0]
        self._floor = granted
        if len(self._freed) > 256:  # keep only what dirty_bytes may still count
            self._freed = [entry for entry in self._freed if entry[0] > now]
        return granted

    def hold(self, nbytes: int, granted: float, destaged: float) -> None:
        """Book *nbytes* dirty from *granted* until *destaged*."""
        heappush(self._held, (destaged, granted, nbytes))
        self._used += nbytes

    @property
    def dirty_bytes(self) -> int:
        now = self.env.now
        self._freed = [entry for entry in self._freed if entry[0] > now]
        return sum(
            nbytes
            for destaged, granted, nbytes in (*self._held, *self._freed)
            if granted <= now < destaged
        )

    @property
    def free(self) -> int:
        return self.capacity - self.dirty_bytes


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
        self._raid5_healthy = spec.level == "raid5" and spec.disks >= 4
        """No disk failed of a RAID 5 (small writes take ``_write_disks``' path)."""
        self._write_all: tuple[Disk, ...] | None = None
        """The disks a write goes to, all at once, whatever its size and place:
        every disk of a single disk or RAID 1 with no disk failed, else None
        (``write_plan`` and ``submit_plan`` then)."""
        self._single: Disk | None = None
        """The disk of a healthy single-disk array, else None."""
        self._set_write_all()
        self._positioning_s = (
            positioning_s(spec.disk, sequential=False),
            positioning_s(spec.disk, sequential=True),
        )
        """A random and a sequential I/O's positioning, indexed by ``sequential``."""
        self._random_s = self._positioning_s[0]
        self._rate = spec.disk.transfer_bytes_per_s
        self._unit_bytes = spec.stripe_unit_bytes
        self.usable_bytes = usable_bytes(spec.level, spec.disks, spec.disk)
        self._blocks = max(1, self.usable_bytes // BLOCK_BYTES)
        """Blocks a file may start at (``placement_offset``, precomputed)."""
        self.cache = (
            _WriteCache(env, spec.controller_cache_bytes)
            if spec.controller_cache_bytes > 0
            else None
        )
        self.reads = 0
        self.writes = 0
        self.degraded_reads = 0
        """Reads that needed reconstruction from the survivors."""
        self._retired: list[Disk] = []
        """Disks a rebuild replaced: their statistics still count."""
        self._waits = WaitCounter(env)
        """I/Os waiting on any of the disks, for ``queue_max``."""

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
        """Disk *index* stops; I/Os already submitted to it still finish.

        Its reserved I/Os submitted later (phase 2 of a plan in flight, a
        destage not yet started) are dropped.
        """
        if not 0 <= index < len(self.disks):
            raise ValueError(f"disk index(={index}) must be in [0, {len(self.disks)})")
        if index in self.failed:
            raise ValueError(f"disk {index} of array {self.name} has already failed")
        self.disks[index].failed = True
        self.disks[index].cancel_future()
        self.failed.add(index)
        self._raid5_healthy = False
        self._write_all = None
        self._single = None

    def _set_write_all(self) -> None:
        """Set ``_write_all`` and ``_single`` from the level and the failed disks."""
        healthy = not self.failed
        level = self.spec.level
        self._write_all = (
            tuple(self.disks) if healthy and level in ("single", "raid1") else None
        )
        self._single = self.disks[0] if healthy and level == "single" else None

    def offset(self, key: str) -> int:
        """``placement_offset(key, usable_bytes)``."""
        return (crc32(key.encode()) % self._blocks) * BLOCK_BYTES

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
        """The live candidate free soonest (the first of equals)."""
        failed = self.failed
        disks = self.disks
        best = -1
        best_at = 0.0
        for index in candidates:
            if index not in failed:
                free_at = disks[index].free_at
                if best < 0 or free_at < best_at:
                    best, best_at = index, free_at
        return best

    def _check_alive(self) -> None:
        if self.failed and self.lost:
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
            disk, parity = raid5_unit_disks(unit, n)
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

    # -- timing: reservations ------------------------------------------------

    def submit_plan(
        self,
        plan: list[Phase],
        at: float,
        sequential: bool = False,
        now: float | None = None,
    ) -> float:
        """Book *plan* submitted at *at*, phase after phase; return its end.

        A disk that has failed is skipped (its share lives on in parity or on
        the mirror). *now* is ``env.now`` when the caller has it already.
        """
        if now is None:
            now = self.env.now
        disks = self.disks
        positioning = self._positioning_s[sequential]
        rate = self.spec.disk.transfer_bytes_per_s
        waits = self._waits
        t = at
        for phase in plan:
            end = t
            for index, nbytes in phase:
                disk = disks[index]
                if not disk.failed:  # (the same drive model as Disk.service_s)
                    done = disk.reserve(positioning + nbytes / rate, t, nbytes, now)
                    if disk.last_start > t:
                        waits.note(t, disk.last_start)
                    if done > end:
                        end = done
            t = end
        return t

    def read_at(
        self, key: str, nbytes: int, at: float, now: float | None = None
    ) -> float:
        """Book a read of *nbytes* of file *key* submitted at *at*; return its end."""
        if nbytes <= 0:
            return at
        # the commonest plans inline, booked as submit_plan books them: one
        # block of one stripe unit of a healthy RAID 5, any read of a healthy
        # single disk (one I/O on one disk)
        disk = None
        if self._raid5_healthy:
            unit_bytes = self._unit_bytes
            unit, within = divmod(
                (crc32(key.encode()) % self._blocks) * BLOCK_BYTES, unit_bytes
            )  # self.offset(key), inlined
            if within + nbytes <= unit_bytes:
                disks = self.disks
                n = len(disks)
                row, j = divmod(unit, n - 1)  # raid5_data_disk(unit, n), inlined
                disk = disks[(n - row % n + j) % n]
        elif self._single is not None:
            disk = self._single
        if disk is not None:
            self.reads += 1
            if now is None:
                now = self.env.now
            done = disk.reserve(self._random_s + nbytes / self._rate, at, nbytes, now)
            start = disk.last_start
            if start > at:
                self._waits.note(at, start)
            return done if done > at else at
        plan, degraded = self._read_plan(self.offset(key), nbytes)
        self.reads += 1
        self.degraded_reads += degraded
        return self.submit_plan(plan, at, False, now)

    def write_through_at(self, key: str, nbytes: int, at: float) -> float:
        """Book a write of *nbytes* of *key* to the disks at *at*; return its end."""
        if nbytes <= 0:
            return at
        return self.submit_plan(self.write_plan(key, nbytes), at)

    def write_at(
        self, key: str, nbytes: int, at: float, now: float | None = None
    ) -> float:
        """Book a write of *nbytes* of *key* at *at*; return its acknowledgement.

        Through the controller cache when the array has one and the write fits
        (acknowledged when copied in, once there is room; destaged after),
        else to the disks.
        """
        if nbytes <= 0:
            return at
        if self.failed:
            self._check_alive()
        self.writes += 1
        cache = self.cache
        if now is None:
            now = self.env.now
        if cache is None or nbytes > cache.capacity:
            return self._write_disks(key, nbytes, at, now)
        granted = cache.grant(nbytes, at, now)
        ack = granted + CACHE_COMMAND_S + nbytes / CACHE_BUS_BYTES_PER_S
        cache.hold(nbytes, granted, self._write_disks(key, nbytes, ack, now))
        return ack

    def write_behind(
        self,
        key: str,
        nbytes: int,
        at: float | None = None,
        now: float | None = None,
    ) -> None:
        """Write *nbytes* of file *key* off the critical path; nobody waits.

        The operating system's write-back: the I/O is submitted at *at* (default
        now), once it has room in the controller cache, if any, and runs on its
        own. Costs no SimPy event. *now* is ``env.now`` when the caller has it
        already.
        """
        if nbytes <= 0:
            return
        if self.failed:
            self._check_alive()
        self.writes += 1
        if now is None:
            now = self.env.now
        if at is None:
            at = now
        cache = self.cache
        if cache is None or nbytes > cache.capacity:
            self._write_disks(key, nbytes, at, now)
            return
        granted = cache.grant(nbytes, at, now)
        cache.hold(nbytes, granted, self._write_disks(key, nbytes, granted, now))

    def _write_disks(
        self, key: str, nbytes: int, at: float, now: float | None = None
    ) -> float:
        """``submit_plan(write_plan(key, nbytes), at)``, the commonest plans inline.

        A small write inside one stripe unit of a healthy RAID 5 (read old data
        and parity, then write both) and any write to a healthy single disk or
        RAID 1 (every disk at once) are booked without building the plan, in
        the same order and with the same floats as ``submit_plan``.
        """
        if now is None:
            now = self.env.now
        mirrors = self._write_all
        if mirrors is not None:  # one phase: nbytes on every disk, submitted at at
            service = self._random_s + nbytes / self._rate
            waits = self._waits
            end = at
            for disk in mirrors:
                done = disk.reserve(service, at, nbytes, now)
                start = disk.last_start
                if start > at:
                    waits.note(at, start)
                if done > end:
                    end = done
            return end
        if self._raid5_healthy:
            unit_bytes = self._unit_bytes
            unit, within = divmod(
                (crc32(key.encode()) % self._blocks) * BLOCK_BYTES, unit_bytes
            )  # placement_offset(key, self.usable_bytes), inlined
            if within + nbytes <= unit_bytes:
                disks = self.disks
                n = len(disks)
                # raid5_unit_disks(unit, n), inlined
                row, j = divmod(unit, n - 1)
                parity = n - 1 - row % n
                data = disks[(parity + 1 + j) % n]
                check = disks[parity]
                service = self._random_s + nbytes / self._rate
                note = self._waits.note
                # two phases, the reads then the writes, each on the data disk
                # then on the parity disk, both submitted at the phase's start
                t = at
                for _phase in (0, 1):
                    end = data.reserve(service, t, nbytes, now)
                    start = data.last_start
                    if start > t:
                        note(t, start)
                    done = check.reserve(service, t, nbytes, now)
                    start = check.last_start
                    if start > t:
                        note(t, start)
                    t = done if done > end else end
                return t
        return self.submit_plan(self.write_plan(key, nbytes), at, False, now)

    # -- SimPy ---------------------------------------------------------------

    def _wait_until(self, end: float) -> Generator[simpy.Event, object, None]:
        now = self.env.now
        if end > now:
            yield self.env.timeout(end - now)

    def start_plan(
        self, plan: list[Phase], done: Callable[[], object], sequential: bool = False
    ) -> None:
        """Run *plan* now without a process, then call ``done()``."""
        env = self.env
        end = self.submit_plan(plan, env.now, sequential)
        env.timeout(end - env.now).callbacks.append(  # type: ignore[union-attr]
            lambda _event: done()
        )

    def _run(
        self, plan: list[Phase], sequential: bool = False
    ) -> Generator[simpy.Event, object, None]:
        yield from self._wait_until(self.submit_plan(plan, self.env.now, sequential))

    def read(self, key: str, nbytes: int) -> Generator[simpy.Event, object, None]:
        """Read *nbytes* of file *key* from the disks; ``yield from``."""
        yield from self._wait_until(self.read_at(key, nbytes, self.env.now))

    def write_through(
        self, key: str, nbytes: int
    ) -> Generator[simpy.Event, object, None]:
        """Write *nbytes* of file *key* to the disks themselves, bypassing the cache."""
        yield from self._wait_until(self.write_through_at(key, nbytes, self.env.now))

    def write(self, key: str, nbytes: int) -> Generator[simpy.Event, object, None]:
        """Write *nbytes* of file *key*; done when acknowledged (cache or disks)."""
        yield from self._wait_until(self.write_at(key, nbytes, self.env.now))

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
        env = self.env
        replacement = Disk(env, self.spec.disk, self.disks[index].name)
        remaining = self.spec.disk.capacity_bytes
        while remaining > 0:
            size = min(chunk_bytes, remaining)
            self._check_alive()
            yield from self._run([[(disk, size) for disk in sources]], sequential=True)
            end = replacement.submit(size, env.now, sequential=True)
            yield env.timeout(end - env.now)
            remaining -= size
            if pause_s and remaining:
                yield env.timeout(pause_s)
        self._retired.append(self.disks[index])
        self.disks[index] = replacement
        self.failed.discard(index)
        self._raid5_healthy = (
            not self.failed and self.spec.level == "raid5" and len(self.disks) >= 4
        )
        self._set_write_all()

    # -- the sampler's view: Servers-like, summed over the disks ---------------

    def sync(self) -> None:
        for disk in self.disks:
            disk.sync()

    @property
    def capacity(self) -> int:
        """Live disks (at least 1, so that a utilisation is always defined)."""
        return max(1, len(self.disks) - len(self.failed))

    @property
    def busy(self) -> int:
        return sum(disk.busy for disk in self.disks)

    @property
    def queue_length(self) -> int:
        return sum(disk.queue_length for disk in self.disks)

    @property
    def queue_max(self) -> int:
        """Most I/Os waiting at once over all the disks (see ``WaitCounter``)."""
        return self._waits.most

    @property
    def busy_area(self) -> float:
        """Busy spindle-seconds so far, of every disk the array ever had."""
        return sum(disk.busy_area for disk in (*self.disks, *self._retired))

    @property
    def queue_area(self) -> float:
        return sum(disk.queue_area for disk in (*self.disks, *self._retired))

    @property
    def served(self) -> int:
        return sum(disk.served for disk in (*self.disks, *self._retired))

    @property
    def dirty_bytes(self) -> int:
        """Bytes in the controller cache waiting to be destaged."""
        return self.cache.dirty_bytes if self.cache is not None else 0
