"""The rule prefilter: pattern rewriting, necessary literals, identical outcomes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from twin.stages.spamassassin.commands import load_rules
from twin.stages.spamassassin.evals import Scan
from twin.stages.spamassassin.message import ParsedMessage
from twin.stages.spamassassin.prefilter import (
    LiteralCheck,
    TextView,
    TrigramIndex,
    first_octet_pattern,
    header_literals,
    required_factors,
    rule_filter,
    unparse,
)

try:
    from re import _parser as _sre  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    import sre_parse as _sre  # type: ignore[no-redef]

DATA = Path(__file__).parent / "data" / "spamassassin"
TEXTS = [
    b"Subject line\nBuy V-I-A-G-R-A now, cheap pills!\nregular text here\n",
    b"caf\xc3\xa9 \xc3\xa9t\xc3\xa9 viagra &amp; more &#86;iagra\n",
    b"Just a normal note about the meeting at 10:30.\n",
    b"",
]


def _items(pattern: bytes, flags: int = 0) -> list:
    return list(_sre.parse(pattern, flags))


@pytest.mark.parametrize(
    "pattern",
    [
        rb"(?:^|\s)v[i1!|]agra\b",
        rb"(?i)free\s+(?:money|cash){1,3}?",
        rb"[^a-c\w]x*+(?>ab|cd)(?=z)(?<!q)\$\d{2,}",
        rb"(?s:a.b)(?m:^c$)\Z",
    ],
)
def test_unparse_round_trips(pattern):
    original = re.compile(pattern)
    parsed = _items(pattern)
    # The text carries no global flags: they are the compiled pattern's.
    again = re.compile(unparse(parsed).encode("latin-1"), original.flags)
    for text in (b"xx viagra", b"FREE money cash", b"!x$12abz", b"a\nb\nc", b""):
        assert bool(original.search(text)) == bool(again.search(text))


def test_ascii_and_entity_levels_prune_branches():
    regex = re.compile(rb"(?:[vV]|\xc5\xa1|&#86;)iagra", re.I)
    levels = rule_filter(regex, TrigramIndex()).levels
    assert levels[0][0] is regex
    assert b"xc5" not in levels[1][0].pattern
    assert levels[1][0].search(b"&#86;iagra") and levels[1][0].search(b"VIAGRA")
    assert b"x26" not in levels[2][0].pattern
    assert levels[2][0].search(b"Viagra") and not levels[2][0].search(b"iagra")
    # A pattern that needs a high octet cannot match ASCII text at all.
    high = rule_filter(re.compile(rb"(?:[\x80-\xff].?){4}"), TrigramIndex())
    assert high.levels[1][0] is None and high.levels[2][0] is None


def test_factors_are_necessary_and_selective():
    factors = required_factors(_items(rb"\bv[i1!]agra\b", re.I))
    assert factors
    squeeze, best = factors[0]
    assert not squeeze and best == frozenset({b"viagra", b"v1agra", b"v!agra"})
    # Obfuscation separators are looked through in the squeezed text.
    spaced = required_factors(_items(rb"p[\W_]{0,3}h[\W_]{0,3}[e3][\W_]{0,3}n"))
    assert (True, frozenset({b"phen", b"ph3n"})) in spaced
    index = TrigramIndex()
    check = LiteralCheck(best)
    index.add(check.trigrams)
    assert check.present(TextView(b"Cheap V1AGRA here", index))
    assert not check.present(TextView(b"via a graph", index))


def test_header_literals():
    assert header_literals(re.compile(rb"bounce|daemon")) == (b"bounce", b"daemon")
    assert header_literals(re.compile(rb"^\S+$")) == ()


@pytest.fixture(scope="module")
def shipped():
    return load_rules()


def test_every_shipped_rule_level_agrees_with_its_pattern(shipped):
    """Each level's pattern and checks never miss a match of the rule's regex."""
    rules = shipped
    texts = list(TEXTS)
    for name in ("gtube.eml", "nice_001.eml", "nice_mime1.eml", "spam_001.eml"):
        msg = ParsedMessage((DATA / name).read_bytes())
        texts.append(b"".join(msg.body_lines))
        texts.append(b"".join(msg.rawbody_lines))
    for text in texts:
        view = TextView(text, rules.trigrams)
        for rule in rules.body_rules + rules.rawbody_rules:
            found = rule.regex.search(text)
            fast = rule.filter.pattern_for(view)
            if found is None:
                assert fast is None or fast.search(text) is None, rule.name
            else:
                assert fast is not None, rule.name
                assert fast.search(text).span() == found.span(), rule.name


def test_meta_propagation_matches_walking_every_meta(shipped):
    rules = shipped
    msg = ParsedMessage((DATA / "spam_001.eml").read_bytes())
    scan = Scan(msg=msg)
    hits = rules.run(scan)
    plain = {n: v for n, v in hits.items() if n not in {m.name for m in rules.metas}}
    walked = dict(plain)
    for meta in rules.metas:  # the reference: every meta, in order
        value = meta.expression.evaluate(walked)
        if value:
            walked[meta.name] = float(value)
    assert list(hits.items()) == list(walked.items())


def test_first_octet_pattern_finds_the_same_matches() -> None:
    import random

    cases = [
        (rb"(?!phen)(?:p|&#112;|\xd1)hen", re.I),
        (rb"(?:^|\s)fo+", re.M),
        (rb"a*b", 0),
        (rb"(?i:p)h(e)n", 0),
        (rb"\bPay\b", re.I),
        (rb"(?<=x)ab|c?d", 0),
        (rb"(a|)b\1", 0),
        (rb"(?:x{0,2}|y)+z", 0),
        (rb"[^\s&]{2}&", 0),
        (rb"\d+\W", 0),
        (rb"(?>ab|a)c", 0),
    ]
    rnd = random.Random(7)
    alphabet = [b"a", b"b", b"c", b"d", b"x", b"y", b"z", b"p", b"P", b"h", b"H",
                b"e", b"n", b"&#112;", b"\xd1", b" ", b"\n", b"&", b"1", b"f", b"o",
                b"O", b"ay", b"AY"]
    made = 0
    for pattern, flags in cases:
        regex = re.compile(pattern, flags)
        fast = first_octet_pattern(regex)
        if fast is None:
            continue
        made += 1
        assert fast.pattern.startswith(b"(?=[") and fast.flags == regex.flags
        for _ in range(3000):
            text = b"".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 14)))
            old, new = regex.search(text), fast.search(text)
            assert (old and (old.span(), old.groups())) == (
                new and (new.span(), new.groups())
            ), (pattern, text)
            assert regex.findall(text) == fast.findall(text)
    assert made >= 8
    # Patterns that may match nothing, or start with any octet, get none.
    assert first_octet_pattern(re.compile(rb"a*")) is None
    assert first_octet_pattern(re.compile(rb".x")) is None
    assert first_octet_pattern(re.compile(rb"(?:\b|^)")) is None


def test_rule_filter_searchers_default_to_the_level_patterns() -> None:
    regex = re.compile(rb"(?:p|&#112;)hone\b", re.I)
    found = rule_filter(regex, TrigramIndex())
    assert found.searchers == tuple(pattern for pattern, _ in found.levels)
    found.with_searchers()
    for (pattern, _checks), searcher in zip(found.levels, found.searchers, strict=True):
        if pattern is None:
            assert searcher is None
            continue
        assert searcher.pattern.startswith(b"(?=[")
        assert searcher.pattern.endswith(b"])(?:" + pattern.pattern + b")")
        for text in (b"a Phone b", b"x&#112;hone", b"phones", b"iphone x"):
            old, new = pattern.search(text), searcher.search(text)
            assert (old and old.span()) == (new and new.span())
    assert found.searchers[0].pattern.startswith(b"(?=[\\x26\\x50\\x70])")
    wide = rule_filter(re.compile(rb"\w+ing\b"), TrigramIndex()).with_searchers()
    assert wide.searchers == tuple(pattern for pattern, _ in wide.levels)
