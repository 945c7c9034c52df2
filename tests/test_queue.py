"""Tests of the Postfix queue manager twin (twin.stages.queue)."""

from __future__ import annotations

import email
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from twin.stages.queue import (
    CPU_UNITS,
    DAY_S,
    SIMULATION_EPOCH_S,
    BackoffRule,
    QueueDecision,
    QueueManager,
    QueueSettings,
)
from twin.stages.work import Work

MESSAGE = (
    b"From: bob@example.org\r\nTo: alice@example.edu\r\nSubject: lunch\r\n"
    b"\r\nsee you at noon\r\n"
)
SENDER = "bob@example.org"
RCPTS = ("alice@example.edu", "carol@example.edu")
# "T <epoch+now>\nS <sender>\nR ...\nR ...\nM\n" then the message as given
ENVELOPE = (
    b"T 1173052810\nS bob@example.org\nR alice@example.edu\nR carol@example.edu\nM\n"
)


def files_in(root: Path, name: str) -> list[str]:
    return sorted(os.listdir(root / name))


def test_defaults_are_postfix_2_4_and_preset_gives_pre_2_4():
    settings = QueueSettings()
    assert (
        settings.queue_run_delay_s,
        settings.minimal_backoff_time_s,
        settings.maximal_backoff_time_s,
        settings.maximal_queue_lifetime_s,
    ) == (300.0, 300.0, 4000.0, 432000.0)
    assert settings.backoff_rule is BackoffRule.QUEUE_AGE
    assert settings.host_fsync is False
    old = QueueSettings.preset("pre-2.4")
    assert (
        old.queue_run_delay_s,
        old.minimal_backoff_time_s,
        old.maximal_backoff_time_s,
    ) == (1000.0, 1000.0, 4000.0)
    assert QueueSettings.preset("2.4") == settings
    assert QueueSettings.preset("pre-2.4", host_fsync=True).host_fsync is True


@pytest.mark.parametrize(
    "kwargs",
    [
        {"queue_run_delay_s": 0},
        {"minimal_backoff_time_s": -1},
        {"minimal_backoff_time_s": 5000.0},  # above maximal_backoff_time_s
        {"maximal_queue_lifetime_s": 0},
        {"backoff_rule": "queue_age"},
        {"hostname": "two words"},
    ],
)
def test_bad_settings_raise(kwargs):
    with pytest.raises(ValueError):
        QueueSettings(**kwargs)


def test_bad_preset_names_allowed_versions():
    with pytest.raises(ValueError, match="'2.4' or 'pre-2.4'"):
        QueueSettings.preset("2.2")


def test_enqueue_writes_one_real_file_into_active(tmp_path):
    queue = QueueManager(tmp_path, QueueSettings())
    result = queue.enqueue("A1B2C3", MESSAGE, 10.0, SENDER, RCPTS)
    size = len(ENVELOPE) + len(MESSAGE)
    assert result.decision is QueueDecision.QUEUED
    assert result.queue_id == "A1B2C3"
    assert result.size_bytes == size
    assert result.reason == f"queued A1B2C3: {size} bytes in active"
    assert result.work == Work(
        cpu={"queue.message": 1, "queue.byte": size},
        writes=(("queue/A1B2C3", size),),
        fsyncs=1,
        files_created=1,
        files_renamed=1,
    )
    assert set(result.work.cpu) <= set(CPU_UNITS)
    assert (tmp_path / "active" / "A1B2C3").read_bytes() == ENVELOPE + MESSAGE
    assert files_in(tmp_path, "incoming") == []
    assert queue.location("A1B2C3") == tmp_path / "active" / "A1B2C3"
    assert queue.pending() == 1
    assert queue.accepted_count == 1


def test_host_fsync_does_not_change_the_work(tmp_path):
    fast = QueueManager(tmp_path / "fast", QueueSettings())
    synced = QueueManager(tmp_path / "synced", QueueSettings(host_fsync=True))
    assert (
        fast.enqueue("Q1", MESSAGE, 0.0, SENDER, RCPTS).work
        == synced.enqueue("Q1", MESSAGE, 0.0, SENDER, RCPTS).work
    )
    assert fast.delivered("Q1", 1.0) == synced.delivered("Q1", 1.0)


def test_delivered_removes_the_file(tmp_path):
    queue = QueueManager(tmp_path, QueueSettings())
    queue.enqueue("Q1", MESSAGE, 0.0, SENDER, RCPTS)
    work = queue.delivered("Q1", 3.0)
    assert work == Work(cpu={"queue.update": 1}, files_deleted=1)
    assert files_in(tmp_path, "active") == []
    assert queue.pending() == 0
    assert queue.delivered_count == 1
    with pytest.raises(ValueError, match="'Q1' is not queued"):
        queue.delivered("Q1", 4.0)


def test_queue_age_backoff_follows_postfix_and_aligns_to_queue_runs(tmp_path):
    """Postfix 2.4: delay = time in queue clamped to [300, 4000], next scan."""
    queue = QueueManager(tmp_path, QueueSettings())
    queue.enqueue("Q1", MESSAGE, 10.0, SENDER, RCPTS)
    first = queue.deferred("Q1", 12.0, attempts=1)
    assert first.decision is QueueDecision.DEFERRED
    assert first.delay_s == 300.0  # age 2 s, raised to minimal_backoff_time
    assert first.next_attempt_at == 600.0  # first scan at or after 312 s
    assert first.work == Work(cpu={"queue.update": 1}, files_renamed=1)
    deferred = tmp_path / "deferred" / "Q1"
    assert files_in(tmp_path, "deferred") == ["Q1"]
    assert files_in(tmp_path, "active") == []
    assert deferred.stat().st_mtime == SIMULATION_EPOCH_S + 600
    assert first.reason == (
        "deferred Q1 after 1 attempt(s): backoff 300 s, next queue run at 600 s"
    )
    schedule = [first.next_attempt_at]
    for attempts in range(2, 6):
        deferral = queue.deferred("Q1", schedule[-1], attempts)
        # the retry moved the file deferred -> active, then back to deferred
        assert deferral.work == Work(cpu={"queue.update": 1}, files_renamed=2)
        schedule.append(deferral.next_attempt_at)
    # ages 590, 1190, 2390 s give delays 590, 1190, 2390; then 4790 -> 4000 cap
    assert schedule == [600.0, 1200.0, 2400.0, 4800.0, 9000.0]
    assert queue.location("Q1") == deferred


def test_pre_2_4_timers_change_the_schedule(tmp_path):
    queue = QueueManager(tmp_path, QueueSettings.preset("pre-2.4"))
    queue.enqueue("Q1", MESSAGE, 10.0, SENDER, RCPTS)
    deferral = queue.deferred("Q1", 12.0, attempts=1)
    assert deferral.delay_s == 1000.0
    assert deferral.next_attempt_at == 2000.0  # scans every 1000 s


def test_doubling_rule_doubles_per_failure_up_to_the_maximum(tmp_path):
    queue = QueueManager(tmp_path, QueueSettings(backoff_rule=BackoffRule.DOUBLING))
    queue.enqueue("Q1", MESSAGE, 0.0, SENDER, RCPTS)
    delays = [queue.backoff_s("Q1", 0.0, attempts) for attempts in range(1, 8)]
    assert delays == [300.0, 600.0, 1200.0, 2400.0, 4000.0, 4000.0, 4000.0]
    deferral = queue.deferred("Q1", 100.0, attempts=3)
    assert deferral.delay_s == 1200.0
    assert deferral.next_attempt_at == 1500.0


def test_delivery_after_a_deferral_moves_the_file_back_first(tmp_path):
    queue = QueueManager(tmp_path, QueueSettings())
    queue.enqueue("Q1", MESSAGE, 0.0, SENDER, RCPTS)
    retry_at = queue.deferred("Q1", 1.0, attempts=1).next_attempt_at
    work = queue.delivered("Q1", retry_at)
    assert work == Work(cpu={"queue.update": 1}, files_renamed=1, files_deleted=1)
    assert files_in(tmp_path, "deferred") == files_in(tmp_path, "active") == []


def test_every_cpu_unit_has_a_reference_cost():
    costs_file = Path(__file__).parents[1] / "hardware" / "costs" / "queue.yaml"
    costs = yaml.safe_load(costs_file.read_text())
    assert set(costs) == set(CPU_UNITS)
    assert all(isinstance(cost, float) and cost > 0 for cost in costs.values())


def test_next_queue_run_is_at_or_after(tmp_path):
    queue = QueueManager(tmp_path, QueueSettings())
    assert queue.next_queue_run(0.0) == 0.0
    assert queue.next_queue_run(300.0) == 300.0
    assert queue.next_queue_run(300.5) == 600.0


def test_expired_message_must_bounce_and_bounce_is_a_dsn(tmp_path):
    queue = QueueManager(tmp_path, QueueSettings())
    queue.enqueue("Q1", MESSAGE, 10.0, SENDER, RCPTS)
    lifetime_end = 10.0 + 5 * DAY_S
    queue.deferred("Q1", lifetime_end - 1.0, attempts=30)
    assert not queue.expired("Q1", lifetime_end - 1.0)
    assert queue.expired("Q1", lifetime_end)
    with pytest.raises(ValueError, match="bounce it instead"):
        queue.deferred("Q1", lifetime_end, attempts=31)
    size = len(ENVELOPE) + len(MESSAGE)
    bounce = queue.bounce("Q1", lifetime_end)
    assert bounce.decision is QueueDecision.BOUNCED
    assert bounce.recipient == SENDER
    assert bounce.reason == "bounced Q1 to bob@example.org: queued 5.00 days"
    assert bounce.work == Work(
        cpu={"queue.update": 1, "queue.bounce": 1, "queue.byte": size},
        reads=(("queue/Q1", size),),
        files_renamed=1,  # deferred -> active for the last attempt
        files_deleted=1,
    )
    assert files_in(tmp_path, "deferred") == files_in(tmp_path, "active") == []
    assert queue.pending() == 0
    assert queue.bounced_count == 1

    notice = email.message_from_bytes(bounce.message)
    assert notice["To"] == SENDER
    assert notice["Subject"] == "Undelivered Mail Returned to Sender"
    assert notice["Date"] == "Sat, 10 Mar 2007 00:00:10 GMT"
    assert notice.get_content_type() == "multipart/report"
    assert notice.get_param("report-type") == "delivery-status"
    parts = notice.get_payload()
    assert [part.get_content_type() for part in parts] == [
        "text/plain",
        "message/delivery-status",
        "text/rfc822-headers",
    ]
    status = parts[1].get_payload()  # per-message block, then one per recipient
    assert status[0]["Reporting-MTA"] == "dns; mail.example.edu"
    assert status[0]["Arrival-Date"] == "Mon, 05 Mar 2007 00:00:10 GMT"
    assert [block["Final-Recipient"] for block in status[1:]] == [
        f"rfc822; {rcpt}" for rcpt in RCPTS
    ]
    assert {block["Status"] for block in status[1:]} == {"4.4.7"}
    assert {block["Action"] for block in status[1:]} == {"failed"}
    assert parts[2].get_payload() == (
        "From: bob@example.org\nTo: alice@example.edu\nSubject: lunch\n"
    )


def test_bounce_before_expiry_raises_and_null_sender_goes_to_postmaster(tmp_path):
    queue = QueueManager(tmp_path, QueueSettings(maximal_queue_lifetime_s=3600.0))
    queue.enqueue("Q1", MESSAGE, 0.0, "", RCPTS)
    with pytest.raises(ValueError, match="defer it instead"):
        queue.bounce("Q1", 3599.0)
    bounce = queue.bounce("Q1", 3600.0)
    assert bounce.recipient == "postmaster"
    assert bounce.work.files_renamed == 0  # it was still active
    assert email.message_from_bytes(bounce.message)["To"] == "postmaster"


@pytest.mark.parametrize("queue_id", ["", "../etc", "a/b", ".hidden", "x" * 65])
def test_unsafe_queue_ids_are_refused(tmp_path, queue_id):
    queue = QueueManager(tmp_path, QueueSettings())
    with pytest.raises(ValueError, match="queue id"):
        queue.enqueue(queue_id, MESSAGE, 0.0)


def test_bad_arguments_raise(tmp_path):
    queue = QueueManager(tmp_path, QueueSettings())
    queue.enqueue("Q1", MESSAGE, 0.0, SENDER, RCPTS)
    with pytest.raises(ValueError, match="already queued"):
        queue.enqueue("Q1", MESSAGE, 0.0)
    with pytest.raises(ValueError, match="attempts=0"):
        queue.deferred("Q1", 1.0, attempts=0)
    with pytest.raises(ValueError, match="newline"):
        queue.enqueue("Q2", MESSAGE, 0.0, "a@b\nR evil@x")
    with pytest.raises(ValueError, match="not queued"):
        queue.bounce("nope", 1.0)
    assert queue.pending() == 1


def test_messages_are_conserved_over_random_outcomes(tmp_path):
    """accepted = delivered + bounced + still queued, and the files agree."""
    rng = np.random.default_rng(2007)
    settings = QueueSettings(maximal_queue_lifetime_s=4 * 3600.0)
    queue = QueueManager(tmp_path, settings)
    retries: list[tuple[float, str, int]] = []
    for n in range(200):
        now = float(n * 30)
        queue_id = f"Q{n:05X}"
        body = bytes(rng.integers(32, 127, size=int(rng.integers(10, 2000))))
        queue.enqueue(queue_id, b"Subject: x\n\n" + body, now, SENDER, RCPTS[:1])
        retries.append((now, queue_id, 0))
    total = Work()
    while retries:
        retries.sort()
        now, queue_id, attempts = retries.pop(0)
        if rng.random() < 0.7:
            total += queue.delivered(queue_id, now)
        elif queue.expired(queue_id, now):
            total += queue.bounce(queue_id, now).work
        else:
            deferral = queue.deferred(queue_id, now, attempts + 1)
            total += deferral.work
            if rng.random() < 0.9:  # the rest stays queued at the end
                retries.append((deferral.next_attempt_at, queue_id, attempts + 1))
    on_disk = sum(len(files_in(tmp_path, name)) for name in ("active", "deferred"))
    assert queue.accepted_count == 200
    assert queue.delivered_count + queue.bounced_count + queue.pending() == 200
    assert queue.pending() == on_disk
    assert queue.delivered_count > 0 and queue.pending() > 0
    assert total.files_deleted == queue.delivered_count + queue.bounced_count
