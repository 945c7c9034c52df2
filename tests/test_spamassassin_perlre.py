"""Perl-to-Python regex translation."""

from __future__ import annotations

import pytest

from twin.stages.spamassassin.perlre import (
    PerlRegexError,
    compile_perl,
    split_delimited,
    translate,
)


@pytest.mark.parametrize(
    ("perl", "python"),
    [
        (r"foo\z", r"foo\Z"),
        (r"foo\Z", r"foo(?=\n?\Z)"),
        (r"a(?i)bc(d)e", r"a(?i:bc(d)e)"),
        (r"(x(?i)y)z", r"(x(?i:y))z"),
        (r"\Qa.b*\E+", r"a\.b\*+"),
        (r"[[:alpha:]]+", r"[a-zA-Z]+"),
        (r"a{,3}", r"a\{,3}"),
        (r"(?<n>x)\k<n>", r"(?P<n>x)(?P=n)"),
        (r"a\hb", r"a[ \t]b"),
        (r"\x{41}", r"\x41"),
        (r"a(?#comment)b", r"ab"),
        (r"[]x]", r"[\]x]"),
    ],
)
def test_translate(perl, python):
    assert translate(perl)[0] == python


def test_leading_inline_flags_become_compile_flags():
    regex = compile_perl(r"(?i)viagra")
    assert regex.search(b"VIAGRA")


def test_modifiers_and_semantics():
    assert compile_perl(r"^b", "m").search(b"a\nb")
    assert not compile_perl(r"^b").search(b"a\nb")
    assert compile_perl(r"a.b", "s").search(b"a\nb")
    assert compile_perl(r"a b # comment", "x").search(b"ab")
    assert compile_perl(r"foo$").search(b"foo\n")  # $ before a final newline
    assert not compile_perl(r"foo\z").search(b"foo\n")
    assert compile_perl(r"\d++x").search(b"12x")  # possessive (Python 3.11+)
    assert compile_perl(r"\xe9t\xe9").search("été".encode("latin-1"))


@pytest.mark.parametrize(
    "bad", [r"\p{L}", r"\G", r"(?{ code })", r"(?|a|b)", r"\x{263a}"]
)
def test_untranslatable(bad):
    with pytest.raises(PerlRegexError):
        compile_perl(bad)


def test_split_delimited():
    assert split_delimited(r"/a\/b/i [if-unset: x]") == (r"a\/b", "i", "[if-unset: x]")
    assert split_delimited(r"m{^https?://}i") == (r"^https?://", "i", "")
    assert split_delimited(r"m!a!") == ("a", "", "")
    with pytest.raises(PerlRegexError):
        split_delimited(r"/unterminated")
