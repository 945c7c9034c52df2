"""The two stores on their own: UW mbox parsing, Cyrus index upkeep, names."""

import io
import mailbox
import os

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
from twin.access.mboxstore import MboxBackend, scan
from twin.access.names import MailboxNameError, check_user, list_matcher, split_name
from twin.access.settings import AccessSettings
from twin.access.store import StoreError

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
