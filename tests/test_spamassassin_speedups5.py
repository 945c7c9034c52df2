"""Twin speed-ups (fifth set) that must give exactly what the plain code gives:
skip literals of body rules (``rules.skip_literals_of``), start finders
narrowed by leading look-aheads (``prefilter._start_octets``) and long
paragraphs of plain patterns searched without a first gate scan
(``rules._plain``)."""

from __future__ import annotations

import pickle
import random
import re
from pathlib import Path

from twin.stages.spamassassin import rules
from twin.stages.spamassassin.conf import parse_files, rule_files
from twin.stages.spamassassin.prefilter import (
    TrigramIndex,
    find_start,
    rule_filter,
    start_finder,
)

# (pattern, flags, skip literals or None)
SKIP_CASES = [
    (rb"zaw(?:=F3|[\xf3])d|beruf", re.I, (b"beruf", b"zaw=f3d", b"zaw\xf3d")),
    (rb"abc(?:de|fg)h", re.I, (b"abcdeh", b"abcfgh")),
    (rb"abc[0-2]cd", 0, (b"abc0cd", b"abc1cd", b"abc2cd")),
    (rb"foo(?:bar)baz", 0, None),  # the literal is the whole run already
    (rb"(?:a|b)?cde", 0, None),  # an optional part: no longer run
    (rb"xyz(?-i:AB)q", re.I, None),  # a scoped flag ends the run: xyz again
    (rb"klm[a-z]nop", 0, None),  # a class too big: klm / nop again
]


def test_skip_literals_written_cases() -> None:
    for pattern, flags, expected in SKIP_CASES:
        regex = re.compile(pattern, flags)
        literals = rules.required_literals(regex)
        assert literals, pattern
        assert rules.skip_literals_of(regex, literals) == expected, pattern


def test_skip_literals_are_necessary_on_random_texts() -> None:
    rng = random.Random(17)
    patterns = [
        (rb"zaw(?:=F3|[\xf3])d|beruf", re.I),
        (rb"pax(?:y|id)(?:me|us|ed)n", re.I),
        (rb"abx[0-2]c(?:d|e)f", 0),
        (rb"(?:mon|tue)day[sz]?\s+(?:x|y)z", re.I),
        (rb"abq(?:c|d)(?:e|f)(?:g|h)(?:i|j)(?:k|l)(?:m|n)z", 0),
    ]
    alphabet = [b"z", b"a", b"w", b"=", b"F3", b"f3", b"\xf3", b"d", b"beruf", b"pax",
                b"y", b"id", b" ", b"ed", b"me", b"us", b"b", b"0", b"1", b"c", b"e",
                b"f", b"mon", b"tue", b"day", b"s", b"x", b"Z", b"ZAW", b"D", b"g",
                b"h", b"i", b"j", b"k", b"l", b"m", b"n", b"abx", b"abq"]
    texts = [
        b"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
        for _ in range(4000)
    ]
    texts += [b"zaw=f3d", b"ZAW\xf3D", b"PAXidusn", b"abx2cdf", b"Monday  yz",
              b"abqdfgjkmz"]
    matched = 0
    for pattern, flags in patterns:
        regex = re.compile(pattern, flags)
        literals = rules.required_literals(regex)
        skip = rules.skip_literals_of(regex, literals) if literals else None
        assert skip is not None, pattern
        for text in texts:
            if regex.search(text):
                matched += 1
                lower = text.lower()
                assert any(lit in lower for lit in skip), (pattern, text)
    assert matched > 60


# (pattern, flags, form): "none" when nothing can match, "ahead" for a
# first-octet finder, None for no finder.
NARROW_CASES = [
    (rb"(?=[dD])(?!dr oz)(?:[rR]|[goO0u]c)\.?\s*[oO0]z", re.I, "none"),
    (rb"(?=[dD\xd0]|\xc3\x90)(?:\xc3[\x90\x92]|[rR])x", 0, "ahead"),
    (rb"\b(?=\w)(?:\xc3\xa9|e)t", re.I, "ahead"),
    (rb"(?=[ab])(?:a|b|c|d|e|f|g|h|i|j|k|l|m|n|o|p|q|r|s|t|u|v|w|x|y|z|[0-9])+",
     0, "ahead"),
    (rb"(?=a?)[\w&]+", 0, None),  # the look-ahead may match empty: no help
    (rb"(?<=[xy])(?:[cC]|\xc3)", 0, "ahead"),
]


def test_narrowed_finder_forms() -> None:
    for pattern, flags, form in NARROW_CASES:
        finder = start_finder(re.compile(pattern, flags))
        if form is None:
            assert finder is None, pattern
        elif form == "none":
            assert finder == (None, None), pattern
            assert find_start(finder, b"dr oz rz dr0z") == -1
        else:
            assert finder is not None and finder[1] is not None, pattern
            assert finder[1].pattern.startswith(b"(?-i:["), pattern
    # Narrowed to the intersection: octets of both the look-ahead and the rest.
    finder = start_finder(re.compile(NARROW_CASES[1][0], NARROW_CASES[1][1]))
    assert finder[1].pattern.startswith(b"(?-i:[\\xc3])")


def test_narrowed_finders_match_as_search_on_random_texts() -> None:
    rng = random.Random(23)
    alphabet = [b"d", b"D", b"r", b"R", b"o", b"0", b"c", b"z", b"Z", b".", b" ",
                b"\n", b"\xd0", b"\xc3\x90", b"\xc3\x92", b"\xc3\xa9", b"x", b"e",
                b"t", b"a", b"b", b"&", b"y", b"C", b"dr oz"]
    texts = [
        b"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        for _ in range(3000)
    ]
    matches = 0
    for pattern, flags, _form in NARROW_CASES:
        regex = re.compile(pattern, flags)
        found = rule_filter(regex, TrigramIndex()).with_searchers()
        for level, searcher in enumerate(found.searchers):
            if searcher is None:
                continue
            finder = found.finders[level]
            for text in texts:
                old = searcher.search(text)
                new = found.first_match(level, text)
                assert (old and old.span()) == (new and new.span()), (pattern, text)
                if finder is not None:
                    start = find_start(finder, text)
                    assert (start < 0) == (old is None), (pattern, text)
                    if old is not None:
                        assert start <= old.start()
                matches += old is not None
    assert matches > 1000


def test_plain_patterns() -> None:
    assert rules._plain(re.compile(rb"e"))
    assert rules._plain(re.compile(rb"(?:e)"))
    assert rules._plain(re.compile(rb"(?:e|\xc3[\xa8\xa9])", re.I))
    assert not rules._plain(re.compile(rb"ab+"))
    assert not rules._plain(re.compile(rb"\bfoo"))
    assert not rules._plain(re.compile(rb"abcde"))  # more than a few items




def test_shipped_rules_skip_literals_and_dr_oz_on_the_corpus(
    shipped_body_rules, corpus_messages
) -> None:
    names = ("__FILL_THIS_FORM_LOAN1", "__FUZZY_DR_OZ")
    compiled = {r.name: r for r in shipped_body_rules(names)}
    fill = compiled["__FILL_THIS_FORM_LOAN1"]
    assert b"zaw" in fill.literals and b"zaw" not in fill.skip_literals
    assert b"zaw=f3d" in fill.skip_literals
    dr_oz = compiled["__FUZZY_DR_OZ"]
    # Its look-ahead wants a D, the rest an r or o: at levels 1 and 2 nothing.
    assert dr_oz.filter.finders[1] == (None, None)
    assert dr_oz.filter.finders[2] == (None, None)
    assert dr_oz.filter.finders[0] is not None
    paragraphs = []
    for msg in corpus_messages(10):
        paragraphs.extend(msg.body_lines)
        paragraphs.extend(msg.rawbody_lines)
    paragraphs += [b"your annual income: ____\n", b"zaw\xf3d: ....\n", b"Dr. Oz\n",
                   b"\xc3\x90r Oz \n", b"zaw=F3d:   \n"]
    matched = 0
    for line in paragraphs:
        lower = line.lower()
        if fill.regex.search(line):
            matched += 1
            assert any(lit in lower for lit in fill.skip_literals), line
        for level in range(3):
            pattern = dr_oz.filter.levels[level][0]
            if pattern is None:
                continue
            old = pattern.search(line)
            new = dr_oz.filter.first_match(level, line)
            assert (old and old.span()) == (new and new.span()), line
    assert matched >= 3


BODY_RULES = (
    "body  T_FORM   /(?:your\\s)?(?:income|zaw(?:=F3|\\xf3)d)"
    "[\\s:]{0,3}[-_.]{3,100}/i\n"
    "body  T_E      /e/\n"
    "tflags T_E multiple maxhits=40\n"
    "body  T_OZ     /(?=[dD])(?!Dr Oz)(?:[rR]|[oO]c)\\.?\\s*[oO]z/i\n"
    "body  T_WORD   /\\bzq[0-9]{2}\\b/\n"
    "score T_FORM 1\nscore T_E 1\nscore T_OZ 1\nscore T_WORD 1\n"
)


def _message(paragraphs: list[bytes]) -> bytes:
    return b"Subject: s\nFrom: a@b.example\n\n" + b"\n\n".join(paragraphs) + b"\n"


def test_skip_literals_and_plain_patterns_keep_hits_and_counts(
    tmp_path: Path, both_ways
) -> None:
    (tmp_path / "local.cf").write_text(BODY_RULES)
    compiled = rules.compile_rules(parse_files(rule_files(tmp_path)))
    by_name = {r.name: r for r in compiled.body_rules}
    assert by_name["T_FORM"].skip_literals is not None
    rng = random.Random(9)
    words = [b"income", b"zaw", b"zaw=f3d", b"zaw\xf3d", b"your", b":", b"___",
             b"....", b"e", b"zq12", b"x", b"\xd1\x83", b"&#1;", b"Dr Oz", b"ocoz"]
    filler = b"QUJDZGVmZ2hpamts+/zaw9" * 900  # base64-like, > _LONG_PARAGRAPH
    assert len(filler) >= rules._LONG_PARAGRAPH
    seen: set[str] = set()
    for _ in range(50):
        paragraphs = [
            b" ".join(rng.choice(words) for _ in range(rng.randint(1, 10)))
            for _ in range(rng.randint(1, 4))
        ]
        spot = rng.randrange(len(paragraphs) + 1)
        middle = rng.choice([b"", b"income: ___ ", b"zq12 ", b"zaw=F3d ....", b"e"])
        paragraphs.insert(spot, filler[:9000] + middle + filler[9000:])
        data = _message(paragraphs)
        fast = both_ways(compiled, data)
        saved = [r.skip_literals for r in compiled.body_rules]
        plain_of = dict(rules._PLAIN)
        for rule in compiled.body_rules:
            rule.skip_literals = None
        for regex in list(rules._PLAIN):
            rules._PLAIN[regex] = False
        plain = both_ways(compiled, data)
        for rule, skip in zip(compiled.body_rules, saved, strict=True):
            rule.skip_literals = skip
        rules._PLAIN.clear()
        rules._PLAIN.update(plain_of)
        assert fast == plain
        assert fast[0] == fast[1]  # with the gates and without
        seen.update(fast[0][0])
    assert {"T_FORM", "T_E", "T_WORD"} <= seen


def test_finders_survive_a_pickle_round_trip_compiled() -> None:
    patterns = [re.compile(p, f) for p, f, _form in NARROW_CASES]
    patterns.append(re.compile(rb"(?:^|\s)(?:pay|send)\s?me\b", re.I))
    texts = [b"xx pay me", b"\xc3\x90r x", b"dr oz", b"et \xc3\xa9t", b"", b"ab1"]
    for regex in patterns:
        found = rule_filter(regex, TrigramIndex()).with_searchers()
        loaded = pickle.loads(pickle.dumps(found))
        for level, finder in enumerate(found.finders):
            if finder is None:
                assert loaded.finders[level] is None
                continue
            # compiled at load, as the rest of the rule set: the same patterns
            assert all(
                part is None or isinstance(part, re.Pattern)
                for part in loaded.finders[level]
            )
            assert [p and (p.pattern, p.flags) for p in loaded.finders[level]] == [
                p and (p.pattern, p.flags) for p in finder
            ]
            for text in texts:
                old = found.first_match(level, text)
                new = loaded.first_match(level, text)
                assert (old and old.span()) == (new and new.span())
