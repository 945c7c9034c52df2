"""SPF: check_host() of RFC 7208 over the modelled DNS.

Twins the SPF check a 2004-2007 gateway ran on MAIL FROM (and HELO): given the
client IP, the domain, the sender and the HELO name, it fetches the domain's
``v=spf1`` TXT record through ``twin.stages.dns.Dns`` and evaluates it term by
term (RFC 7208 4 and 5): mechanisms all, include, a, mx, ptr, ip4, ip6, exists
with qualifiers ``+ - ~ ?`` and dual CIDR lengths; modifiers redirect and exp
(unknown modifiers are ignored); macros (RFC 7208 7) with the letters s l o d i
p v h (and c r t in explanations), digit and reverse transformers, delimiters
and URL escaping by upper-case letters.

Decides one of none, neutral, pass, fail, softfail, temperror, permerror
(RFC 7208 2.6). Limits (RFC 7208 4.6.4): more than ``dns_mechanism_limit`` (10)
terms that query DNS (include, a, mx, ptr, exists, redirect) -> permerror; more
than ``void_lookup_limit`` (2) lookups answering NXDOMAIN or no data ->
permerror; an mx with more than 10 MX names -> permerror; ptr looks at 10 names
at most. A syntax error anywhere in a record, more than one SPF record, or a
redirect/include to a domain without a record -> permerror. A DNS timeout ->
temperror. No SPF record or a malformed domain -> none. What to do with the
result is the caller's policy, not this module's.

Counts: ``spf.check`` once per check, ``spf.record`` per record parsed,
``spf.term`` per term evaluated, ``spf.macro`` per macro expanded, plus the
work of every DNS query (network round trips, or CPU only on a cache hit).
Time spent waiting on DNS timeouts is ``SpfResult.wait_s`` (simulated seconds).

Reads the scenario keys of ``SpfSettings``; raises ValueError on bad settings
or a malformed client IP.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import Enum
from urllib.parse import quote

from twin.stages.dns import Dns, DnsAnswer, Rcode
from twin.stages.work import Work

CPU_UNITS: dict[str, str] = {
    "spf.check": "one check_host() call: set-up, result and header",
    "spf.record": "one SPF record selected from TXT answers and parsed",
    "spf.term": "one SPF mechanism or modifier evaluated",
    "spf.macro": "one macro expanded in a domain-spec or explanation",
}


class SpfCode(Enum):
    NONE = "none"
    NEUTRAL = "neutral"
    PASS = "pass"
    FAIL = "fail"
    SOFTFAIL = "softfail"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


_QUALIFIERS = {
    "+": SpfCode.PASS,
    "-": SpfCode.FAIL,
    "~": SpfCode.SOFTFAIL,
    "?": SpfCode.NEUTRAL,
}


@dataclass(frozen=True, slots=True)
class SpfSettings:
    """Limits of RFC 7208 4.6.4 and the receiver's own name.

    ``dns_mechanism_limit`` 10, ``void_lookup_limit`` 2, ``mx_name_limit`` 10 and
    ``ptr_name_limit`` 10 are the RFC 7208 4.6.4 values. ``receiver`` is this
    host's name for %{r} and the Received-SPF header (assumption: the twin's
    gateway name). ``explanations`` turns the exp= lookup on fail on or off.
    """

    dns_mechanism_limit: int = 10
    void_lookup_limit: int = 2
    mx_name_limit: int = 10
    ptr_name_limit: int = 10
    receiver: str = "mail.ece.example.edu"
    explanations: bool = True

    def __post_init__(self) -> None:
        for name in (
            "dns_mechanism_limit",
            "void_lookup_limit",
            "mx_name_limit",
            "ptr_name_limit",
        ):
            value = getattr(self, name)
            if not 0 <= value <= 1000:
                raise ValueError(f"{name}={value} must be in 0..1000")


@dataclass(frozen=True, slots=True)
class SpfResult:
    """The result code, a readable reason and what the check did."""

    code: SpfCode
    reason: str
    ip: str
    domain: str
    sender: str
    helo: str
    identity: str
    mechanism: str | None
    explanation: str | None
    dns_lookups: int
    void_lookups: int
    work: Work
    wait_s: float = 0.0


class _PermError(Exception):
    pass


class _TempError(Exception):
    pass


# --- record syntax ---------------------------------------------------------------

_MODIFIER = re.compile(r"([A-Za-z][A-Za-z0-9_.\-]*)=(.*)\Z", re.S)
_MECHANISM = re.compile(r"([+\-~?]?)([A-Za-z][A-Za-z0-9_.\-]*)(.*)\Z", re.S)
_MACRO = re.compile(r"%(?:\{([A-Za-z])([0-9]*)(r?)([.\-+,/_=]*)\}|([%_-]))|[^%]+", re.I)
_DUAL_CIDR = re.compile(r"(?:/(0|[1-9][0-9]?))?(?://(0|[1-9][0-9]{0,2}))?\Z")
_CIDR = re.compile(r"/(0|[1-9][0-9]{0,2})\Z")
_TOPLABEL = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\Z")
_MACRO_LETTERS = frozenset("slodipvh")
_EXP_LETTERS = frozenset("slodipvhcrt")
_DNS_MECHANISMS = frozenset(("include", "a", "mx", "ptr", "exists"))


@dataclass(frozen=True, slots=True)
class _Macro:
    """A parsed macro-string: literals (str) and macros (letter, digits, r, delims)."""

    text: str
    parts: tuple

    @property
    def has_macros(self) -> bool:
        return any(not isinstance(p, str) for p in self.parts)


@dataclass(frozen=True, slots=True)
class _Term:
    text: str
    kind: str  # mechanism name, or "redirect" / "exp" / "modifier"
    qualifier: SpfCode
    domain: _Macro | None = None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    cidr4: int = 32
    cidr6: int = 128


@dataclass(frozen=True, slots=True)
class _Record:
    mechanisms: tuple[_Term, ...]
    redirect: _Term | None
    exp: _Term | None
    has_all: bool


def _parse_macro_string(text: str, letters: frozenset[str]) -> _Macro:
    parts: list = []
    pos = 0
    for match in _MACRO.finditer(text):
        if match.start() != pos:
            break
        pos = match.end()
        literal = match.group(0)
        if not literal.startswith("%"):
            low = 0x20 if letters is _EXP_LETTERS else 0x21  # explanation: SP too
            if any(not low <= ord(ch) <= 0x7E for ch in literal):
                raise _PermError(f"invalid character in macro-string {text!r}")
            parts.append(literal)
        elif match.group(5):
            parts.append({"%": "%", "_": " ", "-": "%20"}[match.group(5)])
        else:
            letter, digits, reverse, delims = match.group(1, 2, 3, 4)
            if letter.lower() not in letters:
                raise _PermError(f"unknown macro letter {letter!r} in {text!r}")
            if digits and int(digits) == 0:
                raise _PermError(f"macro digit transformer 0 in {text!r}")
            parts.append(
                (letter, int(digits) if digits else 0, bool(reverse), delims or ".")
            )
    if pos != len(text):
        raise _PermError(f"invalid macro-string {text!r}")
    return _Macro(text, tuple(parts))


def _parse_domain_spec(text: str) -> _Macro:
    if not text:
        raise _PermError("empty domain-spec")
    macro = _parse_macro_string(text, _MACRO_LETTERS)
    last = macro.parts[-1]
    if isinstance(last, str) and last not in ("%", " ", "%20"):
        # domain-end: "." toplabel ["."] after a literal (RFC 7208 7.1)
        tail = last[:-1] if last.endswith(".") else last
        if "." not in tail and len(macro.parts) == 1:
            raise _PermError(f"domain-spec {text!r} has no top label")
        toplabel = tail.rsplit(".", 1)[-1]
        if not _TOPLABEL.match(toplabel):
            raise _PermError(f"invalid top label {toplabel!r} in {text!r}")
    elif isinstance(last, str):
        raise _PermError(f"domain-spec {text!r} does not end in a domain")
    return macro


def _parse_term(text: str) -> _Term:
    modifier = _MODIFIER.match(text)
    if modifier:
        name, value = modifier.group(1).lower(), modifier.group(2)
        if name in ("redirect", "exp"):
            return _Term(text, name, SpfCode.NEUTRAL, _parse_domain_spec(value))
        _parse_macro_string(value, _MACRO_LETTERS)  # syntax only, then ignored
        return _Term(text, "modifier", SpfCode.NEUTRAL)
    mechanism = _MECHANISM.match(text)
    if not mechanism:
        raise _PermError(f"invalid term {text!r}")
    qualifier = _QUALIFIERS[mechanism.group(1) or "+"]
    name, rest = mechanism.group(2).lower(), mechanism.group(3)
    if name == "all":
        if rest:
            raise _PermError(f"'all' takes no argument in {text!r}")
        return _Term(text, name, qualifier)
    if name in ("include", "exists"):
        if not rest.startswith(":"):
            raise _PermError(f"{name!r} needs a domain in {text!r}")
        return _Term(text, name, qualifier, _parse_domain_spec(rest[1:]))
    if name in ("a", "mx"):
        cidr = _DUAL_CIDR.search(rest)
        body = rest[: cidr.start()]
        cidr4 = int(cidr.group(1)) if cidr.group(1) else 32
        cidr6 = int(cidr.group(2)) if cidr.group(2) else 128
        if cidr4 > 32 or cidr6 > 128:
            raise _PermError(f"CIDR length out of range in {text!r}")
        domain = None
        if body:
            if not body.startswith(":"):
                raise _PermError(f"invalid {name!r} mechanism {text!r}")
            domain = _parse_domain_spec(body[1:])
        return _Term(text, name, qualifier, domain, cidr4=cidr4, cidr6=cidr6)
    if name == "ptr":
        domain = None
        if rest:
            if not rest.startswith(":"):
                raise _PermError(f"invalid 'ptr' mechanism {text!r}")
            domain = _parse_domain_spec(rest[1:])
        return _Term(text, name, qualifier, domain)
    if name in ("ip4", "ip6"):
        if not rest.startswith(":"):
            raise _PermError(f"{name!r} needs an address in {text!r}")
        address, length = rest[1:], None
        cidr = _CIDR.search(address)
        if cidr:
            address, length = address[: cidr.start()], int(cidr.group(1))
        try:
            if name == "ip4":
                host: ipaddress.IPv4Address | ipaddress.IPv6Address
                host = ipaddress.IPv4Address(address)
                network = ipaddress.IPv4Network(
                    (host, 32 if length is None else length), strict=False
                )
            else:
                host = ipaddress.IPv6Address(address)
                network = ipaddress.IPv6Network(
                    (host, 128 if length is None else length), strict=False
                )
        except ValueError:
            raise _PermError(f"invalid network in {text!r}") from None
        return _Term(text, name, qualifier, network=network)
    raise _PermError(f"unknown mechanism {name!r} in {text!r}")


def _parse_record(text: str) -> _Record:
    mechanisms: list[_Term] = []
    redirect = exp = None
    for token in text.split(" ")[1:]:
        if not token:
            continue
        term = _parse_term(token)
        if term.kind == "redirect":
            if redirect is not None:
                raise _PermError("more than one redirect modifier")
            redirect = term
        elif term.kind == "exp":
            if exp is not None:
                raise _PermError("more than one exp modifier")
            exp = term
        elif term.kind != "modifier":
            mechanisms.append(term)
    return _Record(
        tuple(mechanisms), redirect, exp, any(t.kind == "all" for t in mechanisms)
    )


def _valid_domain(domain: str) -> bool:
    """A multi-label name with labels of 1..63 octets (RFC 7208 4.3)."""
    name = domain[:-1] if domain.endswith(".") else domain
    labels = name.split(".")
    if len(labels) < 2 or len(name) > 253:
        return False
    return all(0 < len(label) <= 63 for label in labels)


# --- evaluation ------------------------------------------------------------------


class _Evaluation:
    """The mutable state of one check_host(): counters, work, sender parts."""

    def __init__(
        self,
        checker: SpfChecker,
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
        sender: str,
        helo: str,
        now: float,
    ) -> None:
        self.checker = checker
        self.settings = checker.settings
        self.ip = ip
        self.sender = sender
        local, _, domain = sender.rpartition("@")
        self.local = local or "postmaster"
        self.sender_domain = domain
        self.helo = helo
        self.now = now
        self.lookups = 0
        self.voids = 0
        self.works: list[Work] = []
        self.cpu = {"spf.check": 1, "spf.record": 0, "spf.term": 0, "spf.macro": 0}
        self.wait_s = 0.0
        self.mechanism: str | None = None

    # DNS
    def query(self, name: str, rtype: str) -> DnsAnswer:
        answer = self.checker.dns.query(name, rtype, self.now)
        self.works.append(answer.work)
        self.wait_s += answer.wait_s
        return answer

    def addresses(self, name: str) -> DnsAnswer:
        return self.query(name, "A" if self.ip.version == 4 else "AAAA")

    def count_lookup(self, term: _Term) -> None:
        self.lookups += 1
        if self.lookups > self.settings.dns_mechanism_limit:
            raise _PermError(
                f"more than {self.settings.dns_mechanism_limit} DNS "
                f"lookups at {term.text!r}"
            )

    def count_void(self, answer: DnsAnswer, term: _Term) -> None:
        if answer.is_void:
            self.voids += 1
            if self.voids > self.settings.void_lookup_limit:
                raise _PermError(
                    f"more than {self.settings.void_lookup_limit} void "
                    f"lookups at {term.text!r}"
                )

    # macros
    def expand(self, macro: _Macro, domain: str, explanation: bool = False) -> str:
        out: list[str] = []
        for part in macro.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            letter, digits, reverse, delims = part
            self.cpu["spf.macro"] += 1
            value = self.macro_value(letter.lower(), domain)
            if digits or reverse or delims != ".":
                pieces = re.split("[" + re.escape(delims) + "]", value)
                if reverse:
                    pieces.reverse()
                if digits:
                    pieces = pieces[-digits:]
                value = ".".join(pieces)
            if letter.isupper():
                value = quote(value, safe="")
            out.append(value)
        result = "".join(out)
        if not explanation:
            while len(result) > 253 and "." in result:  # RFC 7208 7.3
                result = result.split(".", 1)[1]
        return result

    def macro_value(self, letter: str, domain: str) -> str:
        if letter == "s":
            return self.sender
        if letter == "l":
            return self.local
        if letter == "o":
            return self.sender_domain
        if letter == "d":
            return domain
        if letter == "i":
            if self.ip.version == 4:
                return str(self.ip)
            return ".".join(self.ip.exploded.replace(":", ""))
        if letter == "v":
            return "in-addr" if self.ip.version == 4 else "ip6"
        if letter == "h":
            return self.helo
        if letter == "p":
            return self.validated_name(domain) or "unknown"
        if letter == "c":
            return str(self.ip)
        if letter == "r":
            return self.settings.receiver
        return str(int(self.now))  # "t"

    def validated_name(self, target: str) -> str | None:
        """A PTR name of the IP whose addresses include the IP (RFC 7208 5.5)."""
        answer = self.query(self.ip.reverse_pointer, "PTR")
        if answer.rcode is not Rcode.NOERROR:
            return None
        validated: list[str] = []
        for name in answer.records[: self.settings.ptr_name_limit]:
            forward = self.addresses(name)
            if forward.rcode is not Rcode.NOERROR:
                continue
            if any(ipaddress.ip_address(a) == self.ip for a in forward.records):
                validated.append(name)
        target = target.lower().rstrip(".")
        for name in validated:
            if name == target:
                return name
        for name in validated:
            if name.endswith("." + target):
                return name
        return validated[0] if validated else None


class SpfChecker:
    """check_host() over a ``Dns``; the verbs are ``check_host`` and ``check``."""

    def __init__(self, dns: Dns, settings: SpfSettings | None = None) -> None:
        self.dns = dns
        self.settings = settings or SpfSettings()
        self._records: dict[str, _Record | str] = {}

    def check(self, ip: str, sender: str, helo: str, now: float) -> SpfResult:
        """The MAIL FROM identity, or HELO for the null sender (RFC 7208 2.4)."""
        if sender and "@" in sender:
            return self.check_host(ip, sender.rpartition("@")[2], sender, helo, now)
        return self.check_host(
            ip, helo, f"postmaster@{helo}", helo, now, identity="helo"
        )

    def check_host(
        self,
        ip: str,
        domain: str,
        sender: str,
        helo: str,
        now: float,
        identity: str = "mailfrom",
    ) -> SpfResult:
        """check_host(ip, domain, sender) of RFC 7208 4, at simulated ``now``."""
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            raise ValueError(
                f"client ip {ip!r} is not an IPv4 or IPv6 address"
            ) from None
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if "@" not in sender:
            sender = f"postmaster@{sender}"
        elif sender.startswith("@"):
            sender = "postmaster" + sender
        run = _Evaluation(self, address, sender, helo, now)
        domain = domain.rstrip(".") if domain.endswith(".") else domain
        explanation = None
        try:
            if not _valid_domain(domain):
                code, reason = SpfCode.NONE, f"domain {domain!r} is malformed"
            else:
                code, explanation = self._check(run, domain, top=True)
                reason = _reason(code, sender, str(address), domain)
        except _TempError as err:
            code, reason = SpfCode.TEMPERROR, str(err)
        except _PermError as err:
            code, reason = SpfCode.PERMERROR, str(err)
        work = Work(cpu={k: v for k, v in run.cpu.items() if v})
        for step in run.works:
            work = work + step
        return SpfResult(
            code,
            reason,
            str(address),
            domain,
            sender,
            helo,
            identity,
            run.mechanism,
            explanation,
            run.lookups,
            run.voids,
            work,
            run.wait_s,
        )

    # one record ---------------------------------------------------------------
    def _record(self, run: _Evaluation, domain: str) -> _Record | None:
        answer = run.query(domain, "TXT")
        if answer.rcode is Rcode.TIMEOUT:
            raise _TempError(f"dns timeout looking up TXT {domain}")
        texts = [
            t
            for t in answer.records
            if t[:6].lower() == "v=spf1" and (len(t) == 6 or t[6] == " ")
        ]
        if not texts:
            return None
        if len(texts) > 1:
            raise _PermError(f"{domain} has {len(texts)} SPF records")
        run.cpu["spf.record"] += 1
        text = texts[0]
        record = self._records.get(text)
        if record is None:
            try:
                record = _parse_record(text)
            except _PermError as err:
                record = str(err)
            self._records[text] = record
        if isinstance(record, str):
            raise _PermError(f"{domain}: {record}")
        return record

    def _check(
        self, run: _Evaluation, domain: str, top: bool
    ) -> tuple[SpfCode, str | None]:
        record = self._record(run, domain)
        if record is None:
            return SpfCode.NONE, None
        for term in record.mechanisms:
            run.cpu["spf.term"] += 1
            if self._matches(run, term, domain):
                if top:
                    run.mechanism = term.text
                explanation = None
                if term.qualifier is SpfCode.FAIL and top and record.exp is not None:
                    explanation = self._explain(run, record.exp, domain)
                return term.qualifier, explanation
        if record.redirect is not None and not record.has_all:
            run.cpu["spf.term"] += 1
            run.count_lookup(record.redirect)
            target = run.expand(record.redirect.domain, domain)
            if not _valid_domain(target):
                raise _PermError(f"redirect to malformed domain {target!r}")
            code, explanation = self._check(run, target, top)
            if code is SpfCode.NONE:
                raise _PermError(f"redirect target {target} has no SPF record")
            return code, explanation
        return SpfCode.NEUTRAL, None

    def _matches(self, run: _Evaluation, term: _Term, domain: str) -> bool:
        kind = term.kind
        if kind == "all":
            return True
        if kind == "ip4" or kind == "ip6":
            return term.network.version == run.ip.version and run.ip in term.network
        run.count_lookup(term)
        target = run.expand(term.domain, domain) if term.domain else domain
        if kind == "include":
            code, _ = self._check(run, target, top=False)
            if code is SpfCode.PASS:
                return True
            if code is SpfCode.NONE:
                raise _PermError(f"include:{target} has no SPF record")
            return False
        if kind == "exists":
            answer = run.query(target, "A")
            _raise_timeout(answer, target)
            run.count_void(answer, term)
            return bool(answer.records)
        if kind == "a":
            answer = run.addresses(target)
            _raise_timeout(answer, target)
            run.count_void(answer, term)
            return self._in_cidr(run, answer.records, term)
        if kind == "mx":
            answer = run.query(target, "MX")
            _raise_timeout(answer, target)
            run.count_void(answer, term)
            if len(answer.records) > run.settings.mx_name_limit:
                raise _PermError(
                    f"{target} has more than {run.settings.mx_name_limit} MX records"
                )
            for _, host in sorted(answer.records):
                addresses = run.addresses(host)
                _raise_timeout(addresses, host)
                if self._in_cidr(run, addresses.records, term):
                    return True
            return False
        # ptr: DNS errors make it fail to match (RFC 7208 5.5)
        answer = run.query(run.ip.reverse_pointer, "PTR")
        run.count_void(answer, term)
        return _ptr_matches(run, answer, target)

    @staticmethod
    def _in_cidr(run: _Evaluation, records: tuple, term: _Term) -> bool:
        length = term.cidr4 if run.ip.version == 4 else term.cidr6
        for value in records:
            network = ipaddress.ip_network(f"{value}/{length}", strict=False)
            if run.ip in network:
                return True
        return False

    def _explain(self, run: _Evaluation, exp: _Term, domain: str) -> str | None:
        """The exp= text for a fail; any error means no explanation (RFC 7208 6.2)."""
        if not self.settings.explanations:
            return None
        run.cpu["spf.term"] += 1
        try:
            target = run.expand(exp.domain, domain)
            answer = run.query(target, "TXT")
            if answer.rcode is not Rcode.NOERROR or len(answer.records) != 1:
                return None
            return run.expand(
                _parse_macro_string(answer.records[0], _EXP_LETTERS),
                domain,
                explanation=True,
            )
        except (_PermError, _TempError):
            return None


def _ptr_matches(run: _Evaluation, answer: DnsAnswer, target: str) -> bool:
    if answer.rcode is not Rcode.NOERROR:
        return False
    target = target.lower().rstrip(".")
    for name in answer.records[: run.settings.ptr_name_limit]:
        if name != target and not name.endswith("." + target):
            continue
        forward = run.addresses(name)
        if forward.rcode is not Rcode.NOERROR:
            continue
        if any(ipaddress.ip_address(a) == run.ip for a in forward.records):
            return True
    return False


def _raise_timeout(answer: DnsAnswer, name: str) -> None:
    if answer.rcode is Rcode.TIMEOUT:
        raise _TempError(f"dns timeout looking up {name}")


def _reason(code: SpfCode, sender: str, ip: str, domain: str) -> str:
    if code is SpfCode.PASS:
        return f"domain of {sender} designates {ip} as permitted sender"
    if code is SpfCode.FAIL:
        return f"domain of {sender} does not designate {ip} as permitted sender"
    if code is SpfCode.SOFTFAIL:
        return (
            f"domain of transitioning {sender} does not designate {ip} as "
            "permitted sender"
        )
    if code is SpfCode.NEUTRAL:
        return f"{ip} is neither permitted nor denied by domain of {sender}"
    return f"domain {domain} does not designate permitted sender hosts"


def received_spf_header(
    result: SpfResult, receiver: str = "mail.ece.example.edu"
) -> str:
    """The Received-SPF header field of RFC 7208 9.1 for ``result``."""
    pairs = [
        f"client-ip={result.ip}",
        f'envelope-from="{result.sender}"',
        f"helo={result.helo}",
    ]
    if result.code is SpfCode.PERMERROR:
        pairs.append('problem="' + result.reason.replace('"', "'") + '"')
    if result.mechanism is not None:
        pairs.append(f'mechanism="{result.mechanism}"')
    pairs.append(f"receiver={receiver}")
    pairs.append(f"identity={result.identity}")
    comment = result.reason.replace("(", "[").replace(")", "]")
    return (
        f"Received-SPF: {result.code.value} ({receiver}: {comment}) "
        + "; ".join(pairs)
        + ";"
    )
