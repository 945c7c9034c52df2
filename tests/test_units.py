"""Quantities as people write them."""

import pytest

from twin.units import format_duration, parse_duration, parse_rate, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("7d", 604800),
        ("90m", 5400),
        ("25s", 25),
        ("250ms", 0.25),
        ("1h30m", 5400),
        ("3d 10h", 3 * 86400 + 36000),
        ("1w", 604800),
        (12, 12),
        (0.5, 0.5),
        ("200000s", 200000),
        ("1.5h", 5400),
        ("2", 2),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("9GB", 9e9),
        ("64KiB", 65536),
        ("512B", 512),
        ("1.5TB", 1.5e12),
        (4096, 4096),
        ("10MiB", 10 * 1024**2),
    ],
)
def test_sizes(text, size):
    assert parse_size(text) == pytest.approx(size)


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("40000/week", 40000 / 604800),
        ("3.2/s", 3.2),
        ("120/h", 1 / 30),
        ("5/min", 5 / 60),
        (2, 2.0),
        ("10/day", 10 / 86400),
    ],
)
def test_rates(text, rate):
    assert parse_rate(text) == pytest.approx(rate)


@pytest.mark.parametrize(
    ("parser", "text", "words"),
    [
        (parse_duration, "7x", "unknown unit 'x'"),
        (parse_duration, "soon", "not a duration"),
        (parse_duration, "3d 4", "has no unit"),
        (parse_size, "9gb", "did you mean GB"),
        (parse_size, "big", "not a size"),
        (parse_rate, "3/fortnight", "unknown period 'fortnight'"),
        (parse_rate, "fast", "not a rate"),
        (parse_duration, True, "not a duration"),
    ],
)
def test_bad_quantities_say_what_is_allowed(parser, text, words):
    with pytest.raises(ValueError, match=words):
        parser(text)


def test_format_duration():
    assert format_duration(3 * 86400 + 4 * 3600 + 5) == "3d 4h"
    assert format_duration(0.25) == "250ms"
    assert format_duration(65) == "1m 5s"
