"""Necessary-condition prefilters for back-reference header rules.

A twin speed-up, not SpamAssassin's (and not a change of outcome): a few
header rules read the whole header block (``ALL``) and compare a captured
address with the Subject line through a back-reference
(``__SUBJ_HAS_TO_2``, ``__PDS_TO_BRAND_SUBJECT``, ``__SUBJ_HAS_FROM_1``).
``re`` backtracks through every start, capture and line between for such a
pattern, up to a tenth of a millisecond a message.  Each prefilter here
computes, in a few C-level searches, a superset of the
values the group can capture and answers False only when none of them can
stand where the back-reference needs it: a proof that the regex finds
nothing, so the regex is skipped.  True means "run the regex".

Every prefilter is tied to one exact pattern and its flags (``for_regex``):
an edited rule gets no prefilter and simply runs its regex.  All the patterns
are ``/i`` on bytes, so comparing the ASCII-lower-cased text (``bytes.lower``)
is what the case-insensitive back-reference does.
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


_BY_PATTERN: dict[bytes, Prefilter] = {
    rb"\nReceived:[^\n]{0,200} for <?([^\n\s>;]+)>?;(?:[^\n]+\n+)*"
    rb"Subject: [^\n]{0,100}\1[^a-z0-9]": subj_has_to_2,
    rb"^To:\s+<?[^\@]+\@([^\.]+)\.(?:[^\n]+\n+)*^Subject: \"?\1\b": (
        pds_to_brand_subject
    ),
    rb"\nFrom: (?:[^\n<]{0,80}<)?([^\n\s>]+)>?\n+(?:[^\n]{1,100}\n+)*"
    rb"Subject: [^\n]{0,100}\1[>,:\s\n]": subj_has_from_1,
}


def for_regex(regex: re.Pattern[bytes]) -> Prefilter | None:
    """The prefilter written for exactly this pattern and flags, or None."""
    if regex.flags != _FLAGS:
        return None
    return _BY_PATTERN.get(regex.pattern)
