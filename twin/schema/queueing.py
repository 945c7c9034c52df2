"""The ``kind: queueing`` scenario: an abstract open queueing network.

Used to validate the engine against queueing theory (M/M/1, M/M/c, M/D/1,
M/G/1, Jackson networks)::

    kind: queueing
    name: mm4
    seed: 1
    duration: 200000s
    warmup: 20000s
    arrivals: {to: s1, rate: 3.2/s}          # Poisson; a list for several
    stations:
      s1: {servers: 4, service: {dist: exponential, mean: 1s},
           next: {s2: 0.3, exit: 0.7}}
      s2: {servers: 1, service: {dist: deterministic, mean: 0.5s}, next: exit}

Cross-references (``to``, ``next``) and routing sums are checked by
``twin.scenario`` so that each problem is reported at its own line.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator

from twin.schema.common import Duration, Output, PositiveDuration, Rate, Strict
from twin.units import parse_duration

EXIT = "exit"
"""The routing target that leaves the network."""

DISTRIBUTIONS = (
    "exponential",
    "deterministic",
    "erlang",
    "lognormal",
    "uniform",
    "empirical",
)

_NEEDS: dict[str, tuple[str, ...]] = {
    "exponential": ("mean",),
    "deterministic": ("mean",),
    "erlang": ("mean", "k"),
    "lognormal": ("mean", "cv"),
    "uniform": ("low", "high"),
    "empirical": ("values",),
}


def _durations(values: object) -> object:
    if isinstance(values, list):
        return [parse_duration(value) for value in values]
    return values


class Service(Strict):
    """A service-time distribution (all times in seconds)."""

    dist: Literal[
        "exponential", "deterministic", "erlang", "lognormal", "uniform", "empirical"
    ]
    mean: PositiveDuration | None = None
    k: int | None = Field(default=None, ge=1)
    cv: float | None = Field(default=None, gt=0)
    low: Duration | None = None
    high: Duration | None = None
    values: Annotated[list[float], BeforeValidator(_durations)] | None = None

    @model_validator(mode="after")
    def _parameters_fit(self) -> Service:
        needed = _NEEDS[self.dist]
        given = {
            name
            for name in ("mean", "k", "cv", "low", "high", "values")
            if getattr(self, name) is not None
        }
        missing = [name for name in needed if name not in given]
        if missing:
            raise ValueError(
                f"{self.dist} needs {', '.join(needed)} (missing {', '.join(missing)})"
            )
        extra = sorted(given - set(needed))
        if extra:
            raise ValueError(
                f"{self.dist} takes only {', '.join(needed)} "
                f"(remove {', '.join(extra)})"
            )
        if self.dist == "uniform" and not self.low < self.high:  # type: ignore[operator]
            raise ValueError(
                f"uniform needs low < high (got {self.low} and {self.high})"
            )
        if self.dist == "empirical":
            if not self.values or any(value < 0 for value in self.values):
                raise ValueError("empirical needs a non-empty list of durations >= 0")
        return self


def _route(value: object) -> object:
    if isinstance(value, str):
        return {value: 1.0}
    return value


class Station(Strict):
    """A pool of identical FCFS servers and where a job goes after it."""

    servers: int = Field(default=1, ge=1)
    service: Service
    next: Annotated[
        dict[str, Annotated[float, Field(ge=0.0, le=1.0)]], BeforeValidator(_route)
    ] = Field(default_factory=lambda: {EXIT: 1.0})


class Arrival(Strict):
    """A Poisson stream of jobs entering the network at station *to*."""

    to: str
    rate: Rate
    name: str | None = None
    """The job class recorded in jobs.parquet (default: ``to``)."""


def _listify(value: object) -> object:
    return [value] if isinstance(value, dict) else value


class QueueingScenario(Strict):
    """The whole ``kind: queueing`` scenario."""

    kind: Literal["queueing"]
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    seed: int = Field(default=1, ge=0)
    duration: PositiveDuration
    warmup: Duration = 0.0
    arrivals: Annotated[list[Arrival], BeforeValidator(_listify), Field(min_length=1)]
    stations: dict[str, Station] = Field(min_length=1)
    output: Output = Field(default_factory=Output)
