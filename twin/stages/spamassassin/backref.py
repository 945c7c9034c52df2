"""Necessary-condition prefilters for back-reference header rules.

A twin speed-up, not SpamAssassin's (and not a change of outcome): a few
header rules read the whole header block (``ALL``) and compare a captured
address with the Subject line through a back-reference
(``__SUBJ_HAS_TO_2``, ``__PDS_TO_BRAND_SUBJECT``, ``__SUBJ_HAS_FROM_1``,
``__SUBJ_HAS_TO_1``, ``__TO_EQ_FROM_1/2``, ``__TO_EQ_FROM_DOM_1/2``; and
``__RAND_HEADER``, a search tried at every line start); so does the full
rule ``__FROM_NAME_IN_MSG`` (a ``From:`` name standing again as a whole
line within 2048 octets).
``re`` backtracks through every start, capture and line between for such a
pattern, up to a tenth of a millisecond a message.  Each prefilter here
computes, in a few C-level searches, a superset of the
values the group can capture and answers False only when none of them can
stand where the back-reference needs it: a proof that the regex finds
nothing, so the regex is skipped.  True means "run the regex".

Every prefilter is tied to one exact pattern and its flags (``for_regex``):
an edited rule gets no prefilter and simply runs its regex.  All the header
patterns are ``/i`` on bytes, so comparing the ASCII-lower-cased text
(``bytes.lower``) is what the case-insensitive back-reference does.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["Prefilter", "for_regex"]

# A prefilter gets the header value and its ``bytes.lower()``.
Prefilter = Callable[[bytes, bytes], bool]

_FLAGS = re.IGNORECASE | re.MULTILINE | re.DOTALL
# The rest of each line after ``subject: `` (a second one in the same line
# is in the first one's rest); ``for <?run>?;`` of ``__SUBJ_HAS_TO_2``; the
# rest of each line after ``\nfrom: ``.
_SUBJECT_LINE = re.compile(rb"subject: ([^\n]*)")
_FOR_RUN = re.compile(rb" for <?([^\s>;]+)>?;")
_FROM_LINE = re.compile(rb"\nfrom: ([^\n]*)")
_RUN_FROM = re.compile(rb"[^\s>]+")


def subj_has_to_2(value: bytes, low: bytes) -> bool:
    """``\\nReceived:[^\\n]{0,200} for <?([^\\n\\s>;]+)>?;(?:[^\\n]+\\n+)*
    Subject: [^\\n]{0,100}\\1[^a-z0-9]``: the group is the whole run of
    ``[^\\s>;]`` after some `` for `` or `` for <`` that ``;`` or ``>;``
    follows (with the ``<`` it holds the run without it, so the run without
    is the one to look for); it must stand in a line after some
    ``Subject: ``."""
    subjects = _SUBJECT_LINE.findall(low)
    if not subjects:
        return False
    candidates = set(_FOR_RUN.findall(low))
    return any(c in seg for c in candidates for seg in subjects)


def pds_to_brand_subject(value: bytes, low: bytes) -> bool:
    """``^To:\\s+<?[^\\@]+\\@([^\\.]+)\\.(?:[^\\n]+\\n+)*^Subject: \\"?\\1\\b``:
    the group is the text from just after some ``@`` to the next ``.``; it
    must follow some ``Subject: `` (or ``Subject: "``) at once."""
    pos = low.find(b"subject: ")
    while pos >= 0:
        for start in (pos + 9, pos + 10):
            if start == pos + 10 and low[pos + 9 : pos + 10] != b'"':
                break
            first = low[start : start + 1]
            if not first or first == b".":
                continue
            at = low.find(b"@" + first)
            while at >= 0:
                dot = low.find(b".", at + 1)
                if dot < 0:
                    break  # nor any later "@"
                if low.startswith(low[at + 1 : dot], start):
                    return True
                at = low.find(b"@" + first, at + 1)
        pos = low.find(b"subject: ", pos + 1)
    return False


def subj_has_from_1(value: bytes, low: bytes) -> bool:
    """``\\nFrom: (?:[^\\n<]{0,80}<)?([^\\n\\s>]+)>?\\n+(?:[^\\n]{1,100}\\n+)*
    Subject: [^\\n]{0,100}\\1[>,:\\s\\n]``: the group starts the rest of a
    ``\\nFrom: `` line or follows a ``<`` in it, and runs (no space, no ``>``)
    to the line's end or to a ``>`` ending it; it must stand in a line after
    some ``Subject: ``."""
    subjects = _SUBJECT_LINE.findall(low)
    if not subjects:
        return False
    candidates: set[bytes] = set()
    for line in _FROM_LINE.findall(low):
        body = line[:-1] if line.endswith(b">") else line
        start = 0
        while start >= 0:
            group = body[start:]
            if group and _RUN_FROM.fullmatch(group):
                candidates.add(group)
            start = body.find(b"<", start)
            if start >= 0:
                start += 1
    return any(c in seg for c in candidates for seg in subjects)


# The rest of each line after ``\nto: `` (the ``To: `` and ``From: `` a
# back-reference must follow stand after ``\n+`` or a line's ``\n+``).
_TO_LINE = re.compile(rb"\nto: ([^\n]*)")
_RUN_TO = re.compile(rb"[^\s>,]+")


def _address_groups(lines: list[bytes], run: re.Pattern[bytes]) -> set[bytes]:
    """``(?:[^\\n<]{0,80}<)?(RUN)>?\\n`` after each line's head: the group
    starts the line or follows a ``<`` in it (every ``<``: a superset) and
    runs, all of ``run``, to the line's end or to a ``>`` ending it."""
    groups: set[bytes] = set()
    for line in lines:
        body = line[:-1] if line.endswith(b">") else line
        start = 0
        while start >= 0:
            group = body[start:]
            if group and run.fullmatch(group):
                groups.add(group)
            start = body.find(b"<", start)
            if start >= 0:
                start += 1
    return groups


def _domain_groups(lines: list[bytes]) -> set[bytes]:
    """``[^\\n@]{0,80}@([^\\n\\s>]+)>?\\n`` after each line's head: the
    group follows the line's first ``@`` and runs (no space, no ``>``) to the
    line's end or to a ``>`` ending it."""
    groups: set[bytes] = set()
    for line in lines:
        at = line.find(b"@")
        if at < 0:
            continue
        body = line[at + 1 :]
        if body.endswith(b">"):
            body = body[:-1]
        if body and _RUN_FROM.fullmatch(body):
            groups.add(body)
    return groups


def _groups_after(
    low: bytes,
    lines: re.Pattern[bytes],
    groups: Callable[[list[bytes]], set[bytes]],
) -> tuple[set[bytes], int]:
    r"""The groups of every line ``lines`` finds, and where the first line
    giving one ends (the text the back-reference must stand in lies after
    it: ``\n+`` follows the group); -1 when there is none."""
    found: set[bytes] = set()
    end = -1
    for match in lines.finditer(low):
        these = groups([match.group(1)])
        if these:
            if end < 0:
                end = match.end()
            found |= these
    return found, end


def _seen_later(low: bytes, source, extract, target, prefix: bytes = b"") -> bool:
    """Whether a value *extract* takes from a *source* line stands, after
    *prefix*, in the rest of a later *target* line (``_groups_after``)."""
    candidates, end = _groups_after(low, source, extract)
    if end < 0:
        return False
    targets = target.findall(low, end)
    return any(prefix + c in seg for c in candidates for seg in targets)


def subj_has_to_1(value: bytes, low: bytes) -> bool:
    r"""``\nTo: (?:[^\n<]{0,80}<)?([^\n\s>,]+)>?\n+(?:[^\n]{1,200}\n+)*
    Subject: [^\n]{0,100}\1[^a-z0-9]``: the group is taken from a
    ``\nTo: `` line (``_address_groups``, no comma either); it must stand in
    a line after some ``Subject: `` past that line."""
    return _seen_later(
        low, _TO_LINE, lambda lines: _address_groups(lines, _RUN_TO), _SUBJECT_LINE
    )


def to_eq_from_1(value: bytes, low: bytes) -> bool:
    r"""``\nFrom: (?:[^\n<]{0,80}<)?([^\n\s>]+)>?\n+(?:[^\n]{1,100}\n+)*
    To: (?:[^\n]{0,80}<)?\1[>,\s\n]``: the group is taken from a
    ``\nFrom: `` line; it must stand in the rest of a later ``\nTo: ``
    line."""
    return _seen_later(
        low, _FROM_LINE, lambda lines: _address_groups(lines, _RUN_FROM), _TO_LINE
    )


def to_eq_from_2(value: bytes, low: bytes) -> bool:
    r"""``\nTo: (?:[^\n<]{0,80}<)?([^\n\s>]+)>?\n+(?:[^\n]{1,100}\n+)*
    From: (?:[^\n]{0,80}<)?\1[>,\s\n]``: the group is taken from a
    ``\nTo: `` line; it must stand in the rest of a later ``\nFrom: ``
    line."""
    return _seen_later(
        low, _TO_LINE, lambda lines: _address_groups(lines, _RUN_FROM), _FROM_LINE
    )


def to_eq_from_dom_1(value: bytes, low: bytes) -> bool:
    r"""``\nFrom: [^\n@]{0,80}@([^\n\s>]+)>?\n+(?:[^\n]{1,100}\n+)*
    To: [^\n]+@\1[>,\s\n]``: the group is taken from a ``\nFrom: `` line
    (``_domain_groups``); ``@`` and it must stand in the rest of a later
    ``\nTo: `` line."""
    return _seen_later(low, _FROM_LINE, _domain_groups, _TO_LINE, b"@")


def to_eq_from_dom_2(value: bytes, low: bytes) -> bool:
    r"""``\nTo: [^\n@]{0,80}@([^\n\s>]+)>?\n+(?:[^\n]{1,100}\n+)*
    From: [^\n]+@\1[>,\s\n]``: the group is taken from a ``\nTo: `` line
    (``_domain_groups``); ``@`` and it must stand in the rest of a later
    ``\nFrom: `` line."""
    return _seen_later(low, _TO_LINE, _domain_groups, _FROM_LINE, b"@")


# From the hyphen of a ``__RAND_HEADER`` header name on: the rest of its
# pattern (on the lowered text, ``[a-z]`` and ``[\da-f]`` need no ``/i``).
_RAND_SUFFIX = re.compile(
    rb"-[a-z]{3,}:\s+\d(?=\S{6,}\s*$)[\da-f]*(?:[-.]\w+)*\s*$", re.MULTILINE
)


def rand_header(value: bytes, low: bytes) -> bool:
    r"""``^(?!Accept-Language|...)(?:[a-z]{4,}-[a-z]{3,}|[a-z]{3,}-[a-z]{4,}):
    \s+\d(?=\S{6,}\s*$)[\da-f]*(?:[-.]\w+)*\s*$`` (``/ism``; no
    back-reference, but a search tried at every line): a match is a line
    whose name is three or more letters, a hyphen and the rest, which
    ``_RAND_SUFFIX`` matches from that hyphen on.  Such a suffix match stands
    alone in ``finditer``: an earlier one ends at a line end (``\s*$`` crosses
    only blanks, never the next line's letters), and none starts earlier in
    a line that begins with letters up to this hyphen."""
    for match in _RAND_SUFFIX.finditer(low):
        hyphen = match.start()
        name = low[low.rfind(b"\n", 0, hyphen) + 1 : hyphen]
        if len(name) >= 3 and name.isalpha():
            return True
    return False


_BY_PATTERN: dict[bytes, Prefilter] = {
    rb"\nReceived:[^\n]{0,200} for <?([^\n\s>;]+)>?;(?:[^\n]+\n+)*"
    rb"Subject: [^\n]{0,100}\1[^a-z0-9]": subj_has_to_2,
    rb"^To:\s+<?[^\@]+\@([^\.]+)\.(?:[^\n]+\n+)*^Subject: \"?\1\b": (
        pds_to_brand_subject
    ),
    rb"\nFrom: (?:[^\n<]{0,80}<)?([^\n\s>]+)>?\n+(?:[^\n]{1,100}\n+)*"
    rb"Subject: [^\n]{0,100}\1[>,:\s\n]": subj_has_from_1,
    rb"\nTo: (?:[^\n<]{0,80}<)?([^\n\s>,]+)>?\n+(?:[^\n]{1,200}\n+)*"
    rb"Subject: [^\n]{0,100}\1[^a-z0-9]": subj_has_to_1,
    rb"\nFrom: (?:[^\n<]{0,80}<)?([^\n\s>]+)>?\n+(?:[^\n]{1,100}\n+)*"
    rb"To: (?:[^\n]{0,80}<)?\1[>,\s\n]": to_eq_from_1,
    rb"\nTo: (?:[^\n<]{0,80}<)?([^\n\s>]+)>?\n+(?:[^\n]{1,100}\n+)*"
    rb"From: (?:[^\n]{0,80}<)?\1[>,\s\n]": to_eq_from_2,
    rb"\nFrom: [^\n@]{0,80}@([^\n\s>]+)>?\n+(?:[^\n]{1,100}\n+)*"
    rb"To: [^\n]+@\1[>,\s\n]": to_eq_from_dom_1,
    rb"\nTo: [^\n@]{0,80}@([^\n\s>]+)>?\n+(?:[^\n]{1,100}\n+)*"
    rb"From: [^\n]+@\1[>,\s\n]": to_eq_from_dom_2,
    rb"^(?!Accept-Language|Authentication-Results|Content-|DomainKey-Signature"
    rb"|DKIM-|List-|MIME-|Received-SPF|Return-Path|Thread-|User-Agent"
    rb"|Tracking-Code)(?:[a-z]{4,}-[a-z]{3,}|[a-z]{3,}-[a-z]{4,}):\s+\d"
    rb"(?=\S{6,}\s*$)[\da-f]*(?:[-.]\w+)*\s*$": rand_header,
}


# ``From:`` and, in a lookahead (so that a ``From:`` in a skipped blank run
# is found too), the run of ``\S+\s\S+`` after its blanks, and a blank.
_FROM_NAME = re.compile(rb"From:(?=\s+(\S+\s\S+)\s)")
# The reach of ``.{1,2048}``; the octets of a bytes pattern's ``\s``.
_NAME_REACH = 2048
_BLANKS = frozenset(b" \t\n\r\x0b\x0c")


def from_name_in_msg(value: bytes, low: bytes) -> bool:
    r"""``^From:\s+([^<]\S+\s\S+)\s(?=.{1,2048}^\1\r?$)`` (``/sm``, no
    ``/i``: *low* is not used; a full rule, *value* is the whole message).

    After ``From:`` at a line start, ``\s+`` takes a blank run; ``[^<]`` is
    its last blank or the octet after it, and ``\S+`` runs on from there
    to a blank, so the group is *name* (the ``\S+\s\S+`` after the run,
    each ``\S+`` a whole run of non-blanks) or that last blank and *name*;
    a blank ``\s`` follows it at *end*.  The group must then start a line
    at some *p* with ``end + 1 < p <= end + 2048`` and be followed by an
    optional ``\r`` and a line end: so *name* stands at some ``q`` (``q ==
    p`` or ``p + 1``) after a newline or after a blank that follows a
    newline, and is followed by ``\r?`` and ``\n`` or the end of the
    message."""
    size = len(value)
    for match in _FROM_NAME.finditer(value):
        start = match.start()
        if start and value[start - 1] != 10:  # not at a line start
            continue
        name = match.group(1)
        reach = match.end(1) + 1  # just past the blank after the group
        limit = reach + _NAME_REACH + 1 + len(name)
        at = value.find(name, reach + 1, limit)
        while at >= 0:
            before = value[at - 1]
            after = at + len(name)
            if after < size and value[after] == 13:  # \r
                after += 1
            if (after == size or value[after] == 10) and (
                (before == 10 and at <= reach + _NAME_REACH)  # the group: name
                or (before in _BLANKS and value[at - 2] == 10 and at > reach + 1)
            ):
                return True
            at = value.find(name, at + 1, limit)
    return False


# Prefilters of patterns with other flags than ``_FLAGS``.
_BY_PATTERN_AND_FLAGS: dict[tuple[bytes, int], Prefilter] = {
    (
        rb"^From:\s+([^<]\S+\s\S+)\s(?=.{1,2048}^\1\r?$)",
        re.MULTILINE | re.DOTALL,
    ): from_name_in_msg,
}


def for_regex(regex: re.Pattern[bytes]) -> Prefilter | None:
    """The prefilter written for exactly this pattern and flags, or None."""
    if regex.flags != _FLAGS:
        return _BY_PATTERN_AND_FLAGS.get((regex.pattern, regex.flags))
    return _BY_PATTERN.get(regex.pattern)
