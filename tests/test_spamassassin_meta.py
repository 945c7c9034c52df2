"""Meta-rule expressions: the safe parser."""

from __future__ import annotations

import pytest

from twin.stages.spamassassin.meta import MetaSyntaxError, parse


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("A && B", {"A": 1, "B": 1}, True),
        ("A && B", {"A": 1}, False),
        ("A || B", {"B": 1}, True),
        ("!A", {}, True),
        ("A && !(B || C)", {"A": 1, "C": 1}, False),
        ("A + B + C > 1", {"A": 1, "C": 1}, True),
        ("A + B + C > 2", {"A": 1, "C": 1}, False),
        ("(A + B) * 2 >= 4", {"A": 1, "B": 1}, True),
        ("A - B == 0", {"A": 1, "B": 1}, True),
        ("A != B", {"A": 1}, True),
        ("A * 3 > 2 && !B", {"A": 1}, True),
        ("__SUB_1 + __SUB_2 < 1", {}, True),
        ("A > 1 || B", {"A": 2}, True),
        ("-A + 2 > 1", {"A": 0}, True),
        ("A / B", {"A": 1}, False),  # division by zero is 0, as Perl's meta guard
    ],
)
def test_evaluate(text, values, expected):
    assert bool(parse(text).evaluate(values)) is expected


def test_precedence_and_before_or():
    # A || B && C  ==  A || (B && C)
    assert parse("A || B && C").evaluate({"A": 1})
    assert not parse("A || B && C").evaluate({"B": 1})


def test_names_are_collected():
    assert parse("A && (B_2 || !__C) + 1 > 0").names == {"A", "B_2", "__C"}


@pytest.mark.parametrize("bad", ["A &&", "(A", "A B", "A & B", "", "A; system(1)"])
def test_syntax_errors(bad):
    with pytest.raises(MetaSyntaxError):
        parse(bad)
