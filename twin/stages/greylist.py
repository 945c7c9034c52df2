"""Greylisting in front of the mail gateway: OpenBSD spamd or postgrey.

Twins the two greylisters of FACTS.md "Greylisting":

- ``spamd`` (OpenBSD spamd/spamlogd, grey.c of 2004-2007): a tuple
  (client IP, HELO, envelope-from, envelope-to; no HELO with ``use_helo``
  False, as in the 2004 code) seen first is tempfailed and stored with
  first=now, pass=expire=now+greyexp. Each retry counts (bcount+1) and, once
  first+passtime < now, sets pass=now -- that connection is still tempfailed.
  The periodic scan (every ``scan_interval_s``) deletes entries with
  expire<=now and turns tuples with pass<=now into a whitelist entry for the
  IP alone (expire=scan time+whiteexp, counts copied), deleting the tuple (the
  2005-2007 grey.c; later versions keep the tuple until it expires). A
  whitelisted IP passes straight to the real MTA; with ``spamlogd`` its entry
  is refreshed (pcount+1, expire=now+whiteexp) as spamlogd(8) does. Mail to a
  greytrap address traps the client IP until now+trapexp; a trapped IP is
  blacklisted -- 450/550 and stuttered for the whole dialogue -- from the
  next scan on, which hands the trapped IPs to spamd's blacklist (until then
  its mail is greylisted as before, as the Book of PF log shows); a trapped IP
  is never whitelisted by a passing tuple (the later grey.c rule). A new
  whitelist entry is in pf's table as soon as its scan ends.
- ``postgrey`` (schweikert/postgrey 1.2x): twinned in ``twin.stages.postgrey``,
  which says what it keeps, decides and counts.

This module holds what both share -- settings, decision, result, the static
whitelist and the lazy periodic runs (``Greylist``) -- and the spamd flavour
(``Spamd``); ``Greylist`` hands each check to the flavour of its settings.

Scans are lazy: ``check()`` first runs every scan due at ``start_s + k *
interval`` up to ``now`` and adds their work to its result, so the simulator
needs no periodic process. Scans cost time proportional to the changes, but
report the work of the real daemon, which walks every entry.

Decides: a ``GreylistDecision`` with the reply the client gets and how long
spamd's stuttering holds it (1 character a second: a greylisted client for
the first ``stutter_s`` seconds, a blacklisted one for every character of the
dialogue; see ``blacklist_stutter_chars``).

Counts (``CPU_UNITS``): database lookups and updates, static whitelist
probes, entries examined by scans, pf table reloads and their entries,
characters written one at a time, spamd SMTP sessions, postgrey policy
requests. Storage: each database update is a write, no fsync -- a 4 KiB hash
page of /var/db/spamd (BSD db(3) ``sync`` writes dirty pages without fsync),
or a 128-byte postgrey Berkeley DB log record (DB_TXN_NOSYNC). Lookups hit the
page cache and count no reads.

Scenario keys (stage ``greylist``): flavour, passtime, greyexp, whiteexp,
trapexp, scan_interval, use_helo, stutter, blacklist_reply, spamlogd,
greytraps, whitelist, delay, max_age, retry_window, auto_whitelist_clients,
net_prefix, maintenance_interval. State is saved and restored as text with
``dump()``/``load()`` (spamdb(8) lines, or our postgrey dump; see
``twin.stages.spamdb``).

Raises ``ValueError`` for bad settings, unreadable state text, or a ``now``
earlier than the previous one.
"""

from __future__ import annotations

import heapq
import ipaddress
import math
import re
from dataclasses import dataclass
from enum import Enum
from itertools import count
from types import MappingProxyType
from typing import TYPE_CHECKING

from twin.stages import spamdb
from twin.stages.work import NO_WORK, Work

if TYPE_CHECKING:
    from twin.stages.postgrey import Postgrey

CPU_UNITS: dict[str, str] = {
    "greylist.lookup": "one key looked up in the greylist database or a table",
    "greylist.update": "one database record written or deleted",
    "greylist.whitelist_probe": "one static whitelist comparison (set or network)",
    "greylist.scan_entry": "one database entry examined by a scan or maintenance",
    "greylist.table_reload": "one reload of pf's <spamd-white> table by a scan",
    "greylist.table_entry": "one address written to pf's table or the trap list",
    "greylist.stutter_char": "one character written alone to a stuttered client",
    "greylist.session": "spamd's handling of one SMTP dialogue (no stutter)",
    "greylist.policy_request": "postgrey's handling of one policy request",
}

FLAVOURS = ("spamd", "postgrey")
SPAMD_DB_FILE = "var/db/spamd"
SPAMD_DB_PAGE_BYTES = 4096  # BSD db(3) hash bucket size: assumption
TEMPFAIL_TEXT = "Temporary failure, please try again later."  # FACTS.md
STUTTER_MAX_S = 90  # spamd -S maximum (FACTS.md)
_MEMO_MAX = 1 << 16  # whitelist answers kept before the memo is cleared

# spamd's side of a dialogue with one recipient, each line ending "\r\n"
# (spamd.c, 2007); the banner's host name is an assumed 20-character name and
# ctime() is 24 characters.
_BANNER = "220 mail.ece.example.edu ESMTP spamd IP-based SPAM blocker; " + "x" * 24
_DIALOGUE = (
    _BANNER,
    "250 Hello, spam sender. Pleased to be wasting your time.",
    "250 You are about to try to deliver spam. Your time will be spent, for nothing.",
    "250 This is hurting you more than it is hurting me.",
    '354 Enter spam, end with "." on a line by itself',
)
GREY_DIALOGUE_CHARS = sum(len(line) + 2 for line in _DIALOGUE) + len(
    "451 " + TEMPFAIL_TEXT + "\r\n"
)
_TRAP_TEXT = "Your address {ip} has mailed to spamtraps here"  # spamd-greytrap
_BLACK_FIXED_CHARS = sum(len(line) + 2 for line in _DIALOGUE) + len(
    "450 " + _TRAP_TEXT.format(ip="") + "\r\n"
)


def blacklist_stutter_chars(ip: str) -> int:
    """Characters spamd writes to a trapped client, one a second: its hold."""
    return _BLACK_FIXED_CHARS + len(ip)


_DOMAIN = re.compile(
    r"(?i)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}"
    r"[a-z0-9_])?)*\.?"
)
_DOTTED_DIGITS = re.compile(r"[\d./]+")


def _parse_whitelist(entries: tuple[str, ...]):
    """Split whitelist entries into IPs, networks by prefix and domains."""
    ips: set[str] = set()
    nets: dict[int, set[int]] = {}
    domains: set[str] = set()
    for entry in entries:
        if not isinstance(entry, str) or not entry:
            raise ValueError(
                f"whitelist entry {entry!r} must be an IPv4 address, a CIDR "
                "network or a domain"
            )
        if "/" in entry:
            try:
                net = ipaddress.IPv4Network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"whitelist entry {entry!r} is not a CIDR network (a.b.c.d/0..32)"
                ) from None
            nets.setdefault(net.prefixlen, set()).add(int(net.network_address))
        elif _DOTTED_DIGITS.fullmatch(entry):
            try:
                ips.add(str(ipaddress.IPv4Address(entry)))
            except ValueError:
                raise ValueError(
                    f"whitelist entry {entry!r} is not an IPv4 address "
                    "(four numbers 0..255)"
                ) from None
        elif _DOMAIN.fullmatch(entry):
            domains.add(entry.lower().rstrip("."))
        else:
            raise ValueError(
                f"whitelist entry {entry!r} must be an IPv4 address, a CIDR "
                "network or a domain"
            )
    by_len = tuple(
        (((1 << 32) - 1) ^ ((1 << (32 - plen)) - 1), frozenset(nets[plen]))
        for plen in sorted(nets, reverse=True)
    )
    return frozenset(ips), by_len, frozenset(domains)


def _ipv4_int(ip: str) -> int | None:
    parts = ip.split(".")
    if len(parts) != 4:
        return None
    try:
        a, b, c, d = (int(p) for p in parts)
    except ValueError:
        return None
    return (a << 24) | (b << 16) | (c << 8) | d


def _address(addr: str) -> str:
    """An envelope address as compared: no angle brackets, lower case."""
    return addr.strip("<>").lower()


def _check_range(name: str, value, low, high=math.inf, low_open=False) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < low
        or (low_open and value == low)
        or value > high
    ):
        left = "(" if low_open else "["
        right = "]" if high != math.inf else ")"
        raise ValueError(
            f"{name} must be a number in {left}{low}, {high}{right}, got {value!r}"
        )


@dataclass(frozen=True, slots=True)
class GreylistSettings:
    """Greylister settings; defaults are the daemons' own (FACTS.md)."""

    flavour: str = "spamd"
    # spamd (grey.h, spamd.8): -G 25:4:864, trapexp 24 h, scan every 60 s
    passtime_s: float = 25 * 60  # 30 min in the 2004 grey.h
    greyexp_s: float = 4 * 3600
    whiteexp_s: float = 864 * 3600
    trapexp_s: float = 24 * 3600
    scan_interval_s: float = 60
    use_helo: bool = True  # the 2004 code keyed ip/from/to only
    stutter_s: float = 10  # spamd -S: greylisted clients stuttered this long
    blacklist_reply: str = "450"  # spamd -4 (default) or -5
    spamlogd: bool = True  # spamlogd refreshes whitelist entries on traffic
    greytraps: tuple[str, ...] = ()
    whitelist: tuple[str, ...] = ()  # IPv4, CIDR or domain (HELO or sender)
    # postgrey: --delay 300, --max-age 35 days, --retry-window 2 days,
    # --auto-whitelist-clients 5, /24 client networks; key cleanup nightly
    delay_s: float = 300
    max_age_s: float = 35 * 86400
    retry_window_s: float = 2 * 86400
    auto_whitelist_clients: int = 5  # 0 turns the auto-whitelist off
    net_prefix: int = 24
    maintenance_interval_s: float = 86400

    def __post_init__(self) -> None:
        if self.flavour not in FLAVOURS:
            raise ValueError(
                f"flavour must be one of {', '.join(FLAVOURS)}, got {self.flavour!r}"
            )
        _check_range("greyexp_s", self.greyexp_s, 0, low_open=True)
        _check_range("passtime_s", self.passtime_s, 0)
        if self.passtime_s >= self.greyexp_s:
            raise ValueError(
                f"passtime_s ({self.passtime_s}) must be below greyexp_s "
                f"({self.greyexp_s}): tuples would expire before they can pass"
            )
        _check_range("whiteexp_s", self.whiteexp_s, 0, low_open=True)
        _check_range("trapexp_s", self.trapexp_s, 0, low_open=True)
        _check_range("scan_interval_s", self.scan_interval_s, 0, low_open=True)
        _check_range("stutter_s", self.stutter_s, 0, STUTTER_MAX_S)
        if self.blacklist_reply not in ("450", "550"):
            raise ValueError(
                f"blacklist_reply must be '450' or '550', got {self.blacklist_reply!r}"
            )
        for name in ("use_helo", "spamlogd"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(
                    f"{name} must be true or false, got {getattr(self, name)!r}"
                )
        for trap in self.greytraps:
            if not isinstance(trap, str) or "@" not in trap:
                raise ValueError(f"greytrap {trap!r} must be an address user@domain")
        _parse_whitelist(self.whitelist)
        _check_range("delay_s", self.delay_s, 0)
        _check_range("max_age_s", self.max_age_s, 0, low_open=True)
        _check_range("retry_window_s", self.retry_window_s, 0, low_open=True)
        _check_range(
            "maintenance_interval_s", self.maintenance_interval_s, 0, low_open=True
        )
        for name, low, high in (
            ("auto_whitelist_clients", 0, 10**6),
            ("net_prefix", 1, 32),
        ):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not (low <= value <= high)
            ):
                raise ValueError(
                    f"{name} must be an integer in [{low}, {high}], got {value!r}"
                )


class GreylistDecision(Enum):
    WHITELISTED = "whitelisted"  # static whitelist: never greylisted
    PASSED = "passed"  # client already passed greylisting: on to the MTA
    DEFERRED = "deferred"  # greylisted: temporary failure, retry later
    TRAPPED = "trapped"  # mail to a greytrap: the client is now blacklisted
    BLACKLISTED = "blacklisted"  # trapped client: refused and stuttered


@dataclass(frozen=True, slots=True)
class GreylistResult:
    """One greylisting decision; ``reply_code`` is "" when the MTA answers."""

    decision: GreylistDecision
    reply_code: str
    reply_text: str
    reason: str
    stutter_s: float
    work: Work


def _work(**units: int) -> Work:
    """CPU-only Work with dotted kinds, frozen for sharing between results."""
    cpu = {"greylist." + k: n for k, n in units.items() if n}
    return Work(cpu=MappingProxyType(cpu))


def _written(work: Work, file: str, record_bytes: int, records: int) -> Work:
    """``work`` plus ``records`` database records written to ``file`` (no fsync)."""
    if not records:
        return work
    return work + Work(writes=((file, record_bytes * records),))


def _result(decision, code, text, reason, stutter_s, work, scan_work) -> GreylistResult:
    """A result whose work includes the scans the check ran first."""
    if scan_work is not NO_WORK:
        work = scan_work + work
    return GreylistResult(decision, code, text, reason, stutter_s, work)


class Greylist:
    """A greylister's state and its decisions; ``start_s`` anchors the scans.

    Holds what both flavours share -- the static whitelist and the lazy
    periodic runs (spamd's scans, postgrey's cleanup) -- and hands the rest to
    the flavour: ``Spamd`` below, or ``twin.stages.postgrey.Postgrey``.
    """

    def __init__(self, settings: GreylistSettings, start_s: float = 0.0) -> None:
        self.settings = settings
        if settings.flavour == "spamd":
            self._flavour: Spamd | Postgrey = Spamd(settings)
            interval = settings.scan_interval_s
        else:
            # imported here, not at the top: postgrey imports this module
            from twin.stages.postgrey import Postgrey

            self._flavour = Postgrey(settings)
            interval = settings.maintenance_interval_s
        self._start_s = float(start_s)
        self._interval = float(interval)
        self._scan_index = 0  # scans 1, 2, ... run at start + k * interval
        self._last_now = -math.inf
        self._ips, self._nets, self._domains = _parse_whitelist(settings.whitelist)
        self._has_whitelist = bool(self._ips or self._nets or self._domains)
        # static whitelist answers (hit, probes), by client IP and by name
        self._ip_memo: dict[str, tuple[bool, int]] = {}
        self._name_memo: dict[str, tuple[bool, int]] = {}

    def __len__(self) -> int:
        """Entries in the database (spamd: tuples, IPs and trap addresses)."""
        return len(self._flavour)

    def check(
        self, ip: str, helo: str, sender: str, recipient: str, now: float
    ) -> GreylistResult:
        """Decide one delivery attempt (one recipient) at simulated time ``now``."""
        scan_work = self.scan(now)
        probes = 0
        if self._has_whitelist:
            hit, probes = self._whitelisted(ip, helo, sender)
            if hit:
                return _result(
                    GreylistDecision.WHITELISTED,
                    "",
                    "",
                    "client on the static whitelist: not greylisted",
                    0.0,
                    self._flavour.whitelisted_work(probes),
                    scan_work,
                )
        return self._flavour.decide(ip, helo, sender, recipient, now, probes, scan_work)

    def scan(self, now: float) -> Work:
        """Run every scan due up to ``now`` (check() does this by itself)."""
        if now < self._last_now:
            raise ValueError(
                f"now ({now} s) is before the previous call ({self._last_now} s)"
            )
        self._last_now = now
        due = math.floor((now - self._start_s) / self._interval)
        if due <= self._scan_index:
            return NO_WORK
        work = self._flavour.run_scans(
            self._scan_index + 1, due, self._start_s, self._interval, now
        )
        self._scan_index = due
        return work

    def dump(self) -> str:
        """The state as text: spamdb(8) lines, or our postgrey dump."""
        return self._flavour.dump()

    def load(self, text: str) -> None:
        """Replace the state with ``dump()`` text (settings' greytraps stay)."""
        self._flavour.load(text)

    # ------------------------------------------------------- static whitelist
    def _whitelisted(self, ip: str, helo: str, sender: str) -> tuple[bool, int]:
        """Static whitelist match and the probes it took (answers memoised)."""
        memo = self._ip_memo
        if len(memo) > _MEMO_MAX:
            memo.clear()
        hit_probes = memo.get(ip)
        if hit_probes is None:
            hit_probes = memo[ip] = self._address_whitelisted(ip)
        if hit_probes[0] or not self._domains:
            return hit_probes
        probes = hit_probes[1]
        memo = self._name_memo
        if len(memo) > _MEMO_MAX:
            memo.clear()
        for name in (helo, sender.strip("<>").rpartition("@")[2]):
            found = memo.get(name)
            if found is None:
                found = memo[name] = self._domain_whitelisted(name)
            probes += found[1]
            if found[0]:
                return True, probes
        return False, probes

    def _address_whitelisted(self, ip: str) -> tuple[bool, int]:
        probes = 0
        if self._ips:
            probes += 1
            if ip in self._ips:
                return True, probes
        if self._nets:
            value = _ipv4_int(ip)
            if value is not None:
                for mask, nets in self._nets:
                    probes += 1
                    if value & mask in nets:
                        return True, probes
        return False, probes

    def _domain_whitelisted(self, name: str) -> tuple[bool, int]:
        """The name or a parent domain on the whitelist: one probe a suffix."""
        probes = 0
        name = name.lower().rstrip(".")
        while name:
            probes += 1
            if name in self._domains:
                return True, probes
            dot = name.find(".")
            if dot < 0:
                break
            name = name[dot + 1 :]
        return False, probes


# ---------------------------------------------------------------------- spamd
class _Entry:
    """One spamd record (gdata): pcount -1 marks a trapped IP."""

    __slots__ = ("first", "pass_", "expire", "bcount", "pcount", "sched", "listed")

    def __init__(self, first, pass_, expire, bcount, pcount):
        self.first = first
        self.pass_ = pass_
        self.expire = expire
        self.bcount = bcount
        self.pcount = pcount
        self.sched = math.inf  # time of this entry's live item in the scan heap
        self.listed = True  # a trapped IP is blacklisted once a scan saw it


class Spamd:
    """spamd's database (tuples, IP entries, trap addresses) and its scans."""

    def __init__(self, settings: GreylistSettings) -> None:
        self.settings = settings
        self._works: dict[tuple[str, int, int], Work] = {}
        # tuples, IP entries (white or trapped), trap addresses
        self._grey: dict[tuple[str, ...], _Entry] = {}
        self._ipdb: dict[str, _Entry] = {}
        self._traps: set[str] = {_address(t) for t in settings.greytraps}
        self._heap: list[tuple[float, int, bool, object]] = []
        self._unlisted: list[str] = []  # IPs trapped since the last scan
        self._seq = count()
        chars = min(math.ceil(settings.stutter_s), GREY_DIALOGUE_CHARS)
        self._grey_stutter_chars = chars
        self._grey_stutter_s = float(chars)

    def __len__(self) -> int:
        """Entries in the database: tuples, IPs and trap addresses."""
        return len(self._grey) + len(self._ipdb) + len(self._traps)

    def whitelisted_work(self, probes: int) -> Work:
        """Work of a client the static whitelist passed."""
        return self._cached_work("whitelisted", probes)

    def _cached_work(self, kind: str, probes: int, chars: int = 0) -> Work:
        work = self._works.get((kind, probes, chars))
        if work is not None:
            return work
        s = self.settings
        if kind == "whitelisted":
            work = _work(whitelist_probe=probes)
        elif kind == "passed":  # spamd: pf passes it; spamlogd refreshes
            work = _written(
                _work(whitelist_probe=probes, lookup=1, update=int(s.spamlogd)),
                SPAMD_DB_FILE,
                SPAMD_DB_PAGE_BYTES,
                int(s.spamlogd),
            )
        elif kind == "blacklisted":  # the whole dialogue is stuttered
            work = _work(
                whitelist_probe=probes, lookup=1, session=1, stutter_char=chars
            )
        elif kind in ("trapped", "deferred"):
            # trapped: IP tables and trap address looked up, IP record written;
            # deferred: IP tables, trap address and tuple; the tuple written
            work = _written(
                _work(
                    whitelist_probe=probes,
                    lookup=2 if kind == "trapped" else 3,
                    update=1,
                    session=1,
                    stutter_char=self._grey_stutter_chars,
                ),
                SPAMD_DB_FILE,
                SPAMD_DB_PAGE_BYTES,
                1,
            )
        else:
            raise AssertionError(f"unknown work kind {kind!r}")
        self._works[(kind, probes, chars)] = work
        return work

    def decide(
        self,
        ip: str,
        helo: str,
        sender: str,
        recipient: str,
        now: float,
        probes: int,
        scan_work: Work,
    ) -> GreylistResult:
        """Decide a delivery attempt the static whitelist did not pass."""
        s = self.settings
        entry = self._ipdb.get(ip)
        if entry is not None and entry.pcount != -1:  # white: pf passes it
            if s.spamlogd:
                entry.pcount += 1
                entry.expire = now + s.whiteexp_s
            return _result(
                GreylistDecision.PASSED,
                "",
                "",
                "client IP whitelisted after a greylist pass: on to the MTA",
                0.0,
                self._cached_work("passed", probes),
                scan_work,
            )
        if entry is not None and entry.listed:  # trapped and blacklisted
            chars = blacklist_stutter_chars(ip)
            return _result(
                GreylistDecision.BLACKLISTED,
                s.blacklist_reply,
                _TRAP_TEXT.format(ip=ip),
                "client trapped by a greytrap: blacklisted and stuttered",
                float(chars),
                self._cached_work("blacklisted", probes, chars),
                scan_work,
            )
        to = _address(recipient)
        if to in self._traps:
            if entry is None:
                entry = _Entry(now, now + s.trapexp_s, now + s.trapexp_s, 1, -1)
                entry.listed = False
                self._ipdb[ip] = entry
                self._schedule(entry, entry.expire, True, ip)
                self._unlisted.append(ip)
            else:  # trapped, not yet blacklisted: counted, expiry kept
                entry.bcount += 1
            return _result(
                GreylistDecision.TRAPPED,
                "451",
                TEMPFAIL_TEXT,
                "mail to a greytrap address: client blacklisted for trapexp_s",
                self._grey_stutter_s,
                self._cached_work("trapped", probes),
                scan_work,
            )
        if s.use_helo:
            key = (ip, helo, _address(sender), to)
        else:
            key = (ip, _address(sender), to)
        entry = self._grey.get(key)
        if entry is None:
            expire = now + s.greyexp_s
            entry = _Entry(now, expire, expire, 1, 0)
            self._grey[key] = entry
            self._schedule(entry, expire, False, key)
            reason = "greylisted: first sight of this tuple"
        else:
            entry.bcount += 1
            entry.pcount = 0
            if entry.first + s.passtime_s < now:
                entry.pass_ = now
                if now < entry.sched:
                    self._schedule(entry, now, False, key)
                reason = "greylisted: retry after passtime, whitelisted at next scan"
            else:
                reason = "greylisted: retry before passtime"
        return _result(
            GreylistDecision.DEFERRED,
            "451",
            TEMPFAIL_TEXT,
            reason,
            self._grey_stutter_s,
            self._cached_work("deferred", probes),
            scan_work,
        )

    def _schedule(self, entry: _Entry, when: float, is_ip: bool, key) -> None:
        entry.sched = when
        heapq.heappush(self._heap, (when, next(self._seq), is_ip, key))

    def _scan_at(self, t: float) -> int:
        """One spamd scan at time ``t``; returns the database changes made."""
        heap = self._heap
        grey = self._grey
        ipdb = self._ipdb
        whiteexp = self.settings.whiteexp_s
        changes = 0
        while heap and heap[0][0] <= t:
            when, _, is_ip, key = heapq.heappop(heap)
            table = ipdb if is_ip else grey
            entry = table.get(key)
            if entry is None or entry.sched != when:
                continue  # stale: the entry went or was rescheduled
            if entry.expire <= t:
                del table[key]
                changes += 1
            elif is_ip:  # refreshed by spamlogd: look again at its new expiry
                self._schedule(entry, entry.expire, True, key)
            elif entry.pass_ <= t:  # the tuple passed: whitelist its IP alone
                del grey[key]
                changes += 1
                ip = key[0]
                current = ipdb.get(ip)
                if current is not None and current.pcount == -1:
                    continue
                white = _Entry(
                    entry.first, entry.pass_, t + whiteexp, entry.bcount, entry.pcount
                )
                ipdb[ip] = white
                self._schedule(white, white.expire, True, ip)
                changes += 1
            else:
                self._schedule(entry, min(entry.pass_, entry.expire), False, key)
        return changes

    def run_scans(
        self, first: int, last: int, start_s: float, interval_s: float, now: float
    ) -> Work:
        """spamd's scans at ``start_s + k * interval_s``, k in first..last.

        Only scans with something to change are run; the idle ones in between
        are counted as the real daemon does them, walking every entry.
        """
        for ip in self._unlisted:  # the first scan blacklists them
            entry = self._ipdb.get(ip)
            if entry is not None:
                entry.listed = True
        self._unlisted.clear()
        start, interval, due = start_s, interval_s, last
        k = first
        scans = examined = listed = changes = 0
        while k <= due:
            top = self._heap[0][0] if self._heap else math.inf
            # the first due scan at or after the earliest scheduled event
            if top <= now:
                k_top = max(k, math.ceil((top - start) / interval))
            else:
                k_top = due + 1
            if k_top > k and start + (k_top - 1) * interval >= top:
                k_top -= 1  # guard against rounding
            idle = min(k_top, due + 1) - k  # scans that change nothing
            size = len(self._grey) + len(self._ipdb) + len(self._traps)
            scans += idle
            examined += idle * size
            listed += idle * len(self._ipdb)
            if k_top > due:
                break
            scans += 1
            examined += size
            changes += self._scan_at(start + k_top * interval)
            listed += len(self._ipdb)
            k = k_top + 1
        return _written(
            _work(
                scan_entry=examined,
                table_reload=scans,
                table_entry=listed,
                update=changes,
            ),
            SPAMD_DB_FILE,
            SPAMD_DB_PAGE_BYTES,
            changes,
        )

    # ----------------------------------------------------------------- state
    def dump(self) -> str:
        """The state as spamdb(8) lines."""
        records: list[spamdb.SpamdbRecord] = []
        for key, e in self._grey.items():
            ip, helo, sender, rcpt = key if len(key) == 4 else (key[0], "", *key[1:])
            records.append(
                spamdb.GreyRecord(
                    ip,
                    helo,
                    sender,
                    rcpt,
                    e.first,
                    e.pass_,
                    e.expire,
                    e.bcount,
                    e.pcount,
                )
            )
        for ip, e in self._ipdb.items():
            if e.pcount == -1:
                records.append(spamdb.TrappedRecord(ip, e.expire))
            else:
                records.append(
                    spamdb.WhiteRecord(
                        ip, e.first, e.pass_, e.expire, e.bcount, e.pcount
                    )
                )
        records += [spamdb.SpamtrapRecord(a) for a in sorted(self._traps)]
        return spamdb.format_spamdb(records)

    def load(self, text: str) -> None:
        """Replace the state with spamdb(8) text (settings' greytraps stay)."""
        s = self.settings
        records = spamdb.parse_spamdb(text, s.greyexp_s)
        self._grey.clear()
        self._ipdb.clear()
        self._traps = {_address(t) for t in s.greytraps}
        self._heap = []
        self._unlisted.clear()
        for r in records:
            if isinstance(r, spamdb.GreyRecord):
                sender, rcpt = _address(r.sender), _address(r.recipient)
                key = (
                    (r.ip, r.helo, sender, rcpt) if s.use_helo else (r.ip, sender, rcpt)
                )
                entry = _Entry(r.first_s, r.pass_s, r.expire_s, r.bcount, r.pcount)
                self._grey[key] = entry
                entry.sched = min(r.pass_s, r.expire_s)
            elif isinstance(r, spamdb.WhiteRecord):
                entry = _Entry(r.first_s, r.pass_s, r.expire_s, r.bcount, r.pcount)
                self._ipdb[r.ip] = entry
                entry.sched = r.expire_s
            elif isinstance(r, spamdb.TrappedRecord):
                entry = _Entry(r.expire_s - s.trapexp_s, r.expire_s, r.expire_s, 1, -1)
                self._ipdb[r.ip] = entry
                entry.sched = r.expire_s
            else:
                self._traps.add(_address(r.address))
        self._heap = [
            (e.sched, next(self._seq), False, key) for key, e in self._grey.items()
        ]
        self._heap += [
            (e.sched, next(self._seq), True, ip) for ip, e in self._ipdb.items()
        ]
        heapq.heapify(self._heap)
