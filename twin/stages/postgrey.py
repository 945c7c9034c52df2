"""Postgrey greylisting: the ``postgrey`` flavour of ``twin.stages.greylist``.

Twins schweikert/postgrey 1.2x (FACTS.md "Greylisting"): key (client net,
sender, recipient) -> (first, last); deferred until ``delay_s`` after first; a
first retrial later than ``retry_window_s`` resets first; a client passing
``auto_whitelist_clients`` greylisted deliveries (counted at most once an
hour) skips greylisting. The sender's ``+extension`` is stripped and numbers
in its local part become ``#`` (VERP). Not twinned: the reverse-DNS dialup
heuristic (needs the client's PTR name) and BATV.

``Greylist`` (in ``twin.stages.greylist``) owns what both flavours share: the
settings, the static whitelist, and the lazy periodic runs -- here the nightly
key cleanup, at ``start_s + k * maintenance_interval_s``, which walks every
entry and deletes the triplets and auto-whitelist clients gone stale.

Decides: ``GreylistDecision.DEFERRED`` (450 and postgrey's help URL) or
``PASSED`` (on to the MTA); postgrey never stutters.

Counts (``greylist.*`` kinds of ``twin.stages.greylist.CPU_UNITS``): one
policy request a check, database lookups and updates, entries examined by the
cleanup. Storage: each database update is a 128-byte Berkeley DB log record
written without fsync (DB_TXN_NOSYNC).

Scenario keys (stage ``greylist``, flavour ``postgrey``): delay, max_age,
retry_window, auto_whitelist_clients, net_prefix, maintenance_interval, and the
shared whitelist. State is saved and restored as text with ``dump()``/
``load()`` (our postgrey dump; see ``twin.stages.spamdb``).

Raises ``ValueError`` (from ``twin.stages.spamdb``) for an unreadable dump.
"""

from __future__ import annotations

import ipaddress
import re

from twin.stages import spamdb
from twin.stages.greylist import (
    _MEMO_MAX,
    GreylistDecision,
    GreylistResult,
    GreylistSettings,
    _address,
    _ipv4_int,
    _result,
    _work,
    _written,
)
from twin.stages.work import Work

POSTGREY_LOG_FILE = "var/spool/postfix/postgrey/log"
POSTGREY_LOG_RECORD_BYTES = 128  # key, value and log header: assumption
AWL_COUNT_INTERVAL_S = 3600  # postgrey counts a client pass at most hourly
POSTGREY_TEXT = "Greylisted, see http://isg.ee.ethz.ch/tools/postgrey/help/{}.html"

_VERP_NUMBER = re.compile(r"\b\d+\b")


class Postgrey:
    """Postgrey's databases and its decision on one policy request."""

    def __init__(self, settings: GreylistSettings) -> None:
        self.settings = settings
        # triplets -> [first, last], client ip -> [count, last]
        self._db: dict[tuple[str, str, str], list[float]] = {}
        self._awl: dict[str, list[float]] = {}
        self._sender_memo: dict[str, str] = {}  # sender -> its key
        self._works: dict[tuple[int, int, int], Work] = {}

    def __len__(self) -> int:
        """Entries in the database: triplets and auto-whitelisted clients."""
        return len(self._db) + len(self._awl)

    def whitelisted_work(self, probes: int) -> Work:
        """Work of a request answered by the static whitelist."""
        return self._policy_work(probes, 0, 0)

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
        """Decide a request the static whitelist did not answer."""
        s = self.settings
        lookups = updates = 0
        awl = None
        if s.auto_whitelist_clients:
            lookups += 1
            awl = self._awl.get(ip)
            if awl is not None and awl[0] >= s.auto_whitelist_clients:
                if now >= awl[1] + AWL_COUNT_INTERVAL_S:
                    awl[0] += 1
                    awl[1] = now
                    updates += 1
                return self._passed(
                    "client auto-whitelisted after passing greylisting",
                    self._policy_work(probes, lookups, updates),
                    scan_work,
                )
        senders = self._sender_memo
        if len(senders) > _MEMO_MAX:
            senders.clear()
        sender_key = senders.get(sender)
        if sender_key is None:
            sender_key = senders[sender] = _postgrey_sender(sender)
        key = (self._net(ip), sender_key, _address(recipient))
        lookups += 1
        value = self._db.get(key)
        last_was_successful = False
        if value is None:
            first = now
            self._db[key] = [now, now]
            reason = "greylisted: first sight of this triplet"
        else:
            first = value[0]
            reason = "greylisted: retried within delay_s"
            if value[1] - first >= s.delay_s:
                last_was_successful = True
            elif now - first > s.retry_window_s:
                first = now
                reason = "greylisted: retried after retry_window_s, first-seen reset"
            value[0] = first
            value[1] = now
        updates += 1
        if now - first < s.delay_s:
            domain = key[2].rpartition("@")[2]
            return _result(
                GreylistDecision.DEFERRED,
                "450",
                POSTGREY_TEXT.format(domain),
                reason,
                0.0,
                self._policy_work(probes, lookups, updates),
                scan_work,
            )
        if s.auto_whitelist_clients:
            if not last_was_successful and (
                awl is None or now >= awl[1] + AWL_COUNT_INTERVAL_S
            ):
                if awl is None:
                    self._awl[ip] = [1, now]
                else:
                    awl[0] += 1
                    awl[1] = now
                updates += 1
        return self._passed(
            "triplet waited delay_s: passed"
            if not last_was_successful
            else "triplet passed before: passed",
            self._policy_work(probes, lookups, updates),
            scan_work,
        )

    @staticmethod
    def _passed(reason: str, work: Work, scan_work: Work) -> GreylistResult:
        """On to the MTA: postgrey answers DUNNO and the MTA replies."""
        return _result(GreylistDecision.PASSED, "", "", reason, 0.0, work, scan_work)

    def run_scans(
        self, first: int, last: int, start_s: float, interval_s: float, now: float
    ) -> Work:
        """Postgrey's key cleanup at ``start_s + k * interval_s``, k in first..last."""
        s = self.settings
        examined = deleted = 0
        for k in range(first, last + 1):
            t = start_s + k * interval_s
            examined += len(self._db) + len(self._awl)
            old = [
                key
                for key, (seen, last_s) in self._db.items()
                if t - last_s > s.max_age_s
                or (last_s - seen < s.delay_s and t - last_s > s.retry_window_s)
            ]
            old_awl = [
                ip for ip, (_, last_s) in self._awl.items() if t - last_s > s.max_age_s
            ]
            for key in old:
                del self._db[key]
            for ip in old_awl:
                del self._awl[ip]
            deleted += len(old) + len(old_awl)
        return _written(
            _work(scan_entry=examined, update=deleted),
            POSTGREY_LOG_FILE,
            POSTGREY_LOG_RECORD_BYTES,
            deleted,
        )

    def _net(self, ip: str) -> str:
        prefix = self.settings.net_prefix
        if prefix == 32:
            return ip
        if prefix == 24 and ip.count(".") == 3:
            return ip[: ip.rfind(".")] + ".0"
        value = _ipv4_int(ip)
        if value is None:
            return ip  # not IPv4: postgrey keeps the address whole
        value &= ((1 << 32) - 1) ^ ((1 << (32 - prefix)) - 1)
        return str(ipaddress.IPv4Address(value))

    def _policy_work(self, probes: int, lookups: int, updates: int) -> Work:
        """Work of one policy request (cached by its counts)."""
        key = (probes, lookups, updates)
        work = self._works.get(key)
        if work is None:
            work = self._works[key] = _written(
                _work(
                    whitelist_probe=probes,
                    policy_request=1,
                    lookup=lookups,
                    update=updates,
                ),
                POSTGREY_LOG_FILE,
                POSTGREY_LOG_RECORD_BYTES,
                updates,
            )
        return work

    # ----------------------------------------------------------------- state
    def dump(self) -> str:
        """The state as our postgrey dump text."""
        records: list[spamdb.PostgreyRecord | spamdb.AwlRecord] = [
            spamdb.PostgreyRecord(net, sender, rcpt, first, last)
            for (net, sender, rcpt), (first, last) in self._db.items()
        ]
        records += [
            spamdb.AwlRecord(ip, int(n), last) for ip, (n, last) in self._awl.items()
        ]
        return spamdb.format_postgrey_dump(records)

    def load(self, text: str) -> None:
        """Replace the state with ``dump()`` text."""
        self._db.clear()
        self._awl.clear()
        for r in spamdb.parse_postgrey_dump(text):
            if isinstance(r, spamdb.PostgreyRecord):
                self._db[(r.net, r.sender, r.recipient)] = [r.first_s, r.last_s]
            else:
                self._awl[r.ip] = [r.count, r.last_s]


def _postgrey_sender(sender: str) -> str:
    """postgrey's sender key: no +extension, VERP numbers as '#', lower case."""
    address = _address(sender)
    user, at, domain = address.partition("@")
    if not at:
        return address
    plus = user.find("+")
    if plus >= 0:
        user = user[:plus]
    if any(c.isdigit() for c in user):
        user = _VERP_NUMBER.sub("#", user)
    return user + "@" + domain
