"""Text formats of the greylisting databases: spamdb(8) lines, a postgrey dump, logs.

Twins the text side of OpenBSD spamd and postgrey (FACTS.md "Greylisting"), so a
``twin.stages.greylist.Greylist`` can save and restore its state and tests can
feed it real data:

- ``spamdb`` output, one record a line (spamdb(8)):
  ``GREY|ip|helo|from|to|first|pass|expire|bcount|pcount``,
  ``WHITE|ip|||first|pass|expire|bcount|pcount``, ``TRAPPED|ip|expire`` and
  ``SPAMTRAP|address``. Times are seconds (integers in the real tool; a
  simulated time with a fraction is written with it). The reader is tolerant:
  the 2004 layout without the HELO field (``GREY|ip|from|to|...``) and lines
  whose trailing fields were dropped (as quoted in blog posts) are accepted; a
  missing ``expire`` becomes ``first + greyexp_s``, a missing ``pass`` becomes
  ``expire`` (what spamd writes on first sight), missing counts become 1 and 0.
- a postgrey dump (postgrey keeps a Berkeley DB ``key -> "first,last"`` plus
  the clients auto-whitelist ``ip -> "count,last"``; it has no text tool of its
  own, so the format is ours): ``DB<TAB>net/sender/recipient<TAB>first,last``
  and ``AWL<TAB>ip<TAB>count,last``. A third value field (postgrey 1.32 stores
  the stripped host part) is ignored.
- ``spamd -v`` syslog tuple lines, ``... spamd[pid]: (GREY) ip: <from> -> <to>``
  and ``(BLACK)``; the syslog time, when present, becomes seconds since 1 January
  00:00 of a non-leap year (syslog lines carry no year).

Decides nothing and counts no work. Raises ``ValueError`` (with the line number
and the offending text) on a line it cannot read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SPAMDB_TAGS = ("GREY", "WHITE", "TRAPPED", "SPAMTRAP")


@dataclass(frozen=True, slots=True)
class GreyRecord:
    """A greylisted tuple: spamd's ``GREY`` line (times in seconds)."""

    ip: str
    helo: str
    sender: str
    recipient: str
    first_s: float
    pass_s: float
    expire_s: float
    bcount: int
    pcount: int


@dataclass(frozen=True, slots=True)
class WhiteRecord:
    """A whitelisted client IP: spamd's ``WHITE`` line."""

    ip: str
    first_s: float
    pass_s: float
    expire_s: float
    bcount: int
    pcount: int


@dataclass(frozen=True, slots=True)
class TrappedRecord:
    """A client IP caught by a greytrap, blacklisted until ``expire_s``."""

    ip: str
    expire_s: float


@dataclass(frozen=True, slots=True)
class SpamtrapRecord:
    """A greytrap address: mail to it traps the sending client."""

    address: str


SpamdbRecord = GreyRecord | WhiteRecord | TrappedRecord | SpamtrapRecord


@dataclass(frozen=True, slots=True)
class PostgreyRecord:
    """A postgrey triplet: client network, sender, recipient -> first, last."""

    net: str
    sender: str
    recipient: str
    first_s: float
    last_s: float


@dataclass(frozen=True, slots=True)
class AwlRecord:
    """A postgrey clients auto-whitelist entry: passes counted, last counted."""

    ip: str
    count: int
    last_s: float


@dataclass(frozen=True, slots=True)
class SpamdLogEvent:
    """A ``(GREY)`` or ``(BLACK)`` tuple line of ``spamd -v``."""

    time_s: float | None
    kind: str
    ip: str
    sender: str
    recipient: str


def format_time(value: float) -> str:
    """Seconds as spamdb writes them: an integer unless there is a fraction."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _number(text: str, lineno: int, line: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(
            f"line {lineno}: expected a time in seconds, found {text!r} in {line!r}"
        ) from None
    return int(value) if value.is_integer() else value


def _count(text: str, lineno: int, line: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(
            f"line {lineno}: expected an integer count, found {text!r} in {line!r}"
        ) from None


def _is_number(text: str) -> bool:
    return (
        text.isdigit()
        or (text[:1] == "-" and text[1:].isdigit())
        or (text.replace(".", "", 1).isdigit() and text.count(".") == 1)
    )


def _looks_like_address(text: str) -> bool:
    # an envelope address has an "@", or is the null sender
    return "@" in text or text in ("", "<>")


def _parse_grey(fields: list[str], lineno: int, line: str, greyexp_s: float):
    if len(fields) == 9:  # the full layout: read by position
        names, numbers = fields[:4], fields[4:]
    else:  # abbreviated or 2004 layout: names first, then the numbers
        names = []
        numbers = []
        for field in fields:
            if numbers or (names and _is_number(field)):
                numbers.append(field)
            else:
                names.append(field)
    if len(names) == 4:
        ip, helo, sender, recipient = names
    elif len(names) == 3 and _looks_like_address(names[1]):
        ip, sender, recipient = names  # 2004 layout, no HELO field
        helo = ""
    elif len(names) == 3:
        ip, helo, sender = names  # abbreviated: recipient dropped
        recipient = ""
    else:
        raise ValueError(
            f"line {lineno}: GREY needs ip, helo, from and to, found {line!r}"
        )
    if not numbers:
        raise ValueError(f"line {lineno}: GREY has no first-seen time: {line!r}")
    if len(numbers) > 5:
        raise ValueError(f"line {lineno}: GREY has too many fields: {line!r}")
    first = _number(numbers[0], lineno, line)
    pass_s = _number(numbers[1], lineno, line) if len(numbers) > 1 else None
    expire = _number(numbers[2], lineno, line) if len(numbers) > 2 else None
    if expire is None:
        expire = first + greyexp_s
        if pass_s is not None and pass_s > expire:
            expire = pass_s
    if pass_s is None:
        pass_s = expire
    bcount = _count(numbers[3], lineno, line) if len(numbers) > 3 else 1
    pcount = _count(numbers[4], lineno, line) if len(numbers) > 4 else 0
    return GreyRecord(
        ip, helo, sender, recipient, first, pass_s, expire, bcount, pcount
    )


def parse_spamdb(text: str, greyexp_s: float = 4 * 3600) -> list[SpamdbRecord]:
    """Read ``spamdb`` output; ``greyexp_s`` fills a dropped GREY expiry."""
    records: list[SpamdbRecord] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split("|")
        tag = fields[0]
        if tag == "GREY":
            records.append(_parse_grey(fields[1:], lineno, line, greyexp_s))
        elif tag == "WHITE":
            rest = [f for f in fields[2:] if f != ""]
            if len(fields) < 2 or not fields[1] or not rest or len(rest) > 5:
                raise ValueError(
                    f"line {lineno}: WHITE needs ip|||first|pass|expire|bcount|pcount,"
                    f" found {line!r}"
                )
            first = _number(rest[0], lineno, line)
            pass_s = _number(rest[1], lineno, line) if len(rest) > 1 else first
            expire = _number(rest[2], lineno, line) if len(rest) > 2 else pass_s
            bcount = _count(rest[3], lineno, line) if len(rest) > 3 else 0
            pcount = _count(rest[4], lineno, line) if len(rest) > 4 else 0
            records.append(
                WhiteRecord(fields[1], first, pass_s, expire, bcount, pcount)
            )
        elif tag == "TRAPPED":
            if len(fields) != 3 or not fields[1]:
                raise ValueError(
                    f"line {lineno}: TRAPPED needs ip|expire, found {line!r}"
                )
            records.append(TrappedRecord(fields[1], _number(fields[2], lineno, line)))
        elif tag == "SPAMTRAP":
            if len(fields) != 2 or not fields[1]:
                raise ValueError(
                    f"line {lineno}: SPAMTRAP needs one address, found {line!r}"
                )
            records.append(SpamtrapRecord(fields[1]))
        else:
            raise ValueError(
                f"line {lineno}: unknown record type {tag!r}, expected one of "
                f"{', '.join(SPAMDB_TAGS)}"
            )
    return records


def format_spamdb(records: list[SpamdbRecord]) -> str:
    """Write records as ``spamdb`` prints them, one a line."""
    lines = []
    for r in records:
        if isinstance(r, GreyRecord):
            lines.append(
                f"GREY|{r.ip}|{r.helo}|{r.sender}|{r.recipient}|"
                f"{format_time(r.first_s)}|{format_time(r.pass_s)}|"
                f"{format_time(r.expire_s)}|{r.bcount}|{r.pcount}"
            )
        elif isinstance(r, WhiteRecord):
            lines.append(
                f"WHITE|{r.ip}|||{format_time(r.first_s)}|{format_time(r.pass_s)}|"
                f"{format_time(r.expire_s)}|{r.bcount}|{r.pcount}"
            )
        elif isinstance(r, TrappedRecord):
            lines.append(f"TRAPPED|{r.ip}|{format_time(r.expire_s)}")
        else:
            lines.append(f"SPAMTRAP|{r.address}")
    return "".join(line + "\n" for line in lines)


def parse_postgrey_dump(text: str) -> list[PostgreyRecord | AwlRecord]:
    """Read our postgrey dump (``DB`` and ``AWL`` lines, tab-separated)."""
    records: list[PostgreyRecord | AwlRecord] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r\n")
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 3 or fields[0] not in ("DB", "AWL"):
            raise ValueError(
                f"line {lineno}: expected DB<TAB>key<TAB>first,last or "
                f"AWL<TAB>ip<TAB>count,last, found {line!r}"
            )
        values = fields[2].split(",")
        if len(values) < 2:
            raise ValueError(f"line {lineno}: value needs two numbers: {line!r}")
        if fields[0] == "DB":
            key = fields[1]
            slash1 = key.find("/")
            slash2 = key.rfind("/")
            if slash1 <= 0 or slash2 == slash1:
                raise ValueError(
                    f"line {lineno}: key must be net/sender/recipient: {key!r}"
                )
            records.append(
                PostgreyRecord(
                    key[:slash1],
                    key[slash1 + 1 : slash2],
                    key[slash2 + 1 :],
                    _number(values[0], lineno, line),
                    _number(values[1], lineno, line),
                )
            )
        else:
            records.append(
                AwlRecord(
                    fields[1],
                    _count(values[0], lineno, line),
                    _number(values[1], lineno, line),
                )
            )
    return records


def format_postgrey_dump(records: list[PostgreyRecord | AwlRecord]) -> str:
    """Write postgrey records in our dump format."""
    lines = []
    for r in records:
        if isinstance(r, PostgreyRecord):
            lines.append(
                f"DB\t{r.net}/{r.sender}/{r.recipient}\t"
                f"{format_time(r.first_s)},{format_time(r.last_s)}"
            )
        else:
            lines.append(f"AWL\t{r.ip}\t{r.count},{format_time(r.last_s)}")
    return "".join(line + "\n" for line in lines)


_MONTH_START_DAY = {
    month: day
    for month, day in zip(
        (
            "Jan",
            "Feb",
            "Mar",
            "Apr",
            "May",
            "Jun",
            "Jul",
            "Aug",
            "Sep",
            "Oct",
            "Nov",
            "Dec",
        ),
        (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334),
        strict=True,
    )
}

_LOG_TUPLE = re.compile(
    r"^(?:(?P<mon>[A-Z][a-z]{2})\s+(?P<day>\d{1,2})\s+"
    r"(?P<h>\d\d):(?P<m>\d\d):(?P<s>\d\d)\s+\S+\s+)?"
    r"spamd\[\d+\]:\s+\((?P<kind>GREY|BLACK)\)\s+(?P<ip>[0-9A-Fa-f.:]+):\s+"
    r"<(?P<sender>[^>]*)>\s+->\s+<(?P<recipient>[^>]*)>\s*$"
)


def parse_spamd_log_line(line: str) -> SpamdLogEvent | None:
    """A ``(GREY)``/``(BLACK)`` tuple of a ``spamd -v`` log line, else None."""
    match = _LOG_TUPLE.match(line.strip())
    if match is None:
        return None
    time_s = None
    if match["mon"] is not None and match["mon"] in _MONTH_START_DAY:
        days = _MONTH_START_DAY[match["mon"]] + int(match["day"]) - 1
        time_s = float(
            days * 86400
            + int(match["h"]) * 3600
            + int(match["m"]) * 60
            + int(match["s"])
        )
    return SpamdLogEvent(
        time_s, match["kind"], match["ip"], match["sender"], match["recipient"]
    )
