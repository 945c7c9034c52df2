"""The Servers pool: FCFS order, capacity, and the books it keeps."""

import pytest
import simpy

from twin.resources import Servers


def test_fcfs_with_integrals():
    env = simpy.Environment()
    pool = Servers(env, 2, "pool")
    log = []

    def job(name, arrive, service):
        yield env.timeout(arrive)
        grant = pool.acquire()
        if grant is not None:
            yield grant
        log.append((name, env.now))
        yield env.timeout(service)
        pool.release()

    for name, arrive, service in [("a", 0, 4), ("b", 0, 2), ("c", 1, 3), ("d", 1, 1)]:
        env.process(job(name, arrive, service))
    env.run()
    # a and b start at 0; c takes b's server at 2, d takes a's at 4.
    assert log == [("a", 0), ("b", 0), ("c", 2), ("d", 4)]
    pool.sync()
    assert env.now == 5
    assert pool.busy_area == pytest.approx(4 + 2 + 3 + 1)
    # c waits 1..2 and d waits 1..4: queue integral 1 + 3.
    assert pool.queue_area == pytest.approx(4)
    assert pool.served == 4
    assert pool.queue_max == 2
    assert pool.busy == 0


def test_bad_capacity_and_overrelease():
    env = simpy.Environment()
    with pytest.raises(ValueError, match="capacity"):
        Servers(env, 0, "x")
    pool = Servers(env, 1, "x")
    with pytest.raises(RuntimeError, match="released more"):
        pool.release()
