"""Cheap necessary conditions for rule regexes: the twin's speed-up, not SpamAssassin's.

Works on Python's own parse of a compiled rule pattern (``re._parser``) and
gives, once at rule-compile time:

- ``ascii_variant(regex)``: the pattern with every branch, class member and
  literal that needs an octet >= 0x80 removed.  On text without such octets it
  finds exactly the same matches as the original (a removed branch could never
  match there), but runs much faster on the obfuscation rules, whose alternations
  list dozens of multi-octet look-alike letters.  ``NEVER`` when nothing is left.
- ``required_factors(regex)``: a few "factors", each a set of lower-cased
  literals, such that any match's surroundings contain at least one literal of
  every factor (lookaround text included: a factor is checked against the whole
  searched string).  Character classes and short alternations are expanded into
  literal sets, so ``v[i1!]agra`` gives ``{via, v1a, v!a}``-style sets; the
  factors with the lowest expected chance of being present in English text are
  kept.
- ``Trigrams``: the set of 3-octet windows of a lower-cased text, so that a
  factor is ruled out by one set operation in C before any ``in`` scan.
- ``first_octet_pattern(regex)``: the pattern behind a lookahead for the few
  octets any match can start with.  Same matches and groups; ``re`` rejects
  most start positions with one class test, which pays on the long rules that
  a gate lets through and that then match nothing.

A rule is run only when every factor has a literal in the text; since the
conditions are necessary, rule hits are those of running every regex.  Counts
nothing itself (``rules`` keeps SpamAssassin's work counts).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Sequence

import numpy as np

try:
    from re import _constants as _c  # type: ignore[attr-defined]
    from re import _parser as _sre  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover -- Python 3.10 names them sre_*
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _sre  # type: ignore[no-redef]

__all__ = [
    "ENTITY",
    "LiteralCheck",
    "RegexCheck",
    "RuleFilter",
    "TextView",
    "TrigramIndex",
    "header_literals",
    "required_factors",
    "rule_filter",
    "unparse",
]

_MAX_SET = 96  # literal set size limit while expanding classes and alternations
_MAX_CLASS = 16  # expand a character class of at most this many octets
_MAX_FACTORS = 3
_USEFUL = 0.6  # keep factors whose expected presence is below this
_SKELETON_ABOVE = 0.02  # add a skeleton check when the best factor is weaker
_SKELETON_CHARS = 3000  # ... and its pattern is at most this long
_SKELETON_START = 0.1  # ... if it starts with octets this rare (in English text)
_TEXT_OCTETS = 4000.0  # a typical rendered body, for the presence estimate
_KEEP_X = re.IGNORECASE | re.MULTILINE | re.DOTALL | re.ASCII | re.LOCALE
_FLAG_LETTERS = ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"))
_REPEATS = {_c.MAX_REPEAT: "", _c.MIN_REPEAT: "?"}
if hasattr(_c, "POSSESSIVE_REPEAT"):
    _REPEATS[_c.POSSESSIVE_REPEAT] = "+"
_ATOMIC = getattr(_c, "ATOMIC_GROUP", None)
_AT = {
    _c.AT_BEGINNING: "^",
    _c.AT_BEGINNING_STRING: "\\A",
    _c.AT_END: "$",
    _c.AT_END_STRING: "\\Z",
    _c.AT_BOUNDARY: "\\b",
    _c.AT_NON_BOUNDARY: "\\B",
}
_CATEGORY = {
    _c.CATEGORY_DIGIT: "\\d",
    _c.CATEGORY_NOT_DIGIT: "\\D",
    _c.CATEGORY_SPACE: "\\s",
    _c.CATEGORY_NOT_SPACE: "\\S",
    _c.CATEGORY_WORD: "\\w",
    _c.CATEGORY_NOT_WORD: "\\W",
}
_CATEGORY_OCTETS = {
    _c.CATEGORY_DIGIT: b"0123456789",
    _c.CATEGORY_SPACE: b" \t\n\r\f\v",
}


class _Unsupported(Exception):
    """A construct the rewriter leaves alone (back-references)."""


# ----------------------------------------------------------------- unparse
def _octet(code: int) -> str:
    char = chr(code)
    return char if char.isascii() and char.isalnum() else f"\\x{code:02x}"


def _class_items(items: Iterable[tuple[object, object]]) -> str:
    out = []
    for op, av in items:
        if op is _c.NEGATE:
            out.insert(0, "^")
        elif op is _c.LITERAL:
            out.append(_octet(av))  # type: ignore[arg-type]
        elif op is _c.RANGE:
            out.append(f"{_octet(av[0])}-{_octet(av[1])}")  # type: ignore[index]
        elif op is _c.CATEGORY:
            out.append(_CATEGORY[av])
        else:
            raise _Unsupported(f"class item {op}")
    return "[" + "".join(out) + "]"


def _flags(add: int, delete: int) -> str:
    on = "".join(letter for flag, letter in _FLAG_LETTERS if add & flag)
    off = "".join(letter for flag, letter in _FLAG_LETTERS if delete & flag)
    return on + ("-" + off if off else "")


def unparse(items: Sequence[tuple[object, object]]) -> str:
    """Pattern text (Latin-1) for parsed items; groups become non-capturing."""
    out = []
    for op, av in items:
        if op is _c.LITERAL:
            out.append(_octet(av))  # type: ignore[arg-type]
        elif op is _c.NOT_LITERAL:
            out.append(f"[^{_octet(av)}]")  # type: ignore[arg-type]
        elif op is _c.ANY:
            out.append(".")
        elif op is _c.IN:
            out.append(_class_items(av))  # type: ignore[arg-type]
        elif op is _c.AT:
            out.append(_AT[av])
        elif op is _c.BRANCH:
            out.append("(?:" + "|".join(unparse(b) for b in av[1]) + ")")  # type: ignore[index]
        elif op is _c.SUBPATTERN:
            _group, add, delete, sub = av  # type: ignore[misc]
            flags = _flags(add, delete)
            out.append(f"(?{flags}:" + unparse(sub) + ")")
        elif op is _ATOMIC:
            out.append("(?>" + unparse(av) + ")")  # type: ignore[arg-type]
        elif op in _REPEATS:
            low, high, item = av  # type: ignore[misc]
            body = unparse(item)
            if not (len(item) == 1 and item[0][0] in (_c.LITERAL, _c.NOT_LITERAL,
                                                      _c.ANY, _c.IN)):
                body = "(?:" + body + ")"
            top = "" if high is _c.MAXREPEAT else str(high)
            out.append(f"{body}{{{low},{top}}}{_REPEATS[op]}")
        elif op is _c.ASSERT or op is _c.ASSERT_NOT:
            direction, sub = av  # type: ignore[misc]
            sign = "=" if op is _c.ASSERT else "!"
            out.append(f"(?{'<' if direction < 0 else ''}{sign}" + unparse(sub) + ")")
        else:
            raise _Unsupported(f"construct {op}")
    return "".join(out)


# ----------------------------------------------------------- ASCII variant
class _Impossible(Exception):
    """The node cannot match text of octets below 0x80."""


def _prune_class(items: list[tuple[object, object]]) -> list[tuple[object, object]]:
    if items and items[0][0] is _c.NEGATE:
        return items
    kept: list[tuple[object, object]] = []
    for op, av in items:
        if op is _c.LITERAL:
            if av < 0x80:  # type: ignore[operator]
                kept.append((op, av))
        elif op is _c.RANGE:
            low, high = av  # type: ignore[misc]
            if low < 0x80:
                kept.append((op, (low, min(high, 0x7F))))
        else:
            kept.append((op, av))
    if not kept:
        raise _Impossible
    return kept


_ENTITY_NEXT = frozenset(b"#ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _first(items: Sequence[tuple[object, object]]) -> frozenset[int] | None:
    """The octets a match of the items can start with (None: unknown or empty)."""
    for op, av in items:
        if op is _c.LITERAL:
            return frozenset((av, av ^ 32) if 65 <= (av & ~32) <= 90 else (av,))  # type: ignore[operator]
        if op is _c.IN:
            if av and av[0][0] is _c.NEGATE:  # type: ignore[index]
                return None
            octets = _class_octets(av)  # type: ignore[arg-type]
            return octets | {o ^ 32 for o in octets if 97 <= o <= 122}
        if op is _c.AT or op is _c.ASSERT or op is _c.ASSERT_NOT:
            continue
        if op is _c.SUBPATTERN:
            return _first(av[3])  # type: ignore[index]
        if op is _c.BRANCH:
            total: set[int] = set()
            for branch in av[1]:  # type: ignore[index]
                first = _first(branch)
                if first is None:
                    return None
                total |= first
            return frozenset(total)
        if op in _REPEATS and av[0] >= 1:  # type: ignore[index]
            return _first(av[2])  # type: ignore[index]
        return None
    return None


def _prune(
    items: Sequence[tuple[object, object]], amp: bool
) -> list[tuple[object, object]]:
    """Items without what needs an octet >= 0x80 (and, with ``amp``, what needs
    ``&`` followed by ``#`` or a letter, i.e. an HTML entity); raises
    ``_Impossible`` when nothing can match."""
    out: list[tuple[object, object]] = []
    for op, av in items:
        if op is _c.LITERAL:
            if av >= 0x80:  # type: ignore[operator]
                raise _Impossible
            out.append((op, av))
        elif op is _c.IN:
            out.append((op, _prune_class(av)))  # type: ignore[arg-type]
        elif op is _c.BRANCH:
            kept = []
            for branch in av[1]:  # type: ignore[index]
                try:
                    kept.append(_prune(branch, amp))
                except _Impossible:
                    continue
            if not kept:
                raise _Impossible
            if len(kept) == 1:
                out.append((_c.SUBPATTERN, (None, 0, 0, kept[0])))
            else:
                out.append((op, (None, kept)))
        elif op is _c.SUBPATTERN:
            group, add, delete, sub = av  # type: ignore[misc]
            out.append((op, (group, add, delete, _prune(sub, amp))))
        elif op is _ATOMIC:
            out.append((op, _prune(av, amp)))  # type: ignore[arg-type]
        elif op in _REPEATS:
            low, high, item = av  # type: ignore[misc]
            try:
                out.append((op, (low, high, _prune(item, amp))))
            except _Impossible:
                if low:
                    raise
        elif op is _c.ASSERT:
            out.append((op, (av[0], _prune(av[1], amp))))  # type: ignore[index]
        elif op is _c.ASSERT_NOT:
            try:
                out.append((op, (av[0], _prune(av[1], amp))))  # type: ignore[index]
            except _Impossible:
                continue  # a negative look-around that cannot match always holds
        elif op in (_c.NOT_LITERAL, _c.ANY, _c.AT):
            out.append((op, av))
        else:
            raise _Unsupported(f"construct {op}")
    if amp:
        for position, (op, av) in enumerate(out[:-1]):
            if op is _c.LITERAL and av == 0x26:
                first = _first(out[position + 1 :])
                if first is not None and first <= _ENTITY_NEXT:
                    raise _Impossible
    return out


def _parse(regex: re.Pattern[bytes]) -> list[tuple[object, object]]:
    return list(_sre.parse(regex.pattern, regex.flags & ~re.DEBUG))


def _compile(text: str, flags: int) -> re.Pattern[bytes]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return re.compile(text.encode("latin-1"), flags & _KEEP_X)


# ---------------------------------------------------------------- factors
Factor = frozenset  # of lower-cased literal octet strings

_FREQ: dict[int, float] = {code: 0.002 for code in range(256)}
_FREQ.update({code: 0.0005 for code in range(0x80, 0x100)})
_FREQ.update({ord(d): 0.004 for d in "0123456789"})
_FREQ.update(
    {
        ord(ch): f
        for ch, f in zip(
            " etaoinsrhldcumfgwypbvkxjqz",
            (0.16, 0.10, 0.075, 0.065, 0.062, 0.057, 0.056, 0.053, 0.05, 0.045,
             0.034, 0.033, 0.024, 0.023, 0.021, 0.019, 0.016, 0.016, 0.016, 0.015,
             0.012, 0.008, 0.006, 0.0015, 0.0012, 0.001, 0.0008),
            strict=True,
        )
    }
)
_FREQ.update({ord("\n"): 0.015, ord("."): 0.01, ord(","): 0.01})


_PRESENCE: dict[frozenset[bytes], float] = {}


def _presence(literals: frozenset[bytes]) -> float:
    """Expected chance that some literal occurs in a typical text (capped at 1)."""
    known = _PRESENCE.get(literals)
    if known is None:
        if len(_PRESENCE) > 100_000:
            _PRESENCE.clear()
        known = _PRESENCE[literals] = _estimate(literals)
    return known


def _estimate(literals: Iterable[bytes]) -> float:
    total = 0.0
    for literal in literals:
        chance = _TEXT_OCTETS
        for code in literal:
            chance *= _FREQ[code]
        total += min(chance, 1.0)
        if total >= 1.0:
            return 1.0
    return total


class _Info:
    """What one node tells, as lower-cased octet strings: its finite language,
    a set every match starts with, one every match ends with, and factors."""

    __slots__ = ("lang", "pre", "suf", "factors")

    def __init__(
        self,
        lang: frozenset[bytes] | None,
        factors: list[Factor],
        pre: frozenset[bytes] | None = None,
        suf: frozenset[bytes] | None = None,
    ) -> None:
        self.lang = lang
        self.pre = lang if pre is None else pre
        self.suf = lang if suf is None else suf
        self.factors = factors


_EMPTY = frozenset((b"",))
_ALNUM = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789")
_WORD = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_CATEGORY_MEMBERS = {
    _c.CATEGORY_DIGIT: frozenset(b"0123456789"),
    _c.CATEGORY_SPACE: frozenset(b" \t\n\r\f\v"),
    _c.CATEGORY_WORD: _WORD,
}
_CATEGORY_NEGATED = {
    _c.CATEGORY_NOT_DIGIT: _c.CATEGORY_DIGIT,
    _c.CATEGORY_NOT_SPACE: _c.CATEGORY_SPACE,
    _c.CATEGORY_NOT_WORD: _c.CATEGORY_WORD,
}
_ALL = frozenset(range(256))
_EXACT_CATEGORIES = {
    **_CATEGORY_MEMBERS,
    **{
        kind: _ALL - _CATEGORY_MEMBERS[plain]
        for kind, plain in _CATEGORY_NEGATED.items()
    },
}
"""The octets of each class escape of a bytes pattern (ASCII, as ``re`` and
Hyperscan read them)."""


def class_octets(items: Sequence[tuple[object, object]]) -> frozenset[int]:
    """The octets a character class may match, case as written (all of them
    when unsure: a superset)."""
    octets: set[int] = set()
    negate = False
    for op, av in items:
        if op is _c.LITERAL:
            octets.add(av)  # type: ignore[arg-type]
        elif op is _c.RANGE:
            octets.update(range(av[0], av[1] + 1))  # type: ignore[index]
        elif op is _c.NEGATE:
            negate = True
        elif op is _c.CATEGORY and av in _EXACT_CATEGORIES:
            octets.update(_EXACT_CATEGORIES[av])
        else:
            return _ALL
    return _ALL - octets if negate else frozenset(octets)


def _lowered(octets: Iterable[int]) -> frozenset[int]:
    return frozenset(o + 32 if 65 <= o <= 90 else o for o in octets)


def _class_octets(items: Sequence[tuple[object, object]]) -> frozenset[int]:
    negate = False
    members: set[int] = set()
    for op, av in items:
        if op is _c.NEGATE:
            negate = True
        elif op is _c.LITERAL:
            members.add(av)  # type: ignore[arg-type]
        elif op is _c.RANGE:
            members.update(range(av[0], av[1] + 1))  # type: ignore[index]
        elif op is _c.CATEGORY:
            if av in _CATEGORY_MEMBERS:
                members |= _CATEGORY_MEMBERS[av]
            elif av in _CATEGORY_NEGATED:
                members |= _ALL - _CATEGORY_MEMBERS[_CATEGORY_NEGATED[av]]
            else:
                return _ALL
        else:
            return _ALL
    if negate:
        # Case-insensitive matching may admit the other case: keep both.
        outside = _ALL - members
        members = set(outside) | {o ^ 32 for o in outside if 65 <= (o & ~32) <= 90}
    return _lowered(members)


def _octets_lang(octets: frozenset[int], squeeze: bool) -> frozenset[bytes] | None:
    if squeeze:
        kept = {bytes((o,)) for o in octets if o in _ALNUM}
        if len(kept) < len(octets):
            kept.add(b"")
    else:
        kept = {bytes((o,)) for o in octets}
    return frozenset(kept) if len(kept) <= _MAX_CLASS else None


def _product(
    a: frozenset[bytes] | None, b: frozenset[bytes] | None
) -> frozenset[bytes] | None:
    if a is None or b is None or len(a) * len(b) > _MAX_SET:
        return None
    return frozenset(x + y for x in a for y in b)


def _union(sets: Sequence[frozenset[bytes] | None]) -> frozenset[bytes] | None:
    total: set[bytes] = set()
    for one in sets:
        if one is None:
            return None
        total |= one
        if len(total) > _MAX_SET:
            return None
    return frozenset(total)


def _best(factors: Iterable[Factor]) -> Factor | None:
    best, score = None, 2.0
    for factor in factors:
        value = _presence(factor)
        if value < score:
            best, score = factor, value
    return best


def _usable(lang: frozenset[bytes] | None) -> Factor | None:
    if not lang or b"" in lang:
        return None
    return lang


def _select(factors: Iterable[Factor | None]) -> list[Factor]:
    unique = {f for f in factors if f}
    ranked = sorted(unique, key=lambda f: (_presence(f), len(f), sorted(f)))
    return ranked[: _MAX_FACTORS * 2]


def _fold(infos: Sequence[_Info], right: bool) -> frozenset[bytes] | None:
    """The set every match of the sequence starts (``right``: ends) with."""
    acc: frozenset[bytes] | None = _EMPTY
    for info in reversed(infos) if right else infos:
        edge = info.suf if right else info.pre
        if info.lang is not None:
            joined = _product(info.lang, acc) if right else _product(acc, info.lang)
            if joined is None:
                break
            acc = joined
            continue
        if edge is not None:
            joined = _product(edge, acc) if right else _product(acc, edge)
            acc = joined or acc
        break
    return acc if acc and b"" not in acc else None


def _sequence(items: Sequence[tuple[object, object]], squeeze: bool) -> _Info:
    infos = [_node(op, av, squeeze) for op, av in items]
    factors: list[Factor | None] = []
    for info in infos:
        factors.extend(info.factors)
    # Windows: a suffix (or finite language), finite languages, then a prefix.
    count = len(infos)
    for start in range(count):
        acc = infos[start].lang
        if acc is None:
            acc = infos[start].suf
        if acc is None:
            continue
        end = start + 1
        while end < count:
            info = infos[end]
            if info.lang is not None:
                joined = _product(acc, info.lang)
                if joined is None:
                    break
                acc = joined
                end += 1
                continue
            acc = _product(acc, info.pre) or acc
            break
        factors.append(_usable(acc))
    lang: frozenset[bytes] | None = _EMPTY
    for info in infos:
        lang = _product(lang, info.lang)
        if lang is None:
            break
    pre = _fold(infos, False)
    suf = _fold(infos, True)
    factors.extend((_usable(pre), _usable(suf), _usable(lang)))
    return _Info(lang, _select(factors), pre, suf)


def _node(op: object, av: object, squeeze: bool) -> _Info:
    if op is _c.LITERAL:
        return _Info(_octets_lang(_lowered((av,)), squeeze), [])  # type: ignore[arg-type]
    if op is _c.IN:
        return _Info(_octets_lang(_class_octets(av), squeeze), [])  # type: ignore[arg-type]
    if op is _c.NOT_LITERAL:
        return _Info(_octets_lang(_lowered(_ALL - {av}), squeeze), [])  # type: ignore[operator]
    if op is _c.ANY:
        return _Info(_octets_lang(_ALL, squeeze), [])
    if op is _c.AT or op is _c.ASSERT_NOT:
        return _Info(_EMPTY, [])
    if op is _c.ASSERT:
        return _Info(_EMPTY, _sequence(av[1], squeeze).factors)  # type: ignore[index]
    if op is _c.SUBPATTERN:
        return _sequence(av[3], squeeze)  # type: ignore[index]
    if op is _ATOMIC:
        return _sequence(av, squeeze)  # type: ignore[arg-type]
    if op is _c.BRANCH:
        infos = [_sequence(branch, squeeze) for branch in av[1]]  # type: ignore[index]
        lang = _union([info.lang for info in infos])
        pre = _union([info.pre for info in infos])
        suf = _union([info.suf for info in infos])
        picks = [_best(info.factors) for info in infos]
        factors: list[Factor] = []
        if all(picks):
            union = frozenset().union(*picks)  # type: ignore[arg-type]
            if len(union) <= _MAX_SET * 4:
                factors.append(union)
        return _Info(lang, factors, pre, suf)
    if op in _REPEATS:
        low, high, item = av  # type: ignore[misc]
        info = _sequence(item, squeeze)
        bounded = high is not _c.MAXREPEAT and high <= 4
        if info.lang == _EMPTY:
            return _Info(_EMPTY, [])
        if not low:
            lang = _repeat_lang(info.lang, 0, high) if bounded else None
            return _Info(lang, [], _EMPTY, _EMPTY)
        first = _repeat_lang(info.lang, low, low) if info.lang is not None else None
        lang = _repeat_lang(info.lang, low, high) if bounded else None
        pre = first if first is not None else info.pre
        suf = first if first is not None else info.suf
        factors = [*info.factors, *filter(None, [_usable(first)])]
        return _Info(lang, factors, pre or _EMPTY, suf or _EMPTY)
    return _Info(None, [])  # GROUPREF, GROUPREF_EXISTS...


def _repeat_lang(
    lang: frozenset[bytes] | None, low: int, high: int
) -> frozenset[bytes] | None:
    if lang is None:
        return None
    total: set[bytes] = set()
    power: frozenset[bytes] | None = _EMPTY
    for count in range(high + 1):
        if count >= low:
            total |= power  # type: ignore[arg-type]
            if len(total) > _MAX_SET:
                return None
        if count < high:
            power = _product(power, lang)
            if power is None:
                return None
    return frozenset(total)


def required_factors(
    items: Sequence[tuple[object, object]],
) -> tuple[tuple[bool, Factor], ...]:
    """Up to three (squeezed?, literal set) pairs every match needs one of.

    A plain factor is looked for in the lower-cased text; a squeezed one in the
    lower-cased text with every octet but ``a-z0-9`` deleted (so separators
    between obfuscated letters do not hide the word).
    """
    try:
        found = [
            (squeeze, factor)
            for squeeze in (False, True)
            for factor in _sequence(items, squeeze).factors
        ]
    except RecursionError:
        return ()
    found.sort(key=lambda sf: (_presence(sf[1]), sf[0], len(sf[1]), sorted(sf[1])))
    chosen: list[tuple[bool, Factor]] = []
    for squeeze, factor in found:
        if _presence(factor) >= _USEFUL or (squeeze, factor) in chosen:
            continue
        chosen.append((squeeze, factor))
    return tuple(chosen[:_MAX_FACTORS])


# --------------------------------------------------------------- trigrams
def trigram_code(literal: bytes) -> int:
    """The integer key of a literal's first three octets."""
    return (literal[0] << 16) | (literal[1] << 8) | literal[2]


# ------------------------------------------------------------- run time
_SQUEEZE_DELETE = bytes(o for o in range(256) if o not in _ALNUM)


class TrigramIndex:
    """The trigram keys some check needs, as a 2**24-entry lookup table (16 MiB).

    ``present(text)`` gives the needed keys that occur in a text: one numpy
    gather over the text's windows instead of a set of all its trigrams.
    """

    __slots__ = ("table", "_frozen")

    def __init__(self) -> None:
        self.table = np.zeros(1 << 24, dtype=np.bool_)
        self._frozen = False

    def add(self, keys: Iterable[int]) -> None:
        for key in keys:
            self.table[key] = True

    def __getstate__(self) -> tuple[np.ndarray, bool]:
        # Pickled as the set keys (a few thousand), not the 16 MiB table.
        return (np.flatnonzero(self.table).astype(np.int32), self._frozen)

    def __setstate__(self, state: tuple[np.ndarray, bool]) -> None:
        keys, self._frozen = state
        self.table = np.zeros(1 << 24, dtype=np.bool_)
        self.table[keys] = True

    def present(self, lower: bytes) -> set[int]:
        if len(lower) < 3:
            return set()
        a = np.frombuffer(lower, dtype=np.uint8).astype(np.int32)
        codes = (a[:-2] << 16) | (a[1:-1] << 8) | a[2:]
        return set(codes[self.table[codes]].tolist())


ENTITY = re.compile(rb"&[#A-Za-z]")  # an HTML entity's start


class TextView:
    """One searched text and the derived forms the checks read, built on demand."""

    __slots__ = (
        "text", "lower", "level", "index", "_squeezed", "_tri", "_tri_sq", "found",
        "checked", "held", "held_sq",
    )

    def __init__(self, text: bytes, index: TrigramIndex) -> None:
        self.text = text
        self.lower = text.lower()
        if not text.isascii():
            self.level = 0
        else:
            self.level = 1 if ENTITY.search(text) else 2
        self.index = index
        self._squeezed: bytes | None = None
        self._tri: set[int] | None = None
        self._tri_sq: set[int] | None = None
        # Per-text memo for the caller (literal -> paragraphs holding it).
        self.found: dict[bytes, object] = {}
        # Per-text memo of check outcomes (check object -> present?).
        self.checked: dict[object, bool] = {}
        # Per-text memo of literal lookups in ``lower`` and in ``squeezed``.
        self.held: dict[bytes, bool] = {}
        self.held_sq: dict[bytes, bool] = {}

    @property
    def squeezed(self) -> bytes:
        if self._squeezed is None:
            self._squeezed = self.lower.translate(None, _SQUEEZE_DELETE)
        return self._squeezed

    @property
    def tri(self) -> set[int]:
        if self._tri is None:
            self._tri = self.index.present(self.lower)
        return self._tri

    @property
    def tri_sq(self) -> set[int]:
        if self._tri_sq is None:
            self._tri_sq = self.index.present(self.squeezed)
        return self._tri_sq


# A literal check with at most this many trigram keys looks for its literals
# directly when the text's trigram set is not built (a twin speed-up).
_DIRECT_KEYS = 8


def _trigram_chance(code: int) -> float:
    return _FREQ[code >> 16] * _FREQ[(code >> 8) & 0xFF] * _FREQ[code & 0xFF]


class LiteralCheck:
    """Is any of a set of literals in a text?  Trigram keys rule most out in C:
    each literal is filed under its rarest trigram and needs all its trigrams
    present before its text is looked for.  A check of few keys on a text
    whose trigram set is not built yet looks for its literals directly."""

    __slots__ = ("squeeze", "short", "keys", "longer", "trigrams")

    def __init__(self, literals: Iterable[bytes], squeeze: bool = False) -> None:
        self.squeeze = squeeze
        short: list[bytes] = []
        longer: dict[int, list[tuple[bytes, frozenset[int]]]] = {}
        every: set[int] = set()
        for literal in sorted(set(literals)):
            if len(literal) < 3:
                short.append(literal)
                continue
            codes = frozenset(
                trigram_code(literal[i : i + 3]) for i in range(len(literal) - 2)
            )
            every |= codes
            key = min(codes, key=lambda c: (_trigram_chance(c), c))
            longer.setdefault(key, []).append((literal, codes))
        self.short = tuple(short)
        self.longer = {code: tuple(pairs) for code, pairs in longer.items()}
        self.keys = frozenset(longer)
        self.trigrams = frozenset(every)

    def present(self, view: TextView) -> bool:
        checked = view.checked
        known = checked.get(self)
        if known is None:
            known = checked[self] = self._present(view)
        return known

    def _present(self, view: TextView) -> bool:
        if self.squeeze:
            text, held = view.squeezed, view.held_sq
            tri = view._tri_sq
        else:
            text, held = view.lower, view.held
            tri = view._tri
        # ``text.find(literal) >= 0`` is ``literal in text``, without the
        # integer conversion ``in`` tries (and fails) first: faster.
        for literal in self.short:
            if text.find(literal) >= 0:
                return True
        longer = self.longer
        if tri is None and len(longer) <= _DIRECT_KEYS:
            # Few literals and no trigram set built yet: look for them (the
            # same answer: a literal in the text has its trigrams there).
            for pairs in longer.values():
                for literal, _codes in pairs:
                    found = held.get(literal)
                    if found is None:
                        found = held[literal] = text.find(literal) >= 0
                    if found:
                        return True
            return False
        tri = view.tri_sq if self.squeeze else view.tri
        keys = self.keys
        if not keys or keys.isdisjoint(tri):
            return False
        for code in keys & tri:
            for literal, codes in longer[code]:
                if codes <= tri:
                    if len(literal) == 3:
                        return True
                    found = held.get(literal)
                    if found is None:
                        found = held[literal] = text.find(literal) >= 0
                    if found:
                        return True
        return False


def _octet_class(octets: frozenset[int]) -> list[tuple[object, object]]:
    """Parsed-class items for a set of octets (ranges where they run)."""
    items: list[tuple[object, object]] = []
    ordered = sorted(octets)
    start = 0
    while start < len(ordered):
        end = start
        while end + 1 < len(ordered) and ordered[end + 1] == ordered[end] + 1:
            end += 1
        if end == start:
            items.append((_c.LITERAL, ordered[start]))
        else:
            items.append((_c.RANGE, (ordered[start], ordered[end])))
        start = end + 1
    return items


def _lower_items(
    items: Sequence[tuple[object, object]],
) -> list[tuple[object, object]]:
    """A case-sensitive pattern for lower-cased text that matches wherever the
    items match the original text (look-arounds dropped: more permissive)."""
    out: list[tuple[object, object]] = []
    for op, av in items:
        if op is _c.LITERAL:
            out.append((op, av + 32 if 65 <= av <= 90 else av))  # type: ignore[operator]
        elif op is _c.IN or op is _c.NOT_LITERAL:
            octets = (
                _class_octets(av)  # type: ignore[arg-type]
                if op is _c.IN
                else _lowered(_ALL - {av})  # type: ignore[operator]
            )
            if len(octets) == 1:
                out.append((_c.LITERAL, next(iter(octets))))
            else:
                out.append((_c.IN, _octet_class(octets)))
        elif op is _c.BRANCH:
            out.append((op, (None, [_lower_items(b) for b in av[1]])))  # type: ignore[index]
        elif op is _c.SUBPATTERN:
            _group, add, delete, sub = av  # type: ignore[misc]
            mask = ~(re.IGNORECASE | re.VERBOSE)
            out.append((op, (None, add & mask, delete & mask, _lower_items(sub))))
        elif op is _ATOMIC:
            out.append((op, _lower_items(av)))  # type: ignore[arg-type]
        elif op in _REPEATS:
            low, high, item = av  # type: ignore[misc]
            out.append((op, (low, high, _lower_items(item))))
        elif op is _c.ASSERT or op is _c.ASSERT_NOT:
            continue
        elif op in (_c.ANY, _c.AT):
            out.append((op, av))
        else:
            raise _Unsupported(f"construct {op}")
    return out


def _flat(items: Sequence[tuple[object, object]]) -> list[tuple[object, object]]:
    """Items with plain (flag-less) groups opened up."""
    out: list[tuple[object, object]] = []
    for op, av in items:
        if op is _c.SUBPATTERN and not av[1] and not av[2]:  # type: ignore[index]
            out.extend(_flat(av[3]))  # type: ignore[index]
        else:
            out.append((op, av))
    return out


def _head(
    items: list[tuple[object, object]], depth: int = 0
) -> list[tuple[object, object]] | None:
    """The items rewritten to start with one octet or class, or None."""
    if not items:
        return None
    op, av = items[0]
    if op is _c.LITERAL or op is _c.IN:
        return items
    if op in _REPEATS and av[0] >= 1:  # type: ignore[index]
        low, high, item = av  # type: ignore[misc]
        inner = _flat(item)
        if len(inner) == 1 and inner[0][0] in (_c.LITERAL, _c.IN):
            rest = high if high is _c.MAXREPEAT else high - 1
            return [inner[0], (op, (low - 1, rest, item)), *items[1:]]
        return None
    if op in _REPEATS and depth < 3:
        # X? Y  ->  (X Y | Y): the same strings, now a branch to factor.
        _low, _high, item = av  # type: ignore[misc]
        branch = (_c.BRANCH, (None, [[*_flat(item), *items[1:]], list(items[1:])]))
        return _head([branch], depth + 1)
    if op is _c.AT:
        return _head(items[1:], depth)
    if op is _c.BRANCH:
        # (a X | b Y) Z  ->  [ab] (X | Y) Z: more permissive, starts with a class.
        firsts: set[int] = set()
        rests = []
        for branch in av[1]:  # type: ignore[index]
            head = _head([*_flat(branch), *items[1:]], depth)
            if head is None:
                return None
            first_op, first_av = head[0]
            if first_op is _c.LITERAL:
                firsts.add(first_av)  # type: ignore[arg-type]
            else:
                firsts |= _class_octets(first_av)  # type: ignore[arg-type]
            rests.append(head[1:])
        start = (_c.IN, _octet_class(frozenset(firsts)))
        return [start, (op, (None, rests))]
    return None


def _chance(op: object, av: object) -> float:
    if op is _c.LITERAL:
        return _FREQ[av]  # type: ignore[index]
    return sum(_FREQ[o] for o in _class_octets(av))  # type: ignore[arg-type]


def _skeleton_items(
    items: Sequence[tuple[object, object]],
) -> list[tuple[object, object]] | None:
    """Lowered items from the first one that can start with a rare fixed octet
    or class (what the ``re`` engine skips ahead to); None when none does or
    the pattern is anchored at its start (searching it unanchored could cost
    more than the rule)."""
    lowered = _flat(_lower_items(items))
    if lowered and lowered[0][0] is _c.AT and lowered[0][1] in (
        _c.AT_BEGINNING,
        _c.AT_BEGINNING_STRING,
    ):
        return None
    for position in range(len(lowered)):
        head = _head(lowered[position:])
        if head is not None and _chance(*head[0]) <= _SKELETON_START:
            return head
    return None


class RegexCheck:
    """Does a lowered, case-sensitive skeleton of the rule match the text?"""

    __slots__ = ("regex",)

    def __init__(self, regex: re.Pattern[bytes]) -> None:
        self.regex = regex

    def present(self, view: TextView) -> bool:
        checked = view.checked
        known = checked.get(self)
        if known is None:
            known = checked[self] = self.regex.search(view.lower) is not None
        return known


def _skeleton(
    items: Sequence[tuple[object, object]], flags: int
) -> RegexCheck | None:
    try:
        skeleton = _skeleton_items(items)
        if skeleton is None:
            return None
        text = unparse(skeleton)
        if len(text) > _SKELETON_CHARS:
            return None  # costly to compile and to run: not worth it
        return RegexCheck(_compile(text, flags & (re.MULTILINE | re.DOTALL)))
    except (_Unsupported, re.error, RecursionError, OverflowError):
        return None


Level = tuple  # (pattern or None for "cannot match", checks)


class RuleFilter:
    """A rule's pattern and necessary checks for each kind of text (``level``).

    Level 0 is any text (the original pattern), 1 text of octets below 0x80, 2
    such text without ``&`` before ``#`` or a letter (no HTML entity).
    ``searchers`` holds per level the pattern to search a whole text with:
    the level's pattern, or the same behind a first-octet lookahead
    (``first_octet_pattern``; same matches, found faster) when set by
    ``with_searchers``.
    """

    __slots__ = ("levels", "searchers", "finders")

    def __init__(self, levels: tuple[Level, Level, Level]) -> None:
        self.levels = levels
        self.searchers = tuple(pattern for pattern, _checks in levels)
        # Per level, a ``start_finder`` of the level pattern or None (set by
        # ``with_searchers``). Compiled with the rest of the rule set when it
        # is loaded: compiled on first use instead, the same compiling moves
        # into the scoring of the first messages and saves nothing over a run.
        self.finders: tuple[Finder | None, ...] = (None, None, None)

    def with_searchers(self, most_chars: int = 250_000) -> RuleFilter:
        """Set ``searchers`` to the first-octet forms of the level patterns
        (up to ``most_chars`` characters) where there is one; returns self."""
        made: dict[int, re.Pattern[bytes] | None] = {}
        searchers = []
        for pattern, _checks in self.levels:
            if pattern is None or len(pattern.pattern) > most_chars:
                searchers.append(pattern)
                continue
            if id(pattern) not in made:
                made[id(pattern)] = first_octet_pattern(pattern)
            searchers.append(made[id(pattern)] or pattern)
        self.searchers = tuple(searchers)
        finders: dict[int, Finder | None] = {}
        for pattern, _checks in self.levels:
            if pattern is not None and id(pattern) not in finders:
                small = len(pattern.pattern) <= most_chars
                finders[id(pattern)] = start_finder(pattern) if small else None
        self.finders = tuple(
            None if pattern is None else finders[id(pattern)]
            for pattern, _checks in self.levels
        )
        return self

    def first_match(self, level: int, text: bytes) -> re.Match[bytes] | None:
        """``searchers[level].search(text)``: the same match, found sooner
        through the level's ``start_finder`` when there is one."""
        searcher = self.searchers[level]
        finder = self.finders[level]
        if finder is None:
            return searcher.search(text)
        start = find_start(finder, text)
        return None if start < 0 else searcher.search(text, start)

    def pattern_for(self, view: TextView) -> re.Pattern[bytes] | None:
        """The pattern to search ``view`` with; None when it cannot match."""
        regex, checks = self.levels[view.level]
        if regex is None:
            return None
        for check in checks:
            if not check.present(view):
                return None
        return regex


def rule_filter(
    regex: re.Pattern[bytes], index: TrigramIndex, analyse_up_to: int = 8000
) -> RuleFilter:
    """The three levels of a compiled bytes pattern; literal checks are derived
    for patterns (or their pruned forms) up to ``analyse_up_to`` characters."""
    plain: Level = (regex, ())
    try:
        parsed = _parse(regex)
    except (re.error, RecursionError):
        return RuleFilter((plain, plain, plain))
    levels: list[Level] = []
    previous: list[tuple[object, object]] | None = None
    for level in range(3):
        if level == 0:
            items: list[tuple[object, object]] | None = parsed
            pattern: re.Pattern[bytes] | None = regex
        else:
            try:
                items = _prune(parsed, amp=level == 2)
            except _Impossible:
                levels.append((None, ()))
                previous = None
                continue
            except (_Unsupported, RecursionError):
                levels.append(levels[-1])
                continue
            if items == previous:
                levels.append(levels[-1])
                continue
            try:
                pattern = _compile(unparse(items), regex.flags)
            except (_Unsupported, re.error, RecursionError, OverflowError):
                levels.append(levels[-1])
                continue
        previous = items
        checks: list[LiteralCheck | RegexCheck] = []
        if len(pattern.pattern) <= analyse_up_to:
            factors = required_factors(items)
            for squeeze, factor in factors:
                literal = LiteralCheck(factor, squeeze)
                index.add(literal.trigrams)
                checks.append(literal)
            if not factors or _presence(factors[0][1]) > _SKELETON_ABOVE:
                skeleton = _skeleton(items, regex.flags)
                if skeleton is not None:
                    checks.append(skeleton)
        levels.append((pattern, tuple(checks)))
    return RuleFilter(tuple(levels))  # type: ignore[arg-type]


def header_literals(regex: re.Pattern[bytes], most: int = 6) -> tuple[bytes, ...]:
    """A few lower-cased literals one of which every match holds, or () (for
    the short header values a handful of ``in`` tests is the whole check)."""
    try:
        parsed = _parse(regex)
        if len(regex.pattern) > 4000:
            return ()
        factors = _sequence(parsed, False).factors
    except (re.error, RecursionError):
        return ()
    for factor in factors:
        if len(factor) <= most and all(factor) and _presence(factor) < _USEFUL:
            return tuple(sorted(factor, key=lambda item: (-len(item), item)))
    return ()


# ------------------------------------------------------- first-octet lookahead
_LETTERS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ZERO_WIDTH = frozenset(
    op for op in (_c.AT, _c.ASSERT, _c.ASSERT_NOT) if op is not None
)
_REPEAT_CODES = frozenset(
    op
    for op in (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", None))
    if op is not None
)
# A lookahead is worth it only when it rules out most octets (not for \w,
# whose 63 octets stand at most positions of a text).
_MOST_FIRST_OCTETS = 32


def _first_octets(items: object) -> tuple[frozenset[int], bool]:
    """The octets a match of the items may start with, and whether the items
    may match the empty string (zero-width items are skipped: a superset)."""
    first: set[int] = set()
    for op, av in items:  # type: ignore[attr-defined]
        if op is _c.LITERAL:
            octets, empty = frozenset((av,)), False  # type: ignore[arg-type]
        elif op is _c.IN:
            octets, empty = class_octets(av), False
        elif op in _ZERO_WIDTH:
            continue
        elif op is _c.SUBPATTERN:
            octets, empty = _first_octets(av[-1])  # type: ignore[index]
        elif op is getattr(_c, "ATOMIC_GROUP", None):
            octets, empty = _first_octets(av)
        elif op is _c.BRANCH:
            parts = [_first_octets(branch) for branch in av[1]]  # type: ignore[index]
            octets = frozenset().union(*(part[0] for part in parts))
            empty = any(part[1] for part in parts)
        elif op in _REPEAT_CODES:
            octets, empty = _first_octets(av[2])  # type: ignore[index]
            empty = empty or av[0] == 0  # type: ignore[index]
        else:  # any octet, a back-reference, ...: anything, maybe nothing
            return _ALL, True
        first.update(octets)
        if not empty:
            return frozenset(first), False
    return frozenset(first), True


def _start_octets(items: list[tuple[object, object]]) -> tuple[frozenset[int], bool]:
    """The octets (both cases of letters) a match of the items may start
    with, narrowed by the look-aheads among the zero-width items before the
    first item that consumes: a look-ahead ``(?=X)`` whose X cannot match
    the empty string holds only where the next octet is one X may start
    with, and the match starts there.  The flag: no octet is needed (an
    empty match may be all); an empty set and False: nothing can match."""
    octets, empty = _first_octets(items)
    found = None if empty else _both_cases(octets)
    for op, av in items:
        if op is _c.ASSERT and av[0] == 1:  # type: ignore[index]
            ahead, ahead_empty = _first_octets(av[1])  # type: ignore[index]
            if not ahead_empty:
                ahead = _both_cases(ahead)
                found = ahead if found is None else found & ahead
        elif op not in _ZERO_WIDTH:
            break
    return (frozenset(), True) if found is None else (found, False)


def first_octet_pattern(regex: re.Pattern[bytes]) -> re.Pattern[bytes] | None:
    """The pattern behind a lookahead for the octets its matches may start
    with (``(?=[...])(?:pattern)``, same flags); when that set is not small
    or the pattern may match the empty string, the lookahead placed after
    a ``(?:^|\\s)``-like start (``_after_start_pattern``), or None.

    Every match of the pattern starts with one of those octets, so both find
    the same matches (spans and groups: the lookahead captures nothing); but
    ``re`` rejects most start positions with one class test instead of
    trying the pattern's first alternatives there (a twin speed-up)."""
    if regex.flags & re.VERBOSE or regex.flags & re.LOCALE:
        return None
    try:
        octets, empty = _first_octets(_sre.parse(regex.pattern, regex.flags))
    except (re.error, RecursionError, TypeError, ValueError):
        return None
    if empty or not octets:
        return _after_start_pattern(regex)
    # Both cases of each letter (``/i`` or a scoped ``(?i:...)``; a bytes
    # pattern folds ASCII letters only): at worst a few octets more.
    octets = _both_cases(octets)
    if len(octets) > _MOST_FIRST_OCTETS:
        return _after_start_pattern(regex)
    ahead = b"".join(b"\\x%02x" % o for o in sorted(octets))
    try:
        pattern = b"(?=[" + ahead + b"])(?:" + regex.pattern + b")"
        return re.compile(pattern, regex.flags)
    except (re.error, RecursionError, OverflowError):
        return None


# A way to the leftmost start of a pattern's matches (``start_finder``).
Finder = tuple  # (pattern matched at 0 or None, pattern searched or None)


def start_finder(regex: re.Pattern[bytes]) -> Finder | None:
    r"""A cheaper way to where ``regex.search`` would start its match, or None.

    Returns ``(at_start, finder)`` for ``find_start``: ``at_start`` (or None)
    is tried at offset 0 only, ``finder`` is searched; either finds a match
    exactly when ``regex`` does, and the offset they give is never after the
    start of ``regex``'s leftmost match and never before a place where
    ``regex`` matches (so ``regex.search(text, offset)`` is
    ``regex.search(text)``: ``pos`` keeps ``^``, ``\b`` and look-behinds
    seeing the text before it).  Both start with a class that ``re`` scans
    for in C (its "charset" prefix) instead of entering the pattern at every
    offset, as it must for a pattern starting with an alternation holding
    ``^`` or with a look-ahead:

    - ``(?:^|S)R`` (S one class or octet, R not matching the empty string):
      ``at_start`` = R; ``finder`` = ``S(?=[first octets of R])(?:R)``.  A
      match of the whole at p is R at 0 (``^`` at 0), or S at p and R at p+1;
      with ``(?m)``, ``^`` after a newline is S at the newline (S must hold
      it), R after it;
    - any other pattern whose matches start with one of a few octets F (no
      empty match): ``finder`` = ``(?-i:[F])(?<=(?=(?:regex))[\x00-\xff])``:
      an octet of F at p, then (looking behind over it) ``regex`` at p.
      F is narrowed by leading look-aheads (``_start_octets``); when it is
      empty, ``(None, None)``: the pattern matches nothing (``find_start``
      gives -1)."""
    if regex.flags & (re.VERBOSE | re.LOCALE):
        return None
    try:
        items = list(_sre.parse(regex.pattern, regex.flags))
        found = _after_start_finder(regex, items)
        if found is not None:
            return found
        octets, empty = _start_octets(items)
        if empty:
            return None
        if not octets:
            return (None, None)  # no octet may start a match: none
        if len(octets) > _MOST_FIRST_OCTETS:
            return None
        ahead = b"".join(b"\\x%02x" % o for o in sorted(octets))
        pattern = (
            b"(?-i:[" + ahead + b"])(?<=(?=(?:" + regex.pattern + b"))[\\x00-\\xff])"
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return (None, re.compile(pattern, regex.flags))
    except (_Unsupported, re.error, RecursionError, OverflowError, TypeError):
        return None


def _after_start_finder(
    regex: re.Pattern[bytes], items: list[tuple[object, object]]
) -> Finder | None:
    """``start_finder`` of a ``(?:^|S)R`` pattern (parsed ``items``), or None."""
    if len(items) < 2 or items[0][0] is not _c.BRANCH:
        return None
    branches = items[0][1][1]  # type: ignore[index]
    if len(branches) != 2:
        return None
    start = consume = None
    for branch in branches:
        if len(branch) != 1:
            return None
        op, av = branch[0]
        if op is _c.AT and av in (_c.AT_BEGINNING, _c.AT_BEGINNING_STRING):
            start = av
        elif op in (_c.LITERAL, _c.IN):
            consume = branch
        else:
            return None
    if start is None or consume is None:
        return None
    if _has_groupref(items):
        return None  # R alone would renumber its groups
    octets, empty = _first_octets(items[1:])
    if empty:
        return None
    cls = unparse(consume)
    if (
        start is _c.AT_BEGINNING
        and regex.flags & re.MULTILINE
        and _compile(cls, regex.flags).match(b"\n") is None
    ):
        return None  # ``^`` after a newline is not S at the newline
    rest = unparse(items[1:])
    if octets:
        octets = _both_cases(octets)
    if octets and len(octets) <= _MOST_AFTER_START:
        ahead = "".join(f"\\x{o:02x}" for o in sorted(octets))
        text = f"{cls}(?=[{ahead}])(?:{rest})"
    else:
        text = f"{cls}(?:{rest})"
    return (_compile(rest, regex.flags), _compile(text, regex.flags))


def _has_groupref(items: object) -> bool:
    """Does the parsed pattern hold a back-reference?"""
    for op, av in items:  # type: ignore[attr-defined]
        if op in _GROUPREFS:
            return True
        if isinstance(av, (list, tuple)):
            for sub in av:
                if isinstance(sub, _sre.SubPattern) and _has_groupref(sub):
                    return True
                if isinstance(sub, list) and op is _c.BRANCH:
                    if any(_has_groupref(b) for b in sub):
                        return True
        elif isinstance(av, _sre.SubPattern) and _has_groupref(av):
            return True
    return False


_GROUPREFS = frozenset(
    getattr(_c, name)
    for name in ("GROUPREF", "GROUPREF_EXISTS", "GROUPREF_IGNORE")
    if hasattr(_c, name)
)


def find_start(finder: Finder, text: bytes) -> int:
    """The offset ``start_finder``'s pair gives for ``text``: -1 when the
    pattern does not match."""
    at_start, search = finder
    if at_start is not None and at_start.match(text) is not None:
        return 0
    if search is None:  # the pattern cannot match at all
        return -1
    found = search.search(text)
    return -1 if found is None else found.start()


def _both_cases(octets: frozenset[int]) -> frozenset[int]:
    return octets | frozenset(o ^ 0x20 for o in octets if o in _LETTERS)


# After a start such as ``(?:^|\s)`` a lookahead may hold more octets: it is
# tried only where the start matched (at a blank, mostly), not everywhere.
_MOST_AFTER_START = 96


def _after_start_pattern(regex: re.Pattern[bytes]) -> re.Pattern[bytes] | None:
    r"""For a pattern ``S R`` whose first item ``S`` is an alternation of
    single zero-width assertions, octets and classes (``(?:^|\s)``, the
    start of the ReplaceTags rules) and whose rest ``R`` cannot match the
    empty string: ``S(?=[...])(?:R)`` with the octets ``R``'s matches may
    start with (same flags, groups made non-capturing: only the spans of
    its matches are used), or None.

    Every match of ``R`` starts with one of those octets, so both find the
    same matches; but ``re`` rejects most places after ``S`` with one class
    test instead of trying ``R``'s many alternatives there."""
    try:
        items = list(_sre.parse(regex.pattern, regex.flags))
        if len(items) < 2 or items[0][0] is not _c.BRANCH:
            return None
        for branch in items[0][1][1]:  # type: ignore[index]
            if len(branch) != 1 or branch[0][0] not in (_c.AT, _c.LITERAL, _c.IN):
                return None
        octets, empty = _first_octets(items[1:])
        if empty or not octets:
            return None
        octets = _both_cases(octets)
        if len(octets) > _MOST_AFTER_START:
            return None
        ahead = "".join(f"\\x{o:02x}" for o in sorted(octets))
        text = f"{unparse(items[:1])}(?=[{ahead}])(?:{unparse(items[1:])})"
        return _compile(text, regex.flags)
    except (_Unsupported, re.error, RecursionError, OverflowError, TypeError):
        return None

