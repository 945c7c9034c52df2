"""What every scenario kind shares: quantity types, the strict base model, output.

Quantities accept the forms of ``twin.units`` (``7d``, ``64KiB``, ``3.2/s``) and
are held in SI base units (seconds, bytes, per second). Models forbid unknown
keys, so a typo is an error with a did-you-mean, never a silently ignored key.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from twin.units import parse_duration, parse_rate, parse_size


def _positive(value: float) -> float:
    if not value > 0:
        raise ValueError(f"must be > 0, got {value:g}")
    return value


def _non_negative(value: float) -> float:
    if value < 0:
        raise ValueError(f"must be >= 0, got {value:g}")
    return value


Duration = Annotated[
    float, BeforeValidator(parse_duration), AfterValidator(_non_negative)
]
"""Seconds, written as ``7d``, ``90m``, ``25s``, ``250ms`` or a number."""

PositiveDuration = Annotated[
    float, BeforeValidator(parse_duration), AfterValidator(_positive)
]
Size = Annotated[float, BeforeValidator(parse_size), AfterValidator(_non_negative)]
"""Bytes, written as ``9GB``, ``64KiB`` or a number."""

Rate = Annotated[float, BeforeValidator(parse_rate), AfterValidator(_positive)]
"""Events per second, written as ``40000/week``, ``3.2/s``, ``120/h`` or a number."""

NonNegativeRate = Annotated[
    float, BeforeValidator(parse_rate), AfterValidator(_non_negative)
]
"""Like ``Rate`` but 0 is allowed (a traffic class turned off)."""

Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class Strict(BaseModel):
    """Base of every scenario model: unknown keys are errors; values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Output(Strict):
    """What a run writes besides summary.json, and how statistics are batched."""

    sample_interval: PositiveDuration = 60.0
    """Simulated seconds between two samples of every resource (resources.parquet)."""
    batches: int = Field(default=30, ge=5, le=1000)
    """Batch-means batches after the warm-up, for the 95% confidence intervals."""
    jobs_table: bool = True
    """Write jobs.parquet (one row per job)."""
