"""The page cache: LRU over bytes, hits, misses, partial hits and counters."""

from __future__ import annotations

import pytest

from twin.hardware.memory import PageCache
from twin.hardware.profile import load_profile


def test_miss_then_hit():
    cache = PageCache(100_000)
    assert cache.read("inbox/1", 5000) == 5000  # cold: all from disk
    assert cache.read("inbox/1", 5000) == 0  # warm
    assert cache.read("inbox/1", 3000) == 0  # a shorter read of a cached file
    assert (cache.read_requests, cache.read_hits) == (3, 2)
    assert (cache.bytes_requested, cache.bytes_hit) == (13_000, 8000)
    assert cache.read_hit_rate == pytest.approx(2 / 3)
    assert cache.byte_hit_rate == pytest.approx(8000 / 13_000)


def test_partial_hit_fetches_the_rest():
    cache = PageCache(100_000)
    cache.write("mbox/alice", 4000)
    assert cache.read("mbox/alice", 10_000) == 6000
    assert cache.cached("mbox/alice") == 10_000
    assert cache.bytes_hit == 4000 and cache.read_hits == 0


def test_write_populates_without_counting_a_read():
    cache = PageCache(100_000)
    cache.write("new/1", 7000)
    cache.write("new/1", 2000)  # a smaller rewrite keeps what is cached
    assert cache.cached("new/1") == 7000 and cache.used_bytes == 7000
    assert cache.read_requests == 0
    assert cache.read("new/1", 7000) == 0


def test_least_recently_used_files_are_evicted():
    cache = PageCache(10_000)
    cache.write("a", 4000)
    cache.write("b", 4000)
    cache.read("a", 4000)  # a is now more recent than b
    cache.write("c", 4000)  # 12,000 > 10,000: b goes
    assert (cache.cached("a"), cache.cached("b"), cache.cached("c")) == (4000, 0, 4000)
    assert cache.used_bytes == 8000 and cache.evicted_bytes == 4000
    assert len(cache) == 2
    assert cache.read("b", 4000) == 4000  # a miss again; a goes now
    assert cache.cached("a") == 0


def test_a_file_larger_than_the_cache_keeps_its_head():
    cache = PageCache(10_000)
    cache.write("small", 1000)
    assert cache.read("huge", 50_000) == 50_000
    assert cache.cached("huge") == 10_000 and cache.cached("small") == 0
    assert cache.read("huge", 50_000) == 40_000


def test_discard_and_empty_cache():
    cache = PageCache(10_000)
    cache.write("x", 3000)
    cache.discard("x")
    assert cache.used_bytes == 0 and cache.cached("x") == 0
    none = PageCache(0)
    assert none.read("x", 10) == 10 and none.read("x", 10) == 10
    assert none.read_hit_rate == 0.0
    with pytest.raises(ValueError, match="capacity_bytes"):
        PageCache(-1)
    with pytest.raises(ValueError, match="nbytes"):
        cache.read("x", -1)


def test_capacity_is_ram_minus_reserved():
    dell = load_profile("dell-pe1750").memory
    assert dell.page_cache_bytes == 3 * 1024**3  # 4 GiB - 1 GiB
    assert PageCache(dell.page_cache_bytes).capacity_bytes == 3 * 1024**3
