"""Twin speed-ups (fourth set) that must give exactly what the plain code gives:
the start finders of the whole-text body searches (``prefilter.start_finder``,
``RuleFilter.first_match``) and the one-scan gate of a long paragraph
(``rules._BodyText.line_maybe``)."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from twin.stages.spamassassin import hsgate, rules
from twin.stages.spamassassin.conf import parse_files, rule_files
from twin.stages.spamassassin.prefilter import (
    TextView,
    TrigramIndex,
    find_start,
    rule_filter,
    start_finder,
)

# (pattern, flags, form): "start" for a ``(?:^|S)R`` finder, "ahead" for a
# first-octet finder, None for no finder.
FINDER_CASES = [
    (rb"(?:^|\s)(?:pay|send)\s?me\b", re.I, "start"),
    (rb"(?:^|\s)(?:pay|send)\s?me\b", re.I | re.M, "start"),
    (rb"(?:^|[\W])(?:y|\xd1\x83)ou(?=r)", 0, "start"),
    # (?m): ``^`` after a newline is not ``,`` at it: a first-octet finder.
    (rb"(?:^|,)(?:ab|c)", re.M, "ahead"),
    (rb"(?:^|,)(?:ab|c)", 0, "start"),
    # A back-reference: R alone would renumber it, a look-behind refuses it.
    (rb"(?:^|\s)(a)x\1", 0, None),
    (rb"(?!pharmacy)(?:[pP]){1,2}[\W]{0,2}h", re.I, "ahead"),
    (rb"(?<=\s)pa(?:y|id)\b", re.I, "ahead"),
    (rb"\bv[i1!]agra", re.I | re.M, "ahead"),
    (rb"^x[0-9]+$", re.M, "ahead"),
    (rb"(?:a|b)?c", 0, "ahead"),
    (rb"\w+z", 0, None),  # 63 first octets: too many
    (rb"(?:^|\s)a?", 0, None),  # may match the empty string
    (rb"x*", 0, None),
]


def test_start_finder_forms() -> None:
    for pattern, flags, form in FINDER_CASES:
        finder = start_finder(re.compile(pattern, flags))
        if form is None:
            assert finder is None, pattern
        elif form == "start":
            assert finder is not None and finder[0] is not None, pattern
        else:
            assert finder is not None and finder[0] is None, pattern
            assert finder[1].pattern.startswith(b"(?-i:["), pattern


def _same_first_match(regex: re.Pattern[bytes], texts: list[bytes]) -> int:
    """Asserts ``first_match`` (and ``find_start``) agree with a plain search
    of each text at every level of the regex's filter; returns the matches."""
    found = rule_filter(regex, TrigramIndex()).with_searchers()
    matches = 0
    for level, searcher in enumerate(found.searchers):
        if searcher is None:
            continue
        finder = found.finders[level]
        for text in texts:
            old = searcher.search(text)
            new = found.first_match(level, text)
            assert (old and old.span()) == (new and new.span()), (regex, text)
            assert (old and old.group()) == (new and new.group())
            if finder is not None:
                start = find_start(finder, text)
                assert (start < 0) == (old is None), (regex, text)
                if old is not None:
                    assert start <= old.start()
                    assert searcher.match(text, start) is not None
            matches += old is not None
    return matches


def test_first_match_equals_search_on_random_texts() -> None:
    rng = random.Random(41)
    alphabet = [b"a", b"b", b"c", b"p", b"P", b"h", b"ay", b"pay", b"send", b"me",
                b"ME", b"you", b"r", b"x", b"z", b"1", b"7", b"v1agra", b" ", b"\n",
                b"\t", b",", b".", b"!", b"\xd1\x83", b"&#", b"pharmacy", b"y"]
    texts = [
        b"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 16)))
        for _ in range(2500)
    ]
    total = 0
    for pattern, flags, _form in FINDER_CASES:
        total += _same_first_match(re.compile(pattern, flags), texts)
    assert total > 2000  # the texts hit often: matches are compared too



GIANTS = ("__YOUR_PASSWORD", "__PAY_ME", "FUZZY_PHARMACY", "T_TVD_FUZZY_SECURITIES",
          "__LOTSA_MONEY_04", "__HAS_ANY_EMAIL")



def test_shipped_giants_get_finders_with_the_same_matches(
    shipped_body_rules, corpus_messages
) -> None:
    compiled = shipped_body_rules(GIANTS)
    by_name = {rule.name: rule for rule in compiled}
    # The ReplaceTags giants start with ``(?:^|\s)``; the FUZZY rules with
    # look-aheads before a few octets.
    assert by_name["__PAY_ME"].filter.finders[0][0] is not None
    assert by_name["FUZZY_PHARMACY"].filter.finders[2][0] is None
    texts = []
    for msg in corpus_messages(40):
        texts.append(b"".join(msg.body_lines))
        texts.append(b"".join(msg.rawbody_lines))
    texts += [b"please pay me now", b" your passw0rd", b"ph@rmacy\nsecur1ties",
              b"USD 9m2 \n", b"a@b.example", b""]
    matches = 0
    for rule in compiled:
        found = rule.filter
        for level, searcher in enumerate(found.searchers):
            if searcher is None or found.finders[level] is None:
                continue
            for text in texts:
                old = searcher.search(text)
                new = found.first_match(level, text)
                assert (old and old.span()) == (new and new.span()), rule.name
                matches += old is not None
    assert matches > 10


BODY_RULES = (
    "body  T_PAY    /(?:^|\\s)(?:pay|send)\\s?me\\b/i\n"
    "body  T_PHARM  /(?!pharmacy)(?:[pP]){1,2}[\\W]{0,2}h[a@]rm/i\n"
    "body  T_END    /tail\\.$/\n"
    "body  T_WORD   /\\bzq[0-9]{2}\\b/\n"
    "body  T_MULTI  /\\bkw/\n"
    "tflags T_MULTI multiple maxhits=7\n"
    "score T_PAY 1\nscore T_PHARM 1\nscore T_END 1\nscore T_WORD 1\n"
    "score T_MULTI 1\n"
)


def _message(paragraphs: list[bytes]) -> bytes:
    return b"Subject: s\nFrom: a@b.example\n\n" + b"\n\n".join(paragraphs) + b"\n"


def test_finders_and_line_gates_keep_hits_and_counts(tmp_path: Path, both_ways) -> None:
    (tmp_path / "local.cf").write_text(BODY_RULES)
    compiled = rules.compile_rules(parse_files(rule_files(tmp_path)))
    assert any(r.filter.finders[2] is not None for r in compiled.body_rules)
    rng = random.Random(5)
    words = [b"pay", b"me", b"send", b"ph", b"h@rm", b"harm", b"tail.", b"zq12",
             b"kw", b"x", b"aaaa", b"\xd1\x83", b"&#1;", b"."]
    long_filler = b"Ab9+/ " * 3000  # a paragraph over _LONG_PARAGRAPH octets
    assert len(long_filler) >= rules._LONG_PARAGRAPH
    seen: set[str] = set()
    for _ in range(60):
        paragraphs = [
            b" ".join(rng.choice(words) for _ in range(rng.randint(1, 12)))
            for _ in range(rng.randint(1, 4))
        ]
        spot = rng.randrange(len(paragraphs) + 1)
        middle = rng.choice([b"", b"pay me ", b"zq12 ", b"kw kw "])
        paragraphs.insert(spot, long_filler[:9000] + middle + long_filler[9000:])
        data = _message(paragraphs)
        fast = both_ways(compiled, data)
        saved = [r.filter.finders for r in compiled.body_rules]
        for rule in compiled.body_rules:
            rule.filter.finders = (None, None, None)
        plain = both_ways(compiled, data)
        for rule, finders in zip(compiled.body_rules, saved, strict=True):
            rule.filter.finders = finders
        assert fast == plain
        assert fast[0] == fast[1]  # with the gates and without
        seen.update(fast[0][0])
    assert {"T_PAY", "T_WORD", "T_MULTI"} <= seen


@pytest.mark.skipif(not hsgate.available(), reason="hyperscan is not available")
def test_line_gate_lets_every_matching_rule_through(tmp_path: Path) -> None:
    (tmp_path / "local.cf").write_text(BODY_RULES)
    compiled = rules.compile_rules(parse_files(rule_files(tmp_path)))
    plan = compiled._body_plan("body")
    if not plan.gates:
        plan.build_gates()
    rng = random.Random(8)
    words = [b"pay", b"me", b"send", b"ph", b"harm", b"tail.", b"zq12", b"kw",
             b"x", b" ", b"\n", b"."]
    through = 0
    for _ in range(300):
        line = b" ".join(rng.choice(words) for _ in range(rng.randint(0, 30)))
        if rng.random() < 0.5:
            line += b"\n"
        body = rules._BodyText([line], TrigramIndex())
        level = TextView(line, TrigramIndex()).level
        gates = plan.gates[level]
        if gates is None:
            continue
        maybe = body.line_maybe(0, gates)
        old = rules._gate_scan(gates[0], gates[1], [line], line)
        assert maybe <= old
        for index, rule in enumerate(plan.rules):
            pattern = rule.filter.levels[level][0]
            if index in gates[2] and pattern is not None and pattern.search(line):
                assert index in maybe, (rule.name, line)
                through += 1
    assert through > 100
