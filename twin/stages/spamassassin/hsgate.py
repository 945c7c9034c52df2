"""Optional Hyperscan gates: which rules may match a text, from one scan.

A twin speed-up, not SpamAssassin's (and not a change of outcome): a ``Gate``
compiles many rule patterns into one Hyperscan database (Intel's multi-pattern
regex engine, PyPI ``hyperscan``) and, for a text, answers in one pass the set
of rules that *may* match it.  The caller then runs the exact ``re`` path only
for those rules (and for the rules the gate does not cover), so hits and the
work counted are those of the ``re`` engine alone.

What makes the answer safe (a superset of the rules ``re.search`` hits):

- patterns are the translated ``re`` bytes patterns; Hyperscan scans octets
  without UTF-8 or Unicode properties, so ``\\w \\d \\s \\b`` and ``/i`` mean
  the ASCII classes and ASCII case folding of a ``re`` bytes pattern;
- patterns Hyperscan cannot compile exactly (back-references, lookarounds,
  atomic groups, possessive quantifiers) are compiled in prefilter mode
  (``HS_FLAG_PREFILTER``: reports a superset of the true matches), and those
  that fail even so (``^``/``$`` inside a pattern) with their ``^ $ \\A \\Z``
  anchors dropped (a superset again); those it
  cannot compile either, patterns that match the empty string, patterns with
  ``\\A``/``\\Z`` (outside multi-line gates) or ``/x`` are not covered
  (their rules always run on ``re``); a pattern whose bounded repeats unroll
  past ``MAX_UNROLLED`` is compiled with them unbounded (``x{0,2048}`` as
  ``x*``: a superset again); one still too big, or over ``MAX_PATTERN``
  characters (the homoglyph and HTML-entity spellings ReplaceTags and the
  text levels write out), is compiled with each big alternation of short
  branches collapsed to a run of the octets it may consume, every non-ASCII
  octet standing for all of them (``(?:e|&#233;|\\xc3\\xa9)`` as
  ``[#&0-9;e\\x80-\\xff]{1,6}``: a superset again), and is not covered
  when even that is too big or over ``MAX_PARSED`` characters;
- the patterns are compiled ``CHUNK`` to a database; when a chunk had to be
  halved to find the patterns that fail, the rest are compiled again into one
  database (one scan instead of several);
- rules that search several pieces separately (body paragraphs, URIs) are
  gated on the pieces joined so that each is followed by ``\\n`` (``pieces``),
  with ``^``/``$`` made multi-line: every match inside one piece is then a
  match of the joined text, since each piece is bordered by ``\\n`` or the text
  edges (``^``/``$`` and ``\\b``/``\\B`` hold there as at a piece's own edges).

Only every pattern's first match is reported (``HS_FLAG_SINGLEMATCH``).
``available()`` says whether Hyperscan can be used: the module imports and the
environment variable ``MAILTWIN_HYPERSCAN`` is not ``0``.  Without it nothing
here is built and the rules run on the pure-``re`` path, with the same hits.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

try:  # the regex parser: sizes a pattern before Hyperscan compiles it
    from re import _constants as _c  # type: ignore[attr-defined]
    from re import _parser as _sre  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover -- Python 3.10 names them sre_*
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _sre  # type: ignore[no-redef]

try:  # optional: Intel Hyperscan bindings (x86_64 wheels)
    import hyperscan as _hs
except ImportError:  # pragma: no cover -- other platforms: pure re
    _hs = None

from twin.stages.spamassassin.prefilter import _GROUPREFS as _REFS
from twin.stages.spamassassin.prefilter import _Unsupported, unparse
from twin.stages.spamassassin.prefilter import class_octets as _class_octets

__all__ = [
    "ENV_SWITCH", "Gate", "available", "build_gate", "build_literal_gate", "pieces",
]

ENV_SWITCH = "MAILTWIN_HYPERSCAN"
MAX_PATTERN = 13000  # longer patterns (ReplaceTags giants) stay on re
CHUNK = 128  # patterns per database
MAX_UNROLLED = 1600  # ... and so do those whose bounded repeats unroll past this
# ... unless collapsing their glyph alternations (``_collapsed``) brings them
# under both limits; patterns over MAX_PARSED characters are not tried.
MAX_PARSED = 200_000
_GLYPH_WIDTH = 8  # an alternation whose branches match at most this many octets
_GLYPH_SIZE = 16  # ... and that is bigger than this is collapsed to a class run
_ALL_OCTETS = frozenset(range(256))
# Constructs Hyperscan has no exact form for: compiled in prefilter mode.
_PREFILTER_OPS = frozenset(
    getattr(_c, name)
    for name in (
        "GROUPREF", "GROUPREF_EXISTS", "GROUPREF_IGNORE", "ASSERT", "ASSERT_NOT",
        "ATOMIC_GROUP", "POSSESSIVE_REPEAT",
    )
    if hasattr(_c, name)
)
_UNCOVERED = re.compile(rb"(?<!\\)(?:\\\\)*\\[AZ]")
# Perl's \Z as perlre writes it, and \A \Z, for ^ $ in multi-line mode.
_PERL_END = b"(?=\\n?\\Z)"
_EDGE = re.compile(rb"(?<!\\)((?:\\\\)*)\\([AZ])")
_END_CODES = frozenset(
    getattr(_c, name)
    for name in ("AT_END", "AT_END_LINE", "AT_END_STRING", "AT_NON_BOUNDARY")
    if hasattr(_c, name)
)


_LINE_ANCHORS = frozenset(
    getattr(_c, name)
    for name in (
        "AT_BEGINNING", "AT_BEGINNING_LINE", "AT_BEGINNING_STRING", "AT_END",
        "AT_END_LINE", "AT_END_STRING",
    )
    if hasattr(_c, name)
)


def available() -> bool:
    """Hyperscan importable and not turned off (``MAILTWIN_HYPERSCAN=0``)."""
    return _hs is not None and os.environ.get(ENV_SWITCH, "1") != "0"


def version() -> str:
    """The Hyperscan bindings' version, or "" when they are not used."""
    return getattr(_hs, "__version__", "?") if available() else ""


def needs_piece_end(regex: re.Pattern[bytes]) -> bool:
    """Does the pattern hold ``$``, ``\\Z`` or ``\\B`` (which may need a piece's
    very end, after its final newline)?  True when it cannot be parsed."""
    try:
        return _ends(_sre.parse(regex.pattern, regex.flags))
    except (re.error, RecursionError, TypeError, ValueError):
        return True


def _ends(items: object) -> bool:
    for op, av in items:  # type: ignore[attr-defined]
        if op is _c.AT:
            if av in _END_CODES:
                return True
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT) or op is getattr(
            _c, "POSSESSIVE_REPEAT", None
        ):
            if _ends(av[2]):
                return True
        elif op is _c.SUBPATTERN:
            if _ends(av[-1]):
                return True
        elif op is getattr(_c, "ATOMIC_GROUP", None):
            if _ends(av):
                return True
        elif op is _c.BRANCH:
            if any(_ends(branch) for branch in av[1]):
                return True
        elif op in (_c.ASSERT, _c.ASSERT_NOT):
            if _ends(av[1]):
                return True
    return False


def pieces(items: Sequence[bytes]) -> bytes:
    """Pieces joined for a gate: each followed by one ``\\n``."""
    return b"\n".join(items) + b"\n"


def _on_match(pid: int, start: int, end: int, flags: int, found: list[int]) -> None:
    found.append(pid)


class Gate:
    """Hyperscan databases over some rule patterns (by caller index); a few
    databases of at most ``CHUNK`` patterns compile much faster than one."""

    __slots__ = ("covered", "_dbs", "_blobs")

    def __init__(self, covered: frozenset[int], blobs: list[bytes]) -> None:
        self.covered = covered
        self._blobs = blobs
        self._dbs: list[object] | None = None

    def __getstate__(self) -> tuple[frozenset[int], list[bytes]]:
        return (self.covered, self._blobs)

    def __setstate__(self, state: tuple[frozenset[int], list[bytes]]) -> None:
        self.covered, self._blobs = state
        self._dbs = None
        if available():  # loaded with the rule set, not on the first scan
            self._open()

    def _open(self) -> list[object]:
        dbs = []
        for blob in self._blobs:
            db = _hs.loadb(blob, _hs.HS_MODE_BLOCK)
            db.scratch = _hs.Scratch(db)
            dbs.append(db)
        self._dbs = dbs
        return dbs

    def scan(self, text: bytes) -> list[int]:
        """Indexes of the covered patterns that may match ``text`` (each once)."""
        dbs = self._dbs
        if dbs is None:
            dbs = self._open()
        found: list[int] = []
        # Twin speed-up: the arguments passed by position (the binding parses
        # keywords slowly); the same call.
        for db in dbs:
            db.scan(text, _on_match, 0, found)
        return found


def _hs_flags(flags: int, multiline: bool) -> int:
    value = _hs.HS_FLAG_SINGLEMATCH
    if flags & re.IGNORECASE:
        value |= _hs.HS_FLAG_CASELESS
    if flags & re.DOTALL:
        value |= _hs.HS_FLAG_DOTALL
    if multiline or flags & re.MULTILINE:
        value |= _hs.HS_FLAG_MULTILINE
    return value


def _shape(items: object, ops: set[object]) -> int:
    """The pattern's size with bounded repeats unrolled; collects its ops."""
    size = 0
    for op, av in items:  # type: ignore[attr-defined]
        ops.add(op)
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT) or op is getattr(
            _c, "POSSESSIVE_REPEAT", None
        ):
            low, high, sub = av
            times = high if high != _c.MAXREPEAT else max(low, 1) + 1
            size += _shape(sub, ops) * max(times, 1)
        elif op is _c.SUBPATTERN:
            size += _shape(av[-1], ops)
        elif op is getattr(_c, "ATOMIC_GROUP", None):
            size += _shape(av, ops)
        elif op is _c.BRANCH:
            size += sum(_shape(branch, ops) for branch in av[1])
        elif op in (_c.ASSERT, _c.ASSERT_NOT):
            size += _shape(av[1], ops)
        else:
            size += 1
        if size > MAX_UNROLLED:
            break
    return size


def _loosened(items: object) -> list[tuple[object, object]]:
    """Parsed items with every repeat bounded above 2 made unbounded (and its
    minimum cut to at most 2): they match a superset of the original's."""
    out: list[tuple[object, object]] = []
    for op, av in items:  # type: ignore[attr-defined]
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT) or op is getattr(
            _c, "POSSESSIVE_REPEAT", None
        ):
            low, high, sub = av
            if high != _c.MAXREPEAT and high > 2:
                low, high = min(low, 2), _c.MAXREPEAT
            out.append((op, (low, high, _loosened(sub))))
        else:
            out.append(_with_children(op, av, _loosened))
    return out


def _with_children(op: object, av: object, walk) -> tuple[object, object]:
    """The parsed item (*op*, *av*) with *walk* applied to its sub-patterns
    (repeats, groups, atomic groups, branches, look-arounds); others as is."""
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT) or op is getattr(
        _c, "POSSESSIVE_REPEAT", None
    ):
        return op, (av[0], av[1], walk(av[2]))  # type: ignore[index]
    if op is _c.SUBPATTERN:
        return op, (*av[:-1], walk(av[-1]))  # type: ignore[index]
    if op is getattr(_c, "ATOMIC_GROUP", None):
        return op, walk(av)
    if op is _c.BRANCH:
        return op, (av[0], [walk(branch) for branch in av[1]])  # type: ignore[index]
    if op in (_c.ASSERT, _c.ASSERT_NOT):
        return op, (av[0], walk(av[1]))  # type: ignore[index]
    return op, av


_REPEAT_OPS = frozenset(
    op
    for op in (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", None))
    if op is not None
)


class _Opaque(Exception):
    """A construct ``_summary`` cannot bound (a back-reference)."""


def _summary(items: object) -> tuple[int, int | None, frozenset[int]]:
    """Fewest and most octets a match of the items spans (None: unbounded)
    and the octets it may consume; assertions are ignored (zero width)."""
    low = 0
    high: int | None = 0
    octets: set[int] = set()
    for op, av in items:  # type: ignore[attr-defined]
        if op is _c.LITERAL:
            a, b, found = 1, 1, frozenset((av,))  # type: ignore[arg-type]
        elif op is _c.NOT_LITERAL or op is _c.ANY:
            a, b, found = 1, 1, _ALL_OCTETS
        elif op is _c.IN:
            a, b, found = 1, 1, _class_octets(av)
        elif op is _c.AT or op in (_c.ASSERT, _c.ASSERT_NOT):
            continue
        elif op is _c.SUBPATTERN:
            a, b, found = _summary(av[-1])  # type: ignore[index]
        elif op is getattr(_c, "ATOMIC_GROUP", None):
            a, b, found = _summary(av)
        elif op is _c.BRANCH:
            parts = [_summary(branch) for branch in av[1]]  # type: ignore[index]
            a = min(part[0] for part in parts)
            tops = [part[1] for part in parts]
            b = None if None in tops else max(tops)  # type: ignore[type-var]
            found = frozenset().union(*(part[2] for part in parts))
        elif op in _REPEAT_OPS:
            least, most, sub = av  # type: ignore[misc]
            a0, b0, found = _summary(sub)
            a = least * a0
            if b0 == 0:
                b = 0
            elif b0 is None or most == _c.MAXREPEAT:
                b = None
            else:
                b = most * b0
        else:
            raise _Opaque(f"construct {op}")
        low += a
        high = None if high is None or b is None else high + b
        octets.update(found)
    return low, high, frozenset(octets)


def _octet_run(
    octets: frozenset[int], low: int, high: int
) -> list[tuple[object, object]]:
    """Items matching ``low`` to ``high`` octets, each one of ``octets``."""
    if high == 0 or not octets:
        return []
    if max(octets) >= 0x80:  # any non-ASCII octet: all of them (shorter, a superset)
        octets = octets.union(range(0x80, 0x100))
    ranges: list[tuple[object, object]] = []
    ordered = sorted(octets)
    start = previous = ordered[0]
    for octet in [*ordered[1:], -1]:
        if octet == previous + 1:
            previous = octet
            continue
        ranges.append(
            (_c.LITERAL, start) if start == previous else (_c.RANGE, (start, previous))
        )
        start = previous = octet
    item = [(_c.IN, ranges)]
    if low == high == 1:
        return item  # type: ignore[return-value]
    return [(_c.MAX_REPEAT, (low, high, item))]


def _collapsed(items: object) -> list[tuple[object, object]]:
    """Parsed items with every big alternation of short branches (homoglyph
    and HTML-entity spellings of one letter) replaced by a run of the octets
    it may consume, as long as it may be: a superset of the original's
    matches (assertions inside a collapsed alternation are dropped)."""
    out: list[tuple[object, object]] = []
    for op, av in items:  # type: ignore[attr-defined]
        if op is _c.BRANCH:
            node = (op, (av[0], [_collapsed(b) for b in av[1]]))  # type: ignore[index]
            if _shape([node], set()) > _GLYPH_SIZE:
                try:
                    low, high, octets = _summary([node])
                except _Opaque:
                    high = None
                if high is not None and all(
                    (top := _summary(branch)[1]) is not None and top <= _GLYPH_WIDTH
                    for branch in node[1][1]
                ):
                    out.extend(_octet_run(octets, low, high))
                    continue
            out.append(node)
        elif op in _REPEAT_OPS:
            out.append((op, (av[0], av[1], _collapsed(av[2]))))  # type: ignore[index]
        elif op is _c.SUBPATTERN:
            out.append((op, (*av[:-1], _collapsed(av[-1]))))  # type: ignore[misc]
        elif op is getattr(_c, "ATOMIC_GROUP", None):
            out.append((op, _collapsed(av)))
        elif op in (_c.ASSERT, _c.ASSERT_NOT):
            out.append((op, (av[0], _collapsed(av[1]))))  # type: ignore[index]
        else:
            out.append((op, av))
    return out


def _drop_ends(items: object) -> list[tuple[object, object]]:
    out: list[tuple[object, object]] = []
    for op, av in items:  # type: ignore[attr-defined]
        if op is _c.AT and av in _LINE_ANCHORS:
            continue
        out.append(_with_children(op, av, _drop_ends))
    return out


def _without_anchors(pattern: bytes) -> bytes | None:
    """The pattern with its start and end assertions (``^ $ \\A \\Z``)
    dropped, which matches a superset of its matches; None when that cannot
    be written."""
    try:
        loose = unparse(_drop_ends(_sre.parse(pattern, 0))).encode("latin-1")
    except (re.error, RecursionError, TypeError, ValueError, _Unsupported):
        return None
    return None if loose == pattern else loose


def build_gate(
    patterns: Sequence[tuple[int, re.Pattern[bytes]]], multiline: bool
) -> Gate | None:
    """A gate over ``(index, pattern)`` pairs, or None (nothing covered or no
    Hyperscan).  ``multiline`` makes ``^``/``$`` multi-line (for ``pieces``)."""
    if not available():
        return None
    expressions: list[bytes] = []
    ids: list[int] = []
    flag_list: list[int] = []
    for index, regex in patterns:
        pattern = regex.pattern
        if multiline:  # edges of the text -> edges of any line (a superset)
            pattern = _EDGE.sub(
                lambda m: m.group(1) + (b"^" if m.group(2) == b"A" else b"$"),
                pattern.replace(_PERL_END, b"$"),
            )
        if (
            len(pattern) > MAX_PARSED
            or regex.flags & re.VERBOSE
            or _UNCOVERED.search(pattern)
            or regex.search(b"") is not None
        ):
            continue
        ops: set[object] = set()
        try:
            parsed = _sre.parse(pattern, regex.flags)
            if len(pattern) > MAX_PATTERN or _shape(parsed, ops) > MAX_UNROLLED:
                # Bounded repeats made unbounded: a superset, cheap to compile.
                loose = _loosened(parsed)
                ops = set()
                if len(pattern) > MAX_PATTERN or _shape(loose, ops) > MAX_UNROLLED:
                    # Glyph alternations as class runs: a superset again.
                    loose = _collapsed(loose)
                    ops = set()
                    if _shape(loose, ops) > MAX_UNROLLED or ops & _REFS:
                        continue
                pattern = unparse(loose).encode("latin-1")
                if len(pattern) > MAX_PATTERN:
                    continue
        except (re.error, RecursionError, TypeError, ValueError, _Unsupported):
            continue
        flags = _hs_flags(regex.flags, multiline)
        if ops & _PREFILTER_OPS:
            flags |= _hs.HS_FLAG_PREFILTER
        expressions.append(pattern)
        ids.append(index)
        flag_list.append(flags)
    entries = list(zip(expressions, ids, flag_list, strict=True))
    covered: list[int] = []
    blobs: list[bytes] = []
    for start in range(0, len(entries), CHUNK):
        pieces = _compiled(entries[start : start + CHUNK])
        if len(pieces) > 1:
            # Halving left several databases: one of them all scans faster.
            kept = [entry for _db, used in pieces for entry in used]
            db = _compile_all(*map(list, zip(*kept, strict=True)))
            if db is not None:
                pieces = [(db, kept)]
        for db, used in pieces:
            covered.extend(entry[1] for entry in used)
            blobs.append(_hs.dumpb(db))
    if not blobs:
        return None
    return Gate(frozenset(covered), blobs)


_Entry = tuple[bytes, int, int]  # (pattern, index, Hyperscan flags)


def _compiled(entries: list[_Entry]) -> list[tuple[object, list[_Entry]]]:
    """Databases (with the entries, as compiled) for the entries that
    compile: a set that fails is halved until the failing pattern is found;
    that one is tried in prefilter mode, then without anchors, else left
    out."""
    if not entries:
        return []
    db = _compile_all(*map(list, zip(*entries, strict=True)))
    if db is not None:
        return [(db, entries)]
    if len(entries) == 1:
        pattern, index, flags = entries[0]
        if not flags & _hs.HS_FLAG_PREFILTER:
            return _compiled([(pattern, index, flags | _hs.HS_FLAG_PREFILTER)])
        # Hyperscan has no anchor inside a pattern (after a start or before
        # an end): drop them all.
        loose = _without_anchors(pattern)
        if loose is None:
            return []
        entry = (loose, index, flags)
        db = _compile_all([loose], [index], [flags])
        return [] if db is None else [(db, [entry])]
    half = len(entries) // 2
    return _compiled(entries[:half]) + _compiled(entries[half:])


def build_literal_gate(literals: Sequence[bytes]) -> Gate | None:
    """A gate telling which of ``literals`` (by index) occur in a text,
    case-sensitively (scan the lower-cased text for lower-cased literals)."""
    if not available() or not literals:
        return None
    expressions = [b"".join(b"\\x%02x" % octet for octet in lit) for lit in literals]
    ids = list(range(len(literals)))
    db = _compile_all(expressions, ids, [_hs.HS_FLAG_SINGLEMATCH] * len(ids))
    if db is None:
        return None
    return Gate(frozenset(ids), [_hs.dumpb(db)])


def _compile_all(
    expressions: list[bytes], ids: list[int], flags: list[int]
):  # noqa: ANN202 -- a hyperscan.Database or None
    if not expressions:
        return None
    db = _hs.Database(mode=_hs.HS_MODE_BLOCK)
    try:
        db.compile(expressions=expressions, ids=ids, elements=len(ids), flags=flags)
    except _hs.error:
        return None
    return db
