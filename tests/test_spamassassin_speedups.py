"""Twin speed-ups that must give exactly what the plain code gives."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from twin.stages.spamassassin import bayes, hsgate, message, report, rules
from twin.stages.spamassassin.conf import parse_files, rule_files
from twin.stages.spamassassin.evals import Scan
from twin.stages.spamassassin.message import ParsedMessage

MESSAGE = (
    b"From: Alice <alice@example.com>\n"
    b"To: bob@example.org\n"
    b"Subject: =?utf-8?q?caf=C3=A9?= time\n"
    b"Received: from mx.example.com (mx.example.com [192.0.2.7])\n"
    b"\tby gw.example.org; Tue, 1 Mar 2005 10:00:00 +0000\n"
    b"Received: from lan (lan [10.0.0.5]) by mx.example.com;\n"
    b"X-Spam-Flag: YES\n"
    b"\n"
    b"See www.example.net/x... and http://example.com/y -- now\n"
)


def test_has_header_agrees_with_header_raw() -> None:
    msg = ParsedMessage(MESSAGE)
    for name in ("From", "from", "X-Mailer", "To", "Cc", "ToCc", "MESSAGEID", "ALL",
                 "EnvelopeFrom", "X-Spam-Relays-External", "From|Cc", "Received",
                 "X-Spam-Flag", ""):
        assert msg.has_header(name) == (msg.header(name + ":raw") is not None), name


def test_all_external_is_the_all_text_and_decoding_is_kept() -> None:
    msg = ParsedMessage(MESSAGE)
    assert msg.header("ALL-EXTERNAL") == msg.header("ALL")
    assert msg.header("ALL-UNTRUSTED:raw") == msg.header("ALL:raw")
    assert b"Subject: caf\xc3\xa9 time\n" in msg.header("ALL")
    assert msg.header("Subject") == "café time".encode()
    external = msg.header("X-Spam-Relays-External")
    assert external.startswith(b"[ ip=192.0.2.7 rdns=mx.example.com ")
    assert msg.header("X-Spam-Relays-Internal").startswith(b"[ ip=10.0.0.5 ")
    assert msg.header("X-Spam-Relays-Untrusted") == external


def _words_by_regex(text: bytes) -> set[bytes]:
    stripped = bayes._BODY_STRIP.sub(b" ", text)
    return set(bayes._DOTS.sub(rb"\1 \2 \3", stripped).split())


def test_tokenizer_strip_table_equals_the_regex() -> None:
    rng = random.Random(7)
    alphabet = b"ab.-  \n\t\x00\xa0\xa1\xff_,@!Z9"
    for _ in range(3000):
        text = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        stripped = text.translate(bayes._STRIP_TABLE)
        if b"..." in stripped or b"--" in stripped:
            stripped = bayes._DOTS.sub(rb"\1 \2 \3", stripped)
        assert set(stripped.split()) == _words_by_regex(text), text
    tokens = bayes._words(b"Buy... now--really see foo@bar.com", body=True)
    # "now" and "see" are stop words, "--" trims to nothing.
    assert tokens == {b"Buy", b"really", b"U:foo", b"D:bar.com", b"foo@bar.com"}


def test_count_with_findall_equals_finditer() -> None:
    patterns = [re.compile(p) for p in (rb"e", rb"(?:e|\xc3[\xa8-\xab])", rb"x*",
                                        rb"(a)(b)?", rb"^", rb"$", rb"\b\w+\b")]
    rng = random.Random(3)
    for _ in range(2000):
        text = bytes(rng.choice(b"eab x\n\xc3\xa8") for _ in range(rng.randint(0, 40)))
        for pattern in patterns:
            for limit in (2, 3, 1000):
                expected = 0
                for _match in pattern.finditer(text):
                    expected += 1
                    if expected >= limit:
                        break
                assert rules._count(pattern, text, limit) == expected
    long_text = b"e" * (rules._FINDALL_BELOW + 10)
    assert rules._count(re.compile(b"e"), long_text, 230) == 230


def _rewrite_by_regex(message: bytes, headers: list[str]) -> bytes:
    newline = b"\r\n" if b"\r\n" in message[:2048] else b"\n"
    match = report._HEADER_END.search(message)
    if match:
        head, rest = message[: match.start()], message[match.start() :]
    else:
        head, rest = message.rstrip(b"\r\n"), newline
    head = report._XSPAM.sub(b"", head)
    head = re.sub(rb"(?:\r?\n)+", newline, head).strip(b"\r\n")
    added = newline.join(h.encode("utf-8").replace(b"\n", newline) for h in headers)
    return head + newline + added + rest


def test_rewrite_skips_only_substitutions_that_change_nothing() -> None:
    pieces = [b"From: a", b"X-Spam-Flag: YES", b"x-SPAM-level: **", b"\r\n", b"\n",
              b" cont", b"\tfold", b"Subject: hi", b"\r", b"\n\n", b"body"]
    rng = random.Random(2)
    headers = ["X-Spam-Status: No, score=0.0\n\ttests=none"]
    for _ in range(3000):
        message = b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        expected = _rewrite_by_regex(message, headers)
        assert report.rewrite_message(message, headers, "") == expected, message


FULL_RULES = """\
full FULL_LONG    /^[^\\r\\n]{40}/m
full FULL_MIME    /\\bContent-[XYZ]-[a-z]{6,15}:\\s+[a-z]{6,15}\\b/
full FULL_TWICE   /money/
tflags FULL_TWICE multiple maxhits=3
full FULL_NAME    /^From:\\s+(\\S+)\\s(?=.{1,200}^\\1$)/sm
"""


@pytest.mark.skipif(not hsgate.available(), reason="hyperscan not importable")
def test_full_rule_gate_changes_no_hit_and_no_work(
    tmp_path: Path, both_ways
) -> None:
    """The full rules' gate skips only rules that cannot match: the hits and
    the counts are those of running every full rule on ``re``."""
    (tmp_path / "local.cf").write_text(FULL_RULES)
    compiled = rules.compile_rules(parse_files(rule_files(tmp_path)))
    assert compiled._full_gate is not None
    assert compiled._full_gate.covered >= {0, 1, 2}
    messages = [
        b"From: Alice\nSubject: hi\n\nmoney money money money\nAlice\n",
        b"From: Bob\nContent-X-whatever: somevalue\n\n" + b"y" * 50 + b"\n",
        b"Subject: nothing\n\nshort\n",
    ]
    seen = set()
    for data in messages:
        results = both_ways(compiled, data)
        assert results[0] == results[1]
        seen.update(results[0][0])
    assert {"FULL_LONG", "FULL_MIME", "FULL_TWICE", "FULL_NAME"} <= seen


META_RULES = """
body  __M_A     /apple/
body  __M_B     /banana/
body  __M_C     /cherry/
meta  __M_AB    __M_A && __M_B
meta  __M_NOTC  !__M_C
meta  M_TOP     __M_AB || (__M_NOTC && __M_A)
meta  M_COUNT   (__M_A + __M_B + __M_C) > 1
meta  M_NONE    !(__M_A || __M_B || __M_C)
meta  M_DEEP    M_TOP && !M_NONE && __M_NOTC
score M_TOP 1.0
score M_COUNT 1.0
score M_NONE 1.0
score M_DEEP 1.0
"""


def test_metas_equal_evaluating_every_meta_in_order(tmp_path: Path) -> None:
    """Only the metas reached from a hit are evaluated, each once, in
    dependency order: the hits are those of evaluating every meta in order,
    and a meta reads only metas before it."""
    (tmp_path / "local.cf").write_text(META_RULES)
    compiled = rules.compile_rules(parse_files(rule_files(tmp_path)))
    position = {meta.name: i for i, meta in enumerate(compiled.metas)}
    for i, meta in enumerate(compiled.metas):
        assert all(position.get(dep, -1) < i for dep in meta.deps)
    bodies = [b"apple banana\n", b"cherry\n", b"nothing\n", b"apple\n",
              b"apple cherry banana\n", b"banana cherry\n"]
    outcomes = []
    for body in bodies:
        scan = Scan(ParsedMessage(b"Subject: fruit\n\n" + body))
        hits = compiled.run(scan, hyperscan=False)
        values = {k: v for k, v in hits.items() if k not in position}
        expected = {}
        for meta in compiled.metas:
            value = float(meta.expression.evaluate(values) or 0.0)
            if value:
                values[meta.name] = value
                expected[meta.name] = value
        got = {k: v for k, v in hits.items() if k in position}
        assert got == expected
        assert list(got) == [m.name for m in compiled.metas if m.name in got]
        outcomes.append(sorted(n for n in got if not n.startswith("__")))
    assert outcomes == [
        ["M_COUNT", "M_DEEP", "M_TOP"], [], ["M_NONE"], ["M_DEEP", "M_TOP"],
        ["M_COUNT", "M_TOP"], ["M_COUNT"],
    ]


# ------------------------------------------------ text helpers (same output)
_OLD_DOTS = re.compile(rb"(\w)(\.{3,6}|-{2,6})(\w)")
_OLD_PARAGRAPH = re.compile(r"\n+\s*\n+")
_OLD_SPACES = re.compile(r"[ \t\n\r\x0b\xa0]+")
_OLD_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9:]*)((?:[^>\"']|\"[^\"]*\"|'[^']*')*)>")
_OLD_HEADER_SPLIT = re.compile(rb"\r?\n(?![ \t])")
_OLD_FOLD = re.compile(rb"\r?\n(?=[ \t])")
_OLD_BLANK = re.compile(rb"\r?\n\r?\n")


def _random_texts(alphabet: list[str], count: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    return [
        "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 40)))
        for _ in range(count)
    ]


def test_split_words_word_by_word_equals_whole_text_substitution() -> None:
    def whole(text: bytes) -> set[bytes]:
        text = text.translate(bayes._STRIP_TABLE)
        if b"..." in text or b"--" in text:
            text = _OLD_DOTS.sub(rb"\1 \2 \3", text)
        return set(text.split())

    # A dotted word whose pieces hold another dotted word seen alone.
    tricky = b"x--a...b a...b go--to a------b c.......d e--- --f _--_ 9...9"
    assert bayes._split_words(tricky) == whole(tricky)
    assert b"a...b" in bayes._split_words(tricky)
    alphabet = ["a", "b", "_", "9", ".", ".", "-", "-", " ", "\n", "\t", "!", "\x80"]
    for text in _random_texts(alphabet, 5000, 1):
        data = text.encode("latin-1")
        assert bayes._split_words(data) == whole(data), data


def test_rendering_patterns_equal_the_plain_ones() -> None:
    alphabet = [" ", " ", "\t", "\n", "\n", "\r", "\x0b", "\xa0", "\x0c", "a", "é"]
    for text in _random_texts(alphabet, 5000, 2):
        assert message._PARAGRAPH.sub("\f", text) == _OLD_PARAGRAPH.sub("\f", text)
        assert message._SPACES.sub(" ", text) == _OLD_SPACES.sub(" ", text)
    alphabet = ["<", "<", ">", ">", "/", '"', "'", "a", "B", "1", ":", " ", "=", "\n"]
    for text in _random_texts(alphabet, 5000, 3):
        new = [(m.span(), m.groups()) for m in message._TAG.finditer(text)]
        old = [(m.span(), m.groups()) for m in _OLD_TAG.finditer(text)]
        assert new == old, text


def test_header_splitting_without_cr_equals_the_plain_patterns() -> None:
    alphabet = ["\n", "\n", "\r", " ", "\t", "a", "B", ":", "x-y", "\n\n", "=?"]
    for text in _random_texts(alphabet, 5000, 4):
        data = text.encode("latin-1")
        assert message._split_headers(data) == _plain_split_headers(data), data
        match = _OLD_BLANK.search(data)
        expected = (
            (data[: match.start()], data[match.end() :]) if match else (data, b"")
        )
        if not data.startswith(b"From "):
            assert message._split_message(data) == expected, data
        assert message._FOLD.sub(b" ", data) == _OLD_FOLD.sub(b" ", data)
        plain = _OLD_FOLD.sub(b"", data).replace(b"\r", b"").strip()
        if b"=?" not in plain:
            assert message.decode_header_value(data) == plain
        head = report.rewrite_message(data + b"\n\nbody", ["X-A: 1"], "")
        end = _OLD_BLANK.search(data + b"\n\nbody")
        assert head.endswith((data + b"\n\nbody")[end.start() :])  # type: ignore[union-attr]


def _plain_split_headers(block: bytes) -> list[tuple[bytes, bytes]]:
    headers: list[tuple[bytes, bytes]] = []
    for line in _OLD_HEADER_SPLIT.split(block):
        if not line:
            continue
        match = message._HEADER_LINE.match(line)
        if match:
            headers.append((match.group(1), match.group(2).lstrip(b" \t")))
        elif headers:
            headers[-1] = (headers[-1][0], headers[-1][1] + b"\n " + line)
    return headers


def test_uri_and_parameter_patterns_equal_the_plain_ones() -> None:
    old_uri = re.compile(
        rb"(?:\b(?:https?|ftp)://|\bwww\d{0,3}\.|\bmailto:)[^\s<>\"'\])}]+", re.I
    )
    old_param = re.compile(rb';\s*([\w\-*]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))')
    alphabet = ["h", "H", "t", "T", "p", "s", "S", ":", "/", "//", "f", "F", "w",
                "W", "ww", "m", "ailto", "AILTO:", "1", ".", "x", "_", " ", "<", ")",
                "\n", "http://", "www.", "\xe9", "mailto:", "FTP://", "tp://"]
    for text in _random_texts(alphabet, 20000, 5):
        data = text.encode("latin-1")
        new = [(m.span(), m.group(0)) for m in message._TEXT_URI.finditer(data)]
        old = [(m.span(), m.group(0)) for m in old_uri.finditer(data)]
        assert new == old, data
    alphabet = [";", " ", "a", "=", '"', "\\", "\n", "b-c", "*", "\t", ";name=",
                '"x\\"y"']
    for text in _random_texts(alphabet, 20000, 6):
        data = text.encode("latin-1")
        new_groups = [m.groups() for m in message._PARAM.finditer(data)]
        assert new_groups == [m.groups() for m in old_param.finditer(data)], data
    msg = ParsedMessage(
        b"Subject: x\nContent-Type: text/plain; charset=\"us\\\"-ascii\"\n\n"
        b"see HTTP://a.example/x, xwww.b.example www2.c.example and Mailto:d@e.f\n"
    )
    assert msg.uris == [b"HTTP://a.example/x", b"http://www2.c.example",
                        b"Mailto:d@e.f"]
