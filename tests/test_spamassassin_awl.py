"""AWL: per-sender mean shift."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.stages.spamassassin.awl import AutoWhitelist, awl_key


def test_key_is_address_and_first_two_octets():
    assert awl_key("Joe@Example.COM ", "192.168.7.9") == "joe@example.com|ip=192.168"
    assert awl_key("joe@example.com", "") == "joe@example.com|ip=none"


def test_delta_is_half_the_distance_to_the_mean():
    awl = AutoWhitelist()
    assert awl.adjust("a@x.org", "10.1.2.3", 10.0) == 0.0  # first message
    # mean 10, score 2: (10 - 2) * 0.5
    assert awl.adjust("a@x.org", "10.1.9.9", 2.0) == pytest.approx(4.0)
    # history now (10 + 2) / 2 = 6; score 0: (6 - 0) * 0.5
    assert awl.adjust("a@x.org", "10.1.0.1", 0.0) == pytest.approx(3.0)
    assert awl.entries["a@x.org|ip=10.1"] == [3, 12.0]
    # another network: a new sender key
    assert awl.adjust("a@x.org", "172.16.0.1", 5.0) == 0.0


def test_factor_changes_the_delta_and_is_checked(tmp_path: Path):
    awl = AutoWhitelist(factor=0.25)
    awl.adjust("b@y.org", "1.2.3.4", 8.0)
    assert awl.adjust("b@y.org", "1.2.3.4", 0.0) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="awl factor 1.5 outside the range 0..1"):
        AutoWhitelist(factor=1.5)
    path = tmp_path / "awl.json"
    awl.save(path)
    assert AutoWhitelist.load(path).entries == awl.entries
