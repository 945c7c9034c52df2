"""Quantities written the way people write them: durations, sizes, rates.

- durations: ``7d``, ``90m``, ``25s``, ``250ms``, ``1h30m``, ``3d 10h``, ``1w``,
  or a bare number of seconds;
- sizes: ``9GB``, ``64KiB``, ``512B``, ``1.5TB``, or a bare number of bytes
  (SI prefixes are powers of 1000, IEC prefixes ``Ki``/``Mi``/… powers of 1024);
- bandwidths: ``1Mbit/s``, ``64KiB/s``, or a bare number of bytes per second;
- rates: ``40000/week``, ``3.2/s``, ``120/h``, ``5/min``, or a bare number per
  second.

Every parser returns SI base units (seconds, bytes, per second) as a float and
raises ``ValueError`` whose message says what was found and what is allowed.
"""

from __future__ import annotations

import math
import re

DURATION_UNITS: dict[str, float] = {
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
    "week": 7 * 86400.0,
}

SIZE_UNITS: dict[str, float] = {
    "B": 1.0,
    "KB": 1e3,
    "MB": 1e6,
    "GB": 1e9,
    "TB": 1e12,
    "KiB": 1024.0,
    "MiB": 1024.0**2,
    "GiB": 1024.0**3,
    "TiB": 1024.0**4,
}

RATE_PERIODS: dict[str, float] = {
    "s": 1.0,
    "sec": 1.0,
    "min": 60.0,
    "m": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "w": 7 * 86400.0,
    "week": 7 * 86400.0,
}

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_DURATION_PART = re.compile(rf"\s*({_NUMBER})\s*([a-zA-Z]*)")
_SIZE = re.compile(rf"^\s*({_NUMBER})\s*([a-zA-Z]*)\s*$")
_RATE = re.compile(rf"^\s*({_NUMBER})\s*/\s*([a-zA-Z]+)\s*$")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(number: float, text: object, what: str) -> float:
    if not math.isfinite(number):
        raise ValueError(f"{what} {text!r} is not a finite number")
    return number


def parse_duration(value: object) -> float:
    """Seconds in a duration such as ``7d``, ``90m``, ``3d 10h`` or ``250ms``."""
    if _is_number(value):
        return _finite(float(value), value, "duration")
    if not isinstance(value, str) or not value.strip():
        raise ValueError(
            f"duration {value!r} is not a duration (write e.g. 7d, 90m, 25s, 250ms)"
        )
    text = value.strip()
    total = 0.0
    position = 0
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if not match or match.end() == position:
            raise ValueError(
                f"duration {value!r} is not a duration (write e.g. 7d, 90m, 25s, 250ms)"
            )
        number, unit = match.groups()
        if not unit:
            if match.end() < len(text.rstrip()) or total:
                raise ValueError(
                    f"duration {value!r}: {number} has no unit "
                    f"(use one of {', '.join(DURATION_UNITS)})"
                )
            unit = "s"
        if unit not in DURATION_UNITS:
            raise ValueError(
                f"duration {value!r}: unknown unit {unit!r} "
                f"(use one of {', '.join(DURATION_UNITS)})"
            )
        total += float(number) * DURATION_UNITS[unit]
        position = match.end()
        while position < len(text) and text[position] in " ,":
            position += 1
    return _finite(total, value, "duration")


def parse_size(value: object) -> float:
    """Bytes in a size such as ``9GB``, ``64KiB`` or ``512B``."""
    if _is_number(value):
        return _finite(float(value), value, "size")
    match = _SIZE.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"size {value!r} is not a size (write e.g. 9GB, 64KiB, 512B)")
    number, unit = match.groups()
    unit = unit or "B"
    if unit not in SIZE_UNITS:
        folded = {name.lower(): name for name in SIZE_UNITS}
        hint = folded.get(unit.lower())
        extra = f"; did you mean {hint}?" if hint else ""
        raise ValueError(
            f"size {value!r}: unknown unit {unit!r} "
            f"(use one of {', '.join(SIZE_UNITS)}{extra})"
        )
    return _finite(float(number) * SIZE_UNITS[unit], value, "size")


def parse_rate(value: object) -> float:
    """Events per second in a rate such as ``40000/week``, ``3.2/s``, ``120/h``."""
    if _is_number(value):
        return _finite(float(value), value, "rate")
    match = _RATE.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError(
            f"rate {value!r} is not a rate (write e.g. 40000/week, 3.2/s, 120/h)"
        )
    number, period = match.groups()
    if period not in RATE_PERIODS:
        raise ValueError(
            f"rate {value!r}: unknown period {period!r} "
            f"(use one of {', '.join(RATE_PERIODS)})"
        )
    return _finite(float(number) / RATE_PERIODS[period], value, "rate")


_BITS = {"bit": 1, "kbit": 1e3, "Kbit": 1e3, "Mbit": 1e6, "Gbit": 1e9}


def parse_bandwidth(value: object) -> float:
    """Bytes per second in a bandwidth such as ``1Mbit/s``, ``64KiB/s`` or ``5MB/s``."""
    if _is_number(value):
        return _finite(float(value), value, "bandwidth")
    text = value.strip() if isinstance(value, str) else ""
    if not text.endswith("/s"):
        raise ValueError(
            f"bandwidth {value!r} is not a bandwidth (write e.g. 1Mbit/s, 64KiB/s)"
        )
    amount = text[:-2].strip()
    match = _SIZE.match(amount)
    if match and match.group(2) in _BITS:
        return _finite(
            float(match.group(1)) * _BITS[match.group(2)] / 8, value, "bandwidth"
        )
    try:
        return parse_size(amount)
    except ValueError:
        raise ValueError(
            f"bandwidth {value!r}: unknown unit (use bit, kbit, Mbit, Gbit or a size "
            "unit such as KiB, MB, then /s)"
        ) from None


def format_duration(seconds: float) -> str:
    """A short human form of *seconds*: ``3d 4h``, ``12m 5s``, ``250ms``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    parts = []
    remaining = int(round(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
        if len(parts) == 2:
            break
    return " ".join(parts) or "0s"
