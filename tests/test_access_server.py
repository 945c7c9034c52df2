"""The real servers, driven by the standard library's IMAP and POP3 clients.

Stores are written with ``mailbox.Maildir`` / ``mailbox.mbox`` and read back the
same way after the sessions, so both sides of the format are checked.
"""

import imaplib
import mailbox
import poplib
import shutil
import subprocess
import threading

import pytest

from twin.access.server import start, store_format
from twin.access.settings import AccessSettings

MESSAGES = [
    b"From: Ann Smith <ann@example.org>\nTo: bob@example.edu\nSubject: lunch\n"
    b"Date: Mon, 5 Mar 2007 10:00:00 -0500\nMessage-ID: <1@example.org>\n\n"
    b"Shall we meet at noon?\nFrom here it is ten minutes.\n.\n",
    b"From: Carl <carl@example.net>\nTo: bob@example.edu\nSubject: report\n"
    b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n"
    b"--b1\nContent-Type: text/plain; charset=us-ascii\n\nsee attached\n"
    b"--b1\nContent-Type: application/pdf; name=r.pdf\n"
    b"Content-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n--b1--\n",
    b"From: Dee <dee@example.com>\nTo: bob@example.edu\nSubject: third\n\nbye\n",
]
FAST = AccessSettings(failed_login_pause_s=0.0)


def make_run(tmp_path, fmt):
    run = tmp_path / "run"
    (run / "store").mkdir(parents=True)
    (run / "credentials.csv").write_text("user,password\nbob,s3cret\nann,pw\n")
    if fmt == "maildir":
        (run / "store" / "bob").mkdir()
        box = mailbox.Maildir(run / "store" / "bob" / "Maildir")
    else:
        box = mailbox.mbox(run / "store" / "bob")
    keys = [box.add(m) for m in MESSAGES]
    box.flush()
    return run, box, keys


def reopen(run, fmt):
    if fmt == "maildir":
        return mailbox.Maildir(run / "store" / "bob" / "Maildir", create=False)
    return mailbox.mbox(run / "store" / "bob", create=False)


@pytest.fixture
def serving():
    servers = []

    def _start(kind, run, settings=FAST):
        server = start(kind, run, settings=settings)
        servers.append(server)
        return server

    before = set(threading.enumerate())
    yield _start
    for server in servers:
        server.close()
    leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not leftover, f"threads still running after close: {leftover}"


@pytest.mark.parametrize("fmt", ["mbox", "maildir"])
def test_imap_session_over_a_socket(tmp_path, serving, fmt):
    run, box, keys = make_run(tmp_path, fmt)
    assert store_format(run) == fmt
    server = serving("imap", run)
    client = imaplib.IMAP4(*server.address, timeout=5)
    try:
        assert "STARTTLS" not in client.capabilities
        assert client.login("bob", "s3cret")[0] == "OK"
        assert client.list()[1] == [b'() "/" "INBOX"']
        typ, data = client.select("INBOX")
        assert (typ, data) == ("OK", [b"3"])
        for number, key in enumerate(keys, start=1):
            typ, data = client.fetch(str(number), "(RFC822.SIZE BODY.PEEK[])")
            fetched = data[0][1]
            expected = box.get_bytes(key)
            assert fetched.replace(b"\r\n", b"\n") == expected
            assert f"RFC822.SIZE {len(fetched)}".encode() in data[0][0]
        typ, data = client.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])")
        assert data[0][1] == (b"From: Ann Smith <ann@example.org>\r\n"
                              b"Subject: lunch\r\n\r\n")
        typ, data = client.fetch("2", "(BODYSTRUCTURE BODY.PEEK[2])")
        assert b'"APPLICATION" "PDF" ("NAME" "r.pdf") NIL NIL "BASE64" 12' in data[0]
        assert data[0].endswith(b' BODY[2] "JVBERi0xLjQK")')
        assert client.search(None, "FROM", "carl")[1] == [b"2"]
        assert client.uid("SEARCH", "SUBJECT", "third")[1] == [b"3"]
        assert client.store("2", "+FLAGS", "(\\Flagged \\Seen)")[0] == "OK"
        assert client.store("1", "+FLAGS.SILENT", "(\\Deleted)")[0] == "OK"
        assert client.expunge()[1] == [b"1"]
        assert client.search(None, "FLAGGED")[1] == [b"1"]
        assert client.create("Archive")[0] == "OK"
        assert client.copy("2", "Archive")[0] == "OK"
        assert client.status("Archive", "(MESSAGES)")[1] == [b'"Archive" (MESSAGES 1)']
        assert client.close()[0] == "OK"
    finally:
        client.logout()
    after = reopen(run, fmt)
    subjects = {after[k]["Subject"]: after[k].get_flags() for k in after.keys()}
    assert set(subjects) == {"report", "third"}
    assert "F" in subjects["report"]
    assert "S" in subjects["report"] or "R" in subjects["report"]


@pytest.mark.parametrize("fmt", ["mbox", "maildir"])
def test_pop3_session_over_a_socket(tmp_path, serving, fmt):
    run, box, keys = make_run(tmp_path, fmt)
    expected = [box.get_bytes(k) for k in keys]  # QPopper empties the spool
    server = serving("pop3", run)
    client = poplib.POP3(*server.address, timeout=5)
    client.user("bob")
    assert client.pass_("s3cret").startswith(b"+OK maildrop has 3 messages")
    sizes = [int(line.split()[1]) for line in client.list()[1]]
    assert sizes == [len(m) + m.count(b"\n") for m in expected]
    uidls = client.uidl()[1]
    for number, message in enumerate(expected, start=1):
        lines = client.retr(number)[1]
        assert b"\n".join(lines) + b"\n" == message
    assert client.top(3, 0)[1][-1] == b""
    client.dele(1)
    assert client.quit().startswith(b"+OK")
    after = reopen(run, fmt)
    assert sorted(after[k]["Subject"] for k in after.keys()) == ["report", "third"]
    again = poplib.POP3(*server.address, timeout=5)
    again.user("bob")
    again.pass_("s3cret")
    assert again.uidl()[1] == [b"1 " + uidls[1].split()[1], b"2 " + uidls[2].split()[1]]
    again.quit()


@pytest.mark.parametrize("kind", ["imap", "pop3"])
def test_repeated_bad_passwords_disconnect(tmp_path, serving, kind):
    run, _, _ = make_run(tmp_path, "maildir")
    server = serving(kind, run)
    if kind == "imap":
        client = imaplib.IMAP4(*server.address, timeout=5)
        for _ in range(2):
            with pytest.raises(imaplib.IMAP4.error):
                client.login("bob", "wrong")
        with pytest.raises((imaplib.IMAP4.abort, imaplib.IMAP4.error)):
            client.login("bob", "wrong")
        with pytest.raises((imaplib.IMAP4.abort, OSError)):
            client.noop()
    else:
        client = poplib.POP3(*server.address, timeout=5)
        for _ in range(3):
            client.user("bob")
            with pytest.raises(poplib.error_proto):
                client.pass_("wrong")
        with pytest.raises((poplib.error_proto, OSError, EOFError)):
            client.noop()
        client.close()


def test_starttls_not_offered_without_certificate(tmp_path, serving):
    run, _, _ = make_run(tmp_path, "mbox")
    server = serving("imap", run)
    client = imaplib.IMAP4(*server.address, timeout=5)
    with pytest.raises(imaplib.IMAP4.error):
        client._simple_command("STARTTLS")
    client.logout()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
def test_starttls_with_certificate(tmp_path, serving):
    import ssl

    run, box, keys = make_run(tmp_path, "maildir")
    (run / "tls").mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-keyout", str(run / "tls" / "key.pem"),
         "-out", str(run / "tls" / "cert.pem")],
        check=True, capture_output=True, timeout=60,
    )
    server = serving("imap", run)
    client = imaplib.IMAP4(*server.address, timeout=5)
    assert "STARTTLS" in client.capabilities
    context = ssl.create_default_context(cafile=str(run / "tls" / "cert.pem"))
    context.check_hostname = False
    client.starttls(ssl_context=context)
    assert "STARTTLS" not in client.capabilities
    assert client.login("bob", "s3cret")[0] == "OK"
    client.select("INBOX", readonly=True)
    data = client.fetch("3", "(BODY[])")[1]
    assert data[0][1].replace(b"\r\n", b"\n") == box.get_bytes(keys[2])
    client.logout()
    pop = poplib.POP3(*serving("pop3", run).address, timeout=5)
    assert "STLS" in pop.capa()
    pop.stls(context=context)
    pop.user("bob")
    assert pop.pass_("s3cret").startswith(b"+OK")
    pop.quit()
