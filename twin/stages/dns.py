"""A modelled DNS: zone data, a caching resolver and lookup work.

Twins the resolver a 2004-2007 mail gateway asks (a local caching BIND or the
ISP's): SPF checks (``twin.stages.spf``) and outbound MX lookups call
``Dns.query``. Names live in zone data, given either as a mapping::

    {"example.com": {"A": ["192.0.2.1"], "MX": ["10 mx.example.com"],
                     "TXT": ["v=spf1 mx -all"], "ttl": 300},
     "slow.example.net": {"timeout": ["TXT"]}}     # or {"timeout": True}

or read from a zone file in a small BIND-like format (``parse_zone``)::

    $ORIGIN example.com.
    $TTL 3600
    @      IN A    192.0.2.1
           IN MX   10 mx
    mx 300 IN A    192.0.2.2
    @      IN TXT  "v=spf1 " "mx -all"   ; strings are concatenated
    slow      TIMEOUT TXT                ; a lookup that never answers

Record types: A, AAAA, MX, TXT, PTR. Answers are NOERROR with records, NOERROR
with no data (the name exists, the type does not; empty non-terminals exist too),
NXDOMAIN, or TIMEOUT (the zone marks the name, or one of its types, as timing
out). Answers are cached for their TTL against the simulated ``now``; negative
answers (NXDOMAIN, no data) for ``negative_ttl_s`` (RFC 2308); timeouts are not
cached.

Counts: a cache miss is one network round trip, the query and response bytes
and one ``dns.query`` CPU unit; a cache hit is one ``dns.cache_hit`` CPU unit.
A timeout costs ``attempts`` round trips and reports the resolver's wait in
``DnsAnswer.wait_s`` (simulated seconds the caller waits; never in Work).

Raises ValueError on bad settings, unknown record types, malformed addresses and
zone-file syntax errors (naming the line).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

from twin.stages.work import Work

CPU_UNITS: dict[str, str] = {
    "dns.query": "a DNS query sent to the network and its answer parsed",
    "dns.cache_hit": "a DNS question answered from the resolver cache",
}

RECORD_TYPES = ("A", "AAAA", "MX", "TXT", "PTR")

# wire sizes (RFC 1035 4.1): 12-byte header; a question is the encoded name plus
# type and class (4); a resource record adds type, class, TTL, rdlength (10).
_HEADER_BYTES = 12


class Rcode(Enum):
    NOERROR = "NOERROR"
    NXDOMAIN = "NXDOMAIN"
    TIMEOUT = "TIMEOUT"


@dataclass(frozen=True, slots=True)
class DnsSettings:
    """Resolver settings.

    ``timeout_s`` and ``attempts``: glibc resolv.conf defaults (RES_TIMEOUT 5 s,
    RES_DFLRETRY 2). ``negative_ttl_s``: the SOA minimum used for negative caching
    (RFC 2308; 3600 s is the common zone default, an assumption).
    ``max_ttl_s``: BIND's max-cache-ttl default (one week). ``default_ttl_s``:
    the TTL of records whose zone names none (assumption: 3600 s, a common $TTL).
    """

    cache_enabled: bool = True
    negative_ttl_s: int = 3600
    max_ttl_s: int = 604_800
    default_ttl_s: int = 3600
    timeout_s: float = 5.0
    attempts: int = 2

    def __post_init__(self) -> None:
        for name in ("negative_ttl_s", "max_ttl_s", "default_ttl_s"):
            value = getattr(self, name)
            if not 0 <= value <= 2_147_483_647:
                raise ValueError(f"{name}={value} must be in 0..2147483647 s")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s={self.timeout_s} must be > 0 s")
        if not 1 <= self.attempts <= 10:
            raise ValueError(f"attempts={self.attempts} must be in 1..10")


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    """One answer: rcode, record values, TTL left, work, and the wait on timeout.

    Record values: A/AAAA a normalised address string, MX a ``(preference,
    host)`` tuple, TXT the concatenated character-strings, PTR a host name.
    """

    rcode: Rcode
    records: tuple
    ttl: int
    work: Work
    from_cache: bool = False
    wait_s: float = 0.0

    @property
    def is_void(self) -> bool:
        """NXDOMAIN or an empty NOERROR answer (RFC 7208 4.6.4 void lookup)."""
        return self.rcode is not Rcode.TIMEOUT and not self.records


def normalise_name(name: str) -> str:
    return name.strip().rstrip(".").lower()


def reverse_name(ip: str) -> str:
    """The in-addr.arpa / ip6.arpa name of an address."""
    return ipaddress.ip_address(ip).reverse_pointer


class ZoneData:
    """Records by (name, type), the set of existing names, and timeout marks."""

    def __init__(self, default_ttl_s: int = 3600) -> None:
        self.default_ttl_s = default_ttl_s
        self.records: dict[tuple[str, str], list[tuple[object, int]]] = {}
        self.names: set[str] = set()
        self.timeouts: set[tuple[str, str]] = set()  # type "*" marks every type

    def add(self, name: str, rtype: str, value: object, ttl_s: int | None) -> None:
        """Add one record; ``value`` in the mapping form (see module docstring)."""
        rtype = rtype.upper()
        if rtype not in RECORD_TYPES:
            raise ValueError(
                f"record type {rtype!r} of {name!r} is not one of "
                f"{', '.join(RECORD_TYPES)}"
            )
        name = normalise_name(name)
        ttl = self.default_ttl_s if ttl_s is None else int(ttl_s)
        self.records.setdefault((name, rtype), []).append(
            (_parse_value(name, rtype, value), ttl)
        )
        self._add_name(name)

    def mark_timeout(self, name: str, rtypes: Iterable[str] = ("*",)) -> None:
        name = normalise_name(name)
        for rtype in rtypes:
            rtype = rtype.upper()
            if rtype != "*" and rtype not in RECORD_TYPES:
                raise ValueError(
                    f"timeout type {rtype!r} of {name!r} is not one of "
                    f"*, {', '.join(RECORD_TYPES)}"
                )
            self.timeouts.add((name, rtype))
        self._add_name(name)

    def _add_name(self, name: str) -> None:
        # the name and its ancestors exist (ancestors as empty non-terminals)
        labels = name.split(".")
        for i in range(len(labels)):
            self.names.add(".".join(labels[i:]))

    @classmethod
    def from_mapping(
        cls, zones: Mapping[str, Mapping[str, object]], default_ttl_s: int = 3600
    ) -> ZoneData:
        data = cls(default_ttl_s)
        for name, entry in zones.items():
            ttl = entry.get("ttl")
            for key, values in entry.items():
                if key == "ttl":
                    continue
                if key == "timeout":
                    if values is True:
                        data.mark_timeout(name)
                    elif values:
                        data.mark_timeout(name, values)
                    continue
                if isinstance(values, str | tuple):
                    values = [values]
                for value in values:
                    data.add(name, key, value, ttl)
        return data


def _parse_value(name: str, rtype: str, value: object) -> object:
    if rtype in ("A", "AAAA"):
        try:
            addr = ipaddress.ip_address(str(value).strip())
        except ValueError:
            raise ValueError(
                f"{rtype} record of {name!r}: {value!r} is not an address"
            ) from None
        if (addr.version == 4) != (rtype == "A"):
            raise ValueError(
                f"{rtype} record of {name!r}: {value!r} is IPv{addr.version}"
            )
        return str(addr)
    if rtype == "MX":
        if isinstance(value, str):
            parts = value.split()
            if len(parts) != 2:
                raise ValueError(
                    f"MX record of {name!r}: {value!r} is not 'preference host'"
                )
            value = (parts[0], parts[1])
        pref, host = value  # type: ignore[misc]
        try:
            pref = int(pref)
        except ValueError:
            raise ValueError(
                f"MX preference {pref!r} of {name!r} is not an integer"
            ) from None
        if not 0 <= pref <= 65535:
            raise ValueError(f"MX preference {pref} of {name!r} must be in 0..65535")
        return (pref, normalise_name(str(host)))
    if rtype == "TXT":
        if isinstance(value, tuple | list):
            return "".join(value)
        return str(value)
    return normalise_name(str(value))  # PTR


def parse_zone(
    text: str, origin: str = ".", default_ttl_s: int = 3600, source: str = "<zone>"
) -> ZoneData:
    """Parse a small BIND-like zone file (see module docstring)."""
    data = ZoneData(default_ttl_s)
    origin = normalise_name(origin)
    ttl_default = default_ttl_s
    owner: str | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        where = f"{source}:{lineno}"
        tokens = _tokens(raw, where)
        if not tokens:
            continue
        if tokens[0].upper() == "$ORIGIN":
            if len(tokens) != 2:
                raise ValueError(f"{where}: $ORIGIN takes one name")
            origin = normalise_name(tokens[1])
            continue
        if tokens[0].upper() == "$TTL":
            if len(tokens) != 2 or not tokens[1].isdigit():
                raise ValueError(f"{where}: $TTL takes one number of seconds")
            ttl_default = int(tokens[1])
            continue
        if raw[:1] in (" ", "\t"):
            if owner is None:
                raise ValueError(f"{where}: a record without an owner name")
        else:
            owner = _absolute(tokens.pop(0), origin)
        ttl: int = ttl_default
        while tokens and (tokens[0].isdigit() or tokens[0].upper() == "IN"):
            token = tokens.pop(0)
            if token.isdigit():
                ttl = int(token)
        if not tokens:
            raise ValueError(f"{where}: a record type is missing")
        rtype = tokens.pop(0).upper()
        if rtype == "TIMEOUT":
            data.mark_timeout(owner, tokens or ["*"])
            continue
        if rtype not in RECORD_TYPES:
            raise ValueError(
                f"{where}: record type {rtype!r} is not one of "
                f"{', '.join(RECORD_TYPES)}, TIMEOUT"
            )
        if not tokens:
            raise ValueError(f"{where}: {rtype} record has no data")
        value: object
        if rtype == "TXT":
            value = tuple(tokens)
        elif rtype == "MX":
            if len(tokens) != 2:
                raise ValueError(f"{where}: MX takes a preference and a host")
            value = (tokens[0], _absolute(tokens[1], origin))
        elif rtype == "PTR":
            value = _absolute(tokens[0], origin)
        else:
            value = tokens[0]
        try:
            data.add(owner, rtype, value, ttl)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
    return data


def read_zone_file(path: str, origin: str = ".", default_ttl_s: int = 3600) -> ZoneData:
    with open(path, encoding="utf-8") as handle:
        return parse_zone(handle.read(), origin, default_ttl_s, source=str(path))


def _absolute(name: str, origin: str) -> str:
    if name == "@":
        return origin
    if name.endswith("."):
        return normalise_name(name)
    return f"{name}.{origin}".lower() if origin else name.lower()


def _tokens(line: str, where: str) -> list[str]:
    """Split a zone line: whitespace separates, "..." quotes, ';' comments."""
    tokens: list[str] = []
    i, n = 0, len(line)
    while i < n:
        ch = line[i]
        if ch in " \t":
            i += 1
        elif ch == ";":
            break
        elif ch == '"':
            i += 1
            out = []
            while i < n and line[i] != '"':
                if line[i] == "\\" and i + 1 < n:
                    i += 1
                out.append(line[i])
                i += 1
            if i >= n:
                raise ValueError(f"{where}: unterminated quoted string")
            tokens.append("".join(out))
            i += 1
        else:
            j = i
            while j < n and line[j] not in " \t;":
                j += 1
            tokens.append(line[i:j])
            i = j
    return tokens


def _wire_name_bytes(name: str) -> int:
    return len(name) + 2 if name else 1


def _rdata_bytes(rtype: str, value: object) -> int:
    if rtype == "A":
        return 4
    if rtype == "AAAA":
        return 16
    if rtype == "MX":
        return 2 + _wire_name_bytes(value[1])  # type: ignore[index]
    if rtype == "TXT":
        text = str(value)
        return len(text) + max(1, math.ceil(len(text) / 255))
    return _wire_name_bytes(str(value))


class Dns:
    """A caching resolver over modelled zones; ``query`` is the one verb."""

    def __init__(
        self,
        zones: ZoneData | Mapping[str, Mapping[str, object]],
        settings: DnsSettings | None = None,
    ) -> None:
        self.settings = settings or DnsSettings()
        if isinstance(zones, ZoneData):
            self.zones = zones
        else:
            self.zones = ZoneData.from_mapping(zones, self.settings.default_ttl_s)
        # (name, type) -> (expires at, rcode, records, ttl)
        self._cache: dict[tuple[str, str], tuple[float, Rcode, tuple, int]] = {}
        self._hit_work = Work(cpu={"dns.cache_hit": 1})

    def query(self, name: str, rtype: str, now: float) -> DnsAnswer:
        """Answer ``rtype`` for ``name`` at simulated time ``now``."""
        rtype = rtype.upper()
        if rtype not in RECORD_TYPES:
            raise ValueError(
                f"query type {rtype!r} is not one of {', '.join(RECORD_TYPES)}"
            )
        name = normalise_name(name)
        key = (name, rtype)
        settings = self.settings
        if settings.cache_enabled:
            cached = self._cache.get(key)
            if cached is not None:
                expires, rcode, records, _ = cached
                if now < expires:
                    return DnsAnswer(
                        rcode,
                        records,
                        int(expires - now),
                        self._hit_work,
                        from_cache=True,
                    )
                del self._cache[key]
        zones = self.zones
        question = _HEADER_BYTES + _wire_name_bytes(name) + 4
        if (name, rtype) in zones.timeouts or (name, "*") in zones.timeouts:
            attempts = settings.attempts
            work = Work(
                cpu={"dns.query": attempts},
                net_bytes=question * attempts,
                net_round_trips=attempts,
            )
            return DnsAnswer(
                Rcode.TIMEOUT, (), 0, work, wait_s=settings.timeout_s * attempts
            )
        entries = zones.records.get(key)
        if entries:
            records = tuple(value for value, _ in entries)
            ttl = min(min(t for _, t in entries), settings.max_ttl_s)
            rcode = Rcode.NOERROR
            answer_bytes = sum(
                _wire_name_bytes(name) + 10 + _rdata_bytes(rtype, v) for v in records
            )
        else:
            records = ()
            ttl = min(settings.negative_ttl_s, settings.max_ttl_s)
            rcode = Rcode.NOERROR if name in zones.names else Rcode.NXDOMAIN
            answer_bytes = 0
        if settings.cache_enabled and ttl > 0:
            self._cache[key] = (now + ttl, rcode, records, ttl)
        work = Work(
            cpu={"dns.query": 1},
            net_bytes=2 * question + answer_bytes,
            net_round_trips=1,
        )
        return DnsAnswer(rcode, records, ttl, work)

    def mx_hosts(self, domain: str, now: float) -> tuple[tuple[str, ...], Rcode, Work]:
        """Mail exchangers of ``domain`` by preference (RFC 5321 5.1).

        With no MX records the domain itself is the implicit MX when it exists.
        """
        answer = self.query(domain, "MX", now)
        if answer.records:
            hosts = tuple(host for _, host in sorted(answer.records))
            return hosts, answer.rcode, answer.work
        if answer.rcode is Rcode.NOERROR:
            return (normalise_name(domain),), answer.rcode, answer.work
        return (), answer.rcode, answer.work

    def flush(self) -> None:
        """Empty the cache (a resolver restart)."""
        self._cache.clear()

    @property
    def cached_entries(self) -> int:
        return len(self._cache)
