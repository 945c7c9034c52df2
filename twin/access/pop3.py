"""A POP3 server session (RFC 1939, CAPA from RFC 2449), fed bytes.

``Pop3Session(backend, directory)``: USER/PASS, STAT, LIST, UIDL, RETR, TOP,
DELE, RSET, NOOP, QUIT, CAPA, and STLS where a certificate is configured.
The backend supplies the maildrop: QPopper's whole-drop copy over mbox
(``mboxstore.QpopperDrop``) or Cyrus pop3d over the maildir index
(``cyrusstore.CyrusDrop``). Deletions happen only at QUIT (the UPDATE state);
a dropped connection (``abort``) keeps every message.

Like ``ImapSession`` it keeps ``last_work`` / ``commands`` / ``total_work`` and
``delay_s`` (pause after a bad password, growing per failure, capped); after
``max_login_failures`` it answers -ERR and sets ``closed``. Lines longer than
``MAX_LINE_BYTES`` (RFC 2449 section 4: 255 octets a command) get -ERR.

CPU kinds: ``pop3.command``, ``pop3.byte`` (command bytes), ``pop3.response_byte``
(reply bytes formatted, including dot-stuffed message text), ``pop3.auth``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from twin.access.auth import Authenticator
from twin.access.message import split_message
from twin.access.names import MailboxNameError, check_user
from twin.access.settings import AccessSettings
from twin.access.store import (
    NO_WORK,
    Backend,
    Drop,
    StoreError,
    commands_work,
    plus_cpu,
    sum_work,
    whole_line,
)
from twin.stages.work import Work

CPU_UNITS: dict[str, str] = {
    "pop3.command": "one POP3 command read and dispatched",
    "pop3.byte": "one byte of POP3 command input parsed",
    "pop3.response_byte": "one byte of POP3 reply formatted (dot-stuffed text too)",
    "pop3.auth": "one password check (PASS)",
}

MAX_LINE_BYTES = 512
_SAFE_TEXT = re.compile(r"[^\x20-\x7e]")
_DEFAULTS = AccessSettings()  # frozen: one shared by every session


def _number(word: bytes) -> int | None:
    if word.isdigit() and len(word) <= 10:
        return int(word)
    return None


class Pop3Session:
    """One client connection's POP3 state machine."""

    def __init__(self, backend: Backend, directory: Authenticator,
                 now_fn: Callable[[], float] | None = None,
                 settings: AccessSettings | None = None,
                 starttls: bool = False) -> None:
        self.backend = backend
        self.directory = directory
        self.now_fn = now_fn or (lambda: 0.0)
        self.settings = settings or _DEFAULTS
        self.starttls_available = starttls
        self.tls_active = False
        self.starttls_requested = False
        self.closed = False
        self.failures = 0
        self.delay_s = 0.0
        self.last_work = NO_WORK
        self._spent: list[Work] = []  # every feed's and poll's Work, in order
        self.commands: list[tuple[str, Work]] = []
        self.drop: Drop | None = None
        self._user: str | None = None
        self._deleted: set[int] = set()
        self._buffer = bytearray()

    def greeting(self) -> bytes:
        return b"+OK twin POP3 server ready\r\n"

    def feed(self, data: bytes) -> bytes:
        """Take client bytes; return the reply. Work goes to ``last_work``."""
        self.delay_s = 0.0
        self.commands = []
        line = None
        if not (self._buffer or self.closed or self.starttls_requested):
            line = whole_line(data)
        if line is not None:  # the loop below, in short
            if len(line) > MAX_LINE_BYTES:
                reply = self._record("(too long)", b"-ERR line too long\r\n",
                                     NO_WORK, len(line))
            else:
                reply = self._execute(line)
        else:
            reply = self._feed(data)
        self.last_work = commands_work(self.commands)
        self._spent.append(self.last_work)
        return reply

    def call(self, data: bytes) -> tuple[bytes, Work]:
        """``(self.feed(data), self.last_work)`` in one step (the scripted
        client's path)."""
        reply = self.feed(data)
        return reply, self.last_work

    def _feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        self._buffer += data
        while not self.closed and not self.starttls_requested:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_LINE_BYTES:
                    self._buffer.clear()
                    out.append(self._record("(too long)", b"-ERR line too long\r\n",
                                            NO_WORK, MAX_LINE_BYTES))
                break
            line = bytes(self._buffer[:end]).rstrip(b"\r")
            del self._buffer[: end + 1]
            if len(line) > MAX_LINE_BYTES:
                out.append(self._record("(too long)", b"-ERR line too long\r\n",
                                        NO_WORK, len(line)))
                continue
            out.append(self._execute(line))
        return b"".join(out)

    @property
    def total_work(self) -> Work:
        """All Work of the session so far (the sum of every ``last_work``)."""
        return sum_work(self._spent)

    def _record(self, name: str, reply: bytes, work: Work, size: int) -> bytes:
        work = plus_cpu(work, {"pop3.command": 1, "pop3.byte": size,
                               "pop3.response_byte": len(reply)})
        self.commands.append((name, work))
        return reply

    def _execute(self, line: bytes) -> bytes:
        words = line.split(b" ")
        verb = words[0].upper()
        args = words[1:]
        name = verb.decode("ascii", "replace")[:8]
        handler = None
        if verb.isalpha():
            handler = getattr(self, "_cmd_" + name.lower(), None)
        if handler is None:
            return self._record(name, b"-ERR unknown command\r\n", NO_WORK, len(line))
        in_transaction = self.drop is not None
        if verb not in (b"QUIT", b"CAPA") and in_transaction != (
            verb not in (b"USER", b"PASS", b"STLS")
        ):
            reply = b"-ERR command not valid in this state\r\n"
            return self._record(name, reply, NO_WORK, len(line))
        try:
            reply, work = handler(args)
        except StoreError as exc:
            text = _SAFE_TEXT.sub("?", str(exc))[:200].encode("ascii")
            reply, work = b"-ERR " + text + b"\r\n", NO_WORK
        except OSError as exc:
            text = _SAFE_TEXT.sub("?", exc.strerror or "i/o error").encode("ascii")
            reply, work = b"-ERR [SYS/TEMP] " + text + b"\r\n", NO_WORK
        return self._record(name, reply, work, len(line))

    # -- authorization -------------------------------------------------------
    def _cmd_capa(self, args):
        caps = [b"USER", b"TOP", b"UIDL", b"RESP-CODES", b"AUTH-RESP-CODE",
                b"PIPELINING"]
        if self.starttls_available and not self.tls_active and self.drop is None:
            caps.append(b"STLS")
        return b"+OK capability list follows\r\n" + b"".join(
            c + b"\r\n" for c in caps) + b".\r\n", NO_WORK

    def _cmd_stls(self, args):
        if not self.starttls_available or self.tls_active or self._user:
            return b"-ERR STLS not available\r\n", NO_WORK
        self.starttls_requested = True
        return b"+OK begin TLS negotiation\r\n", NO_WORK

    def _cmd_user(self, args):
        if len(args) != 1 or not args[0]:
            return b"-ERR usage: USER name\r\n", NO_WORK
        self._user = args[0].decode("utf-8", "replace")
        return b"+OK send PASS\r\n", NO_WORK

    def _cmd_pass(self, args):
        if self._user is None:
            return b"-ERR send USER first\r\n", NO_WORK
        password = b" ".join(args).decode("utf-8", "surrogateescape")
        work = Work(cpu={"pop3.auth": 1})
        user, self._user = self._user, None
        try:
            user = check_user(user)
            ok = self.directory.authenticate(user, password)
        except MailboxNameError:
            ok = False
        if not ok:
            self.failures += 1
            self.delay_s += self.settings.pause_after(self.failures)
            if self.failures >= self.settings.max_login_failures:
                self.closed = True
                return b"-ERR [AUTH] too many failures, closing\r\n", work
            return b"-ERR [AUTH] invalid credentials\r\n", work
        drop, got = self.backend.open_drop(user, self.now_fn())
        self.drop = drop
        self.failures = 0
        self._deleted = set()
        total = sum(drop.sizes)
        return b"+OK maildrop has %d messages (%d octets)\r\n" % (
            len(drop.sizes), total), work + got

    def _cmd_quit(self, args):
        self.closed = True
        if self.drop is None:
            return b"+OK bye\r\n", NO_WORK
        drop, self.drop = self.drop, None
        work = drop.commit(self._deleted)
        return b"+OK bye, %d messages deleted\r\n" % len(self._deleted), work

    # -- transaction ---------------------------------------------------------
    def _message(self, args: list[bytes], count: int = 1) -> int | None:
        """0-based message index from the first argument, if it names one."""
        if len(args) != count:
            return None
        number = _number(args[0])
        if number is None or not 1 <= number <= len(self.drop.sizes):
            return None
        if number - 1 in self._deleted:
            return None
        return number - 1

    def _cmd_stat(self, args):
        sizes = self.drop.sizes
        kept = [s for i, s in enumerate(sizes) if i not in self._deleted]
        return b"+OK %d %d\r\n" % (len(kept), sum(kept)), NO_WORK

    def _listing(self, args, values) -> tuple[bytes, Work]:
        if args:
            index = self._message(args)
            if index is None:
                return b"-ERR no such message\r\n", NO_WORK
            return b"+OK %d %s\r\n" % (index + 1, values[index]), NO_WORK
        lines = [b"%d %s\r\n" % (i + 1, v) for i, v in enumerate(values)
                 if i not in self._deleted]
        return b"+OK\r\n" + b"".join(lines) + b".\r\n", NO_WORK

    def _cmd_list(self, args):
        return self._listing(args, [b"%d" % s for s in self.drop.sizes])

    def _cmd_uidl(self, args):
        return self._listing(args, [u.encode("ascii", "replace")
                                    for u in self.drop.uidls])

    def _cmd_retr(self, args):
        index = self._message(args)
        if index is None:
            return b"-ERR no such message\r\n", NO_WORK
        text, work = self.drop.text(index)
        return b"+OK %d octets\r\n" % self.drop.sizes[index] + _stuff(text), work

    def _cmd_top(self, args):
        index = self._message(args, count=2)
        lines = _number(args[1]) if len(args) == 2 else None
        if index is None or lines is None:
            return b"-ERR usage: TOP message lines\r\n", NO_WORK
        text, work = self.drop.text(index)
        header, body = split_message(text)
        cut = body.split(b"\r\n", lines)
        head = b"\r\n".join(cut[:lines]) + (b"\r\n" if lines and len(cut) > lines
                                            else b"")
        return b"+OK top of message follows\r\n" + _stuff(header + head), work

    def _cmd_dele(self, args):
        index = self._message(args)
        if index is None:
            return b"-ERR no such message\r\n", NO_WORK
        self._deleted.add(index)
        return b"+OK message %d deleted\r\n" % (index + 1), NO_WORK

    def _cmd_rset(self, args):
        self._deleted = set()
        return b"+OK maildrop has %d messages\r\n" % len(self.drop.sizes), NO_WORK

    def _cmd_noop(self, args):
        return b"+OK\r\n", NO_WORK

    def abort(self) -> Work:
        """The connection dropped: no UPDATE state, every message stays."""
        self.closed = True
        if self.drop is None:
            return NO_WORK
        drop, self.drop = self.drop, None
        work = drop.abort()
        self._spent.append(work)
        return work


def _stuff(text: bytes) -> bytes:
    """Dot-stuff CRLF *text* and terminate the multi-line reply."""
    if text and not text.endswith(b"\r\n"):
        text += b"\r\n"
    # a dot starting a line doubled (as re.sub(rb"(?m)^\\.", b"..", text)),
    # in one C pass that copies nothing when no line starts with a dot
    stuffed = text.replace(b"\n.", b"\n..")
    if stuffed[:1] == b".":
        stuffed = b"." + stuffed
    return stuffed + b".\r\n"
