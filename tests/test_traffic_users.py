"""User model: profile distributions, session arrival shape, determinism."""

import collections
import math
from collections.abc import Iterator

import numpy as np
import pytest

from twin.traffic.population import Population, PopulationSettings
from twin.traffic.users import (
    DAY_S,
    ReadingSettings,
    SessionSpec,
    draw_profiles,
    session_arrivals,
)

HOUR = 3600.0


@pytest.fixture(scope="module")
def population():
    return Population(PopulationSettings(users=1400), np.random.default_rng(1))


@pytest.fixture(scope="module")
def small():
    return Population(PopulationSettings(users=200), np.random.default_rng(1))


def test_imap_and_idle_shares_over_seeds(population):
    settings = ReadingSettings()
    imap, idle, keep = [], [], []
    for seed in range(5):
        p = draw_profiles(settings, population, np.random.default_rng(seed))
        imap.append(p.imap.mean())
        idle.append(p.idle[p.imap].mean())
        keep.append(p.keep_on_server[~p.imap].mean())
        assert not p.idle[~p.imap].any() and not p.keep_on_server[p.imap].any()
    assert abs(np.mean(imap) - 0.8) < 0.01
    assert abs(np.mean(idle) - 0.2) < 0.02
    assert abs(np.mean(keep) - 0.3) < 0.04
    p = draw_profiles(ReadingSettings(imap_share=0.5), population,
                      np.random.default_rng(0))
    assert abs(p.imap.mean() - 0.5) < 0.05


def test_mailbox_counts_are_lognormal_and_heavy_tailed(population):
    settings = ReadingSettings()
    logs, maxima, waiting = [], [], []
    for seed in range(5):
        p = draw_profiles(settings, population, np.random.default_rng(seed))
        kept = p.mailbox_messages[p.imap | p.keep_on_server]
        logs.append(np.log(np.maximum(kept, 1)))
        maxima.append(kept.max())
        waiting.append(p.mailbox_messages[~p.imap & ~p.keep_on_server].mean())
        assert p.mailbox_messages.max() <= settings.mailbox_messages_max
    allv = np.concatenate(logs)
    assert abs(allv.mean() - math.log(800)) < 0.05
    assert abs(allv.std() - 1.5) < 0.05
    # Heavy tail: the biggest of 1,400 mailboxes holds tens of thousands.
    assert min(maxima) > 20_000
    assert abs(np.mean(waiting) - 2.0) < 0.3  # POP3 users who delete
    smaller = draw_profiles(ReadingSettings(mailbox_messages_median=100.0), population,
                            np.random.default_rng(0))
    base = draw_profiles(settings, population, np.random.default_rng(0))
    assert smaller.mailbox_messages.sum() < base.mailbox_messages.sum() / 4


def test_changing_one_share_keeps_the_other_draws(population):
    a = draw_profiles(ReadingSettings(), population, np.random.default_rng(3))
    b = draw_profiles(ReadingSettings(imap_share=0.6), population,
                      np.random.default_rng(3))
    assert np.array_equal(a.start_h, b.start_h)
    assert np.array_equal(a.size_median_bytes, b.size_median_bytes)
    assert not np.array_equal(a.imap, b.imap)


def test_habits_respect_the_means(population):
    p = draw_profiles(ReadingSettings(), population, np.random.default_rng(0))
    assert abs(p.read_now.mean() - 0.6) < 0.03
    assert abs(p.delete.mean() - 0.3) < 0.03
    assert np.all(p.delete + p.move <= 1.0 + 1e-12)
    fixed = draw_profiles(ReadingSettings(delete_mean=0.0, move_mean=1.0), population,
                          np.random.default_rng(0))
    assert np.all(fixed.delete == 0.0) and np.all(fixed.move == 1.0)


def test_sessions_are_lazy_ordered_and_deterministic(small):
    settings = ReadingSettings()
    stream = session_arrivals(settings, small, 2 * DAY_S, np.random.default_rng(7))
    assert isinstance(stream, Iterator)
    first = list(stream)
    again = list(session_arrivals(settings, small, 2 * DAY_S,
                                  np.random.default_rng(7)))
    assert first == again
    assert [s.session_id for s in first] == list(range(1, len(first) + 1))
    times = [s.start_s for s in first]
    assert times == sorted(times) and times[-1] < 2 * DAY_S
    assert all(isinstance(s, SessionSpec) for s in first)
    other = list(session_arrivals(settings, small, 2 * DAY_S,
                                  np.random.default_rng(8)))
    assert other != first


def test_week_shape_and_volume(population):
    settings = ReadingSettings()
    rng = np.random.default_rng(11)
    per_day = collections.Counter()
    per_hour = collections.Counter()
    kinds = collections.Counter()
    for spec in session_arrivals(settings, population, 7 * DAY_S, rng):
        day = int(spec.start_s // DAY_S)
        per_day[day] += 1
        if day < 5:
            per_hour[int(spec.start_s % DAY_S // HOUR)] += 1
        kinds[(spec.protocol, spec.kind)] += 1
    weekday = np.mean([per_day[d] for d in range(5)])
    weekend = np.mean([per_day[d] for d in (5, 6)])
    # ~1,400 users x ~40 checks a weekday; weekends much lighter.
    assert 30 * 1400 < weekday < 50 * 1400
    assert weekend < weekday / 2
    working = np.mean([per_hour[h] for h in range(9, 17)])
    night = np.mean([per_hour[h] for h in range(0, 6)])
    assert working > 4 * night > 0  # always-on clients keep nights non-empty
    assert kinds[("pop3", "idle")] == 0
    assert kinds[("imap", "idle")] > 0 and kinds[("imap", "open")] > 0
    assert kinds[("imap", "poll")] > 5 * kinds[("pop3", "poll")]


def test_poll_intervals_follow_the_settings(small):
    settings = ReadingSettings(all_day_share=1.0, evening_share=0.0)
    specs = list(session_arrivals(settings, small, DAY_S, np.random.default_rng(2)))
    by_user = collections.defaultdict(list)
    for spec in specs:
        by_user[spec.user].append(spec)
    for runs in by_user.values():
        if runs[0].kind == "idle":
            assert len(runs) == 1 and runs[0].duration_s == DAY_S
            continue
        step = 600.0 if runs[0].protocol == "imap" else 1800.0
        assert runs[0].kind == "open" and runs[0].start_s == 0.0
        assert [r.start_s for r in runs] == [k * step for k in range(len(runs))]
        assert len(runs) == DAY_S / step
    slower = list(session_arrivals(
        ReadingSettings(all_day_share=1.0, evening_share=0.0,
                        imap_poll_interval_s=1200.0),
        small, DAY_S, np.random.default_rng(2)))
    imap = sum(1 for s in specs if s.protocol == "imap" and s.kind != "idle")
    imap_slow = sum(1 for s in slower if s.protocol == "imap" and s.kind != "idle")
    assert imap_slow * 2 == imap


def test_spec_carries_the_users_habits(small):
    settings = ReadingSettings(flag_sync_messages=50)
    profiles = draw_profiles(settings, small, np.random.default_rng(4))
    for spec in session_arrivals(settings, small, DAY_S, np.random.default_rng(5),
                                 profiles=profiles):
        u = spec.user_index
        assert spec.user == small.usernames[u]
        assert spec.password == small.passwords[u]
        assert spec.protocol == profiles.protocol(u)
        assert spec.read_share == profiles.read_now[u]
        assert spec.delete_share == profiles.delete[u]
        assert spec.keep_on_server == bool(profiles.keep_on_server[u])
        assert spec.flag_sync_messages == 50 and spec.move_folder == "Archive"


@pytest.mark.parametrize("kwargs, field", [
    ({"imap_share": 1.5}, "imap_share"),
    ({"delete_mean": 0.7, "move_mean": 0.5}, "delete_mean"),
    ({"imap_poll_interval_s": 10.0}, "imap_poll_interval_s"),
    ({"mailbox_scale": 0.0}, "mailbox_scale"),
    ({"move_folder": "a/b"}, "move_folder"),
    ({"history_days": -1.0}, "history_days"),
    ({"flag_sync_messages": 2.5}, "flag_sync_messages"),
])
def test_bad_settings_raise(kwargs, field):
    with pytest.raises(ValueError, match=field):
        ReadingSettings(**kwargs)


def test_bad_duration_and_profiles_raise(small, population):
    with pytest.raises(ValueError, match="duration_s"):
        session_arrivals(ReadingSettings(), small, 0, np.random.default_rng(0))
    profiles = draw_profiles(ReadingSettings(), population, np.random.default_rng(0))
    with pytest.raises(ValueError, match="profiles cover 1400"):
        session_arrivals(ReadingSettings(), small, DAY_S, np.random.default_rng(0),
                         profiles=profiles)
