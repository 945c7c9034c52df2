"""Retry schedules: when a sending MTA tries a temporarily failed message again.

Twins what happens behind a greylisting ``451``: the sender's queue manager
keeps the message and tries again later, until the message is too old. One
rule covers all the senders modelled (FACTS.md, "MTA retries"):

- the next attempt is *eligible* at ``last + clamp(last - first, minimal_backoff,
  maximal_backoff)``: Postfix's qmgr sets the deferred file's next time from the
  message's age clamped to the backoff bounds (``qmgr_active.c``), which doubles
  the gap after each failure until the maximum;
- the queue is only scanned every ``queue_run_delay_s`` (runs at ``phase +
  k * queue_run_delay_s``), so the attempt happens at the first run at or after
  eligibility and strictly after the last attempt; ``queue_run_delay_s == 0``
  means no periodic scan (retry exactly when eligible);
- no attempt later than ``first + max_queue_lifetime_s`` (the message bounces),
  and, if ``max_attempts`` is set, no attempt past that number.

Policies (``RetryPolicy``), with their sources:

- ``postfix_policy()``: Postfix 2.4 and later, queue_run_delay 300 s,
  minimal_backoff_time 300 s, maximal_backoff_time 4000 s,
  maximal_queue_lifetime 5 d (postconf(5) defaults).
- ``postfix_pre24_policy()``: Postfix before 2.4, 1000 s / 1000 s / 4000 s, 5 d.
- ``sendmail_policy()``: sendmail, a queue run every 15-30 min (the ``-q``
  interval depends on the distribution; chosen per sending host), every queued
  message retried at every run (no per-message backoff), returned after 5 d
  (``Timeout.queuereturn``).
- ``spamware_policy()``: the minority of bulk senders that do retry.
  Assumption (no primary source; most spamware never retries, RFC 6647 sec. 2):
  a fixed interval per bot, no queue scan, giving up after a few hours.

A ``RetrySchedule`` is one message's schedule: a policy plus the time of the
first attempt. ``next_attempt`` is deterministic; any randomness (the queue-run
phase, a sendmail interval, a bot's interval) is drawn when the policy is made.

Raises ``ValueError`` for negative or inconsistent policy numbers and for an
attempt number below 1 or a last attempt before the first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DAY_S = 86400.0

POSTFIX_QUEUE_RUN_DELAY_S = 300.0  # postconf(5), Postfix >= 2.4
POSTFIX_MINIMAL_BACKOFF_S = 300.0  # postconf(5), Postfix >= 2.4
POSTFIX_MAXIMAL_BACKOFF_S = 4000.0  # postconf(5)
POSTFIX_PRE24_QUEUE_RUN_DELAY_S = 1000.0  # postconf(5), before 2.4
POSTFIX_PRE24_MINIMAL_BACKOFF_S = 1000.0  # postconf(5), before 2.4
MAXIMAL_QUEUE_LIFETIME_S = 5 * DAY_S  # postconf(5) maximal_queue_lifetime 5d
SENDMAIL_QUEUE_RETURN_S = 5 * DAY_S  # sendmail Timeout.queuereturn 5d
SENDMAIL_QUEUE_INTERVAL_MIN_S = 15 * 60.0  # FACTS.md: -q15m .. -q30m
SENDMAIL_QUEUE_INTERVAL_MAX_S = 30 * 60.0
SPAMWARE_LIFETIME_S = 4 * 3600.0  # assumption: retrying bulkers give up after 4 h


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How one sending host retries (see the module docstring for the rule)."""

    name: str
    queue_run_delay_s: float
    minimal_backoff_s: float
    maximal_backoff_s: float
    max_queue_lifetime_s: float
    queue_run_phase_s: float = 0.0
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        for field_name in (
            "queue_run_delay_s",
            "minimal_backoff_s",
            "maximal_backoff_s",
            "max_queue_lifetime_s",
            "queue_run_phase_s",
        ):
            value = getattr(self, field_name)
            if not math.isfinite(value) or value < 0.0:
                raise ValueError(
                    f"retry policy {self.name}: {field_name}(={value}) must be "
                    "finite and >= 0"
                )
        if self.maximal_backoff_s < self.minimal_backoff_s:
            raise ValueError(
                f"retry policy {self.name}: maximal_backoff_s"
                f"(={self.maximal_backoff_s}) must be >= minimal_backoff_s"
                f"(={self.minimal_backoff_s})"
            )
        if self.queue_run_delay_s == 0.0 and self.minimal_backoff_s == 0.0:
            raise ValueError(
                f"retry policy {self.name}: queue_run_delay_s and minimal_backoff_s "
                "are both 0 (it would retry at once, forever)"
            )
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(
                f"retry policy {self.name}: max_attempts(={self.max_attempts}) "
                "must be >= 1 or None"
            )

    def schedule(self, first_attempt_s: float) -> RetrySchedule:
        """The schedule of a message first tried at *first_attempt_s*."""
        return RetrySchedule(self, first_attempt_s)


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """One message's retry times: *policy* applied from *first_attempt_s*."""

    policy: RetryPolicy
    first_attempt_s: float

    def next_attempt(self, attempt_number: int, last_attempt_at: float) -> float | None:
        """Time of the attempt after attempt *attempt_number* (1 = the first),
        which failed temporarily at *last_attempt_at*; None when the sender
        gives up (bounce or abandon)."""
        policy = self.policy
        first = self.first_attempt_s
        if attempt_number < 1:
            raise ValueError(f"attempt_number(={attempt_number}) must be >= 1")
        if last_attempt_at < first:
            raise ValueError(
                f"last_attempt_at(={last_attempt_at}) must be >= first_attempt_s"
                f"(={first})"
            )
        if policy.max_attempts is not None and attempt_number >= policy.max_attempts:
            return None
        backoff = last_attempt_at - first
        if backoff < policy.minimal_backoff_s:
            backoff = policy.minimal_backoff_s
        elif backoff > policy.maximal_backoff_s:
            backoff = policy.maximal_backoff_s
        eligible = last_attempt_at + backoff
        period = policy.queue_run_delay_s
        if period > 0.0:
            phase = policy.queue_run_phase_s
            runs = math.ceil((eligible - phase) / period)
            when = phase + runs * period
            if when <= last_attempt_at:
                when += period * (math.floor((last_attempt_at - when) / period) + 1)
        else:
            when = eligible
        if when - first > policy.max_queue_lifetime_s:
            return None
        return when


def postfix_policy(queue_run_phase_s: float = 0.0) -> RetryPolicy:
    """Postfix 2.4 and later defaults (300 s / 300 s / 4000 s, 5 d)."""
    return RetryPolicy(
        name="postfix-2.4",
        queue_run_delay_s=POSTFIX_QUEUE_RUN_DELAY_S,
        minimal_backoff_s=POSTFIX_MINIMAL_BACKOFF_S,
        maximal_backoff_s=POSTFIX_MAXIMAL_BACKOFF_S,
        max_queue_lifetime_s=MAXIMAL_QUEUE_LIFETIME_S,
        queue_run_phase_s=queue_run_phase_s,
    )


def postfix_pre24_policy(queue_run_phase_s: float = 0.0) -> RetryPolicy:
    """Postfix before 2.4 defaults (1000 s / 1000 s / 4000 s, 5 d)."""
    return RetryPolicy(
        name="postfix-2.3",
        queue_run_delay_s=POSTFIX_PRE24_QUEUE_RUN_DELAY_S,
        minimal_backoff_s=POSTFIX_PRE24_MINIMAL_BACKOFF_S,
        maximal_backoff_s=POSTFIX_MAXIMAL_BACKOFF_S,
        max_queue_lifetime_s=MAXIMAL_QUEUE_LIFETIME_S,
        queue_run_phase_s=queue_run_phase_s,
    )


def sendmail_policy(
    queue_interval_s: float, queue_run_phase_s: float = 0.0
) -> RetryPolicy:
    """sendmail with ``-q<queue_interval_s>``: retry at every queue run, 5 d."""
    if queue_interval_s <= 0.0:
        raise ValueError(f"queue_interval_s(={queue_interval_s}) must be > 0")
    return RetryPolicy(
        name="sendmail",
        queue_run_delay_s=queue_interval_s,
        minimal_backoff_s=0.0,
        maximal_backoff_s=0.0,
        max_queue_lifetime_s=SENDMAIL_QUEUE_RETURN_S,
        queue_run_phase_s=queue_run_phase_s,
    )


def spamware_policy(
    interval_s: float, lifetime_s: float = SPAMWARE_LIFETIME_S
) -> RetryPolicy:
    """A retrying bulk sender: every *interval_s* until *lifetime_s* (assumption)."""
    if interval_s <= 0.0:
        raise ValueError(f"interval_s(={interval_s}) must be > 0")
    return RetryPolicy(
        name="spamware",
        queue_run_delay_s=0.0,
        minimal_backoff_s=interval_s,
        maximal_backoff_s=interval_s,
        max_queue_lifetime_s=lifetime_s,
    )
