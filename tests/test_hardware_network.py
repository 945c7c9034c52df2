"""The link: transmission holds it, latency and round trips only delay."""

from __future__ import annotations

import pytest
import simpy

from twin.hardware.network import Link, delay_s, transfer_time_s, transmission_s
from twin.hardware.profile import LinkSpec

FAST_ETHERNET = LinkSpec(bandwidth_bytes_per_s=100e6 / 8, latency_s=0.1e-3)


def test_link_time_by_hand():
    # 1 MB over 100 Mbit/s: 0.08 s, plus one 0.1 ms trip for the last bit
    assert transmission_s(FAST_ETHERNET, 1_000_000) == pytest.approx(0.08)
    assert transfer_time_s(FAST_ETHERNET, 1_000_000) == pytest.approx(0.0801)
    # an LDAP lookup: 300 bytes and one round trip (there and back)
    assert transfer_time_s(FAST_ETHERNET, 300, 1) == pytest.approx(
        300 / 12.5e6 + 0.1e-3 + 0.2e-3
    )
    assert delay_s(FAST_ETHERNET, 0, 3) == pytest.approx(0.6e-3)
    with pytest.raises(ValueError, match="round_trips"):
        delay_s(FAST_ETHERNET, 0, -1)


def test_transfers_queue_for_the_link_but_not_for_latency():
    env = simpy.Environment()
    link = Link(env, FAST_ETHERNET, "h.link")
    done: list[float] = []

    def send(nbytes, trips):
        yield from link.transfer(nbytes, trips)
        done.append(env.now)

    env.process(send(1_000_000, 0))
    env.process(send(1_000_000, 0))
    env.process(send(0, 5))  # round trips only: never waits for the wire
    env.run()
    assert done == pytest.approx([1.0e-3, 0.0801, 0.1601])
    link.wire.sync()
    assert link.wire.busy_area == pytest.approx(0.16)
    assert link.wire.queue_area == pytest.approx(0.08)
    assert (link.bytes_sent, link.round_trips) == (2_000_000, 5)


def test_simulated_link_throughput_is_its_bandwidth():
    env = simpy.Environment()
    link = Link(env, FAST_ETHERNET)
    for _ in range(200):
        env.process(link.transfer(50_000))
    env.run()
    assert 200 * 50_000 / env.now == pytest.approx(12.5e6, rel=1e-3)


def test_reserve_chains_a_transfer_after_earlier_work():
    env = simpy.Environment()
    link = Link(env, FAST_ETHERNET, "h.link")
    assert link.reserve(1_000_000, 0, at=0.5) == pytest.approx(0.5801)
    # a transfer submitted now uses the idle wire before the booked one
    assert link.reserve(1_000_000) == pytest.approx(0.0801)
    assert link.reserve(0, 2) == pytest.approx(0.4e-3)
    assert env.peek() == float("inf")
    env.run(until=1.0)
    assert link.wire.busy_area == pytest.approx(0.16)
    assert (link.bytes_sent, link.round_trips) == (2_000_000, 2)
    with pytest.raises(ValueError, match="round_trips"):
        link.reserve(10, -1)
