"""Session 10 speed-ups of the SpamAssassin rule runner, each against the
path it replaces.

``rules._gate_scan`` scans the whole text and the paragraphs as pieces of one
join (one scan of the end-assertion gate instead of two, and of the main gate
when a paragraph lacks its final newline); ``hsgate.Gate.scan`` passes the
scan's arguments by position.  The gates' answers must still hold every rule
whose pattern matches the text or one of its paragraphs (what makes skipping
the others safe), and every rule the old two-scan form let through; whole
runs give the same hits and work counts with and without the gates.
"""

from __future__ import annotations

import re
from itertools import repeat

import pytest

from twin.stages.spamassassin import hsgate, rules
from twin.stages.spamassassin.commands import DEFAULT_RULES_DIR
from twin.stages.spamassassin.conf import parse_files, rule_files
from twin.stages.spamassassin.evals import Scan

needs_hyperscan = pytest.mark.skipif(
    not hsgate.available(), reason="hyperscan not importable (or turned off)"
)


# ------------------------------------------------------------ references
def old_gate_scan(main, end, lines, text) -> set[int]:
    """``rules._gate_scan`` before: the text and the paragraphs joined
    scanned apart (two scans of the end gate)."""
    joined = None
    maybe: set[int] = set()
    if main is not None:
        maybe.update(main.scan(text))
        if not all(map(bytes.endswith, lines, repeat(b"\n"))):
            joined = hsgate.pieces(lines)
            maybe.update(main.scan(joined))
    if end is not None:
        maybe.update(end.scan(joined if joined is not None else hsgate.pieces(lines)))
        maybe.update(end.scan(text))
    return maybe


def old_scan(gate: hsgate.Gate, text: bytes) -> list[int]:
    """``hsgate.Gate.scan`` before: the arguments passed by keyword."""
    found: list[int] = []
    for db in gate._dbs or gate._open():
        db.scan(text, match_event_handler=hsgate._on_match, context=found)
    return found


def truth(patterns: list[re.Pattern[bytes]], lines: list[bytes]) -> set[int]:
    """The rules whose pattern matches the text or one of its paragraphs
    (what the gates may never leave out)."""
    text = b"".join(lines)
    return {
        i
        for i, pattern in enumerate(patterns)
        if pattern.search(text) or any(pattern.search(line) for line in lines)
    }


# ------------------------------------------------------------ crafted gates
# Patterns with end and start assertions, word boundaries and newlines: the
# places where a piece's edges matter.
PATTERNS = [
    rb"foo$",
    rb"foo\n$",
    rb"^bar",
    rb"(?m)^baz$",
    rb"qux\b",
    rb"\bquux",
    rb"end\Z",
    rb"end(?=\n?\Z)",
    rb"a\nb",
    rb"(?s)one.two",
    rb"lone\B",
    rb"x{3,}$",
    rb"(?i)HeLLo\s+world",
    rb"^\s*$",
    rb"o\nba[rz]$",  # across paragraphs, with an end assertion
]

TEXTS = [
    [b"foo\n", b"bar\n"],
    [b"foo", b"bar"],
    [b"xx foo", b"\n", b"bar baz"],
    [b"baz\n", b"qux\n", b"quux end"],
    [b"the end\n"],
    [b"the end"],
    [b"a\n", b"b\n"],
    [b"a", b"\nb"],
    [b"one\n", b"two\n"],
    [b"lonely", b"lone"],
    [b"xxxx", b"xxx\n"],
    [b"HELLO\n", b"World"],
    [b"hello   WORLD\n"],
    [b""],
    [b"\n", b"\n"],
    [b"plain text", b"nothing here\n"],
]


@pytest.fixture(scope="module")
def crafted_gates():
    compiled = [re.compile(p) for p in PATTERNS]
    main = [(i, p) for i, p in enumerate(compiled) if not hsgate.needs_piece_end(p)]
    end = [(i, p) for i, p in enumerate(compiled) if hsgate.needs_piece_end(p)]
    assert main and end
    return compiled, hsgate.build_gate(main, True), hsgate.build_gate(end, True)


@needs_hyperscan
def test_crafted_gate_scan_holds_every_match(crafted_gates) -> None:
    compiled, main, end = crafted_gates
    assert main is not None and end is not None
    covered = main.covered | end.covered
    assert len(covered) == len(PATTERNS) - 1  # all but the empty match
    matched = 0
    for lines in TEXTS:
        text = b"".join(lines)
        new = rules._gate_scan(main, end, lines, text)
        want = truth(compiled, lines) & covered
        assert want <= new, lines
        assert old_gate_scan(main, end, lines, text) <= new, lines
        matched += len(want)
    assert matched > 15


@needs_hyperscan
def test_crafted_gate_scan_each_gate_alone(crafted_gates) -> None:
    """Only a main gate, or only an end gate: still every match."""
    compiled, main, end = crafted_gates
    for lines in TEXTS:
        text = b"".join(lines)
        for pair, covered in ((main, None), (None, end)):
            gate = pair or covered
            want = {i for i in truth(compiled, lines) if i in gate.covered}
            assert want <= rules._gate_scan(pair, covered, lines, text), lines


@needs_hyperscan
def test_positional_scan_is_the_keyword_scan(crafted_gates) -> None:
    _compiled, main, end = crafted_gates
    for lines in TEXTS:
        for piece in (b"".join(lines), hsgate.pieces(lines)):
            for gate in (main, end):
                assert gate.scan(piece) == old_scan(gate, piece)


# ------------------------------------------------------------ shipped rules
def _every(kind_counts: dict[str, int], kind: str, step: int) -> bool:
    index = kind_counts[kind] = kind_counts.get(kind, -1) + 1
    return index % step == 0


@pytest.fixture(scope="module")
def shipped_part() -> rules.RuleSet:
    """Every fourth body and rawbody rule of the shipped rules, and the metas
    (which make the unscored rules they read needed); the other rules
    dropped: their gates compile in seconds."""
    config = parse_files(rule_files(DEFAULT_RULES_DIR))
    seen: dict[str, int] = {}
    config.rules = {
        name: rule
        for name, rule in config.rules.items()
        if rule.kind == "meta"
        or rule.kind in ("body", "rawbody")
        and not rule.text.startswith("eval:")
        and _every(seen, rule.kind, 4)
    }
    return rules.compile_rules(config)


@needs_hyperscan
def test_shipped_gate_scan_on_corpus(shipped_part, corpus_messages) -> None:
    """Real bodies (and with their final newlines cut off, the other branch):
    the answer holds every level pattern that matches, and the old answer."""
    checked = 0
    for kind in ("body", "rawbody"):
        plan = shipped_part._body_plan(kind)
        for msg in corpus_messages(6):
            lines = msg.body_lines if kind == "body" else msg.rawbody_lines
            for form in (lines, [line.rstrip(b"\n") for line in lines]):
                body = rules._BodyText(form, shipped_part.trigrams)
                gates = plan.gates[body.view.level]
                if gates is None:
                    continue
                main, end, _covered = gates
                new = rules._gate_scan(main, end, form, body.text)
                assert old_gate_scan(main, end, form, body.text) <= new
                patterns = [
                    rule.filter.levels[body.view.level][0] for rule in plan.rules
                ]
                for index in truth(
                    [p or re.compile(rb"(?!)") for p in patterns], form
                ):
                    assert index in new or index not in gates[2], (kind, index)
                    checked += 1
    assert checked > 200


def test_shipped_runs_both_ways_on_corpus(shipped_part, corpus_messages) -> None:
    """Whole runs: the same hits (in order) and work counts with and without
    the gates."""
    hit = 0
    for msg in corpus_messages(20):
        results = []
        for gated in (True, False):
            scan = Scan(msg)
            found = shipped_part.run(scan, hyperscan=gated)
            results.append(
                (list(found.items()), scan.rules_evaluated, scan.regex_bytes,
                 scan.prefilter_checks)
            )
        assert results[0] == results[1]
        hit += len(results[0][0])
    assert hit > 50
