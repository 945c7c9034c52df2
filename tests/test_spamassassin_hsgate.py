"""Hyperscan gates: a superset of the rules ``re`` hits, and the off switch."""

from __future__ import annotations

import re

import pytest

from twin.stages.spamassassin import hsgate

needs_hyperscan = pytest.mark.skipif(
    not hsgate.available(), reason="hyperscan not importable (or switched off)"
)


def _gate(patterns: list[bytes], multiline: bool, flags: int = 0) -> hsgate.Gate:
    gate = hsgate.build_gate(
        [(i, re.compile(p, flags)) for i, p in enumerate(patterns)], multiline
    )
    assert gate is not None
    return gate


@needs_hyperscan
def test_whole_text_gate_reports_a_superset_of_the_matches() -> None:
    """Exact for the patterns Hyperscan compiles as they are; the
    back-reference one (prefilter mode) may also report a non-match."""
    patterns = [rb"viagra", rb"\bcheap\b", rb"^Subject", rb"(\w)\1\1", rb"x{2,2048}y"]
    gate = _gate(patterns, False, re.IGNORECASE)
    assert gate.covered == frozenset(range(5))
    assert sorted(gate.scan(b"Buy VIAGRA cheap, zzz")) == [0, 1, 3]
    assert set(gate.scan(b"subject: cheaper")) - {3} == {2}
    assert set(gate.scan(b"nothing here")) <= {3}
    assert sorted(gate.scan(b"xxxxy")) == [3, 4]


@needs_hyperscan
def test_piece_gate_sees_every_paragraph_edge() -> None:
    """Anchors and \\A/\\Z of a paragraph hold in the joined pieces."""
    patterns = [rb"^free", rb"money$", rb"\Aclick", rb"now\n\Z", rb"win(?=\n?\Z)"]
    gate = _gate(patterns, True)
    lines = [b"Subject: hi\n", b"free stuff and money\n", b"click to win\n", b"now\n"]
    for index, pattern in enumerate(patterns):
        per_line = any(re.search(pattern, line) for line in lines)
        assert per_line, pattern
        assert index in gate.scan(hsgate.pieces(lines)), pattern
    assert gate.scan(hsgate.pieces([b"nothing\n", b"at all"])) == []
    assert 3 in gate.scan(hsgate.pieces([b"go now\n"]))


@needs_hyperscan
def test_uncompilable_and_empty_patterns_are_left_out() -> None:
    gate = hsgate.build_gate(
        [(0, re.compile(rb"a*")), (1, re.compile(rb"(?x) a b")), (2, re.compile(b"k"))],
        False,
    )
    assert gate is not None
    assert gate.covered == frozenset({2})


@needs_hyperscan
def test_literal_gate_and_pickling() -> None:
    import pickle

    gate = hsgate.build_literal_gate([b"abc", b"x.y", b"zz"])
    assert gate is not None
    again = pickle.loads(pickle.dumps(gate))
    assert sorted(again.scan(b"xxabc x.y")) == [0, 1]
    assert again.scan(b"xzy z z") == []


def test_switch_turns_the_gates_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(hsgate.ENV_SWITCH, "0")
    assert not hsgate.available()
    assert hsgate.version() == ""
    assert hsgate.build_gate([(0, re.compile(rb"abc"))], False) is None
    assert hsgate.build_literal_gate([b"abc"]) is None


def test_needs_piece_end() -> None:
    assert hsgate.needs_piece_end(re.compile(rb"foo$"))
    assert hsgate.needs_piece_end(re.compile(rb"(?:a\B)+"))
    assert hsgate.needs_piece_end(re.compile(rb"a\Z"))
    assert not hsgate.needs_piece_end(re.compile(rb"[$]100\b"))


@needs_hyperscan
def test_inner_anchors_are_dropped_for_a_superset() -> None:
    """Hyperscan rejects ``^``/``$`` inside a pattern even in prefilter mode;
    the gate then covers the pattern with its anchors dropped."""
    optout = rb"(?:$|\W)(?=[o0])(?!opt-?out)[o0]pt-?[o0]ut(?:$|\W)"
    before = rb"^Message-Id:.*?^Received:"
    gate = _gate([optout, before, rb"plain"], False, re.IGNORECASE | re.MULTILINE)
    assert gate.covered == frozenset({0, 1, 2})
    texts = [b"to 0pt-out now", b"x\n0pt out", b"Message-Id: a\nReceived: b\n",
             b"Received: b\nMessage-Id: a\n", b"nothing plain", b""]
    for text in texts:
        found = set(gate.scan(text))
        for index, pattern in enumerate([optout, before, rb"plain"]):
            if re.search(pattern, text, re.IGNORECASE | re.MULTILINE):
                assert index in found, (pattern, text)
    assert gate.scan(b"nothing here") == []


@needs_hyperscan
def test_a_halved_chunk_is_compiled_again_as_one_database() -> None:
    """One pattern Hyperscan rejects among others: the rest still scan as
    one database, and the rejected one is left uncovered."""
    patterns = [rb"alpha", rb"beta", rb"[^\x00-\xff]x", rb"delta", rb"epsilon"]
    gate = hsgate.build_gate(
        [(i, re.compile(p)) for i, p in enumerate(patterns)], False
    )
    assert gate is not None
    assert gate.covered == frozenset({0, 1, 3, 4})
    assert len(gate._blobs) == 1  # noqa: SLF001 -- the number of databases
    assert sorted(gate.scan(b"alpha delta epsilon x")) == [0, 3, 4]


def _glyphs(letters: str) -> bytes:
    """A homoglyph-style pattern: each letter as a big alternation of short
    spellings (itself, two UTF-8 look-alikes, an entity), as ReplaceTags makes."""
    parts = []
    for letter in letters:
        spellings = [
            re.escape(letter.encode()),
            b"\\xd0[\\x80-\\x8f]",
            b"\\xe1\\xb8[\\xa0-\\xaf]",
            b"&#(?:1[0-9]{2}|2(?:0[0-9]|1[0-9]));",
            b"[\\xc0-\\xc5]",
        ]
        parts.append(b"(?:" + b"|".join(spellings) + b")")
    return b"\\b" + b"[\\s\\-]?".join(parts) + b"\\b"


def test_collapsed_alternations_match_a_superset() -> None:
    """Big alternations of short branches become one class run; what the
    original matches, the collapsed pattern matches too."""
    pattern = _glyphs("pills")
    parsed = hsgate._sre.parse(pattern, re.IGNORECASE)
    loose = hsgate.unparse(hsgate._collapsed(parsed)).encode("latin-1")
    assert len(loose) < len(pattern) / 2
    original, collapsed = re.compile(pattern, re.I), re.compile(loose, re.I)
    for text in (
        b"buy pills now", b"P-I L-L S", b"p&#105;lls", b"\xd0\x80ills",
        b"pi\xe1\xb8\xa3ls", b"spills", b"pil", b"\xc1ILL\xc5",
    ):
        if original.search(text):
            assert collapsed.search(text), text
    assert collapsed.search(b"nothing of the kind") is None


def test_class_octets_follow_the_bytes_classes() -> None:
    for pattern in (rb"[\s]", rb"[^\s]", rb"\d", rb"[\W]", rb"[^a-c\d]", rb"[\w.]"):
        (op, av), = list(hsgate._sre.parse(pattern, 0))
        assert op is hsgate._c.IN
        truth = {octet for octet in range(256) if re.fullmatch(pattern, bytes([octet]))}
        assert hsgate._class_octets(av) == truth, pattern


@needs_hyperscan
def test_a_pattern_over_the_size_limit_is_gated_collapsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Too long as it is, but not once its glyph alternations are collapsed:
    covered, and the gate still reports every text the pattern matches."""
    pattern = _glyphs("viagra")
    monkeypatch.setattr(hsgate, "MAX_PATTERN", len(pattern) // 2)
    gate = _gate([pattern, b"k" * (len(pattern) // 2 + 1)], False, re.IGNORECASE)
    assert gate.covered == frozenset({0})
    for text in (b"cheap V-I-A-G-R-A", b"v&#105;agra", b"vi\xd0\x81gra!"):
        assert re.search(pattern, text, re.I), text
        assert gate.scan(text) == [0], text
    assert gate.scan(b"plain text") == []
