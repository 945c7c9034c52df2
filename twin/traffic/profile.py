"""Week profiles: how a traffic class's mail is spread over the 168 hours of a week.

Twins the weekly rhythm of a campus mail system: legitimate inbound mail and the
users' outbound mail follow working hours and weekdays, spam from botnets is
flatter (bots run day and night, on every continent). A profile is 168 weights,
one per hour of the week, Monday 00:00-01:00 first, normalised to sum 1.

Arrivals of a class are a non-homogeneous Poisson process over its profile with
the mean rate given per week (``arrival_times``): each hour bin gets a Poisson
count with mean ``rate_per_week * weight[h]`` and uniform times inside the bin,
so the expected count over a week equals the weekly rate exactly. A duration
other than a week wraps the profile (hour 168 is Monday 00:00 again), and a
partial last hour gets the matching share of its bin's mean.

Scenario keys read (through ``twin.scenario``): ``traffic.*.profile``, either a
built-in name (``PROFILES``) or a list of 168 non-negative numbers.

Raises ``ValueError`` naming the traffic class for an unknown profile name or
bad weights (not 168 numbers, a negative or non-finite one, all zero).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

HOURS_PER_WEEK = 168
HOUR_S = 3600.0
WEEK_S = HOURS_PER_WEEK * HOUR_S

# Relative hourly weights, hour 0 = 00:00-01:00 local time. These are
# assumptions shaped after typical campus mail logs of the era (a morning rise,
# a lunch dip, a working-day plateau, students active into the evening,
# weekends at roughly a third of a weekday); only the shape matters, each
# profile is normalised.
_CAMPUS_WEEKDAY = (
    0.35, 0.25, 0.20, 0.18, 0.18, 0.25, 0.45, 0.80, 1.40, 2.00, 2.30, 2.30,
    2.00, 2.10, 2.20, 2.10, 1.90, 1.50, 1.10, 0.95, 0.90, 0.85, 0.70, 0.50,
)  # fmt: skip
_CAMPUS_WEEKEND = (
    0.35, 0.28, 0.22, 0.20, 0.20, 0.22, 0.28, 0.35, 0.45, 0.60, 0.70, 0.75,
    0.75, 0.75, 0.75, 0.72, 0.70, 0.65, 0.60, 0.60, 0.60, 0.55, 0.50, 0.42,
)  # fmt: skip
# Users sending: sharper working-day peak, a student evening shoulder.
_OUTBOUND_WEEKDAY = (
    0.30, 0.18, 0.10, 0.06, 0.05, 0.06, 0.15, 0.45, 1.30, 2.20, 2.60, 2.50,
    2.00, 2.30, 2.50, 2.40, 2.10, 1.60, 1.10, 1.00, 1.05, 1.00, 0.80, 0.55,
)  # fmt: skip
_OUTBOUND_WEEKEND = (
    0.30, 0.20, 0.12, 0.07, 0.05, 0.05, 0.08, 0.15, 0.30, 0.50, 0.65, 0.70,
    0.70, 0.70, 0.70, 0.70, 0.65, 0.60, 0.60, 0.65, 0.70, 0.65, 0.55, 0.40,
)  # fmt: skip
# Botnet spam: nearly flat, a mild swell in the (US) afternoon and evening when
# home PCs are switched on.
_SPAM_DAY = (
    0.90, 0.88, 0.85, 0.85, 0.85, 0.88, 0.92, 0.97, 1.02, 1.05, 1.08, 1.10,
    1.10, 1.10, 1.10, 1.10, 1.08, 1.08, 1.07, 1.05, 1.02, 1.00, 0.97, 0.93,
)  # fmt: skip
_SPAM_WEEKEND = tuple(0.95 * w for w in _SPAM_DAY)

_BUILT_IN: dict[str, tuple[float, ...]] = {
    "campus-weekday": _CAMPUS_WEEKDAY * 5 + _CAMPUS_WEEKEND * 2,
    "outbound-campus": _OUTBOUND_WEEKDAY * 5 + _OUTBOUND_WEEKEND * 2,
    "spam-flat": _SPAM_DAY * 5 + _SPAM_WEEKEND * 2,
    "flat": (1.0,) * HOURS_PER_WEEK,
}

PROFILES: Mapping[str, tuple[float, ...]] = MappingProxyType(_BUILT_IN)
"""Built-in profiles by name: 168 raw (unnormalised) weights each."""


@dataclass(frozen=True, slots=True)
class WeekProfile:
    """168 hourly shares of a week (sum 1), Monday 00:00 first."""

    name: str
    shares: tuple[float, ...]

    @classmethod
    def named(cls, name: str, traffic_class: str) -> WeekProfile:
        """The built-in profile *name*, for *traffic_class* (named in errors)."""
        try:
            weights = PROFILES[name]
        except KeyError:
            allowed = ", ".join(sorted(PROFILES))
            raise ValueError(
                f"{traffic_class} profile: unknown name {name!r} (allowed: {allowed})"
            ) from None
        return cls.from_weights(weights, traffic_class, name=name)

    @classmethod
    def from_weights(
        cls, weights: Sequence[float], traffic_class: str, name: str = "custom"
    ) -> WeekProfile:
        """A profile from 168 non-negative weights, not all zero."""
        if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence):
            raise ValueError(
                f"{traffic_class} profile: expected a name or 168 weights, "
                f"got {type(weights).__name__}"
            )
        if len(weights) != HOURS_PER_WEEK:
            raise ValueError(
                f"{traffic_class} profile: expected {HOURS_PER_WEEK} hourly weights, "
                f"got {len(weights)}"
            )
        values = []
        for hour, weight in enumerate(weights):
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise ValueError(
                    f"{traffic_class} profile: weight of hour {hour} is {weight!r}, "
                    "not a number"
                )
            value = float(weight)
            if not math.isfinite(value) or value < 0.0:
                raise ValueError(
                    f"{traffic_class} profile: weight of hour {hour} is {weight!r}, "
                    "allowed: finite and >= 0"
                )
            values.append(value)
        total = math.fsum(values)
        if total <= 0.0:
            raise ValueError(f"{traffic_class} profile: all 168 weights are zero")
        return cls(name=name, shares=tuple(v / total for v in values))

    @classmethod
    def resolve(
        cls, spec: str | Sequence[float] | WeekProfile, traffic_class: str
    ) -> WeekProfile:
        """A built-in name, 168 weights, or a profile already built."""
        if isinstance(spec, WeekProfile):
            return spec
        if isinstance(spec, str):
            return cls.named(spec, traffic_class)
        return cls.from_weights(spec, traffic_class)

    def share(self, hour_of_week: int) -> float:
        """Share of the week's mail in hour *hour_of_week* (wraps past 168)."""
        return self.shares[hour_of_week % HOURS_PER_WEEK]

    def expected_count(self, rate_per_s: float, duration_s: float) -> float:
        """Mean number of arrivals in [0, duration_s) at *rate_per_s* (week mean)."""
        per_week = rate_per_s * WEEK_S
        full_hours = int(duration_s // HOUR_S)
        weeks, rest = divmod(full_hours, HOURS_PER_WEEK)
        total = weeks * 1.0 + math.fsum(self.shares[:rest])
        tail = duration_s - full_hours * HOUR_S
        if tail > 0.0:
            total += self.shares[rest] * tail / HOUR_S
        return per_week * total


def arrival_times(
    profile: WeekProfile,
    rate_per_s: float,
    hour_index: int,
    span_s: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Sorted arrival times (s since the start) in hour *hour_index*.

    *span_s* (0 < span_s <= 3600) is how much of the hour is simulated; the
    bin's Poisson mean is scaled by ``span_s / 3600``. Draws one Poisson count
    and that many uniforms from *rng*.
    """
    if not 0.0 < span_s <= HOUR_S:
        raise ValueError(f"span_s(={span_s}) must be in (0, {HOUR_S}]")
    mean = rate_per_s * WEEK_S * profile.shares[hour_index % HOURS_PER_WEEK]
    mean *= span_s / HOUR_S
    count = int(rng.poisson(mean))
    times = rng.random(count)
    times *= span_s
    times += hour_index * HOUR_S
    times.sort()
    return times
