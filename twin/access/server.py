"""Real IMAP and POP3 servers over a run folder's mail store.

``start(kind, run_dir)`` binds a threading TCP server (127.0.0.1, an ephemeral
port by default) whose connections each run an ``ImapSession`` or
``Pop3Session``; ``serve(...)`` does the same and blocks until shut down.
These are daemons, not stages: they sleep for real (a login failure's pause,
capped by ``AccessSettings.max_pause_s``), time out idle clients and use the
host's clock for internal dates of copied messages.

Run folder layout read here:

    RUN_DIR/
      credentials.csv        user,password rows (unless an authenticator is given)
      store/                 the mail store
        .format              optional: "mbox" or "maildir"
        <user>/Maildir/      maildir store: INBOX (cur/ new/ tmp/), .Name folders
        <user>              mbox store: the INBOX spool file
        <user>.folders/      mbox store: other mailboxes
      tls/cert.pem, tls/key.pem   optional: enables STARTTLS / STLS

Without ``store/.format`` the format is maildir when any ``store/*/Maildir``
exists, else mbox. Shutting down (``AccessServer.close``) stops accepting,
wakes every connection within ``POLL_S`` seconds, checkpoints open mailboxes
(as a dropped connection would), closes sockets and joins the threads.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

from twin.access.auth import Authenticator, CredentialsFile
from twin.access.cyrusstore import CyrusBackend
from twin.access.imap import ImapSession
from twin.access.mboxstore import MboxBackend
from twin.access.pop3 import Pop3Session
from twin.access.settings import AccessSettings

POLL_S = 0.2
"""How often a waiting connection checks for shutdown and, when idling, new mail."""

KINDS = ("imap", "pop3")
_LOG = logging.getLogger(__name__)


def store_format(run_dir: str | Path) -> str:
    """"mbox" or "maildir": the format of ``RUN_DIR/store``."""
    store = Path(run_dir) / "store"
    marker = store / ".format"
    if marker.is_file():
        value = marker.read_text(encoding="ascii").strip()
        if value not in ("mbox", "maildir"):
            raise ValueError(
                f"{marker}: store format {value!r} must be mbox or maildir"
            )
        return value
    if any(store.glob("*/Maildir")):
        return "maildir"
    return "mbox"


class _Handler(socketserver.BaseRequestHandler):
    server: AccessServer

    def handle(self) -> None:
        server = self.server
        sock: socket.socket = self.request
        session = server.new_session()
        autologout = (server.settings.imap_autologout_s if server.kind == "imap"
                      else server.settings.pop3_autologout_s)
        try:
            sock.settimeout(POLL_S)
            sock.sendall(session.greeting())
            deadline = time.monotonic() + autologout
            while not session.closed and not server.stopping.is_set():
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    if isinstance(session, ImapSession) and session.idling:
                        sock.sendall(session.poll())
                    if time.monotonic() > deadline:
                        sock.sendall(b"* BYE autologout\r\n" if server.kind == "imap"
                                     else b"-ERR autologout\r\n")
                        break
                    continue
                if not data:
                    break
                deadline = time.monotonic() + autologout
                reply = session.feed(data)
                if session.delay_s:
                    server.stopping.wait(min(session.delay_s,
                                             server.settings.max_pause_s))
                sock.sendall(reply)
                if session.starttls_requested:
                    sock = server.tls.wrap_socket(sock, server_side=True)
                    session.starttls_requested = False
                    session.tls_active = True
                    session._buffer.clear()  # nothing sent before TLS may count
        except (OSError, ssl.SSLError) as exc:
            _LOG.info("%s connection ended: %s", server.kind, exc)
        except Exception:  # our bug: log it, never take the server down
            _LOG.exception("%s session failed", server.kind)
            try:
                sock.sendall(b"* BYE internal error\r\n" if server.kind == "imap"
                             else b"-ERR internal error\r\n")
            except OSError:
                pass
        finally:
            if not session.closed:
                try:
                    session.abort()
                except Exception:
                    _LOG.exception("%s abort failed", server.kind)
            if sock is not self.request:
                try:
                    sock.close()
                except OSError:
                    pass


class AccessServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """A running IMAP or POP3 server; ``close()`` stops it and joins its threads."""

    allow_reuse_address = True
    daemon_threads = False
    block_on_close = True

    def __init__(self, kind: str, run_dir: str | Path, host: str, port: int,
                 authenticator: Authenticator | None,
                 settings: AccessSettings | None) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r} must be one of {', '.join(KINDS)}")
        run = Path(run_dir)
        if not (run / "store").is_dir():
            raise ValueError(f"run folder {run} has no store/ directory")
        self.kind = kind
        self.run_dir = run
        self.settings = settings or AccessSettings()
        self.format = store_format(run)
        store = run / "store"
        self.backend = (CyrusBackend(store) if self.format == "maildir"
                        else MboxBackend(store))
        self.authenticator = authenticator or CredentialsFile(run / "credentials.csv")
        self.tls: ssl.SSLContext | None = None
        cert, key = run / "tls" / "cert.pem", run / "tls" / "key.pem"
        if cert.is_file() and key.is_file():
            self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.tls.load_cert_chain(cert, key)
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None
        super().__init__((host, port), _Handler)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server_address[:2]
        return host, port

    def new_session(self) -> ImapSession | Pop3Session:
        session_type = ImapSession if self.kind == "imap" else Pop3Session
        return session_type(self.backend, self.authenticator, now_fn=time.time,
                            settings=self.settings, starttls=self.tls is not None)

    def close(self) -> None:
        """Stop accepting, end every connection, join all threads."""
        self.stopping.set()
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
        self.server_close()


def start(kind: str, run_dir: str | Path, host: str = "127.0.0.1", port: int = 0,
          authenticator: Authenticator | None = None,
          settings: AccessSettings | None = None) -> AccessServer:
    """Bind and serve in a background thread; the caller must ``close()`` it."""
    server = AccessServer(kind, run_dir, host, port, authenticator, settings)
    server._thread = threading.Thread(target=server.serve_forever,
                                      kwargs={"poll_interval": POLL_S},
                                      name=f"twin-{kind}-server")
    server._thread.start()
    return server


def serve(kind: str, run_dir: str | Path, host: str = "127.0.0.1", port: int = 0,
          ready: Callable[[AccessServer], None] | None = None,
          authenticator: Authenticator | None = None,
          settings: AccessSettings | None = None) -> None:
    """Serve until interrupted; *ready* is called with the bound server first."""
    server = AccessServer(kind, run_dir, host, port, authenticator, settings)
    try:
        if ready is not None:
            ready(server)
        server.serve_forever(poll_interval=POLL_S)
    finally:
        server.stopping.set()
        server.server_close()

