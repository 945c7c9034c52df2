"""Reading IMAP4rev1 command arguments (RFC 3501 section 9 grammar).

A command arrives as its raw bytes -- the line, with every literal written as
``{n}`` CRLF followed by its n octets, up to the final CRLF -- and a ``Reader``
walks it. Anything that does not fit the grammar raises ``ParseError``, which
the session turns into a tagged BAD; nothing here allocates more than the
command's own size, so a hostile command costs at most the configured maximum.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right

MAX_NUMBER = 0xFFFFFFFF

_ATOM = re.compile(rb"[^\x00-\x20\x7f-\xff(){%*\"\\\]]+")
_ASTRING_ATOM = re.compile(rb"[^\x00-\x20\x7f-\xff(){%*\"\\]+")
_TAG = re.compile(rb"[^\x00-\x20\x7f-\xff(){%*\"\\+]+\Z")
_LITERAL = re.compile(rb"\{(\d{1,10})(\+?)\}\r\n")
_QUOTED = re.compile(rb'"((?:[^"\\\r\n\x00]|\\["\\])*)"')
_SEQSET = re.compile(rb"[0-9:*,]+")
_FLAG = re.compile(rb"\\?[^\x00-\x20\x7f-\xff(){%*\"\\\]]+")
_LIST_MAILBOX = re.compile(rb"[^\x00-\x20\x7f-\xff(){\"\\]+")
_UNQUOTE = re.compile(rb"\\([\"\\])")


class ParseError(ValueError):
    """A command that does not follow the IMAP grammar."""


def valid_tag(tag: bytes) -> bool:
    return bool(_TAG.match(tag))


class Reader:
    """A cursor over one raw command (after the tag and command name)."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def peek(self) -> bytes:
        return self.data[self.pos : self.pos + 1]

    def expect(self, token: bytes) -> None:
        if self.data[self.pos : self.pos + len(token)] != token:
            raise ParseError(f"expected {token.decode()!r} at offset {self.pos}")
        self.pos += len(token)

    def sp(self) -> None:
        self.expect(b" ")

    def end(self) -> None:
        if not self.at_end():
            raise ParseError(f"unexpected text at offset {self.pos}")

    def _match(self, pattern: re.Pattern[bytes], what: str) -> bytes:
        match = pattern.match(self.data, self.pos)
        if not match:
            raise ParseError(f"expected {what} at offset {self.pos}")
        self.pos = match.end()
        return match.group(0)

    def atom(self) -> bytes:
        return self._match(_ATOM, "an atom")

    def number(self) -> int:
        token = self.atom()
        if not token.isdigit() or len(token) > 10 or int(token) > MAX_NUMBER:
            raise ParseError(f"expected a number, got {token[:20]!r}")
        return int(token)

    def quoted(self) -> bytes:
        match = _QUOTED.match(self.data, self.pos)
        if not match:
            raise ParseError(f"bad quoted string at offset {self.pos}")
        self.pos = match.end()
        inner = match.group(1)
        # only backslash escapes change: without one the text is the value
        return _UNQUOTE.sub(rb"\1", inner) if b"\\" in inner else inner

    def literal(self) -> bytes:
        match = _LITERAL.match(self.data, self.pos)
        if not match:
            raise ParseError(f"bad literal at offset {self.pos}")
        size = int(match.group(1))
        start = match.end()
        if start + size > len(self.data):
            raise ParseError("literal runs past the end of the command")
        self.pos = start + size
        return self.data[start : self.pos]

    def string(self) -> bytes:
        char = self.peek()
        if char == b'"':
            return self.quoted()
        if char == b"{":
            return self.literal()
        raise ParseError(f"expected a string at offset {self.pos}")

    def astring(self) -> bytes:
        if self.peek() in (b'"', b"{"):
            return self.string()
        return self._match(_ASTRING_ATOM, "an astring")

    def list_mailbox(self) -> bytes:
        if self.peek() in (b'"', b"{"):
            return self.string()
        return self._match(_LIST_MAILBOX, "a list-mailbox")

    def seqset(self) -> bytes:
        return self._match(_SEQSET, "a sequence set")

    def flag_list(self) -> list[bytes]:
        """``(flag ...)`` or one bare flag."""
        if self.peek() != b"(":
            return [self._match(_FLAG, "a flag")]
        self.pos += 1
        flags = []
        while self.peek() != b")":
            if flags:
                self.sp()
            flags.append(self._match(_FLAG, "a flag"))
        self.pos += 1
        return flags


def literal_size(line: bytes) -> tuple[int, bool] | None:
    """(size, non-synchronizing) if *line* (without CRLF) ends in a literal."""
    if not line.endswith(b"}"):
        return None
    start = line.rfind(b"{")
    if start < 0:
        return None
    inner = line[start + 1 : -1]
    plus = inner.endswith(b"+")
    digits = inner[:-1] if plus else inner
    if not digits.isdigit() or len(digits) > 10:
        return None
    return int(digits), plus


_SEQSETS: dict[tuple[bytes, int], tuple[tuple[int, int], ...]] = {}
_SEQSETS_KEEP = 4096


def parse_seqset(token: bytes, largest: int) -> list[tuple[int, int]]:
    """Ranges (low, high) of a sequence set; ``*`` is *largest*.

    Remembers the answers for short sets (clients repeat ``1:n``, ``n:*``,
    single UIDs); a new list each call, so callers may change it."""
    key = (token, largest)
    known = _SEQSETS.get(key)
    if known is not None:
        return list(known)
    ranges = _parse_seqset(token, largest)
    if len(token) <= 64:
        if len(_SEQSETS) >= _SEQSETS_KEEP:
            _SEQSETS.clear()
        _SEQSETS[key] = tuple(ranges)
    return ranges


def _parse_seqset(token: bytes, largest: int) -> list[tuple[int, int]]:
    """``parse_seqset`` worked out."""
    ranges = []
    for item in token.split(b","):
        bounds = item.split(b":")
        if len(bounds) > 2 or not all(bounds):
            raise ParseError(f"bad sequence set {token[:40]!r}")
        values = []
        for bound in bounds:
            if bound == b"*":
                values.append(largest)
            elif bound.isdigit() and len(bound) <= 10 and 0 < int(bound) <= MAX_NUMBER:
                values.append(int(bound))
            else:
                raise ParseError(f"bad sequence number {bound[:20]!r}")
        low, high = min(values), max(values)
        ranges.append((low, high))
    return ranges


def seq_indices(ranges: list[tuple[int, int]], count: int) -> list[int] | None:
    """0-based message indices for sequence-number *ranges*, or None if out of range.

    RFC 3501 section 6.4.5: a number past the last message is an error.
    """
    if count == 0:
        return None
    chosen: set[int] = set()
    for low, high in ranges:
        if high > count:
            return None
        chosen.update(range(low - 1, high))
    return sorted(chosen)


def uid_indices(ranges: list[tuple[int, int]], uids: list[int]) -> list[int]:
    """0-based indices of messages whose UID (ascending list *uids*) is in range."""
    if len(ranges) == 1:  # one range: already in order, nothing repeated
        low, high = ranges[0]
        return list(range(bisect_left(uids, low), bisect_right(uids, high)))
    chosen: set[int] = set()
    for low, high in ranges:
        chosen.update(range(bisect_left(uids, low), bisect_right(uids, high)))
    return sorted(chosen)
