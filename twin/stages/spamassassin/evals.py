"""Eval tests: the Perl functions rules call with ``eval:name(args)``.

Twins the local (no network) eval tests of SpamAssassin's HeaderEval, BodyEval,
MIMEEval, HTMLEval, ImageInfo, URIEval, RelayEval, WLBLEval and Bayes plugins
that the shipped rules use most.  ``EVAL_TESTS`` maps each supported test name
to its function; a rule calling any other eval test is skipped and counted by
``rules.compile_rules``.  ``SUPPORTED_EVAL_TESTS`` is the sorted list (for the
README).  Tests that are constant under this twin's configuration are
implemented as such and say why: ``ok_locales all`` means no charset is "far
away"; white/blocklists and ``welcomelist_*`` entries need SPF/DKIM
authentication, which a local-only scan does not do.

A ``Scan`` carries one message's state through the rules: the parsed message,
the Bayes probability (``None`` when Bayes is not used or not yet trained),
and the work counters the rules and evals add to.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from twin.stages.spamassassin.message import ParsedMessage

__all__ = ["EVAL_TESTS", "SUPPORTED_EVAL_TESTS", "Scan", "header_exists"]


@dataclass
class Scan:
    """Per-message state shared by rules and eval tests."""

    msg: ParsedMessage
    bayes_probability: float | None = None
    rules_evaluated: int = 0
    regex_bytes: int = 0
    prefilter_checks: int = 0
    # Values several eval tests share (computed once per message).
    memo: dict[str, object] = field(default_factory=dict)


_KNOWN_TAGS = frozenset(
    "a abbr acronym address applet area b base basefont bdo bgsound big blink "
    "blockquote body br button caption center cite code col colgroup dd del dfn "
    "dir div dl dt em embed fieldset font form frame frameset h1 h2 h3 h4 h5 h6 "
    "head hr html i iframe img input ins isindex kbd label legend li link map "
    "marquee menu meta nobr noembed noframes noscript object ol optgroup option "
    "p param pre q s samp script select small span strike strong style sub sup "
    "table tbody td textarea tfoot th thead title tr tt u ul var wbr o:p v:shape "
    "center section article header footer nav main figure figcaption svg path "
    "picture source video audio canvas".split()
)
_TEMPLATE = re.compile(rb"%[A-Z][A-Z_-]*%")
_HIGH = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\xff]")


def _float(text: str) -> float | None:
    text = text.strip()
    if text in ("undef", ""):
        return None
    if text == "inf":
        return float("inf")
    return float(text)


# Twin speed-up: (low, high) argument strings -> their numbers, keyed by the
# exact strings (rule arguments: a few dozen pairs), emptied past 1,000.
_RANGES: dict[tuple[str, str], tuple[float | None, float | None]] = {}


def _in_range(value: float, low: str, high: str) -> bool:
    bounds = _RANGES.get((low, high))
    if bounds is None:
        if len(_RANGES) >= 1_000:
            _RANGES.clear()
        bounds = _RANGES[low, high] = (_float(low), _float(high))
    lo, hi = bounds
    return (lo is None or value >= lo) and (hi is None or value < hi)


def header_exists(scan: Scan, name: str) -> bool:
    """``exists:Name``: the header is present (even if empty)."""
    return scan.msg.has_header(name)


# ----------------------------------------------------------------- Bayes
def check_bayes(scan: Scan, low: str, high: str) -> bool:
    """BAYES_xx: the Bayes probability lies in [low, high) ([low, 1] at the top)."""
    prob = scan.bayes_probability
    if prob is None:
        return False
    lo, hi = float(low), float(high)
    return prob >= lo and (prob < hi or hi >= 1.0)


# ---------------------------------------------------------------- headers
def _header_time(value: bytes | None) -> float | None:
    if not value:
        return None
    parsed = email.utils.parsedate_tz(value.decode("latin-1").strip())
    if parsed is None:
        return None
    try:
        return float(email.utils.mktime_tz(parsed))
    except (OverflowError, ValueError):
        return None


def _received_time(msg: ParsedMessage) -> float | None:
    raw = msg.header("Received")
    if not raw:
        return None
    for line in raw.split(b"\n"):
        if b";" in line:
            when = _header_time(line.rsplit(b";", 1)[1])
            if when is not None:
                return when
    return None


def check_for_shifted_date(scan: Scan, low: str, high: str) -> bool:
    """DATE_IN_PAST/FUTURE_xx: Date: minus the first Received: date, in hours."""
    memo = scan.memo
    shift = memo.get("date_shift", memo)  # (the memo itself: not worked out yet)
    if shift is memo:
        date = _header_time(scan.msg.header("Date"))
        received = _received_time(scan.msg)
        shift = memo["date_shift"] = (
            None if date is None or received is None else date - received
        )
    if shift is None:
        return False
    return _in_range(shift / 3600.0, low, high)  # type: ignore[operator]


def check_for_missing_to_header(scan: Scan) -> bool:
    msg = scan.msg
    return msg.header("To:raw") is None and msg.header("Apparently-To:raw") is None


def check_header_count_range(scan: Scan, name: str, low: str, high: str) -> bool:
    count = len(scan.msg._index.get(name.lower().encode("latin-1"), []))
    return float(low) <= count <= float(high)


def check_illegal_chars(scan: Scan, name: str, ratio: str, count: str) -> bool:
    if name == "ALL":
        value = b"".join(
            v for n, v in scan.msg.headers if n.lower() not in (b"subject", b"from")
        )
    else:
        value = scan.msg.header(name + ":raw") or b""
    if not value:
        return False
    illegal = len(_HIGH.findall(value))
    return illegal / len(value) > float(ratio) and illegal >= int(count)


def subject_is_all_caps(scan: Scan) -> bool:
    subject = (scan.msg.header("Subject") or b"").strip()
    words = subject.split()
    letters = re.sub(rb"[^A-Za-z]", b"", subject)
    return len(words) > 1 and len(letters) >= 10 and letters.isupper()


def check_unresolved_template(scan: Scan) -> bool:
    return any(
        _TEMPLATE.search(v)
        for n, v in scan.msg.headers
        if n.lower() not in (b"received", b"dkim-signature")
    )


def check_for_to_in_subject(scan: Scan, test: str) -> bool:
    to = (scan.msg.header("To:addr") or b"").strip().lower()
    subject = (scan.msg.header("Subject") or b"").lower()
    if b"@" not in to or not subject:
        return False
    if test == "user":
        user = to.split(b"@")[0]
        return (
            len(user) > 2
            and re.search(rb"\b" + re.escape(user) + rb"\b", subject) is not None
        )
    return to in subject


def check_no_relays(scan: Scan) -> bool:
    return scan.msg.header("Received:raw") is None


def check_for_matching_env_and_hdr_from(scan: Scan) -> bool:
    envelope = (scan.msg.header("EnvelopeFrom") or b"").strip().lower()
    sender = (scan.msg.header("From:addr") or b"").strip().lower()
    return bool(envelope) and envelope == sender


def _domain(address: bytes) -> bytes:
    host = address.strip().lower().rpartition(b"@")[2]
    return b".".join(host.split(b".")[-2:])


def check_equal_from_domains(scan: Scan) -> bool:
    """HEADER_FROM_DIFFERENT_DOMAINS: From: and envelope sender domains differ."""
    envelope = scan.msg.header("EnvelopeFrom") or b""
    sender = scan.msg.header("From:addr") or b""
    if b"@" not in envelope or b"@" not in sender:
        return False
    return _domain(envelope) != _domain(sender)


def never(scan: Scan, *args: str) -> bool:
    """Constant under this twin: ``ok_locales all`` and empty white/blocklists."""
    return False


# ------------------------------------------------------------------- MIME
def check_for_mime(scan: Scan, test: str) -> float:
    parts = scan.msg.parts
    if test == "mime_base64_count":
        return float(sum(p.encoding == "base64" for p in parts))
    if test == "mime_qp_count":
        return float(sum(p.encoding == "quoted-printable" for p in parts))
    if test == "mime_base64_encoded_text":
        return float(
            any(
                p.encoding == "base64"
                and p.ctype.startswith("text/")
                and p.charset.lower() in ("", "us-ascii")
                for p in parts
            )
        )
    if test == "mime_qp_long_line":
        return float(
            any(
                p.encoding == "quoted-printable"
                and any(len(line) > 77 for line in p.raw.splitlines())
                for p in parts
            )
        )
    if test == "mime_attachment":
        return float(any(p.filename for p in parts))
    if test == "mime_base64_blanks":
        return float(
            any(
                p.encoding == "base64" and b"\n\n" in p.raw.strip().replace(b"\r", b"")
                for p in parts
            )
        )
    if test == "mimepart_limit_exceeded":
        return float(len(parts) > 1000)
    return 0.0  # mime_faraway_charset, mime_bad_iso_charset: ok_locales all


def check_for_mime_html(scan: Scan) -> bool:
    return any(p.ctype == "text/html" for p in scan.msg.parts)


def check_for_mime_html_only(scan: Scan) -> bool:
    types = {p.ctype for p in scan.msg.parts if p.ctype.startswith("text/")}
    return types == {"text/html"}


def check_ma_non_text(scan: Scan) -> bool:
    return any(
        p.parent_type == "multipart/alternative" and not p.ctype.startswith("text/")
        for p in scan.msg.parts
    )


def check_msg_parse_flags(scan: Scan, flag: str) -> bool:
    return bool(scan.msg.flags.get(flag, 0))


def check_base64_length(scan: Scan, low: str, high: str = "999999") -> bool:
    lo, hi = int(low), int(high)
    for part in scan.msg.parts:
        if part.encoding != "base64":
            continue
        lines = [line for line in part.raw.splitlines() if line.strip()]
        if any(lo <= len(line.rstrip()) <= hi for line in lines[:-1]):
            return True
    return False


# ------------------------------------------------------------------- body
def check_body_length(scan: Scan, length: str) -> bool:
    return len(scan.msg.raw_body) < int(length)


_NOT_LETTER = bytes(c for c in range(256) if not (65 <= c <= 90 or 97 <= c <= 122))
_LOWER_LETTERS = bytes(range(97, 123))


def check_for_uppercase(scan: Scan, low: str, high: str) -> bool:
    counts = scan.memo.get("uppercase")
    if counts is None:
        # Letters of the body (Subject left out), and how many are capitals.
        text = scan.msg.body_text
        letters = text.translate(None, _NOT_LETTER)
        upper = len(letters.translate(None, _LOWER_LETTERS))
        counts = scan.memo["uppercase"] = (len(letters), upper)
    total, upper = counts  # type: ignore[misc]
    if total < 200:
        return False
    percent = upper * 100.0 / total
    return float(low) <= percent < float(high) or (
        float(high) >= 100 and percent >= float(low)
    )


def check_blank_line_ratio(scan: Scan, low: str, high: str, minlines: str) -> bool:
    lines = scan.msg.text_plain.splitlines()
    if len(lines) < int(minlines):
        return False
    blank = sum(1 for line in lines if not line.strip())
    return float(low) <= blank * 100.0 / len(lines) < float(high)


def check_uri_truncated(scan: Scan) -> bool:
    return any(len(uri) > 8192 for uri in scan.msg.uris)


# ------------------------------------------------------------------- HTML
def _has_html(scan: Scan) -> bool:
    msg = scan.msg
    if msg._rendered is None:  # rendering fills the HTML facts
        msg._render()
    return bool(msg.text_html)


def html_test(scan: Scan, test: str) -> bool:
    if test == "html":
        return _has_html(scan)
    if test == "embeds":
        return _has_html(scan) and bool(
            {"embed", "object", "applet"} & scan.msg.html.tags.keys()
        )
    if test == "form_action_mailto":
        return (
            _has_html(scan)
            and re.search(
                r"<form[^>]+action\s*=\s*[\"']?mailto:", scan.msg.text_html, re.I
            )
            is not None
        )
    return False


def html_tag_exists(scan: Scan, tag: str) -> bool:
    return _has_html(scan) and tag.lower() in scan.msg.html.tags


def html_tag_balance(scan: Scan, tag: str, expression: str) -> bool:
    if not _has_html(scan) or tag not in scan.msg.html.tags:
        return False
    return _compare(float(scan.msg.html.open_close.get(tag, 0)), expression)


def _compare(value: float, expression: str) -> bool:
    match = re.match(r"\s*(==|!=|<=|>=|<|>)\s*(-?[\d.]+)\s*$", expression)
    if not match:
        return False
    op, limit = match.group(1), float(match.group(2))
    return {
        "==": value == limit,
        "!=": value != limit,
        "<=": value <= limit,
        ">=": value >= limit,
        "<": value < limit,
        ">": value > limit,
    }[op]


def _html_value(scan: Scan, test: str) -> float | None:
    if not _has_html(scan):
        return None
    facts = scan.msg.html
    total = sum(facts.tags.values())
    if test == "length":
        return float(facts.text_len)
    if test in ("non_element_ratio", "bad_tag_ratio"):
        if not total:
            return None
        bad = sum(n for tag, n in facts.tags.items() if tag not in _KNOWN_TAGS)
        return bad / total
    return None


def html_range(scan: Scan, test: str, low: str, high: str) -> bool:
    value = _html_value(scan, test)
    return value is not None and _in_range(value, low, high)


def html_eval(scan: Scan, test: str, expression: str) -> bool:
    value = _html_value(scan, test)
    return value is not None and _compare(value, expression)


def html_image_only(scan: Scan, low: str, high: str) -> bool:
    facts = scan.msg.html
    return (
        _has_html(scan)
        and facts.images > 0
        and float(low) < facts.text_len <= float(high)
    )


def html_image_ratio(scan: Scan, low: str, high: str) -> bool:
    facts = scan.msg.html
    if not _has_html(scan) or not facts.image_area:
        return False
    return _in_range(facts.text_len / facts.image_area, low, high)


def html_text_match(scan: Scan, area: str, pattern: str) -> bool:
    if not _has_html(scan):
        return False
    if area == "title":
        text = scan.msg.html.title
    elif area == "comment":
        text = "\n".join(re.findall(r"<!.*?>", scan.msg.text_html, re.S))
    else:
        return False
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


# -------------------------------------------------------------- ImageInfo
_IMAGE_TYPES = {
    "gif": ("image/gif",),
    "jpeg": ("image/jpeg", "image/jpg"),
    "png": ("image/png",),
}


_ALL_IMAGE_TYPES = tuple(t for v in _IMAGE_TYPES.values() for t in v)


def image_count(scan: Scan, kind: str, low: str, high: str = "") -> bool:
    types = _ALL_IMAGE_TYPES if kind == "all" else _IMAGE_TYPES.get(kind, ())
    count = sum(1 for p in scan.msg.parts if p.ctype in types)
    return count >= int(low) and (not high or count <= int(high))


EVAL_TESTS: dict[str, Callable[..., float]] = {
    "check_bayes": check_bayes,
    "check_for_shifted_date": check_for_shifted_date,
    "check_for_missing_to_header": check_for_missing_to_header,
    "check_header_count_range": check_header_count_range,
    "check_illegal_chars": check_illegal_chars,
    "subject_is_all_caps": subject_is_all_caps,
    "check_unresolved_template": check_unresolved_template,
    "check_for_to_in_subject": check_for_to_in_subject,
    "check_no_relays": check_no_relays,
    "check_for_matching_env_and_hdr_from": check_for_matching_env_and_hdr_from,
    "check_equal_from_domains": check_equal_from_domains,
    "check_for_mime": check_for_mime,
    "check_for_mime_html": check_for_mime_html,
    "check_for_mime_html_only": check_for_mime_html_only,
    "check_ma_non_text": check_ma_non_text,
    "check_msg_parse_flags": check_msg_parse_flags,
    "check_base64_length": check_base64_length,
    "check_body_length": check_body_length,
    "check_for_uppercase": check_for_uppercase,
    "check_blank_line_ratio": check_blank_line_ratio,
    "check_uri_truncated": check_uri_truncated,
    "html_test": html_test,
    "html_tag_exists": html_tag_exists,
    "html_tag_balance": html_tag_balance,
    "html_range": html_range,
    "html_eval": html_eval,
    "html_image_only": html_image_only,
    "html_image_ratio": html_image_ratio,
    "html_text_match": html_text_match,
    "image_count": image_count,
    # Constant here: ok_locales all (no far-away charsets), empty lists.
    "check_for_faraway_charset": never,
    "check_for_faraway_charset_in_headers": never,
    "html_charset_faraway": never,
    "check_from_in_blacklist": never,
    "check_from_in_blocklist": never,
    "check_from_in_whitelist": never,
    "check_from_in_welcomelist": never,
    "check_from_in_default_whitelist": never,
    "check_from_in_default_welcomelist": never,
    "check_to_in_blacklist": never,
    "check_to_in_blocklist": never,
    "check_to_in_whitelist": never,
    "check_to_in_welcomelist": never,
    "check_to_in_all_spam": never,
    "check_to_in_more_spam": never,
    "check_uri_host_in_blacklist": never,
    "check_uri_host_in_blocklist": never,
    "check_uri_host_in_whitelist": never,
    "check_uri_host_in_welcomelist": never,
}
SUPPORTED_EVAL_TESTS: tuple[str, ...] = tuple(sorted(EVAL_TESTS))
