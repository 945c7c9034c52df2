"""A mail message as SpamAssassin's rules see it (Mail::SpamAssassin::Message).

Parses RFC 5322 headers and the MIME tree once and builds, on first use, the
views the rule types read, all as octets (``bytes``, UTF-8 after charset
decoding):

- ``header(name)``: decoded (RFC 2047, unfolded) values, one per line, each
  joined by ``\\n``; ``name:raw`` keeps the folding and encoding, ``:addr`` and
  ``:name`` take the first address or display name; pseudo-headers ``ALL``,
  ``ToCc``, ``MESSAGEID``, ``EnvelopeFrom`` and ``X-Spam-Relays-*`` (built from
  the Received headers);
- ``body_lines``: the rendered body text: the Subject first, then every text
  part decoded (base64/quoted-printable, charset), HTML stripped to text (script,
  style and comments dropped, entities decoded), lines joined into paragraphs
  and whitespace runs squeezed (SpamAssassin's paragraph rendering);
- ``rawbody_lines``: the decoded text parts, HTML kept, line by line;
- ``uris``: URIs from HTML attributes (href, src, action...) and from text;
- ``full``: the message as received.

It also keeps the facts the eval tests read (parts, HTML tag and image counts,
text lengths).  Raises ``NotAMessage`` (a ``ValueError``) for input that has no
header block (no ``Name: value`` line before the body).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import quopri
import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import compress

__all__ = ["MimePart", "NotAMessage", "ParsedMessage", "HtmlFacts", "parse_message"]

_HEADER_LINE = re.compile(rb"^([!-9;-~]+)[ \t]*:(.*)$", re.S)
_FOLD = re.compile(rb"\r?\n(?=[ \t])")
_HEADER_SPLIT = re.compile(rb"\r?\n(?![ \t])")
# The same split for a block without CR: a literal first octet, found fast.
_HEADER_SPLIT_LF = re.compile(rb"\n(?![ \t])")
# Twin speed-up: one whole header field (a line of ``_HEADER_LINE`` and its
# continuation lines) of a block without CR, the value's leading blanks
# dropped: ``findall`` gives ``_split_headers``'s pairs in C (see there).
_HEADER_FIELD_LF = re.compile(rb"^([!-9;-~]+)[ \t]*:[ \t]*(.*(?:\n[ \t].*)*)", re.M)
_ENCODED_WORD = re.compile(rb"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_BETWEEN_WORDS = re.compile(rb"(\?=)[ \t\r\n]+(?==\?)")
# A quoted value has one parse only (its elements start with different
# octets, none with '"'), so possessive runs match the same, faster.
_PARAM = re.compile(rb';\s*([\w\-*]+)\s*=\s*(?:"((?:[^"\\]++|\\.)*+)"|([^;\s]+))')
# The attributes part has one parse only (each element starts with a
# different octet and none with ">"), so possessive runs match the same.
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9:]*)((?:[^>\"']++|\"[^\"]*\"|'[^']*')*+)>")
_DROP = re.compile(
    r"<(script|style)\b.*?</\1\s*>|<!--.*?-->|<!\[CDATA\[.*?\]\]>", re.S | re.I
)
_ATTR = re.compile(
    r"([a-zA-Z_:][-a-zA-Z0-9_:.]*)\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>]+))"
)
_BLOCK_TAGS = frozenset(
    "p br div tr td th li ul ol table h1 h2 h3 h4 h5 h6 hr title blockquote pre "
    "dd dt dl center form".split()
)
_URI_ATTRS = frozenset(("href", "src", "action", "background", "cite", "lowsrc"))
# A URI in text: ``(?:\b(?:https?|ftp)://|\bwww\d{0,3}\.|\bmailto:)`` then
# ``[^\s<>"'\])}]+``, case-blind; written to open with a class of its first
# letters (which ``re`` skips to fast) and ``(?<!\w.)`` for the ``\b`` before
# that letter (a word octet): the same matches.
_TEXT_URI = re.compile(
    rb"[fFhHmMwW](?<!\w[fFhHmMwW])"
    rb"(?i:(?<=h)ttps?://|(?<=f)tp://|(?<=w)ww\d{0,3}\.|(?<=m)ailto:)"
    rb"[^\s<>\"'\])}]+"
)
# ``\n+\s*\n+`` written with a literal first character (found fast); both
# match the longest run from a newline that ends in a newline.
_PARAGRAPH = re.compile(r"\n\n*\s*\n+")
# ``[ \t\n\r\x0b\xa0]+`` -> " " without replacing the single spaces by
# themselves: the same text, far fewer replacements.
_SPACES = re.compile(r"[ \t\n\r\x0b\xa0]{2,}|[\t\n\r\x0b\xa0]")
# The white space of ``str.split()`` (``str.isspace``) beyond those and ``\f``:
# a text without it is split at the very runs ``_SPACES`` squeezes.
_OTHER_SPACE = re.compile(
    "[\x1c-\x1f\x85\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
)
# Twin speed-up: its characters one by one, for ``in`` (a fast scan each, none
# at all for one wider than the text's widest) rather than a class test per
# character of a long text.
_OTHER_SPACE_CHARS = tuple(
    "\x1c\x1d\x1e\x1f\x85\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_ADDR = re.compile(rb"<([^<>]*)>|([^\s<>\",;()]+@[^\s<>\",;()]+)")
_RECEIVED_FROM = re.compile(
    rb"from\s+(\S+)\s*\(([^)]*?)\[(\d{1,3}(?:\.\d{1,3}){3})\][^)]*\)"
    rb"(?:.*?\bby\s+(\S+))?",
    re.S | re.I,
)
_EXIM_HELO = re.compile(rb"\]\s*helo=([^\s)]+)")
_PRIVATE_IP = re.compile(
    rb"^(?:10\.|127\.|192\.168\.|172\.(?:1[6-9]|2\d|3[01])\.|169\.254\.)"
)


# Pseudo-headers ``header`` builds (lower-cased), and a memo for ``has_header``:
# name -> its index key, or b"" for a name ``header`` must work out.
_PSEUDO_HEADERS = frozenset(
    ("all", "all-external", "all-untrusted", "tocc", "messageid", "envelopefrom")
)
_PLAIN_KEYS: dict[str, bytes] = {}
# The headers ``ParsedMessage._walk`` reads (lower-cased).
_MIME_HEADERS = (b"content-type", b"content-transfer-encoding", b"content-disposition")
# Twin speed-up: ``header`` spec -> (kind, index key) for a real header with
# no modifier (or one ``_header`` ignores), ``:raw``, ``:addr`` or ``:name``;
# (_SPEC_OTHER, b"") for the others (``_header`` works them out).  Keyed by
# the exact spec, emptied past ``_SPEC_PLANS_SIZE`` specs.
_SPEC_DECODED, _SPEC_RAW, _SPEC_ADDR, _SPEC_NAME, _SPEC_OTHER = range(5)
_SPEC_MODIFIERS = {"raw": _SPEC_RAW, "addr": _SPEC_ADDR, "name": _SPEC_NAME}
_SPEC_PLANS: dict[str, tuple[int, bytes]] = {}
_SPEC_PLANS_SIZE = 10_000
_ABSENT = object()  # not in a message's header memo


def _spec_plan(spec: str) -> tuple[int, bytes]:
    """How ``ParsedMessage.header`` looks *spec* up (see ``_SPEC_PLANS``)."""
    name, _, modifier = spec.partition(":")
    lower = name.lower()
    plan: tuple[int, bytes] = (_SPEC_OTHER, b"")
    if not (
        "|" in name or lower in _PSEUDO_HEADERS or lower.startswith("x-spam-relays-")
    ):
        try:
            key = lower.encode("latin-1")
            plan = (_SPEC_MODIFIERS.get(modifier, _SPEC_DECODED), key)
        except UnicodeEncodeError:  # ``_header`` raises it
            pass
    if len(_SPEC_PLANS) >= _SPEC_PLANS_SIZE:
        _SPEC_PLANS.clear()
    _SPEC_PLANS[spec] = plan
    return plan


class NotAMessage(ValueError):
    """The input has no RFC 5322 header block."""


@dataclass
class MimePart:
    """One leaf of the MIME tree."""

    ctype: str
    charset: str
    encoding: str
    headers: list[tuple[bytes, bytes]]
    raw: bytes
    decoded: bytes = b""
    filename: str = ""
    parent_type: str = ""

    def header(self, name: bytes) -> bytes:
        cache = self.__dict__.get("_header_cache")
        if cache is None:
            # The part's header names, lower-cased, with their values.
            index: dict[bytes, list[bytes]] = {}
            for n, v in self.headers:
                index.setdefault(n.lower(), []).append(v)
            cache = self.__dict__["_header_cache"] = {}
            self.__dict__["_header_index"] = index
        # (kept under the name as given: its value is its lower case's)
        value = cache.get(name)
        if value is None:
            values = self.__dict__["_header_index"].get(name.lower(), ())
            value = cache[name] = b"\n".join(decode_header_value(v) for v in values)
        return value


@dataclass
class HtmlFacts:
    """What the HTML renderer saw (HTMLEval's inputs)."""

    tags: dict[str, int] = field(default_factory=dict)
    open_close: dict[str, int] = field(default_factory=dict)
    image_area: int = 0
    images: int = 0
    raw_len: int = 0
    text_len: int = 0
    uri_text_len: int = 0
    title: str = ""
    charset_html: int = 0


def _split_headers(block: bytes) -> list[tuple[bytes, bytes]]:
    """(name, value) per header field of *block*, the value's leading blanks
    dropped; a malformed line is glued onto the field before it."""
    if b"\r" not in block:
        # Twin speed-up: a match starts only at a field's first line (a
        # continuation line starts with a blank) and runs to its end, so
        # when there are as many matches as fields (``\n`` not followed by
        # a blank, plus one), every field is a header: the loop's pairs.
        fields = _HEADER_FIELD_LF.findall(block)
        newlines = block.count(b"\n")
        if newlines - block.count(b"\n ") - block.count(b"\n\t") + 1 == len(fields):
            return fields
    headers: list[tuple[bytes, bytes]] = []
    split = _HEADER_SPLIT if b"\r" in block else _HEADER_SPLIT_LF
    for line in split.split(block):
        if not line:
            continue
        match = _HEADER_LINE.match(line)
        if match:
            headers.append((match.group(1), match.group(2).lstrip(b" \t")))
        elif headers:  # a malformed continuation: glue it on, as SA does
            headers[-1] = (headers[-1][0], headers[-1][1] + b"\n " + line)
    return headers


def _split_message(data: bytes) -> tuple[bytes, bytes]:
    if data.startswith(b"From ") and b"\n" in data:
        data = data[data.index(b"\n") + 1 :]
    if b"\r" not in data:  # the first "\n\n", as the pattern finds it
        end = data.find(b"\n\n")
        if end < 0:
            return data, b""
        return data[:end], data[end + 2 :]
    match = _BLANK_LINE.search(data)
    if match is None:
        return data, b""
    return data[: match.start()], data[match.end() :]


def _charset_text(data: bytes, charset: str) -> str:
    name = charset.strip().strip('"').lower() or "us-ascii"
    try:
        codecs.lookup(name)
    except LookupError:
        name = "latin-1"
    if name in ("us-ascii", "ascii"):
        name = "utf-8"
    try:
        return data.decode(name)
    except UnicodeDecodeError:
        return data.decode(name if name != "utf-8" else "latin-1", errors="replace")
    except Exception:  # noqa: BLE001 -- codecs raise many types on corrupt input
        return data.decode("latin-1")


def decode_header_value(value: bytes) -> bytes:
    """RFC 2047 decoding and unfolding of one header value, as UTF-8 octets."""
    # (``find`` rather than ``in``: the same answer, faster on bytes)
    if value.find(b"\r") >= 0:
        value = _FOLD.sub(b"", value).replace(b"\r", b"")
    elif value.find(b"\n") >= 0:
        # Twin speed-up: ``_FOLD.sub(b"", value)`` without CR (each newline
        # before a blank dropped) as two ``replace``s: the same octets, no
        # regex call.
        value = value.replace(b"\n ", b" ").replace(b"\n\t", b"\t")
    value = value.strip()
    if value.find(b"=?") < 0:
        return value
    value = _BETWEEN_WORDS.sub(rb"\1", value)

    def word(match: re.Match[bytes]) -> bytes:
        charset = match.group(1).decode("latin-1").split("*")[0]
        payload = match.group(3)
        try:
            if match.group(2) in b"bB":
                raw = base64.b64decode(payload + b"=" * (-len(payload) % 4))
            else:
                raw = quopri.decodestring(payload.replace(b"_", b" "), header=True)
        except (binascii.Error, ValueError):
            return match.group(0)
        return _charset_text(raw, charset).encode("utf-8")

    return _ENCODED_WORD.sub(word, value)


def _params(value: bytes) -> tuple[str, dict[str, str]]:
    main = value.split(b";", 1)[0].strip().lower().decode("latin-1")
    params = {
        m.group(1).decode("latin-1").lower(): (m.group(2) or m.group(3) or b"").decode(
            "latin-1"
        )
        for m in _PARAM.finditer(value)
    }
    return main, params


# Twin speed-up: the octets ``[^A-Za-z0-9+/]`` (which base64 bodies drop) for
# ``bytes.translate`` to delete: the same octets as the regex removed, in C.
_NOT_BASE64 = bytes(
    octet for octet in range(256) if not re.match(rb"[A-Za-z0-9+/]", bytes((octet,)))
)


def _decode_body(raw: bytes, encoding: str) -> bytes:
    if encoding == "base64":
        try:
            cleaned = raw.translate(None, _NOT_BASE64)
            return base64.b64decode(cleaned[: len(cleaned) // 4 * 4])
        except (binascii.Error, ValueError):
            return raw
    if encoding == "quoted-printable":
        return quopri.decodestring(raw)
    return raw


def render_html(text: str, facts: HtmlFacts) -> tuple[str, list[str]]:
    """Strip HTML to visible text; return (text, uris found in attributes)."""
    facts.raw_len += len(text)
    uris: list[str] = []
    title = re.search(r"<title[^>]*>(.*?)</title", text, re.S | re.I)
    if title:
        facts.title = html.unescape(title.group(1)).strip()
    text = _DROP.sub(" ", text)
    # Twin speed-up: one ``split`` gives the text between the tags and each
    # tag's three groups, in C (``[text, closing, name, attrs, text, ...]``).
    parts = _TAG.split(text)
    closings, attributes = parts[1::4], parts[3::4]
    names = [name.lower() for name in parts[2::4]]
    # The counts in bulk: the same keys, first seen first, and the same sums.
    closed = Counter(compress(names, closings))  # the closing tags' names
    tags = facts.tags
    open_close = facts.open_close
    for name, count in Counter(names).items():
        tags[name] = tags.get(name, 0) + count
        open_close[name] = open_close.get(name, 0) + count - 2 * closed[name]
    for name, closing, attrs in zip(names, closings, attributes, strict=True):
        if closing or not attrs.strip():
            continue
        values = {}
        for attr in _ATTR.finditer(attrs):
            values[attr.group(1).lower()] = (
                attr.group(2) or attr.group(3) or (attr.group(4) or "")
            )
        for key in _URI_ATTRS.intersection(values):
            uris.append(html.unescape(values[key]).strip())
        if name == "img":
            facts.images += 1
            try:
                width = int(values.get("width", "0").rstrip("px%") or 0)
                height = int(values.get("height", "0").rstrip("px%") or 0)
            except ValueError:
                width = height = 0
            facts.image_area += width * height
        if name == "meta" and "charset" in attrs.lower():
            facts.charset_html += 1
    # Each tag becomes a newline (a block tag) or nothing, between the texts.
    empty = [""] * len(names)
    parts[1::4] = ["\n" if name in _BLOCK_TAGS else "" for name in names]
    parts[2::4] = empty
    parts[3::4] = empty
    visible = html.unescape("".join(parts))
    facts.text_len += len(visible.strip())
    return visible, uris


class ParsedMessage:
    """A parsed message; views are built on first use and kept."""

    def __init__(self, data: bytes) -> None:
        self.full = data
        head, body = _split_message(data)
        self.headers = _split_headers(head)
        if not self.headers or (
            len(self.headers) < 2 and b"\n" not in head and not body
        ):
            raise NotAMessage("no header block (no 'Name: value' line at the start)")
        first = head.split(b"\n", 1)[0]
        if not _HEADER_LINE.match(first) and not data.startswith(b"From "):
            raise NotAMessage(f"first line {first[:40]!r} is not a header")
        self.raw_body = body
        self.header_bytes = len(head)
        self._index: dict[bytes, list[bytes]] = {}
        index = self._index
        for name, value in self.headers:
            index.setdefault(name.lower(), []).append(value)
        self._cache: dict[str, bytes] = {}
        self._decoded: dict[bytes, bytes] = {}
        self.parts: list[MimePart] = []
        self.html = HtmlFacts()
        self.flags: dict[str, int] = {"missing_mime_head_body_separator": 0}
        self.mime_facts: dict[str, int] = {}
        # Twin speed-up: the top level's MIME headers (each one's last value)
        # from the index, without lower-casing every name again.
        mime = {key: index[key][-1] for key in _MIME_HEADERS if key in index}
        self._walk(self.headers, body, depth=0, parent_type="", values=mime)
        self._rendered: list[bytes] | None = None
        self._body_text: bytes | None = None
        self._raw_lines: list[bytes] | None = None
        self._uris: list[bytes] | None = None
        self._relay_list: list[tuple[bool, bytes]] | None = None
        self.text_plain = ""
        self.text_html = ""

    # ----------------------------------------------------------- MIME tree
    def _walk(
        self,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        depth: int,
        parent_type: str,
        values: dict[bytes, bytes] | None = None,
    ) -> None:
        """Add the leaves under *headers* and *body* to ``parts``; *values*,
        when given, are the MIME headers' last values (lower-case names)."""
        if values is None:
            values = {n.lower(): v for n, v in headers}
        ctype, params = _params(values.get(b"content-type", b"text/plain"))
        if "/" not in ctype:
            ctype = "text/plain"
        encoding = values.get(b"content-transfer-encoding", b"7bit").strip().lower()
        boundary = params.get("boundary")
        if ctype.startswith("multipart/") and boundary and depth < 20:
            self.mime_facts["multipart"] = self.mime_facts.get("multipart", 0) + 1
            delimiter = b"--" + boundary.encode("latin-1")
            chunks = body.split(delimiter)
            for chunk in chunks[1:]:
                if chunk.startswith(b"--"):
                    break
                chunk = chunk[1:] if chunk.startswith(b"\n") else chunk
                chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk
                head, sub = _split_message(chunk)
                if not sub and head and not _HEADER_LINE.match(head.split(b"\n")[0]):
                    head, sub = b"", chunk
                self._walk(_split_headers(head), sub, depth + 1, ctype)
            return
        if ctype == "message/rfc822" and depth < 20:
            head, sub = _split_message(body)
            self._walk(_split_headers(head), sub, depth + 1, ctype)
            return
        disposition = _params(values.get(b"content-disposition", b""))[1]
        part = MimePart(
            ctype=ctype,
            charset=params.get("charset", ""),
            encoding=encoding.decode("latin-1"),
            headers=headers,
            raw=body,
            filename=disposition.get("filename", params.get("name", "")),
            parent_type=parent_type,
        )
        if ctype.startswith("text/") or not part.filename:
            part.decoded = _decode_body(body, part.encoding)
        self.parts.append(part)

    # ------------------------------------------------------------- headers
    def header(self, spec: str) -> bytes | None:
        """A header (or pseudo-header) as header rules see it; None if absent."""
        cache = self._cache
        value = cache.get(spec, _ABSENT)
        if value is not _ABSENT:
            return value  # type: ignore[return-value]
        # Twin speed-up: a real header's index key and modifier come from a
        # memo of the spec (the same value as ``_header`` works out).
        plan = _SPEC_PLANS.get(spec)
        if plan is None:
            plan = _spec_plan(spec)
        kind, key = plan
        value = self._header(spec) if kind == _SPEC_OTHER else self._real(kind, key)
        cache[spec] = value  # type: ignore[assignment]
        return value

    @property
    def body_text(self) -> bytes:
        """The rendered body without the Subject: ``body_lines[1:]`` joined."""
        text = self._body_text
        if text is None:
            text = self._body_text = b"".join(self.body_lines[1:])
        return text

    def _decode(self, value: bytes) -> bytes:
        """``decode_header_value(value)``, once per value and message."""
        decoded = self._decoded.get(value)
        if decoded is None:
            decoded = self._decoded[value] = decode_header_value(value)
        return decoded

    def has_header(self, name: str) -> bool:
        """Is ``name`` present, as ``header(name + ":raw") is not None`` says?"""
        key = _PLAIN_KEYS.get(name)
        if key is None:
            lower = name.lower()
            plain = not (
                "|" in name
                or ":" in name
                or lower in _PSEUDO_HEADERS
                or lower.startswith("x-spam-relays-")
            )
            key = _PLAIN_KEYS[name] = lower.encode("latin-1") if plain else b""
        if key:  # a real header: present when indexed (never with no value)
            return key in self._index
        return self.header(name + ":raw") is not None

    def _header(self, spec: str) -> bytes | None:
        name, _, modifier = spec.partition(":")
        if "|" in name:
            found = [
                self.header(f"{n}:{modifier}" if modifier else n)
                for n in name.split("|")
            ]
            got = [v for v in found if v is not None]
            return b"\n".join(got) if got else None
        key = name.lower()
        if key in ("all-external", "all-untrusted"):  # the same text as ALL's
            return self.header("ALL:raw" if modifier == "raw" else "ALL")
        if key == "all":
            if modifier == "raw":
                return b"".join(n + b": " + v + b"\n" for n, v in self.headers)
            decode = self._decode
            return b"".join(n + b": " + decode(v) + b"\n" for n, v in self.headers)
        if key == "tocc":
            to, cc = self.header("To"), self.header("Cc")
            if to is None and cc is None:
                return None
            return b", ".join(v for v in (to, cc) if v)
        if key == "messageid":
            ids = [
                self.header(n)
                for n in ("Message-Id", "Resent-Message-Id", "X-Message-Id")
            ]
            got = [v for v in ids if v]
            return b"\n".join(got) if got else None
        if key == "envelopefrom":
            value = self.header("Return-Path:addr") or self.header(
                "X-Envelope-From:addr"
            )
            return value
        if key.startswith("x-spam-relays-"):
            return self._relays(key[len("x-spam-relays-") :])
        return self._real(
            _SPEC_MODIFIERS.get(modifier, _SPEC_DECODED), key.encode("latin-1")
        )

    def _real(self, kind: int, key: bytes) -> bytes | None:
        """A real header (lower-case index *key*) as the modifier *kind* asks:
        every value decoded and joined, raw and joined, or the first one's
        address or display name."""
        values = self._index.get(key)
        if not values:
            return None
        if kind == _SPEC_RAW:
            return b"\n".join(values)
        decode = self._decode
        got = [decode(v) for v in values]
        if kind == _SPEC_ADDR:
            return _first_address(got[0])
        if kind == _SPEC_NAME:
            return _display_name(got[0])
        return got[0] if len(got) == 1 else b"\n".join(got)

    def _relays(self, which: str) -> bytes:
        relays = self._relay_list
        if relays is None:
            relays = self._relay_list = self._parse_relays()
        if which in ("external", "untrusted"):
            chosen = [text for internal, text in relays if not internal]
        else:
            chosen = [text for internal, text in relays if internal]
        return b" ".join(chosen)

    def _parse_relays(self) -> list[tuple[bool, bytes]]:
        """(internal?, relay text) per parsed Received header, parsed once."""
        relays = []
        for value in self._index.get(b"received", []):
            # Twin speed-up: searched as folded.  The pattern takes a newline
            # or CR as it takes a space (``\s``, ``\S``, ``\b``, ``[^)]``, ``.``
            # with re.S) and, of its groups, only the comment can hold white
            # space, which is used split at white space: unfolding (each line
            # break before a blank made a space) changes no relay.
            match = _RECEIVED_FROM.search(value)
            if not match:
                continue
            helo, comment, ip, by = match.groups()
            rdns = comment.strip().split()[0] if comment.strip() else b""
            if rdns.startswith(b"helo="):
                rdns = b""
            exim_helo = _EXIM_HELO.search(match.group(0))
            if exim_helo and not comment.strip():  # Exim: from RDNS ([IP] helo=HELO)
                rdns, helo = helo, exim_helo.group(1)
            internal = bool(_PRIVATE_IP.match(ip))
            relays.append(
                (
                    internal,
                    b"[ ip="
                    + ip
                    + b" rdns="
                    + rdns
                    + b" helo="
                    + helo
                    + b" by="
                    + (by or b"").rstrip(b";")
                    + b" ident= envfrom= intl="
                    + (b"1" if internal else b"0")
                    + b" id= auth= msa=0 ]",
                )
            )
        return relays

    def last_external_ip(self) -> str:
        relays = self._relays("external")
        match = re.search(rb"ip=(\S+)", relays)
        return match.group(1).decode("latin-1") if match else ""

    # --------------------------------------------------------------- bodies
    def _text_parts(self) -> list[MimePart]:
        chosen = []
        # In a multipart/alternative, the HTML alternative is the one rendered.
        html_alternative = any(
            p.ctype == "text/html" and p.parent_type == "multipart/alternative"
            for p in self.parts
        )
        for part in self.parts:
            if not part.ctype.startswith("text/"):
                continue
            if (
                html_alternative
                and part.ctype == "text/plain"
                and part.parent_type == "multipart/alternative"
            ):
                continue
            chosen.append(part)
        return chosen

    @property
    def body_lines(self) -> list[bytes]:
        """Rendered paragraphs, Subject first, each ending in ``\\n``."""
        if self._rendered is None:
            self._render()
        return self._rendered  # type: ignore[return-value]

    def _render(self) -> None:
        texts: list[str] = []
        uris: list[str] = []
        plain: list[str] = []
        htmls: list[str] = []
        for part in self._text_parts():
            text = _charset_text(part.decoded, part.charset)
            if part.ctype == "text/html":
                htmls.append(text)
                text, found = render_html(text, self.html)
                uris.extend(found)
            else:
                plain.append(text)
            texts.append(text)
        self.text_plain = "\n".join(plain)
        self.text_html = "\n".join(htmls)
        text = "\n".join(texts)
        text = _PARAGRAPH.sub("\f", text)
        subject = self.header("Subject") or b""
        lines = [subject + b"\n"]
        for paragraph in _paragraphs(text):
            if paragraph:
                lines.append(paragraph.encode("utf-8", errors="replace") + b"\n")
        self._rendered = lines
        self._html_uris = uris

    @property
    def rawbody_lines(self) -> list[bytes]:
        """Decoded text parts (HTML kept), line by line."""
        if self._raw_lines is None:
            lines: list[bytes] = []
            for part in self.parts:
                if part.ctype.startswith("text/"):
                    lines.extend(part.decoded.splitlines(keepends=True))
            self._raw_lines = lines
        return self._raw_lines

    @property
    def uris(self) -> list[bytes]:
        """URIs from HTML attributes and from the text, in order, de-duplicated."""
        if self._uris is None:
            found: list[bytes] = []
            for uri in getattr(self, "_html_uris", None) or self._html_uri_list():
                found.append(uri.encode("utf-8", errors="replace"))
            # Twin speed-up: the rendered paragraphs at once (``body_text``,
            # kept for Bayes), as the lines were one by one: each ends in a
            # newline, which no match holds and which the look-behind takes
            # as the start of a text.  ``_text_uris`` finds no match where
            # the old pre-checks (no "://", "www" or "mailto:") skipped.
            for text in [self.body_text] + [
                p.decoded for p in self.parts if p.ctype == "text/plain"
            ]:
                for uri in _text_uris(text):
                    uri = uri.rstrip(b".,;:!?")
                    if uri[:3].lower() == b"www":
                        uri = b"http://" + uri
                    found.append(uri)
            self._uris = list(dict.fromkeys(found))
        return self._uris

    def _html_uri_list(self) -> list[str]:
        self.body_lines  # noqa: B018 -- rendering collects the HTML URIs
        return self._html_uris


def _paragraphs(text: str) -> list[str]:
    r"""The ``\f``-separated paragraphs of *text*, each white-space run
    (``[ \t\n\r\x0b\xa0]+``) squeezed to one space, spaces stripped at
    both ends.  When the text holds no other white space (``\f`` splits it
    first), ``" ".join(paragraph.split())`` does the same in C, faster than
    ``_SPACES.sub`` (which tries a match at every single space)."""
    if text.isascii():
        plain = (
            "\x1c" not in text
            and "\x1d" not in text
            and "\x1e" not in text
            and "\x1f" not in text
        )
    else:  # (``_OTHER_SPACE.search(text) is None``, see ``_OTHER_SPACE_CHARS``)
        plain = not any(map(text.__contains__, _OTHER_SPACE_CHARS))
    if plain:
        return [" ".join(paragraph.split()) for paragraph in text.split("\f")]
    return [paragraph.strip(" ") for paragraph in _SPACES.sub(" ", text).split("\f")]


# How a ``_TEXT_URI`` match starts (lower-cased): "http" for http:// and https://.
_URI_STARTS = (b"http", b"ftp://", b"www", b"mailto:")


def _text_uris(line: bytes) -> list[bytes]:
    """``_TEXT_URI.findall(line)``: the URIs of *line*, left to right.

    Twin speed-up: every match starts where the lower-cased line holds one of
    ``_URI_STARTS``; ``bytes.find`` jumps to the next such place and the
    pattern is tried there only (its look-behinds see the octets before), in
    place of the scan testing every octet against the pattern's first class.
    Places are tried in order and the next search starts where a match ends:
    ``findall``'s matches."""
    lower = line.lower()
    match = _TEXT_URI.match
    found: list[bytes] = []
    nexts = [lower.find(start) for start in _URI_STARTS]
    while True:
        live = [at for at in nexts if at >= 0]
        if not live:
            return found
        at = min(live)
        uri = match(line, at)
        if uri is None:
            pos = at + 1
        else:
            found.append(uri.group())
            pos = uri.end()
        nexts = [
            at if at < 0 or at >= pos else lower.find(start, pos)
            for at, start in zip(nexts, _URI_STARTS, strict=True)
        ]


def _first_address(value: bytes) -> bytes:
    match = _ADDR.search(value)
    if not match:
        return value.strip()
    return (match.group(1) if match.group(1) is not None else match.group(2)).strip()


def _display_name(value: bytes) -> bytes:
    if b"<" in value:
        return value.split(b"<", 1)[0].strip().strip(b'"').strip()
    match = re.search(rb"\(([^)]*)\)", value)
    return match.group(1).strip() if match else b""


def parse_message(data: bytes) -> ParsedMessage:
    """Parse a message; raises ``NotAMessage`` when it has no header block."""
    return ParsedMessage(data)
