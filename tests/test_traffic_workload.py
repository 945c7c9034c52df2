"""The workload generator: a week of campus mail as message specs."""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import zlib
from collections import Counter
from itertools import islice

import numpy as np
import pytest

from twin.traffic.population import Population, PopulationSettings, campus_usernames
from twin.traffic.profile import HOUR_S, WEEK_S, WeekProfile
from twin.traffic.workload import (
    KINDS,
    MessageSpec,
    TrafficSettings,
    generate,
    stream_names,
)

INTERNAL = ipaddress.ip_network("10.20.0.0/16")


def streams(seed: int):
    """A stream factory: one Generator per name, derived from *seed*."""

    def stream(name: str) -> np.random.Generator:
        return np.random.default_rng([seed, zlib.crc32(name.encode())])

    return stream


def without_id(spec: MessageSpec) -> MessageSpec:
    return dataclasses.replace(spec, msg_id=0)


@pytest.fixture(scope="module")
def population() -> Population:
    return Population(PopulationSettings(), np.random.default_rng(2007))


@pytest.fixture(scope="module")
def week(population) -> list[MessageSpec]:
    return list(generate(TrafficSettings(), population, WEEK_S, streams(1)))


@pytest.fixture(scope="module")
def by_kind(week) -> dict[str, list[MessageSpec]]:
    return {kind: [s for s in week if s.kind == kind] for kind in KINDS}


# --- population ------------------------------------------------------------


def test_population_looks_like_a_campus(population):
    names = population.usernames
    assert len(names) == 1400 == len(set(names))
    assert all(n.isalpha() and n.islower() and len(n) <= 8 for n in names)
    assert names[:3] == ("jsmith", "mhill", "sbennett")
    assert campus_usernames(1400) == names  # not random: a function of the count
    assert population.addresses[0] == "jsmith@ece.example.edu"
    assert population.password_of("jsmith") == population.passwords[0]
    assert all(len(p) == 8 for p in population.passwords)
    assert len(set(population.passwords)) > 1390
    assert population.greytraps[0] == "jdoe1@ece.example.edu"
    assert not any(population.is_user(t.split("@")[0]) for t in population.greytraps)
    workstations = population.workstation_ips
    assert all(ipaddress.ip_address(ip) in INTERNAL for ip in workstations)
    assert math.isclose(population.popularity.sum(), 1.0)
    assert population.popularity.max() > 20 * np.median(population.popularity)


def test_population_passwords_come_from_the_generator():
    a = Population(PopulationSettings(users=50), np.random.default_rng(1))
    b = Population(PopulationSettings(users=50), np.random.default_rng(1))
    c = Population(PopulationSettings(users=50), np.random.default_rng(2))
    assert a.passwords == b.passwords != c.passwords
    assert a.usernames == c.usernames
    assert np.array_equal(a.popularity, b.popularity)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"users": 0}, r"users\(=0\) must be in 1..20000"),
        ({"local_domain": "ECE"}, "local_domain"),
        ({"internal_networks": ("10.0.0.0/33",)}, "is not a network"),
        ({"internal_networks": ("10.0.0.0/24",)}, "too few for 1400 users"),
        ({"popularity_zipf": -1.0}, r"popularity_zipf\(=-1.0\)"),
        ({"greytrap_locals": ("Trap",)}, "greytrap_locals"),
    ],
)
def test_bad_population_settings(changes, message):
    with pytest.raises(ValueError, match=message):
        PopulationSettings(**changes)


def test_greytrap_may_not_be_a_user():
    settings = PopulationSettings(greytrap_locals=("jsmith",))
    with pytest.raises(ValueError, match="'jsmith' is the login name of user 0"):
        Population(settings, np.random.default_rng(0))


# --- counts and time shape ---------------------------------------------------


def test_weekly_counts_match_the_rates(by_kind):
    settings = TrafficSettings()
    for kind, per_week in (("legit", 31_000), ("spam", 76_000), ("outbound", 11_000)):
        assert math.isclose(settings.per_week(kind), per_week)
        assert math.isclose(settings.expected_count(kind, WEEK_S), per_week)
        assert abs(len(by_kind[kind]) - per_week) < 4 * math.sqrt(per_week)
    inbound = len(by_kind["legit"]) + len(by_kind["spam"])
    assert 0.69 < len(by_kind["spam"]) / inbound < 0.73  # ~71 % offered spam


def test_specs_come_in_arrival_order_with_increasing_ids(week):
    assert [s.msg_id for s in week] == list(range(1, len(week) + 1))
    times = [s.arrival_s for s in week]
    assert times == sorted(times)
    assert 0.0 <= times[0] and times[-1] < WEEK_S


def test_legit_and_outbound_follow_working_hours_spam_is_flatter(by_kind):
    def working_over_night(specs):
        hours = np.array([int(s.arrival_s // HOUR_S) for s in specs])
        hour_of_day = hours % 24
        working = np.sum((hours < 120) & (hour_of_day >= 9) & (hour_of_day < 17)) / 40
        night = np.sum(hour_of_day < 6) / 42
        return working / night

    assert working_over_night(by_kind["legit"]) > 5
    assert working_over_night(by_kind["outbound"]) > 10
    assert working_over_night(by_kind["spam"]) < 1.5


def test_generation_is_lazy_and_wraps_the_profile(population):
    settings = TrafficSettings()
    # A year-long run yields its first specs at once (built hour by hour).
    first = list(islice(generate(settings, population, 52 * WEEK_S, streams(3)), 5))
    assert len(first) == 5 and first[-1].arrival_s < HOUR_S
    # A 90-minute run: the second hour is half simulated.
    short = list(generate(settings, population, 1.5 * HOUR_S, streams(3)))
    assert short[-1].arrival_s < 1.5 * HOUR_S
    assert [without_id(s) for s in short[:5]] == [without_id(s) for s in first]
    expected = sum(settings.expected_count(k, 1.5 * HOUR_S) for k in KINDS)
    assert abs(len(short) - expected) < 4 * math.sqrt(expected)


# --- sizes and recipients ----------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "median", "mean"),
    [("legit", 6000, 25_000), ("spam", 3000, 4500), ("outbound", 5000, 18_000)],
)
def test_sizes_near_targets_and_within_limits(by_kind, kind, median, mean):
    sizes = np.array([s.size_bytes for s in by_kind[kind]])
    assert abs(np.median(sizes) / median - 1) < 0.05
    assert abs(sizes.mean() / mean - 1) < 0.15
    assert sizes.min() >= 800
    assert sizes.max() <= 10_240_000


def test_sizes_clip_at_the_message_size_limit(population):
    settings = dataclasses.replace(
        TrafficSettings(), legit_size_median_bytes=5e6, max_size_bytes=6_000_000
    )
    specs = list(generate(settings, population, 3 * HOUR_S, streams(4)))
    legit = [s.size_bytes for s in specs if s.kind == "legit"]
    assert max(legit) == 6_000_000
    assert Counter(legit)[6_000_000] > len(legit) // 4


def test_recipients_are_heavy_tailed_unique_and_capped(by_kind, population):
    users = set(population.addresses)
    legit = by_kind["legit"]
    counts = np.array([len(s.recipients) for s in legit])
    # Zipf a = 3: P(1) = 1/zeta(3) = 0.832 (plus a few collapsed duplicates).
    assert 0.82 < np.mean(counts == 1) < 0.85
    assert counts.max() <= 50 and np.any(counts >= 10)
    assert all(len(set(s.recipients)) == len(s.recipients) for s in legit)
    assert all(r in users for s in legit for r in s.recipients)
    # Zipf popularity: the busiest mailbox gets far more than the median one.
    hits = Counter(r for s in legit for r in s.recipients)
    assert hits.most_common(1)[0][1] > 15 * np.median(list(hits.values()))


# --- senders, spam aims, retry ---------------------------------------------------


def test_legit_senders_repeat_spam_bots_rarely_do(by_kind):
    legit_ips = Counter(s.client_ip for s in by_kind["legit"])
    spam_ips = Counter(s.client_ip for s in by_kind["spam"])
    assert len(legit_ips) < 3000
    assert legit_ips.most_common(1)[0][1] > 2000  # the biggest MTA
    assert len(spam_ips) > 0.45 * len(by_kind["spam"])
    assert spam_ips.most_common(1)[0][1] < 15
    for spec in by_kind["legit"] + by_kind["spam"]:
        assert ipaddress.ip_address(spec.client_ip) not in INTERNAL
        assert spec.offsite and spec.auth is None
    assert all(s.helo.startswith(("mail", "smtp.", "mx", "relay.")) for s in
               by_kind["legit"])  # fmt: skip


def test_spam_aims(by_kind, population):
    spam = by_kind["spam"]
    aims = Counter(s.aim for s in spam)
    n = len(spam)
    for aim, share in (("dictionary", 0.03), ("greytrap", 0.01), ("relay", 0.01)):
        sigma = math.sqrt(n * share * (1 - share))
        assert abs(aims[aim] - n * share) < 4 * sigma
    assert all(s.is_spam for s in spam)
    domain = "@" + population.local_domain
    for spec in spam:
        if spec.aim == "greytrap":
            assert spec.recipients[0] in population.greytraps
        elif spec.aim == "relay":
            assert not any(r.endswith(domain) for r in spec.recipients)
        elif spec.aim == "dictionary":
            assert all(r.endswith(domain) for r in spec.recipients)
            assert not population.is_user(spec.recipients[0].split("@")[0])
        else:
            assert all(population.is_user(r.split("@")[0]) for r in spec.recipients)
    forged_local = sum(s.sender.endswith(domain) for s in spam)
    assert abs(forged_local / n - 0.05) < 0.01


def test_retry_policies(by_kind):
    legit = by_kind["legit"]
    assert all(s.retry is not None and s.retry.first_attempt_s == s.arrival_s
               for s in legit)  # fmt: skip
    per_mta = {s.source_index: s.retry.policy.name for s in legit}
    names = Counter(per_mta.values())
    total = len(per_mta)
    for name, share in (("postfix-2.4", 0.5), ("postfix-2.3", 0.2), ("sendmail", 0.3)):
        assert abs(names[name] / total - share) < 0.05
    spam = by_kind["spam"]
    retrying = [s for s in spam if s.retry is not None]
    assert abs(len(retrying) / len(spam) - 0.15) < 0.015
    assert {s.retry.policy.name for s in retrying} == {"spamware"}
    # Retrying is a property of the bot: all its messages, or none.
    per_bot: dict[int, set[bool]] = {}
    for s in spam:
        per_bot.setdefault(s.source_index, set()).add(s.retry is not None)
    assert all(len(v) == 1 for v in per_bot.values())
    assert all(s.retry is None for s in by_kind["outbound"])


def test_outbound_offsite_clients_authenticate(by_kind, population):
    outbound = by_kind["outbound"]
    offsite = [s for s in outbound if s.offsite]
    n = len(outbound)
    assert abs(len(offsite) - 0.2 * n) < 4 * math.sqrt(n * 0.2 * 0.8)
    bad = 0
    for spec in outbound:
        user = spec.sender.split("@")[0]
        assert spec.sender == f"{user}@{population.local_domain}"
        assert spec.aim == "send" and not spec.is_spam
        if spec.offsite:
            assert ipaddress.ip_address(spec.client_ip) not in INTERNAL
            name, password = spec.auth
            assert name == user
            assert (password == population.password_of(user)) != spec.bad_password
            bad += spec.bad_password
        else:
            assert ipaddress.ip_address(spec.client_ip) in INTERNAL
            assert spec.auth is None and not spec.bad_password
        assert not any(r.endswith("@" + population.local_domain) for r in
                       spec.recipients)  # fmt: skip
    assert 0.015 < bad / len(offsite) < 0.045


# --- determinism and common random numbers -----------------------------------


def test_same_seed_same_specs(population, week):
    again = list(generate(TrafficSettings(), population, 6 * HOUR_S, streams(1)))
    assert again == week[: len(again)]
    other = list(generate(TrafficSettings(), population, 6 * HOUR_S, streams(2)))
    assert other[:50] != again[:50]


def test_mapping_of_streams_is_accepted(population, week):
    mapping = {name: streams(1)(name) for name in stream_names()}
    again = list(generate(TrafficSettings(), population, 2 * HOUR_S, mapping))
    assert again == week[: len(again)]
    del mapping["traffic.spam.pool"]
    with pytest.raises(ValueError, match="'traffic.spam.pool' missing"):
        next(generate(TrafficSettings(), population, 2 * HOUR_S, mapping))


def test_spam_settings_leave_legit_and_outbound_unchanged(population):
    def run(settings):
        specs = list(generate(settings, population, 12 * HOUR_S, streams(5)))
        others = [without_id(s) for s in specs if s.kind != "spam"]
        return others, [s for s in specs if s.kind == "spam"]

    base = TrafficSettings()
    changed = TrafficSettings.from_weekly(
        spam_per_week=150_000,
        spam_profile="flat",
        spam_retry_share=0.5,
        spam_dictionary_share=0.2,
    )
    base_other, base_spam = run(base)
    changed_other, changed_spam = run(changed)
    assert base_other == changed_other
    assert len(changed_spam) > 1.5 * len(base_spam)
    # Changing a share does not shift the spam arrivals or bots either.
    shares = dataclasses.replace(base, spam_dictionary_share=0.3)
    _, share_spam = run(shares)
    assert [s.arrival_s for s in share_spam] == [s.arrival_s for s in base_spam]
    assert [s.client_ip for s in share_spam] == [s.client_ip for s in base_spam]
    assert (
        Counter(s.aim for s in share_spam)["dictionary"]
        > 5 * Counter(s.aim for s in base_spam)["dictionary"]
    )


def test_legit_rate_changes_legit_count(population):
    double = TrafficSettings.from_weekly(legit_per_week=62_000)
    specs = list(generate(double, population, 24 * HOUR_S, streams(6)))
    expected = double.expected_count("legit", 24 * HOUR_S)
    legit = sum(s.kind == "legit" for s in specs)
    assert abs(legit - expected) < 4 * math.sqrt(expected)


# --- settings validation ------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"spam_retry_share": 1.5}, r"spam_retry_share\(=1.5\) must be in \[0.0, 1"),
        ({"legit_rate_per_s": -1.0}, r"legit_rate_per_s\(=-1.0\)"),
        ({"legit_retry_mix": (0.5, 0.5, 0.5)}, "must sum to 1"),
        ({"legit_retry_mix": (0.5, 0.5)}, "must be 3 shares"),
        ({"spam_dictionary_share": 0.6, "spam_relay_share": 0.6}, "must be <= 1"),
        ({"legit_profile": "campus-weekday"}, "legit_profile must be a WeekProfile"),
        ({"max_size_bytes": 500}, r"max_size_bytes\(=500\)"),
        ({"spam_recipients_zipf": 1.0}, r"spam_recipients_zipf\(=1.0\)"),
        ({"spam_bot_count": 0}, r"spam_bot_count\(=0\)"),
        ({"spam_retry_interval_max_s": 60.0}, "spam_retry_interval_max_s"),
    ],
)
def test_bad_settings(changes, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(TrafficSettings(), **changes)


def test_from_weekly_checks_profiles_and_names():
    custom = TrafficSettings.from_weekly(spam_profile=[1.0] * 168)
    assert custom.spam_profile == WeekProfile.named("flat", "spam").__class__(
        "custom", (1 / 168,) * 168
    )
    with pytest.raises(ValueError, match="^spam profile: expected 168"):
        TrafficSettings.from_weekly(spam_profile=[1.0] * 24)
    with pytest.raises(ValueError, match="unknown traffic setting 'spam_rate'"):
        TrafficSettings.from_weekly(spam_rate=3)
    with pytest.raises(ValueError, match=r"outbound_per_week\(=-5\)"):
        TrafficSettings.from_weekly(outbound_per_week=-5)


@pytest.mark.parametrize("duration", [0, -3.0, float("inf")])
def test_bad_duration(population, duration):
    with pytest.raises(ValueError, match="duration_s"):
        generate(TrafficSettings(), population, duration, streams(0))
