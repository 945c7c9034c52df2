"""The ClamAV matcher: hash lookups and .ndb patterns compiled to byte regexes.

ClamAV matches static patterns with a Boyer-Moore shift table and wildcard
patterns with Aho-Corasick (FACTS.md "ClamAV", matcher-bm.c, matcher-ac.c). The
twin gets the same decisions from Python's ``re``: each .ndb hex pattern becomes
one compiled byte regex, and the longest literal run of the pattern is its
anchor, searched first with ``bytes.__contains__`` (a C substring search) so
that the regex runs only where the anchor occurs. Hash signatures sit in a dict
keyed by (algorithm, size, digest); an object is hashed only when some
signature of that algorithm has its size (or is sizeless).

Hex syntax (ClamAV signatures.pdf): ``aa`` byte, ``??`` any byte, ``a?`` and
``?a`` nibbles, ``*`` any run, ``{n}`` ``{n-}`` ``{-n}`` ``{n-m}`` and
``[n-m]`` bounded runs, ``(aa|bbcc|...)`` alternatives, ``!(aa|bb)`` negated
alternatives, ``(B)`` word boundary, ``(L)`` line boundary.

Target types are told apart by magic bytes; ClamAV's normalisation of HTML and
text (types 3 and 7) before matching is not modelled: those match raw bytes.
Raises ValueError naming the signature when a pattern is malformed.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from twin.stages.antivirus.signatures import SignatureSet

TARGET_ANY, TARGET_PE, TARGET_OLE2, TARGET_HTML, TARGET_MAIL = 0, 1, 2, 3, 4
TARGET_GRAPHICS, TARGET_ELF, TARGET_ASCII = 5, 6, 7
TARGET_MACHO, TARGET_PDF, TARGET_FLASH, TARGET_JAVA = 9, 10, 11, 12

_TOKEN = re.compile(
    r"(?P<byte>[0-9a-f]{2})|(?P<any>\?\?)|(?P<high>[0-9a-f]\?)|(?P<low>\?[0-9a-f])"
    r"|(?P<star>\*)|\{(?P<jump>[0-9]*-?[0-9]*)\}|\[(?P<range>[0-9]+-[0-9]+)\]"
    r"|(?P<neg>!)?\((?P<alts>[^()]*)\)"
)
_TEXT_BYTES = bytes(range(0x20, 0x7F)) + b"\t\n\r\x0c"


def _escape(value: int) -> bytes:
    return re.escape(bytes((value,)))


def _nibble_class(high: int | None, low: int | None) -> bytes:
    if high is not None:
        values = [(high << 4) | n for n in range(16)]
    else:
        values = [(n << 4) | low for n in range(16)]  # type: ignore[operator]
    return b"[" + b"".join(_escape(v) for v in values) + b"]"


def compile_hex(pattern: str, name: str = "?") -> tuple[bytes, bytes]:
    """The regex source of a hex pattern and its longest literal run (anchor)."""
    out: list[bytes] = []
    literal = bytearray()
    best = b""
    pos = 0
    text = pattern.lower()

    def close_literal() -> None:
        nonlocal best, literal
        if len(literal) > len(best):
            best = bytes(literal)
        literal = bytearray()

    for match in _TOKEN.finditer(text):
        if match.start() != pos:
            break
        pos = match.end()
        kind = match.lastgroup
        if kind == "byte":
            value = int(match.group("byte"), 16)
            out.append(_escape(value))
            literal.append(value)
            continue
        close_literal()
        if kind == "any":
            out.append(b".")
        elif kind == "high":
            out.append(_nibble_class(int(match.group("high")[0], 16), None))
        elif kind == "low":
            out.append(_nibble_class(None, int(match.group("low")[1], 16)))
        elif kind == "star":
            out.append(b".*?")
        elif kind == "jump":
            out.append(_jump(match.group("jump"), pattern, name))
        elif kind == "range":
            low, high = (int(v) for v in match.group("range").split("-"))
            if low > high:
                raise ValueError(f"signature {name}: range [{low}-{high}] is empty")
            out.append(b".{%d,%d}" % (low, high))
        else:
            out.append(
                _alternatives(
                    match.group("alts"), bool(match.group("neg")), pattern, name
                )
            )
    if pos != len(text) or not out:
        raise ValueError(
            f"signature {name}: hex pattern {pattern!r} is malformed at character {pos}"
        )
    close_literal()
    return b"".join(out), best


def _jump(spec: str, pattern: str, name: str) -> bytes:
    if spec.isdigit():
        return b".{%d}" % int(spec)
    low, sep, high = spec.partition("-")
    if not sep or (not low and not high):
        raise ValueError(
            f"signature {name}: jump {{{spec}}} in {pattern!r} is not "
            "{n}, {n-}, {-n} or {n-m}"
        )
    if low and high and int(low) > int(high):
        raise ValueError(f"signature {name}: jump {{{spec}}} is empty")
    return b".{%d,%s}" % (int(low or 0), high.encode())


def _alternatives(body: str, negated: bool, pattern: str, name: str) -> bytes:
    if body == "b" and not negated:  # word boundary
        return (
            rb"(?:(?<![A-Za-z0-9_])(?=[A-Za-z0-9_])|(?<=[A-Za-z0-9_])"
            rb"(?![A-Za-z0-9_])|\A|\Z)"
        )
    if body == "l" and not negated:  # line boundary
        return rb"(?:(?<=[\r\n])|(?=[\r\n])|\A|\Z)"
    choices = body.split("|")
    if len(choices) < 2 and not negated:
        raise ValueError(
            f"signature {name}: alternative ({body}) in {pattern!r} needs two choices"
        )
    sources = []
    for choice in choices:
        if not choice or any(c in choice for c in "*{}[]()!"):
            raise ValueError(
                f"signature {name}: alternative {choice!r} in "
                f"{pattern!r} is not a fixed hex string"
            )
        sources.append(compile_hex(choice, name)[0])
    if not negated:
        return b"(?:" + b"|".join(sources) + b")"
    lengths = {len(bytes.fromhex(c.replace("?", "0"))) for c in choices}
    if len(lengths) != 1:
        raise ValueError(
            f"signature {name}: negated alternatives in {pattern!r} "
            "must have one length"
        )
    return b"(?!" + b"|".join(sources) + b")" + b".{%d}" % lengths.pop()


def detect_types(data: bytes, is_mail: bool) -> frozenset[int]:
    """ClamAV target types of an object, from its magic bytes."""
    types = {TARGET_ANY}
    head = data[:8]
    if head[:2] == b"MZ":
        types.add(TARGET_PE)
    elif head == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        types.add(TARGET_OLE2)
    elif head[:4] == b"\x7fELF":
        types.add(TARGET_ELF)
    elif head[:4] in (
        b"\xfe\xed\xfa\xce",
        b"\xce\xfa\xed\xfe",
        b"\xfe\xed\xfa\xcf",
        b"\xcf\xfa\xed\xfe",
    ):
        types.add(TARGET_MACHO)
    elif head[:4] == b"\xca\xfe\xba\xbe":
        types.update((TARGET_JAVA, TARGET_MACHO))
    elif head[:5] == b"%PDF-":
        types.add(TARGET_PDF)
    elif head[:3] in (b"FWS", b"CWS"):
        types.add(TARGET_FLASH)
    elif (
        head[:4] == b"GIF8"
        or head[:3] == b"\xff\xd8\xff"
        or head[:4] == b"\x89PNG"
        or head[:2] == b"BM"
    ):
        types.add(TARGET_GRAPHICS)
    if is_mail:
        types.add(TARGET_MAIL)
    sample = data[:1024]
    if sample and not sample.translate(None, _TEXT_BYTES):  # only text bytes
        types.add(TARGET_ASCII)
        lowered = sample.lower()
        if b"<html" in lowered or b"<!doctype html" in lowered:
            types.add(TARGET_HTML)
    return frozenset(types)


@dataclass(frozen=True, slots=True)
class _Compiled:
    name: str
    target: int
    anchor_kind: str
    offset: int
    max_shift: int
    regex: re.Pattern[bytes]
    literal: bytes


@dataclass(frozen=True, slots=True)
class MatchOutcome:
    """The first signature that matched (or None) and what the matching cost."""

    virus: str | None
    hashed_bytes: int
    hash_lookups: int


class Matcher:
    """Compiled signatures; ``match`` tests one object (file, part, member)."""

    def __init__(self, signatures: SignatureSet) -> None:
        self.signatures = signatures
        self._hashes: dict[tuple[str, int | None, str], str] = {}
        self._sizes: dict[str, set[int]] = {}
        self._sizeless: set[str] = set()
        for sig in signatures.hashes:
            self._hashes.setdefault((sig.algorithm, sig.size, sig.digest), sig.name)
            if sig.size is None:
                self._sizeless.add(sig.algorithm)
            else:
                self._sizes.setdefault(sig.algorithm, set()).add(sig.size)
        self._algorithms = tuple(sorted(set(self._sizes) | self._sizeless))
        compiled = []
        for sig in signatures.bodies:
            source, literal = compile_hex(sig.hex_pattern, sig.name)
            try:
                regex = re.compile(source, re.S)
            except re.error as err:
                raise ValueError(
                    f"{sig.source}: signature {sig.name} does not compile: {err}"
                ) from None
            compiled.append(
                _Compiled(
                    sig.name,
                    sig.target,
                    sig.anchor,
                    sig.offset,
                    sig.max_shift,
                    regex,
                    literal,
                )
            )
        self._bodies = tuple(compiled)

    def match(self, data: bytes, is_mail: bool = False) -> MatchOutcome:
        """Hash signatures first, then body patterns in database order."""
        size = len(data)
        hashed = lookups = 0
        for algorithm in self._algorithms:
            if algorithm not in self._sizeless and size not in self._sizes[algorithm]:
                continue
            digest = hashlib.new(algorithm, data).hexdigest()
            hashed += size
            lookups += 1
            name = self._hashes.get((algorithm, size, digest)) or self._hashes.get(
                (algorithm, None, digest)
            )
            if name is not None:
                return MatchOutcome(name, hashed, lookups)
        types = None  # typed only when a typed signature's anchor occurs
        for sig in self._bodies:
            if sig.anchor_kind == "any" and sig.literal and sig.literal not in data:
                continue  # anchored patterns are tried at their offset directly
            if sig.target != TARGET_ANY:
                if types is None:
                    types = detect_types(data, is_mail)
                if sig.target not in types:
                    continue
            if self._found(sig, data, size):
                return MatchOutcome(sig.name, hashed, lookups)
        return MatchOutcome(None, hashed, lookups)

    @staticmethod
    def _found(sig: _Compiled, data: bytes, size: int) -> bool:
        if sig.anchor_kind == "any":
            return sig.regex.search(data) is not None
        start = sig.offset if sig.anchor_kind == "start" else size - sig.offset
        if start < 0 or start > size:
            return False
        if not sig.max_shift:
            return sig.regex.match(data, start) is not None
        found = sig.regex.search(data, start)  # the leftmost start is the least
        return found is not None and found.start() <= start + sig.max_shift
