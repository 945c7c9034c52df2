"""FuzzyOCR's image hash database (twin.stages.ocr.hashdb)."""

import numpy as np
import pytest

from twin.stages.ocr.hashdb import EXPIRY_S, HashDb, image_key

DAY = 86400.0


def test_key_from_size_dimensions_colours_and_top_colours():
    rgb = np.zeros((3, 4, 3), np.uint8)
    rgb[0, :] = (255, 255, 255)
    rgb[1, 0] = (255, 0, 0)
    assert image_key(123, rgb) == "123:3:4:3:0000x7,7fffx4,7c00x1"


def test_entries_expire_after_35_days_unseen():
    assert EXPIRY_S == 35 * DAY
    db = HashDb()
    db.learn("k", 8.0, "words found", now=0.0)
    assert db.lookup("k", now=30 * DAY).score == 8.0  # refreshes last seen
    assert db.lookup("k", now=64 * DAY) is not None
    assert db.lookup("k", now=100 * DAY) is None
    assert len(db) == 0


def test_expire_drops_only_stale_entries():
    db = HashDb(expiry_s=10.0)
    db.learn("old", 5.0, "a", now=0.0)
    db.learn("new", 6.0, "b", now=15.0)
    assert db.expire(now=20.0) == 1
    assert list(db.entries) == ["new"]


def test_save_and_load_round_trip(tmp_path):
    db = HashDb()
    db.learn("1:2:3:4:00ffx9", 7.5, 'words found: "stock"\nin 2 lines', now=5.0)
    path = tmp_path / "digest.db"
    written = db.save(path)
    assert written == path.stat().st_size
    loaded = HashDb.load(path)
    entry = loaded.entries["1:2:3:4:00ffx9"]
    assert (entry.score, entry.first_seen_s, entry.last_seen_s) == (7.5, 5.0, 5.0)
    assert entry.description == 'words found: "stock" in 2 lines'


def test_bad_files_and_settings(tmp_path):
    path = tmp_path / "bad.db"
    path.write_text("only\ttwo\n")
    with pytest.raises(ValueError, match="line 1: 2 fields"):
        HashDb.load(path)
    with pytest.raises(ValueError, match="expiry_s=0"):
        HashDb(expiry_s=0)
