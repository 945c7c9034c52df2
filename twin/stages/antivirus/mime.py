"""Taking mail and zip archives apart for the scanner, defensively, with bounds.

Twins what libclamav's mbox.c and unzip.c hand to the matcher: every leaf MIME
part decoded (base64, quoted-printable, uuencode; a ``begin NNN name`` block
inside a text part is uudecoded too), nested multiparts and message/rfc822
parts followed up to a depth bound, and zip members inflated with ``zipfile``.

Mail is parsed the way a virus scanner must, not the way a mail reader may:
header names lose RFC 822 comments (``Content-Type(x):``), every boundary that
any Content-Type or Content-Disposition header names (also RFC 2231
``boundary*=``) splits the body, and closing delimiters split like opening
ones, so a part hidden by contradictory headers is still found (the ClamAV
``clam.mail-*.eml`` edge cases).

Counts what it did (parts, decoded bytes, members, inflated bytes) for the
stage to turn into Work; raises nothing for malformed input (damage is
tolerated and counted as an error string).
"""

from __future__ import annotations

import binascii
import io
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_UNFOLD = re.compile(rb"\r?\n[ \t]+")
_COMMENT = re.compile(rb"\([^()]*\)")
_HEADER = re.compile(rb"([!-9;-~][ !-9;-~\t]*?)[ \t]*:[ \t]*(.*)", re.S)
_BOUNDARY = re.compile(rb'boundary(\*?)\s*=\s*(?:"([^"]*)"|([^;\s]+))', re.I)
_FILENAME = re.compile(rb'(?:file)?name\*?\s*=\s*(?:"([^"]*)"|([^;\s]+))', re.I)
_UU_BEGIN = re.compile(rb"^begin[ \t]+[0-7]{3,4}[ \t]+(.+?)\r?$", re.M)
_BASE64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")
_MAIL_FIRST_LINE = re.compile(
    rb"(?:From |(?:from|to|subject|received|return-path|date|message-id|"
    rb"mime-version|delivered-to|reply-to|sender|content-type|x-[\w-]+)"
    rb"[ \t]*(?:\([^)]*\))?[ \t]*:)",
    re.I,
)


@dataclass(frozen=True, slots=True)
class Part:
    """A decoded leaf: its bytes, name and what decoding it took."""

    data: bytes
    name: str
    encoding: str
    encoded_bytes: int
    depth: int


@dataclass(slots=True)
class MailParts:
    parts: list[Part] = field(default_factory=list)
    entities: int = 0  # MIME entities whose headers were parsed
    decoded_bytes: int = 0  # encoded input run through a decoder
    depth_exceeded: bool = False


def looks_like_mail(data: bytes) -> bool:
    """ClamAV-style file typing: an mbox ``From `` line or a known header first."""
    return _MAIL_FIRST_LINE.match(data, 0, 200) is not None


def split_headers(entity: bytes) -> tuple[dict[bytes, list[bytes]], bytes]:
    """Headers by lower-case name (comments removed), and the body."""
    if entity.startswith(b"From "):
        newline = entity.find(b"\n")
        entity = entity[newline + 1 :] if newline >= 0 else b""
    if entity[:1] == b"\n" or entity[:2] == b"\r\n":  # no headers: body only
        return {}, entity[1:] if entity[:1] == b"\n" else entity[2:]
    end = _HEADER_END.search(entity)
    if end is None:
        head, body = entity, b""
    else:
        head, body = entity[: end.start()], entity[end.end() :]
    first = head.split(b"\n", 1)[0]
    if not _HEADER.match(first.rstrip(b"\r")):
        return {}, entity  # no header block: all body
    headers: dict[bytes, list[bytes]] = {}
    for line in _UNFOLD.sub(b" ", head).split(b"\n"):
        match = _HEADER.match(line.rstrip(b"\r"))
        if match is None:
            continue
        name = _COMMENT.sub(b"", match.group(1)).strip().lower()
        headers.setdefault(name, []).append(match.group(2).strip())
    return headers, body


def _boundaries(headers: dict[bytes, list[bytes]]) -> list[bytes]:
    found: list[bytes] = []
    for name in (b"content-type", b"content-disposition"):
        for value in headers.get(name, ()):
            for match in _BOUNDARY.finditer(value):
                boundary = (
                    match.group(2) if match.group(2) is not None else match.group(3)
                )
                if match.group(1):  # RFC 2231: charset'language'percent-encoded
                    boundary = unquote_to_bytes(boundary.split(b"'", 2)[-1])
                if boundary and boundary not in found:
                    found.append(boundary)
    return found


def _next_line_with(body: bytes, needle: bytes, start: int) -> int:
    found = body.find(b"\n" + needle, start)
    return found + 1 if found >= 0 else -1


def _split_body(body: bytes, boundaries: list[bytes]) -> list[bytes]:
    """Segments between delimiter lines of any boundary, preamble dropped."""
    marks: list[tuple[int, int]] = []  # (delimiter line start, next line start)
    size = len(body)
    for boundary in boundaries:
        needle = b"--" + boundary
        pos = 0 if body.startswith(needle) else _next_line_with(body, needle, 0)
        while pos >= 0:
            line_end = body.find(b"\n", pos)
            if line_end < 0:
                line_end = size
            if body[pos + len(needle):line_end].rstrip(b"\r \t") in (b"", b"--"):
                marks.append((pos, line_end + 1))
            pos = _next_line_with(body, needle, line_end)
    marks.sort()
    segments = [body[start:end]
                for (_, start), (end, _) in zip(marks, marks[1:], strict=False)]
    if marks and marks[-1][1] < size:
        segments.append(body[marks[-1][1]:])
    return [s for s in segments if s.strip()]


def _filename(headers: dict[bytes, list[bytes]]) -> str:
    for name in (b"content-disposition", b"content-type"):
        for value in headers.get(name, ()):
            match = _FILENAME.search(value)
            if match:
                raw = match.group(1) if match.group(1) is not None else match.group(2)
                return raw.decode("latin-1")
    return ""


def decode_base64(data: bytes) -> bytes:
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:
        clean = _BASE64_JUNK.sub(b"", data.split(b"=", 1)[0])
        clean = clean[
            : len(clean) - len(clean) % 4 if len(clean) % 4 == 1 else len(clean)
        ]
        return binascii.a2b_base64(clean + b"=" * (-len(clean) % 4))


def decode_uu(data: bytes) -> bytes:
    """The first ``begin``..``end`` block of ``data`` (empty when there is none)."""
    begin = _UU_BEGIN.search(data)
    if begin is None:
        return b""
    out = bytearray()
    for line in data[begin.end() :].splitlines():
        line = line.rstrip(b"\r")
        if not line:
            continue
        count = (line[0] - 32) & 0x3F
        if count == 0 or line.strip() == b"end":
            break  # a zero-length line ("`") ends the data
        need = 1 + (count + 2) // 3 * 4
        try:
            out += binascii.a2b_uu(line[:need].ljust(need, b" "))
        except binascii.Error:
            break
    return bytes(out)


def _decode(body: bytes, encoding: bytes) -> tuple[bytes, str, int]:
    encoding = encoding.strip().lower().strip(b'"')
    if encoding == b"base64":
        return decode_base64(body), "base64", len(body)
    if encoding == b"quoted-printable":
        return binascii.a2b_qp(body), "quoted-printable", len(body)
    if encoding in (b"x-uuencode", b"uuencode", b"x-uue", b"uue"):
        return decode_uu(body), "uuencode", len(body)
    if b"begin " in body and _UU_BEGIN.search(body):
        return decode_uu(body), "uuencode", len(body)
    return body, "identity", 0


def mail_parts(raw: bytes, max_depth: int) -> MailParts:
    """Every decoded leaf part of a message, following nesting to ``max_depth``."""
    result = MailParts()
    _walk(raw, 0, max_depth, result, "")
    return result


def _walk(
    entity: bytes, depth: int, max_depth: int, result: MailParts, name: str
) -> None:
    result.entities += 1
    headers, body = split_headers(entity)
    content_types = b" ".join(headers.get(b"content-type", ())).lower()
    boundaries = (
        _boundaries(headers)
        if b"multipart/" in content_types or headers.get(b"content-disposition")
        else []
    )
    if boundaries:
        segments = _split_body(body, boundaries)
        if segments:
            if depth >= max_depth:
                result.depth_exceeded = True
                return
            for index, segment in enumerate(segments, 1):
                _walk(segment, depth + 1, max_depth, result, f"{name}/{index}")
            return
    if b"message/rfc822" in content_types and depth < max_depth:
        _walk(body, depth + 1, max_depth, result, f"{name}/message")
        return
    encodings = headers.get(b"content-transfer-encoding", [b""])
    data, encoding, encoded = _decode(body, encodings[-1])
    result.decoded_bytes += encoded
    label = _filename(headers) or name or "/"
    result.parts.append(Part(data, label, encoding, encoded, depth))


@dataclass(slots=True)
class ZipMembers:
    members: list[tuple[str, bytes]] = field(default_factory=list)
    inflated_bytes: int = 0
    skipped: list[str] = field(default_factory=list)  # "name: reason"


def is_zip(data: bytes) -> bool:
    """A local file header, or the spanning marker of a one-segment split zip."""
    return data[:4] == b"PK\x03\x04" or data[:8] == b"PK\x07\x08PK\x03\x04"


def zip_members(data: bytes, max_files: int, max_file_size_bytes: int) -> ZipMembers:
    """The members of a zip archive, bounded in count and size."""
    result = ZipMembers()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as err:
        result.skipped.append(f"archive: {err}")
        return result
    for info in infos:
        if info.is_dir():
            continue
        if len(result.members) >= max_files:
            result.skipped.append(f"{info.filename}: over {max_files} files")
            break
        if info.file_size > max_file_size_bytes:
            result.skipped.append(
                f"{info.filename}: {info.file_size} bytes over {max_file_size_bytes}"
            )
            continue
        try:
            content = archive.read(info)
        except (
            NotImplementedError,
            RuntimeError,
            zipfile.BadZipFile,
            zlib.error,
            EOFError,
            OSError,
            ValueError,
        ) as err:
            result.skipped.append(f"{info.filename}: {err}")
            continue
        result.inflated_bytes += len(content)
        result.members.append((info.filename, content))
    return result
