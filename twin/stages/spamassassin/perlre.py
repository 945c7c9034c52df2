"""Perl regular expressions, as SpamAssassin rules write them, turned into Python's.

SpamAssassin rules are Perl regexes matched against octets (no Unicode
semantics), so every rule becomes a compiled ``bytes`` pattern.  The rule files
are read as Latin-1 text, which maps each octet to one character, and a
translated pattern is encoded back to Latin-1 before compiling.

What is translated (the common differences between the dialects):

- ``\\z`` -> ``\\Z`` and Perl's ``\\Z`` -> ``(?=\\n?\\Z)``;
- ``\\Q...\\E`` -> escaped literal text; ``\\h``/``\\H``, ``\\e``, ``\\x{..}``;
- ``(?i)`` (any inline flag group) after the start -> a scoped ``(?i:...)``
  running to the end of the enclosing group;
- ``(?<name>..)``/``(?'name'..)`` -> ``(?P<name>..)``, ``\\k<name>`` ->
  ``(?P=name)``; ``(?#...)`` comments dropped;
- POSIX classes ``[:alpha:]`` inside brackets -> ASCII ranges;
- a ``{`` that does not start a Perl quantifier -> ``\\{`` (Python reads ``{,n}``
  as a quantifier, Perl as text);
- modifiers ``/i /m /s /x`` -> ``re`` flags (``/g /o`` ignored).

Possessive quantifiers and atomic groups need Python >= 3.11.  ``$`` needs no
change: without ``/m`` both dialects match at the end or before a final
newline.  Anything else (``\\p{..}``, ``\\G``, ``\\K``, code blocks, recursion,
branch reset, variable-length lookbehind) raises ``PerlRegexError``; the caller
skips and counts that rule.
"""

from __future__ import annotations

import re
import warnings

__all__ = ["PerlRegexError", "compile_perl", "split_delimited", "translate"]


class PerlRegexError(ValueError):
    """A Perl regex that has no Python equivalent here."""


_POSIX = {
    "alpha": "a-zA-Z",
    "digit": "0-9",
    "alnum": "a-zA-Z0-9",
    "upper": "A-Z",
    "lower": "a-z",
    "space": " \\t\\n\\r\\f\\v",
    "blank": " \\t",
    "punct": "!-/:-@\\[-`{-~",
    "xdigit": "0-9A-Fa-f",
    "word": "a-zA-Z0-9_",
    "cntrl": "\\x00-\\x1f\\x7f",
    "print": "\\x20-\\x7e",
    "graph": "\\x21-\\x7e",
}
# Letters Python accepts after a backslash in a bytes pattern.
_PY_ESCAPES = set("abBdDfnrsStvwWxAZ0123456789")
_QUANT = re.compile(r"\{\d+(?:,\d*)?\}")
_FLAG_GROUP = re.compile(r"\(\?([imsx]*)(?:-([imsx]*))?\)")
_DELIMS = {"(": ")", "{": "}", "[": "]", "<": ">"}


def split_delimited(text: str) -> tuple[str, str, str]:
    """Split ``/re/flags`` or ``m{re}flags`` into (pattern, flags, rest of line)."""
    text = text.lstrip()
    pos = 0
    if text.startswith("m") and len(text) > 1 and not text[1].isalnum():
        pos = 1
    if pos >= len(text):
        raise PerlRegexError(f"no regex delimiter in {text!r}")
    opener = text[pos]
    if opener.isalnum() or opener.isspace() or opener == "\\":
        raise PerlRegexError(f"bad regex delimiter {opener!r} in {text!r}")
    closer = _DELIMS.get(opener, opener)
    i = pos + 1
    depth = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == opener and closer != opener:
            depth += 1
        elif char == closer:
            if depth == 0:
                break
            depth -= 1
        i += 1
    else:
        raise PerlRegexError(f"unterminated regex {text!r}")
    pattern = text[pos + 1 : i]
    j = i + 1
    while j < len(text) and text[j].isalpha():
        j += 1
    return pattern, text[i + 1 : j], text[j:].strip()


def _posix(body: str, i: int) -> tuple[str, int] | None:
    match = re.compile(r"\[:(\^?)([a-z]+):\]").match(body, i)
    if not match:
        return None
    ranges = _POSIX.get(match.group(2))
    if ranges is None:
        raise PerlRegexError(f"unknown POSIX class {match.group(0)!r}")
    if match.group(1):
        raise PerlRegexError(f"negated POSIX class {match.group(0)!r}")
    return ranges, match.end()


def _escape(pattern: str, i: int, in_class: bool) -> tuple[str, int]:
    """Translate the escape starting at ``pattern[i] == '\\\\'``."""
    if i + 1 >= len(pattern):
        raise PerlRegexError("trailing backslash")
    char = pattern[i + 1]
    if char == "z":
        return "\\Z", i + 2
    if char == "Z":
        return "(?=\\n?\\Z)", i + 2
    if char == "h":
        return (" \\t" if in_class else "[ \\t]"), i + 2
    if char == "H" and not in_class:
        return "[^ \\t]", i + 2
    if char == "e":
        return "\\x1b", i + 2
    if char == "v" and not in_class:
        return "[\\n\\x0b\\f\\r]", i + 2
    if char == "x" and i + 2 < len(pattern) and pattern[i + 2] == "{":
        end = pattern.find("}", i + 3)
        if end < 0:
            raise PerlRegexError("unterminated \\x{...}")
        value = int(pattern[i + 3 : end] or "0", 16)
        if value > 0xFF:
            raise PerlRegexError(f"wide character \\x{{{value:x}}} in octet regex")
        return f"\\x{value:02x}", end + 1
    if char == "k" and i + 2 < len(pattern) and pattern[i + 2] in "<{'":
        close = {"<": ">", "{": "}", "'": "'"}[pattern[i + 2]]
        end = pattern.find(close, i + 3)
        if end < 0:
            raise PerlRegexError("unterminated \\k<name>")
        return f"(?P={pattern[i + 3 : end]})", end + 1
    if char == "Q":
        end = pattern.find("\\E", i + 2)
        end = len(pattern) if end < 0 else end
        literal = re.escape(pattern[i + 2 : end])
        return literal, min(len(pattern), end + 2)
    if char == "E":
        return "", i + 2
    if char.isascii() and char.isalnum() and char not in _PY_ESCAPES:
        raise PerlRegexError(f"unsupported escape \\{char}")
    return pattern[i : i + 2], i + 2


def _close_scoped(out: list[str], opens: list[int]) -> None:
    """Close the scoped-flag groups opened inside the group that now ends."""
    while opens and opens[-1] > 0:
        opens[-1] -= 1
        out.append(")")


def translate(pattern: str) -> tuple[str, str]:
    """Translate a Perl pattern body; return (python pattern, leading flags)."""
    out: list[str] = []
    lead_flags = ""
    opens = [0]  # per open group: scoped-flag groups still to close
    in_class = False
    i = 0
    n = len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\":
            text, i = _escape(pattern, i, in_class)
            out.append(text)
            continue
        if in_class:
            if char == "[":
                posix = _posix(pattern, i)
                if posix:
                    out.append(posix[0])
                    i = posix[1]
                    continue
                out.append("\\[")
                i += 1
                continue
            if char == "]":
                in_class = False
            out.append(char)
            i += 1
            continue
        if char == "[":
            in_class = True
            out.append("[")
            i += 1
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":
                out.append("\\]")
                i += 1
            continue
        if char == "{" and not _QUANT.match(pattern, i):
            out.append("\\{")
            i += 1
            continue
        if char == "(":
            if pattern.startswith("(?#", i):
                end = pattern.find(")", i)
                i = n if end < 0 else end + 1
                continue
            flag_group = _FLAG_GROUP.match(pattern, i)
            if flag_group:
                on, off = flag_group.group(1), flag_group.group(2) or ""
                if not out and len(opens) == 1 and not off:
                    lead_flags += on
                elif on or off:
                    out.append(f"(?{on}{'-' + off if off else ''}:")
                    opens[-1] += 1
                i = flag_group.end()
                continue
            if pattern.startswith("(?<", i) and not pattern.startswith(
                ("(?<=", "(?<!"), i
            ):
                out.append("(?P<")
                i += 3
            elif pattern.startswith("(?'", i):
                end = pattern.find("'", i + 3)
                out.append(f"(?P<{pattern[i + 3 : end]}>")
                i = end + 1
            elif pattern.startswith("(?^", i):
                out.append("(?")
                i += 3
            elif pattern.startswith(("(?|", "(?{", "(??", "(?&", "(?R", "(?P>"), i) or (
                re.match(r"\(\?[-+]?\d", pattern[i:])
            ):
                raise PerlRegexError(f"unsupported construct {pattern[i : i + 4]!r}")
            else:
                out.append("(")
                i += 1
            opens.append(0)
            continue
        if char == ")":
            _close_scoped(out, opens)
            if len(opens) > 1:
                opens.pop()
            out.append(")")
            i += 1
            continue
        out.append(char)
        i += 1
    if in_class:
        raise PerlRegexError("unterminated character class")
    _close_scoped(out, opens)
    return "".join(out), lead_flags


def flags_of(modifiers: str) -> int:
    """Perl modifiers (``imsx``; ``g``/``o`` ignored) as ``re`` flags."""
    flags = 0
    for char in modifiers:
        if char == "i":
            flags |= re.IGNORECASE
        elif char == "m":
            flags |= re.MULTILINE
        elif char == "s":
            flags |= re.DOTALL
        elif char == "x":
            flags |= re.VERBOSE
        elif char not in "goa":
            raise PerlRegexError(f"unsupported regex modifier {char!r}")
    return flags


def compile_perl(pattern: str, modifiers: str = "") -> re.Pattern[bytes]:
    """Compile a Perl pattern body (Latin-1 text) to a bytes regex."""
    python, lead = translate(pattern)
    flags = flags_of(modifiers + lead)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return re.compile(python.encode("latin-1"), flags)
    except (re.error, UnicodeEncodeError, OverflowError, RecursionError) as exc:
        raise PerlRegexError(f"{exc} in {pattern!r}") from None
