"""Week profiles and the non-homogeneous Poisson arrivals over them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twin.traffic.profile import (
    HOUR_S,
    HOURS_PER_WEEK,
    PROFILES,
    WEEK_S,
    WeekProfile,
    arrival_times,
)


def _hour_share(profile: WeekProfile, days: range, hours: range) -> float:
    """Mean share per hour over the given days of the week and hours of day."""
    cells = [profile.shares[d * 24 + h] for d in days for h in hours]
    return sum(cells) / len(cells)


def test_built_in_profiles_are_168_normalised_shares():
    assert {"campus-weekday", "outbound-campus", "spam-flat"} <= set(PROFILES)
    for name in PROFILES:
        profile = WeekProfile.named(name, "legit")
        assert profile.name == name
        assert len(profile.shares) == HOURS_PER_WEEK
        assert math.isclose(sum(profile.shares), 1.0, rel_tol=1e-12)
        assert min(profile.shares) > 0.0


def test_campus_profiles_follow_working_hours_and_weekdays():
    for name in ("campus-weekday", "outbound-campus"):
        profile = WeekProfile.named(name, "legit")
        working = _hour_share(profile, range(5), range(9, 17))
        night = _hour_share(profile, range(7), range(0, 6))
        weekend_day = _hour_share(profile, range(5, 7), range(9, 17))
        assert working > 5 * night
        assert working > 2 * weekend_day


def test_spam_profile_is_flatter_than_legit():
    spam = WeekProfile.named("spam-flat", "spam")
    legit = WeekProfile.named("campus-weekday", "legit")
    assert max(spam.shares) / min(spam.shares) < 1.5
    assert max(legit.shares) / min(legit.shares) > 10


def test_custom_weights_are_normalised():
    weights = [0.0] * 167 + [2.0]
    profile = WeekProfile.from_weights(weights, "spam")
    assert profile.shares[-1] == 1.0
    assert profile.share(167) == 1.0
    assert profile.share(168) == 0.0  # wraps to Monday 00:00
    assert profile.name == "custom"
    assert WeekProfile.resolve(profile, "spam") is profile
    assert WeekProfile.resolve("flat", "spam").shares == (1 / 168,) * 168


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([1.0] * 24, "expected 168 hourly weights, got 24"),
        ([1.0] * 167 + [-1.0], "weight of hour 167 is -1.0"),
        ([1.0] * 167 + [float("nan")], "weight of hour 167 is nan"),
        ([1.0] * 167 + ["x"], "weight of hour 167 is 'x', not a number"),
        ([0] * 168, "all 168 weights are zero"),
        ("campus", "unknown name 'campus'"),
        (42, "expected a name or 168 weights, got int"),
    ],
)
def test_bad_profiles_name_the_class(weights, message):
    with pytest.raises(ValueError) as info:
        WeekProfile.resolve(weights, "outbound")
    assert str(info.value).startswith("outbound profile: ")
    assert message in str(info.value)


def test_expected_count_equals_weekly_rate_and_wraps():
    profile = WeekProfile.named("campus-weekday", "legit")
    rate = 31_000 / WEEK_S
    assert math.isclose(profile.expected_count(rate, WEEK_S), 31_000)
    assert math.isclose(profile.expected_count(rate, 2 * WEEK_S), 62_000)
    day_and_half = 31_000 * (sum(profile.shares[:36]) + profile.shares[36] / 2)
    assert math.isclose(profile.expected_count(rate, 36.5 * HOUR_S), day_and_half)
    wrapped = 31_000 * (1 + sum(profile.shares[:3]))
    assert math.isclose(profile.expected_count(rate, WEEK_S + 3 * HOUR_S), wrapped)


def test_arrival_times_are_sorted_inside_the_bin():
    profile = WeekProfile.named("spam-flat", "spam")
    rng = np.random.default_rng(3)
    times = arrival_times(profile, 76_000 / WEEK_S, 170, 1800.0, rng)
    assert len(times) > 100
    assert np.all(np.diff(times) >= 0)
    assert times[0] >= 170 * HOUR_S
    assert times[-1] < 170 * HOUR_S + 1800.0


def test_weekly_count_mean_over_seeds_matches_the_rate():
    """Mean over 60 seeds of a week's count, within 4 sigma of Poisson."""
    profile = WeekProfile.named("campus-weekday", "legit")
    rate_per_week = 5_000.0
    seeds = 60
    totals = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        totals.append(
            sum(
                len(arrival_times(profile, rate_per_week / WEEK_S, h, HOUR_S, rng))
                for h in range(HOURS_PER_WEEK)
            )
        )
    sigma_of_mean = math.sqrt(rate_per_week / seeds)
    assert abs(np.mean(totals) - rate_per_week) < 4 * sigma_of_mean
    # Week-to-week spread is Poisson too: variance near the mean.
    assert 0.5 * rate_per_week < np.var(totals, ddof=1) < 2.0 * rate_per_week


def test_partial_hour_scales_the_mean():
    profile = WeekProfile.named("flat", "spam")
    rate = 3600.0 * 168 / WEEK_S  # 3,600 per hour on a flat profile
    rng = np.random.default_rng(11)
    counts = [len(arrival_times(profile, rate, 0, 900.0, rng)) for _ in range(40)]
    expected = 900.0  # a quarter of the hour
    assert abs(np.mean(counts) - expected) < 4 * math.sqrt(expected / 40)


@pytest.mark.parametrize("span", [0.0, -1.0, 3600.5])
def test_arrival_span_is_checked(span):
    profile = WeekProfile.named("flat", "spam")
    with pytest.raises(ValueError, match=r"span_s\(="):
        arrival_times(profile, 1.0, 0, span, np.random.default_rng(0))
