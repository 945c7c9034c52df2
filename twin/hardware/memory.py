"""The page cache: which file bytes a host can serve from RAM instead of its disks.

Twins the operating system's file cache as a least-recently-used cache over
bytes, of ``ram - reserved`` bytes (``MemorySpec.page_cache_bytes``: what the
kernel and the processes do not hold). Files are named by the keys of a
stage's ``Work.reads`` and ``Work.writes``; for each file it keeps how many
of its leading bytes are cached.

- ``read(key, nbytes)`` returns the bytes that must come from disk: 0 on a
  hit, ``nbytes - cached`` on a partial hit, ``nbytes`` on a miss; afterwards
  the first ``nbytes`` of the file are cached and the file is the most recent.
- ``write(key, nbytes)`` caches the written bytes: afterwards
  ``max(cached, nbytes)`` bytes of the file are cached. Exact for maildir (one
  file a message, written whole); an mbox append is not added to what was
  cached (assumption: pessimistic, and a rewrite of a whole mbox is not
  counted twice).
- Least recently used files are evicted, whole, until the cache fits; a file
  larger than the cache keeps only its first ``capacity`` bytes.

Counts requests and bytes, hit and missed, for hit rates. No SimPy: the host
asks it before it asks the disks.
"""

from __future__ import annotations

from collections import OrderedDict


class PageCache:
    """An LRU cache of *capacity_bytes* bytes of file data."""

    __slots__ = (
        "capacity_bytes",
        "used_bytes",
        "_files",
        "read_requests",
        "read_hits",
        "bytes_requested",
        "bytes_hit",
        "evicted_bytes",
    )

    def __init__(self, capacity_bytes: int) -> None:
        if capacity_bytes < 0:
            raise ValueError(f"capacity_bytes(={capacity_bytes}) must be >= 0")
        self.capacity_bytes = int(capacity_bytes)
        self.used_bytes = 0
        self._files: OrderedDict[str, int] = OrderedDict()
        self.read_requests = 0
        self.read_hits = 0
        """Reads served wholly from the cache."""
        self.bytes_requested = 0
        self.bytes_hit = 0
        self.evicted_bytes = 0

    def cached(self, key: str) -> int:
        """Bytes of *key* held now (does not count as a use)."""
        return self._files.get(key, 0)

    def read(self, key: str, nbytes: int) -> int:
        """Read *nbytes* of *key*; return the bytes to fetch from disk."""
        if nbytes < 0:
            raise ValueError(f"nbytes(={nbytes}) must be >= 0")
        self.read_requests += 1
        self.bytes_requested += nbytes
        have = self._files.get(key, 0)
        if have >= nbytes:
            self.read_hits += 1
            self.bytes_hit += nbytes
            if have:
                self._files.move_to_end(key)
            return 0
        self.bytes_hit += have
        self._store(key, nbytes, have)
        return nbytes - have

    def write(self, key: str, nbytes: int) -> None:
        """Cache *nbytes* just written to *key*."""
        if nbytes < 0:
            raise ValueError(f"nbytes(={nbytes}) must be >= 0")
        have = self._files.get(key, 0)
        if have >= nbytes:
            if have:
                self._files.move_to_end(key)
            return
        self._store(key, nbytes, have)

    def discard(self, key: str) -> None:
        """Forget *key* (a deleted file)."""
        self.used_bytes -= self._files.pop(key, 0)

    def _store(self, key: str, nbytes: int, have: int) -> None:
        files = self._files
        capacity = self.capacity_bytes
        keep = nbytes if nbytes < capacity else capacity
        if have:
            files.move_to_end(key)
        if keep <= 0:
            return
        files[key] = keep
        used = self.used_bytes + keep - have
        if used > capacity:
            evicted = 0
            while used > capacity:
                _victim, size = files.popitem(last=False)
                used -= size
                evicted += size
            self.evicted_bytes += evicted
        self.used_bytes = used

    @property
    def read_hit_rate(self) -> float:
        """Fraction of reads served wholly from the cache (0 before any read)."""
        return self.read_hits / self.read_requests if self.read_requests else 0.0

    @property
    def byte_hit_rate(self) -> float:
        """Fraction of bytes read that came from the cache (0 before any read)."""
        return self.bytes_hit / self.bytes_requested if self.bytes_requested else 0.0

    def __len__(self) -> int:
        return len(self._files)
