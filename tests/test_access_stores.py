"""The two stores on their own: UW mbox parsing, Cyrus index upkeep, names."""

import io
import mailbox
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.access.auth import CredentialsFile
from twin.access.commands import serve_command
from twin.access.cyrusstore import (
    HEADER_BYTES,
    RECORD_BYTES,
    CyrusBackend,
    index_delivery,
)
from twin.access.mboxstore import (
    EDGE_BYTES,
    MboxBackend,
    note_change,
    note_delivery,
    scan,
)
from twin.access.names import MailboxNameError, check_user, list_matcher, split_name
from twin.access.settings import AccessSettings
from twin.access.store import FLAGGED, SEEN, StoreError, sum_work
from twin.stages.work import Work

NOW = 1_170_000_000.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.sampled_from(
    ["text", "From here", ">From there", "", "From: x", " folded"]), max_size=6),
    min_size=1, max_size=4))
def test_mbox_split_matches_the_mailbox_module(tmp_path_factory, bodies):
    path = tmp_path_factory.mktemp("mbox") / "spool"
    box = mailbox.mbox(path)
    for lines in bodies:
        box.add(b"Subject: s\n\n" + "\n".join(lines).encode() + b"\n")
    box.flush()
    data = path.read_bytes()
    spans = scan(data)
    expected = [box.get_bytes(key) for key in box.keys()]
    assert [data[s.start + len(s.from_line) : s.end] for s in spans] == expected


def test_uw_keeps_uids_in_the_file(tmp_path):
    box = mailbox.mbox(tmp_path / "bob")
    for i in range(3):
        box.add(b"Subject: %d\n\nbody\n" % i)
    box.flush()
    backend = MboxBackend(tmp_path)
    first, work = backend.open("bob", "INBOX", False, NOW)
    assert [m.uid for m in first.messages] == [1, 2, 3] and first.uidvalidity == NOW
    first.close()
    text = (tmp_path / "bob").read_bytes()
    assert b"X-IMAPbase: 1170000000 3\n" in text and text.count(b"X-UID:") == 3
    box = mailbox.mbox(tmp_path / "bob")
    box.add(b"Subject: new\n\nbody\n")
    box.flush()
    again, _ = backend.open("bob", "INBOX", True, NOW + 99)
    assert [m.uid for m in again.messages] == [1, 2, 3, 4]
    assert [m.recent for m in again.messages] == [False, False, False, True]
    assert again.uidvalidity == NOW and again.uidnext == 5
    header, _ = again.header(0)
    assert header == b"Subject: 0\r\n\r\n"  # UW's own fields are hidden


def test_cyrus_delivery_keeps_the_index_current(tmp_path):
    (tmp_path / "bob").mkdir()
    box = mailbox.Maildir(tmp_path / "bob" / "Maildir")
    box.add(b"Subject: old\n\nbody\n")
    backend = CyrusBackend(tmp_path)
    backend.open("bob", "INBOX", True, NOW)  # reconstruct once
    message = b"Subject: fresh\nContent-Type: text/plain\n\nhello\n"
    key = box.add(message)
    work = index_delivery(tmp_path, "bob", "new/" + key, message, NOW + 60)
    assert work.reads == (("bob/Maildir/cyrus.index", HEADER_BYTES),)
    entry = work.writes[0]
    assert entry[0] == "bob/Maildir/cyrus.cache" and entry[1] > len(b"Subject: fresh")
    assert work.writes[1:] == (("bob/Maildir/cyrus.index", RECORD_BYTES),
                               ("bob/Maildir/cyrus.index", HEADER_BYTES))
    assert work.fsyncs == 2 and work.cpu["cyrus.record"] == 1
    assert work.cpu["cyrus.parse_byte"] == len(message) + message.count(b"\n")
    opened, work = backend.open("bob", "INBOX", True, NOW + 120)
    assert work.reads == (("bob/Maildir/cyrus.index", HEADER_BYTES + 2 * RECORD_BYTES),)
    assert [m.internaldate for m in opened.messages][1] == int(NOW + 60)
    structure, _ = opened.bodystructure(1)
    assert structure.startswith(
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 7')


def test_a_delivery_parsed_elsewhere_is_indexed_the_same(tmp_path):
    """``index_delivery`` given the parse made ahead (``delivery_parse``, as
    the front makes it) writes the same index and cache and reports the same
    Work as parsing the message itself."""
    from twin.access.cyrusstore import delivery_parse

    message = (b"Subject: fresh\nFrom: A <a@example.org>\nMIME-Version: 1.0\n"
               b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\nhi\n"
               b"--b\nContent-Type: image/gif\n\nGIF89a\n--b--\n")
    done = []
    for name, parsed in (("here", None), ("ahead", delivery_parse(message))):
        root = tmp_path / name
        (root / "bob").mkdir(parents=True)
        box = mailbox.Maildir(root / "bob" / "Maildir")
        box.add(b"Subject: old\n\nbody\n")
        CyrusBackend(root).open("bob", "INBOX", True, NOW)
        os.makedirs(root / "bob" / "Maildir" / "new", exist_ok=True)
        (root / "bob" / "Maildir" / "new" / "1.M1.host").write_bytes(message)
        work = index_delivery(root, "bob", "new/1.M1.host", message, NOW + 60,
                              parsed=parsed)
        maildir = root / "bob" / "Maildir"
        done.append((work, (maildir / "cyrus.cache").read_bytes(),
                     # the delivery's record (the first names a random file)
                     (maildir / "cyrus.index").read_bytes()[-RECORD_BYTES:]))
    assert done[0] == done[1]
    assert done[0][0].cpu["cyrus.parse_byte"] > len(message)


def test_cyrus_index_is_rebuilt_or_resynced(tmp_path):
    (tmp_path / "bob").mkdir()
    box = mailbox.Maildir(tmp_path / "bob" / "Maildir")
    box.add(b"Subject: a\n\nbody\n")
    backend = CyrusBackend(tmp_path)
    backend.open("bob", "INBOX", True, NOW)
    box.add(b"Subject: b\n\nbody\n")  # behind the index's back
    opened, work = backend.open("bob", "INBOX", True, NOW)
    assert len(opened.messages) == 2 and work.dir_entries_scanned == 2
    os.unlink(tmp_path / "bob" / "Maildir" / "cyrus.index")
    opened, work = backend.open("bob", "INBOX", True, NOW)
    assert len(opened.messages) == 2 and len(work.reads) == 2 and work.fsyncs == 2
    index = tmp_path / "bob" / "Maildir" / "cyrus.index"
    index.write_bytes(b"garbage")
    assert len(backend.open("bob", "INBOX", True, NOW)[0].messages) == 2
    assert index_delivery(tmp_path, "nobody", "new/x", b"x", NOW).reads == ()


def _same_tick(*paths):
    """Stat *paths* now; the returned function puts their mtimes back, as if
    the changes in between fell within one file system timestamp tick."""
    before = [(path, os.stat(path)) for path in paths]

    def restore():
        for path, info in before:
            os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))

    return restore


def _two_sessions(tmp_path):
    (tmp_path / "bob").mkdir()
    box = mailbox.Maildir(tmp_path / "bob" / "Maildir")
    for subject in (b"a", b"b"):
        box.add(b"Subject: " + subject + b"\n\nbody\n")
    backend = CyrusBackend(tmp_path)
    first, _ = backend.open("bob", "INBOX", False, NOW)
    return backend, first, tmp_path / "bob" / "Maildir"


def test_cyrus_notices_an_index_rewrite_within_one_mtime_tick(tmp_path):
    backend, first, maildir = _two_sessions(tmp_path)
    box = mailbox.Maildir(maildir)
    message = b"Subject: c\n\nbody\n"
    key = box.add(message)
    index_delivery(tmp_path, "bob", "new/" + key, message, NOW)
    assert first.refresh()[1].reads  # a bigger index: uid 3
    restore = _same_tick(maildir / "cyrus.index")
    backend.open("bob", "INBOX", False, NOW)  # rewrites the header in place
    restore()
    gone, work = first.refresh()
    size = HEADER_BYTES + 3 * RECORD_BYTES
    assert gone == [] and work == Work(cpu={"cyrus.record": 3}, locks=1,
                                       reads=(("bob/Maildir/cyrus.index", size),))
    assert first.refresh() == ([], Work())  # and only once


def test_cyrus_notices_two_flag_changes_within_one_mtime_tick(tmp_path):
    backend, first, maildir = _two_sessions(tmp_path)
    second, _ = backend.open("bob", "INBOX", False, NOW)
    restore = _same_tick(maildir / "cyrus.index", maildir / "new", maildir / "cur")
    second.set_flags([(0, SEEN)])
    second.set_flags([(1, FLAGGED)])
    restore()  # same size, same mtimes: only this process knows
    gone, work = first.refresh()
    assert gone == [] and [m.flags for m in first.messages] == [SEEN, FLAGGED]
    assert work.locks == 1 and work.reads[0] == (
        "bob/Maildir/cyrus.index", HEADER_BYTES + 2 * RECORD_BYTES)
    assert first.refresh() == ([], Work())


def test_cyrus_append_names_repeat_run_to_run(tmp_path):
    names = []
    for run in ("one", "two"):
        root = tmp_path / run
        (root / "bob" / "Maildir").mkdir(parents=True)
        backend = CyrusBackend(root)
        backend.create("bob", "Sent", NOW)
        work = backend.append("bob", "Sent", [(b"Subject: s\r\n\r\nx\r\n", 0,
                                               int(NOW))] * 2, NOW)
        names.append([key for key, _ in work.writes])
    assert names[0] == names[1]
    assert names[0][:2] == ["bob/Maildir/.Sent/cur/1170000000.M1.twin:2,",
                            "bob/Maildir/.Sent/cur/1170000000.M2.twin:2,"]
    assert str(os.getpid()) not in "".join(names[0])


@pytest.mark.parametrize("filename", ["../x", "new/../../etc", "tmp/x", "a/b/c/d",
                                      "new/", "..Lists/new/x", "/abs/new/x"])
def test_index_delivery_rejects_odd_file_names(tmp_path, filename):
    with pytest.raises(ValueError, match="filename"):
        index_delivery(tmp_path, "bob", filename, b"x", NOW)


def test_names():
    assert split_name("inbox") == ("INBOX",)
    assert split_name("Lists/python") == ("Lists", "python")
    for bad in ["", "../x", "/x", "a//b", "~u", ".x", "a\x00b", "a*", "a%b",
                "INBOX/x", "x.lock", "x" * 300, "caf\u00e9", "a\\b"]:
        with pytest.raises(MailboxNameError):
            split_name(bad)
    with pytest.raises(MailboxNameError):
        split_name("a.b", forbidden=".")
    with pytest.raises(MailboxNameError):
        check_user("../root")
    assert list_matcher("", "inbox").match("INBOX")
    assert list_matcher("Lists/", "%").match("Lists/python")
    assert not list_matcher("", "%").match("Lists/python")


def test_stores_refuse_paths_outside_the_user(tmp_path):
    (tmp_path / "bob.folders").mkdir()
    os.symlink("/etc", tmp_path / "bob.folders" / "etc")
    backend = MboxBackend(tmp_path)
    with pytest.raises(StoreError, match="outside"):
        backend.open("bob", "etc/passwd", True, NOW)
    with pytest.raises(StoreError):
        CyrusBackend(tmp_path).open("../bob", "INBOX", True, NOW)


def test_settings_and_credentials(tmp_path):
    with pytest.raises(ValueError, match="max_command_bytes=10"):
        AccessSettings(max_command_bytes=10)
    assert AccessSettings().pause_after(2) == 6.0
    assert AccessSettings(max_pause_s=4.0).pause_after(2) == 4.0
    path = tmp_path / "credentials.csv"
    path.write_text("user,password\nBob,pa,ss\n# note\n")
    users = CredentialsFile(path)
    assert users.authenticate("bob", "pa") and not users.authenticate("bob", "pa,ss")
    assert not users.authenticate("eve", "pa") and users.users == ("bob",)


def test_serve_command_rejects_bad_arguments(tmp_path):
    out = io.StringIO()
    assert serve_command("smtp", tmp_path, "127.0.0.1", 0, out) == 2
    assert serve_command("imap", tmp_path, "127.0.0.1", 70000, out) == 2
    assert serve_command("imap", tmp_path, "127.0.0.1", 0, out) == 2
    assert out.getvalue().splitlines() == [
        "twin serve: kind 'smtp' must be one of imap, pop3",
        "twin serve: port 70000 must be 0..65535",
        f"twin serve: run folder {tmp_path} has no store/ directory",
    ]


# -- the simulator's parse cache: same answers, less re-parsing ----------------

def _snapshot(mailbox_, work):
    return ([(m.uid, m.size, m.internaldate, m.flags, m.recent)
             for m in mailbox_.messages],
            mailbox_.uidvalidity, mailbox_.uidnext, work)


def _fresh(root, name="INBOX"):
    """What a backend with no cache says about the file now."""
    mailbox_, work = MboxBackend(root).open("bob", name, True, NOW)
    return _snapshot(mailbox_, work)


def _deliver(path, text):
    with open(path, "ab") as out:
        out.write(b"From MAILER-DAEMON Thu Jan 25 12:00:00 2007\n" + text + b"\n")


def test_parse_cache_is_reused_grown_and_refreshed_after_rewrites(tmp_path):
    spool = tmp_path / "bob"
    for i in range(3):
        _deliver(spool, b"Subject: %d\n\nbody %d\n" % (i, i))
    backend = MboxBackend(tmp_path)
    box, work = backend.open("bob", "INBOX", True, NOW)
    assert backend.parse_counts == {"reused": 0, "tail": 0, "whole": 1}
    assert work.cpu["mbox.byte"] == spool.stat().st_size  # UW parses it all
    again, work_again = backend.open("bob", "INBOX", True, NOW)
    assert backend.parse_counts["reused"] == 1
    assert _snapshot(again, work_again) == _fresh(tmp_path) == _snapshot(box, work)
    # a delivery appends: only the tail is parsed, the work is still the file
    _deliver(spool, b"Subject: late\n\n>From the tail\n")
    grown, work = backend.open("bob", "INBOX", True, NOW)
    assert backend.parse_counts["tail"] == 1
    assert len(grown.messages) == 4
    assert work.cpu["mbox.byte"] == spool.stat().st_size
    assert _snapshot(grown, work) == _fresh(tmp_path)
    # the server's own rewrite (clearing \Recent, new flags) updates the cache
    rw, _ = backend.open("bob", "INBOX", False, NOW)
    rw.set_flags([(1, 9)])  # \Seen \Deleted
    rw.close()
    whole = backend.parse_counts["whole"]
    after, work = backend.open("bob", "INBOX", True, NOW)
    assert backend.parse_counts["whole"] == whole
    assert [m.flags for m in after.messages] == [0, 9, 0, 0]
    assert _snapshot(after, work) == _fresh(tmp_path)
    rw, _ = backend.open("bob", "INBOX", False, NOW)
    assert rw.expunge(None)[0] == [2]
    after, work = backend.open("bob", "INBOX", True, NOW)
    assert len(after.messages) == 3 and _snapshot(after, work) == _fresh(tmp_path)
    assert backend.parse_counts["whole"] == whole


def test_parse_cache_notices_other_writers(tmp_path):
    spool = tmp_path / "bob"
    _deliver(spool, b"Subject: a\n\nbody\n")
    backend = MboxBackend(tmp_path)
    backend.open("bob", "INBOX", True, NOW)
    # replaced by another program (new inode), then rewritten in place, larger
    replacement = tmp_path / "bob.new"
    replacement.write_bytes(b"From x Thu Jan 25 12:00:00 2007\nSubject: b\n\nb\n")
    os.replace(replacement, spool)
    box, work = backend.open("bob", "INBOX", True, NOW)
    assert [m.uid for m in box.messages] == [1]
    assert _snapshot(box, work) == _fresh(tmp_path)
    with open(spool, "r+b") as handle:
        handle.write(b"From y Fri Jan 26 12:00:00 2007\nSubject: cc\n\nmore\n\n"
                     b"From z Fri Jan 26 12:00:00 2007\nSubject: d\n\nd\n")
    box, work = backend.open("bob", "INBOX", True, NOW)
    assert len(box.messages) == 2 and _snapshot(box, work) == _fresh(tmp_path)


def test_qpopper_drops_the_spool_parse(tmp_path):
    spool = tmp_path / "bob"
    for i in range(2):
        _deliver(spool, b"Subject: %d\nX-UIDL: u%d\n\nbody\n" % (i, i))
    backend = MboxBackend(tmp_path)
    backend.open("bob", "INBOX", True, NOW)
    drop, _ = backend.open_drop("bob", NOW)
    assert drop.uidls == ["u0", "u1"]
    box, _ = backend.open("bob", "INBOX", True, NOW)
    assert box.messages == []  # taken aside, not the cached parse
    _deliver(spool, b"Subject: new\n\nbody\n")
    drop.commit({0})
    box, work = backend.open("bob", "INBOX", True, NOW)
    assert len(box.messages) == 2 and _snapshot(box, work) == _fresh(tmp_path)
    again, _ = backend.open_drop("bob", NOW)  # memoized listing, same answer
    assert again.uidls[0] == "u1" and len(again.sizes) == 2
    again.abort()


def _rewrite_in_place(path, old, new, keep_mtime=True):
    """Replace *old* by same-size *new* inside *path*, mtime kept (a writer
    within the file system's timestamp granularity)."""
    assert len(old) == len(new)
    info = os.stat(path)
    data = path.read_bytes()
    assert data.count(old) == 1
    with open(path, "r+b") as handle:
        handle.seek(data.index(old))
        handle.write(new)
    if keep_mtime:
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        info.st_size, info.st_mtime_ns, info.st_ino)


def test_same_size_rewrites_with_the_same_mtime_are_seen(tmp_path):
    """Outside writers: size and mtime alone would miss these; the edges not."""
    spool = tmp_path / "bob"
    _deliver(spool, b"Subject: a\n\nbody\n")
    _deliver(spool, b"Subject: b\n\nbody\n")
    MboxBackend(tmp_path).open("bob", "INBOX", False, NOW)[0].close()  # X-UIDs
    backend = MboxBackend(tmp_path)
    box, _ = backend.open("bob", "INBOX", True, NOW)
    assert [m.flags for m in box.messages] == [0, 0]
    _rewrite_in_place(spool, b"Status: O\nX-Status: \nX-UID: 2\n",
                      b"Status: R\nX-Status: \nX-UID: 2\n")
    again, work = backend.open("bob", "INBOX", True, NOW)
    assert backend.parse_counts == {"reused": 0, "tail": 0, "whole": 2}
    assert [m.flags for m in again.messages] == [0, SEEN]
    assert _snapshot(again, work) == _fresh(tmp_path)
    # the mailbox opened before the rewrite notices it too (NOOP, IDLE poll)
    assert box.refresh()[0] == [] and [m.flags for m in box.messages] == [0, SEEN]
    assert box.refresh() == ([], Work())  # and then it is in step


def test_in_process_writers_are_seen_by_their_change_count(tmp_path):
    """A change in the middle of a large file leaves size, mtime and edges as
    they were: only this process's change count tells (``note_change``)."""
    spool = tmp_path / "bob"
    _deliver(spool, b"Subject: a\n\n" + b"x" * EDGE_BYTES + b"\n")
    _deliver(spool, b"Subject: b\n\n" + b"y" * 100 + b"\n")
    _deliver(spool, b"Subject: c\n\n" + b"z" * EDGE_BYTES + b"\n")
    MboxBackend(tmp_path).open("bob", "INBOX", False, NOW)[0].close()  # X-UIDs
    backend = MboxBackend(tmp_path)
    box, _ = backend.open("bob", "INBOX", True, NOW)
    _rewrite_in_place(spool, b"Status: O\nX-Status: \nX-UID: 2\n",
                      b"Status: R\nX-Status: \nX-UID: 2\n")
    stale, _ = backend.open("bob", "INBOX", True, NOW)
    assert backend.parse_counts["reused"] == 1  # the documented outside limit
    assert [m.flags for m in stale.messages] == [0, 0, 0]
    assert box.refresh() == ([], Work())
    note_change(spool)
    again, work = backend.open("bob", "INBOX", True, NOW)
    assert backend.parse_counts["whole"] == 2
    assert [m.flags for m in again.messages] == [0, SEEN, 0]
    assert _snapshot(again, work) == _fresh(tmp_path)
    assert box.refresh()[0] == [] and [m.flags for m in box.messages] == [0, SEEN, 0]


def test_sessions_see_each_others_same_size_rewrites(tmp_path):
    """UW's flag rewrite by one session keeps size (and, on a coarse clock,
    mtime): the other session's mailbox still re-reads it."""
    spool = tmp_path / "bob"
    for i in range(2):
        _deliver(spool, b"Subject: %d\n\nbody\n" % i)
    backend = MboxBackend(tmp_path)
    writer, _ = backend.open("bob", "INBOX", False, NOW)
    writer.set_flags([(0, SEEN)])
    writer.close()  # UIDs written, "Status: RO" and "Status: O"
    reader, _ = backend.open("bob", "INBOX", True, NOW)
    assert [m.flags for m in reader.messages] == [SEEN, 0]
    writer, _ = backend.open("bob", "INBOX", False, NOW)
    before = os.stat(spool)
    writer.set_flags([(0, 0), (1, SEEN)])  # "RO", "O" -> "O", "RO"
    writer.close()
    os.utime(spool, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert spool.stat().st_size == before.st_size
    expunged, work = reader.refresh()
    assert expunged == [] and work.reads == (("bob", before.st_size),)
    assert [m.flags for m in reader.messages] == [0, SEEN]


def test_note_delivery_counts_an_append(tmp_path):
    spool = tmp_path / "bob"
    _deliver(spool, b"Subject: a\n\nbody\n")
    first = spool.stat().st_size
    backend = MboxBackend(tmp_path)
    box, _ = backend.open("bob", "INBOX", True, NOW)
    _deliver(spool, b"Subject: b\n\nbody\n")
    note_delivery(tmp_path, "bob")
    grown, work = backend.open("bob", "INBOX", True, NOW)
    assert backend.parse_counts == {"reused": 0, "tail": 1, "whole": 1}
    assert _snapshot(grown, work) == _fresh(tmp_path)
    assert box.refresh()[1].reads == (("bob", spool.stat().st_size - first),)
    assert len(box.messages) == 2


def test_folder_delete_and_rename_forget_parses(tmp_path):
    backend = MboxBackend(tmp_path)
    backend.create("bob", "old", NOW)
    backend.append("bob", "old", [(b"Subject: a\r\n\r\nx\r\n", 0, int(NOW))], NOW)
    assert len(backend.open("bob", "old", True, NOW)[0].messages) == 1
    backend.rename("bob", "old", "new")
    backend.create("bob", "old", NOW)
    assert backend.open("bob", "old", True, NOW)[0].messages == []
    backend.delete("bob", "new")
    backend.create("bob", "new", NOW)
    assert backend.open("bob", "new", True, NOW)[0].messages == []


def _reference_scan(data):
    """The whole-file split, written out once more without any memo."""
    out = []
    pos = 0 if data.startswith(b"From ") else data.find(b"\nFrom ") + 1
    if pos == 0 and not data.startswith(b"From "):
        return out
    while True:
        nxt = data.find(b"\nFrom ", pos) + 1
        if nxt == 0:
            end = len(data) - 1 if data.endswith(b"\n\n") else len(data)
        else:
            end = nxt - 1 if data[nxt - 2 : nxt] == b"\n\n" else nxt
        line_end = data.find(b"\n", pos, end)
        header_start = end if line_end < 0 else line_end + 1
        if data[header_start : header_start + 1] == b"\n":
            body_start, header = header_start + 1, b""
        else:
            blank = data.find(b"\n\n", header_start, end)
            body_start = end if blank < 0 else blank + 2
            header = data[header_start : end if blank < 0 else blank + 1]
        out.append((pos, body_start, end, data[pos:header_start], header))
        if nxt == 0:
            return out
        pos = nxt


@settings(max_examples=120, deadline=None)
@given(st.lists(st.sampled_from(
    [b"From a Thu Jan 25 12:00:00 2007\n", b"From b", b"Status: RO\n",
     b"X-UID: 7\n", b"Subject: s\r\n", b" folded\n", b"\n", b"\n\n", b"body",
     b">From x\n", b"X-IMAPbase: 5 9\n"]), max_size=14))
def test_memoized_scan_matches_the_plain_split(data):
    data = b"".join(data)
    for _ in range(2):  # the second pass is served from the memo
        spans = scan(data, 10)
        assert [(s.start - 10, s.body_start - 10, s.end - 10, s.from_line, s.header)
                for s in spans] == _reference_scan(data)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.builds(
    Work,
    cpu=st.dictionaries(st.sampled_from(["a.x", "b.y", "c.z"]),
                        st.integers(0, 9), max_size=3),
    reads=st.lists(st.tuples(st.sampled_from(["f", "g"]), st.integers(0, 9)),
                   max_size=2).map(tuple),
    writes=st.lists(st.tuples(st.just("w"), st.integers(0, 9)),
                    max_size=2).map(tuple),
    fsyncs=st.integers(0, 3), locks=st.integers(0, 3), net_bytes=st.integers(0, 3),
), max_size=6))
def test_sum_work_is_the_left_fold(works):
    folded = Work()
    for work in works:
        folded += work
    total = sum_work(works)
    assert total == folded and list(total.cpu.items()) == list(folded.cpu.items())


# -- the simulator's shortcuts: no real fsync, an unchanged index not re-read --

def _maildir_store(root, count=3):
    (root / "bob").mkdir(parents=True)
    box = mailbox.Maildir(root / "bob" / "Maildir")
    for i in range(count):
        box.add(b"Subject: %d\n\nbody %d\n" % (i, i))
    box.flush()
    return box


def _named_maildir(root, count):
    """bob's maildir with *count* new messages under fixed names (two stores
    made alike have the same files)."""
    for sub in ("cur", "new", "tmp"):
        (root / "bob" / "Maildir" / sub).mkdir(parents=True)
    for i in range(count):
        (root / "bob" / "Maildir" / "new" / f"1170000000.M{i}.host").write_bytes(
            b"Subject: %d\n\nbody %d\n" % (i, i))


def _cyrus_round(root, host_fsync, message):
    """Open, flag, deliver, expunge: every Work along the way."""
    backend = CyrusBackend(root, host_fsync=host_fsync)
    works = []
    box, work = backend.open("bob", "INBOX", False, NOW)
    works.append(work)
    works.append(box.set_flags([(0, SEEN | 8)]))
    works.append(box.expunge(None)[1])
    box.close()
    (root / "bob" / "Maildir" / "new" / "1170000005.M1P1.x").write_bytes(message)
    works.append(index_delivery(root, "bob", "new/1170000005.M1P1.x", message,
                                NOW + 5))
    works.append(backend.append("bob", "INBOX", [(b"Subject: x\r\n\r\nx\r\n", 0,
                                                   int(NOW))], NOW))
    again, work = backend.open("bob", "INBOX", True, NOW)
    works.append(work)
    return works, [(m.uid, m.flags) for m in again.messages]


def test_host_fsync_off_skips_os_fsync_but_counts_it(tmp_path, monkeypatch):
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd) or real(fd))
    for name in ("on", "off"):
        _maildir_store(tmp_path / name)
    on = _cyrus_round(tmp_path / "on", True, b"Subject: new\n\nnew\n")
    synced = len(calls)
    off = _cyrus_round(tmp_path / "off", False, b"Subject: new\n\nnew\n")
    assert len(calls) == synced > 0  # none more
    assert [w.fsyncs for w in on[0]] == [w.fsyncs for w in off[0]]
    assert sum(w.fsyncs for w in off[0]) >= 6 and on[1] == off[1]
    # index_delivery follows the backend made for that store root
    assert [w.cpu for w in on[0]] == [w.cpu for w in off[0]]
    # mbox: the same
    mbox_work = []
    for name, flag in (("m-on", True), ("m-off", False)):
        (tmp_path / name).mkdir()
        _deliver(tmp_path / name / "bob", b"Subject: a\n\nbody\n")
        backend = MboxBackend(tmp_path / name, host_fsync=flag)
        box, _ = backend.open("bob", "INBOX", False, NOW)
        before = len(calls)
        mbox_work.append((box.close(), len(calls) - before))
    assert mbox_work[0][0] == mbox_work[1][0] and mbox_work[0][0].fsyncs == 1
    assert [n for _, n in mbox_work] == [1, 0]


def test_cyrus_reuses_an_unchanged_index_with_the_same_work(tmp_path):
    _maildir_store(tmp_path)
    backend = CyrusBackend(tmp_path)
    first, _ = backend.open("bob", "INBOX", False, NOW)  # builds the index
    first.close()
    box, work = backend.open("bob", "INBOX", True, NOW)
    box.close()
    assert backend.index_counts == {"reused": 1, "read": 1}
    fresh_box, fresh = CyrusBackend(tmp_path).open("bob", "INBOX", True, NOW)
    assert work == fresh and work.reads == (
        ("bob/Maildir/cyrus.index", HEADER_BYTES + 3 * RECORD_BYTES),)
    assert [(m.uid, m.flags, m.recent) for m in box.messages] == [
        (m.uid, m.flags, m.recent) for m in fresh_box.messages]
    # a delivery appends its record to the kept index too: reused, with the
    # Work and records of a fresh read of the file
    message = b"Subject: late\n\nlate\n"
    key = mailbox.Maildir(tmp_path / "bob" / "Maildir").add(message)
    index_delivery(tmp_path, "bob", "new/" + key, message, NOW + 60)
    box, work = backend.open("bob", "INBOX", True, NOW)
    assert backend.index_counts == {"reused": 2, "read": 1}
    assert len(box.messages) == 4 and box.messages[-1].recent
    fresh_box, fresh = CyrusBackend(tmp_path).open("bob", "INBOX", True, NOW)
    assert work == fresh and work.reads == (
        ("bob/Maildir/cyrus.index", HEADER_BYTES + 4 * RECORD_BYTES),)
    assert [(m.uid, m.size, m.internaldate, m.flags, m.recent)
            for m in box.messages] == [
        (m.uid, m.size, m.internaldate, m.flags, m.recent)
        for m in fresh_box.messages]
    assert box.header(3) == fresh_box.header(3)
    # while a mailbox holds the index a delivery leaves it alone: the
    # session's refresh reads the file and reports the new message
    index_delivery(tmp_path, "bob", "new/" + mailbox.Maildir(
        tmp_path / "bob" / "Maildir").add(message), message, NOW + 61)
    expunged, got = box.refresh()
    assert expunged == [] and len(box.messages) == 5 and got.reads
    # another backend's flag change makes the kept one stale
    other, _ = CyrusBackend(tmp_path).open("bob", "INBOX", False, NOW)
    other.set_flags([(0, FLAGGED)])
    box.close()
    again, _ = backend.open("bob", "INBOX", True, NOW)
    assert backend.index_counts["read"] == 2 and again.messages[0].flags == FLAGGED
    # an open mailbox holds its index: a second session reads its own copy
    again.close()
    held, _ = backend.open("bob", "INBOX", False, NOW)
    second, _ = backend.open("bob", "INBOX", True, NOW)
    assert backend.index_counts == {"reused": 3, "read": 3}
    held.set_flags([(1, SEEN)])
    assert second.refresh()[1].reads and second.messages[1].flags == SEEN
    # a deleted and recreated folder never gets the old index back
    backend.create("bob", "Lists", NOW)
    lists, _ = backend.open("bob", "Lists", True, NOW)
    lists.close()
    backend.delete("bob", "Lists")
    backend.create("bob", "Lists", NOW)
    assert backend.open("bob", "Lists", True, NOW)[0].messages == []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"\r", b"\n", b"a", b"\r\n", b" "]), max_size=30))
def test_to_crlf_turns_only_bare_line_feeds(pieces):
    from twin.access.message import _BARE_LF, to_crlf

    data = b"".join(pieces)
    assert to_crlf(data) == _BARE_LF.sub(b"\r\n", data)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b"Content-ID: <x>\r\n", b"content-id : y\r\n",
                                 b" folded\r\n", b"X-Content-Id: z\r\n",
                                 b"Subject: CONTENT-ID\r\n", b"bad line\r\n"]),
                max_size=6))
def test_field_value_shortcut_changes_no_answer(lines):
    from twin.access.message import field_value, header_fields

    header = b"".join(lines) + b"\r\n"
    for name in (b"content-id", b"subject", b"x-content-id", b"from"):
        expected = None
        for fname, raw in header_fields(header):
            if fname == name:
                expected = b" ".join(raw[raw.find(b":") + 1 :].split(b"\r\n")).strip()
                break
        assert field_value(header, name) == expected


def test_cyrus_sole_writer_gives_the_same_replies_and_work(tmp_path):
    """A sole-writer backend tells changes by the generation alone (no stats)
    and answers exactly as the ordinary one over a twin store."""
    results = []
    for name, sole in (("plain", False), ("sole", True)):
        root = tmp_path / name
        _named_maildir(root, 3)
        backend = CyrusBackend(root, sole_writer=sole)
        seen, trace = [], []
        box, work = backend.open("bob", "INBOX", False, NOW)
        trace.append(work)
        box.close()
        seen.append(backend.signature("bob"))
        seen.append(backend.signature("bob"))
        box, work = backend.open("bob", "INBOX", False, NOW)
        trace += [work, box.set_flags([(0, SEEN), (1, 8)])]
        trace.append(box.expunge(None)[1])
        box.close()
        seen.append(backend.signature("bob"))
        message = b"Subject: late\n\nlate\n"
        (root / "bob" / "Maildir" / "new" / "1170000060.M9.host").write_bytes(message)
        trace.append(index_delivery(root, "bob", "new/1170000060.M9.host", message,
                                    NOW + 60))
        seen.append(backend.signature("bob"))
        box, work = backend.open("bob", "INBOX", True, NOW)
        trace += [work, box.header(2)[1], box.text(2)[1], box.refresh()[1]]
        results.append((trace, [(m.uid, m.size, m.flags, m.recent)
                                for m in box.messages], seen, backend.index_counts))
    (plain, plain_boxes, plain_seen, _), (sole, sole_boxes, sole_seen, counts) = (
        results)
    assert sole == plain and sole_boxes == plain_boxes
    assert [m[0] for m in sole_boxes] == [1, 3, 4]
    # stable while nothing changed, new after every write
    assert sole_seen[0] == sole_seen[1] and len(set(sole_seen[1:])) == 3
    assert all(len(s) == 3 for s in sole_seen)  # (shared, generation, dirs)
    assert counts == {"reused": 2, "read": 1}


def _store_files(root):
    """Every file under *root*: relative path -> bytes (the index header's
    note of the directories' mtimes, host clock, left out)."""
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                data = handle.read()
            if name == "cyrus.index":
                data = data[:32] + data[48:]
            files[os.path.relpath(path, root)] = data
    return files


def test_cyrus_sole_scratch_store_writes_the_same_files(tmp_path, monkeypatch):
    """A sole writer without host fsyncs (the simulator's store) takes no POSIX
    locks and rewrites index and cache in place; replies, Work and the files
    left behind (cyrus.header included, also in a folder made again after a
    DELETE) are those of the ordinary backend."""
    import fcntl

    locks = []
    real_lockf = fcntl.lockf
    monkeypatch.setattr(fcntl, "lockf", lambda *a: locks.append(a) or real_lockf(*a))
    results = []
    for name, sole in (("plain", False), ("sole", True)):
        root = tmp_path / name
        _named_maildir(root, 4)
        before = len(locks)
        backend = CyrusBackend(root, host_fsync=False, sole_writer=sole)
        trace = []
        box, work = backend.open("bob", "INBOX", False, NOW)
        trace += [work, box.set_flags([(0, SEEN), (1, 8), (2, 8)])]
        trace.append(box.expunge(None)[1])
        box.close()
        message = b"Subject: late\n\nlate\n"
        (root / "bob" / "Maildir" / "new" / "1170000060.M9.host").write_bytes(message)
        trace.append(index_delivery(root, "bob", "new/1170000060.M9.host", message,
                                    NOW + 60))
        trace.append(backend.create("bob", "Archive", NOW))
        trace.append(backend.append("bob", "Archive", [(b"Subject: a\r\n\r\na\r\n",
                                                        SEEN, int(NOW))], NOW))
        trace.append(backend.delete("bob", "Archive"))
        trace.append(backend.create("bob", "Archive", NOW + 1))
        trace.append(backend.append("bob", "Archive", [(b"Subject: b\r\n\r\nb\r\n",
                                                        0, int(NOW))], NOW + 1))
        box, work = backend.open("bob", "INBOX", False, NOW + 2)
        trace += [work, box.set_flags([(0, 8)]), box.expunge(None)[1]]
        messages = [(m.uid, m.size, m.flags) for m in box.messages]
        box.close()
        results.append((trace, messages, _store_files(root), len(locks) - before))
    (plain, plain_boxes, plain_files, plain_locks), (sole, sole_boxes, sole_files,
                                                      sole_locks) = results
    assert sole == plain and sole_boxes == plain_boxes
    assert [uid for uid, _, _ in sole_boxes] == [4, 5]
    assert sole_files == plain_files
    assert "bob/Maildir/.Archive/cyrus.header" in sole_files
    assert "bob/Maildir/cyrus.header" in sole_files
    assert plain_locks > 0 and sole_locks == 0
    # the cache shrank on the last expunge: cut to its new length in place
    cache = sole_files["bob/Maildir/cyrus.cache"]
    index = sole_files["bob/Maildir/cyrus.index"]
    assert len(index) == HEADER_BYTES - 16 + 2 * RECORD_BYTES
    assert cache == plain_files["bob/Maildir/cyrus.cache"]


_MIME_PIECES = [
    "\n", "\n\n", "--b", "--b--", "--b\n", "\n--b\n", "\n--b--\n", "--c\n", "\n--c--\n",
    "Content-Type: multipart/mixed; boundary=b\n", "Content-Type: message/rfc822\n",
    'Content-Type: multipart/digest; boundary="b"\n',
    "Content-Type: multipart/alternative; boundary=c\n", "Content-Type: text\n",
    "Content-Type: text/html\n", "Content-Transfer-Encoding: base64\n",
    "Content-Disposition: attachment; filename=a\n", "Content-ID: <x>\n",
    "Subject: x\n", " folded\n", "\t", "text line\n", "x", "=", "--", "From: a <b@c>\n",
]


def _old_way(raw: bytes) -> tuple[int, bytes, int]:
    from twin.access.cyrusstore import _cache_entry
    from twin.access.message import to_crlf

    text = to_crlf(raw)
    return (len(text), *_cache_entry(text))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_MIME_PIECES), max_size=30))
def test_measured_parse_gives_the_cache_entry_of_the_crlf_text(pieces):
    from twin.access.cyrusstore import _parse_stored
    from twin.access.message import parse_lf

    raw = "".join(pieces).encode()
    assert parse_lf(raw) is not None
    assert _parse_stored(raw) == _old_way(raw)
    crlf = raw.replace(b"\n", b"\r\n")  # as SMTP delivers it
    assert parse_lf(crlf) is None if b"\n" in raw else True
    assert _parse_stored(crlf) == _old_way(crlf)


def test_measured_parse_cases():
    from twin.access.cyrusstore import _parse_stored
    from twin.access.imapfetch import bodystructure
    from twin.access.message import parse_lf, parse_mime, to_crlf

    multipart = (b"Subject: hi\nContent-Type: multipart/mixed; boundary=\"q\"\n\n"
                 b"preamble\n--q\nContent-Type: text/plain\n\none\ntwo\n--q\n"
                 b"Content-Type: message/rfc822\n\nSubject: inner\n\nbody\n--q--\n"
                 b"epilogue\n")
    tree, size = parse_lf(multipart)
    assert size == len(to_crlf(multipart))
    assert bodystructure(tree) == bodystructure(parse_mime(to_crlf(multipart)))
    assert [c.lines for c in tree.children] == [2, 3]
    assert tree.children[0].size == len(b"one\r\ntwo")
    for raw in (b"", b"\n", b"no blank line", b"header: only\n", b"\n\nbody",
                b"a: b\r\n\r\nCRLF body\r\n", b"a: b\n\nbare \r in it\n", multipart,
                multipart.replace(b"\n", b"\r\n"), b"a: b\r\n\nmixed\n\r\n"):
        assert _parse_stored(raw) == _old_way(raw)
    assert parse_lf(b"a: b\r\n\r\nx") is None  # a CR: the CRLF parse instead


def test_count_lf_counts_as_bytes_count_on_every_span():
    from twin.access.message import _COUNT_CHUNK_BYTES, _NUMPY_COUNT_BYTES, count_lf

    rng = np.random.default_rng(5)
    raw = bytes(rng.choice([10, 13, 65, 255], size=3 * _COUNT_CHUNK_BYTES + 17,
                           p=[0.02, 0.01, 0.9, 0.07]).astype(np.uint8))
    edges = [0, 1, _NUMPY_COUNT_BYTES - 1, _NUMPY_COUNT_BYTES,
             _COUNT_CHUNK_BYTES - 1, _COUNT_CHUNK_BYTES, _COUNT_CHUNK_BYTES + 1,
             2 * _COUNT_CHUNK_BYTES + 5, len(raw) - 1, len(raw)]
    for start in edges:
        for end in edges:
            assert count_lf(raw, start, end) == raw.count(b"\n", start, end)
    assert count_lf(bytearray(raw), 3, len(raw)) == raw.count(b"\n", 3)


def test_measured_parse_of_a_large_attachment():
    import base64

    from twin.access.cyrusstore import _parse_stored

    body = base64.encodebytes(bytes(range(256)) * 4000)  # ~1.4 MB, 76-column lines
    raw = (b'Subject: big\nContent-Type: multipart/mixed; boundary="z"\n\n--z\n'
           b"Content-Type: text/plain\n\nhello\n--z\nContent-Type: text/plain\n"
           b"Content-Transfer-Encoding: base64\n\n" + body
           + b"\n--z--\n")
    size, entry, header_size = _parse_stored(raw)
    assert (size, entry, header_size) == _old_way(raw)
    assert size == len(raw) + raw.count(b"\n")
    assert b" %d %d " % (len(body) + body.count(b"\n"), body.count(b"\n")) in entry


def test_measured_parse_of_real_mail():
    from twin.access.cyrusstore import _parse_stored

    folder = "/work/shared/data/sa-publiccorpus"
    if not os.path.isdir(folder):
        pytest.skip("the SpamAssassin public corpus is not in /work/shared/data")
    names = sorted(os.listdir(os.path.join(folder, "spam")))[:200]
    for name in names:
        with open(os.path.join(folder, "spam", name), "rb") as handle:
            raw = handle.read()
        assert _parse_stored(raw) == _old_way(raw), name
        lf = raw.replace(b"\r\n", b"\n")
        assert _parse_stored(lf) == _old_way(lf), name


class _Dir:
    def authenticate(self, user, password):
        return password == "pw"


def _subjects_and_flags(backend, session_id):
    """One IMAP session: SELECT INBOX, the Subject and flags of every message;
    (replies, Work of each command)."""
    from twin.access.imap import ImapSession

    session = ImapSession(backend, _Dir(), now_fn=lambda: NOW + session_id)
    replies, works = [], []
    for line in (b"a LOGIN bob pw", b"b SELECT INBOX",
                 b"c FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])",
                 b"d LOGOUT"):
        replies.append(session.feed(line + b"\r\n"))
        works.append(session.last_work)
    return replies, works


def test_cyrus_kept_cache_follows_deliveries_expunges_flags_and_copies(tmp_path):
    """A sole writer keeps the cache file's bytes with its index between
    sessions; every change (a delivery between two sessions, an expunge, a
    flag change, a COPY into the folder) is seen by the next session, with the
    replies and Work of a backend that reads the file every time."""
    runs = {}
    for name, sole in (("plain", False), ("sole", True)):
        root = tmp_path / name
        _named_maildir(root, 3)
        backend = CyrusBackend(root, host_fsync=False, sole_writer=sole)
        trace = [_subjects_and_flags(backend, 1)]
        late = b"Subject: late one\n\nlate\n"
        (root / "bob" / "Maildir" / "new" / "1170000060.M9.host").write_bytes(late)
        trace.append(index_delivery(root, "bob", "new/1170000060.M9.host", late,
                                    NOW + 60))
        folder = os.path.realpath(root / "bob" / "Maildir")
        if sole:  # the delivery grew the kept copy: nothing to read again
            kept = backend._spare[folder]
            assert kept.cache_more and kept.cache_serial == kept.shared.cache_writes
        trace.append(_subjects_and_flags(backend, 2))  # sees the delivery
        box, work = backend.open("bob", "INBOX", False, NOW + 3)
        trace += [work, box.set_flags([(0, SEEN), (1, 8)]), box.expunge(None)[1]]
        box.close()
        trace.append(_subjects_and_flags(backend, 4))  # flags, expunge seen
        trace.append(backend.append("bob", "INBOX", [(b"Subject: copied\r\n\r\nc\r\n",
                                                      SEEN, int(NOW))], NOW + 5))
        trace.append(_subjects_and_flags(backend, 6))  # the copy seen
        kept = backend._spare[folder]
        if sole:  # the kept copy is the file's bytes after all that
            assert kept.read_cache()[0] == (root / "bob" / "Maildir"
                                            / "cyrus.cache").read_bytes()
            assert kept.cache_image is not None
        else:
            assert kept.cache_image is None  # outside writers: always read
        runs[name] = (trace, _store_files(root))
    assert runs["sole"] == runs["plain"]
    replies = [r for step in runs["sole"][0] if type(step) is tuple
               for r in step[0]]
    last = b"".join(replies[-4:])
    assert b"Subject: late one" in last and b"Subject: copied" in last
    assert b"Subject: 0" in last and b"Subject: 1" not in last  # \Deleted gone
    assert b"FLAGS (\\Seen)" in last
    fetches = [r for r in replies if b"FETCH (UID" in r]
    assert [f.count(b"FETCH (UID") for f in fetches] == [3, 4, 3, 4]


def test_cyrus_kept_cache_is_dropped_when_a_delivery_misses_it(tmp_path):
    """A delivery while the index is held by an open mailbox cannot grow the
    kept cache copy: the next read goes back to the file."""
    root = tmp_path / "store"
    _named_maildir(root, 2)
    backend = CyrusBackend(root, host_fsync=False, sole_writer=True)
    box, _ = backend.open("bob", "INBOX", False, NOW)
    header, work = box.header(0)
    assert header.startswith(b"Subject: 0") and work.reads[0][1] > 0
    late = b"Subject: late\n\nlate\n"
    (root / "bob" / "Maildir" / "new" / "1170000060.M9.host").write_bytes(late)
    index_delivery(root, "bob", "new/1170000060.M9.host", late, NOW + 60)
    assert box.refresh()[0] == []
    assert [m.uid for m in box.messages] == [1, 2, 3]
    header, work = box.header(2)
    cache = (root / "bob" / "Maildir" / "cyrus.cache").read_bytes()
    assert header.startswith(b"Subject: late")
    assert work.reads == (("bob/Maildir/cyrus.cache", len(cache)),)
    box.close()


def test_cyrus_second_backend_takes_the_index_the_first_left(tmp_path):
    """The index a populating backend left is reused by the simulator's
    backend (same Work as reading it), but never while the first backend's
    own mailbox holds it."""
    root = tmp_path / "store"
    _named_maildir(root, 3)
    first = CyrusBackend(root, host_fsync=False, sole_writer=True)
    first.index_written("bob", {}, NOW)
    second = CyrusBackend(root, host_fsync=False, sole_writer=True)
    box, work = second.open("bob", "INBOX", False, NOW)
    assert second.index_counts == {"reused": 1, "read": 0}
    size = HEADER_BYTES + 3 * RECORD_BYTES
    assert work.reads == (("bob/Maildir/cyrus.index", size),)
    # the first backend still names that index among its spares: it must read
    # its own copy while the second's mailbox holds this one
    other, _ = first.open("bob", "INBOX", False, NOW)
    # (one read for index_written's rebuild, one now)
    assert first.index_counts["read"] == 2 and other._index is not box._index
    box.set_flags([(0, SEEN)])
    assert other.refresh()[1].reads  # the change is seen, by a re-read
    assert other.messages[0].flags == SEEN
    other.close()
    box.close()


def test_cyrus_forgets_kept_indexes_of_renamed_and_deleted_folders(tmp_path):
    root = tmp_path / "store"
    _named_maildir(root, 1)
    backend = CyrusBackend(root, host_fsync=False, sole_writer=True)
    for name in ("A", "A/B", "AB"):
        backend.create("bob", name, NOW)
        backend.status("bob", name, NOW)
    maildir = os.path.realpath(root / "bob" / "Maildir")
    assert {os.path.basename(k) for k in backend._spare} == {".A", ".A.B", ".AB"}
    backend.rename("bob", "A", "C")
    assert {os.path.basename(k) for k in backend._spare} == {".AB"}
    backend.status("bob", "C/B", NOW)
    backend.delete("bob", "C")
    assert {os.path.basename(k) for k in backend._spare} == {".AB"}
    assert os.path.join(maildir, ".AB") in backend._spare
