"""Second-pass fast paths of the access stack against their plain forms.

Each fast path (a session's ``call`` for the scripted client, the literal
count of a reply, records packed in one ``struct`` call, an expunge's
reconcile of the mailbox's own messages, whole writes without a view) must
answer exactly what the plain path answers: the same replies, Work, client
outcomes and store files.
"""

import copy
import imaplib
import os
import random

import numpy as np

import twin.access.cyrusstore as cyrusstore
from twin.access.cyrusstore import (
    NEW,
    CyrusBackend,
    CyrusMailbox,
    _Record,
    index_delivery,
    pack_records,
)
from twin.access.imap import ImapSession
from twin.access.pop3 import Pop3Session
from twin.access.server import start
from twin.access.settings import AccessSettings
from twin.access.store import MessageInfo
from twin.stages.maildir import MaildirSettings, MaildirStore
from twin.traffic.client import (
    ClientState,
    _literal_bytes,
    _responses,
    run_session,
)
from twin.traffic.population import Population, PopulationSettings
from twin.traffic.users import SessionSpec

NOW = 1_170_000_000.0
EPOCH = 1173052800.0


class _Directory:
    def authenticate(self, user: str, password: str) -> bool:
        return (user, password) == ("bob", "pw")


def _maildir(root, count: int = 5):
    for sub in ("cur", "new", "tmp"):
        (root / "bob" / "Maildir" / sub).mkdir(parents=True)
    for n in range(count):
        (root / "bob" / "Maildir" / "new" / f"{n + 1}.M{n}.h").write_bytes(
            b"From: a@b\nSubject: m%d\nContent-Type: text/plain\n\nbody %d\n" % (n, n)
        )


def _files(root) -> dict[str, bytes]:
    """The store's files (an index's note of its directories' mtimes, host
    clock, left out)."""
    out = {}
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(folder, name)
            data = open(path, "rb").read()
            if name == "cyrus.index":
                data = data[:32] + data[48:]
            out[os.path.relpath(path, root)] = data
    return out


_IMAP_LINES = [
    b"a1 LOGIN bob pw\r\n", b"a1 LOGIN bob nope\r\n", b"a2 SELECT INBOX\r\n",
    b"a3 UID FETCH 1:* (UID FLAGS)\r\n", b"a4 FETCH 1:2 (BODY.PEEK[])\r\n",
    b"a5 UID STORE 2 +FLAGS.SILENT (\\Deleted)\r\n", b"a6 EXPUNGE\r\n",
    b"a7 STORE 1 FLAGS (\\Seen)\r\n", b"a8 UID COPY 1:3 Archive\r\n",
    b"a9 CREATE Archive\r\n", b"b1 NOOP\r\n", b"b2 noop\r\n", b"* NOOP\r\n",
    b"b3 FROB\r\n", b"b4 UID FROB 1\r\n", b"b5 LIST \"\" \"*\"\r\n",
    b"b6 IDLE\r\n", b"DONE\r\n", b"b7 LOGIN {3}\r\n", b"bob {2}\r\n", b"pw\r\n",
    b"b8 FETCH 1 (UID", b" FLAGS)\r\n", b"b9 SEARCH ALL\r\nc1 NOOP\r\n",
    b"c2 STATUS INBOX (MESSAGES UNSEEN)\r\n", b"c3 FETCH 9 (FLAGS)\r\n",
    b"c4 UID FETCH 2:4 (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n",
    b"c5 CLOSE\r\n", b"c6 EXAMINE INBOX\r\n", b"c7 LOGOUT\r\n", b"\r\n",
    b"c8 STORE 1:* -FLAGS (\\Seen)\n", b"c9 AUTHENTICATE PLAIN\r\n",
]


def test_imap_call_answers_as_feed(tmp_path):
    """Random command streams (whole lines, partial ones, literals, IDLE,
    errors) fed through ``call`` and through ``feed`` on twin stores."""
    rng = random.Random(5)
    for trial in range(40):
        lines = [rng.choice(_IMAP_LINES) for _ in range(rng.randint(1, 30))]
        if rng.random() < 0.7:
            lines[:0] = [b"a1 LOGIN bob pw\r\n", b"a2 SELECT INBOX\r\n"]
        got = {}
        for way in ("feed", "call"):
            root = tmp_path / f"{trial}{way}"
            _maildir(root)
            session = ImapSession(
                CyrusBackend(root, host_fsync=False, sole_writer=True), _Directory(),
                now_fn=lambda: NOW, settings=AccessSettings(max_login_failures=50))
            out = []
            for data in lines:
                if way == "feed":
                    reply, work = session.feed(data), session.last_work
                else:
                    reply, work = session.call(data)
                out.append((reply, work, list(session.commands), session.delay_s,
                            session.closed, session.last_work))
            out.append(session.total_work)
            got[way] = (out, _files(root))
        assert got["call"] == got["feed"]


def test_pop3_call_answers_as_feed(tmp_path):
    rng = random.Random(6)
    pool = [b"USER bob\r\n", b"PASS pw\r\n", b"PASS no\r\n", b"STAT\r\n",
            b"UIDL\r\n", b"LIST 2\r\n", b"RETR 1\r\n", b"DELE 2\r\n", b"TOP 1 1\r\n",
            b"RSET\r\n", b"NOOP\r\n", b"FROB\r\n", b"RETR", b" 3\r\n", b"QUIT\r\n"]
    for trial in range(30):
        lines = [b"USER bob\r\n", b"PASS pw\r\n"] + [
            rng.choice(pool) for _ in range(rng.randint(1, 20))]
        got = {}
        for way in ("feed", "call"):
            root = tmp_path / f"{trial}{way}"
            _maildir(root)
            session = Pop3Session(CyrusBackend(root, host_fsync=False), _Directory(),
                                  now_fn=lambda: NOW)
            out = []
            for data in lines:
                if way == "feed":
                    reply, work = session.feed(data), session.last_work
                else:
                    reply, work = session.call(data)
                out.append((reply, work, list(session.commands), session.closed))
            got[way] = (out, _files(root))
        assert got["call"] == got["feed"]


class _PlainImap(ImapSession):
    """``call`` as the plain ``feed`` then ``last_work``."""

    def call(self, data):
        return self.feed(data), self.last_work


class _PlainPop3(Pop3Session):
    def call(self, data):
        return self.feed(data), self.last_work


def test_scripted_sessions_match_the_plain_calls(tmp_path):
    """Whole client sessions (reads, deletes, moves, expunges, POP3 downloads)
    over ``call`` and over ``feed``: the same outcomes, states and files."""
    population = Population(PopulationSettings(users=2), np.random.default_rng(3))
    results = {}
    for way in ("fast", "plain"):
        root = tmp_path / way
        delivery = MaildirStore(root, MaildirSettings())
        backend = CyrusBackend(root, host_fsync=False, sole_writer=True)
        states = [ClientState(), ClientState()]
        outcomes = []
        serial = 0
        for rnd in range(6):
            for user in range(2):
                name = population.usernames[user]
                for _ in range(3):
                    serial += 1
                    data = (b"From: a@b\r\nTo: %s@x\r\nSubject: s%d\r\n\r\nbody %d\r\n"
                            % (name.encode(), serial, serial))
                    done = delivery.deliver(name, data, 100.0 * rnd, f"Q{serial}")
                    index_delivery(root, name, done.key.split("/Maildir/", 1)[1],
                                   data, EPOCH + rnd)
                protocol = "pop3" if (rnd + user) % 3 == 2 else "imap"
                spec = SessionSpec(rnd * 2 + user, name, population.passwords[user],
                                   protocol, 100.0 * rnd, "poll", 0.0, 0.8, 0.3, 0.3,
                                   0.4 if user else 0.0, bool(rnd % 2), "Archive",
                                   user)
                if way == "fast":
                    kind = ImapSession if protocol == "imap" else Pop3Session
                else:
                    kind = _PlainImap if protocol == "imap" else _PlainPop3
                session = kind(backend, _Directory(), now_fn=lambda: EPOCH + 500.0)
                session.directory = type("D", (), {"authenticate": staticmethod(
                    lambda u, p: population.user_index(u) is not None
                    and population.passwords[population.user_index(u)] == p)})()
                outcomes.append(run_session(spec, session, state=states[user]))
        results[way] = (outcomes, [(s.last_uid, s.uidvalidity, s.pop3_seen)
                                   for s in states], _files(root))
    assert results["fast"] == results["plain"]
    assert sum(o.messages_read for o in results["fast"][0]) > 10
    assert sum(o.deleted for o in results["fast"][0]) > 0


def test_literal_bytes_count_as_the_responses():
    rng = random.Random(7)
    pieces = [b"* 1 FETCH (UID 5 BODY[] {%d}\r\n", b"abc\r\n", b"{3}\r\nxyz",
              b")\r\n", b"A001 OK done\r\n", b"{", b"}", b"\r", b"\n", b"12",
              b"* 2 FETCH (X {0}\r\n)\r\n", b"{2}\r\n"]
    counted = failed = 0
    for _ in range(60000):
        parts = []
        for _ in range(rng.randint(0, 8)):
            piece = rng.choice(pieces)
            if b"%d" in piece:
                data = bytes(rng.choice(b"abc\r\n{}")
                             for _ in range(rng.randint(0, 12)))
                piece = piece % (len(data) + rng.choice((0, 0, 0, 1, -1, 5))) + data
            parts.append(piece)
        reply = b"".join(parts)
        try:
            plain = sum(literal for _, literal in _responses(reply))
        except AssertionError as exc:
            plain = str(exc)
        try:
            fast = _literal_bytes(reply)
        except AssertionError as exc:
            fast = str(exc)
        assert fast == plain, reply
        counted += isinstance(plain, int) and plain > 0
        failed += isinstance(plain, str)
    assert counted > 1000 and failed > 1000


def _record(rng: random.Random, uid: int) -> _Record:
    name = "".join(rng.choice("abc.:,M0123") for _ in range(rng.randint(1, 128)))
    return _Record(MessageInfo(uid, rng.randrange(1 << 32), rng.randrange(1 << 32),
                               rng.randrange(32)), rng.randrange(1 << 32),
                   rng.randrange(3), name, rng.randrange(1 << 63),
                   rng.randrange(1 << 32))


def test_records_packed_at_once_as_one_by_one():
    rng = random.Random(8)
    for count in [0, 1, 2, 3, 17, 511, 512, 513, 1200] + [
            rng.randrange(60) for _ in range(30)]:
        records = [_record(rng, uid + 1) for uid in range(count)]
        assert pack_records(records) == b"".join([r.pack() for r in records])


def _mailbox(messages: list[MessageInfo], records: list[_Record],
             recent_uid: int) -> CyrusMailbox:
    index = type("I", (), {})()
    index.records, index.recent_uid = records, recent_uid
    mailbox = CyrusMailbox.__new__(CyrusMailbox)
    mailbox._index, mailbox.messages, mailbox._records_seen = index, messages, []
    return mailbox


def test_reconcile_of_own_messages_as_the_plain_one():
    """Kept records whose infos are the messages' own (an expunge here), or
    not (read again, renumbered, new ones): the same gone numbers, messages
    and recent flags as the dictionary reconcile."""
    rng = random.Random(9)
    for _ in range(3000):
        count = rng.randrange(12)
        messages = [MessageInfo(uid, 10, 0, 0, rng.random() < 0.5)
                    for uid in sorted(rng.sample(range(1, 40), count))]
        records = []
        for info in messages:
            roll = rng.random()
            if roll < 0.3:
                continue  # expunged
            if roll < 0.4:  # read again from the file: a new object
                info = MessageInfo(info.uid, 10, 0, 0, not info.recent)
            records.append(_Record(info, 0, NEW, "n", 0, 0))
        if rng.random() < 0.2:  # a delivery since
            uid = (messages[-1].uid if messages else 0) + 1
            records.append(_Record(MessageInfo(uid, 10, 0, 0), 0, NEW, "n", 0, 0))
        if rng.random() < 0.1:
            rng.shuffle(records)
        recent_uid = rng.randrange(45)
        fast = _mailbox(messages, records, recent_uid)
        plain = copy.deepcopy(fast)
        gone_plain = plain._reconcile_infos(plain._index.records,
                                            [r.info for r in plain._index.records])
        gone_fast = fast._reconcile()
        assert gone_fast == gone_plain
        assert [(m.uid, m.recent) for m in fast.messages] == [
            (m.uid, m.recent) for m in plain.messages]
        assert all(a is r.info for a, r in zip(fast.messages, records, strict=True))


def test_short_writes_are_continued(tmp_path, monkeypatch):
    real = os.write
    data = bytes(range(256)) * 50
    for limit in (1, 7, 4096, 1 << 20):
        path = tmp_path / f"w{limit}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT)
        calls = []

        def short(fd, chunk, limit=limit, calls=calls):
            calls.append(len(chunk))
            return real(fd, bytes(chunk[:limit]))

        monkeypatch.setattr(cyrusstore.os, "write", short)
        try:
            cyrusstore._write_all_fd(fd, data)
            cyrusstore._write_all_fd(fd, b"")
        finally:
            monkeypatch.setattr(cyrusstore.os, "write", real)
            os.close(fd)
        assert path.read_bytes() == data
        assert len(calls) == -(-len(data) // limit)


def test_expunge_and_copy_over_imaplib(tmp_path):
    """The server's expunge (records repacked at once, own messages
    reconciled) seen by a real client."""
    run = tmp_path / "run"
    _maildir(run / "store", 6)
    (run / "credentials.csv").write_text("user,password\nbob,pw\n")
    server = start("imap", run, settings=AccessSettings(failed_login_pause_s=0.0))
    try:
        client = imaplib.IMAP4(*server.address, timeout=5)
        try:
            client.login("bob", "pw")
            client.create("Archive")
            client.select("INBOX")
            assert client.uid("COPY", "2:3", "Archive")[0] == "OK"
            typ, _ = client.uid("STORE", "2,4,5", "+FLAGS.SILENT", "(\\Deleted)")
            assert typ == "OK"
            typ, data = client.expunge()
            assert typ == "OK" and data == [b"5", b"4", b"2"]
            typ, data = client.uid("FETCH", "1:*", "(UID FLAGS)")
            assert [d.split(b" (")[1] for d in data] == [
                b"UID 1 FLAGS", b"UID 3 FLAGS", b"UID 6 FLAGS"]
            typ, data = client.fetch("2", "(BODY[TEXT])")
            assert data[0][1] == b"body 2\r\n"
            client.select("Archive")
            typ, data = client.uid("FETCH", "1:*", "(RFC822.SIZE)")
            assert len(data) == 2
        finally:
            client.logout()
    finally:
        server.close()


_HEADS = [b"Subject: x", b"Content-Type: text/plain; charset=us-ascii",
          b"Content-Type: multipart/mixed; boundary=\"b1\"",
          b"Content-Type: message/rfc822", b"content-type: TEXT/HTML",
          b"Content-Type: multipart/alternative", b"X-A: folded\r\n more",
          b"From: a@b", b"Content-Transfer-Encoding: base64",
          b"Content-Type: image/png; name=a.png", b"Bad line", b""]
_BODIES = [b"--b1\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b1--\r\n", b"line\r\n",
           b"", b"no end", b"a\r\n\r\n\r\nb", b"\r", b"\n", b"x\ry",
           b"Subject: in\r\n\r\nz"]


def test_crlf_leaves_measure_as_their_lf_form():
    from twin.access.cyrusstore import _cache_entry, _parse_stored
    from twin.access.message import parse_crlf_leaf, parse_lf, to_crlf

    rng = random.Random(10)
    measured = 0
    for _ in range(20000):
        heads = [rng.choice(_HEADS) for _ in range(rng.randint(0, 4))]
        raw = b"\r\n".join(heads) + rng.choice([b"\r\n\r\n", b"\r\n", b"\n\n", b""])
        raw += b"".join(rng.choice(_BODIES) for _ in range(rng.randint(0, 4)))
        fast = parse_crlf_leaf(raw)
        text = to_crlf(raw)
        assert _parse_stored(raw) == (len(text), *_cache_entry(text))
        if fast is None:
            continue
        measured += 1
        lf = raw.replace(b"\r\n", b"\n")
        assert b"\r" not in lf and fast == parse_lf(lf)
    assert measured > 2000


def test_client_uniforms_are_the_mixes():
    from twin.traffic.client import _mix, _Script

    rng = random.Random(11)
    for _ in range(300):
        sid = rng.choice([0, 1, rng.randrange(1 << 20), rng.randrange(1 << 64)])
        spec = SessionSpec(sid, "u", "p", "imap", 0.0, "poll", 0.0, 0.5, 0.0, 0.0,
                           0.0, False, "Archive", 0)
        script = _Script(spec, None, None, ClientState())
        uids = sorted(rng.sample(range(1, 1 << 32), rng.randrange(0, 20)))
        salt = rng.choice([1, 2, 3, rng.randrange(1 << 40)])
        assert script.uniforms(uids, salt) == [_mix(sid, uid, salt) for uid in uids]
        assert script.draws == ([(salt, tuple(uids))] if uids else [])
