"""Tests for twin.stages.greylist: spamd and postgrey greylisting."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from twin.stages.greylist import (
    CPU_UNITS,
    TEMPFAIL_TEXT,
    Greylist,
    GreylistDecision,
    GreylistSettings,
    blacklist_stutter_chars,
)
from twin.stages.spamdb import parse_spamd_log_line
from twin.stages.work import NO_WORK

LOGS = Path("/work/shared/data/openbsd-spamd-logs")
DB = "var/db/spamd"
PG_LOG = "var/spool/postfix/postgrey/log"
D = GreylistDecision

IP = "192.0.2.10"
HELO = "mx.example.com"
FROM = "<alice@example.com>"
TO = "<bob@ece.example.edu>"
WHITEEXP = 864 * 3600

DEFERRED_CPU = {
    "greylist.lookup": 3,
    "greylist.update": 1,
    "greylist.session": 1,
    "greylist.stutter_char": 10,
}


def cpu(result) -> dict[str, int]:
    return dict(result.work.cpu)


def grey_line(g: Greylist) -> str:
    return next(line for line in g.dump().splitlines() if line.startswith("GREY"))


# ------------------------------------------------------------------ spamd


def test_first_sight_is_deferred_with_tempfail_and_stutter():
    g = Greylist(GreylistSettings())
    r = g.check(IP, HELO, FROM, TO, 0.0)
    assert r.decision is D.DEFERRED
    assert (r.reply_code, r.reply_text) == ("451", TEMPFAIL_TEXT)
    assert r.reason == "greylisted: first sight of this tuple"
    assert r.stutter_s == 10.0
    assert cpu(r) == DEFERRED_CPU
    assert r.work.writes == ((DB, 4096),)
    assert r.work.fsyncs == 0
    # first=now, pass=expire=now+greyexp, bcount 1, pcount 0
    assert grey_line(g) == (
        "GREY|192.0.2.10|mx.example.com|alice@example.com|bob@ece.example.edu"
        "|0|14400|14400|1|0"
    )


def test_retry_at_passtime_is_deferred_and_pass_unchanged():
    g = Greylist(GreylistSettings())
    g.check(IP, HELO, FROM, TO, 0.0)
    r = g.check(IP, HELO, FROM, TO, 1500.0)  # first + passtime == now: not yet
    assert r.decision is D.DEFERRED
    assert r.reason == "greylisted: retry before passtime"
    assert grey_line(g).endswith("|0|14400|14400|2|0")


def test_retry_after_passtime_is_still_deferred_but_sets_pass():
    g = Greylist(GreylistSettings())
    g.check(IP, HELO, FROM, TO, 0.0)
    r = g.check(IP, HELO, FROM, TO, 1501.0)
    assert r.decision is D.DEFERRED
    assert r.reply_code == "451"
    assert r.reason == "greylisted: retry after passtime, whitelisted at next scan"
    assert grey_line(g).endswith("|0|1501|14400|2|0")


def test_next_scan_whitelists_the_ip_and_mail_passes():
    g = Greylist(GreylistSettings())
    g.check(IP, HELO, FROM, TO, 0.0)
    g.check(IP, HELO, FROM, TO, 1501.0)
    # another sender from the same IP, at the scan time 1560
    r = g.check(IP, "other.helo", "<carol@example.net>", TO, 1560.0)
    assert r.decision is D.PASSED
    assert r.reply_code == ""
    assert r.stutter_s == 0.0
    # one scan: 1 entry examined, tuple deleted + IP added, one IP in pf's
    # table; then the pass: one lookup and spamlogd's refresh
    assert cpu(r) == {
        "greylist.scan_entry": 1,
        "greylist.table_reload": 1,
        "greylist.table_entry": 1,
        "greylist.update": 3,
        "greylist.lookup": 1,
    }
    assert r.work.writes == ((DB, 8192), (DB, 4096))
    assert g.dump() == f"WHITE|192.0.2.10|||0|1501|{1560 + WHITEEXP}|2|1\n"


def test_scan_before_passtime_retry_does_not_whitelist():
    g = Greylist(GreylistSettings())
    g.check(IP, HELO, FROM, TO, 0.0)
    g.check(IP, HELO, FROM, TO, 1000.0)
    g.scan(7200.0)
    assert g.dump().startswith("GREY|")
    r = g.check(IP, "other.helo", "<carol@example.net>", TO, 7200.0)
    assert r.decision is D.DEFERRED


def test_spamlogd_refreshes_whitelist_expiry_only_when_on():
    for spamlogd, expire, pcount in (
        (True, 5000 + WHITEEXP, 2),
        (False, 1560 + WHITEEXP, 0),
    ):
        g = Greylist(GreylistSettings(spamlogd=spamlogd))
        g.check(IP, HELO, FROM, TO, 0.0)
        g.check(IP, HELO, FROM, TO, 1501.0)
        r1 = g.check(IP, HELO, FROM, TO, 1560.0)
        r2 = g.check(IP, HELO, FROM, TO, 5000.0)
        assert (r1.decision, r2.decision) == (D.PASSED, D.PASSED)
        assert g.dump() == f"WHITE|192.0.2.10|||0|1501|{expire}|2|{pcount}\n"
        assert r2.work.writes == (((DB, 4096),) if spamlogd else ())


def test_greyexp_expiry_without_retry():
    g = Greylist(GreylistSettings())
    g.check(IP, HELO, FROM, TO, 0.0)
    assert len(g) == 1
    g.scan(14340.0)
    assert len(g) == 1
    w = g.scan(14400.0)  # expire <= now: deleted
    assert len(g) == 0
    assert dict(w.cpu) == {
        "greylist.scan_entry": 1,
        "greylist.table_reload": 1,
        "greylist.update": 1,
    }
    r = g.check(IP, HELO, FROM, TO, 14401.0)
    assert r.reason == "greylisted: first sight of this tuple"


def test_expiry_wins_over_a_late_pass():
    g = Greylist(GreylistSettings())
    g.check(IP, HELO, FROM, TO, 0.0)
    g.check(IP, HELO, FROM, TO, 14399.0)  # pass = 14399, expire = 14400
    g.scan(14400.0)
    assert len(g) == 0  # deleted, not whitelisted


def test_whiteexp_expiry_and_catch_up_scan_counts():
    g = Greylist(GreylistSettings(spamlogd=False))
    g.check(IP, HELO, FROM, TO, 0.0)
    g.check(IP, HELO, FROM, TO, 1501.0)
    g.scan(1560.0)  # scan 26: whitelisted, expire 1560 + whiteexp
    expire = 1560 + WHITEEXP
    w = g.scan(expire - 60.0)
    assert len(g) == 1
    scans = int((expire - 60.0) / 60) - 26
    assert dict(w.cpu) == {
        "greylist.scan_entry": scans,
        "greylist.table_reload": scans,
        "greylist.table_entry": scans,
    }
    w = g.scan(float(expire))
    assert len(g) == 0
    assert dict(w.cpu) == {
        "greylist.scan_entry": 1,
        "greylist.table_reload": 1,
        "greylist.update": 1,
    }
    r = g.check(IP, HELO, FROM, TO, expire + 1.0)
    assert r.decision is D.DEFERRED


def test_scans_run_lazily_at_multiples_of_the_interval():
    g = Greylist(GreylistSettings(), start_s=30.0)
    r = g.check(IP, HELO, FROM, TO, 89.0)  # first scan is due at 90
    assert cpu(r) == DEFERRED_CPU
    assert g.scan(89.5) is NO_WORK
    r = g.check(IP, HELO, FROM, TO, 90.0)
    assert cpu(r) == {
        **DEFERRED_CPU,
        "greylist.scan_entry": 1,
        "greylist.table_reload": 1,
    }
    g2 = Greylist(GreylistSettings(scan_interval_s=30))
    g2.check(IP, HELO, FROM, TO, 0.0)
    assert dict(g2.scan(90.0).cpu)["greylist.scan_entry"] == 3


def test_state_is_bounded_by_expiry():
    g = Greylist(GreylistSettings(greytraps=("trap@ece.example.edu",)))
    for i in range(500):
        g.check(f"198.51.100.{i % 250}", HELO, f"<s{i}@spam.example>", TO, float(i))
    g.check("203.0.113.1", HELO, FROM, "<trap@ece.example.edu>", 600.0)
    assert len(g) == 500 + 1 + 1
    g.scan(14400.0 + 600.0)
    assert len(g) == 2  # the tuples expired; the trapped IP and the trap stay
    w = g.scan(86400.0 + 600.0)
    assert len(g) == 1  # the trap address stays
    assert dict(w.cpu)["greylist.update"] == 1
    assert g.dump() == "SPAMTRAP|trap@ece.example.edu\n"


def test_greytrap_blacklists_client_for_24_hours_then_frees_it():
    g = Greylist(GreylistSettings(greytraps=("trap@ece.example.edu",)))
    r = g.check(IP, HELO, FROM, "<Trap@ECE.example.edu>", 0.0)
    assert r.decision is D.TRAPPED
    assert (r.reply_code, r.reply_text, r.stutter_s) == ("451", TEMPFAIL_TEXT, 10.0)
    assert cpu(r) == {
        "greylist.lookup": 2,
        "greylist.update": 1,
        "greylist.session": 1,
        "greylist.stutter_char": 10,
    }
    # not blacklisted until a scan hands the IP to spamd's blacklist
    assert g.check(IP, HELO, FROM, TO, 30.0).decision is D.DEFERRED
    r = g.check(IP, HELO, FROM, TO, 60.0)
    assert r.decision is D.BLACKLISTED
    assert r.reply_code == "450"
    assert r.reply_text == "Your address 192.0.2.10 has mailed to spamtraps here"
    # the whole dialogue, one character a second: banner (24-char date),
    # four replies, the 450 line, each with CR LF
    lines = (
        len("220 mail.ece.example.edu ESMTP spamd IP-based SPAM blocker; ") + 24,
        len("250 Hello, spam sender. Pleased to be wasting your time."),
        len(
            "250 You are about to try to deliver spam. "
            "Your time will be spent, for nothing."
        ),
        len("250 This is hurting you more than it is hurting me."),
        len('354 Enter spam, end with "." on a line by itself'),
        len("450 ") + len(r.reply_text),
    )
    chars = sum(n + 2 for n in lines)
    assert r.stutter_s == float(chars) == float(blacklist_stutter_chars(IP))
    assert cpu(r) == {
        "greylist.scan_entry": 3,  # trap address, trapped IP, tuple of 30 s
        "greylist.table_reload": 1,
        "greylist.table_entry": 1,
        "greylist.lookup": 1,
        "greylist.session": 1,
        "greylist.stutter_char": chars,
    }
    assert "TRAPPED|192.0.2.10|86400\n" in g.dump()
    assert g.check(IP, HELO, FROM, TO, 86399.0).decision is D.BLACKLISTED
    r = g.check(IP, HELO, FROM, TO, 86400.0)
    assert r.decision is D.DEFERRED
    assert r.reason == "greylisted: first sight of this tuple"


def test_blacklist_reply_550():
    g = Greylist(GreylistSettings(greytraps=("trap@x.edu",), blacklist_reply="550"))
    g.check(IP, HELO, FROM, "<trap@x.edu>", 0.0)
    assert g.check(IP, HELO, FROM, TO, 60.0).reply_code == "550"


def test_whitelisted_ip_mailing_a_trap_is_passed_by_pf():
    g = Greylist(GreylistSettings(greytraps=("trap@ece.example.edu",)))
    g.check(IP, HELO, FROM, TO, 0.0)
    g.check(IP, HELO, FROM, TO, 1501.0)
    r = g.check(IP, HELO, FROM, "<trap@ece.example.edu>", 1560.0)
    assert r.decision is D.PASSED


@pytest.mark.parametrize(
    ("ip", "helo", "sender", "decision", "probes"),
    [
        ("192.0.2.10", "x.test", "<a@b.test>", D.WHITELISTED, 1),  # the IP
        ("198.51.100.7", "x.test", "<a@b.test>", D.WHITELISTED, 2),  # the /24
        ("203.0.113.5", "mx.example.com", "<a@b.test>", D.WHITELISTED, 4),  # HELO
        ("203.0.113.5", "foo.test", "<a@lists.example.com>", D.WHITELISTED, 6),
        ("203.0.113.5", "mx.notexample.com", "<a@b.org>", D.DEFERRED, 7),
    ],
)
def test_static_whitelist_by_ip_cidr_and_domain(ip, helo, sender, decision, probes):
    s = GreylistSettings(whitelist=("192.0.2.10", "198.51.100.0/24", "example.com"))
    for flavour in ("spamd", "postgrey"):
        g = Greylist(GreylistSettings(**{**_fields(s), "flavour": flavour}))
        r = g.check(ip, helo, sender, TO, 0.0)
        assert r.decision is decision
        assert cpu(r)["greylist.whitelist_probe"] == probes
        if decision is D.WHITELISTED:
            assert len(g) == 0
            assert r.reply_code == ""
            expected = {"greylist.whitelist_probe": probes}
            if flavour == "postgrey":
                expected["greylist.policy_request"] = 1
            assert cpu(r) == expected


def _fields(settings: GreylistSettings) -> dict:
    return {name: getattr(settings, name) for name in settings.__dataclass_fields__}


def test_use_helo_changes_the_key():
    with_helo = Greylist(GreylistSettings(use_helo=True))
    without = Greylist(GreylistSettings(use_helo=False))
    for g in (with_helo, without):
        g.check(IP, "mx1.example.com", FROM, TO, 0.0)
        g.check(IP, "mx2.example.com", FROM, TO, 10.0)
    assert len(with_helo) == 2
    assert len(without) == 1
    assert grey_line(without) == (
        "GREY|192.0.2.10||alice@example.com|bob@ece.example.edu|0|14400|14400|2|0"
    )


def test_time_going_back_is_refused():
    g = Greylist(GreylistSettings())
    g.check(IP, HELO, FROM, TO, 100.0)
    with pytest.raises(ValueError, match=r"^now \(99.0 s\) is before"):
        g.check(IP, HELO, FROM, TO, 99.0)


def test_passtime_setting_changes_the_outcome():
    for passtime, decision in ((25 * 60, D.DEFERRED), (5 * 60, D.PASSED)):
        g = Greylist(GreylistSettings(passtime_s=passtime))
        g.check(IP, HELO, FROM, TO, 0.0)
        g.check(IP, HELO, FROM, TO, 900.0)
        assert g.check(IP, HELO, FROM, TO, 960.0).decision is decision


def test_stutter_setting_changes_the_hold():
    g = Greylist(GreylistSettings(stutter_s=0))
    r = g.check(IP, HELO, FROM, TO, 0.0)
    assert r.stutter_s == 0.0
    assert "greylist.stutter_char" not in r.work.cpu


def test_spamdb_dump_round_trip_through_load():
    s = GreylistSettings(greytraps=("trap@ece.example.edu",))
    g = Greylist(s)
    g.check(IP, HELO, FROM, TO, 0.0)
    g.check(IP, HELO, FROM, TO, 1501.0)
    g.check("203.0.113.9", HELO, FROM, TO, 1510.0)
    g.check("198.51.100.3", "h", FROM, "<trap@ece.example.edu>", 1520.0)
    g.check("203.0.113.9", HELO, FROM, TO, 1530.5)
    g.scan(1560.0)
    text = g.dump()
    assert sorted(line.split("|")[0] for line in text.splitlines()) == [
        "GREY",
        "SPAMTRAP",
        "TRAPPED",
        "WHITE",
    ]
    h = Greylist(s)
    h.load(text)
    assert h.dump() == text
    assert h.scan(1560.0).writes == ()  # catch up with g's scans: no changes
    # the loaded state decides as the original does
    for when in (1600.0, 1800.0, 14400.0 + 1600.0):
        for ip in (IP, "203.0.113.9", "198.51.100.3"):
            a = g.check(ip, HELO, FROM, TO, when)
            b = h.check(ip, HELO, FROM, TO, when)
            assert (a.decision, a.reason, dict(a.work.cpu)) == (
                b.decision,
                b.reason,
                dict(b.work.cpu),
            )
    assert h.dump() == g.dump()


def test_every_reported_unit_is_declared():
    g = Greylist(GreylistSettings(greytraps=("t@x.edu",), whitelist=("example.org",)))
    kinds = set()
    for when, ip, to in [
        (0, IP, TO),
        (1600, IP, TO),
        (1700, "203.0.113.1", "<t@x.edu>"),
    ]:
        kinds |= set(g.check(ip, HELO, FROM, to, float(when)).work.cpu)
    kinds |= set(g.check("203.0.113.1", HELO, FROM, TO, 4000.0).work.cpu)
    kinds |= set(g.check(IP, HELO, FROM, TO, 4000.0).work.cpu)
    assert kinds <= set(CPU_UNITS)
    assert "greylist.table_entry" in kinds


# ----------------------------------------------------- real spamd log lines


def _log_events(name: str):
    path = LOGS / name
    if not path.exists():
        pytest.skip(f"{path} is absent (real spamd -v log excerpts)")
    events = [parse_spamd_log_line(line) for line in path.read_text().splitlines()]
    return [e for e in events if e is not None]


def test_replay_book_of_pf_grey_tuples_deferred_on_first_sight():
    events = [e for e in _log_events("bookofpf-delilah-spamd.log") if e.kind == "GREY"]
    assert len(events) == 7
    g = Greylist(GreylistSettings(use_helo=False))  # the log has no HELO
    reasons = []
    for e in events:
        r = g.check(e.ip, "", f"<{e.sender}>", f"<{e.recipient}>", e.time_s)
        assert r.decision is D.DEFERRED
        assert r.reply_code == "451"
        reasons.append(r.reason)
    # distinct (ip, from, to): one on 2 Oct, two on 6 Nov; the rest are retries
    # within minutes, long before passtime
    assert reasons.count("greylisted: first sight of this tuple") == 3
    assert reasons.count("greylisted: retry before passtime") == 4


def test_replay_book_of_pf_greytrap_sequence():
    # The book's greytrap is wkitp98zpu.fsf@datadok.no. The trapped IP keeps
    # being greylisted until spamd's scan (between 09:51:18 and 09:51:20: the
    # next connection lists spamd-greytrap); then its mail is (BLACK).
    events = _log_events("bookofpf-delilah-spamd.log")
    nov6 = [e for e in events if e.ip == "210.214.12.57"]
    first_connect = 309 * 86400 + 9 * 3600 + 50 * 60 + 25  # Nov 6 09:50:25
    g = Greylist(
        GreylistSettings(use_helo=False, greytraps=("wkitp98zpu.fsf@datadok.no",)),
        start_s=first_connect - 6,  # scans at hh:mm:19
    )
    decisions = []
    for e in nov6:
        r = g.check(e.ip, "", f"<{e.sender}>", f"<{e.recipient}>", e.time_s)
        decisions.append(r.decision)
        if e.kind == "GREY":
            assert r.reply_code == "451"
        else:
            assert r.decision is D.BLACKLISTED
    assert decisions == [
        D.TRAPPED,
        D.DEFERRED,
        D.TRAPPED,
        D.TRAPPED,
        D.DEFERRED,
        D.BLACKLISTED,
        D.BLACKLISTED,
    ]


# --------------------------------------------------------------- postgrey

PG = GreylistSettings(flavour="postgrey")


def test_postgrey_first_sight_deferred_for_300_seconds():
    g = Greylist(PG)
    r = g.check(IP, HELO, FROM, TO, 0.0)
    assert r.decision is D.DEFERRED
    assert r.reply_code == "450"
    assert r.reply_text == (
        "Greylisted, see http://isg.ee.ethz.ch/tools/postgrey/help/ece.example.edu.html"
    )
    assert r.stutter_s == 0.0
    assert cpu(r) == {
        "greylist.policy_request": 1,
        "greylist.lookup": 2,
        "greylist.update": 1,
    }
    assert r.work.writes == ((PG_LOG, 128),)
    assert g.check(IP, HELO, FROM, TO, 299.0).decision is D.DEFERRED
    r = g.check(IP, HELO, FROM, TO, 300.0)
    assert r.decision is D.PASSED
    assert r.reason == "triplet waited delay_s: passed"
    assert cpu(r) == {
        "greylist.policy_request": 1,
        "greylist.lookup": 2,
        "greylist.update": 2,  # the triplet and the client's pass count
    }
    assert g.dump() == (
        "DB\t192.0.2.0/alice@example.com/bob@ece.example.edu\t0,300\n"
        "AWL\t192.0.2.10\t1,300\n"
    )
    r = g.check(IP, HELO, FROM, TO, 400.0)
    assert (r.decision, r.reason) == (D.PASSED, "triplet passed before: passed")


def test_postgrey_delay_setting():
    g = Greylist(GreylistSettings(flavour="postgrey", delay_s=60))
    g.check(IP, HELO, FROM, TO, 0.0)
    assert g.check(IP, HELO, FROM, TO, 60.0).decision is D.PASSED


def test_postgrey_shares_the_24_net():
    g = Greylist(PG)
    g.check("192.0.2.10", HELO, FROM, TO, 0.0)
    assert g.check("192.0.2.77", HELO, FROM, TO, 300.0).decision is D.PASSED
    assert g.check("192.0.3.10", HELO, FROM, TO, 300.0).decision is D.DEFERRED
    g32 = Greylist(GreylistSettings(flavour="postgrey", net_prefix=32))
    g32.check("192.0.2.10", HELO, FROM, TO, 0.0)
    assert g32.check("192.0.2.77", HELO, FROM, TO, 300.0).decision is D.DEFERRED
    g16 = Greylist(GreylistSettings(flavour="postgrey", net_prefix=16))
    g16.check("192.0.2.10", HELO, FROM, TO, 0.0)
    assert g16.check("192.0.3.77", HELO, FROM, TO, 300.0).decision is D.PASSED
    assert g16.dump().startswith("DB\t192.0.0.0/")


def test_postgrey_sender_verp_and_extension_share_a_key():
    g = Greylist(PG)
    g.check(IP, HELO, "<bounce+1234@lists.example.org>", TO, 0.0)
    r = g.check(IP, HELO, "<bounce+9876@lists.example.org>", TO, 300.0)
    assert r.decision is D.PASSED
    g.check(IP, HELO, "<owner-2007-123@x.org>", TO, 400.0)
    assert g.check(IP, HELO, "<owner-2008-456@x.org>", TO, 700.0).decision is D.PASSED
    assert "/owner-#-#@x.org/" in g.dump()


def test_postgrey_retry_window_resets_first_seen():
    g = Greylist(PG)
    g.check(IP, HELO, FROM, TO, 0.0)
    r = g.check(IP, HELO, FROM, TO, 2 * 86400 + 1.0)
    assert r.decision is D.DEFERRED
    assert r.reason == "greylisted: retried after retry_window_s, first-seen reset"
    assert g.check(IP, HELO, FROM, TO, 2 * 86400 + 300.0).decision is D.DEFERRED
    assert g.check(IP, HELO, FROM, TO, 2 * 86400 + 301.0).decision is D.PASSED
    # with a longer window the same retry passes
    g7 = Greylist(GreylistSettings(flavour="postgrey", retry_window_s=7 * 86400))
    g7.check(IP, HELO, FROM, TO, 0.0)
    assert g7.check(IP, HELO, FROM, TO, 2 * 86400 + 1.0).decision is D.PASSED


def test_postgrey_auto_whitelists_a_client_after_5_passes_in_distinct_hours():
    g = Greylist(PG)
    for i in range(5):
        to = f"<user{i}@ece.example.edu>"
        assert g.check(IP, HELO, FROM, to, i * 3600.0).decision is D.DEFERRED
        assert g.check(IP, HELO, FROM, to, i * 3600.0 + 300).decision is D.PASSED
    assert "AWL\t192.0.2.10\t5,14700\n" in g.dump()
    r = g.check(IP, HELO, FROM, "<new@ece.example.edu>", 5 * 3600.0)
    assert r.decision is D.PASSED
    assert r.reason == "client auto-whitelisted after passing greylisting"
    assert cpu(r) == {"greylist.policy_request": 1, "greylist.lookup": 1}
    r = g.check(IP, HELO, FROM, "<new2@ece.example.edu>", 14700.0 + 3600)
    assert cpu(r)["greylist.update"] == 1  # counted again, an hour later
    assert "AWL\t192.0.2.10\t6,18300\n" in g.dump()
    # another client of the same /24 is not auto-whitelisted
    r = g.check("192.0.2.11", HELO, FROM, "<new3@ece.example.edu>", 20000.0)
    assert r.decision is D.DEFERRED


def test_postgrey_passes_in_one_hour_count_once():
    g = Greylist(PG)
    for i in range(5):
        g.check(IP, HELO, FROM, f"<user{i}@ece.example.edu>", float(i))
    for i in range(5):
        to = f"<user{i}@ece.example.edu>"
        assert g.check(IP, HELO, FROM, to, 300.0 + i).decision is D.PASSED
    assert "AWL\t192.0.2.10\t1,300\n" in g.dump()
    assert g.check(IP, HELO, FROM, "<new@x.edu>", 400.0).decision is D.DEFERRED
    off = Greylist(GreylistSettings(flavour="postgrey", auto_whitelist_clients=0))
    r = off.check(IP, HELO, FROM, TO, 0.0)
    assert cpu(r)["greylist.lookup"] == 1
    off.check(IP, HELO, FROM, TO, 300.0)
    assert "AWL" not in off.dump()


def test_postgrey_maintenance_deletes_stale_and_old_entries():
    g = Greylist(PG)
    g.check(IP, HELO, FROM, TO, 0.0)  # passes at 300, kept 35 days
    g.check("203.0.113.1", HELO, FROM, TO, 10.0)  # never retried
    g.check(IP, HELO, FROM, TO, 300.0)
    assert len(g) == 3  # two triplets and one client count
    w = g.scan(86400.0 * 2)
    assert len(g) == 3
    assert dict(w.cpu) == {"greylist.scan_entry": 6}
    w = g.scan(86400.0 * 3)  # 259200 - 10 > retry window: the unretried goes
    assert len(g) == 2
    assert dict(w.cpu) == {"greylist.scan_entry": 3, "greylist.update": 1}
    assert w.writes == ((PG_LOG, 128),)
    g.scan(86400.0 * 35)
    assert len(g) == 2
    g.scan(86400.0 * 36)  # last seen 300 s, more than 35 days ago
    assert len(g) == 0


def test_postgrey_dump_round_trip():
    g = Greylist(PG)
    g.check(IP, HELO, FROM, TO, 0.0)
    g.check("203.0.113.1", HELO, "<>", "<x@ece.example.edu>", 10.0)
    g.check(IP, HELO, FROM, TO, 300.5)
    text = g.dump()
    h = Greylist(PG)
    h.load(text)
    assert h.dump() == text
    assert "DB\t203.0.113.0//x@ece.example.edu\t10,10\n" in text
    a = g.check("203.0.113.1", HELO, "<>", "<x@ece.example.edu>", 400.0)
    b = h.check("203.0.113.1", HELO, "<>", "<x@ece.example.edu>", 400.0)
    assert a == b


# --------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"flavour": "greylistd"},
            "flavour must be one of spamd, postgrey, got 'greylistd'",
        ),
        ({"passtime_s": -1}, r"passtime_s must be a number in \[0, inf\), got -1"),
        ({"passtime_s": 14400}, r"passtime_s \(14400\) must be below greyexp_s"),
        ({"greyexp_s": 0}, r"greyexp_s must be a number in \(0, inf\), got 0"),
        ({"whiteexp_s": math.nan}, "whiteexp_s must be a number"),
        ({"trapexp_s": "1d"}, "trapexp_s must be a number .* got '1d'"),
        ({"scan_interval_s": 0}, r"scan_interval_s must be a number in \(0"),
        ({"stutter_s": 91}, r"stutter_s must be a number in \[0, 90\], got 91"),
        (
            {"blacklist_reply": "451"},
            "blacklist_reply must be '450' or '550', got '451'",
        ),
        ({"use_helo": "yes"}, "use_helo must be true or false, got 'yes'"),
        ({"greytraps": ("nobody",)}, "greytrap 'nobody' must be an address"),
        ({"whitelist": ("300.1.1.1",)}, "whitelist entry '300.1.1.1' is not an IPv4"),
        (
            {"whitelist": ("10.0.0.0/33",)},
            "whitelist entry '10.0.0.0/33' is not a CIDR",
        ),
        ({"whitelist": ("bad domain!",)}, "whitelist entry 'bad domain!' must be"),
        ({"delay_s": -5}, r"delay_s must be a number in \[0, inf\), got -5"),
        ({"max_age_s": 0}, "max_age_s must be a number"),
        ({"retry_window_s": -1}, "retry_window_s must be a number"),
        ({"auto_whitelist_clients": -1}, r"auto_whitelist_clients must be an integer"),
        ({"net_prefix": 0}, r"net_prefix must be an integer in \[1, 32\], got 0"),
        ({"net_prefix": 33}, r"net_prefix must be an integer in \[1, 32\], got 33"),
        ({"maintenance_interval_s": 0}, "maintenance_interval_s must be a number"),
    ],
)
def test_settings_validation(changes, message):
    with pytest.raises(ValueError, match=message) as info:
        GreylistSettings(**changes)
    assert str(info.value)[0].islower()


def test_settings_defaults_are_the_daemons():
    s = GreylistSettings()
    assert (s.passtime_s, s.greyexp_s, s.whiteexp_s, s.trapexp_s) == (
        1500,
        14400,
        3110400,
        86400,
    )
    assert (s.scan_interval_s, s.stutter_s, s.blacklist_reply) == (60, 10, "450")
    assert (s.delay_s, s.max_age_s, s.retry_window_s) == (300, 3024000, 172800)
    assert (s.auto_whitelist_clients, s.net_prefix) == (5, 24)
    GreylistSettings(whitelist=("10.0.0.1", "10.1.0.0/16", "Example.COM."))
