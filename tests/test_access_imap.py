"""ImapSession in-process: replies, exact Work per command, hostile input."""

import base64
import mailbox
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twin.access.cyrusstore import HEADER_BYTES, RECORD_BYTES, CyrusBackend
from twin.access.imap import ImapSession
from twin.access.mboxstore import MboxBackend
from twin.access.settings import AccessSettings

MESSAGE = (b"From: Ann <ann@example.org>\nTo: bob@example.edu\nSubject: note %d\n"
           b"Date: Tue, 6 Mar 2007 09:00:00 +0000\n\nline one\nline two\n")


class Users:
    def authenticate(self, user, password):
        return (user, password) in {("bob", "pw"), ("ann", "pw")}


def make_store(tmp_path, fmt, count=3, user="bob"):
    root = tmp_path / "store"
    root.mkdir(parents=True, exist_ok=True)
    if fmt == "maildir":
        (root / user).mkdir(exist_ok=True)
        box = mailbox.Maildir(root / user / "Maildir")
        backend = CyrusBackend(root)
    else:
        box = mailbox.mbox(root / user)
        backend = MboxBackend(root)
    for i in range(count):
        box.add(MESSAGE % i)
    box.flush()
    return root, backend, box


def session(backend, **kwargs):
    imap = ImapSession(backend, Users(), now_fn=lambda: 1_170_000_000.0, **kwargs)
    assert imap.greeting().startswith(b"* OK [CAPABILITY IMAP4rev1")
    return imap


def logged_in(backend, select=True, **kwargs):
    imap = session(backend, **kwargs)
    assert imap.feed(b"a LOGIN bob pw\r\n").endswith(b"a OK [CAPABILITY IMAP4rev1 "
                                                     b"AUTH=PLAIN IDLE LITERAL+] "
                                                     b"LOGIN completed\r\n")
    if select:
        assert b"b OK [READ-WRITE]" in imap.feed(b"b SELECT INBOX\r\n")
    return imap


def test_select_reads_whole_mbox_but_only_the_cyrus_index(tmp_path):
    root, backend, _ = make_store(tmp_path, "mbox")
    imap = logged_in(backend, select=False)
    reply = imap.feed(b"s SELECT INBOX\r\n")
    assert b"* 3 EXISTS\r\n* 3 RECENT\r\n" in reply
    size = os.path.getsize(root / "bob")
    work = imap.last_work
    assert work.reads == (("bob", size),)
    assert work.cpu["mbox.byte"] == size and work.cpu["mbox.message"] == 3
    assert work.cpu["imap.command"] == 1
    assert work.cpu["imap.byte"] == len(b"s SELECT INBOX")
    assert work.cpu["imap.response_byte"] == len(reply)
    assert work.writes == () and work.locks == 1

    croot, cyrus, _ = make_store(tmp_path / "c", "maildir")
    first = logged_in(cyrus, select=False)
    first.feed(b"s SELECT INBOX\r\n")  # no index yet: reconstruct reads every file
    assert len(first.last_work.reads) == 3 and first.last_work.fsyncs == 2
    again = logged_in(cyrus, select=False)
    again.feed(b"s EXAMINE INBOX\r\n")
    assert again.last_work.reads == (
        ("bob/Maildir/cyrus.index", HEADER_BYTES + 3 * RECORD_BYTES),
    )
    assert again.last_work.cpu["cyrus.record"] == 3 and again.last_work.writes == ()


def test_mbox_open_cost_grows_with_the_file(tmp_path):
    _, small, _ = make_store(tmp_path / "a", "mbox", count=10)
    _, large, _ = make_store(tmp_path / "b", "mbox", count=20)
    a = logged_in(small)
    b = logged_in(large)
    a.feed(b"x STATUS INBOX (MESSAGES)\r\n")
    assert a.last_work.cpu == {"imap.command": 1,
                               "imap.byte": len(b"x STATUS INBOX (MESSAGES)"),
                               "imap.response_byte": len(b"x OK STATUS completed\r\n")
                               + len(b'* STATUS "INBOX" (MESSAGES 10)\r\n')}
    a.feed(b"c CLOSE\r\n")
    b.feed(b"c CLOSE\r\n")
    a.feed(b"x STATUS INBOX (MESSAGES)\r\n")
    b.feed(b"x STATUS INBOX (MESSAGES)\r\n")
    assert b.last_work.cpu["mbox.byte"] > 1.9 * a.last_work.cpu["mbox.byte"]
    assert b.last_work.cpu["mbox.message"] == 20


def test_flag_change_rewrites_the_mbox_but_one_cyrus_record(tmp_path):
    root, backend, _ = make_store(tmp_path, "mbox")
    imap = logged_in(backend)
    imap.feed(b"c CHECK\r\n")  # first checkpoint writes UIDs and Status: O
    reply = imap.feed(b"f STORE 2 +FLAGS (\\Flagged)\r\n")
    assert reply == (b"* 2 FETCH (FLAGS (\\Flagged \\Recent))\r\n"
                     b"f OK STORE completed\r\n")
    assert imap.last_work.writes == ()
    imap.feed(b"c CHECK\r\n")
    size = os.path.getsize(root / "bob")
    assert imap.last_work.writes == (("bob", size),)
    assert imap.last_work.fsyncs == 1
    assert imap.last_work.cpu["mbox.rewrite_byte"] == size
    flags = [m.get_flags() for m in mailbox.mbox(root / "bob")]
    assert flags == ["O", "OF", "O"]

    croot, cyrus, box = make_store(tmp_path / "c", "maildir")
    imap = logged_in(cyrus)
    imap.feed(b"f STORE 2 +FLAGS.SILENT (\\Flagged)\r\n")
    work = imap.last_work
    assert work.writes == (("bob/Maildir/cyrus.index", RECORD_BYTES),
                           ("bob/Maildir/cyrus.index", HEADER_BYTES))
    assert work.files_renamed == 1 and work.fsyncs == 0
    flags = sorted(m.get_flags() for m in mailbox.Maildir(croot / "bob" / "Maildir"))
    assert flags == ["", "", "F"]


@pytest.mark.parametrize("fmt", ["mbox", "maildir"])
def test_header_fetch_does_not_read_messages(tmp_path, fmt):
    _, backend, _ = make_store(tmp_path, fmt)
    imap = logged_in(backend)
    reply = imap.feed(b"h FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n")
    assert reply.count(b"Subject: note") == 3
    reads = [key for key, _ in imap.last_work.reads]
    assert reads == ([] if fmt == "mbox" else ["bob/Maildir/cyrus.cache"])
    assert imap.last_work.cpu["imap.message"] == 3
    imap.feed(b"e FETCH 2 ENVELOPE\r\n")
    assert (b'ENVELOPE ("Tue, 6 Mar 2007 09:00:00 +0000" "note 1" (("Ann" NIL "ann" '
            b'"example.org"))') in imap.feed(b"e FETCH 2 ENVELOPE\r\n")


@pytest.mark.parametrize("fmt", ["mbox", "maildir"])
def test_search_keys(tmp_path, fmt):
    _, backend, box = make_store(tmp_path, fmt, count=4)
    imap = logged_in(backend)
    imap.feed(b"s STORE 1,3 +FLAGS (\\Seen)\r\n")
    cases = {
        b"UNSEEN": b"2 4", b"SEEN": b"1 3", b"NOT SEEN": b"2 4",
        b"OR 1 4": b"1 4", b"SUBJECT \"note 2\"": b"3", b"FROM ann": b"1 2 3 4",
        b"TO nobody": b"", b"UID 2:3": b"2 3", b"2:* DELETED": b"",
        b"SINCE 1-Jan-1990": b"1 2 3 4", b"BEFORE 1-Jan-1990": b"",
        b"SENTON 6-Mar-2007": b"1 2 3 4", b"LARGER 10 SMALLER 100000": b"1 2 3 4",
        b"BODY \"line two\"": b"1 2 3 4", b"(SEEN NOT 1)": b"3",
        b"CHARSET UTF-8 ALL": b"1 2 3 4",
    }
    for key, expected in cases.items():
        reply = imap.feed(b"q SEARCH " + key + b"\r\n")
        assert reply == (b"* SEARCH" + (b" " + expected if expected else b"")
                         + b"\r\nq OK SEARCH completed\r\n"), key
    assert b"[BADCHARSET" in imap.feed(b"q SEARCH CHARSET KOI8-R ALL\r\n")
    assert imap.feed(b"q SEARCH FOO\r\n").startswith(b"q BAD")


@pytest.mark.parametrize("fmt", ["mbox", "maildir"])
def test_expunge_close_and_the_store(tmp_path, fmt):
    root, backend, _ = make_store(tmp_path, fmt)
    imap = logged_in(backend)
    imap.feed(b"d STORE 1:2 +FLAGS.SILENT (\\Deleted)\r\n")
    assert imap.feed(b"x EXPUNGE\r\n") == (b"* 2 EXPUNGE\r\n* 1 EXPUNGE\r\n"
                                           b"x OK EXPUNGE completed\r\n")
    assert imap.feed(b"u UID FETCH 1:* UID\r\n") == (b"* 1 FETCH (UID 3)\r\n"
                                                     b"u OK UID FETCH completed\r\n")
    imap.feed(b"c CLOSE\r\n")
    box = (mailbox.Maildir(root / "bob" / "Maildir") if fmt == "maildir"
           else mailbox.mbox(root / "bob"))
    assert [m["Subject"] for m in box] == ["note 2"]


def test_new_mail_shows_up_on_noop_and_idle(tmp_path):
    root, backend, box = make_store(tmp_path, "mbox")
    imap = logged_in(backend)
    assert imap.feed(b"i IDLE\r\n") == b"+ idling\r\n"
    box.add(MESSAGE % 9)
    box.flush()
    assert imap.poll() == b"* 4 EXISTS\r\n* 4 RECENT\r\n"
    assert imap.feed(b"DONE\r\n") == b"i OK IDLE terminated\r\n"
    assert imap.feed(b"n NOOP\r\n") == b"n OK NOOP completed\r\n"


def test_authenticate_plain_and_literals(tmp_path):
    _, backend, _ = make_store(tmp_path, "maildir")
    imap = session(backend)
    assert imap.feed(b"a AUTHENTICATE PLAIN\r\n") == b"+ \r\n"
    token = base64.b64encode(b"\0bob\0pw")
    assert b"a OK" in imap.feed(token + b"\r\n")
    imap = session(backend)
    assert imap.feed(b"l LOGIN {3}\r\n") == b"+ Ready for literal data\r\n"
    assert imap.feed(b"bob {2+}\r\npw\r\n").startswith(b"l OK")
    imap = session(backend)
    assert imap.feed(b"a AUTHENTICATE PLAIN " + base64.b64encode(b"\0bob\0no")
                     + b"\r\n").startswith(b"a NO [AUTHENTICATIONFAILED]")


def test_login_failures_pause_and_disconnect(tmp_path):
    _, backend, _ = make_store(tmp_path, "mbox")
    imap = session(backend)
    delays = []
    for _ in range(3):
        reply = imap.feed(b"a LOGIN bob nope\r\n")
        delays.append(imap.delay_s)
    assert delays == [3.0, 6.0, 9.0]
    assert reply.endswith(b"* BYE too many login failures\r\n") and imap.closed
    assert imap.feed(b"b NOOP\r\n") == b""
    quick = session(backend, settings=AccessSettings(failed_login_pause_s=1.0,
                                                     max_pause_s=1.5,
                                                     max_login_failures=5))
    for _ in range(4):
        quick.feed(b"a LOGIN bob nope\r\n")
    assert quick.delay_s == 1.5 and not quick.closed
    assert session(backend).feed(b"a LOGIN ../etc pw\r\n").startswith(b"a NO")


def test_hostile_commands_get_protocol_errors(tmp_path):
    root, backend, _ = make_store(tmp_path, "mbox")
    imap = session(backend, settings=AccessSettings(max_command_bytes=4096,
                                                        max_line_bytes=1024))
    not_yet = b"a BAD command not valid in this state\r\n"
    assert imap.feed(b"a SELECT INBOX\r\n") == not_yet
    assert imap.feed(b"a FROB\r\n") == b"a BAD unknown command\r\n"
    assert imap.feed(b"a+b NOOP\r\n") == b"* BAD invalid tag\r\n"
    assert imap.feed(b"a LOGIN {99999}\r\n") == b"a BAD literal too large\r\n"
    assert imap.feed(b"a LOGIN bob pw\r\n").startswith(b"a OK")
    for name in [b"../bob", b"/etc/passwd", b"~root/x", b'"a\\\\b"', b"a/../../x",
                 b'"%"', b"*", b".hidden", b"INBOX/x", b'"x\x01"', b"{3}\r\na\x00b",
                 b'"caf\xc3\xa9"']:
        for verb in (b"SELECT", b"CREATE", b"DELETE", b"STATUS", b"SUBSCRIBE"):
            suffix = b" (MESSAGES)" if verb == b"STATUS" else b""
            reply = imap.feed(b"t " + verb + b" " + name + suffix + b"\r\n")
            if reply.startswith(b"+ "):  # the literal's continuation
                reply = reply.split(b"\r\n", 1)[1]
            assert reply.startswith((b"t NO", b"t BAD")), (verb, name, reply)
    assert sorted(os.listdir(root)) == ["bob"]
    assert imap.feed(b"a LOGIN {99999+}\r\n") == (b"* BYE literal larger than the "
                                                  b"command limit\r\n")
    assert imap.closed


def test_other_users_mailboxes_are_out_of_reach(tmp_path):
    root, backend, _ = make_store(tmp_path, "maildir")
    make_store(tmp_path, "maildir", user="ann")
    imap = logged_in(backend)
    for name in (b"../ann/Maildir", b"../../ann", b"..", b"ann"):
        assert imap.feed(b"x SELECT " + name + b"\r\n").startswith(b"x NO")
    listing = imap.feed(b'l LIST "" *\r\n')
    assert listing == b'* LIST () "/" "INBOX"\r\nl OK LIST completed\r\n'


@pytest.mark.parametrize("fmt", ["mbox", "maildir"])
def test_mailbox_management(tmp_path, fmt):
    _, backend, _ = make_store(tmp_path, fmt)
    imap = logged_in(backend)
    for command in (b"CREATE Lists/python", b"CREATE Sent", b"SUBSCRIBE Sent",
                    b"RENAME Sent Outbox", b"COPY 1:2 Outbox"):
        assert b"t OK" in imap.feed(b"t " + command + b"\r\n"), command
    assert b"[TRYCREATE]" in imap.feed(b"t COPY 1 Nowhere\r\n")
    listing = imap.feed(b'l LIST "" *\r\n')
    assert b'"Outbox"' in listing and b'"Lists/python"' in listing
    assert b'(\\Noselect) "/" "Lists"' in listing
    assert imap.feed(b'l LIST "" %\r\n').count(b"* LIST") == 3
    subscribed = imap.feed(b'l LSUB "" *\r\n')
    assert subscribed == b'* LSUB () "/" "Sent"\r\nl OK LSUB completed\r\n'
    assert b"MESSAGES 2" in imap.feed(b"s STATUS Outbox (MESSAGES UIDNEXT)\r\n")
    assert imap.feed(b"d DELETE Outbox\r\n") == b"d OK DELETE completed\r\n"
    assert imap.feed(b"d DELETE INBOX\r\n").startswith(b"d NO")


COMMAND_WORDS = st.sampled_from([
    b"FETCH", b"UID", b"STORE", b"SEARCH", b"COPY", b"SELECT", b"LIST", b"STATUS",
    b"EXAMINE", b"CREATE", b"RENAME", b"NOOP", b"CHECK", b"EXPUNGE", b"LSUB",
    b"SUBSCRIBE", b"CAPABILITY", b"IDLE", b"DONE", b"AUTHENTICATE", b"LOGIN"])
TOKENS = st.one_of(
    COMMAND_WORDS,
    st.sampled_from([b"1", b"*", b"1:*", b"2,3", b"0", b"4294967296", b"(", b")",
                     b"[", b"]", b"<0.10>", b"BODY[", b"BODY.PEEK[HEADER.FIELDS (",
                     b"FLAGS", b"+FLAGS.SILENT", b"\\Seen", b"\\Recent", b"NOT",
                     b"OR", b"INBOX", b"../x", b'"quoted"', b'"', b"{3}\r\nabc",
                     b"{2+}\r\nxy", b"%", b"~", b"\x00", b"SINCE", b"1-Feb-2007",
                     b"ENVELOPE", b"BODYSTRUCTURE", b"RFC822", b"BODY[1.MIME]",
                     b"HEADER", b"TEXT", b"LARGER", b"CHARSET"]),
    st.binary(max_size=12),
)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(TOKENS, min_size=1, max_size=8), min_size=1, max_size=4))
def test_fuzzed_commands_never_crash(tmp_path, lines):
    root = tmp_path / "fuzz"
    if not root.exists():
        root.mkdir()
        (root / "bob").mkdir()
        box = mailbox.Maildir(root / "bob" / "Maildir")
        for i in range(2):
            box.add(MESSAGE % i)
    imap = logged_in(CyrusBackend(root))
    for tokens in lines:
        reply = imap.feed(b"t " + b" ".join(tokens) + b"\r\n")
        if imap.idling:
            reply += imap.feed(b"DONE\r\n")
        assert reply == b"" or reply.endswith(b"\r\n")
        assert b"t OK" in reply or b"t NO" in reply or b"t BAD" in reply or (
            b"+ " in reply or reply == b"" or reply.startswith(b"* ")
        )
    assert sorted(os.listdir(root)) == ["bob"]


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash(data):
    imap = ImapSession(MboxBackend("/nonexistent-twin-store"), Users())
    reply = imap.feed(data + b"\r\n")
    assert reply == b"" or reply.endswith(b"\r\n")


@pytest.mark.parametrize("fmt", ["maildir", "mbox"])
@pytest.mark.parametrize("items", [b"(UID FLAGS)", b"FLAGS", b"(FLAGS UID)", b"UID",
                                   b"(FLAGS FLAGS UID)"])
def test_flag_sync_fast_path_answers_as_fetch_one(tmp_path, fmt, items):
    from twin.access.imapfetch import (
        fetch_flags,
        fetch_one,
        flags_only,
        parse_fetch_items,
    )
    from twin.access.imapparse import Reader
    from twin.access.store import sum_work

    _, backend, _ = make_store(tmp_path, fmt, count=6)
    imap = logged_in(backend)
    imap.feed(b"f STORE 2,4 +FLAGS (\\Seen \\Flagged)\r\n")
    imap.feed(b"g STORE 5 +FLAGS (\\Deleted)\r\n")
    parsed = parse_fetch_items(Reader(items))
    order = flags_only(parsed)
    assert order is not None
    mailbox_ = imap.mailbox
    for indices in ([], [3], [0, 1, 2, 3, 4, 5]):
        for with_uid in (False, True):
            lines, work = fetch_flags(mailbox_.messages, indices, order, with_uid)
            answers = [fetch_one(mailbox_, i, parsed, with_uid) for i in indices]
            assert lines == b"".join(a[0] for a in answers)
            expected = sum_work([a[1] for a in answers])
            assert work == expected
            assert list(work.cpu.items()) == list(expected.cpu.items())
    assert flags_only(parse_fetch_items(Reader(b"(UID RFC822.SIZE)"))) is None
    reply = imap.feed(b"h UID FETCH 1:* (UID FLAGS)\r\n")
    assert reply.startswith(b"* 1 FETCH (UID 1 FLAGS (\\Recent))\r\n"
                            b"* 2 FETCH (UID 2 FLAGS (\\Seen \\Flagged \\Recent))")
    assert imap.last_work.cpu["imap.message"] == 6


def test_cyrus_numbers_messages_in_order_of_arrival(tmp_path):
    """Names of one second sort by their counters as numbers, not as text."""
    root = tmp_path / "store"
    new = root / "bob" / "Maildir" / "new"
    for sub in ("tmp", "new", "cur"):
        (root / "bob" / "Maildir" / sub).mkdir(parents=True)
    # Python's mailbox: <seconds>.M<usec>P<pid>Q<n>; the twin: <seconds>.M<id>
    names = ["1170000000.M99999P7Q1.h", "1170000000.M100000P7Q2.h",
             "1170000001.M9.h", "1170000001.M10.h"]
    for number, name in enumerate(names):
        (new / name).write_bytes(MESSAGE % number)
    imap = logged_in(CyrusBackend(root))
    reply = imap.feed(b"f FETCH 1:4 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n")
    subjects = [line for line in reply.split(b"\r\n") if line.startswith(b"Subject")]
    assert subjects == [b"Subject: note %d" % n for n in range(4)]


_SCRIPT = [b"a LOGIN bob pw", b"b SELECT INBOX", b"c UID FETCH 1:* (UID FLAGS)",
           b"d uid fetch 2 (FLAGS RFC822.SIZE)",
           b"e UID STORE 1 +FLAGS.SILENT (\\Seen)", b"f FETCH 1:2 (UID FLAGS)",
           b"", b"g NOOP", b"h UID FETCH 3:* (UID FLAGS)",
           b"i BOGUS", b"j uId FeTcH 1,3 (UID FLAGS)", b"k LOGOUT"]


@pytest.mark.parametrize("fmt", ["maildir", "mbox"])
def test_whole_lines_and_split_input_answer_alike(tmp_path, fmt):
    """A command sent as one line (the common case, taken in short) gets the
    replies and Work of the same bytes sent in pieces or all at once; a
    message delivered mid-session shows in UID FETCH after NOOP."""
    runs = []
    for way in ("lines", "pieces", "together"):
        root, backend, box = make_store(tmp_path / way, fmt)
        imap = session(backend)
        replies, works = [], []
        for number, line in enumerate(_SCRIPT):
            if line.startswith(b"g "):
                box.add(MESSAGE % 9)
                box.flush()
            data = line + b"\r\n"
            if way == "lines":
                replies.append(imap.feed(data))
            elif way == "pieces":
                replies.append(b"".join(imap.feed(data[i : i + 3])
                                        for i in range(0, len(data), 3)))
            elif number in (0, 7):  # all before the delivery, then the rest
                end = 7 if number == 0 else len(_SCRIPT)
                replies.append(imap.feed(b"".join(
                    line + b"\r\n" for line in _SCRIPT[number:end])))
            works.append(imap.last_work if way == "lines" else None)
        total = imap.total_work  # (file names are Python mailbox's: not compared)
        runs.append((replies, [name for name, _ in imap.commands],
                     total._replace(reads=[size for _, size in total.reads]), works))
    (lines, _, total, works), (pieces, _, total_p, _), (together, _, total_t, _) = runs
    assert lines == pieces and total == total_p
    assert b"".join(lines) == b"".join(together) and total == total_t
    assert b"* 4 FETCH (UID 4 FLAGS (\\Recent))" in lines[8]
    assert lines[9] == b"i BAD unknown command\r\n"
    assert b"* 3 FETCH (UID 3 FLAGS (\\Recent))" in lines[10]
    assert lines[6] == b"* BAD invalid tag\r\n"  # an empty line
    assert works[6].cpu["imap.byte"] == 0
    assert works[3].cpu["imap.command"] == 1
