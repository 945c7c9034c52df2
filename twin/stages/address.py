"""Envelope addresses: RFC 5321 MAIL/RCPT arguments, and where mail really goes.

Twins two pieces of Postfix: the envelope address extraction of smtpd and the
address resolver of trivial-rewrite (``resolve.c``), which decides whether an
address is local or leaves the site. Relay control stands on the resolver: an
attacker hides a remote destination inside an address of ours, and the
resolver must find it the way Postfix does.

Parsing (``parse_path_argument``) accepts ``FROM:<path>`` / ``TO:<path>`` with
Postfix's leniency (a space after the colon, a bare address without angle
brackets), the null sender ``<>``, quoted local parts with backslash escapes,
source routes ``<@a,@b:user@c>``, domain literals ``[192.0.2.1]`` and ESMTP
parameters after the address (``SIZE=1234``); it checks their syntax only,
which ones a verb supports is the SMTP stage's business.

Resolution (``AddressResolver.resolve``) repeats, as resolve.c does: drop a
trailing dot of the domain; if the domain is remote, stop there; if it is
local, strip it and look at what is left: ``user@other`` from a quoted or
source-routed form, ``user%other`` (``allow_percent_hack``, Postfix default
yes) becomes ``user@other``, ``other!user`` (``swap_bangpath``, default yes)
becomes ``user@other``; a quoted local part holding ``@``, ``%`` or ``!`` is
opened and searched for them (``resolve_dequoted_address``, default yes). A
source route is dropped: the final domain counts. The result carries Postfix's
"routed" flag: routing operators (``@ ! %``) left in the final local part,
which ``reject_unauth_destination`` treats as a relay attempt whatever the
local settings (``allow_untrusted_routing = no``).

Counts: none here; the SMTP stage counts each resolution as one
``smtp.address_resolve`` unit (a trivial-rewrite query). Raises ValueError for
bad resolver settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Address work is counted by the caller (smtp.address_resolve).
CPU_UNITS: dict[str, str] = {}

# Postfix's empty_address_recipient: what an empty local part becomes.
EMPTY_LOCAL_PART = "MAILER-DAEMON"

_KEYWORD_RE = re.compile(r"(FROM|TO):[ \t]*", re.IGNORECASE)
# Unquoted local part: printable, none of the RFC 5322 specials but "@", "%",
# "!" and ".", which routing tricks use and Postfix tolerates.
_LOCAL_RE = re.compile(r'[^\x00-\x20\x7f<>()\[\]\\,;:"]+\Z')
_DOMAIN_RE = re.compile(
    r"(?:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?|\[[^\[\]\\\x00-\x20\x7f]+\])\Z"
)
_PARAM_RE = re.compile(r"([A-Za-z0-9][A-Za-z0-9-]*)(?:=([\x21-\x3c\x3e-\x7e]*))?\Z")
_QUOTED_TEXT_RE = re.compile(r'[^\x00-\x08\x0a-\x1f\x7f"\\]')
# The common case, <local@domain> with a plain local part, parsed in one
# match (parameters after it still go through _PARAM_RE); anything else takes
# the general path.
_SIMPLE_RE = re.compile(
    r"(FROM|TO):[ \t]*<([A-Za-z0-9][A-Za-z0-9._+=-]*)@"
    r"([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>(?:[ \t]+(.*))?\Z",
    re.IGNORECASE | re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class EnvelopeAddress:
    """One parsed envelope path; ``text`` is as written inside the brackets."""

    text: str
    local_part: str
    quoted: bool
    domain: str | None
    route: tuple[str, ...] = ()

    @property
    def is_null(self) -> bool:
        """The null reverse-path ``<>`` (bounces)."""
        return not self.text


NULL_ADDRESS = EnvelopeAddress("", "", False, None)


@dataclass(frozen=True, slots=True)
class PathArgument:
    """A parsed MAIL/RCPT argument: the address, its ESMTP parameters, or why not.

    ``error`` is ``""`` when parsed, ``"syntax"`` when the ``FROM:``/``TO:``
    keyword is missing, ``"address"`` for a malformed path and ``"parameter"``
    for a malformed ESMTP parameter (``bad`` names it).
    """

    error: str
    address: EnvelopeAddress | None
    params: tuple[tuple[str, str | None], ...] = ()
    bad: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def _quoted_end(text: str, start: int) -> int:
    """Index of the closing quote of the quoted string opening at *start*."""
    i = start + 1
    end = len(text)
    while i < end:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i
        i += 1
    return -1


def _unquote(body: str) -> str | None:
    """The text of a quoted-string body, or None when it holds a bad character."""
    out = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            i += 1
            if i == len(body):
                return None
            c = body[i]
        elif not _QUOTED_TEXT_RE.match(c):
            return None
        out.append(c)
        i += 1
    return "".join(out)


def parse_address(text: str) -> EnvelopeAddress | None:
    """Parse a path as written between the angle brackets; None if malformed."""
    if not text:
        return NULL_ADDRESS
    route: tuple[str, ...] = ()
    mailbox = text
    if text[0] == "@":
        colon = text.find(":")
        if colon < 0:
            return None
        hops = text[:colon].split(",")
        for hop in hops:
            if len(hop) < 2 or hop[0] != "@" or not _DOMAIN_RE.match(hop, 1):
                return None
        route = tuple(hop[1:] for hop in hops)
        mailbox = text[colon + 1 :]
        if not mailbox:
            return None
    if mailbox[0] == '"':
        close = _quoted_end(mailbox, 0)
        if close < 0:
            return None
        local = _unquote(mailbox[1:close])
        if local is None:
            return None
        rest = mailbox[close + 1 :]
        if not rest:
            return EnvelopeAddress(text, local, True, None, route)
        if rest[0] != "@" or not _DOMAIN_RE.match(rest, 1):
            return None
        return EnvelopeAddress(text, local, True, rest[1:], route)
    at = mailbox.rfind("@")
    if at < 0:
        if not _LOCAL_RE.match(mailbox):
            return None
        return EnvelopeAddress(text, mailbox, False, None, route)
    local = mailbox[:at]
    if not local or not _LOCAL_RE.match(local) or not _DOMAIN_RE.match(mailbox, at + 1):
        return None
    return EnvelopeAddress(text, local, False, mailbox[at + 1 :], route)


def parse_path_argument(argument: str, keyword: str) -> PathArgument:
    """Parse ``FROM:<path> params`` (*keyword* ``"FROM"``) or ``TO:<path> ...``."""
    simple = _SIMPLE_RE.match(argument)
    if simple is not None and simple.group(1).upper() == keyword:
        local, domain, tail = simple.group(2, 3, 4)
        address = EnvelopeAddress(f"{local}@{domain}", local, False, domain)
        return _with_params(address, tail) if tail else PathArgument("", address)
    match = _KEYWORD_RE.match(argument)
    if match is None or match.group(1).upper() != keyword:
        return PathArgument("syntax", None)
    rest = argument[match.end() :]
    if rest.startswith("<"):
        if '"' in rest:
            i = 1
            close = -1
            while i < len(rest):
                c = rest[i]
                if c == '"':
                    i = _quoted_end(rest, i)
                    if i < 0:
                        break
                elif c == ">":
                    close = i
                    break
                i += 1
        else:
            close = rest.find(">")
        if close < 0:
            return PathArgument("address", None)
        inner = rest[1:close]
        tail = rest[close + 1 :]
        if tail and tail[0] not in " \t":
            return PathArgument("address", None)
    else:
        # Postfix (strict_rfc821_envelopes = no) takes a bare address too.
        if rest.startswith('"'):
            close = _quoted_end(rest, 0)
            if close < 0:
                return PathArgument("address", None)
            stop = close + 1
        else:
            stop = 0
        while stop < len(rest) and rest[stop] not in " \t":
            stop += 1
        inner = rest[:stop]
        tail = rest[stop:]
        if not inner:
            return PathArgument("address", None)
    address = parse_address(inner)
    if address is None:
        return PathArgument("address", None)
    return _with_params(address, tail)


def _with_params(address: EnvelopeAddress, tail: str) -> PathArgument:
    """*address* with the ESMTP parameters in *tail*, or the first bad one."""
    params = []
    for word in tail.split():
        found = _PARAM_RE.match(word)
        if found is None:
            return PathArgument("parameter", address, bad=word)
        params.append((found.group(1).upper(), found.group(2)))
    return PathArgument("", address, tuple(params))


# ------------------------------------------------------------------ resolver


@dataclass(frozen=True, slots=True)
class RewriteSettings:
    """The trivial-rewrite parameters that decide where an address goes.

    ``local_domains`` is Postfix's mydestination (matched exactly, case
    folded); ``relay_domains`` are destinations we relay for (matched with
    their subdomains, as Postfix's parent_domain_matches_subdomains does);
    ``myorigin`` is appended to an address without a domain (Postfix: the
    myorigin domain, here the first local domain when empty).
    """

    local_domains: tuple[str, ...] = ("ece.example.edu",)
    relay_domains: tuple[str, ...] = ()
    myorigin: str = ""
    allow_percent_hack: bool = True  # Postfix default: yes
    swap_bangpath: bool = True  # Postfix default: yes
    resolve_dequoted_address: bool = True  # Postfix default: yes

    def __post_init__(self) -> None:
        if not self.local_domains:
            raise ValueError("local_domains is empty: at least one domain is local")
        for domain in (*self.local_domains, *self.relay_domains):
            if not domain or not _DOMAIN_RE.match(domain) or domain.endswith("."):
                raise ValueError(
                    f"domain {domain!r} is not a host name (labels of letters, "
                    "digits, '-' and '_' joined by '.')"
                )


@dataclass(frozen=True, slots=True)
class Resolution:
    """Where an address goes: ``local_part@domain``, local or not, and how.

    ``routed`` is Postfix's RESOLVE_FLAG_ROUTED (``@ ! %`` left in the final
    local part); ``rewrites`` counts routing rewrites applied on the way
    (source route dropped, percent hack, bang path, quoted part opened).
    """

    local_part: str
    domain: str
    is_local: bool
    is_relay_domain: bool
    routed: bool
    rewrites: int

    @property
    def carried_routing(self) -> bool:
        """Whether the address used any routing operator at all."""
        return self.routed or self.rewrites > 0

    @property
    def address(self) -> str:
        return f"{self.local_part}@{self.domain}"


def _fold_domain(domain: str) -> str:
    """Lower-case; drop one trailing dot but not a dot-dot (as resolve.c)."""
    domain = domain.lower()
    if domain.endswith(".") and not domain.endswith(".."):
        domain = domain[:-1]
    return domain


class AddressResolver:
    """Postfix trivial-rewrite's resolve: final local part, domain, class."""

    def __init__(self, settings: RewriteSettings) -> None:
        self.settings = settings
        self._local = frozenset(d.lower() for d in settings.local_domains)
        self._relay = tuple(d.lower() for d in settings.relay_domains)
        self._origin = (settings.myorigin or settings.local_domains[0]).lower()

    def is_local_domain(self, domain: str) -> bool:
        """Whether *domain* (as written) is one of ours."""
        return _fold_domain(domain) in self._local

    def _is_relay_domain(self, domain: str) -> bool:
        return any(domain == d or domain.endswith("." + d) for d in self._relay)

    def resolve(self, address: EnvelopeAddress) -> Resolution:
        """Resolve *address*; the null address resolves to the local origin."""
        settings = self.settings
        percent = settings.allow_percent_hack
        bang = settings.swap_bangpath
        local = address.local_part
        quoted = address.quoted
        domain = address.domain
        rewrites = 1 if address.route else 0
        remote = None
        saved = self._origin  # the last local domain stripped, as resolve.c keeps
        for _ in range(len(address.text) + 100):
            if domain is not None:
                folded = _fold_domain(domain)
                domain = None
                if folded and folded not in self._local:
                    remote = folded
                    break
                if folded:
                    saved = folded
            if not quoted:
                if "@" in local:
                    local, _, domain = local.rpartition("@")
                elif bang and "!" in local:
                    domain, _, local = local.partition("!")
                elif percent and "%" in local:
                    local, _, domain = local.rpartition("%")
                else:
                    break
                rewrites += 1
                continue
            if not settings.resolve_dequoted_address:
                break
            where = local.rfind("@")
            if where < 0 and percent:
                where = local.rfind("%")
                if where >= 0:
                    local = local[:where] + "@" + local[where + 1 :]
            if where < 0 and bang:
                where = local.rfind("!")
            if where < 0:
                break
            quoted = False  # opened: re-read as an unquoted local part
            rewrites += 1
        if not local:
            local = EMPTY_LOCAL_PART
        routed = "@" in local or "!" in local or "%" in local
        if remote is not None:
            return Resolution(
                local, remote, False, self._is_relay_domain(remote), routed, rewrites
            )
        return Resolution(local, saved, True, False, routed, rewrites)
