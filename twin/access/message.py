"""A message as IMAP and POP3 present it: CRLF text, header fields, MIME tree.

Stores keep messages as delivered (maildir files and mbox spools written by
Unix tools have bare LF line ends); both protocols speak CRLF, so text is
converted on the way out and sizes are CRLF sizes (RFC 3501 RFC822.SIZE,
RFC 1939 octet counts), as UW IMAP and Cyrus report them.

The MIME parser works on raw bytes so BODYSTRUCTURE sizes and line counts are
exact; it is bounded (``MAX_DEPTH`` nesting, ``MAX_PARTS`` parts) so a hostile
message cannot exhaust the server. ``parse_lf`` gives the same tree for a
message as stored (bare LF ends, no CR) without building its CRLF text: it
works on offsets and keeps only the headers and the parts' CRLF sizes and
line counts (``Span``), which is what an index needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

MAX_DEPTH = 20
MAX_PARTS = 500

_BARE_LF = re.compile(rb"(?<!\r)\n")
_PARAM = re.compile(
    rb';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)', re.DOTALL
)


_NUMPY_COUNT_BYTES = 6144  # below this bytes.count is as fast as numpy
_COUNT_CHUNK_BYTES = 1 << 18  # compared in cache-sized pieces


def count_lf(raw: bytes, start: int, end: int) -> int:
    """``raw.count(b"\\n", start, end)`` for 0 <= start, end <= len(raw) (none
    when *start* is past *end*).

    ``bytes.count`` of one byte runs at under 1 GB/s; a numpy comparison over
    the same memory (no copy) is about five times faster on large spans, such
    as the base64 attachments that make up most of a mailbox's bytes.
    """
    if end - start < _NUMPY_COUNT_BYTES:
        return raw.count(b"\n", start, end)
    total = 0
    while start < end:
        stop = min(end, start + _COUNT_CHUNK_BYTES)
        total += np.count_nonzero(np.frombuffer(raw, np.uint8, stop - start, start)
                                  == 10)
        start = stop
    return int(total)


def to_crlf(data: bytes) -> bytes:
    """*data* with every bare LF turned into CRLF."""
    if b"\r" not in data:
        return data.replace(b"\n", b"\r\n")
    # the same as _BARE_LF.sub(b"\r\n", data), in two C passes: CRLF pairs
    # cannot overlap, so folding them to LF and back changes only bare LFs
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def crlf_size(data: bytes) -> int:
    """Length *data* will have after ``to_crlf``."""
    return len(data) + data.count(b"\n") - data.count(b"\r\n")


def split_message(text: bytes) -> tuple[bytes, bytes]:
    """Split CRLF *text* into (header including the blank line, body)."""
    if text.startswith(b"\r\n"):
        return b"\r\n", text[2:]
    end = text.find(b"\r\n\r\n")
    if end < 0:
        if text.endswith(b"\r\n"):
            return text + b"\r\n", b""
        return text + b"\r\n\r\n", b""
    return text[: end + 4], text[end + 4 :]


def header_fields(header: bytes) -> list[tuple[bytes, bytes]]:
    """Fields of a CRLF *header* as (lower-case name, raw bytes with folding)."""
    fields: list[tuple[bytes, bytes]] = []
    for line in header.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and fields:
            name, raw = fields[-1]
            fields[-1] = (name, raw + line + b"\r\n")
            continue
        colon = line.find(b":")
        name = line[:colon].strip().lower() if colon > 0 else b""
        fields.append((name, line + b"\r\n"))
    return fields


def field_value(header: bytes, name: bytes) -> bytes | None:
    """Unfolded value of the first *name* field (lower-case), or None."""
    if name not in header.lower():
        return None  # no field can have that name (the usual case)
    for fname, raw in header_fields(header):
        if fname == name:
            value = raw[raw.find(b":") + 1 :]
            return b" ".join(value.split(b"\r\n")).strip()
    return None


def field_map(header: bytes) -> dict[bytes, list[bytes]]:
    """The first field of each name of a CRLF *header*, in one pass: lower-case
    name -> [the rest of its line after the colon, continuation lines...];
    ``unfold`` of an entry is what ``field_value`` gives for the name."""
    if b"\r\n " not in header and b"\r\n\t" not in header:
        # no continuation line (the usual header): every line is a field;
        # keys are set last to first so the first of each name stays
        out = {}
        for name, colon, rest in reversed(
                [line.partition(b":") for line in header.split(b"\r\n") if line]):
            if colon:
                out[name.strip().lower()] = [rest]
            else:  # no colon: no name, the whole line (as the loop below)
                out[b""] = [name]
        return out
    return _field_map(header)


def _field_map(header: bytes) -> dict[bytes, list[bytes]]:
    """``field_map``, line by line (any header)."""
    out: dict[bytes, list[bytes]] = {}
    pieces: list[bytes] | None = None  # the field being continued, if kept
    seen = False
    for line in header.split(b"\r\n"):
        if not line:
            continue
        if seen and line[0] in (32, 9):  # a continuation line (space, tab)
            if pieces is not None:
                pieces.append(line)
            continue
        seen = True
        colon = line.find(b":")
        name = line[:colon].strip().lower() if colon > 0 else b""
        if name in out:
            pieces = None
        else:
            pieces = out[name] = [line[colon + 1 :]]
    return out


def unfold(pieces: list[bytes] | None) -> bytes | None:
    """A ``field_map`` entry as its unfolded value (None stays None)."""
    if pieces is None:
        return None
    return (pieces[0] if len(pieces) == 1 else b" ".join(pieces)).strip()


_SELECTORS: dict[frozenset[bytes], re.Pattern[bytes] | None] = {}
_SELECTORS_KEEP = 256
_PLAIN_NAME = re.compile(rb"[!-9;-~]+\Z")  # printable ASCII, no colon or space


def _selector(names: frozenset[bytes]) -> re.Pattern[bytes] | None:
    """A pattern matching the whole CRLF lines of the fields named *names*
    (lower case), as ``header_fields`` names them; None when a name is not
    plain enough for one."""
    known = _SELECTORS.get(names, False)
    if known is not False:
        return known
    pattern = None
    if names and all(_PLAIN_NAME.match(name) for name in names):
        pattern = re.compile(
            rb"^[ \t\x0b\x0c]*(?:" + b"|".join(re.escape(n) for n in sorted(names))
            + rb")[ \t\x0b\x0c]*:[^\r\n]*\r\n", re.MULTILINE | re.IGNORECASE)
    if len(_SELECTORS) < _SELECTORS_KEEP:
        _SELECTORS[names] = pattern
    return pattern


def select_fields(header: bytes, names: frozenset[bytes], keep: bool) -> bytes:
    """Header fields whose name is (*keep*) or is not in *names*, plus CRLF."""
    if (keep and header.endswith(b"\r\n") and b"\r\n " not in header
            and b"\r\n\t" not in header):
        # no continuation lines and every CR and LF in CRLF pairs: a field is
        # one whole line, found by a pattern in one C pass
        pairs = header.count(b"\r\n")
        if header.count(b"\r") == pairs and header.count(b"\n") == pairs:
            pattern = _selector(names)
            if pattern is not None:
                return b"".join(pattern.findall(header)) + b"\r\n"
    out = [raw for name, raw in header_fields(header) if (name in names) == keep]
    out.append(b"\r\n")
    return b"".join(out)


def parse_params(value: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """Split a Content-Type style value into (main value, [(name, value)])."""
    semi = value.find(b";")
    main = (value if semi < 0 else value[:semi]).strip()
    params = []
    if semi >= 0:
        for match in _PARAM.finditer(value[semi:]):
            raw = match.group(2).strip()
            if raw[:1] == b'"':
                raw = re.sub(rb"\\(.)", rb"\1", raw[1:-1])
            params.append((match.group(1).lower(), raw))
    return main, params


@dataclass(slots=True)
class Part:
    """One MIME entity: its header, body and, for containers, what it holds."""

    header: bytes
    body: bytes
    maintype: bytes = b"text"
    subtype: bytes = b"plain"
    params: list[tuple[bytes, bytes]] = field(default_factory=list)
    children: list[Part] = field(default_factory=list)
    message: Part | None = None


def parse_mime(text: bytes) -> Part:
    """Parse CRLF message *text* into a bounded MIME tree."""
    budget = [MAX_PARTS]
    return _parse(text, b"text/plain", 0, budget)


def _parse(text: bytes, default: bytes, depth: int, budget: list[int]) -> Part:
    header, body = split_message(text)
    part = Part(header=header, body=body)
    budget[0] -= 1
    _set_type(part, field_value(header, b"content-type"), default)
    if depth >= MAX_DEPTH or budget[0] <= 0:
        return part
    if part.maintype == b"multipart":
        boundary = dict(part.params).get(b"boundary")
        if boundary:
            inner = b"message/rfc822" if part.subtype == b"digest" else b"text/plain"
            for chunk in _split_multipart(body, boundary):
                if budget[0] <= 0:
                    break
                part.children.append(_parse(chunk, inner, depth + 1, budget))
    elif part.maintype == b"message" and part.subtype == b"rfc822":
        part.message = _parse(body, b"text/plain", depth + 1, budget)
    return part


def _split_multipart(body: bytes, boundary: bytes) -> list[bytes]:
    marker = b"--" + boundary
    chunks: list[bytes] = []
    start = -1
    pos = 0 if body.startswith(marker) else body.find(b"\r\n" + marker)
    while pos >= 0:
        line_start = pos if pos == 0 and body.startswith(marker) else pos + 2
        after = line_start + len(marker)
        if start >= 0:
            chunks.append(body[start:pos])
        if body[after : after + 2] == b"--":
            return chunks
        eol = body.find(b"\r\n", after)
        if eol < 0:
            return chunks
        start = eol + 2
        pos = body.find(b"\r\n" + marker, eol)
    if start >= 0:
        chunks.append(body[start:])
    return chunks


@dataclass(slots=True)
class Span:
    """A MIME entity as ``parse_lf`` measures it: ``Part`` without the body
    bytes, only their CRLF size and line count (as BODYSTRUCTURE reports),
    and ``newlines``, the LFs of the whole entity as stored."""

    header: bytes
    size: int = 0
    lines: int = 0
    newlines: int = 0
    fields: dict[bytes, list[bytes]] = field(default_factory=dict)  # field_map
    maintype: bytes = b"text"
    subtype: bytes = b"plain"
    params: list[tuple[bytes, bytes]] = field(default_factory=list)
    children: list[Span] = field(default_factory=list)
    message: Span | None = None


def parse_lf(raw: bytes) -> tuple[Span, int] | None:
    """The tree ``parse_mime(to_crlf(raw))`` would give, measured in place,
    and ``crlf_size(raw)``; None when *raw* holds a CR (then use
    ``parse_mime``).

    Without CRs every CRLF of the converted text is one LF of *raw*, so each
    search for CRLF is a search for LF at the matching offset and sizes are
    lengths plus LF counts; only headers are converted, and each LF is
    counted once (a container's count is its parts' plus what lies between).
    """
    if b"\r" in raw:
        return None
    root = _parse_lf(raw, 0, len(raw), b"text/plain", 0, [MAX_PARTS])
    return root, len(raw) + root.newlines


def parse_lf_bare(raw: bytes) -> tuple[Span, int]:
    """``parse_lf(raw)`` for *raw* known to hold no CR (not looked for)."""
    root = _parse_lf(raw, 0, len(raw), b"text/plain", 0, [MAX_PARTS])
    return root, len(raw) + root.newlines


def parse_crlf_leaf(raw: bytes) -> tuple[Span, int] | None:
    """``parse_lf(raw.replace(b"\\r\\n", b"\\n"))`` for *raw* whose every CR
    and LF is in a CRLF pair (as SMTP delivers) and whose entity is a leaf (no
    multipart with a boundary, no message/rfc822) with a header and a blank
    line after it; None for any other *raw* (then convert and parse). The
    text is measured where it stands: no copy, one count of its lines."""
    crlf = raw.count(b"\r\n")
    if raw.count(b"\n") != crlf or raw.count(b"\r") != crlf or raw[:2] == b"\r\n":
        return None
    blank = raw.find(b"\r\n\r\n")
    if blank < 0:
        return None
    body = blank + 4
    header = raw[:body]
    counted = header.count(b"\n")  # the header's LFs in the LF form
    part = Span(header, newlines=counted)
    part.fields = field_map(header)
    _set_type(part, unfold(part.fields.get(b"content-type")), b"text/plain")
    if 0 < MAX_DEPTH and MAX_PARTS > 1 and (
            (part.maintype == b"multipart" and dict(part.params).get(b"boundary"))
            or (part.maintype == b"message" and part.subtype == b"rfc822")):
        return None  # parts inside: the general parse
    count = crlf - counted  # the body's LFs in the LF form
    end = len(raw)
    part.size = end - body  # (the LF form's body length plus its LFs)
    part.lines = count + (1 if end > body and raw[end - 1] != 10 else 0)
    part.newlines += count
    return part, end


def _parse_lf(raw: bytes, start: int, end: int, default: bytes, depth: int,
              budget: list[int]) -> Span:
    # split_message: the header with its blank line, then the body
    if start < end and raw[start] == 10:
        part = Span(b"\r\n", newlines=1)
        body = start + 1
    else:
        blank = raw.find(b"\n\n", start, end)
        if blank < 0:
            lf = raw[start:end]
            header = lf.replace(b"\n", b"\r\n")
            part = Span(header + (b"\r\n" if end > start and raw[end - 1] == 10
                                  else b"\r\n\r\n"),
                        newlines=len(header) - len(lf))
            body = end
        else:
            header = raw[start : blank + 2].replace(b"\n", b"\r\n")
            body = blank + 2
            part = Span(header, newlines=len(header) - (body - start))
    budget[0] -= 1
    part.fields = field_map(part.header)
    _set_type(part, unfold(part.fields.get(b"content-type")), default)
    count = -1  # LFs of the body, once known
    if depth < MAX_DEPTH and budget[0] > 0:
        if part.maintype == b"multipart":
            boundary = dict(part.params).get(b"boundary")
            if boundary:
                inner = (b"message/rfc822" if part.subtype == b"digest"
                         else b"text/plain")
                count, covered = 0, body
                for first, last in _split_lf(raw, body, end, boundary):
                    if budget[0] <= 0:
                        break
                    child = _parse_lf(raw, first, last, inner, depth + 1, budget)
                    part.children.append(child)
                    count += count_lf(raw, covered, first) + child.newlines
                    covered = max(first, last)  # a chunk may end before it starts
                count += count_lf(raw, covered, end)
        elif part.maintype == b"message" and part.subtype == b"rfc822":
            part.message = _parse_lf(raw, body, end, b"text/plain", depth + 1,
                                     budget)
            count = part.message.newlines
    if count < 0:
        count = count_lf(raw, body, end)
    part.size = end - body + count
    part.lines = count + (1 if end > body and raw[end - 1] != 10 else 0)
    part.newlines += count
    return part


def _split_lf(raw: bytes, body: int, end: int, boundary: bytes
              ) -> list[tuple[int, int]]:
    """``_split_multipart`` of ``raw[body:end]``, as (start, end) offsets."""
    marker = b"--" + boundary
    lead = b"\n" + marker
    chunks: list[tuple[int, int]] = []
    start = -1
    opening = raw.startswith(marker, body, end)
    pos = body if opening else raw.find(lead, body, end)
    while pos >= 0:
        after = (pos if opening and pos == body else pos + 1) + len(marker)
        if start >= 0:
            chunks.append((start, pos))
        if raw.startswith(b"--", after, end):
            return chunks
        eol = raw.find(b"\n", after, end)
        if eol < 0:
            return chunks
        start = eol + 1
        pos = raw.find(lead, eol, end)
    if start >= 0:
        chunks.append((start, end))
    return chunks


_TYPES: dict[tuple[bytes | None, bytes], tuple[bytes, bytes, tuple]] = {}
_TYPES_KEEP = 4096
_TYPES_MAX_BYTES = 512


def _set_type(part, ctype: bytes | None, default: bytes) -> None:
    """Set *part*'s maintype, subtype and params from its Content-Type value
    *ctype* (RFC 2045 5.2: a missing or unusable one means *default*).
    Remembers short values (a few types and boundaries recur)."""
    key = (ctype, default)
    known = _TYPES.get(key)
    if known is None:
        _set_type_parsed(part, ctype, default)
        if (len(_TYPES) < _TYPES_KEEP
                and (ctype is None or len(ctype) <= _TYPES_MAX_BYTES)):
            _TYPES[key] = (part.maintype, part.subtype, tuple(part.params))
        return
    part.maintype, part.subtype, params = known
    part.params = list(params)


def _set_type_parsed(part, ctype: bytes | None, default: bytes) -> None:
    """``_set_type`` without the memo."""
    main, params = parse_params(ctype if ctype else default)
    slash = main.find(b"/")
    if slash > 0 and main[slash + 1 :].strip():
        part.maintype = main[:slash].strip().lower()
        part.subtype = main[slash + 1 :].strip().lower()
        part.params = params
    else:
        part.maintype, part.subtype = default.split(b"/")
        part.params = [] if ctype else params
