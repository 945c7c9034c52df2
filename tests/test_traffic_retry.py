"""Retry schedules of sending MTAs and retrying bulk senders."""

from __future__ import annotations

import dataclasses

import pytest

from twin.traffic.retry import (
    MAXIMAL_QUEUE_LIFETIME_S,
    RetryPolicy,
    RetrySchedule,
    postfix_policy,
    postfix_pre24_policy,
    sendmail_policy,
    spamware_policy,
)


def _attempts(schedule: RetrySchedule, limit: int = 10_000) -> list[float]:
    """All attempt times, the first included, until the sender gives up."""
    times = [schedule.first_attempt_s]
    while len(times) < limit:
        following = schedule.next_attempt(len(times), times[-1])
        if following is None:
            return times
        times.append(following)
    raise AssertionError("schedule never gives up")


def test_postfix_24_backoff_doubles_from_300_to_4000():
    schedule = postfix_policy().schedule(0.0)
    # Age clamped to [300, 4000], rounded up to the 300 s deferred-queue scan.
    assert _attempts(schedule)[:9] == [
        0.0, 300.0, 600.0, 1200.0, 2400.0, 4800.0, 9000.0, 13200.0, 17400.0,
    ]  # fmt: skip


def test_postfix_pre24_backoff_1000_1000_4000():
    schedule = postfix_pre24_policy().schedule(0.0)
    assert _attempts(schedule)[:8] == [
        0.0, 1000.0, 2000.0, 4000.0, 8000.0, 12000.0, 16000.0, 20000.0,
    ]  # fmt: skip


def test_postfix_waits_for_the_queue_run_phase():
    schedule = postfix_policy(queue_run_phase_s=120.0).schedule(50.0)
    # Eligible at 350, next scan at 420; age 370 -> eligible 790, scan 1020.
    assert schedule.next_attempt(1, 50.0) == 420.0
    assert schedule.next_attempt(2, 420.0) == 1020.0


def test_postfix_gives_up_after_five_days():
    schedule = postfix_policy().schedule(1000.0)
    times = _attempts(schedule)
    assert times[-1] - 1000.0 <= MAXIMAL_QUEUE_LIFETIME_S
    assert times[-1] + 4000.0 + 300.0 - 1000.0 > MAXIMAL_QUEUE_LIFETIME_S
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert max(gaps) <= 4000.0 + 300.0
    # 1000, 1500, 2100, 3300, 5700, 9900, then every 4200 s (4000 rounded up
    # to the scan) while within 1000 + 432,000: 100 more, the last at 429,900.
    assert times[:6] == [1000.0, 1500.0, 2100.0, 3300.0, 5700.0, 9900.0]
    assert times[-1] == 429_900.0
    assert len(times) == 106


def test_sendmail_retries_at_every_queue_run():
    schedule = sendmail_policy(1200.0, queue_run_phase_s=100.0).schedule(0.0)
    assert _attempts(schedule)[:5] == [0.0, 100.0, 1300.0, 2500.0, 3700.0]
    # A failure exactly at a run time waits for the next run.
    assert schedule.next_attempt(3, 1300.0) == 2500.0
    assert len(_attempts(schedule)) == 1 + 5 * 86400 // 1200


def test_spamware_retries_at_a_fixed_interval_until_its_lifetime():
    schedule = spamware_policy(900.0, lifetime_s=3600.0).schedule(10.0)
    assert _attempts(schedule) == [10.0, 910.0, 1810.0, 2710.0, 3610.0]


def test_max_attempts_caps_the_schedule():
    policy = dataclasses.replace(spamware_policy(600.0), max_attempts=3)
    assert _attempts(policy.schedule(0.0)) == [0.0, 600.0, 1200.0]


def test_schedule_is_deterministic_and_frozen():
    a = postfix_policy(7.0).schedule(3.0)
    b = postfix_policy(7.0).schedule(3.0)
    assert a == b
    assert _attempts(a) == _attempts(b)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.first_attempt_s = 4.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("attempt", "last", "message"),
    [(0, 10.0, r"attempt_number\(=0\)"), (1, 5.0, r"last_attempt_at\(=5.0\)")],
)
def test_bad_next_attempt_arguments(attempt, last, message):
    schedule = postfix_policy().schedule(10.0)
    with pytest.raises(ValueError, match=message):
        schedule.next_attempt(attempt, last)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"minimal_backoff_s": -1.0}, r"minimal_backoff_s\(=-1.0\)"),
        ({"maximal_backoff_s": 100.0}, r"maximal_backoff_s\(=100.0\) must be >="),
        ({"queue_run_delay_s": 0.0, "minimal_backoff_s": 0.0,
          "maximal_backoff_s": 0.0}, "both 0"),
        ({"max_attempts": 0}, r"max_attempts\(=0\)"),
    ],
)  # fmt: skip
def test_bad_policies_are_rejected(changes, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(postfix_policy(), **changes)


def test_bad_factory_arguments():
    with pytest.raises(ValueError, match=r"queue_interval_s\(=0"):
        sendmail_policy(0.0)
    with pytest.raises(ValueError, match=r"interval_s\(=-5"):
        spamware_policy(-5.0)
    assert isinstance(spamware_policy(60.0), RetryPolicy)
