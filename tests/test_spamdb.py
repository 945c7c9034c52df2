"""Tests for twin.stages.spamdb: spamdb lines, postgrey dumps, spamd log lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.stages.greylist import Greylist, GreylistDecision, GreylistSettings
from twin.stages.spamdb import (
    AwlRecord,
    GreyRecord,
    PostgreyRecord,
    SpamtrapRecord,
    TrappedRecord,
    WhiteRecord,
    format_postgrey_dump,
    format_spamdb,
    format_time,
    parse_postgrey_dump,
    parse_spamd_log_line,
    parse_spamdb,
)

LOGS = Path("/work/shared/data/openbsd-spamd-logs")

FULL = (
    "GREY|192.0.2.10|mx.example.com|alice@example.com|bob@ece.example.edu"
    "|1160000000|1160001600|1160014400|3|0\n"
    "WHITE|198.51.100.7|||1159990000|1159991600|1163101600|4|12\n"
    "TRAPPED|203.0.113.66|1160086400\n"
    "SPAMTRAP|trap@ece.example.edu\n"
)


def test_full_lines_parse_and_format_back():
    records = parse_spamdb(FULL)
    assert records == [
        GreyRecord(
            "192.0.2.10",
            "mx.example.com",
            "alice@example.com",
            "bob@ece.example.edu",
            1160000000,
            1160001600,
            1160014400,
            3,
            0,
        ),
        WhiteRecord("198.51.100.7", 1159990000, 1159991600, 1163101600, 4, 12),
        TrappedRecord("203.0.113.66", 1160086400),
        SpamtrapRecord("trap@ece.example.edu"),
    ]
    assert format_spamdb(records) == FULL


def test_fractional_simulated_times_survive():
    assert format_time(12.0) == "12"
    assert format_time(12.25) == "12.25"
    text = "TRAPPED|192.0.2.1|86400.5\n"
    assert format_spamdb(parse_spamdb(text)) == text


def test_2004_layout_without_helo():
    (record,) = parse_spamdb("GREY|192.0.2.1|<a@b.example>|<c@d.example>|10|20|30|2|0")
    assert record == GreyRecord(
        "192.0.2.1", "", "<a@b.example>", "<c@d.example>", 10, 20, 30, 2, 0
    )


def test_abbreviated_line_fills_spamd_first_sight_values():
    (record,) = parse_spamdb("GREY|192.0.2.1|helo.example|a@b.example|1000")
    assert record == GreyRecord(
        "192.0.2.1", "helo.example", "a@b.example", "", 1000, 15400, 15400, 1, 0
    )
    (record,) = parse_spamdb("GREY|192.0.2.1|h|a@b|1000", greyexp_s=60)
    assert (record.pass_s, record.expire_s) == (1060, 1060)


def test_blank_and_comment_lines_are_skipped():
    assert parse_spamdb("\n# spamdb output\n\nSPAMTRAP|t@x.edu\n") == [
        SpamtrapRecord("t@x.edu")
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("BLACK|1.2.3.4", "line 1: unknown record type 'BLACK'"),
        ("TRAPPED|1.2.3.4", "line 1: TRAPPED needs ip|expire"),
        ("SPAMTRAP|", "line 1: SPAMTRAP needs one address"),
        ("GREY|1.2.3.4|h|a@b|c@d", "line 1: GREY has no first-seen time"),
        (
            "SPAMTRAP|t@x\nGREY|1.2.3.4|h|a@b|c@d|1|2|3|x|0",
            "line 2: expected an integer",
        ),
        ("GREY|1.2.3.4|h|a@b|c@d|1|soon|3|1|0", "line 1: expected a time in seconds"),
        ("WHITE|1.2.3.4|||", "line 1: WHITE needs"),
    ],
)
def test_unreadable_lines_name_the_line(text, message):
    with pytest.raises(ValueError, match=message):
        parse_spamdb(text)


def test_real_abbreviated_spamdb_dump():
    path = LOGS / "misc-spamdb-dump.txt"
    if not path.exists():
        pytest.skip(f"{path} is absent (spamdb lines quoted on noqqe.de)")
    records = parse_spamdb(path.read_text())
    assert [(r.ip, r.helo, r.sender, r.first_s, r.pass_s) for r in records] == [
        ("173.0.84.225", "xxx", "service@paypal.com", 1419811111, 1419814111),
        ("173.0.84.226", "xxx", "service@paypal.com", 1419834111, 1419834111),
        ("173.0.84.228", "xxx", "service@paypal.com", 1419811111, 1419814111),
    ]
    assert [r.expire_s for r in records] == [1419825511, 1419848511, 1419825511]
    # loaded into spamd: each tuple has passed, so the next scan whitelists
    # its IP and the client's next connection goes to the MTA
    g = Greylist(GreylistSettings())
    g.load(path.read_text())
    assert len(g) == 3
    r = g.check("173.0.84.225", "xxx", "<service@paypal.com>", "<x@y.z>", 1419814200.0)
    assert r.decision is GreylistDecision.PASSED
    r = g.check("173.0.84.226", "xxx", "<service@paypal.com>", "<x@y.z>", 1419814200.0)
    assert r.decision is GreylistDecision.DEFERRED
    g.scan(1419834120.0)
    assert g.dump().count("WHITE|") == 3


def test_postgrey_dump_round_trip_and_errors():
    records = [
        PostgreyRecord("192.0.2.0", "a@b.example", "c@d.example", 10, 320.5),
        PostgreyRecord("203.0.113.0", "", "x/y@d.example", 1, 1),
        AwlRecord("192.0.2.10", 5, 14700),
    ]
    text = format_postgrey_dump(records)
    assert text.splitlines()[0] == "DB\t192.0.2.0/a@b.example/c@d.example\t10,320.5"
    assert parse_postgrey_dump(text) == [
        records[0],
        PostgreyRecord("203.0.113.0", "/x", "y@d.example", 1, 1),  # '/' is ambiguous
        records[2],
    ]
    assert parse_postgrey_dump("DB\t1.2.3.0/a@b/c@d\t1,2,7\n")[0].last_s == 2
    with pytest.raises(ValueError, match="line 1: expected DB<TAB>key"):
        parse_postgrey_dump("1.2.3.0/a@b/c@d=1,2\n")
    with pytest.raises(ValueError, match="line 1: key must be net/sender/recipient"):
        parse_postgrey_dump("DB\tnokey\t1,2\n")


def test_log_tuple_lines():
    event = parse_spamd_log_line(
        "Oct 2 19:55:05 delilah spamd[26905]: (GREY) 83.23.213.115: "
        "<gilbert@keyholes.net> -> <wkitp98zpu.fsf@datadok.no>"
    )
    assert event is not None
    assert event.time_s == (273 + 1) * 86400 + 19 * 3600 + 55 * 60 + 5
    assert (event.kind, event.ip, event.sender, event.recipient) == (
        "GREY",
        "83.23.213.115",
        "gilbert@keyholes.net",
        "wkitp98zpu.fsf@datadok.no",
    )
    assert parse_spamd_log_line("spamd[1]: (BLACK) 1.2.3.4: <> -> <a@b>").time_s is None
    for other in (
        "Oct 2 19:53:21 delilah spamd[26905]: 65.210.185.131: connected (1/1)",
        "spamd[83667]: 190.158.6.160: disconnected after 382 seconds. lists: nixspam",
        "",
    ):
        assert parse_spamd_log_line(other) is None


def test_real_log_files_parse():
    counts = {}
    for name in ("bookofpf-delilah-spamd.log", "misc-spamd-lines.log"):
        path = LOGS / name
        if not path.exists():
            pytest.skip(f"{path} is absent (real spamd -v log excerpts)")
        events = [parse_spamd_log_line(x) for x in path.read_text().splitlines()]
        events = [e for e in events if e is not None]
        counts[name] = [e.kind for e in events]
        times = [e.time_s for e in events]
        assert times == sorted(times)
    assert (
        counts["bookofpf-delilah-spamd.log"]
        == ["GREY"] * 2 + ["BLACK"] + ["GREY"] * 5 + ["BLACK"] * 2
    )
    assert counts["misc-spamd-lines.log"] == ["GREY", "GREY"]
