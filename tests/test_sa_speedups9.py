"""Session 9 speed-ups of the SpamAssassin twin, each against the plain path.

Header lookups through the spec memo, the Bayes tokenizer's dotted-word split
and inlined header loop, set-based Bayes classification, meta expressions with
``in``/``[]`` and the eval-test memos: the same values as the code they
replace (kept here as reference implementations), on real corpus messages
and crafted edge cases.
"""

from __future__ import annotations

import re
from itertools import chain
from pathlib import Path

import pytest

from twin.stages.spamassassin import bayes as B
from twin.stages.spamassassin import evals as E
from twin.stages.spamassassin import meta as M
from twin.stages.spamassassin.message import (
    MimePart,
    ParsedMessage,
    _display_name,
    _first_address,
    decode_header_value,
)

RULES_DIR = Path(__file__).resolve().parents[1] / "twin" / "data" / "spamassassin"


# ------------------------------------------------------------ references
def plain_header(msg: ParsedMessage, spec: str) -> bytes | None:
    """The header lookup before the spec memo (``_header`` of a real header)."""
    name, _, modifier = spec.partition(":")
    values = msg._index.get(name.lower().encode("latin-1"))
    if not values:
        return None
    if modifier == "raw":
        return b"\n".join(values)
    decoded = [decode_header_value(v) for v in values]
    if modifier == "addr":
        return _first_address(decoded[0])
    if modifier == "name":
        return _display_name(decoded[0])
    return b"\n".join(decoded)


def plain_split_words(text: bytes) -> set[bytes]:
    text = text.translate(B._STRIP_TABLE)
    words = set(text.split())
    if b"..." in text or b"--" in text:
        dotted = [w for w in words if b"..." in w or b"--" in w]
        words.difference_update(dotted)
        for word in dotted:
            words.update(B._DOTS.sub(rb"\1 \2 \3", word).split())
    return words


def plain_tokenize(msg: ParsedMessage, ignore: frozenset[bytes] = frozenset()):
    tokens = set(
        chain.from_iterable(
            B._token_words(w, True)
            for w in plain_split_words(b"".join(msg.body_lines[1:]))
        )
    )
    for name, value in msg.headers:
        key = name.lower()
        if key in B._SKIP_HEADERS or key in ignore:
            continue
        for word in plain_split_words(value):
            tokens.update(b"H" + name + b":" + t for t in B._token_words(word, False))
    return tokens


def plain_classify(db: B.BayesDB, msg: ParsedMessage) -> B.BayesVerdict:
    if not db.ready:
        return B.BayesVerdict(None, 0, 0)
    tokens = plain_tokenize(msg, db.ignore_headers)
    strengths = []
    found = 0
    for token in tokens:
        counts = db.tokens.get(token)
        if counts is None:
            continue
        found += 1
        prob = B.robinson_probability(*counts, db.nspam, db.nham, db.robinson_s)
        if abs(prob - 0.5) >= B.MIN_PROB_STRENGTH:
            strengths.append((abs(prob - 0.5), prob))
    if not found:
        return B.BayesVerdict(None, len(tokens), 0)
    strengths.sort(reverse=True)
    chosen = [p for _, p in strengths[: B.MAX_TOKENS]]
    return B.BayesVerdict(B.chi_squared_combine(chosen), len(tokens), len(chosen))


class _GetParser(M._Parser):
    """The meta code generation before: a name reads ``_v.get(name, 0)``."""

    def unary(self) -> str:
        token = self.peek()
        if token is not None and (token[0].isalpha() or token[0] == "_"):
            self.take()
            self.names.add(token)
            return f"_v.get({token!r}, 0)"
        return super().unary()


def plain_meta(text: str):
    parser = _GetParser(text)
    node = parser.level(0)
    return eval(compile(f"lambda _v: {node}", "<meta>", "eval"), M._GLOBALS)


SPECS = (
    "From", "From:addr", "From:name", "FROM:raw", "To", "To:addr", "Cc", "Subject",
    "subject", "Received", "Received:raw", "Message-Id", "Date", "Return-Path:addr",
    "Content-Type", "X-Mailer", "No-Such-Header", "No-Such:raw", "From:odd",
    "Reply-To:name", "List-Id", "X-Spam-Status",
)
PSEUDO = (
    "ALL", "ALL:raw", "ALL-EXTERNAL", "ToCc", "MESSAGEID", "EnvelopeFrom",
    "X-Spam-Relays-External", "X-Spam-Relays-Internal", "From|Reply-To",
    "From|Reply-To:addr",
)
CRAFTED = (
    b"From: \"Ann Smith\" <ann@example.com>\nTo: bob@example.org,\n  cc@x.org\n"
    b"Subject: =?utf-8?B?w6lsw6h2ZQ==?= deal... now--here\n"
    b"Subject: second -- subject ---- x...y\nX-Empty:\nRECEIVED: from a.b "
    b"(a.b [10.0.0.1]) by c.d; Mon, 2 Sep 2002 10:00:00 +0000\n"
    b"Received: from e.f (e.f [1.2.3.4]) by g.h; Mon, 2 Sep 2002 09:00:00 +0000\n"
    b"Date: Mon, 2 Sep 2002 08:00:00 +0000\nReply-To: (Ann) ann@example.com\n\n"
    b"Hello... world--wide web--- ... -- ---- a......b c--d--e www.x.com "
    b"user@host.example.org averyveryverylongwordindeed...x\n"
)


def _messages(corpus_messages) -> list[ParsedMessage]:
    return corpus_messages(25) + [ParsedMessage(CRAFTED)]


# ------------------------------------------------------------------ tests
def test_header_spec_memo_matches_plain_lookup(corpus_messages):
    for msg in _messages(corpus_messages):
        fresh = ParsedMessage(msg.full)
        for spec in SPECS:
            assert msg.header(spec) == plain_header(fresh, spec), spec
            assert msg.header(spec) == plain_header(fresh, spec), spec  # memo
        for spec in PSEUDO:  # the pseudo-headers still go through ``_header``
            assert msg.header(spec) == ParsedMessage(msg.full)._header(spec), spec


def test_header_crafted_values():
    msg = ParsedMessage(CRAFTED)
    assert msg.header("Subject") == (
        "élève deal... now--here".encode() + b"\nsecond -- subject ---- x...y"
    )
    assert msg.header("X-Empty") == b""
    assert msg.header("X-Empty:raw") == b""
    assert msg.header("Received:raw").count(b"\n") == 1  # both, any case
    assert msg.header("From:addr") == b"ann@example.com"
    assert msg.header("From:name") == b"Ann Smith"
    assert msg.header("Reply-To:name") == b"Ann"
    assert msg.header("To:addr") == b"bob@example.org"
    assert msg.header("Nope") is None and msg.header("Nope:addr") is None
    with pytest.raises(UnicodeEncodeError):  # as the plain lookup
        msg.header("Sub\u0100ject")


def test_mime_part_header_under_any_case(corpus_messages):
    for msg in _messages(corpus_messages):
        for part in msg.parts:
            for name in (b"Content-Type", b"content-type", b"CONTENT-TYPE", b"X-No"):
                plain = b"\n".join(
                    decode_header_value(v)
                    for n, v in part.headers
                    if n.lower() == name.lower()
                )
                assert part.header(name) == plain
    part = MimePart("text/plain", "", "7bit", [(b"X-A", b"1"), (b"x-a", b"2")], b"")
    assert part.header(b"x-A") == b"1\n2" and part.header(b"X-A") == b"1\n2"


@pytest.mark.parametrize(
    "text",
    [
        b"", b"...", b"--", b"a...b", b"a--b--c", b"---- ...... x", b"w... --w",
        b"x--", b"--x", b"a......b c.d", b"one two three", b"a...\tb--\nc",
        b"\xa0...\xa0x--y", b"end--", b"...start", b"a.....b---c---d",
    ],
)
def test_split_words_crafted(text):
    assert B._split_words(text) == plain_split_words(text)


def test_split_words_and_tokenize_on_corpus(corpus_messages):
    for msg in _messages(corpus_messages):
        assert msg.body_text == b"".join(msg.body_lines[1:])
        assert B._split_words(msg.body_text) == plain_split_words(msg.body_text)
        for _name, value in msg.headers:
            assert B._split_words(value) == plain_split_words(value)
        assert B.tokenize(msg) == plain_tokenize(msg)
        ignore = frozenset((b"received", b"subject"))
        assert B.tokenize(msg, ignore) == plain_tokenize(msg, ignore)


def test_classify_matches_plain_loop_through_learning(corpus_messages):
    messages = corpus_messages(10)
    if len(messages) < 60:
        pytest.skip("too few corpus messages")
    half = len(messages) // 2
    train, test = messages[:half], messages[half:]
    db = B.BayesDB()
    for i, msg in enumerate(train):
        db.learn(msg, is_spam=i < half // 2)  # the spam folder comes first
    # Lower the bar so that the small sample is classified.
    db.nspam, db.nham = max(db.nspam, B.MIN_SPAM), max(db.nham, B.MIN_HAM)
    for msg in test[:40]:
        assert db.classify(msg) == plain_classify(db, msg)
    for msg in test[:40]:  # again, from the probability cache
        assert db.classify(msg) == plain_classify(db, msg)
    db.learn(test[0], is_spam=True)  # the cache follows learning
    for msg in test[:40]:
        assert db.classify(msg) == plain_classify(db, msg)
    empty = B.BayesDB(nspam=300, nham=300)
    assert empty.classify(test[0]) == B.BayesVerdict(None, len(B.tokenize(test[0])), 0)


def _meta_lines() -> list[str]:
    lines = []
    if RULES_DIR.is_dir():
        for path in sorted(RULES_DIR.glob("*.cf")):
            for line in path.read_text(encoding="latin-1").splitlines():
                match = re.match(r"\s*meta\s+\S+\s+(.+?)\s*(?:#.*)?$", line)
                if match:
                    lines.append(match.group(1))
    return lines


def test_meta_expressions_match_get_spelling():
    texts = [
        "A && B", "!A || (B + C > 1)", "A / B", "-A * 2 + B", "(A && !B) == 0",
        "A >= 1 && B <= 2 || C != D", "__X_1 + __Y > 1", "1", "!(!A)",
    ] + _meta_lines()
    assert len(texts) > 9
    done = 0
    for text in texts:
        try:
            new = M.parse(text).evaluate
        except M.MetaSyntaxError:
            continue
        old = plain_meta(text)
        names = sorted(M.parse(text).names)
        for mask in range(8):
            values = {
                n: float(k % 3) + (0.5 if mask & 4 else 0.0)
                for k, n in enumerate(names)
                if (k + mask) % 2 or mask & 1
            }
            values = {n: v for n, v in values.items() if v}
            assert new(values) == old(values), text
            assert type(new(values)) is type(old(values)), text
        done += 1
    assert done > 9


def test_in_range_memo_matches_parsing():
    for low, high in [("0", "1"), ("undef", "3"), ("-6", "undef"), ("1", "inf"),
                      (" 2 ", ""), ("0.5", "0.5")]:
        for value in (-10.0, 0.0, 0.5, 1.0, 2.0, 3.0, 1e9):
            lo, hi = E._float(low), E._float(high)
            plain = (lo is None or value >= lo) and (hi is None or value < hi)
            assert E._in_range(value, low, high) == plain
            assert E._in_range(value, low, high) == plain  # from the memo


def test_evals_fast_paths_on_corpus(corpus_messages):
    for msg in _messages(corpus_messages):
        fresh = ParsedMessage(msg.full)
        scan = E.Scan(msg=fresh)
        assert E._has_html(scan) == bool((fresh.body_lines, fresh.text_html)[1])
        for kind in ("all", "gif", "jpeg", "png", "bmp"):
            types = E._IMAGE_TYPES.get(kind, ())
            if kind == "all":
                types = tuple(t for v in E._IMAGE_TYPES.values() for t in v)
            count = sum(1 for p in msg.parts if p.ctype in types)
            assert E.image_count(scan, kind, "1") == (count >= 1)
            assert E.image_count(scan, kind, "0", "0") == (count == 0)
        date = E._header_time(msg.header("Date"))
        received = E._received_time(msg)
        shift = None if date is None or received is None else date - received
        for low, high in (("undef", "-3"), ("-3", "3"), ("3", "undef")):
            expect = shift is not None and E._in_range(shift / 3600.0, low, high)
            assert E.check_for_shifted_date(scan, low, high) == expect
        assert scan.memo["date_shift"] == shift


def test_crafted_shifted_date():
    scan = E.Scan(msg=ParsedMessage(CRAFTED))
    # Date 08:00, first Received 10:00: two hours in the past.
    assert E.check_for_shifted_date(scan, "-3", "-1")
    assert not E.check_for_shifted_date(scan, "-1", "1")
    assert scan.memo["date_shift"] == -7200.0
