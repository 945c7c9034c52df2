"""Pop3Session in-process: RFC 1939 replies, QPopper and Cyrus work, bad input."""

import mailbox
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.access.cyrusstore import HEADER_BYTES, RECORD_BYTES, CyrusBackend
from twin.access.mboxstore import MboxBackend
from twin.access.pop3 import Pop3Session

MESSAGE = b"From: a@example.org\nSubject: m%d\n\n.starts with a dot\nline\n"


class Users:
    def authenticate(self, user, password):
        return (user, password) == ("bob", "pw")


def make(tmp_path, fmt, count=3):
    root = tmp_path / "store"
    root.mkdir()
    if fmt == "maildir":
        (root / "bob").mkdir()
        box = mailbox.Maildir(root / "bob" / "Maildir")
        backend = CyrusBackend(root)
    else:
        box = mailbox.mbox(root / "bob")
        backend = MboxBackend(root)
    for i in range(count):
        box.add(MESSAGE % i)
    box.flush()
    return root, backend


def login(backend):
    pop = Pop3Session(backend, Users())
    assert pop.greeting() == b"+OK twin POP3 server ready\r\n"
    assert pop.feed(b"USER bob\r\n") == b"+OK send PASS\r\n"
    pop.feed(b"PASS pw\r\n")
    return pop


SIZE = len(MESSAGE % 0) + (MESSAGE % 0).count(b"\n")


@pytest.mark.parametrize("fmt", ["mbox", "maildir"])
def test_transaction_commands(tmp_path, fmt):
    _, backend = make(tmp_path, fmt)
    pop = login(backend)
    assert pop.feed(b"STAT\r\n") == b"+OK 3 %d\r\n" % (3 * SIZE)
    assert pop.feed(b"LIST 2\r\n") == b"+OK 2 %d\r\n" % SIZE
    assert pop.feed(b"RETR 1\r\n") == (
        b"+OK %d octets\r\nFrom: a@example.org\r\nSubject: m0\r\n\r\n"
        b"..starts with a dot\r\nline\r\n.\r\n" % SIZE)
    assert pop.feed(b"TOP 2 1\r\n") == (
        b"+OK top of message follows\r\nFrom: a@example.org\r\nSubject: m1\r\n\r\n"
        b"..starts with a dot\r\n.\r\n")
    assert pop.feed(b"DELE 2\r\n") == b"+OK message 2 deleted\r\n"
    assert pop.feed(b"RETR 2\r\n") == b"-ERR no such message\r\n"
    assert pop.feed(b"LIST\r\n") == b"+OK\r\n1 %d\r\n3 %d\r\n.\r\n" % (SIZE, SIZE)
    assert pop.feed(b"RSET\r\n") == b"+OK maildrop has 3 messages\r\n"
    assert pop.feed(b"DELE 3\r\nNOOP\r\n") == b"+OK message 3 deleted\r\n+OK\r\n"
    assert pop.feed(b"QUIT\r\n") == b"+OK bye, 1 messages deleted\r\n"
    assert pop.closed
    again = login(backend)
    assert again.feed(b"STAT\r\n") == b"+OK 2 %d\r\n" % (2 * SIZE)


def test_qpopper_copies_the_drop_and_rewrites_it_at_quit(tmp_path):
    root, backend = make(tmp_path, "mbox")
    size = os.path.getsize(root / "bob")
    pop = Pop3Session(backend, Users())
    pop.feed(b"USER bob\r\n")
    pop.feed(b"PASS pw\r\n")
    work = pop.last_work
    assert work.reads == (("bob", size),)
    assert work.writes == ((".bob.pop", size), ("bob", 0))
    assert work.fsyncs == 2 and work.files_created == 1
    assert os.path.getsize(root / "bob") == 0
    assert os.path.getsize(root / ".bob.pop") == size
    second = Pop3Session(backend, Users())
    second.feed(b"USER bob\r\n")
    assert second.feed(b"PASS pw\r\n").startswith(b"-ERR [IN-USE]")
    pop.feed(b"DELE 1\r\n")
    pop.feed(b"QUIT\r\n")
    kept = os.path.getsize(root / "bob")
    assert pop.last_work.writes == (("bob", kept),)
    assert pop.last_work.files_deleted == 1 and not (root / ".bob.pop").exists()
    assert [m["Subject"] for m in mailbox.mbox(root / "bob")] == ["m1", "m2"]


def test_dropped_connection_keeps_every_message(tmp_path):
    root, backend = make(tmp_path, "mbox")
    before = (root / "bob").read_bytes()
    pop = login(backend)
    pop.feed(b"DELE 1\r\n")
    mailbox.mbox(root / "bob").add(MESSAGE % 7)  # delivered meanwhile
    pop.abort()
    assert [m["Subject"] for m in mailbox.mbox(root / "bob")] == [
        "m0", "m1", "m2", "m7"]
    assert (root / "bob").read_bytes().startswith(before)


def test_cyrus_pop_reads_the_index_not_the_messages(tmp_path):
    _, backend = make(tmp_path, "maildir")
    login(backend).feed(b"QUIT\r\n")  # first login reconstructs the index
    pop = login(backend)
    assert pop.last_work.reads == (("bob/Maildir/cyrus.index",
                                    HEADER_BYTES + 3 * RECORD_BYTES),)
    uidl = pop.feed(b"UIDL\r\n")
    assert uidl.startswith(b"+OK\r\n1 ") and uidl.count(b".") == 4
    pop.feed(b"DELE 1\r\nQUIT\r\n")
    assert pop.last_work.files_deleted == 1


def test_authorization_state_and_failures(tmp_path):
    _, backend = make(tmp_path, "maildir")
    pop = Pop3Session(backend, Users())
    assert pop.feed(b"STAT\r\n") == b"-ERR command not valid in this state\r\n"
    assert pop.feed(b"PASS pw\r\n") == b"-ERR send USER first\r\n"
    assert pop.feed(b"XYZZY\r\n") == b"-ERR unknown command\r\n"
    assert pop.feed(b"A" * 600 + b"\r\n") == b"-ERR line too long\r\n"
    for expected in (3.0, 6.0):
        pop.feed(b"USER bob\r\n")
        assert pop.feed(b"PASS no\r\n") == b"-ERR [AUTH] invalid credentials\r\n"
        assert pop.delay_s == expected
    pop.feed(b"USER ../../etc\r\n")
    assert pop.feed(b"PASS pw\r\n") == b"-ERR [AUTH] too many failures, closing\r\n"
    assert pop.closed
    assert "STLS" not in pop.feed(b"CAPA\r\n").decode()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(
    st.sampled_from([b"USER bob", b"PASS pw", b"STAT", b"LIST", b"LIST 0",
                     b"RETR 99999999999", b"TOP 1 -1", b"DELE 1", b"RSET", b"UIDL 1",
                     b"TOP 1", b"CAPA", b"STLS", b"NOOP"]),
    st.binary(max_size=40)), max_size=12))
def test_fuzzed_commands_never_crash(lines):
    pop = Pop3Session(MboxBackend("/nonexistent-twin-store"), Users())
    for line in lines:
        reply = pop.feed(line + b"\r\n")
        assert reply == b"" or reply.startswith((b"+OK", b"-ERR"))


_SCRIPT = [b"USER bob", b"PASS pw", b"STAT", b"uidl", b"RETR 2", b"", b"DELE 1",
           b"NOPE", b"LIST", b"x" * 300, b"QUIT"]


@pytest.mark.parametrize("fmt", ["mbox", "maildir"])
def test_whole_lines_and_split_input_answer_alike(tmp_path, fmt):
    """A command sent as one line (the common case, taken in short) gets the
    replies and Work of the same bytes sent in pieces."""
    runs = []
    for way in ("lines", "pieces"):
        (tmp_path / way).mkdir()
        _, backend = make(tmp_path / way, fmt)
        pop = Pop3Session(backend, Users())
        replies = []
        for line in _SCRIPT:
            data = line + b"\r\n"
            if way == "lines":
                replies.append(pop.feed(data))
            else:
                replies.append(b"".join(pop.feed(data[i : i + 4])
                                        for i in range(0, len(data), 4)))
        total = pop.total_work  # (file names are Python mailbox's: not compared)
        runs.append((replies, total._replace(reads=[n for _, n in total.reads])))
    assert runs[0] == runs[1]
    replies = runs[0][0]
    assert replies[2] == b"+OK 3 %d\r\n" % (3 * SIZE)
    assert replies[5].startswith(b"-ERR") and replies[7].startswith(b"-ERR")
    assert replies[8] == b"+OK\r\n2 %d\r\n3 %d\r\n.\r\n" % (SIZE, SIZE)
    assert replies[10].startswith(b"+OK")
