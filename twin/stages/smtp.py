"""SMTP acceptance and relay control, as Postfix smtpd does them.

Twins Postfix ``smtpd``: a real server state machine (``SmtpSession.feed``)
for EHLO/HELO, STARTTLS, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA (dot-unstuffing),
RSET, NOOP, VRFY, QUIT, with Postfix's reply texts (checked against real
Postfix logs), its error counting (``smtpd_soft_error_limit`` delays each
further error reply by ``smtpd_error_sleep_time``; at
``smtpd_hard_error_limit`` the next command gets ``421`` and the connection
closes) and its relay control, the default
``smtpd_recipient_restrictions = permit_mynetworks, permit_sasl_authenticated,
reject_unauth_destination``: a recipient is resolved as trivial-rewrite does
(``twin.stages.address``; percent hack, bang paths, quoted local parts and
source routes included); a client in ``mynetworks`` or authenticated with a
correct password may send anywhere; any other client only to our domains (or
``relay_domains``), never to an address still carrying routing operators,
else ``554 5.7.1 <addr>: Relay access denied``. A local recipient must then
exist in the directory (Postfix's local_recipient_maps) or the local aliases,
else ``550 5.1.1 <addr>: Recipient address rejected: User unknown in local
recipient table``. ``SmtpServer.transact`` runs one whole client dialogue
through the state machine and returns the per-recipient outcome, the message
with a Postfix-style ``Received:`` header prepended, and the work.

Counts (CPU kinds in ``CPU_UNITS``): the session, each command line, each DATA
byte, TLS handshakes and bytes on TLS, SASL exchanges, address resolutions;
network bytes (commands, replies, data, handshakes) and round trips (one for
the connection and banner, one per reply the client waits for: MAIL, RCPT and
RSET replies are pipelined with the next command, RFC 2920; two per TLS
handshake); plus the directory's own work for each recipient lookup and
password check (also reported apart as ``directory_work``). Writing the queue
file is the queue stage's work, not counted here. ``process_limit`` is the
number of concurrent sessions; the simulator holds that resource, the stage
never refuses a connection (Postfix's master leaves extra ones in the listen
queue).

Scenario keys: the ``smtp`` pipeline entry, via ``SmtpSettings``. Raises
ValueError for bad settings, a malformed client IP or an SMTPS connection to a
server without SMTPS; RuntimeError when a closed session is fed.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import time
from dataclasses import dataclass, fields, replace
from enum import Enum

from twin.stages.address import (
    AddressResolver,
    EnvelopeAddress,
    RewriteSettings,
    parse_address,
    parse_path_argument,
)
from twin.stages.directory import Directory
from twin.stages.maildir import LfMessage, lf_message
from twin.stages.work import NO_WORK, Work

CPU_UNITS: dict[str, str] = {
    "smtp.session": "one connection: accept, banner, process bookkeeping, teardown",
    "smtp.command": "one command line read and parsed (AUTH continuations too)",
    "smtp.byte": "one byte received in DATA (dot-stuffing and final dot included)",
    "smtp.tls_handshake": "one TLS handshake: an RSA-1024 private-key operation",
    "smtp.tls_byte": "one byte encrypted or decrypted (with MAC) on a TLS session",
    "smtp.sasl_auth": "one SASL exchange: decoding and the saslauthd request",
    "smtp.address_resolve": "one envelope address resolved (a trivial-rewrite query)",
}

# 2007-03-05 00:00:00 UTC, a Monday: the scenario epoch the other stages use.
SIMULATION_EPOCH_S = 1173052800
# Bytes of a full TLS handshake with a 1024-bit RSA certificate (assumption:
# hellos ~200 B, one 1 KB certificate, key exchange 140 B, finished messages).
TLS_HANDSHAKE_BYTES = 1800

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")  # fmt: skip

_COMMAND, _DATA, _AUTH_PLAIN, _AUTH_LOGIN_USER, _AUTH_LOGIN_PASSWORD = range(5)
# RFC 2920: replies to these are read together with the next command's.
_PIPELINED = frozenset(("MAIL", "RCPT", "RSET"))
# Postfix smtpd_forbidden_commands: a web proxy probe ends the session.
_FORBIDDEN = frozenset(("CONNECT", "GET", "POST"))
_MAIL_PARAMS = frozenset(("SIZE", "BODY", "AUTH", "RET", "ENVID"))
_RCPT_PARAMS = frozenset(("NOTIFY", "ORCPT"))

_OK = "250 2.0.0 Ok"
_SEND_HELO = "503 5.5.1 Error: send HELO/EHLO first"
_AUTH_FAILED = "535 5.7.8 Error: authentication failed: authentication failure"


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Postfix smtpd parameters; defaults are Postfix's own unless noted."""

    myhostname: str = "mail.ece.example.edu"
    # mydestination (assumption: the ECE domain, the host, localhost)
    local_domains: tuple[str, ...] = (
        "ece.example.edu",
        "mail.ece.example.edu",
        "localhost",
    )
    relay_domains: tuple[str, ...] = ()
    # assumption: loopback and the campus network, as a private block
    mynetworks: tuple[str, ...] = ("127.0.0.0/8", "10.0.0.0/8")
    process_limit: int = 100  # default_process_limit
    sasl_enabled: bool = False  # smtpd_sasl_auth_enable = no
    tls_enabled: bool = False  # smtpd_use_tls = no
    smtps_enabled: bool = False  # the smtps service is commented out in master.cf
    tls_auth_only: bool = False  # smtpd_tls_auth_only = no
    # Postfix's default is "no"; the twin requires HELO/EHLO before MAIL and
    # AUTH (smtpd_helo_required = yes), as the anti-spam setups of the era did.
    helo_required: bool = True
    message_size_limit_bytes: int = 10_240_000  # message_size_limit
    smtpd_recipient_limit: int = 1000
    soft_error_limit: int = 10  # smtpd_soft_error_limit
    hard_error_limit: int = 20  # smtpd_hard_error_limit
    error_sleep_time_s: float = 1.0  # smtpd_error_sleep_time (Postfix 2.1+)
    line_length_limit_bytes: int = 2048  # line_length_limit
    allow_percent_hack: bool = True
    swap_bangpath: bool = True
    resolve_dequoted_address: bool = True
    # aliases(5) names that exist without an account (assumption: the RFC 2142
    # mailboxes every site's /etc/aliases carries)
    local_aliases: tuple[str, ...] = ("postmaster", "abuse", "mailer-daemon")
    epoch_offset_s: int = SIMULATION_EPOCH_S
    utc_offset_s: int = 0  # zone of the Received: date

    def __post_init__(self) -> None:
        for name, value, low in (
            ("process_limit", self.process_limit, 1),
            ("message_size_limit_bytes", self.message_size_limit_bytes, 0),
            ("smtpd_recipient_limit", self.smtpd_recipient_limit, 1),
            ("soft_error_limit", self.soft_error_limit, 0),
            ("hard_error_limit", self.hard_error_limit, 1),
            ("line_length_limit_bytes", self.line_length_limit_bytes, 512),
        ):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name}={value!r} must be an integer >= {low}")
        if self.soft_error_limit > self.hard_error_limit:
            raise ValueError(
                f"soft_error_limit={self.soft_error_limit} must not exceed "
                f"hard_error_limit={self.hard_error_limit}"
            )
        if not self.error_sleep_time_s >= 0:
            raise ValueError(
                f"error_sleep_time_s={self.error_sleep_time_s!r} must be >= 0"
            )
        if not -86400 < self.utc_offset_s < 86400:
            raise ValueError(f"utc_offset_s={self.utc_offset_s!r} must be within a day")
        for network in self.mynetworks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(
                    f"mynetworks entry {network!r} is not an address or CIDR block"
                ) from None
        self.rewrite_settings()  # validates the domains

    def rewrite_settings(self) -> RewriteSettings:
        """The trivial-rewrite settings these smtpd settings imply."""
        return RewriteSettings(
            local_domains=self.local_domains,
            relay_domains=self.relay_domains,
            allow_percent_hack=self.allow_percent_hack,
            swap_bangpath=self.swap_bangpath,
            resolve_dequoted_address=self.resolve_dequoted_address,
        )


class RcptStatus(Enum):
    """What became of one RCPT TO."""

    ACCEPTED = "accepted"
    UNKNOWN_USER = "unknown user"
    RELAY_DENIED = "relay denied"
    BAD_SYNTAX = "bad syntax"
    TOO_MANY = "too many recipients"
    REJECTED = "rejected"  # any other refusal (sequence error, 421, ...)
    NOT_TRIED = "not tried"  # MAIL failed or the session closed first


class AuthOutcome(Enum):
    """What became of the client's SASL login."""

    NOT_ATTEMPTED = "not attempted"
    NOT_OFFERED = "not offered"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class SmtpDecision(Enum):
    """The dialogue's outcome: queued for all, some, or no recipients."""

    ACCEPTED = "accepted"
    PARTIAL = "partially accepted"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class RecipientOutcome:
    """One recipient: as given, its status, the reply, where it resolved."""

    address: str
    status: RcptStatus
    reply: str
    resolved: str | None = None
    local_user: str | None = None

    def __reduce__(self):
        # by the constructor: a third of the time of a frozen dataclass's
        # default (its __setstate__ looks up the fields each time)
        return RecipientOutcome, (self.address, self.status, self.reply,
                                  self.resolved, self.local_user)


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """A message handed to the queue: envelope and bytes with ``Received:``."""

    queue_id: str
    sender: str
    recipients: tuple[str, ...]
    local_users: tuple[str | None, ...]
    data: bytes
    received_length: int = 0
    """Bytes of the ``Received:`` header that *data* starts with."""


@dataclass(frozen=True, slots=True)
class SmtpResult:
    """Outcome of one client dialogue (``SmtpServer.transact``)."""

    decision: SmtpDecision
    reason: str
    queue_id: str | None
    recipients: tuple[RecipientOutcome, ...]
    accepted_recipients: tuple[str, ...]
    relay_denied: int
    unknown_users: int
    auth: AuthOutcome
    auth_user: str | None
    tls: bool
    data_reply: str | None
    message: bytes | None
    message_size_bytes: int
    error_sleep_s: float
    work: Work
    directory_work: Work
    message_lf: bytes | LfMessage | None = None
    """*message* as ``twin.stages.maildir.lf_message`` makes it (LF line
    ends, a final LF), where the dialogue had it without a search of the
    bytes: the client's message had no CR, or went as it is; an
    ``LfMessage`` (that form, not yet made) where the client counted its
    CRs (``transact``'s *crs*). None otherwise."""
    session_work: Work | None = None
    """*work* without *directory_work*: the session's own (None where the
    result was made without it)."""

    def __reduce__(self):
        # by the constructor (see RecipientOutcome.__reduce__): the front
        # sends the results of the dialogues it plays (twin.sim.front)
        return SmtpResult, tuple(getattr(self, name) for name in _RESULT_FIELDS)


_RESULT_FIELDS = tuple(f.name for f in fields(SmtpResult))


class SmtpServer:
    """One smtpd service: settings, the user directory, queue id counter."""

    def __init__(
        self,
        settings: SmtpSettings,
        directory: Directory,
        *,
        first_queue_number: int = 1,
    ) -> None:
        if first_queue_number < 0:
            raise ValueError(f"first_queue_number={first_queue_number} must be >= 0")
        self.settings = settings
        self.directory = directory
        self.resolver = AddressResolver(settings.rewrite_settings())
        self._networks = tuple(
            ipaddress.ip_network(n, strict=False) for n in settings.mynetworks
        )
        self._trusted_cache: dict[str, bool] = {}
        self._aliases = frozenset(a.lower() for a in settings.local_aliases)
        self._queue_number = first_queue_number
        self._ehlo = {tls: self._ehlo_reply(tls) for tls in (False, True)}
        self.relay_denied_total = 0
        self.sessions_total = 0

    def _ehlo_reply(self, tls_active: bool) -> str:
        s = self.settings
        size = s.message_size_limit_bytes
        lines = [s.myhostname, "PIPELINING", f"SIZE {size}" if size else "SIZE", "VRFY"]
        if s.tls_enabled and not tls_active:
            lines.append("STARTTLS")
        if s.sasl_enabled and (tls_active or not s.tls_auth_only):
            lines.append("AUTH PLAIN LOGIN")
        lines += ["ENHANCEDSTATUSCODES", "8BITMIME", "DSN"]
        return "\r\n".join(f"250-{x}" for x in lines[:-1]) + f"\r\n250 {lines[-1]}"

    def ehlo_reply(self, tls_active: bool) -> str:
        """The multi-line EHLO reply, with or without TLS active."""
        return self._ehlo[tls_active]

    def in_mynetworks(self, client_ip: str) -> bool:
        """Whether *client_ip* is in mynetworks; ValueError if not an address."""
        known = self._trusted_cache.get(client_ip)
        if known is not None:
            return known
        try:
            address = ipaddress.ip_address(client_ip)
        except ValueError:
            raise ValueError(f"client ip {client_ip!r} is not an IP address") from None
        trusted = any(address in network for network in self._networks)
        if len(self._trusted_cache) >= 65536:
            self._trusted_cache.clear()
        self._trusted_cache[client_ip] = trusted
        return trusted

    def next_queue_id(self, now: float) -> str:
        """A Postfix-like queue id: microseconds of *now*, then a counter."""
        number = self._queue_number
        self._queue_number += 1
        return f"{int(round(now * 1e6)) % 1_000_000:05X}{number:X}"

    def session(
        self, client_ip: str, now: float, *, smtps: bool = False,
        client_name: str = "unknown",
    ) -> SmtpSession:  # fmt: skip
        """Open a session (the banner is in ``session.greeting``)."""
        return SmtpSession(self, client_ip, now, smtps=smtps, client_name=client_name)

    def received_header(
        self, session: SmtpSession, queue_id: str, recipients: list[str], now: float
    ) -> bytes:
        """The ``Received:`` header smtpd puts on a message, CRLF-terminated."""
        s = self.settings
        seconds = s.epoch_offset_s + s.utc_offset_s + int(now)
        t = time.gmtime(seconds)
        offset = s.utc_offset_s // 60
        zone = (
            f"{'-' if offset < 0 else '+'}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"
        )
        if not offset:
            zone += " (UTC)"
        date = (
            f"{_DAYS[t.tm_wday]}, {t.tm_mday:2d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {zone}"
        )
        protocol = "ESMTP" if session.esmtp else "SMTP"
        if session.tls_active:
            protocol += "S"
        if session.auth_user is not None:
            protocol += "A"
        helo = session.helo_name or session.client_name
        head = (
            f"Received: from {helo} ({session.client_name} [{session.client_ip}])\r\n"
            f"\tby {s.myhostname} (Postfix) with {protocol} id {queue_id}"
        )
        if len(recipients) == 1:
            head += f"\r\n\tfor <{recipients[0]}>; {date}\r\n"
        else:
            head += f";\r\n\t{date}\r\n"
        return head.encode("utf-8", "surrogateescape")

    def transact(
        self,
        client_ip: str,
        helo: str | None,
        sender: str,
        recipients: list[str] | tuple[str, ...],
        message: bytes,
        auth: tuple[str, str] | None = None,
        tls: bool = False,
        now: float = 0.0,
        *,
        smtps: bool = False,
        client_name: str = "unknown",
        auth_mechanism: str = "PLAIN",
        queue_id: str | None = None,
        as_is: bool = False,
        crs: int | None = None,
    ) -> SmtpResult:
        """Run one client dialogue through a session and report what happened.

        The client behaves as a well-written MTA or mail program: EHLO, then
        STARTTLS if *tls* and offered (and EHLO again), AUTH if *auth* and
        offered, MAIL with SIZE, one RCPT per recipient, DATA if any was
        accepted (the body is sent dot-stuffed with CRLF line ends), QUIT.

        *as_is*: the caller vouches for ``goes_as_is(message)`` (a client
        that looked once, such as the simulator's front on its own core), so
        the message is not scanned here again; the result is the same.
        *crs*: with *as_is*, the number of CRs in *message*, where the caller
        counted them: ``message_lf`` is then an ``LfMessage`` (the same form,
        its CRs stripped by whoever writes it), not bytes.
        """
        if auth_mechanism not in ("PLAIN", "LOGIN"):
            raise ValueError(f"auth_mechanism={auth_mechanism!r} is not PLAIN or LOGIN")
        session = self.session(client_ip, now, smtps=smtps, client_name=client_name)
        session.queue_id_override = queue_id
        feed = session.feed
        auth_outcome = AuthOutcome.NOT_ATTEMPTED
        outcomes: list[RecipientOutcome] = []
        data_reply = None
        mail_ok = True
        if helo is not None:
            reply = feed(f"EHLO {helo}")
            if tls and not session.tls_active and "250-STARTTLS" in reply:
                if feed("STARTTLS").startswith("220"):
                    reply = feed(f"EHLO {helo}")
            if auth is not None:
                if "250-AUTH " in reply:
                    ok = session.login(auth[0], auth[1], auth_mechanism)
                    auth_outcome = AuthOutcome.SUCCEEDED if ok else AuthOutcome.FAILED
                else:
                    auth_outcome = AuthOutcome.NOT_OFFERED
        elif auth is not None:
            auth_outcome = AuthOutcome.NOT_OFFERED
        if as_is:
            body, plain, lf = message, True, None
        else:
            body, plain, lf = _data_form(message)
        size_param = f" SIZE={len(body)}" if session.esmtp else ""
        reply = feed(f"MAIL FROM:<{sender}>{size_param}")
        mail_ok = reply.startswith("250")
        for recipient in recipients:
            if not mail_ok or session.closed:
                outcomes.append(RecipientOutcome(recipient, RcptStatus.NOT_TRIED, ""))
                continue
            reply = feed(f"RCPT TO:<{recipient}>")
            if session.closed:  # 421: too many errors
                outcomes.append(RecipientOutcome(recipient, RcptStatus.REJECTED, reply))
                continue
            outcome = session.last_recipient
            if outcome.address != recipient:
                outcome = replace(outcome, address=recipient)
            outcomes.append(outcome)
        queued = None
        if not session.closed and any(
            o.status is RcptStatus.ACCEPTED for o in outcomes
        ):
            if feed("DATA").startswith("354"):
                if body:  # the lines, then the final "." (no copy to join them)
                    # the client found no line starting with a dot: the
                    # server need not look for them again
                    session.feed_data(body, plain=plain)
                data_reply = session.feed_data(b".\r\n")
                if data_reply is not None and data_reply.startswith("250"):
                    queued = session.messages[-1]
        if not session.closed:
            feed("QUIT")
        message_lf = None
        if queued is not None and any(queued.local_users):
            # the local deliveries' LF form of the queued bytes (the Received:
            # header and the message), where it takes no search: what
            # lf_message makes of them all is the header's and the message's
            if lf is not None:  # the client's own bytes had no CR
                message_lf = lf_message(queued.data[: queued.received_length]) + lf
            elif as_is:  # every CR of the message ends a line
                head = lf_message(queued.data[: queued.received_length])
                if crs is None:
                    message_lf = head + message.replace(b"\r", b"")
                else:
                    message_lf = LfMessage(head, message,
                                           len(head) + len(message) - crs)
        return _result(session, outcomes, auth_outcome, data_reply, queued, mail_ok,
                       message_lf)


_DOT_LINE = re.compile(rb"\n\.")
"""A line that starts with a dot (after the first): a compiled search finds
it in about half the time of ``b"\\n." in data``; ``transact``'s client
looks once and tells the server (``feed_data(plain=...)``)."""


_NOT_AS_IS = re.compile(rb"\r(?:[^\n]|\n\.)")
"""A CR before anything but an LF, or a line (after CRLF) that starts with a
dot: one search, 0.64 s a GB of delivered mail against 0.85 for ``_BARE_CR``
and ``_DOT_LINE`` apart (``python benchmarks/byte_passes.py RUN_DIR``). A dot after a
bare LF starts no line on the wire, where lines end in CRLF."""


def _unstuffed(lines: bytes) -> bytes:
    """CRLF lines as received in DATA without the dot stuffing (RFC 5321 4.5.2)."""
    if lines.startswith(b".") or _DOT_LINE.search(lines) is not None:
        return (b"\r\n" + lines).replace(b"\r\n.", b"\r\n")[2:]
    return lines


def _stuffed(message: bytes) -> bytes:
    """*message* as sent in DATA: CRLF line ends, dot-stuffed (no final dot);
    *message* itself where it goes as it is."""
    return _data_form(message)[0]


def goes_as_is(message: bytes) -> bool:
    """Whether *message* goes in DATA as it is -- a final CRLF, every CR
    before an LF, no line (after a CRLF) that starts with a dot, so that
    ``_stuffed(message) == message`` and ``lf_message`` only drops its CRs --
    what a client that looked may tell ``transact`` (``as_is``)."""
    return (
        message.endswith(b"\r\n")
        and not message.startswith(b".")
        and _NOT_AS_IS.search(message) is None
    )


def _data_form(message: bytes) -> tuple[bytes, bool, bytes | None]:
    """``_stuffed(message)``; whether no line of it starts with a dot (nothing
    was stuffed: it holds no final ``.`` line); and, where *message* has no CR
    at all, *message* with LF line ends and a final LF (``lf_message``'s
    form, which is then *message* or it and an LF), else None.

    Looking for a CR alone first: ``b"\\r\\n" in`` a message without one
    compares at every LF (0.93 s a GB, against 0.05-0.07 for the CR,
    ``python benchmarks/byte_passes.py``)."""
    lf = None
    if b"\r" not in message:  # no CR, so no CRLF
        lf = message if not message or message.endswith(b"\n") else message + b"\n"
        if b"\n" in message:
            message = message.replace(b"\n", b"\r\n")
    elif b"\r\n" not in message and b"\n" in message:
        message = message.replace(b"\n", b"\r\n")
    if message and not message.endswith(b"\r\n"):
        message += b"\r\n"
    plain = True
    if _DOT_LINE.search(message) is not None:
        message = message.replace(b"\r\n.", b"\r\n..")
        plain = False
    if message.startswith(b"."):
        message = b"." + message
        plain = False
    return message, plain, lf


def _result(
    session: SmtpSession,
    outcomes: list[RecipientOutcome],
    auth: AuthOutcome,
    data_reply: str | None,
    queued: QueuedMessage | None,
    mail_ok: bool,
    message_lf: bytes | LfMessage | None = None,
) -> SmtpResult:
    accepted = tuple(
        o.resolved or "" for o in outcomes if o.status is RcptStatus.ACCEPTED
    )
    own = session.own_work
    directory = session.directory_work
    if queued is None:
        decision = SmtpDecision.REJECTED
        if not mail_ok:
            reason = "sender refused"
        elif data_reply is not None:
            reason = f"data refused: {data_reply}"
        elif session.relay_denied:
            reason = f"relay access denied for {session.relay_denied} recipient(s)"
        else:
            reason = "no recipient accepted"
        accepted = ()
    else:
        partial = len(accepted) < len(outcomes)
        decision = SmtpDecision.PARTIAL if partial else SmtpDecision.ACCEPTED
        reason = (
            f"queued as {queued.queue_id} for {len(accepted)} of {len(outcomes)} "
            "recipient(s)"
        )
    return SmtpResult(
        decision=decision,
        reason=reason,
        queue_id=queued.queue_id if queued else None,
        recipients=tuple(outcomes),
        accepted_recipients=accepted,
        relay_denied=session.relay_denied,
        unknown_users=session.unknown_users,
        auth=auth,
        auth_user=session.auth_user,
        tls=session.tls_active,
        data_reply=data_reply,
        message=queued.data if queued else None,
        message_size_bytes=len(queued.data) if queued else 0,
        error_sleep_s=session.error_sleep_s,
        work=own + directory if directory is not NO_WORK else own,
        directory_work=directory,
        message_lf=message_lf,
        session_work=own,
    )


class SmtpSession:
    """One SMTP connection: feed it client lines, get Postfix's replies."""

    def __init__(
        self, server: SmtpServer, client_ip: str, now: float, *, smtps: bool = False,
        client_name: str = "unknown",
    ) -> None:  # fmt: skip
        settings = server.settings
        if smtps and not settings.smtps_enabled:
            raise ValueError("smtps connection to a server with smtps_enabled=False")
        self._server = server
        self._settings = settings
        self.client_ip = client_ip
        self.client_name = client_name
        self.now = now
        self.trusted_network = server.in_mynetworks(client_ip)
        server.sessions_total += 1
        self.helo_name: str | None = None
        self.esmtp = False
        self.tls_active = False
        self.auth_user: str | None = None
        self.auth_failures = 0
        self.closed = False
        self.error_count = 0
        self.error_sleep_s = 0.0
        self.relay_denied = 0
        self.unknown_users = 0
        self.messages: list[QueuedMessage] = []
        self.last_recipient = RecipientOutcome("", RcptStatus.NOT_TRIED, "")
        self.queue_id_override: str | None = None
        self._mode = _COMMAND
        self._handshake_pending = False
        self._sender: EnvelopeAddress | None = None
        self._recipients: list[tuple[str, str, str | None]] = []
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._login_user = ""
        self._commands = 0
        self._data_bytes = 0
        self._handshakes = 0
        self._tls_bytes = 0
        self._sasl = 0
        self._resolves = 0
        self._net_bytes = 0
        self._round_trips = 1  # TCP handshake and the banner
        self.directory_work = NO_WORK
        if smtps:
            self._handshake()
        self.greeting = f"220 {settings.myhostname} ESMTP Postfix"
        self._sent(self.greeting)

    # -- accounting

    def _sent(self, reply: str) -> None:
        n = len(reply) + 2
        self._net_bytes += n
        if self.tls_active:
            self._tls_bytes += n

    def _received(self, n: int) -> None:
        self._net_bytes += n
        if self.tls_active:
            self._tls_bytes += n

    def _handshake(self) -> None:
        self._handshakes += 1
        self._round_trips += 2
        self._net_bytes += TLS_HANDSHAKE_BYTES
        self.tls_active = True

    def _count_error(self) -> None:
        """An error reply: past the soft limit smtpd sleeps before sending it."""
        if self.error_count >= self._settings.soft_error_limit:
            self.error_sleep_s += self._settings.error_sleep_time_s
        self.error_count += 1

    def _directory(self, work: Work) -> None:
        self.directory_work = self.directory_work + work

    @property
    def in_data(self) -> bool:
        """Whether the session is reading a message body (lines get no reply)."""
        return self._mode == _DATA

    @property
    def work(self) -> Work:
        """All work of the session so far, the directory's included."""
        own = self.own_work
        return own + self.directory_work if self.directory_work is not NO_WORK else own

    @property
    def own_work(self) -> Work:
        """The session's work so far, the directory's not included."""
        cpu = {"smtp.session": 1}
        for kind, n in (
            ("smtp.command", self._commands),
            ("smtp.byte", self._data_bytes),
            ("smtp.tls_handshake", self._handshakes),
            ("smtp.tls_byte", self._tls_bytes),
            ("smtp.sasl_auth", self._sasl),
            ("smtp.address_resolve", self._resolves),
        ):
            if n:
                cpu[kind] = n
        return Work(
            cpu=cpu, net_bytes=self._net_bytes, net_round_trips=self._round_trips
        )

    # -- the dialogue

    def feed(self, line: str) -> str | None:
        """Take one client line (CRLF optional); return the reply, if any.

        In DATA mode a body line gets no reply (None) until the final ".".
        """
        if self.closed:
            raise RuntimeError(f"smtp session from {self.client_ip} is closed")
        if line.endswith("\n"):
            line = line[:-1]
        if line.endswith("\r"):
            line = line[:-1]
        if self._mode == _DATA:
            raw = line.encode("utf-8", "surrogateescape")
            self._data_bytes += len(raw) + 2
            self._received(len(raw) + 2)
            if raw == b".":
                return self._end_of_data()
            self._add_body(raw[1:] + b"\r\n" if raw[:1] == b"." else raw + b"\r\n")
            return None
        self._received(len(line) + 2)
        if self.error_count >= self._settings.hard_error_limit:
            self.closed = True
            reply = f"421 4.7.0 {self._settings.myhostname} Error: too many errors"
            self._sent(reply)
            self._round_trips += 1
            return reply
        self._commands += 1
        verb = ""
        if self._mode != _COMMAND:
            reply = self._auth_continue(line)
        elif len(line) > self._settings.line_length_limit_bytes:
            reply = "500 5.5.2 Error: line too long"
        else:
            words = line.split(None, 1)
            verb = words[0].upper() if words else ""
            argument = words[1].strip() if len(words) > 1 else ""
            handler = _HANDLERS.get(verb)
            if handler is not None:
                reply = handler(self, argument)
            elif verb in _FORBIDDEN:
                self.closed = True
                reply = "221 2.7.0 Error: I can break rules, too. Goodbye."
            elif not verb:
                reply = "500 5.5.2 Error: bad syntax"
            else:
                reply = "502 5.5.2 Error: command not recognized"
        if reply[0] in "45":
            self._count_error()
        self._sent(reply)
        if verb not in _PIPELINED:
            self._round_trips += 1
        if self._handshake_pending:
            self._handshake_pending = False
            self._handshake()
            # RFC 3207: forget all the client said before the handshake
            self.helo_name = None
            self.esmtp = False
            self._reset_transaction()
        return reply

    def feed_data(self, data: bytes, *, plain: bool = False) -> str | None:
        """Take DATA-phase bytes as sent (whole CRLF lines, dot-stuffed).

        Returns the final reply once the ``.`` line arrives, else None.
        *plain*: the caller knows that no line of *data* starts with a dot
        (so it holds no final ``.`` line either), as ``transact``'s own
        client does after stuffing: the lines are not scanned again.
        """
        if self.closed:
            raise RuntimeError(f"smtp session from {self.client_ip} is closed")
        if self._mode != _DATA:
            raise RuntimeError("feed_data outside DATA: send DATA and get 354 first")
        self._data_bytes += len(data)
        self._received(len(data))
        # every line, the first too, follows a CRLF: the end is a "." line
        if data.startswith(b".\r\n"):
            body_end = 0
        elif plain or (not data.startswith(b".") and _DOT_LINE.search(data) is None):
            # no line starts with a dot: no final "." line, nothing unstuffed
            # (one scan, where looking for the end and then for stuffing
            # took two)
            if not data.endswith(b"\r\n"):
                raise ValueError("feed_data takes whole lines ending in CRLF")
            self._add_body(data)
            return None
        else:
            found = data.find(b"\r\n.\r\n")
            if found < 0:
                if not data.endswith(b"\r\n"):
                    raise ValueError("feed_data takes whole lines ending in CRLF")
                self._add_body(_unstuffed(data))
                return None
            body_end = found + 2
        if body_end + 3 != len(data):
            raise ValueError(
                f"feed_data got {len(data) - body_end - 3} bytes after the final "
                "'.'; feed them as command lines"
            )
        if body_end:
            self._add_body(_unstuffed(data[:body_end]))
        return self._end_of_data()

    def _add_body(self, chunk: bytes) -> None:
        self._body_bytes += len(chunk)
        limit = self._settings.message_size_limit_bytes
        if not limit or self._body_bytes <= limit:
            self._body.append(chunk)  # past the limit smtpd reads and discards

    def _end_of_data(self) -> str:
        self._mode = _COMMAND
        self._round_trips += 1
        limit = self._settings.message_size_limit_bytes
        recipients = [r for _, r, _ in self._recipients]
        if limit and self._body_bytes > limit:
            reply = "552 5.3.4 Error: message file too big"
            self._count_error()
        else:
            server = self._server
            queue_id = self.queue_id_override or server.next_queue_id(self.now)
            self.queue_id_override = None
            given = [text for text, _, _ in self._recipients]
            header = server.received_header(self, queue_id, given, self.now)
            sender = self._sender.text if self._sender is not None else ""
            self.messages.append(
                QueuedMessage(
                    queue_id,
                    sender,
                    tuple(recipients),
                    tuple(u for _, _, u in self._recipients),
                    header + b"".join(self._body),
                    len(header),
                )
            )
            reply = f"250 2.0.0 Ok: queued as {queue_id}"
        self._reset_transaction()
        self._sent(reply)
        return reply

    def _reset_transaction(self) -> None:
        self._sender = None
        self._recipients = []
        self._body = []
        self._body_bytes = 0

    # -- commands

    def _helo(self, argument: str, esmtp: bool) -> str:
        if not argument:
            return f"501 Syntax: {'EHLO' if esmtp else 'HELO'} hostname"
        if not argument.isprintable():  # as Postfix's printable(): no header tricks
            argument = "".join(c if c.isprintable() else "?" for c in argument)
        self.helo_name = argument
        self.esmtp = esmtp
        self._reset_transaction()
        if esmtp:
            return self._server.ehlo_reply(self.tls_active)
        return f"250 {self._settings.myhostname}"

    def _cmd_helo(self, argument: str) -> str:
        return self._helo(argument, False)

    def _cmd_ehlo(self, argument: str) -> str:
        return self._helo(argument, True)

    def _cmd_starttls(self, argument: str) -> str:
        if not self._settings.tls_enabled and not self.tls_active:
            return "502 5.5.1 Error: command not implemented"
        if argument:
            return "501 5.5.4 Syntax: STARTTLS"
        if self.tls_active:
            return "554 5.5.1 Error: TLS already active"
        if self._sender is not None:
            return "503 5.5.1 Error: MAIL transaction in progress"
        self._handshake_pending = True
        return "220 2.0.0 Ready to start TLS"

    def _cmd_auth(self, argument: str) -> str:
        s = self._settings
        if s.helo_required and self.helo_name is None:
            return _SEND_HELO
        if not s.sasl_enabled:
            return "503 5.5.1 Error: authentication not enabled"
        if s.tls_auth_only and not self.tls_active:
            return (
                "504 5.5.4 Encryption required for requested authentication mechanism"
            )
        if self.auth_user is not None:
            return "503 5.5.1 Error: already authenticated"
        if self._sender is not None:
            return "503 5.5.1 Error: MAIL transaction in progress"
        words = argument.split()
        if not 1 <= len(words) <= 2:
            return "501 5.5.4 Syntax: AUTH mechanism"
        self._sasl += 1
        mechanism = words[0].upper()
        initial = words[1] if len(words) == 2 else None
        if mechanism == "PLAIN":
            if initial is None:
                self._mode = _AUTH_PLAIN
                return "334 "
            return self._plain(initial, "initial")
        if mechanism == "LOGIN":
            if initial is None:
                self._mode = _AUTH_LOGIN_USER
                return "334 VXNlcm5hbWU6"  # "Username:"
            return self._login_user_step(initial, "initial")
        self.auth_failures += 1
        return (
            "535 5.7.8 Error: authentication failed: Invalid authentication mechanism"
        )

    def _auth_continue(self, line: str) -> str:
        mode = self._mode
        self._mode = _COMMAND
        if line == "*":
            return "501 5.7.0 Authentication aborted"
        if mode == _AUTH_PLAIN:
            return self._plain(line, "continued")
        if mode == _AUTH_LOGIN_USER:
            return self._login_user_step(line, "continued")
        password = _b64(line)
        if password is None:
            return "501 5.5.2 Invalid base64 data in continued response"
        return self._verify(self._login_user, password)

    def _plain(self, response: str, which: str) -> str:
        decoded = b"" if response == "=" else _b64_bytes(response)
        if decoded is None:
            return f"501 5.5.2 Invalid base64 data in {which} response"
        parts = decoded.split(b"\0")
        if len(parts) != 3:
            self.auth_failures += 1
            return _AUTH_FAILED
        authzid, user, password = (p.decode("utf-8", "surrogateescape") for p in parts)
        return self._verify(user, password, authzid)

    def _login_user_step(self, response: str, which: str) -> str:
        user = _b64(response)
        if user is None:
            return f"501 5.5.2 Invalid base64 data in {which} response"
        self._login_user = user
        self._mode = _AUTH_LOGIN_PASSWORD
        return "334 UGFzc3dvcmQ6"  # "Password:"

    def _verify(self, user: str, password: str, authzid: str = "") -> str:
        if not user:
            self.auth_failures += 1
            return _AUTH_FAILED
        result = self._server.directory.authenticate(user, password)
        self._directory(result.work)
        if result.ok and (not authzid or authzid == user):
            self.auth_user = user
            return "235 2.7.0 Authentication successful"
        self.auth_failures += 1
        return _AUTH_FAILED

    def login(self, user: str, password: str, mechanism: str = "PLAIN") -> bool:
        """Authenticate as a client program would, through ``feed``."""
        if mechanism == "PLAIN":
            token = _encode(f"\0{user}\0{password}")
            return self.feed(f"AUTH PLAIN {token}").startswith("235")
        reply = self.feed("AUTH LOGIN")
        if reply.startswith("334"):
            reply = self.feed(_encode(user))
        if reply.startswith("334"):
            reply = self.feed(_encode(password))
        return reply.startswith("235")

    def _cmd_mail(self, argument: str) -> str:
        s = self._settings
        if s.helo_required and self.helo_name is None:
            return _SEND_HELO
        if self._sender is not None:
            return "503 5.5.1 Error: nested MAIL command"
        parsed = parse_path_argument(argument, "FROM")
        if parsed.error == "syntax":
            return "501 5.5.4 Syntax: MAIL FROM:<address>"
        if parsed.address is None:
            return "501 5.1.7 Bad sender address syntax"
        if parsed.error:
            return f"555 5.5.4 Unsupported option: {parsed.bad}"
        for keyword, value in parsed.params:
            if keyword not in _MAIL_PARAMS:
                return f"555 5.5.4 Unsupported option: {keyword}"
            if keyword == "SIZE":
                if value is None or not value.isdigit():
                    return "501 5.5.4 Bad message size syntax"
                limit = s.message_size_limit_bytes
                if limit and int(value) > limit:
                    return "552 5.3.4 Message size exceeds fixed limit"
            elif keyword == "BODY" and (value or "").upper() not in (
                "7BIT",
                "8BITMIME",
            ):
                return "501 5.5.4 Unsupported BODY parameter"
            elif keyword == "AUTH" and not s.sasl_enabled:
                return "503 5.5.4 Error: authentication disabled"
        if not parsed.address.is_null:
            self._resolves += 1  # cleanup asks trivial-rewrite about the sender
        self._sender = parsed.address
        return "250 2.1.0 Ok"

    def _cmd_rcpt(self, argument: str) -> str:
        if self._sender is None:
            reply = "503 5.5.1 Error: need MAIL command"
            self.last_recipient = RecipientOutcome("", RcptStatus.REJECTED, reply)
            return reply
        parsed = parse_path_argument(argument, "TO")
        reply = None
        if parsed.error == "syntax":
            reply = "501 5.5.4 Syntax: RCPT TO:<address>"
        elif parsed.address is None or parsed.address.is_null:
            reply = "501 5.1.3 Bad recipient address syntax"
        elif parsed.error:
            reply = f"555 5.5.4 Unsupported option: {parsed.bad}"
        else:
            for keyword, _ in parsed.params:
                if keyword not in _RCPT_PARAMS:
                    reply = f"555 5.5.4 Unsupported option: {keyword}"
                    break
        if reply is not None:
            self.last_recipient = RecipientOutcome("", RcptStatus.BAD_SYNTAX, reply)
            return reply
        if len(self._recipients) >= self._settings.smtpd_recipient_limit:
            reply = "452 4.5.3 Error: too many recipients"
            self.last_recipient = RecipientOutcome("", RcptStatus.TOO_MANY, reply)
            return reply
        outcome = self._check_recipient(parsed.address, count=True)
        self.last_recipient = outcome
        if outcome.status is RcptStatus.ACCEPTED:
            self._recipients.append(
                (outcome.address, outcome.resolved or "", outcome.local_user)
            )
        return outcome.reply

    def _check_recipient(
        self, address: EnvelopeAddress, count: bool
    ) -> RecipientOutcome:
        """permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination,
        then the local recipient table."""
        self._resolves += 1
        resolution = self._server.resolver.resolve(address)
        resolved = resolution.address
        text = address.text
        trusted = self.trusted_network or self.auth_user is not None
        if not trusted and (
            resolution.routed or not (resolution.is_local or resolution.is_relay_domain)
        ):
            if count:
                self.relay_denied += 1
                self._server.relay_denied_total += 1
            reply = f"554 5.7.1 <{text}>: Relay access denied"
            return RecipientOutcome(text, RcptStatus.RELAY_DENIED, reply, resolved)
        if not resolution.is_local:
            return RecipientOutcome(text, RcptStatus.ACCEPTED, "250 2.1.5 Ok", resolved)
        name = resolution.local_part.lower()
        found = self._server.directory.lookup(name)
        self._directory(found.work)
        if found.found:
            return RecipientOutcome(
                text, RcptStatus.ACCEPTED, "250 2.1.5 Ok", resolved, name
            )
        if name in self._server._aliases:
            return RecipientOutcome(
                text, RcptStatus.ACCEPTED, "250 2.1.5 Ok", resolved, name
            )
        if count:
            self.unknown_users += 1
        reply = (
            f"550 5.1.1 <{text}>: Recipient address rejected: "
            "User unknown in local recipient table"
        )
        return RecipientOutcome(text, RcptStatus.UNKNOWN_USER, reply, resolved)

    def _cmd_data(self, argument: str) -> str:
        if self._sender is None:
            return "503 5.5.1 Error: need MAIL command"
        if not self._recipients:
            return "503 5.5.1 Error: need RCPT command"
        if argument:
            return "501 5.5.4 Syntax: DATA"
        self._mode = _DATA
        self._body = []
        self._body_bytes = 0
        return "354 End data with <CR><LF>.<CR><LF>"

    def _cmd_rset(self, argument: str) -> str:
        if argument:
            return "501 5.5.4 Syntax: RSET"
        self._reset_transaction()
        return _OK

    def _cmd_noop(self, argument: str) -> str:
        return _OK

    def _cmd_vrfy(self, argument: str) -> str:
        if not argument:
            return "501 5.5.4 Syntax: VRFY address"
        text = (
            argument[1:-1] if argument[:1] == "<" and argument[-1:] == ">" else argument
        )
        address = parse_address(text)
        if address is None or address.is_null:
            return "501 5.1.3 Bad recipient address syntax"
        outcome = self._check_recipient(address, count=False)
        if outcome.status is not RcptStatus.ACCEPTED:
            return outcome.reply
        return f"252 2.0.0 {argument}"

    def _cmd_quit(self, argument: str) -> str:
        self.closed = True
        return "221 2.0.0 Bye"


_HANDLERS = {
    "HELO": SmtpSession._cmd_helo,
    "EHLO": SmtpSession._cmd_ehlo,
    "STARTTLS": SmtpSession._cmd_starttls,
    "AUTH": SmtpSession._cmd_auth,
    "MAIL": SmtpSession._cmd_mail,
    "RCPT": SmtpSession._cmd_rcpt,
    "DATA": SmtpSession._cmd_data,
    "RSET": SmtpSession._cmd_rset,
    "NOOP": SmtpSession._cmd_noop,
    "VRFY": SmtpSession._cmd_vrfy,
    "QUIT": SmtpSession._cmd_quit,
}


def _encode(text: str) -> str:
    return base64.b64encode(text.encode("utf-8", "surrogateescape")).decode("ascii")


def _b64_bytes(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None


def _b64(text: str) -> str | None:
    decoded = _b64_bytes(text)
    return None if decoded is None else decoded.decode("utf-8", "surrogateescape")
