"""IMAP SEARCH: parse the criteria (RFC 3501 section 6.4.4) and test messages.

Criteria become a small tree of tuples; ``Searcher`` tests it against each
message, reading a header (index/cache or parsed copy) only when a header key
is reached and the text only for BODY / TEXT, as the servers do. Date keys
compare the UTC date of INTERNALDATE (BEFORE / ON / SINCE) or of the Date
header (SENT*); string keys match case-insensitively on the raw bytes
(encoded words are not decoded). Counts ``imap.search_test`` (one key tested on
one message) and ``imap.search_byte`` (bytes of header or text scanned).
"""

from __future__ import annotations

import calendar
import email.utils
import re

from twin.access.imapparse import ParseError, Reader, parse_seqset
from twin.access.message import field_value, split_message
from twin.access.store import ANSWERED, DELETED, DRAFT, FLAG_BITS, FLAGGED, SEEN
from twin.stages.work import Work

MAX_DEPTH = 50

_DATE = re.compile(rb'"?(\d{1,2})-([A-Za-z]{3})-(\d{4})"?')
_MONTHS = {m: i for i, m in enumerate(
    (b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct",
     b"nov", b"dec"), start=1)}
_FLAG_KEYS = {
    b"ANSWERED": (ANSWERED, True), b"DELETED": (DELETED, True),
    b"DRAFT": (DRAFT, True), b"FLAGGED": (FLAGGED, True), b"SEEN": (SEEN, True),
    b"UNANSWERED": (ANSWERED, False), b"UNDELETED": (DELETED, False),
    b"UNDRAFT": (DRAFT, False), b"UNFLAGGED": (FLAGGED, False),
    b"UNSEEN": (SEEN, False),
}
_ADDRESS_KEYS = {b"FROM", b"TO", b"CC", b"BCC", b"SUBJECT"}
_DATE_KEYS = {b"BEFORE", b"ON", b"SINCE", b"SENTBEFORE", b"SENTON", b"SENTSINCE"}
_CHARSETS = {b"US-ASCII", b"UTF-8"}

Node = tuple


class BadCharset(ValueError):
    """SEARCH CHARSET names a charset the server does not know."""


def parse_search(reader: Reader, count: int, uidnext: int) -> Node:
    """Read ``[CHARSET x] key *(SP key)`` into an AND node."""
    if reader.data[reader.pos : reader.pos + 8].upper() == b"CHARSET ":
        reader.pos += 8
        charset = reader.astring().upper()
        if charset not in _CHARSETS:
            raise BadCharset(charset.decode("ascii", "replace"))
        reader.sp()
    keys = [_key(reader, count, uidnext, 0)]
    while not reader.at_end():
        reader.sp()
        keys.append(_key(reader, count, uidnext, 0))
    return ("and", keys)


def _day(reader: Reader) -> int:
    match = _DATE.match(reader.data, reader.pos)
    month = _MONTHS.get(match.group(2).lower()) if match else None
    if not match or month is None:
        raise ParseError(f"bad search date at offset {reader.pos}")
    reader.pos = match.end()
    try:
        return calendar.timegm((int(match.group(3)), month, int(match.group(1)),
                                0, 0, 0, 0, 0, 0)) // 86400
    except (ValueError, OverflowError):
        raise ParseError("bad search date") from None


def _key(reader: Reader, count: int, uidnext: int, depth: int) -> Node:
    if depth > MAX_DEPTH:
        raise ParseError("search criteria nested too deeply")
    if reader.peek() == b"(":
        reader.pos += 1
        keys = [_key(reader, count, uidnext, depth + 1)]
        while reader.peek() != b")":
            reader.sp()
            keys.append(_key(reader, count, uidnext, depth + 1))
        reader.pos += 1
        return ("and", keys)
    if reader.peek()[:1].isdigit() or reader.peek() == b"*":
        return ("seq", parse_seqset(reader.seqset(), count))
    word = reader.atom().upper()
    if word == b"ALL":
        return ("all",)
    if word in _FLAG_KEYS:
        bit, want = _FLAG_KEYS[word]
        return ("flag", bit, want)
    if word in (b"NEW", b"OLD", b"RECENT"):
        return (word.lower().decode(),)
    if word in (b"KEYWORD", b"UNKEYWORD"):
        reader.sp()
        flag = reader.atom().lower()
        bit = FLAG_BITS.get(flag.decode("ascii", "replace"), 0)
        if bit:
            return ("flag", bit, word == b"KEYWORD")
        return ("const", word != b"KEYWORD")
    if word == b"NOT":
        reader.sp()
        return ("not", _key(reader, count, uidnext, depth + 1))
    if word == b"OR":
        reader.sp()
        left = _key(reader, count, uidnext, depth + 1)
        reader.sp()
        return ("or", left, _key(reader, count, uidnext, depth + 1))
    if word in _ADDRESS_KEYS:
        reader.sp()
        return ("header", word.lower(), reader.astring().lower())
    if word == b"HEADER":
        reader.sp()
        name = reader.astring().lower()
        reader.sp()
        return ("header", name, reader.astring().lower())
    if word in (b"BODY", b"TEXT"):
        reader.sp()
        return (word.lower().decode(), reader.astring().lower())
    if word in _DATE_KEYS:
        reader.sp()
        return ("date", word, _day(reader))
    if word in (b"LARGER", b"SMALLER"):
        reader.sp()
        return ("size", word == b"LARGER", reader.number())
    if word == b"UID":
        reader.sp()
        return ("uid", parse_seqset(reader.seqset(), max(uidnext - 1, 1)))
    raise ParseError(f"unknown search key {word[:30]!r}")


class Searcher:
    """Tests one parsed criteria tree against messages of a mailbox."""

    def __init__(self, mailbox, criteria: Node) -> None:
        self._mailbox = mailbox
        self._criteria = criteria
        self.work = Work()
        self._tests = 0
        self._bytes = 0

    def matches(self) -> list[int]:
        """0-based indices of the messages that match."""
        hits = []
        for index in range(len(self._mailbox.messages)):
            self._header = self._text = None
            if self._test(self._criteria, index):
                hits.append(index)
        self.work += Work(cpu={"imap.search_test": self._tests,
                               "imap.search_byte": self._bytes})
        return hits

    def _header_of(self, index: int) -> bytes:
        if self._header is None:
            self._header, got = self._mailbox.header(index)
            self.work += got
        return self._header

    def _text_of(self, index: int) -> bytes:
        if self._text is None:
            self._text, got = self._mailbox.text(index)
            self.work += got
        return self._text

    def _test(self, node: Node, index: int) -> bool:
        self._tests += 1
        kind = node[0]
        info = self._mailbox.messages[index]
        if kind == "and":
            return all(self._test(child, index) for child in node[1])
        if kind == "all":
            return True
        if kind == "const":
            return node[1]
        if kind == "flag":
            return bool(info.flags & node[1]) == node[2]
        if kind == "recent":
            return info.recent
        if kind == "new":
            return info.recent and not info.flags & SEEN
        if kind == "old":
            return not info.recent
        if kind == "not":
            return not self._test(node[1], index)
        if kind == "or":
            return self._test(node[1], index) or self._test(node[2], index)
        if kind == "seq":
            return any(low <= index + 1 <= high for low, high in node[1])
        if kind == "uid":
            return any(low <= info.uid <= high for low, high in node[1])
        if kind == "size":
            return info.size > node[2] if node[1] else info.size < node[2]
        if kind == "header":
            header = self._header_of(index)
            self._bytes += len(header)
            value = field_value(header, node[1])
            return value is not None and node[2] in value.lower()
        if kind in ("body", "text"):
            text = self._text_of(index)
            self._bytes += len(text)
            haystack = split_message(text)[1] if kind == "body" else text
            return node[1] in haystack.lower()
        if kind == "date":
            return self._date(node[1], node[2], index)
        raise AssertionError(f"unknown search node {kind!r}")

    def _date(self, word: bytes, day: int, index: int) -> bool:
        if word.startswith(b"SENT"):
            header = self._header_of(index)
            parsed = email.utils.parsedate_tz(
                (field_value(header, b"date") or b"").decode("latin-1")
            )
            if parsed is None:
                return False
            try:
                have = calendar.timegm(parsed[:3] + (0, 0, 0, 0, 0, 0)) // 86400
            except (ValueError, OverflowError):
                return False
            word = word[4:]
        else:
            have = self._mailbox.messages[index].internaldate // 86400
        if word == b"BEFORE":
            return have < day
        if word == b"ON":
            return have == day
        return have >= day
