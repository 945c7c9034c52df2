"""A message as IMAP and POP3 present it: CRLF text, header fields, MIME tree.

Stores keep messages as delivered (maildir files and mbox spools written by
Unix tools have bare LF line ends); both protocols speak CRLF, so text is
converted on the way out and sizes are CRLF sizes (RFC 3501 RFC822.SIZE,
RFC 1939 octet counts), as UW IMAP and Cyrus report them.

The MIME parser works on raw bytes so BODYSTRUCTURE sizes and line counts are
exact; it is bounded (``MAX_DEPTH`` nesting, ``MAX_PARTS`` parts) so a hostile
message cannot exhaust the server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_DEPTH = 20
MAX_PARTS = 500

_BARE_LF = re.compile(rb"(?<!\r)\n")
_PARAM = re.compile(
    rb';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)', re.DOTALL
)


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


def select_fields(header: bytes, names: frozenset[bytes], keep: bool) -> bytes:
    """Header fields whose name is (*keep*) or is not in *names*, plus CRLF."""
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
    ctype = field_value(header, b"content-type")
    main, params = parse_params(ctype if ctype else default)
    slash = main.find(b"/")
    if slash > 0 and main[slash + 1 :].strip():
        part.maintype = main[:slash].strip().lower()
        part.subtype = main[slash + 1 :].strip().lower()
        part.params = params
    else:
        part.maintype, part.subtype = default.split(b"/")
        part.params = [] if ctype else params
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
