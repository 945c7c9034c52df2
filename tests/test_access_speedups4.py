"""Session-7 fast paths of the access stack against their plain forms.

Each fast path (header maps and field selection without a line loop, the
Content-Type memo, leaf BODYSTRUCTUREs cut around their sizes, Work sums by
column, the client's reply split by literals, UID commands dispatched in
place) must answer exactly what the plain path answers.
"""

import imaplib
import random

from twin.access.cyrusstore import (
    CACHE,
    HEADER_BYTES,
    INDEX,
    RECORD_BYTES,
    CyrusBackend,
    _delivery_target,
    _resolve_target,
    index_delivery,
)
from twin.access.imap import ImapSession
from twin.access.imapfetch import _LEAVES, bodystructure
from twin.access.message import (
    Span,
    _field_map,
    _set_type,
    _set_type_parsed,
    field_map,
    header_fields,
    parse_lf,
    parse_mime,
    select_fields,
    to_crlf,
)
from twin.access.server import start
from twin.access.settings import AccessSettings
from twin.access.store import NO_WORK, plus_cpu, sum_work, units_plus
from twin.stages.work import Work
from twin.traffic.client import _responses, _responses_by_line

NOW = 1_170_000_000.0

_NAMES = [
    b"From",
    b"to",
    b"CC",
    b"Subject",
    b"x-To",
    b"Content-Type",
    b" Date",
    b"Date ",
    b"content-transfer-encoding",
    b"Content-ID",
    b"",
    b"a:b",
]
_VALUES = [
    b" x",
    b"",
    b" a@b.example",
    b"\tvalue",
    b" text/plain; charset=us-ascii",
    b' multipart/mixed; boundary="q"',
    b" base64",
    b" <i@d>",
    b" \xe9t\xe9",
    b":colon",
    b" lone \r cr",
    b" lone \n lf",
]


def _header(rng: random.Random) -> bytes:
    lines = []
    for _ in range(rng.randint(0, 8)):
        kind = rng.random()
        if kind < 0.08:
            lines.append(b"")  # a stray empty line
        elif kind < 0.16:
            lines.append(rng.choice([b" folded", b"\tfolded", b"no colon here"]))
        else:
            lines.append(rng.choice(_NAMES) + b":" + rng.choice(_VALUES))
    header = b"\r\n".join(lines)
    return header + rng.choice([b"\r\n\r\n", b"\r\n", b""])


def test_field_maps_match_the_line_loop():
    rng = random.Random(11)
    fast = 0
    for _ in range(5000):
        header = _header(rng)
        got, plain = field_map(header), _field_map(header)
        assert got == plain
        fast += b"\r\n " not in header and b"\r\n\t" not in header
    assert fast > 1000  # the fast path was taken


def test_selected_fields_match_the_field_list():
    rng = random.Random(12)
    lowered = [n.strip().lower() for n in _NAMES]
    for _ in range(5000):
        header = _header(rng)
        names = frozenset(rng.sample(lowered, rng.randint(1, 5)))
        for keep in (True, False):
            plain = (
                b"".join(
                    [
                        raw
                        for name, raw in header_fields(header)
                        if (name in names) == keep
                    ]
                )
                + b"\r\n"
            )
            assert select_fields(header, names, keep) == plain


def test_content_type_memo_matches_the_parse():
    rng = random.Random(13)
    values = [
        None,
        b"",
        b"text/plain",
        b'TEXT/HTML; charset="utf-8"',
        b'multipart/mixed; boundary="=_b"; x=y',
        b"garbage",
        b"/x",
        b"image/",
        b'a/b; p="q\\"r"',
    ]
    for _ in range(500):
        ctype, default = (
            rng.choice(values),
            rng.choice([b"text/plain", b"message/rfc822"]),
        )
        got, plain = Span(b""), Span(b"")
        _set_type(got, ctype, default)
        _set_type_parsed(plain, ctype, default)
        assert (got.maintype, got.subtype, got.params) == (
            plain.maintype,
            plain.subtype,
            plain.params,
        )
        got.params.append((b"changed", b"1"))  # each part has its own list
        again = Span(b"")
        _set_type(again, ctype, default)
        assert again.params == plain.params


def _message(rng: random.Random, depth: int = 0) -> bytes:
    head = [b"Subject: s%d" % rng.randint(0, 9)]
    if rng.random() < 0.3:
        head.append(
            b"Content-Transfer-Encoding: "
            + rng.choice([b"base64", b"7bit", b"Quoted-Printable"])
        )
    if rng.random() < 0.2:
        head.append(b"Content-ID: <%d@x>" % rng.randint(0, 3))
    if rng.random() < 0.2:
        head.append(b"Content-Description: a\n  folded one")
    if rng.random() < 0.2:
        head.append(b'Content-Disposition: attachment; filename="f%d"' % depth)
    kind = rng.random() if depth < 2 else 0.0
    if kind > 0.7:
        head.append(b'Content-Type: multipart/mixed; boundary="b%d"' % depth)
        parts = [_message(rng, depth + 1) for _ in range(rng.randint(0, 3))]
        body = b"".join(b"--b%d\n" % depth + p for p in parts) + b"--b%d--\n" % depth
    elif kind > 0.55:
        head.append(b"Content-Type: message/rfc822")
        body = _message(rng, depth + 1)
    else:
        if rng.random() < 0.6:
            head.append(
                b"Content-Type: "
                + rng.choice(
                    [
                        b"text/plain",
                        b"text/plain; charset=iso-8859-1",
                        b"image/png",
                        b"application/pdf; name=r.pdf",
                        b"text/html; format=flowed",
                    ]
                )
            )
        body = b"line\n" * rng.randint(0, 5) + rng.choice([b"", b"tail"])
    return b"\n".join(head) + b"\n\n" + body


def test_leaf_bodystructures_match_the_full_parse():
    rng = random.Random(14)
    for _ in range(1500):
        raw = _message(rng)
        tree, size = parse_lf(raw)
        text = to_crlf(raw)
        assert size == len(text)
        for extended in (True, False):
            plain = bodystructure(parse_mime(text), extended)  # Parts: no memo
            assert bodystructure(tree, extended) == plain
            assert bodystructure(tree, extended) == plain  # from the memo
    assert _LEAVES


def _work(rng: random.Random) -> Work:
    keys = rng.sample(["a.x", "b.y", "c.z", "imap.message"], rng.randint(0, 3))
    return Work(
        cpu={k: rng.randint(1, 9) for k in keys},
        reads=tuple((f"r{i}", rng.randint(0, 9)) for i in range(rng.randint(0, 2))),
        writes=tuple((f"w{i}", 1) for i in range(rng.randint(0, 2))),
        fsyncs=rng.randint(0, 2),
        files_created=rng.randint(0, 1),
        files_renamed=rng.randint(0, 3),
        files_deleted=rng.randint(0, 1),
        dir_entries_scanned=rng.randint(0, 5),
        locks=rng.randint(0, 1),
        net_bytes=rng.randint(0, 99),
        net_round_trips=rng.randint(0, 1),
    )


def test_work_sums_by_column_match_the_additions():
    rng = random.Random(15)
    assert NO_WORK == Work()
    for _ in range(3000):
        works = [_work(rng) for _ in range(rng.randint(0, 6))]
        total = Work()
        for one in works:
            total += one
        for given in (works, iter(works)):
            got = sum_work(given)
            assert got == total and list(got.cpu) == list(total.cpu)
            assert type(got) is Work
        work = _work(rng)
        units = {
            k: rng.randint(0, 5)
            for k in rng.sample(["a.x", "d.w", "imap.message"], rng.randint(0, 3))
        }
        plain = Work(cpu=dict(units)) + work
        got = units_plus(dict(units), work)
        assert got == plain and list(got.cpu) == list(plain.cpu)
        plain = work + Work(cpu=dict(units))
        got = plus_cpu(work, dict(units))
        assert got == plain and list(got.cpu) == list(plain.cpu)


def test_replies_split_by_literals_as_line_by_line():
    rng = random.Random(16)
    tokens = [
        b"* 1 FETCH (UID 3 ",
        b"{5}",
        b"\r\n",
        b"abcde",
        b")",
        b"A001 OK done",
        b"}",
        b"{",
        b"\n",
        b"\r",
        b"x",
        b"{0}",
        b"{12}",
        b"\r\n\r\n",
        b"{3}\r\n",
    ]
    for _ in range(20000):
        reply = b"".join(rng.choice(tokens) for _ in range(rng.randint(0, 14)))
        results = []
        for split in (_responses, _responses_by_line):
            try:
                results.append(split(reply))
            except AssertionError as exc:
                results.append(str(exc))
        assert results[0] == results[1]


def test_inbox_delivery_targets_match_the_resolution(tmp_path):
    (tmp_path / "u0" / "Maildir" / "new").mkdir(parents=True)
    plain = _delivery_target(tmp_path, "u0", "./new/1.M1.h".replace("./", ""))
    assert plain == (*_resolve_target(tmp_path, "u0", ""), "new", "1.M1.h")
    assert _delivery_target(str(tmp_path), "u0", "new/2.M2.h") == (
        *_resolve_target(tmp_path, "u0", ""),
        "new",
        "2.M2.h",
    )
    for bad in ("new/.x", "new/", "new/a/b"):
        try:
            _delivery_target(tmp_path, "u0", bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was taken")


def test_delivery_work_is_the_counted_sum(tmp_path):
    for sole in (True, False):
        root = tmp_path / f"s{sole}"
        for sub in ("cur", "new", "tmp"):
            (root / "u0" / "Maildir" / sub).mkdir(parents=True)
        backend = CyrusBackend(root, host_fsync=False, sole_writer=sole)
        backend.index_written("u0", {}, NOW)
        body = b"Subject: x\r\nContent-Type: text/plain\r\n\r\n" + b"y\r\n" * 3
        (root / "u0" / "Maildir" / "new" / "1.M1.h").write_bytes(body)
        work = index_delivery(root, "u0", "new/1.M1.h", body, NOW)
        entry = (root / "u0" / "Maildir" / CACHE).stat().st_size
        key = "u0/Maildir/"
        assert work == Work(
            cpu={"cyrus.parse_byte": len(body), "cyrus.record": 1},
            reads=((key + INDEX, HEADER_BYTES),),
            writes=(
                (key + CACHE, entry),
                (key + INDEX, RECORD_BYTES),
                (key + INDEX, HEADER_BYTES),
            ),
            fsyncs=2,
            locks=1,
        )


class _Directory:
    def authenticate(self, user: str, password: str) -> bool:
        return (user, password) == ("bob", "pw")


def test_uid_commands_dispatched_in_place_answer_as_cmd_uid(tmp_path):
    """Each UID command fed whole, against the same command run through
    ``_cmd_uid`` (the plain dispatch) on a twin store."""
    from twin.access.imapparse import Reader

    replies = {}
    for way in ("fed", "plain"):
        root = tmp_path / way
        for sub in ("cur", "new", "tmp"):
            (root / "bob" / "Maildir" / sub).mkdir(parents=True)
        for n in range(4):
            (root / "bob" / "Maildir" / "new" / f"{n + 1}.M{n}.h").write_bytes(
                b"From: a@b\nSubject: m%d\n\nbody %d\n" % (n, n)
            )
        session = ImapSession(
            CyrusBackend(root, host_fsync=False), _Directory(), now_fn=lambda: NOW
        )
        session.feed(b"a1 LOGIN bob pw\r\n")
        session.feed(b"a2 CREATE Archive\r\n")
        session.feed(b"a3 SELECT INBOX\r\n")
        out = []
        for number, (sub, args) in enumerate(
            [
                (b"FETCH", b"1:* (UID FLAGS)"),
                (b"FETCH", b"2 (BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])"),
                (b"STORE", b"1,3 +FLAGS (\\Seen)"),
                (b"COPY", b"2 Archive"),
                (b"SEARCH", b"ALL"),
                (b"fetch", b"4 (RFC822.SIZE)"),
                (b"NOPE", b"1"),
            ]
        ):
            tag = b"t%d" % number
            if way == "fed":
                out.append(session.feed(tag + b" UID " + sub + b" " + args + b"\r\n"))
                out.append(session.last_work)
                continue
            try:
                reply, work = session._cmd_uid(tag, Reader(args), sub.upper())
            except Exception as exc:  # what _execute turns into BAD / NO
                reply, work = type(exc).__name__.encode(), None
            out.append(reply)
            out.append(work)
        replies[way] = out
    fed, plain = replies["fed"], replies["plain"]
    for index in range(0, len(fed) - 2, 2):
        assert fed[index] == plain[index]  # the same reply...
        # ... and the Work plus the command's own units
        assert fed[index + 1] - plain[index + 1] == Work(
            cpu={
                "imap.command": 1,
                "imap.byte": fed[index + 1].cpu["imap.byte"],
                "imap.response_byte": len(fed[index]),
            }
        )
    assert fed[-2] == b"t6 BAD unknown UID command\r\n"
    assert plain[-2] == b"ParseError"


def test_header_fields_over_imaplib(tmp_path):
    run = tmp_path / "run"
    maildir = run / "store" / "bob" / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (run / "credentials.csv").write_text("user,password\nbob,pw\n")
    message = (
        b"From: Ann <ann@example.org>\nTo: bob@example.edu\nX-To: no\n"
        b"subject : spaced\nCc: c@example.org\nReferences: <a@b>\n <c@d>\n\nhi\n"
    )
    (maildir / "new" / "1.M1.h").write_bytes(message)
    (maildir / "new" / "2.M2.h").write_bytes(
        message.replace(b"References: <a@b>\n <c@d>\n", b"")
    )
    server = start("imap", run, settings=AccessSettings(failed_login_pause_s=0.0))
    try:
        client = imaplib.IMAP4(*server.address, timeout=5)
        try:
            client.login("bob", "pw")
            client.select("INBOX")
            typ, data = client.uid(
                "FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (TO SUBJECT REFERENCES)])"
            )
            assert typ == "OK"
            got = [item[1] for item in data if isinstance(item, tuple)]
            assert got == [
                b"To: bob@example.edu\r\nsubject : spaced\r\nReferences: <a@b>\r\n"
                b" <c@d>\r\n\r\n",
                b"To: bob@example.edu\r\nsubject : spaced\r\n\r\n",
            ]
            typ, data = client.uid("STORE", "2", "+FLAGS", "(\\Seen)")
            assert typ == "OK" and b"UID 2" in data[0] and b"\\Seen" in data[0]
        finally:
            client.logout()
    finally:
        server.close()


def test_stored_messages_measure_as_their_crlf_text():
    from twin.access.cyrusstore import _cache_entry, _parse_stored

    rng = random.Random(17)
    for _ in range(800):
        raw = _message(rng)
        for form in (raw, raw.replace(b"\n", b"\r\n"), raw.replace(b"e", b"\r", 1)):
            text = to_crlf(form)
            assert _parse_stored(form) == (len(text), *_cache_entry(text))
