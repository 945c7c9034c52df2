"""Session 10 speed-ups of the SpamAssassin message parser and renderer.

Header fields split by one ``findall`` (``_split_headers``), folds undone by
``replace`` (``decode_header_value``, ``_parse_relays``), text URIs found from
``bytes.find`` anchors (``_text_uris``) and the HTML renderer's tags taken
from one ``split`` with bulk counts (``render_html``): each compared with the
code it replaces (kept here as reference implementations) on real corpus
messages and crafted edge cases.
"""

from __future__ import annotations

import random
import re

import pytest

# The code before this session and a crafted page, kept once (the Bayes and
# message tests share them).
from test_sa_speedups10 import CRAFTED_HTML as HTML_PAGE
from test_sa_speedups10 import ref_render_html, ref_uris

from twin.stages.spamassassin import message as M
from twin.stages.spamassassin.message import HtmlFacts, ParsedMessage

# ------------------------------------------------------------ references
REF_HEADER_LINE = re.compile(rb"^([!-9;-~]+)[ \t]*:(.*)$", re.S)
REF_HEADER_SPLIT = re.compile(rb"\r?\n(?![ \t])")
REF_FOLD = re.compile(rb"\r?\n(?=[ \t])")


def ref_split_headers(block: bytes) -> list[tuple[bytes, bytes]]:
    """``_split_headers`` before session 10 (a match per logical line)."""
    headers: list[tuple[bytes, bytes]] = []
    for line in REF_HEADER_SPLIT.split(block):
        if not line:
            continue
        match = REF_HEADER_LINE.match(line)
        if match:
            headers.append((match.group(1), match.group(2).lstrip(b" \t")))
        elif headers:
            headers[-1] = (headers[-1][0], headers[-1][1] + b"\n " + line)
    return headers


def ref_decode_header_value(value: bytes) -> bytes:
    """``decode_header_value`` before session 10 (folds undone by a regex)."""
    if value.find(b"\r") >= 0:
        value = REF_FOLD.sub(b"", value).replace(b"\r", b"")
    elif value.find(b"\n") >= 0:
        value = REF_FOLD.sub(b"", value)
    value = value.strip()
    if value.find(b"=?") < 0:
        return value
    return M.decode_header_value(value)  # (no newline before a blank left)


def ref_parse_relays(msg: ParsedMessage) -> list[tuple[bool, bytes]]:
    """``ParsedMessage._parse_relays`` before session 10 (regex unfolding)."""
    relays = []
    for value in msg._index.get(b"received", []):
        match = M._RECEIVED_FROM.search(REF_FOLD.sub(b" ", value))
        if not match:
            continue
        helo, comment, ip, by = match.groups()
        rdns = comment.strip().split()[0] if comment.strip() else b""
        if rdns.startswith(b"helo="):
            rdns = b""
        exim_helo = M._EXIM_HELO.search(match.group(0))
        if exim_helo and not comment.strip():
            rdns, helo = helo, exim_helo.group(1)
        internal = bool(M._PRIVATE_IP.match(ip))
        relays.append(
            (
                internal,
                b"[ ip=" + ip + b" rdns=" + rdns + b" helo=" + helo + b" by="
                + (by or b"").rstrip(b";") + b" ident= envfrom= intl="
                + (b"1" if internal else b"0") + b" id= auth= msa=0 ]",
            )
        )
    return relays


def ref_paragraph_lines(text: str) -> list[bytes]:
    """``_render``'s body lines before session 10 (one ``encode`` each), from
    the joined texts, with ``_OTHER_SPACE.search`` choosing the squeeze."""
    text = M._PARAGRAPH.sub("\f", text)
    if M._OTHER_SPACE.search(text) is None:
        paragraphs = [" ".join(p.split()) for p in text.split("\f")]
    else:
        paragraphs = [p.strip(" ") for p in M._SPACES.sub(" ", text).split("\f")]
    return [p.encode("utf-8", errors="replace") + b"\n" for p in paragraphs if p]


def ref_walk_values(headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """The MIME headers ``_walk`` read before session 10 (every name)."""
    values = {n.lower(): v for n, v in headers}
    return {k: values[k] for k in M._MIME_HEADERS if k in values}


# ------------------------------------------------------------- fixtures
@pytest.fixture
def corpus(corpus_messages):
    """Every 10th public-corpus message (skips when the corpus is absent)."""
    return corpus_messages(10)


CRAFTED_BLOCKS = [
    b"",
    b"\n",
    b"A: b",
    b"A: b\n",
    b"A:b\nB :  c\nC\t:\t\td",
    b"Subject: a\n b\n\tc\nFrom: x",
    b"Subject:\n folded at once\nX: y",
    b"Subject: \t \n\t only blanks first",
    b" leading continuation\nA: b",
    b"garbage first\nA: b\nmalformed line\n more\nB: c",
    b"A: b\n\n C: d",
    b"A: b\n\nC: d",
    b"Bad Name: x\nA: b",
    b"A: b\nno colon here",
    b"X-\x7f: y\nA: b",
    b"\xe9t\xe9: v\nA: b",
    b"A: b\r\nB: c\r\n d",
    b"A: b\r\nbroken\r\nC: d",
    b"::\nA:: b:c",
    b"A: b\nB: \xff\xfe binary\n\x00",
    b"A: x\n\t\nB: y",
]

CRAFTED_HTML = [
    "",
    "<",
    ">",
    "<a href='x'",
    "<p>a</p><P>b</P><br>c",
    HTML_PAGE,
    "&nbsp;&amp&lt;&#65;&#x42;&notin;&notit;&bogus; <b>x</b></b></b><i>",
    "</p></p></div><div><DIV>a</Div><td><TD>",
    "<a href=\"unterminated>text</a><img width=3 height=4><img width=0x1>",
    "<scr<script>ipt>x</script>ipt><!-- <p> --><![CDATA[<b>]]>",
    "<a:b c=d>e</a:b><x1 y='z'>\u00e9\u3000\u2028&#8203;</x1>",
    "<meta charset=utf-8><META CHARSET='x'><meta name=keywords>",
]

CRAFTED_URI_LINES = [
    b"",
    b"Go to HTTP://Example.COM/a?b=c, or WWW3.foo.bar; mailto:x@y.z!",
    b"ftp://f.g/h) and xhttp://no.pe www.x.org. https://t.u/v...",
    b"twww.no www. (www.p.q) http://example.com/a?b=c",
    b"httphttp://a http:/ www1234.x www12.y wwwww.z mailtomailto:q",
    b"_http://a 9www.b .www.c -mailto:d >ftp://e \"http://f\"",
    b"http://a<http://b>http://c'http://d]http://e)http://f}",
    b"hTtPs://mixed.case FTP://UP www.\xe9.fr http://\xff\xfe/",
    b"hhttp://x fftp://y wwww.z mmailto:w",
]


def _random_uri_lines(count: int) -> list[bytes]:
    rng = random.Random(10)
    alphabet = b"hHtTpPsSfFwWmMaAiIlLoO:/.0123 _<>x"
    return [
        bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 60)))
        for _ in range(count)
    ]


# ------------------------------------------------------------------ tests
def test_split_headers_crafted():
    for block in CRAFTED_BLOCKS:
        assert M._split_headers(block) == ref_split_headers(block), block


def test_split_headers_fast_path_taken_for_clean_blocks():
    # A clean block goes through the single ``findall`` (the same pairs).
    block = b"From: a@b\nSubject: x\n y\nTo: c"
    assert M._HEADER_FIELD_LF.findall(block) == ref_split_headers(block)
    assert M._split_headers(block) == [
        (b"From", b"a@b"),
        (b"Subject", b"x\n y"),
        (b"To", b"c"),
    ]


def test_split_headers_on_corpus(corpus):
    for msg in corpus:
        head = M._split_message(msg.full)[0]
        assert M._split_headers(head) == ref_split_headers(head)
        assert msg.headers == ref_split_headers(head)
        body = M._split_message(msg.full)[1]
        for chunk in body.split(b"\n--"):  # the MIME parts' heads too
            head = M._split_message(chunk.partition(b"\n")[2])[0]
            assert M._split_headers(head) == ref_split_headers(head)


def test_decode_header_value_folds_crafted_and_random():
    rng = random.Random(11)
    values = [
        b"a\n b", b"a\n\tb", b"a\n\n b", b"a\nb", b"a\n \n\tb", b"a\n\n\t b",
        b"\n\n\t", b"=?utf-8?q?a?=\n =?utf-8?q?b?=", b"a\r\n b", b" x\n\t",
    ]
    values += [
        bytes(rng.choice(b"\n\t a") for _ in range(rng.randrange(12)))
        for _ in range(3000)
    ]
    for value in values:
        assert M.decode_header_value(value) == ref_decode_header_value(value), value


def test_decode_header_value_on_corpus(corpus):
    for msg in corpus:
        for _, value in msg.headers:
            assert M.decode_header_value(value) == ref_decode_header_value(value)


def test_received_unfolding_on_corpus_and_crafted(corpus):
    crafted = ParsedMessage(
        b"Received: from a.example (a.example [192.0.2.1])\n\tby b.example;"
        b" Mon\nReceived: from c\n (d [10.0.0.1] helo=e)\n by f\n"
        b"Received: from x\n\t(y\n\t\n [1.2.3.4]) by\n\tz\n"
        b"Received: from r\r\n (s [5.6.7.8])\r\n by t\r\n"
        b"Subject: s\n\nbody\n"
    )
    assert len(crafted._parse_relays()) == 4
    for msg in [*corpus, crafted]:
        assert ParsedMessage(msg.full)._parse_relays() == ref_parse_relays(msg)


def test_text_uris_crafted_and_random():
    for line in CRAFTED_URI_LINES + _random_uri_lines(3000):
        assert M._text_uris(line) == M._TEXT_URI.findall(line), line


def test_text_uris_on_corpus(corpus):
    checked = 0
    for msg in corpus:
        for line in msg.body_lines + [p.decoded for p in msg.parts]:
            assert M._text_uris(line) == M._TEXT_URI.findall(line)
            checked += bool(M._TEXT_URI.findall(line))
    assert checked > 10


def test_render_html_on_corpus_and_crafted(corpus):
    texts = list(CRAFTED_HTML)
    for msg in corpus:
        for part in msg.parts:
            if part.ctype == "text/html":
                texts.append(M._charset_text(part.decoded, part.charset))
    assert len(texts) > len(CRAFTED_HTML) + 5
    for text in texts:
        got_facts, ref_facts = HtmlFacts(), HtmlFacts()
        got, got_uris = M.render_html(text, got_facts)
        ref, ref_uris = ref_render_html(text, ref_facts)
        assert got == ref
        assert got_uris == ref_uris  # the same process: the same set order
        assert got_facts == ref_facts
        # the counts' keys come first seen first, as before
        assert list(got_facts.tags) == list(ref_facts.tags)
        assert list(got_facts.open_close) == list(ref_facts.open_close)


def test_render_html_accumulates_over_parts():
    got_facts, ref_facts = HtmlFacts(), HtmlFacts()
    for text in CRAFTED_HTML:
        assert M.render_html(text, got_facts) == ref_render_html(text, ref_facts)
    assert got_facts == ref_facts
    assert got_facts.open_close["p"] == ref_facts.open_close["p"]


def test_whole_message_views_on_crafted_mime():
    data = (
        b"From: a@b\nSubject: =?iso-8859-1?q?caf=E9?=\n =?utf-8?b?w6k=?=\n"
        b"Content-Type: multipart/alternative;\n boundary=\"XX\"\n\n"
        b"--XX\nContent-Type: text/plain; charset=x-unknown\n\n"
        b"see www.example.com\n--XX\nContent-Type: text/html; charset=\"utf-8\"\n"
        b"Content-Transfer-Encoding: quoted-printable\n\n"
        b"<p>caf=C3=A9 <a href=3D\"http://h.example/\">x</a></p>&nbsp;y\n"
        b"--XX\nno header line\n--XX--\n"
    )
    msg = ParsedMessage(data)
    assert msg.header("Subject") == "caf\u00e9\u00e9".encode()
    assert msg.headers == ref_split_headers(M._split_message(data)[0])
    assert msg.uris == [b"http://h.example/", b"http://www.example.com"]
    assert msg.body_lines[1:] == [b"caf\xc3\xa9 x y\n"]  # (&nbsp; squeezed)


def test_uris_on_corpus_and_crafted(corpus):
    crafted = ParsedMessage(
        b"From: a@b.c\nSubject: see www.x.org.\nContent-Type: text/plain\n\n"
        b"Go to HTTP://Example.COM/a?b=c, or WWW3.foo.bar; mailto:x@y.z!\n\n"
        b"ftp://f.g/h) and xhttp://no.pe www.x.org. https://t.u/v...\n\n"
        b"twww.no www. (www.p.q) http://example.com/a?b=c\n\nwww.end"
    )
    for msg in [*corpus, crafted]:
        assert ParsedMessage(msg.full).uris == ref_uris(ParsedMessage(msg.full))
    assert crafted.uris[:2] == [b"HTTP://Example.COM/a?b=c", b"http://WWW3.foo.bar"]


OTHER_TEXTS = [
    "a  b\n\nc\td", "caf\u00e9\xa0 x\n \n y", "a\x1cb\n\nc", "a\x85b",
    "\u3000x\u2028y\n\n\nz", "\ud800 lone surrogate\n\n\u200a", "\f\f", "",
    "\u00e9\x1f", "\u0100 wide \x0b\r\n\r\n end", "\U0001f600 \u205f",
]


def test_other_space_chars_are_the_class():
    assert M._OTHER_SPACE_CHARS == tuple(
        c for c in map(chr, range(0x110000)) if M._OTHER_SPACE.match(c)
    )


def test_paragraph_lines_crafted():
    for text in OTHER_TEXTS:
        msg = ParsedMessage(
            b"Subject: s\nContent-Type: text/plain; charset=utf-8\n\n"
            + text.encode("utf-8", errors="surrogatepass")
        )
        ref = ref_paragraph_lines(M._charset_text(msg.parts[0].decoded, "utf-8"))
        assert msg.body_lines == [b"s\n", *ref], text


def test_body_lines_on_corpus(corpus):
    for msg in corpus:
        texts = []
        for part in msg._text_parts():
            text = M._charset_text(part.decoded, part.charset)
            if part.ctype == "text/html":
                text = ref_render_html(text, HtmlFacts())[0]
            texts.append(text)
        ref = ref_paragraph_lines("\n".join(texts))
        assert msg.body_lines[1:] == ref


def test_walk_values_from_the_index(corpus):
    crafted = ParsedMessage(
        b"Content-Type: text/html\nCONTENT-TYPE: text/plain; charset=x\n"
        b"content-transfer-encoding: base64\nSubject: s\n\naGkh\n"
    )
    assert crafted.parts[0].ctype == "text/plain"
    assert crafted.parts[0].decoded == b"hi!"
    for msg in [*corpus, crafted]:
        index = msg._index
        got = {k: index[k][-1] for k in M._MIME_HEADERS if k in index}
        assert got == ref_walk_values(msg.headers)
