"""Named streams depend on the seed and their name only."""

from twin.sim.streams import Streams, spawn_key


def test_same_seed_same_name_same_draws():
    assert Streams(7)("a").random(5).tolist() == Streams(7)("a").random(5).tolist()


def test_streams_are_independent_of_each_other_and_of_order():
    first = Streams(7)
    first("b").random(100)
    after_b = first("a").random(3).tolist()
    assert after_b == Streams(7)("a").random(3).tolist()
    assert Streams(7)("a").random(3).tolist() != Streams(8)("a").random(3).tolist()
    assert Streams(7)("a").random(3).tolist() != Streams(7)("c").random(3).tolist()


def test_spawn_key_is_stable():
    assert spawn_key("arrivals.s1") == spawn_key("arrivals.s1")
    assert len(spawn_key("x")) == 4
