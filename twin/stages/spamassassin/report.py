"""The report and headers SpamAssassin writes (PerMsgStatus rewriting).

Renders, for one scanned message:

- the report block of ``spamassassin -t`` (10_default_prefs.cf's template):
  ``Content analysis details:   (14.5 points, 5.0 required)``, a blank line,
  `` pts rule name              description``, the dashed rule and one row per
  test hit (``%4s %-22s %s``; descriptions wrapped at 50 columns with a
  28-space indent; Bayes rows carry ``[score: 0.9999]``);
- ``X-Spam-Status`` (``Yes, score=14.5 required=5.0 tests=A,B autolearn=no
  version=...``, folded at 78 columns), ``X-Spam-Flag: YES`` on spam,
  ``X-Spam-Level`` and ``X-Spam-Checker-Version``;
- the rewritten message: old ``X-Spam-*`` headers removed, ours appended to
  the header block, the Subject prefixed with the subject tag on spam (opt-in,
  FACTS.md: ``rewrite_header Subject``; the ECE system used ``***SPAM***``).

Counts nothing; pure formatting.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence

__all__ = [
    "SA_VERSION_STRING",
    "format_points",
    "render_report",
    "rewrite_message",
    "spam_headers",
]

SA_VERSION_STRING = "4.0.1"  # the shipped rule set's version (SOURCE.txt)
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_XSPAM = re.compile(rb"^X-Spam-[\w-]*:.*?(?=\r?\n(?![ \t])|\Z)", re.I | re.M | re.S)
_SUBJECT = re.compile(rb"^Subject:[ \t]?", re.I | re.M)
_NEWLINES = re.compile(rb"(?:\r?\n)+")


def format_points(score: float) -> str:
    """A score as the report shows it: one decimal, whole above four columns."""
    text = f"{score:.1f}"
    if len(text) > 4:
        text = f"{score:.0f}"
    return f"{text:>4}"


def render_report(
    score: float,
    required: float,
    rows: Sequence[tuple[str, float, str, str]],
) -> str:
    """The report block; rows are (rule, points, description, extra line)."""
    lines = [
        f"Content analysis details:   ({score:.1f} points, {required:.1f} required)",
        "",
        " pts rule name              description",
        "---- ---------------------- " + "-" * 50,
    ]
    indent = " " * 28
    for name, points, description, extra in rows:
        wrapped = textwrap.wrap(description, 50) or [""]
        lines.append(f"{format_points(points)} {name:<22} {wrapped[0]}".rstrip())
        lines.extend(indent + more for more in wrapped[1:])
        if extra:
            lines.append(indent + extra)
    return "\n".join(lines) + "\n"


def _fold(name: str, value: str, width: int = 78) -> str:
    """Fold a header at commas and spaces, continuation lines starting with a tab."""
    out: list[str] = []
    line = f"{name}: "
    for piece in re.findall(r"[^ ,]+,?| ", value):
        if len(line) + len(piece) > width and line.strip():
            out.append(line.rstrip())
            line = "\t"
            if piece == " ":
                continue
        line += piece
    out.append(line.rstrip())
    return "\n".join(out)


def spam_headers(
    is_spam: bool,
    score: float,
    required: float,
    tests: Sequence[str],
    autolearn: str,
) -> list[str]:
    """The X-Spam-* header lines SpamAssassin adds (10_default_prefs.cf)."""
    names = ",".join(sorted(tests)) or "none"
    status = (
        f"{'Yes' if is_spam else 'No'}, score={score:.1f} required={required:.1f} "
        f"tests={names} autolearn={autolearn} version={SA_VERSION_STRING}"
    )
    headers = []
    if is_spam:
        headers.append("X-Spam-Flag: YES")
    headers.append(
        f"X-Spam-Checker-Version: SpamAssassin {SA_VERSION_STRING} (mailtwin)"
    )
    headers.append(f"X-Spam-Level: {'*' * min(50, max(0, int(score)))}")
    headers.append(_fold("X-Spam-Status", status))
    return headers


def rewrite_message(message: bytes, headers: Sequence[str], subject_tag: str) -> bytes:
    """The message with old X-Spam-* headers replaced and the Subject tagged."""
    newline = b"\r\n" if b"\r\n" in message[:2048] else b"\n"
    if b"\r" in message:
        match = _HEADER_END.search(message)
        start = match.start() if match else -1
    else:  # the first "\n\n", as the pattern finds it
        start = message.find(b"\n\n")
    head, rest = (
        (message[:start], message[start:])
        if start >= 0
        else (message.rstrip(b"\r\n"), newline)
    )
    if b"x-spam-" in head.lower():  # else _XSPAM (case-blind) finds nothing
        head = _XSPAM.sub(b"", head)
    if newline != b"\n" or b"\r\n" in head or b"\n\n" in head:
        head = _NEWLINES.sub(newline, head)  # (else it would change nothing)
    head = head.strip(b"\r\n")
    if subject_tag:
        tag = subject_tag.encode("utf-8")
        head, found = _SUBJECT.subn(lambda m: b"Subject: " + tag + b" ", head, count=1)
        if not found:
            head += newline + b"Subject: " + tag
    added = newline.join(h.encode("utf-8").replace(b"\n", newline) for h in headers)
    return head + newline + added + rest
