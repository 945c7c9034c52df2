"""Tests of SMTP acceptance and relay control (twin.stages.smtp)."""

from __future__ import annotations

import base64
import dataclasses
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.stages.directory import LdapDirectory, PasswdDirectory, write_users
from twin.stages.maildir import LfMessage, lf_message
from twin.stages.smtp import (
    CPU_UNITS,
    TLS_HANDSHAKE_BYTES,
    AuthOutcome,
    RcptStatus,
    SmtpDecision,
    SmtpServer,
    SmtpSession,
    SmtpSettings,
    _data_form,
    _stuffed,
    goes_as_is,
)
from twin.stages.work import Work

COSTS = Path(__file__).parent.parent / "hardware" / "costs" / "smtp.yaml"
POSTFIX_LOG = Path("/work/shared/data/fail2ban-mail-logs/postfix")
USERS = [("alice", "wonderland"), ("bob", "builder")]
OUTSIDE = "192.0.2.7"  # TEST-NET-1: not in mynetworks
INSIDE = "10.1.2.3"  # campus network in the default mynetworks
FULL = SmtpSettings(sasl_enabled=True, tls_enabled=True, smtps_enabled=True)
MESSAGE = b"From: bob@example.org\r\nSubject: hi\r\n\r\nhello\r\n.signature\r\n"
RELAY_DENIED = "554 5.7.1 <{}>: Relay access denied"
UNKNOWN = (
    "550 5.1.1 <{}>: Recipient address rejected: User unknown in local recipient table"
)
REPLY_LINE = re.compile(r"\d{3}([ -][^\r\n]*)?\Z")


@pytest.fixture
def directory(tmp_path: Path) -> PasswdDirectory:
    write_users(tmp_path / "passwd", USERS, "passwd")
    return PasswdDirectory(tmp_path / "passwd")


@pytest.fixture
def server(directory: PasswdDirectory) -> SmtpServer:
    return SmtpServer(FULL, directory)


def dialogue(session: SmtpSession, *lines: str) -> list[str | None]:
    return [session.feed(line) for line in lines]


def plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# ------------------------------------------------------------------ settings


def test_every_cpu_unit_has_a_documented_reference_cost():
    costs = yaml.safe_load(COSTS.read_text())
    assert set(costs) == set(CPU_UNITS)
    assert all(value > 0 for value in costs.values())
    assert costs["smtp.tls_handshake"] > 10 * costs["smtp.command"]


def test_defaults_are_postfix_defaults():
    s = SmtpSettings()
    assert (s.process_limit, s.message_size_limit_bytes, s.smtpd_recipient_limit) == (
        100,
        10_240_000,
        1000,
    )
    assert (s.soft_error_limit, s.hard_error_limit, s.error_sleep_time_s) == (
        10,
        20,
        1.0,
    )
    assert not (s.sasl_enabled or s.tls_enabled or s.smtps_enabled)
    assert s.allow_percent_hack and s.swap_bangpath and s.resolve_dequoted_address


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"process_limit": 0}, "process_limit=0 must be an integer >= 1"),
        ({"message_size_limit_bytes": -1}, "message_size_limit_bytes=-1"),
        ({"smtpd_recipient_limit": 0}, "smtpd_recipient_limit=0"),
        ({"soft_error_limit": 30}, "soft_error_limit=30 must not exceed"),
        ({"error_sleep_time_s": -1.0}, "error_sleep_time_s=-1.0 must be >= 0"),
        ({"mynetworks": ("10.0.0.0/33",)}, "'10.0.0.0/33' is not an address"),
        ({"local_domains": ()}, "local_domains is empty"),
        ({"utc_offset_s": 90000}, "utc_offset_s=90000 must be within a day"),
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        SmtpSettings(**kwargs)


def test_bad_client_ip_and_smtps_without_smtps_are_refused(directory):
    with pytest.raises(ValueError, match="client ip 'nope' is not an IP address"):
        SmtpServer(FULL, directory).session("nope", 0.0)
    with pytest.raises(ValueError, match="smtps_enabled=False"):
        SmtpServer(SmtpSettings(), directory).session(OUTSIDE, 0.0, smtps=True)


# ------------------------------------------------------------- the dialogue


def test_banner_and_ehlo_advertise_what_is_enabled(server, directory):
    session = server.session(OUTSIDE, 0.0)
    assert session.greeting == "220 mail.ece.example.edu ESMTP Postfix"
    assert session.feed("EHLO client.example.org") == (
        "250-mail.ece.example.edu\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
        "250-VRFY\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n"
        "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250 DSN"
    )
    bare = SmtpServer(SmtpSettings(), directory).session(OUTSIDE, 0.0)
    reply = bare.feed("EHLO client.example.org")
    assert "STARTTLS" not in reply and "AUTH" not in reply
    assert bare.feed("HELO client.example.org") == "250 mail.ece.example.edu"
    assert not bare.esmtp


def test_sequence_errors_are_503(server):
    session = server.session(OUTSIDE, 0.0)
    assert dialogue(
        session,
        "MAIL FROM:<bob@example.org>",
        "AUTH PLAIN " + plain("alice", "wonderland"),
        "RCPT TO:<alice@ece.example.edu>",
        "DATA",
        "HELO client.example.org",
        "RCPT TO:<alice@ece.example.edu>",
        "MAIL FROM:<bob@example.org>",
        "MAIL FROM:<bob@example.org>",
        "DATA",
        "AUTH PLAIN " + plain("alice", "wonderland"),
    ) == [
        "503 5.5.1 Error: send HELO/EHLO first",
        "503 5.5.1 Error: send HELO/EHLO first",
        "503 5.5.1 Error: need MAIL command",
        "503 5.5.1 Error: need MAIL command",
        "250 mail.ece.example.edu",
        "503 5.5.1 Error: need MAIL command",
        "250 2.1.0 Ok",
        "503 5.5.1 Error: nested MAIL command",
        "503 5.5.1 Error: need RCPT command",
        "503 5.5.1 Error: MAIL transaction in progress",
    ]
    assert session.auth_user is None
    assert session.error_count == 8


def test_without_helo_required_mail_may_come_first(directory):
    server = SmtpServer(SmtpSettings(helo_required=False), directory)
    session = server.session(OUTSIDE, 0.0)
    assert session.feed("MAIL FROM:<bob@example.org>") == "250 2.1.0 Ok"


def test_syntax_errors_and_unknown_commands(server):
    session = server.session(OUTSIDE, 0.0)
    assert dialogue(
        session,
        "HELO",
        "EHLO",
        "EHLO client.example.org",
        "MAIL",
        "MAIL FROM:<bob@example.org",
        "MAIL FROM:<bob@example.org> SIZE=abc",
        "MAIL FROM:<bob@example.org> FOO=1",
        "MAIL FROM:<bob@example.org> BODY=9BIT",
        "MAIL FROM:<bob@example.org> SIZE=20000000",
        "MAIL FROM:<> SIZE=1000 BODY=7BIT RET=HDRS ENVID=x AUTH=<>",
        "RCPT alice",
        "RCPT TO:<>",
        "RCPT TO:<alice@ece.example.edu> FOO",
        "DATA now",
        "RSET x",
        "RSET",
        "NOOP anything",
        "HELP",
        "ETRN ece.example.edu",
        "",
        "x" * 3000,
        "STARTTLS now",
    ) == [
        "501 Syntax: HELO hostname",
        "501 Syntax: EHLO hostname",
        FULL_EHLO,
        "501 5.5.4 Syntax: MAIL FROM:<address>",
        "501 5.1.7 Bad sender address syntax",
        "501 5.5.4 Bad message size syntax",
        "555 5.5.4 Unsupported option: FOO",
        "501 5.5.4 Unsupported BODY parameter",
        "552 5.3.4 Message size exceeds fixed limit",
        "250 2.1.0 Ok",
        "501 5.5.4 Syntax: RCPT TO:<address>",
        "501 5.1.3 Bad recipient address syntax",
        "555 5.5.4 Unsupported option: FOO",
        "503 5.5.1 Error: need RCPT command",
        "501 5.5.4 Syntax: RSET",
        "250 2.0.0 Ok",
        "250 2.0.0 Ok",
        "502 5.5.2 Error: command not recognized",
        "502 5.5.2 Error: command not recognized",
        "500 5.5.2 Error: bad syntax",
        "500 5.5.2 Error: line too long",
        "501 5.5.4 Syntax: STARTTLS",
    ]


FULL_EHLO = (
    "250-mail.ece.example.edu\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
    "250-VRFY\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n"
    "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250 DSN"
)


def test_vrfy_answers_252_or_unknown_user(server):
    session = server.session(OUTSIDE, 0.0)
    assert dialogue(
        session,
        "VRFY",
        "VRFY alice",
        "VRFY <alice@ece.example.edu>",
        "VRFY zed@ece.example.edu",
        "VRFY user@other.com",
    ) == [
        "501 5.5.4 Syntax: VRFY address",
        "252 2.0.0 alice",
        "252 2.0.0 <alice@ece.example.edu>",
        UNKNOWN.format("zed@ece.example.edu"),
        RELAY_DENIED.format("user@other.com"),
    ]
    assert session.relay_denied == 0 and session.unknown_users == 0


def test_data_unstuffs_dots_and_queues_with_a_received_header(server):
    session = server.session(OUTSIDE, 3600.0, client_name="mx.example.org")
    dialogue(
        session,
        "EHLO client.example.org",
        "MAIL FROM:<bob@example.org>",
        "RCPT TO:<alice@ece.example.edu>",
    )
    assert session.feed("DATA now") == "501 5.5.4 Syntax: DATA"
    assert session.feed("DATA") == "354 End data with <CR><LF>.<CR><LF>"
    assert (
        dialogue(session, "Subject: x", "", "..leading dot", "...", "end") == [None] * 5
    )
    assert session.feed(".") == "250 2.0.0 Ok: queued as 000001"
    (queued,) = session.messages
    assert queued.queue_id == "000001"
    assert queued.sender == "bob@example.org"
    assert queued.recipients == ("alice@ece.example.edu",)
    assert queued.local_users == ("alice",)
    assert queued.data == (
        b"Received: from client.example.org (mx.example.org [192.0.2.7])\r\n"
        b"\tby mail.ece.example.edu (Postfix) with ESMTP id 000001\r\n"
        b"\tfor <alice@ece.example.edu>; Mon,  5 Mar 2007 01:00:00 +0000 (UTC)\r\n"
        b"Subject: x\r\n\r\n.leading dot\r\n..\r\nend\r\n"
    )
    # the transaction is over: a new MAIL is not nested
    assert session.feed("MAIL FROM:<>") == "250 2.1.0 Ok"


def test_feed_data_takes_dot_stuffed_chunks(server):
    session = server.session(OUTSIDE, 0.0)
    dialogue(session, "EHLO c", "MAIL FROM:<>", "RCPT TO:<bob@ece.example.edu>", "DATA")
    assert session.feed_data(b".one\r\n..two\r\n") is None
    with pytest.raises(ValueError, match="whole lines"):
        session.feed_data(b"half a line")
    assert session.feed_data(b"three\r\n.\r\n").startswith("250 2.0.0 Ok: queued as")
    assert session.messages[0].data.endswith(b"\r\none\r\n.two\r\nthree\r\n")
    with pytest.raises(RuntimeError, match="outside DATA"):
        session.feed_data(b".\r\n")
    dialogue(session, "MAIL FROM:<>", "RCPT TO:<bob@ece.example.edu>", "DATA")
    with pytest.raises(ValueError, match="4 bytes after the final"):
        session.feed_data(b"x\r\n.\r\nQUIT")


def test_message_size_limit_gives_552_after_the_data(directory):
    server = SmtpServer(SmtpSettings(message_size_limit_bytes=1000), directory)
    session = server.session(OUTSIDE, 0.0)
    dialogue(session, "EHLO c", "MAIL FROM:<>", "RCPT TO:<bob@ece.example.edu>", "DATA")
    assert session.feed_data(b"x" * 999 + b"\r\n.\r\n") == (
        "552 5.3.4 Error: message file too big"
    )
    assert not session.messages
    assert session.work.cpu["smtp.byte"] == 1004  # all bytes were still read
    big = SmtpServer(SmtpSettings(message_size_limit_bytes=1001), directory)
    session = big.session(OUTSIDE, 0.0)
    dialogue(session, "EHLO c", "MAIL FROM:<>", "RCPT TO:<bob@ece.example.edu>", "DATA")
    assert session.feed_data(b"x" * 999 + b"\r\n.\r\n").startswith("250")


def test_recipient_limit_gives_452(directory):
    server = SmtpServer(SmtpSettings(smtpd_recipient_limit=2), directory)
    session = server.session(OUTSIDE, 0.0)
    dialogue(session, "EHLO c", "MAIL FROM:<>")
    replies = dialogue(session, *["RCPT TO:<alice@ece.example.edu>"] * 3)
    assert replies == [
        "250 2.1.5 Ok",
        "250 2.1.5 Ok",
        "452 4.5.3 Error: too many recipients",
    ]
    assert session.last_recipient.status is RcptStatus.TOO_MANY


def test_error_limits_sleep_then_disconnect(directory):
    server = SmtpServer(
        SmtpSettings(soft_error_limit=2, hard_error_limit=3, error_sleep_time_s=1.5),
        directory,
    )
    session = server.session(OUTSIDE, 0.0)
    assert (
        dialogue(session, "BOGUS", "BOGUS")
        == ["502 5.5.2 Error: command not recognized"] * 2
    )
    assert session.error_sleep_s == 0.0
    session.feed("BOGUS")
    assert session.error_sleep_s == 1.5 and session.error_count == 3
    assert (
        session.feed("NOOP") == "421 4.7.0 mail.ece.example.edu Error: too many errors"
    )
    assert session.closed
    with pytest.raises(RuntimeError, match="is closed"):
        session.feed("NOOP")


def test_quit_and_web_proxy_probes_close_the_session(server):
    session = server.session(OUTSIDE, 0.0)
    assert session.feed("QUIT") == "221 2.0.0 Bye"
    assert session.closed
    probe = server.session(OUTSIDE, 0.0)
    assert probe.feed("CONNECT 10.0.0.1:25 HTTP/1.0") == (
        "221 2.7.0 Error: I can break rules, too. Goodbye."
    )
    assert probe.closed


# ---------------------------------------------------------------- AUTH, TLS


def test_auth_plain_login_and_their_failures(server):
    session = server.session(OUTSIDE, 0.0)
    assert dialogue(
        session,
        "EHLO c",
        "AUTH PLAIN " + plain("alice", "wrong"),
        "AUTH PLAIN",
        plain("alice", "wrong"),
        "AUTH LOGIN",
        b64("alice"),
        b64("wrong"),
        "AUTH PLAIN",
        "*",
        "AUTH PLAIN !!!",
        "AUTH CRAM-MD5",
        "AUTH",
        "AUTH LOGIN " + b64("alice"),
        b64("wonderland"),
        "AUTH PLAIN " + plain("alice", "wonderland"),
    ) == [
        FULL_EHLO,
        "535 5.7.8 Error: authentication failed: authentication failure",
        "334 ",
        "535 5.7.8 Error: authentication failed: authentication failure",
        "334 VXNlcm5hbWU6",
        "334 UGFzc3dvcmQ6",
        "535 5.7.8 Error: authentication failed: authentication failure",
        "334 ",
        "501 5.7.0 Authentication aborted",
        "501 5.5.2 Invalid base64 data in initial response",
        "535 5.7.8 Error: authentication failed: Invalid authentication mechanism",
        "501 5.5.4 Syntax: AUTH mechanism",
        "334 UGFzc3dvcmQ6",
        "235 2.7.0 Authentication successful",
        "503 5.5.1 Error: already authenticated",
    ]
    assert session.auth_user == "alice"
    assert session.auth_failures == 4
    # six SASL exchanges started; five password checks reached the directory
    assert session.work.cpu["smtp.sasl_auth"] == 7
    assert session.work.cpu["directory.hash_round"] == 4000


def test_auth_plain_with_a_foreign_authzid_fails(server):
    session = server.session(OUTSIDE, 0.0)
    session.feed("EHLO c")
    token = base64.b64encode(b"bob\0alice\0wonderland").decode()
    assert session.feed("AUTH PLAIN " + token).startswith("535")
    assert session.auth_user is None


def test_auth_when_disabled_or_tls_only(directory):
    off = SmtpServer(SmtpSettings(), directory).session(OUTSIDE, 0.0)
    off.feed("EHLO c")
    assert off.feed("AUTH PLAIN " + plain("alice", "wonderland")) == (
        "503 5.5.1 Error: authentication not enabled"
    )
    assert (
        off.feed("MAIL FROM:<> AUTH=<>") == "503 5.5.4 Error: authentication disabled"
    )
    tls_only = SmtpSettings(sasl_enabled=True, tls_enabled=True, tls_auth_only=True)
    session = SmtpServer(tls_only, directory).session(OUTSIDE, 0.0)
    assert "AUTH" not in session.feed("EHLO c")
    assert session.feed("AUTH PLAIN " + plain("alice", "wonderland")) == (
        "504 5.5.4 Encryption required for requested authentication mechanism"
    )
    assert session.feed("STARTTLS") == "220 2.0.0 Ready to start TLS"
    assert "250-AUTH PLAIN LOGIN" in session.feed("EHLO c")
    assert session.feed("AUTH PLAIN " + plain("alice", "wonderland")).startswith("235")


def test_starttls_resets_the_session_and_counts_a_handshake(server, directory):
    session = server.session(OUTSIDE, 0.0)
    assert dialogue(
        session, "EHLO c", "STARTTLS", "MAIL FROM:<>", "EHLO c", "STARTTLS"
    ) == [
        FULL_EHLO,
        "220 2.0.0 Ready to start TLS",
        "503 5.5.1 Error: send HELO/EHLO first",
        FULL_EHLO.replace("250-STARTTLS\r\n", ""),
        "554 5.5.1 Error: TLS already active",
    ]
    assert session.tls_active
    assert session.work.cpu["smtp.tls_handshake"] == 1
    plain_server = SmtpServer(SmtpSettings(), directory).session(OUTSIDE, 0.0)
    assert plain_server.feed("STARTTLS") == "502 5.5.1 Error: command not implemented"
    smtps = server.session(OUTSIDE, 0.0, smtps=True)
    assert smtps.tls_active and smtps.feed("STARTTLS").startswith("554")


# ----------------------------------------------------------- relay control

TRICKS = [
    "user@other.com",
    "user@OTHER.COM",
    "user@other.com.",
    "user%other.com@ece.example.edu",
    "user%other.com@ECE.EXAMPLE.EDU.",
    "other.com!user@ece.example.edu",
    "a.org!other.com!user@ece.example.edu",
    '"user@other.com"@ece.example.edu',
    '"user%other.com"@ece.example.edu',
    '"other.com!user"@ece.example.edu',
    "@ece.example.edu:user@other.com",
    "@ece.example.edu,@mail.ece.example.edu:user@other.com",
    "user@other.com@ece.example.edu",
    "user%other.com%ece.example.edu@ece.example.edu",
    "user@[192.0.2.1]",
    "user@ece.example.edu.other.com",
    "user@other.com.ece.example.edu",
]


@pytest.mark.parametrize("rcpt", TRICKS)
def test_an_untrusted_client_cannot_relay_by_any_trick(server, rcpt):
    session = server.session(OUTSIDE, 0.0)
    dialogue(session, "EHLO spammer.example", "MAIL FROM:<spam@example.net>")
    assert session.feed(f"RCPT TO:<{rcpt}>") == RELAY_DENIED.format(rcpt)
    assert session.relay_denied == 1
    assert session.feed("DATA") == "503 5.5.1 Error: need RCPT command"


@pytest.mark.parametrize(
    "setting",
    [
        {"allow_percent_hack": False},
        {"swap_bangpath": False},
        {"resolve_dequoted_address": False},
    ],
)
@pytest.mark.parametrize("rcpt", TRICKS)
def test_turning_routing_features_off_does_not_open_a_relay(directory, setting, rcpt):
    server = SmtpServer(SmtpSettings(**setting), directory)
    session = server.session(OUTSIDE, 0.0)
    dialogue(session, "EHLO spammer.example", "MAIL FROM:<spam@example.net>")
    assert session.feed(f"RCPT TO:<{rcpt}>") == RELAY_DENIED.format(rcpt)


def test_a_wrong_password_does_not_allow_relaying(server):
    session = server.session(OUTSIDE, 0.0)
    assert dialogue(
        session,
        "EHLO c",
        "AUTH PLAIN " + plain("alice", "wonderlant"),
        "AUTH LOGIN",
        b64("nosuchuser"),
        b64("wonderland"),
        "MAIL FROM:<alice@ece.example.edu>",
        "RCPT TO:<friend@other.com>",
    )[-1] == RELAY_DENIED.format("friend@other.com")
    assert session.auth_user is None


@pytest.mark.parametrize("rcpt", TRICKS[:14])
def test_authenticated_and_internal_clients_may_relay(server, rcpt):
    authenticated = server.session(OUTSIDE, 0.0)
    dialogue(authenticated, "EHLO c", "AUTH PLAIN " + plain("bob", "builder"))
    assert authenticated.feed("MAIL FROM:<bob@ece.example.edu>") == "250 2.1.0 Ok"
    assert authenticated.feed(f"RCPT TO:<{rcpt}>") == "250 2.1.5 Ok"
    internal = server.session(INSIDE, 0.0)
    dialogue(internal, "EHLO lab-pc.ece.example.edu", "MAIL FROM:<>")
    assert internal.feed(f"RCPT TO:<{rcpt}>") == "250 2.1.5 Ok"
    assert internal.last_recipient.local_user is None


def test_mynetworks_decides_who_is_internal(directory):
    rcpt = "RCPT TO:<friend@other.com>"
    for networks, ip, reply in [
        (("10.0.0.0/8",), "10.9.9.9", "250 2.1.5 Ok"),
        (("10.0.0.0/8",), "11.0.0.1", RELAY_DENIED.format("friend@other.com")),
        (("192.0.2.0/24",), OUTSIDE, "250 2.1.5 Ok"),
        (("2001:db8::/32",), "2001:db8::1", "250 2.1.5 Ok"),
        (("127.0.0.1",), "127.0.0.2", RELAY_DENIED.format("friend@other.com")),
    ]:
        server = SmtpServer(SmtpSettings(mynetworks=networks), directory)
        session = server.session(ip, 0.0)
        dialogue(session, "EHLO c", "MAIL FROM:<>")
        assert session.feed(rcpt) == reply, (networks, ip)


def test_relay_domains_are_accepted_from_anyone(directory):
    server = SmtpServer(SmtpSettings(relay_domains=("cs.example.edu",)), directory)
    session = server.session(OUTSIDE, 0.0)
    dialogue(session, "EHLO c", "MAIL FROM:<>")
    assert session.feed("RCPT TO:<x@lab.cs.example.edu>") == "250 2.1.5 Ok"
    assert session.feed("RCPT TO:<x%other.com@cs.example.edu>") == (
        RELAY_DENIED.format("x%other.com@cs.example.edu")
    )


@pytest.mark.parametrize(
    "rcpt, user",
    [
        ("alice@ece.example.edu", "alice"),
        ("Alice@ECE.Example.Edu", "alice"),
        ("alice@ece.example.edu.", "alice"),
        ("alice@mail.ece.example.edu", "alice"),
        ("alice@localhost", "alice"),
        ("@other.com:alice@ece.example.edu", "alice"),
        ("alice%ece.example.edu@ece.example.edu", "alice"),
        ("ece.example.edu!alice@ece.example.edu", "alice"),
        ('"alice"@ece.example.edu', "alice"),
        ("postmaster@ece.example.edu", "postmaster"),
        ("alice", "alice"),
    ],
)
def test_local_recipients_are_accepted_from_anyone(server, rcpt, user):
    session = server.session(OUTSIDE, 0.0)
    dialogue(session, "EHLO c", "MAIL FROM:<bob@example.org>")
    assert session.feed(f"RCPT TO:<{rcpt}>") == "250 2.1.5 Ok"
    assert session.last_recipient.local_user == user
    assert session.last_recipient.status is RcptStatus.ACCEPTED


@pytest.mark.parametrize(
    "rcpt",
    ["zed@ece.example.edu", "zed%ece.example.edu@ece.example.edu", "ali.ce@localhost"],
)
def test_unknown_local_users_are_550_for_everyone(server, rcpt):
    for ip in (OUTSIDE, INSIDE):
        session = server.session(ip, 0.0)
        dialogue(session, "EHLO c", "MAIL FROM:<bob@example.org>")
        assert session.feed(f"RCPT TO:<{rcpt}>") == UNKNOWN.format(rcpt)
        assert session.unknown_users == 1 and session.relay_denied == 0


def test_routed_local_address_is_unknown_even_for_trusted_clients(directory):
    server = SmtpServer(SmtpSettings(allow_percent_hack=False), directory)
    session = server.session(INSIDE, 0.0)
    dialogue(session, "EHLO c", "MAIL FROM:<>")
    rcpt = "alice%other.com@ece.example.edu"
    assert session.feed(f"RCPT TO:<{rcpt}>") == UNKNOWN.format(rcpt)


def read_postfix_rejects() -> dict[str, str]:
    if not POSTFIX_LOG.exists():
        pytest.skip(f"real Postfix log fixtures absent: {POSTFIX_LOG}")
    found = {}
    for line in POSTFIX_LOG.read_text(errors="replace").splitlines():
        match = re.search(r"reject: RCPT from [^:]+: (5\d\d [^;]+);", line)
        if match and "Relay access denied" in match.group(1):
            found["relay"] = match.group(1)
        elif match and "in local recipient table" in match.group(1):
            found["unknown"] = match.group(1)
    return found


def test_reject_texts_match_a_real_postfix_log(directory):
    rejects = read_postfix_rejects()
    relay = re.match(r"554 5\.7\.1 <([^>]+)>", rejects["relay"]).group(1)
    unknown = re.match(r"550 5\.1\.1 <([^@]+)@([^>]+)>", rejects["unknown"])
    user, domain = unknown.groups()
    server = SmtpServer(SmtpSettings(local_domains=(domain,)), directory)
    session = server.session(OUTSIDE, 0.0)
    dialogue(session, "EHLO c", "MAIL FROM:<>")
    assert session.feed(f"RCPT TO:<{relay}>") == rejects["relay"]
    assert session.feed(f"RCPT TO:<{user}@{domain}>") == rejects["unknown"]


# ------------------------------------------------------------------ transact


def transcript_bytes(*lines: str) -> int:
    return sum(len(line) + 2 for line in lines)


def test_transact_delivers_locally_with_exact_work(server):
    result = server.transact(
        OUTSIDE, "client.example.org", "bob@example.org",
        ["alice@ece.example.edu"], MESSAGE, now=86400 * 2 + 3661.25,
    )  # fmt: skip
    assert result.decision is SmtpDecision.ACCEPTED
    assert result.reason == "queued as 3D0901 for 1 of 1 recipient(s)"
    assert result.queue_id == "3D0901"  # 250000 us = 0x3D090, counter 1
    assert result.accepted_recipients == ("alice@ece.example.edu",)
    assert result.auth is AuthOutcome.NOT_ATTEMPTED and result.auth_user is None
    assert not result.tls
    assert result.data_reply == "250 2.0.0 Ok: queued as 3D0901"
    received = (
        b"Received: from client.example.org (unknown [192.0.2.7])\r\n"
        b"\tby mail.ece.example.edu (Postfix) with ESMTP id 3D0901\r\n"
        b"\tfor <alice@ece.example.edu>; Wed,  7 Mar 2007 01:01:01 +0000 (UTC)\r\n"
    )
    assert result.message == received + MESSAGE
    assert result.message_size_bytes == len(received) + len(MESSAGE)
    body = len(MESSAGE) + 1 + 3  # ".signature" is stuffed; then ".\r\n"
    net = transcript_bytes(
        "220 mail.ece.example.edu ESMTP Postfix",
        "EHLO client.example.org", FULL_EHLO,
        f"MAIL FROM:<bob@example.org> SIZE={body - 3}", "250 2.1.0 Ok",
        "RCPT TO:<alice@ece.example.edu>", "250 2.1.5 Ok",
        "DATA", "354 End data with <CR><LF>.<CR><LF>",
        "250 2.0.0 Ok: queued as 3D0901",
        "QUIT", "221 2.0.0 Bye",
    ) + body  # fmt: skip
    assert result.directory_work == server.directory.lookup("alice").work
    assert result.work == (
        Work(
            cpu={
                "smtp.session": 1,
                "smtp.command": 5,
                "smtp.byte": body,
                "smtp.address_resolve": 2,
            },
            net_bytes=net,
            # connect+banner, EHLO, DATA, end of data, QUIT (MAIL/RCPT pipelined)
            net_round_trips=5,
        )
        + result.directory_work
    )


def test_transact_relay_attempt_is_rejected_and_counted(server):
    result = server.transact(
        OUTSIDE, "spammer.example", "spam@example.net",
        ["victim@other.com", "user%other.com@ece.example.edu", "zed@ece.example.edu"],
        MESSAGE, now=10.0,
    )  # fmt: skip
    assert result.decision is SmtpDecision.REJECTED
    assert result.reason == "relay access denied for 2 recipient(s)"
    assert [o.status for o in result.recipients] == [
        RcptStatus.RELAY_DENIED,
        RcptStatus.RELAY_DENIED,
        RcptStatus.UNKNOWN_USER,
    ]
    assert result.recipients[1].resolved == "user@other.com"
    assert (result.relay_denied, result.unknown_users) == (2, 1)
    assert result.queue_id is None and result.message is None
    assert result.data_reply is None and result.accepted_recipients == ()
    assert result.work.cpu["smtp.command"] == 6  # EHLO MAIL RCPT*3 QUIT
    assert "smtp.byte" not in result.work.cpu
    assert server.relay_denied_total == 2


def test_transact_partial_acceptance_uses_multi_recipient_header(server):
    result = server.transact(
        OUTSIDE, "c.example", "bob@example.org",
        ["alice@ece.example.edu", "zed@ece.example.edu", "bob@ece.example.edu"],
        MESSAGE, now=0.0, queue_id="ABC123",
    )  # fmt: skip
    assert result.decision is SmtpDecision.PARTIAL
    assert result.accepted_recipients == (
        "alice@ece.example.edu",
        "bob@ece.example.edu",
    )
    assert result.queue_id == "ABC123"
    assert result.message.startswith(
        b"Received: from c.example (unknown [192.0.2.7])\r\n"
        b"\tby mail.ece.example.edu (Postfix) with ESMTP id ABC123;\r\n"
        b"\tMon,  5 Mar 2007 00:00:00 +0000 (UTC)\r\n"
    )


def test_transact_authenticated_relay_over_tls(server):
    result = server.transact(
        OUTSIDE, "laptop", "alice@ece.example.edu", ["friend@other.com"],
        MESSAGE, auth=("alice", "wonderland"), tls=True, now=0.0,
    )  # fmt: skip
    assert result.decision is SmtpDecision.ACCEPTED
    assert result.auth is AuthOutcome.SUCCEEDED and result.auth_user == "alice"
    assert result.tls
    assert b"with ESMTPSA id" in result.message
    cpu = result.work.cpu
    assert cpu["smtp.tls_handshake"] == 1 and cpu["smtp.sasl_auth"] == 1
    assert cpu["smtp.command"] == 8  # EHLO STARTTLS EHLO AUTH MAIL RCPT DATA QUIT
    assert cpu["directory.hash_round"] == 1000
    # banner, EHLO, STARTTLS, 2 handshake, EHLO, AUTH, DATA, end, QUIT
    assert result.work.net_round_trips == 10
    assert cpu["smtp.tls_byte"] > cpu["smtp.byte"]
    assert result.work.net_bytes > TLS_HANDSHAKE_BYTES


def test_transact_with_a_wrong_password_cannot_relay(server):
    result = server.transact(
        OUTSIDE, "laptop", "alice@ece.example.edu", ["friend@other.com"],
        MESSAGE, auth=("alice", "guess"), tls=True, now=0.0,
        auth_mechanism="LOGIN",
    )  # fmt: skip
    assert result.auth is AuthOutcome.FAILED and result.auth_user is None
    assert result.decision is SmtpDecision.REJECTED
    assert result.recipients[0].status is RcptStatus.RELAY_DENIED


def test_transact_auth_not_offered_without_sasl(directory):
    server = SmtpServer(SmtpSettings(), directory)
    result = server.transact(
        OUTSIDE, "laptop", "alice@ece.example.edu", ["friend@other.com"],
        MESSAGE, auth=("alice", "wonderland"), tls=True, now=0.0,
    )  # fmt: skip
    assert result.auth is AuthOutcome.NOT_OFFERED
    assert not result.tls
    assert result.relay_denied == 1


def test_transact_smtps_and_no_helo(server, directory):
    result = server.transact(
        OUTSIDE, "laptop", "alice@ece.example.edu", ["friend@other.com"],
        MESSAGE, auth=("alice", "wonderland"), now=0.0, smtps=True,
    )  # fmt: skip
    assert result.tls and result.decision is SmtpDecision.ACCEPTED
    assert result.work.cpu["smtp.tls_handshake"] == 1
    rude = server.transact(OUTSIDE, None, "x@y.org", ["alice@ece.example.edu"],
                           MESSAGE, now=0.0)  # fmt: skip
    assert rude.decision is SmtpDecision.REJECTED
    assert rude.reason == "sender refused"
    assert rude.recipients[0].status is RcptStatus.NOT_TRIED


def test_transact_size_announced_too_big(directory):
    server = SmtpServer(SmtpSettings(message_size_limit_bytes=10), directory)
    result = server.transact(OUTSIDE, "c", "", ["alice@ece.example.edu"], MESSAGE)
    assert result.reason == "sender refused"
    assert result.work.cpu["smtp.command"] == 3  # EHLO MAIL QUIT


def test_transact_converts_bare_newlines_and_queue_ids_count_up(server):
    first = server.transact(INSIDE, "c", "", ["bob@ece.example.edu"], b"a\n.b\nc")
    second = server.transact(INSIDE, "c", "", ["bob@ece.example.edu"], b"")
    assert first.message.endswith(b"(UTC)\r\na\r\n.b\r\nc\r\n")
    assert (first.queue_id, second.queue_id) == ("000001", "000002")
    assert second.message.endswith(b"(UTC)\r\n")


def test_ldap_directory_lookups_become_network_round_trips(tmp_path: Path):
    write_users(tmp_path / "people.ldif", USERS, "ldap")
    server = SmtpServer(FULL, LdapDirectory(tmp_path / "people.ldif"))
    result = server.transact(
        OUTSIDE, "c", "", ["alice@ece.example.edu", "bob@ece.example.edu"], MESSAGE
    )
    assert result.directory_work.net_round_trips == 2
    assert result.directory_work.cpu == {
        "directory.ldap_op": 2,
        "directory.index_probe": 4,
    }
    assert result.work.net_round_trips == 5 + 2


def test_utc_offset_changes_the_received_date(directory):
    server = SmtpServer(SmtpSettings(utc_offset_s=-5 * 3600), directory)
    result = server.transact(INSIDE, "c", "", ["bob@ece.example.edu"], b"x", now=3600)
    assert b"; Sun,  4 Mar 2007 20:00:00 -0500\r\n" in result.message


# -------------------------------------------------------------------- fuzzing

COMMANDS = [
    "EHLO c",
    "HELO c",
    "MAIL FROM:<bob@example.org>",
    "MAIL FROM:<>",
    "RCPT TO:<alice@ece.example.edu>",
    "RCPT TO:<x@other.com>",
    "DATA",
    ".",
    "RSET",
    "STARTTLS",
    "AUTH PLAIN",
    "AUTH LOGIN",
    "AUTH PLAIN " + plain("alice", "wonderland"),
    "*",
    "VRFY alice",
    "NOOP",
]


def well_formed(reply: str) -> bool:
    lines = reply.split("\r\n")
    if not all(REPLY_LINE.match(line) for line in lines):
        return False
    if len({line[:3] for line in lines}) != 1:
        return False
    return all(x[3:4] == "-" for x in lines[:-1]) and lines[-1][3:4] in ("", " ")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(st.sampled_from(COMMANDS), st.text(max_size=60)), max_size=25),
    st.sampled_from([OUTSIDE, INSIDE]),
)
def test_fuzzed_dialogues_always_get_well_formed_replies(tmp_path_factory, lines, ip):
    directory = fuzz_directory(tmp_path_factory)
    session = SmtpServer(FULL, directory).session(ip, 0.0)
    for line in lines:
        if session.closed:
            break
        in_data = session.in_data  # the DATA phase: body lines get no reply
        reply = session.feed(line)
        if reply is None:
            assert in_data
            continue
        assert well_formed(reply), (line, reply)
    if session.relay_denied == 0 and session.auth_user is None and ip == OUTSIDE:
        for message in session.messages:
            assert all(r.endswith("@ece.example.edu") for r in message.recipients)


_FUZZ: dict[str, PasswdDirectory] = {}


def fuzz_directory(factory) -> PasswdDirectory:
    if "d" not in _FUZZ:
        path = factory.mktemp("fuzz") / "passwd"
        write_users(path, USERS, "passwd")
        _FUZZ["d"] = PasswdDirectory(path)
    return _FUZZ["d"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"", b".", b"..", b"a", b".a", b"a.b", b"\r"]),
                min_size=1, max_size=8))
def test_dot_stuffing_round_trips_through_a_session(tmp_path_factory, lines):
    # the client's stuffing and the server's unstuffing are exact inverses,
    # whether the lines arrive in one chunk or with the final dot line
    message = b"\r\n".join(lines) + b"\r\n"
    directory = fuzz_directory(tmp_path_factory)
    stuffed = _stuffed(message)
    assert not any(line.startswith(b".") and not line.startswith(b"..")
                   for line in stuffed.split(b"\r\n")[:-1])
    for chunks in ([stuffed, b".\r\n"], [stuffed + b".\r\n"]):
        session = SmtpServer(SmtpSettings(), directory).session(OUTSIDE, 0.0)
        dialogue(session, "EHLO c", "MAIL FROM:<>", "RCPT TO:<bob@ece.example.edu>",
                 "DATA")
        replies = [session.feed_data(chunk) for chunk in chunks]
        assert replies[-1].startswith("250")
        data = session.messages[0].data
        assert data.startswith(b"Received: ")
        assert data.endswith(message)
        assert not data[: -len(message)].startswith(b"Received: ", 1)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b"", b".", b"..", b"a", b".a", b"a.b", b"\r"]),
                min_size=1, max_size=8))
def test_transact_queues_the_message_as_sent_with_or_without_dot_lines(
        tmp_path_factory, lines):
    # transact tells the server when its client sent the lines as they are
    # (plain: no line starts with a dot); the queued bytes are the same as a
    # session that scans them finds
    message = b"\r\n".join(lines) + b"\r\n"
    directory = fuzz_directory(tmp_path_factory)
    result = SmtpServer(SmtpSettings(), directory).transact(
        OUTSIDE, "c", "", ["bob@ece.example.edu"], message, queue_id="Q1")
    session = SmtpServer(SmtpSettings(), directory).session(OUTSIDE, 0.0)
    session.queue_id_override = "Q1"
    dialogue(session, "EHLO c", "MAIL FROM:<>", "RCPT TO:<bob@ece.example.edu>",
             "DATA")
    assert session.feed_data(_stuffed(message) + b".\r\n").startswith("250")
    assert result.message == session.messages[0].data
    assert result.message.endswith(message)


PIECES = [b"", b".", b"..", b"a", b".a", b"a.b", b"\r", b"b\rc", b"\n", b"\r\n", b"\n."]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=8),
       st.sampled_from([b"\n", b"\r\n", b""]))
def test_data_form_is_the_stuffing_and_knows_the_lf_form(lines, end):
    # _data_form's body is _stuffed's; "plain" says that no line of it starts
    # with a dot; the LF form it gives (for a message without CR) is
    # lf_message's, and goes_as_is holds exactly when the body is the message
    # and lf_message would only drop CRs
    message = b"\n".join(lines) + (end if lines else b"")
    body, plain, lf = _data_form(message)
    assert body == _stuffed(message)
    assert plain == (not any(line.startswith(b".") for line in body.split(b"\n")))
    if b"\r" in message:
        assert lf is None
    else:
        assert lf == lf_message(message)
    only_crlf = lf_message(message) == message.replace(b"\r", b"")
    if goes_as_is(message):  # no wire line (CRLF-ended) starts with a dot
        assert body == message and only_crlf
        assert not any(line.startswith(b".") for line in message.split(b"\r\n"))
    elif message:  # (an empty one goes as it is too, unvouched)
        assert not (body is message and plain and only_crlf)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=8),
       st.sampled_from([b"\n", b"\r\n"]),
       st.sampled_from([["bob@ece.example.edu"], ["someone@example.org"],
                        ["bob@ece.example.edu", "alice@ece.example.edu"]]))
def test_transact_gives_the_lf_form_of_what_it_queued(tmp_path_factory, lines, end,
                                                     recipients):
    # the LF form a dialogue hands to local delivery is lf_message of the
    # queued bytes, and a client's as_is changes nothing of the result
    message = end.join(lines) + end
    directory = fuzz_directory(tmp_path_factory)
    runs = [
        (as_is, SmtpServer(SmtpSettings(), directory).transact(
            INSIDE, "c", "alice@ece.example.edu", recipients, message,
            queue_id="Q1", as_is=as_is))
        for as_is in ((False, True) if goes_as_is(message) else (False,))
    ]
    for as_is, result in runs:
        assert result.message is not None
        local = any(o.local_user for o in result.recipients)
        if local and (as_is or b"\r" not in message):
            assert result.message_lf == lf_message(result.message)
        else:  # not needed, or it would take a search
            assert result.message_lf is None
    first = dataclasses.replace(runs[0][1], message_lf=None)
    assert all(dataclasses.replace(r, message_lf=None) == first for _, r in runs)
    if goes_as_is(message):
        # a client that counted the CRs gets the same form, not yet made: its
        # head, then the message whose CRs its writer strips
        counted = SmtpServer(SmtpSettings(), directory).transact(
            INSIDE, "c", "alice@ece.example.edu", recipients, message,
            queue_id="Q1", as_is=True, crs=message.count(b"\r"))
        assert dataclasses.replace(counted, message_lf=None) == first
        if runs[-1][1].message_lf is None:
            assert counted.message_lf is None
        else:
            form = counted.message_lf
            assert isinstance(form, LfMessage) and form.crlf is message
            assert bytes(form) == runs[-1][1].message_lf
            assert len(form) == len(bytes(form)) and b"\r" not in form.head


def test_a_result_and_its_work_cross_a_pipe_whole(server):
    """The front plays dialogues in another process (``twin.sim.front``): a
    result, its recipients' outcomes and its Work pickle and come back equal
    -- the empty CPU of a Work (a shared mapping proxy) included."""
    import pickle

    from twin.stages.work import _NO_CPU, Work

    user = USERS[0][0]
    result = server.transact("192.0.2.9", "mx.example.org", "x@example.org",
                             [f"{user}@ece.example.edu", "nosuchuser@ece.example.edu"],
                             b"Subject: t\r\n\r\nhi\r\n", now=5.0, queue_id="Q1")
    again = pickle.loads(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    assert again == result
    assert [o.status for o in again.recipients] == [RcptStatus.ACCEPTED,
                                                    RcptStatus.UNKNOWN_USER]
    empty = pickle.loads(pickle.dumps(Work(locks=1)))
    assert empty == Work(locks=1) and empty.cpu is _NO_CPU
