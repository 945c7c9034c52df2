"""IMAP FETCH: the attributes a client asks for and how they are answered.

Parses ``fetch-att`` lists (RFC 3501 section 6.4.5, with the ALL / FAST / FULL
macros) into ``FetchItem``s and answers one message at a time, asking the
mailbox only for what the items need: FLAGS, UID, RFC822.SIZE and
INTERNALDATE come from the index; ENVELOPE and header sections from
``Mailbox.header`` (Cyrus reads its cache file, UW its parsed copy); bodies,
parts and BODYSTRUCTURE (unless the store cached it) read the message text.

Counts ``imap.message`` (one message answered) and ``imap.parse_byte`` (bytes
of message text parsed into a MIME tree).
"""

from __future__ import annotations

import email.utils
import re
import time
from dataclasses import dataclass

from twin.access.imapparse import ParseError, Reader
from twin.access.message import (
    Part,
    Span,
    field_value,
    parse_mime,
    parse_params,
    select_fields,
    split_message,
    unfold,
)
from twin.access.store import FLAG_NAMES, NO_WORK, SEEN, Mailbox, units_plus
from twin.stages.work import Work

_SAFE = re.compile(rb"[\x01-\x09\x0b\x0c\x0e-\x7f]{0,1000}\Z")
_NAME = re.compile(rb"[A-Za-z0-9.]+")
_SECTION = re.compile(rb"((?:[1-9][0-9]{0,8}\.)*[1-9][0-9]{0,8})?\.?([A-Za-z.]*)")
_PARTIAL = re.compile(rb"<(\d{1,10})\.(\d{1,10})>")
_MONTHS = (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep",
           b"Oct", b"Nov", b"Dec")
_TEXTS = frozenset({b"", b"HEADER", b"HEADER.FIELDS", b"HEADER.FIELDS.NOT", b"TEXT",
                    b"MIME"})
_MACROS = {
    b"ALL": (b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE", b"ENVELOPE"),
    b"FAST": (b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE"),
    b"FULL": (b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE", b"ENVELOPE", b"BODY"),
}
_SIMPLE = frozenset({b"FLAGS", b"UID", b"RFC822.SIZE", b"INTERNALDATE", b"ENVELOPE",
                     b"BODYSTRUCTURE", b"BODY", b"RFC822", b"RFC822.HEADER",
                     b"RFC822.TEXT"})


_QUOTED: dict[bytes, bytes] = {}


def quote(value: bytes | None) -> bytes:
    """An IMAP nstring: NIL, a quoted string, or a literal for anything else."""
    if value is None:
        return b"NIL"
    small = len(value) <= 32 and type(value) is bytes
    if small:
        known = _QUOTED.get(value)
        if known is not None:
            return known
    if len(value) > 1000:  # longer than _SAFE takes: a literal
        return b"{%d}\r\n" % len(value) + value
    if _SAFE.match(value):
        known = b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    else:
        known = b"{%d}\r\n" % len(value) + value
    if small and len(_QUOTED) < 4096:  # tokens: types, encodings, names
        _QUOTED[value] = known
    return known


def internaldate(seconds: int) -> bytes:
    """``"dd-Mon-yyyy hh:mm:ss +0000"`` in UTC."""
    t = time.gmtime(seconds)
    return b'"%02d-%s-%04d %02d:%02d:%02d +0000"' % (
        t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec
    )


_FLAG_LISTS: dict[tuple[int, bool], bytes] = {}


def flag_list(flags: int, recent: bool) -> bytes:
    """``(\\Seen ...)`` of *flags* (memoized: a few dozen combinations)."""
    key = (flags, recent)
    known = _FLAG_LISTS.get(key)
    if known is None:
        names = [FLAG_NAMES[bit].encode() for bit in FLAG_NAMES if flags & bit]
        if recent:
            names.append(b"\\Recent")
        known = b"(" + b" ".join(names) + b")"
        if len(_FLAG_LISTS) < 4096:
            _FLAG_LISTS[key] = known
    return known


_UID_FLAG_LINES: dict[int, bytes] = {}
"""(flags << 1 | recent) -> ``* %d FETCH (UID %d FLAGS (...))`` format."""


def _uid_flag_line(flags: int, recent: bool) -> bytes:
    line = b"* %d FETCH (UID %d FLAGS " + flag_list(flags, recent) + b")\r\n"
    if len(_UID_FLAG_LINES) < 4096:
        _UID_FLAG_LINES[flags << 1 | bool(recent)] = line
    return line


def flags_only(items: list[FetchItem]) -> tuple[bool, ...] | None:
    """For items that are all UID or FLAGS (what a client's flag sync asks),
    which of them are UID; None otherwise. Such a FETCH reads nothing of the
    messages and ``fetch_flags`` answers it in one pass."""
    if not all(item.kind in (b"UID", b"FLAGS") for item in items):
        return None
    return tuple(item.kind == b"UID" for item in items)


def fetch_flags(messages: list, indices: list[int], order: tuple[bool, ...],
                with_uid: bool) -> tuple[bytes, Work]:
    """The ``* n FETCH`` lines and Work of a ``flags_only`` FETCH: exactly
    what ``fetch_one`` answers message by message, without its per-message
    Work records. *indices* ascend without repeats (``seq_indices``,
    ``uid_indices``)."""
    lead = with_uid and not any(order)
    out = []
    append = out.append
    if order == (True, False) or (lead and order == (False,)):
        # b"* %d FETCH (UID %d FLAGS %s)\r\n" % (number, uid, flag_list(...)),
        # the flag list put in the format beforehand (it holds no "%")
        known = _UID_FLAG_LINES.get
        count = len(indices)
        if count and indices[-1] - indices[0] + 1 == count:  # sorted: a run
            first = indices[0]
            chosen = enumerate(messages[first : first + count], first + 1)
        else:
            chosen = ((index + 1, messages[index]) for index in indices)
        out = [(known(info.flags << 1 | info.recent)
                or _uid_flag_line(info.flags, info.recent)) % (number, info.uid)
               for number, info in chosen]
    else:
        for index in indices:
            info = messages[index]
            parts = [b"UID %d" % info.uid] if lead else []
            for is_uid in order:
                parts.append(b"UID %d" % info.uid if is_uid else
                             b"FLAGS " + flag_list(info.flags, info.recent))
            append(b"* %d FETCH (" % (index + 1) + b" ".join(parts) + b")\r\n")
    work = Work(cpu={"imap.message": len(indices)}) if indices else NO_WORK
    return b"".join(out), work


def _addresses(header: bytes, name: bytes) -> bytes:
    value = field_value(header, name)
    if value is None:
        return b"NIL"
    out = []
    for display, address in email.utils.getaddresses([value.decode("latin-1")]):
        if not address and not display:
            continue
        local, _, host = address.rpartition("@") if "@" in address else (
            address, "", "")
        out.append(b"(" + quote(display.encode("latin-1") or None) + b" NIL "
                   + quote(local.encode("latin-1") or None) + b" "
                   + quote(host.encode("latin-1") or None) + b")")
    return b"(" + b"".join(out) + b")" if out else b"NIL"


def envelope(header: bytes) -> bytes:
    """The ENVELOPE of a CRLF header (RFC 3501 section 7.4.2)."""
    sender = b"sender" if field_value(header, b"sender") else b"from"
    reply = b"reply-to" if field_value(header, b"reply-to") else b"from"
    return b"(" + b" ".join((
        quote(field_value(header, b"date")),
        quote(field_value(header, b"subject")),
        _addresses(header, b"from"),
        _addresses(header, sender),
        _addresses(header, reply),
        _addresses(header, b"to"),
        _addresses(header, b"cc"),
        _addresses(header, b"bcc"),
        quote(field_value(header, b"in-reply-to")),
        quote(field_value(header, b"message-id")),
    )) + b")"


def _params(params: list[tuple[bytes, bytes]]) -> bytes:
    if not params:
        return b"NIL"
    inner = b" ".join(quote(k.upper()) + b" " + quote(v) for k, v in params)
    return b"(" + inner + b")"


def _value(part: Part | Span, name: bytes) -> bytes | None:
    """``field_value`` of *part*'s header (a ``Span`` has its fields mapped)."""
    if type(part) is Span:
        return unfold(part.fields.get(name))
    return field_value(part.header, name)


def _disposition(part: Part | Span) -> bytes:
    value = _value(part, b"content-disposition")
    if not value:
        return b"NIL"
    main, params = parse_params(value)
    return b"(" + quote(main.upper()) + b" " + _params(params) + b")"


def bodystructure(part: Part | Span, extended: bool = True) -> bytes:
    """BODYSTRUCTURE (or BODY when not *extended*) of a parsed MIME entity
    (``parse_mime``, or ``parse_lf``: the same bytes)."""
    if part.maintype == b"multipart":
        children = b"".join(bodystructure(c, extended) for c in part.children)
        if not children:
            children = b'("TEXT" "PLAIN" NIL NIL NIL "7BIT" 0 0)'
        out = children + b" " + quote(part.subtype.upper())
        if extended:
            out += b" " + _params(part.params) + b" " + _disposition(part)
            out += b" NIL"
        return b"(" + out + b")"
    if type(part) is Span and part.message is None:
        # a leaf as parse_lf measures it (what an index caches): all but the
        # size and line count depend on the type and four fields only
        get = part.fields.get
        key = (part.maintype, part.subtype, tuple(part.params),
               tuple(get(b"content-transfer-encoding") or ()),
               tuple(get(b"content-id") or ()),
               tuple(get(b"content-description") or ()),
               tuple(get(b"content-disposition") or ()), extended)
        known = _LEAVES.get(key)
        if known is None:
            known = _leaf_parts(part, extended)
            if len(_LEAVES) < _LEAVES_KEEP:
                _LEAVES[key] = known
        head, with_lines, tail = known
        if with_lines:
            return head + b"%d %d" % (part.size, part.lines) + tail
        return head + b"%d" % part.size + tail
    fields = _leading_fields(part)
    if type(part) is Span:
        size, lines = part.size, part.lines
    else:
        body = part.body
        size = len(body)
        lines = body.count(b"\r\n") + (
            1 if body and not body.endswith(b"\r\n") else 0)
    fields.append(b"%d" % size)
    if part.message is not None:
        fields += [envelope(part.message.header), bodystructure(part.message,
                                                                extended),
                   b"%d" % lines]
    elif part.maintype == b"text":
        fields.append(b"%d" % lines)
    if extended:
        fields += [b"NIL", _disposition(part), b"NIL"]
    return b"(" + b" ".join(fields) + b")"


def _leading_fields(part) -> list[bytes]:
    """A part's BODYSTRUCTURE fields up to its size: type, subtype, parameters
    (text gets charset US-ASCII if it names none), id, description and
    transfer encoding (7BIT if none)."""
    params = part.params
    if part.maintype == b"text" and not any(k == b"charset" for k, _ in params):
        params = params + [(b"charset", b"US-ASCII")]
    encoding = _value(part, b"content-transfer-encoding") or b"7BIT"
    return [
        quote(part.maintype.upper()), quote(part.subtype.upper()), _params(params),
        quote(_value(part, b"content-id")),
        quote(_value(part, b"content-description")),
        quote(encoding.upper()),
    ]


_LEAVES: dict[tuple, tuple[bytes, bool, bytes]] = {}
_LEAVES_KEEP = 4096


def _leaf_parts(part: Span, extended: bool) -> tuple[bytes, bool, bytes]:
    """``bodystructure`` of a leaf ``Span`` (no message inside) cut around its
    size: (what comes before it, whether the line count follows, what comes
    after the size or line count)."""
    fields = _leading_fields(part)
    tail = b" NIL " + _disposition(part) + b" NIL)" if extended else b")"
    return b"(" + b" ".join(fields) + b" ", part.maintype == b"text", tail


@dataclass(frozen=True, slots=True)
class FetchItem:
    """One fetch attribute: what to answer and under which label."""

    kind: bytes  # FLAGS, UID, ..., or SECTION for BODY[...] / RFC822*
    label: bytes = b""
    parts: tuple[int, ...] = ()
    text: bytes = b""
    fields: frozenset[bytes] = frozenset()
    peek: bool = True
    partial: tuple[int, int] | None = None

    @property
    def needs_text(self) -> bool:
        if self.kind == b"BODY":
            return True
        if self.kind != b"SECTION":
            return False
        return bool(self.parts) or self.text in (b"", b"TEXT")

    @property
    def needs_header(self) -> bool:
        return self.kind == b"ENVELOPE" or (self.kind == b"SECTION"
                                            and not self.needs_text)


def parse_fetch_items(reader: Reader) -> list[FetchItem]:
    """Read a fetch-att list, a single fetch-att, or a macro."""
    if reader.peek() == b"(":
        reader.pos += 1
        items: list[FetchItem] = []
        while reader.peek() != b")":
            if items:
                reader.sp()
            items.append(_parse_item(reader))
        reader.pos += 1
        return items
    match = _NAME.match(reader.data, reader.pos)
    if match and match.group(0).upper() in _MACROS and (
        match.end() == len(reader.data) or reader.data[match.end()] in b" )"
    ):
        reader.pos = match.end()
        return [_parse_item(Reader(name)) for name in _MACROS[match.group(0).upper()]]
    return [_parse_item(reader)]


def _parse_item(reader: Reader) -> FetchItem:
    match = _NAME.match(reader.data, reader.pos)
    if not match:
        raise ParseError(f"expected a fetch attribute at offset {reader.pos}")
    name = match.group(0).upper()
    reader.pos = match.end()
    if name in (b"BODY", b"BODY.PEEK") and reader.peek() == b"[":
        return _parse_section(reader, peek=name == b"BODY.PEEK")
    if name == b"RFC822":
        return FetchItem(b"SECTION", b"RFC822", peek=False)
    if name == b"RFC822.HEADER":
        return FetchItem(b"SECTION", b"RFC822.HEADER", text=b"HEADER")
    if name == b"RFC822.TEXT":
        return FetchItem(b"SECTION", b"RFC822.TEXT", text=b"TEXT", peek=False)
    if name not in _SIMPLE:
        raise ParseError(f"unknown fetch attribute {name[:30]!r}")
    return FetchItem(name, name)


def _parse_section(reader: Reader, peek: bool) -> FetchItem:
    reader.expect(b"[")
    match = _SECTION.match(reader.data, reader.pos)
    assert match is not None  # the pattern matches the empty string
    reader.pos = match.end()
    parts = tuple(int(n) for n in match.group(1).split(b".")) if match.group(1) else ()
    text = match.group(2).upper()
    spec = match.group(0).upper()
    if text not in _TEXTS or (text == b"MIME" and not parts) or spec.startswith(
        b"."
    ) or spec.endswith(b"."):
        raise ParseError(f"bad section {match.group(0)[:40]!r}")
    fields: frozenset[bytes] = frozenset()
    if text.startswith(b"HEADER.FIELDS"):
        reader.sp()
        reader.expect(b"(")
        names = []
        while reader.peek() != b")":
            if names:
                reader.sp()
            names.append(reader.astring())
        reader.pos += 1
        if not names:
            raise ParseError("empty header field list")
        fields = frozenset(n.lower() for n in names)
        spec += b" (" + b" ".join(n.upper() for n in names) + b")"
    reader.expect(b"]")
    partial = None
    label = b"BODY[" + spec + b"]"
    pmatch = _PARTIAL.match(reader.data, reader.pos)
    if reader.peek() == b"<":
        if not pmatch or int(pmatch.group(2)) == 0:
            raise ParseError("bad partial range")
        reader.pos = pmatch.end()
        partial = (int(pmatch.group(1)), int(pmatch.group(2)))
    return FetchItem(b"SECTION", label, parts, text, fields, peek, partial)


def _locate(root: Part, numbers: tuple[int, ...]) -> Part | None:
    part = root
    for depth, number in enumerate(numbers):
        if depth and part.message is not None:
            part = part.message
        if part.maintype == b"multipart":
            if not 1 <= number <= len(part.children):
                return None
            part = part.children[number - 1]
        elif number != 1:
            return None
    return part


def _section(item: FetchItem, text: bytes | None, header: bytes | None,
             tree: Part | None) -> bytes:
    if not item.parts:
        if item.text == b"":
            return text or b""
        if item.text == b"TEXT":
            return split_message(text or b"")[1]
        assert header is not None
        if item.text == b"HEADER":
            return header
        return select_fields(header, item.fields, item.text == b"HEADER.FIELDS")
    assert tree is not None
    part = _locate(tree, item.parts)
    if part is None:
        return b""
    if item.text == b"":
        return part.body
    if item.text == b"MIME":
        return part.header
    if part.message is None:
        return b""
    if item.text == b"TEXT":
        return part.message.body
    if item.text == b"HEADER":
        return part.message.header
    return select_fields(part.message.header, item.fields,
                         item.text == b"HEADER.FIELDS")


def fetch_plan(items: list[FetchItem]) -> tuple[bool, ...]:
    """What *items* need of each message; work it out once per FETCH command."""
    kinds = {item.kind for item in items}
    return (
        b"BODYSTRUCTURE" in kinds,
        any(item.needs_text for item in items),
        any(item.needs_header for item in items),
        any(item.parts or item.kind == b"BODY" for item in items),
        any(not item.peek for item in items),
        b"UID" in kinds,
        b"FLAGS" in kinds,
    )


def fetch_one(mailbox: Mailbox, index: int, items: list[FetchItem],
              with_uid: bool, plan: tuple[bool, ...] | None = None
              ) -> tuple[bytes, Work, bool]:
    """``* n FETCH (...)`` for message *index*, its Work, and whether it set \\Seen.

    *plan* is ``fetch_plan(items)``, computed here when not given.
    """
    (wants_structure, needs_text, needs_header, wants_tree, unpeeked, has_uid,
     has_flags) = plan or fetch_plan(items)
    info = mailbox.messages[index]
    text = header = None
    tree: Part | None = None
    cached = None
    work = NO_WORK  # then Work(cpu={"imap.message": 1}) + work, in one step
    if wants_structure:
        cached, work = mailbox.bodystructure(index)
    if needs_text or (wants_structure and not cached):
        text, got = mailbox.text(index)
        work = got if work is NO_WORK else work + got
        if needs_header:  # (else no item reads it)
            header = split_message(text)[0]
    elif needs_header:
        header, got = mailbox.header(index)
        work = got if work is NO_WORK else work + got
    work = units_plus({"imap.message": 1}, work)
    if text is not None and (wants_tree or (wants_structure and not cached)):
        tree = parse_mime(text)
        work += Work(cpu={"imap.parse_byte": len(text)})
    set_seen = not mailbox.readonly and not info.flags & SEEN and unpeeked
    if set_seen:
        work += mailbox.set_flags([(index, info.flags | SEEN)])
    out: list[bytes] = []
    if with_uid and not has_uid:
        out.append(b"UID %d" % info.uid)
    if set_seen and not has_flags:
        out.append(b"FLAGS " + flag_list(info.flags, info.recent))
    for item in items:
        kind = item.kind
        if kind == b"FLAGS":
            out.append(b"FLAGS " + flag_list(info.flags, info.recent))
        elif kind == b"UID":
            out.append(b"UID %d" % info.uid)
        elif kind == b"RFC822.SIZE":
            out.append(b"RFC822.SIZE %d" % info.size)
        elif kind == b"INTERNALDATE":
            out.append(b"INTERNALDATE " + internaldate(info.internaldate))
        elif kind == b"ENVELOPE":
            assert header is not None
            out.append(b"ENVELOPE " + envelope(header))
        elif kind == b"BODYSTRUCTURE":
            out.append(b"BODYSTRUCTURE " + (cached or bodystructure(tree)))
        elif kind == b"BODY":
            out.append(b"BODY " + bodystructure(tree, extended=False))
        else:
            data = _section(item, text, header, tree)
            label = item.label
            if item.partial is not None:
                start, length = item.partial
                data = data[start : start + length]
                label += b"<%d>" % start
            if len(data) > 1000:  # label + b" " + quote(data), one copy of data
                out.append(label + b" {%d}\r\n" % len(data) + data)
            else:
                out.append(label + b" " + quote(data) if data else label + b' ""')
    return b"* %d FETCH (%s)\r\n" % (index + 1, b" ".join(out)), work, set_seen
