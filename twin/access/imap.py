"""An IMAP4rev1 server session (RFC 3501), fed bytes, answering bytes.

``ImapSession(backend, directory)`` is the protocol engine of both seed
servers; the backend decides whether it behaves like UW IMAP on mbox or Cyrus
on maildir. ``feed(data)`` takes whatever the client sent (partial lines,
several commands, literals) and returns the reply bytes; synchronizing
literals get a ``+`` continuation, non-synchronizing ones (``{n+}``) are
accepted. The same object runs in-process in the simulator and behind the
socket server.

Per feed the session keeps ``last_work`` (the Work of the commands completed
by that feed), ``commands`` (their names and Work), ``total_work``, and
``delay_s``: seconds the reply should be held (login failures pause
``AccessSettings.failed_login_pause_s`` times the failure count, capped); after
``max_login_failures`` the session says BYE and ``closed`` is set.

Hostile input gets protocol errors, never an exception: bad tags and unknown
commands get BAD, commands before login BAD, lines or literals over the
limits BAD (or BYE for an oversized non-synchronizing literal, whose bytes
cannot be refused), mailbox names are checked by ``twin.access.names`` and
the stores.

CPU kinds: ``imap.command`` (one command dispatched), ``imap.byte`` (command
bytes parsed), ``imap.response_byte`` (reply bytes formatted), ``imap.auth``
(one password check), plus those of ``imapfetch`` and ``imapsearch``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable

from twin.access.auth import Authenticator
from twin.access.imapfetch import (
    fetch_flags,
    fetch_one,
    fetch_plan,
    flag_list,
    flags_only,
    parse_fetch_items,
    quote,
)
from twin.access.imapparse import (
    ParseError,
    Reader,
    literal_size,
    parse_seqset,
    seq_indices,
    uid_indices,
    valid_tag,
)
from twin.access.imapsearch import BadCharset, Searcher, parse_search
from twin.access.names import MailboxNameError, check_user, list_matcher, split_name
from twin.access.settings import AccessSettings
from twin.access.store import (
    ALL_FLAGS,
    FLAG_BITS,
    NO_WORK,
    Backend,
    Mailbox,
    StoreError,
    commands_work,
    plus_cpu,
    sum_work,
)
from twin.stages.work import Work

CPU_UNITS: dict[str, str] = {
    "imap.command": "one IMAP command read and dispatched",
    "imap.byte": "one byte of IMAP command input parsed (line and literals)",
    "imap.response_byte": "one byte of IMAP reply formatted",
    "imap.auth": "one password check (LOGIN or AUTHENTICATE)",
    "imap.message": "one message answered in a FETCH, STORE or COPY",
    "imap.parse_byte": "one byte of message text parsed into a MIME tree",
    "imap.search_test": "one SEARCH key tested against one message",
    "imap.search_byte": "one byte of header or text scanned by SEARCH",
}

PERMANENT = b"(\\Answered \\Flagged \\Deleted \\Seen \\Draft)"
_NOT_AUTH = frozenset({b"LOGIN", b"AUTHENTICATE", b"STARTTLS"})
_ANY = frozenset({b"CAPABILITY", b"NOOP", b"LOGOUT"})
_AUTH = frozenset({b"SELECT", b"EXAMINE", b"CREATE", b"DELETE", b"RENAME",
                   b"SUBSCRIBE", b"UNSUBSCRIBE", b"LIST", b"LSUB", b"STATUS",
                   b"IDLE"})
_SELECTED = frozenset({b"CHECK", b"CLOSE", b"EXPUNGE", b"SEARCH", b"FETCH",
                       b"STORE", b"COPY", b"UID"})
_STATUS_ITEMS = (b"MESSAGES", b"RECENT", b"UIDNEXT", b"UIDVALIDITY", b"UNSEEN")
_SAFE_TEXT = re.compile(r"[^\x20-\x7e]")
_DEFAULTS = AccessSettings()  # frozen: one shared by every session
_VERBS: dict[bytes, tuple[bytes, str, str]] = {}
"""Command name as sent -> (upper case, name for the Work log, handler)."""
_UID_NAMES: dict[bytes, str] = {}
_VERBS_KEEP = 256
_ITEMS: dict[bytes, tuple[list, int, tuple | None, tuple | None]] = {}
_ITEMS_KEEP = 256
_GOOD_TAGS: set[bytes] = set()
"""Tags seen valid (``valid_tag``): clients number theirs, a few hundred."""
_GOOD_TAGS_KEEP = 4096
_UID_COMMANDS = {b"FETCH": "_cmd_fetch", b"STORE": "_cmd_store", b"COPY": "_cmd_copy",
                 b"SEARCH": "_cmd_search"}


def _fetch_items(reader: Reader) -> tuple[list, tuple | None, tuple | None]:
    """``parse_fetch_items(reader)``, with ``flags_only`` of the items and
    their ``fetch_plan`` (None when flags_only is not), remembered by the text
    it reads (clients repeat a few fetch-att lists; the items are immutable)."""
    rest = reader.data[reader.pos :]
    known = _ITEMS.get(rest)
    if known is not None:
        reader.pos += known[1]
        return known[0], known[2], known[3]
    start = reader.pos
    items = parse_fetch_items(reader)
    order = flags_only(items)
    plan = fetch_plan(items) if order is None else None
    if len(_ITEMS) < _ITEMS_KEEP and len(rest) <= 512:
        _ITEMS[rest] = (items, reader.pos - start, order, plan)
    return items, order, plan


_STORES: dict[bytes, tuple[bytes, bool, int]] = {}
_STORES_KEEP = 256


def _store_request(reader: Reader) -> tuple[bytes, bool, int]:
    """(mode, silent, flag bits) of a STORE's ``SP item SP flags``, read by
    *reader* to its end (ParseError when they do not fit the grammar)."""
    reader.sp()
    item = reader.atom().upper()
    reader.sp()
    flags = reader.flag_list()
    reader.end()
    silent = item.endswith(b".SILENT")
    mode = item[: -len(b".SILENT")] if silent else item
    if mode not in (b"FLAGS", b"+FLAGS", b"-FLAGS"):
        raise ParseError(f"unknown store item {item[:20]!r}")
    bits = 0
    for flag in flags:
        name = flag.decode("ascii", "replace").lower()
        if name.startswith("\\") and name not in FLAG_BITS:
            raise ParseError(f"cannot store flag {flag[:20]!r}")
        bits |= FLAG_BITS.get(name, 0)  # keywords are not kept
    return mode, silent, bits


def _text(message: str) -> bytes:
    return _SAFE_TEXT.sub("?", message)[:200].encode("ascii")


class ImapSession:
    """One client connection's IMAP state machine."""

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
        self.user: str | None = None
        self.mailbox: Mailbox | None = None
        self.closed = False
        self.idling = False
        self.failures = 0
        self.delay_s = 0.0
        self.last_work = NO_WORK
        self._spent: list[Work] = []  # every feed's and poll's Work, in order
        self.commands: list[tuple[str, Work]] = []
        self._buffer = bytearray()
        self._command = bytearray()
        self._literal = 0
        self._sasl_tag: bytes | None = None
        self._idle_tag = b""
        self._exists = 0
        # the selected mailbox's messages list and its UIDs (a list is never
        # changed once a mailbox made it: changes make a new one)
        self._uids_of: tuple[list, list[int]] | None = None

    # -- the byte stream -----------------------------------------------------
    def greeting(self) -> bytes:
        caps = self._capabilities()
        return b"* OK [CAPABILITY " + caps + b"] twin IMAP4rev1 ready\r\n"

    def _capabilities(self) -> bytes:
        caps = [b"IMAP4rev1", b"AUTH=PLAIN", b"IDLE", b"LITERAL+"]
        if self.starttls_available and not self.tls_active:
            caps.insert(1, b"STARTTLS")
        return b" ".join(caps)

    def feed(self, data: bytes) -> bytes:
        """Take client bytes; return the reply. Work goes to ``last_work``."""
        self.delay_s = 0.0
        self.commands = []
        line = None
        busy = self._buffer or self._literal or self.closed or self.starttls_requested
        size = len(data)
        if not busy and size <= self.settings.max_line_bytes:
            # whole_line(data), in line
            if size and type(data) is bytes and data.find(b"\n") == size - 1:
                line = data[:-1].rstrip(b"\r")
        if line is None:
            reply = self._feed(data)
        elif (self._sasl_tag is None and not self.idling and not self._command
              and not line.endswith(b"}")):
            reply = self._execute(line)  # what _line does with a whole command
        else:  # the loop below, in short
            reply = self._line(line)
        commands = self.commands
        # commands_work(commands), the one-command case in line
        work = self.last_work = (commands[0][1] if len(commands) == 1
                                 else commands_work(commands))
        self._spent.append(work)
        return reply

    def call(self, data: bytes) -> tuple[bytes, Work]:
        """``(self.feed(data), self.last_work)`` in one call (the scripted
        client's path)."""
        return self.feed(data), self.last_work

    def _feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        self._buffer += data
        limits = self.settings
        while not self.closed and not self.starttls_requested:
            if self._literal:
                if len(self._buffer) < self._literal:
                    break
                self._command += self._buffer[: self._literal]
                del self._buffer[: self._literal]
                self._literal = 0
                continue
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > limits.max_line_bytes:
                    out.append(b"* BYE command line too long\r\n")
                    self.closed = True
                break
            line = bytes(self._buffer[:end]).rstrip(b"\r")
            del self._buffer[: end + 1]
            if len(line) > limits.max_line_bytes:
                self._command.clear()
                reply = b"* BAD command line too long\r\n"
                out.append(self._record("(too long)", reply, NO_WORK, len(line)))
                continue
            out.append(self._line(line))
        return b"".join(out)

    @property
    def total_work(self) -> Work:
        """All Work of the session so far (the sum of every ``last_work``)."""
        return sum_work(self._spent)

    def _line(self, line: bytes) -> bytes:
        if self._sasl_tag is not None:
            tag, self._sasl_tag = self._sasl_tag, None
            return self._record("AUTHENTICATE", *self._sasl_finish(tag, line),
                                len(line))
        if self.idling:
            self.idling = False
            if line.upper() == b"DONE":
                reply = self._idle_tag + b" OK IDLE terminated\r\n"
            else:
                reply = self._idle_tag + b" BAD expected DONE\r\n"
            return self._record("IDLE", reply, NO_WORK, len(line))
        if not self._command and not line.endswith(b"}"):
            return self._execute(line)  # a whole command: what follows, in short
        self._command += line
        literal = literal_size(line)
        if literal is not None:
            size, nonsync = literal
            if len(self._command) + size > self.settings.max_command_bytes:
                self._command.clear()
                if nonsync:
                    self.closed = True
                    return b"* BYE literal larger than the command limit\r\n"
                tag = line.split(b" ", 1)[0]
                tag = tag if valid_tag(tag) else b"*"
                return self._record("(too long)", tag + b" BAD literal too large\r\n",
                                    NO_WORK, len(line))
            self._command += b"\r\n"
            self._literal = size
            return b"" if nonsync else b"+ Ready for literal data\r\n"
        command = bytes(self._command)
        self._command.clear()
        return self._execute(command)

    def _record(self, name: str, reply: bytes, work: Work, size: int) -> bytes:
        work = plus_cpu(work, {"imap.command": 1, "imap.byte": size,
                               "imap.response_byte": len(reply)})
        self.commands.append((name, work))
        return reply

    # -- dispatch ------------------------------------------------------------
    def _execute(self, command: bytes) -> bytes:
        name, reply, work = self._dispatch(command)
        # self._record(name, reply, work, len(command)), in line
        self.commands.append((name, plus_cpu(work, {
            "imap.command": 1, "imap.byte": len(command),
            "imap.response_byte": len(reply)})))
        return reply

    def _dispatch(self, command: bytes) -> tuple[str, bytes, Work]:
        """Run one whole *command*: (name for the Work log, reply, Work
        without the command's own units, which the caller adds)."""
        tag, _, rest = command.partition(b" ")
        if tag not in _GOOD_TAGS:
            if not valid_tag(tag):
                return "(bad tag)", b"* BAD invalid tag\r\n", NO_WORK
            if len(_GOOD_TAGS) < _GOOD_TAGS_KEEP:
                _GOOD_TAGS.add(tag)
        name, _, args = rest.partition(b" ")
        known = _VERBS.get(name)
        if known is None:
            verb = name.upper()
            text = verb.decode("ascii", "replace")
            known = (verb, text[:20], "_cmd_" + text.lower())
            if len(_VERBS) < _VERBS_KEEP:
                _VERBS[name] = known
        verb, verb_name, method = known
        uid = False
        if verb == b"UID":
            sub, _, args = args.partition(b" ")
            sub = sub.upper()
            verb_name = _UID_NAMES.get(sub)
            if verb_name is None:
                verb_name = "UID " + sub.decode("ascii", "replace")[:20]
                if len(_UID_NAMES) < _VERBS_KEEP:
                    _UID_NAMES[sub] = verb_name
            if sub in _UID_COMMANDS:  # what _cmd_uid calls, called here
                method = _UID_COMMANDS[sub]
                uid = True
        else:
            sub = b""
        handler = getattr(self, method, None)
        if handler is None or not verb.isalpha():
            reply, work = tag + b" BAD unknown command\r\n", NO_WORK
        elif not (verb in _ANY or (
                # self._allowed(verb), in line (the four sets are disjoint)
                self.user is None if verb in _NOT_AUTH else (
                    self.user is not None and (verb in _AUTH or (
                        verb in _SELECTED and self.mailbox is not None))))):
            reply, work = tag + b" BAD command not valid in this state\r\n", NO_WORK
        else:
            try:
                if uid:
                    reply, work = handler(tag, Reader(args), sub, uid=True)
                else:
                    reply, work = handler(tag, Reader(args), sub)
            except ParseError as exc:
                reply, work = tag + b" BAD " + _text(str(exc)) + b"\r\n", NO_WORK
            except StoreError as exc:
                reply, work = tag + b" NO " + _text(str(exc)) + b"\r\n", NO_WORK
            except BadCharset:
                reply = tag + b" NO [BADCHARSET (US-ASCII UTF-8)] unknown charset\r\n"
                work = NO_WORK
            except OSError as exc:
                reason = _text(exc.strerror or "i/o error")
                reply = tag + b" NO [SERVERBUG] " + reason + b"\r\n"
                work = NO_WORK
        return verb_name, reply, work

    def _allowed(self, verb: bytes) -> bool:
        if verb in _ANY:
            return True
        if verb in _NOT_AUTH:
            return self.user is None
        if self.user is None:
            return False
        if verb in _AUTH:
            return True
        return verb in _SELECTED and self.mailbox is not None

    @staticmethod
    def _ok(tag: bytes, text: bytes) -> bytes:
        return tag + b" OK " + text + b"\r\n"

    # -- any state -----------------------------------------------------------
    def _cmd_capability(self, tag, reader, sub):
        reader.end()
        return (b"* CAPABILITY " + self._capabilities() + b"\r\n"
                + self._ok(tag, b"CAPABILITY completed"), NO_WORK)

    def _cmd_noop(self, tag, reader, sub):
        reader.end()
        updates, work = self._updates()
        return updates + self._ok(tag, b"NOOP completed"), work

    def _cmd_logout(self, tag, reader, sub):
        reader.end()
        work = self._close_mailbox()
        self.closed = True
        return b"* BYE twin IMAP4rev1 logging out\r\n" + self._ok(
            tag, b"LOGOUT completed"), work

    # -- not authenticated -----------------------------------------------------
    def _cmd_starttls(self, tag, reader, sub):
        reader.end()
        if not self.starttls_available or self.tls_active:
            return tag + b" BAD STARTTLS not available\r\n", NO_WORK
        self.starttls_requested = True
        return self._ok(tag, b"Begin TLS negotiation now"), NO_WORK

    def _cmd_login(self, tag, reader, sub):
        user = reader.astring()
        reader.sp()
        password = reader.astring()
        reader.end()
        return self._login(tag, user, password)

    def _cmd_authenticate(self, tag, reader, sub):
        mechanism = reader.atom().upper()
        if mechanism != b"PLAIN":
            return tag + b" NO unsupported authentication mechanism\r\n", NO_WORK
        if not reader.at_end():
            reader.sp()
            return self._sasl_finish(tag, reader.atom() + reader.data[reader.pos :])
        self._sasl_tag = tag
        return b"+ \r\n", NO_WORK

    def _sasl_finish(self, tag: bytes, line: bytes) -> tuple[bytes, Work]:
        if line.strip() == b"*":
            return tag + b" BAD authentication cancelled\r\n", NO_WORK
        try:
            decoded = base64.b64decode(line.strip(), validate=True)
        except (binascii.Error, ValueError):
            return tag + b" BAD invalid base64\r\n", NO_WORK
        fields = decoded.split(b"\0")
        if len(fields) != 3:
            return tag + b" BAD malformed PLAIN response\r\n", NO_WORK
        authzid, user, password = fields
        if authzid and authzid != user:
            reply = tag + b" NO [AUTHORIZATIONFAILED] proxy login not allowed\r\n"
            return reply, NO_WORK
        return self._login(tag, user, password)

    def _login(self, tag: bytes, user_raw: bytes, password: bytes
               ) -> tuple[bytes, Work]:
        work = Work(cpu={"imap.auth": 1})
        user = user_raw.decode("utf-8", "replace")
        try:
            user = check_user(user)
            ok = self.directory.authenticate(
                user, password.decode("utf-8", "surrogateescape"))
        except MailboxNameError:
            ok = False
        if ok:
            self.user = user
            self.failures = 0
            return self._ok(tag, b"[CAPABILITY " + self._capabilities()
                            + b"] LOGIN completed"), work
        self.failures += 1
        self.delay_s += self.settings.pause_after(self.failures)
        reply = tag + b" NO [AUTHENTICATIONFAILED] invalid credentials\r\n"
        if self.failures >= self.settings.max_login_failures:
            self.closed = True
            reply += b"* BYE too many login failures\r\n"
        return reply, work

    # -- authenticated -------------------------------------------------------
    def _name(self, reader: Reader) -> str:
        raw = reader.astring()
        try:
            name = raw.decode("ascii")
        except UnicodeDecodeError:
            raise StoreError("mailbox names must be 7-bit (modified UTF-7)") from None
        return "INBOX" if name.upper() == "INBOX" else name

    def _cmd_select(self, tag, reader, sub, readonly=False):
        name = self._name(reader)
        reader.end()
        work = self._close_mailbox()
        mailbox, got = self.backend.open(self.user, name, readonly, self.now_fn())
        work += got
        self.mailbox = mailbox
        messages = mailbox.messages
        self._exists = len(messages)
        out = [
            b"* FLAGS " + PERMANENT + b"\r\n",
            b"* OK [PERMANENTFLAGS " + (b"()" if readonly else PERMANENT)
            + b"] flags kept\r\n",
            b"* %d EXISTS\r\n" % len(messages),
            b"* %d RECENT\r\n" % sum([1 for m in messages if m.recent]),
        ]
        unseen = next((i + 1 for i, m in enumerate(messages) if not m.flags & 1), 0)
        if unseen:
            out.append(b"* OK [UNSEEN %d] first unseen\r\n" % unseen)
        out.append(b"* OK [UIDVALIDITY %d] UIDs valid\r\n" % mailbox.uidvalidity)
        out.append(b"* OK [UIDNEXT %d] predicted next UID\r\n" % mailbox.uidnext)
        mode = b"[READ-ONLY]" if readonly else b"[READ-WRITE]"
        verb = b"EXAMINE" if readonly else b"SELECT"
        out.append(self._ok(tag, mode + b" " + verb + b" completed"))
        return b"".join(out), work

    def _cmd_examine(self, tag, reader, sub):
        return self._cmd_select(tag, reader, sub, readonly=True)

    def _cmd_create(self, tag, reader, sub):
        name = self._name(reader).rstrip("/")
        reader.end()
        return self._ok(tag, b"CREATE completed"), self.backend.create(
            self.user, name, self.now_fn())

    def _cmd_delete(self, tag, reader, sub):
        name = self._name(reader)
        reader.end()
        work = NO_WORK
        if self.mailbox is not None and self.mailbox.name == name:
            work += self._close_mailbox()
        return self._ok(tag, b"DELETE completed"), work + self.backend.delete(
            self.user, name)

    def _cmd_rename(self, tag, reader, sub):
        old = self._name(reader)
        reader.sp()
        new = self._name(reader)
        reader.end()
        return self._ok(tag, b"RENAME completed"), self.backend.rename(
            self.user, old, new)

    def _cmd_subscribe(self, tag, reader, sub, add=True):
        name = self._name(reader)
        reader.end()
        try:
            split_name(name)
        except MailboxNameError as exc:
            raise StoreError(str(exc)) from None
        names, work = self.backend.subscriptions(self.user)
        if add:
            names.add(name)
        else:
            names.discard(name)
        work += self.backend.set_subscriptions(self.user, names)
        verb = b"SUBSCRIBE" if add else b"UNSUBSCRIBE"
        return self._ok(tag, verb + b" completed"), work

    def _cmd_unsubscribe(self, tag, reader, sub):
        return self._cmd_subscribe(tag, reader, sub, add=False)

    def _cmd_list(self, tag, reader, sub, lsub=False):
        reference = reader.astring().decode("ascii", "replace")
        reader.sp()
        pattern = reader.list_mailbox().decode("ascii", "replace")
        reader.end()
        verb = b"LSUB" if lsub else b"LIST"
        if not pattern:
            return (b"* " + verb + b' (\\Noselect) "/" ""\r\n'
                    + self._ok(tag, verb + b" completed"), NO_WORK)
        matcher = list_matcher(reference, pattern)
        if lsub:
            names, work = self.backend.subscriptions(self.user)
            entries = [(name, True) for name in sorted(names)]
        else:
            entries, work = self.backend.list_mailboxes(self.user)
        out = [
            b"* " + verb + (b" () " if selectable else b" (\\Noselect) ") + b'"/" '
            + quote(name.encode()) + b"\r\n"
            for name, selectable in entries if matcher.match(name)
        ]
        return b"".join(out) + self._ok(tag, verb + b" completed"), work

    def _cmd_lsub(self, tag, reader, sub):
        return self._cmd_list(tag, reader, sub, lsub=True)

    def _cmd_status(self, tag, reader, sub):
        name = self._name(reader)
        reader.sp()
        reader.expect(b"(")
        wanted = []
        while reader.peek() != b")":
            if wanted:
                reader.sp()
            item = reader.atom().upper()
            if item not in _STATUS_ITEMS:
                raise ParseError(f"unknown status item {item[:20]!r}")
            wanted.append(item)
        reader.pos += 1
        reader.end()
        if self.mailbox is not None and self.mailbox.name == name:
            messages = self.mailbox.messages
            counts = {
                "MESSAGES": len(messages),
                "RECENT": sum([1 for m in messages if m.recent]),
                "UIDNEXT": self.mailbox.uidnext,
                "UIDVALIDITY": self.mailbox.uidvalidity,
                "UNSEEN": sum(1 for m in messages if not m.flags & 1),
            }
            work = NO_WORK
        else:
            counts, work = self.backend.status(self.user, name, self.now_fn())
        items = b" ".join(b"%s %d" % (item, counts[item.decode()]) for item in wanted)
        return (b"* STATUS " + quote(name.encode()) + b" (" + items + b")\r\n"
                + self._ok(tag, b"STATUS completed"), work)

    def _cmd_idle(self, tag, reader, sub):
        reader.end()
        updates, work = self._updates()
        self.idling = True
        self._idle_tag = tag
        return updates + b"+ idling\r\n", work

    def poll(self) -> bytes:
        """New-mail updates for an idling client (the server calls this)."""
        if not self.idling or self.mailbox is None:
            return b""
        updates, work = self._updates()
        self._record("IDLE poll", b"", work, 0)
        self._spent.append(work)
        return updates

    # -- selected --------------------------------------------------------------
    def _updates(self, expunged: list[int] | None = None) -> tuple[bytes, Work]:
        if self.mailbox is None:
            return b"", NO_WORK
        work = NO_WORK
        if expunged is None:
            expunged, work = self.mailbox.refresh()
        out = [b"* %d EXPUNGE\r\n" % seq for seq in expunged]
        self._exists -= len(expunged)
        count = len(self.mailbox.messages)
        if count != self._exists:
            self._exists = count
            recent = sum([1 for m in self.mailbox.messages if m.recent])
            out += [b"* %d EXISTS\r\n" % count, b"* %d RECENT\r\n" % recent]
        return b"".join(out), work

    def _close_mailbox(self, expunge: bool = False) -> Work:
        if self.mailbox is None:
            return NO_WORK
        mailbox, self.mailbox = self.mailbox, None
        if expunge and not mailbox.readonly:
            return mailbox.expunge(None)[1] + mailbox.close()
        return mailbox.close()

    def _cmd_check(self, tag, reader, sub):
        reader.end()
        work = self.mailbox.checkpoint()
        updates, got = self._updates()
        return updates + self._ok(tag, b"CHECK completed"), work + got

    def _cmd_close(self, tag, reader, sub):
        reader.end()
        return self._ok(tag, b"CLOSE completed"), self._close_mailbox(expunge=True)

    def _cmd_expunge(self, tag, reader, sub):
        reader.end()
        if self.mailbox.readonly:
            return tag + b" NO mailbox is read-only\r\n", NO_WORK
        expunged, work = self.mailbox.expunge(None)
        updates, _ = self._updates(expunged)
        return updates + self._ok(tag, b"EXPUNGE completed"), work

    def _indices(self, reader: Reader, uid: bool) -> list[int]:
        messages = self.mailbox.messages
        if uid:
            largest = messages[-1].uid if messages else self.mailbox.uidnext - 1
            ranges = parse_seqset(reader.seqset(), max(largest, 1))
            known = self._uids_of
            if known is None or known[0] is not messages:
                known = self._uids_of = (messages, [m.uid for m in messages])
            return uid_indices(ranges, known[1])
        ranges = parse_seqset(reader.seqset(), len(messages))
        indices = seq_indices(ranges, len(messages))
        if indices is None:
            raise ParseError("message sequence number out of range")
        return indices

    def _cmd_uid(self, tag, reader, sub):
        method = _UID_COMMANDS.get(sub)
        if method is None:
            raise ParseError("unknown UID command")
        return getattr(self, method)(tag, reader, sub, uid=True)

    def _cmd_fetch(self, tag, reader, sub, uid=False):
        indices = self._indices(reader, uid)
        reader.sp()
        items, order, plan = _fetch_items(reader)
        reader.end()
        verb = b"UID FETCH" if uid else b"FETCH"
        if order is not None:
            lines, work = fetch_flags(self.mailbox.messages, indices, order, uid)
            return lines + self._ok(tag, verb + b" completed"), work
        out, works = [], []
        for index in indices:
            line, got, _ = fetch_one(self.mailbox, index, items, uid, plan)
            out.append(line)
            works.append(got)
        work = sum_work(works)
        out.append(self._ok(tag, verb + b" completed"))
        return b"".join(out), work

    def _cmd_store(self, tag, reader, sub, uid=False):
        indices = self._indices(reader, uid)
        rest = reader.data[reader.pos :]
        known = _STORES.get(rest)  # what a valid rest of the command asks
        if known is None:
            known = _store_request(reader)
            if len(_STORES) < _STORES_KEEP and len(rest) <= 512:
                _STORES[rest] = known
        mode, silent, bits = known
        if self.mailbox.readonly:
            return tag + b" NO mailbox is read-only\r\n", NO_WORK
        messages = self.mailbox.messages
        changes = []
        for index in indices:
            old = messages[index].flags
            new = bits if mode == b"FLAGS" else (
                old | bits if mode == b"+FLAGS" else old & ~bits)
            changes.append((index, new & ALL_FLAGS))
        work = plus_cpu(self.mailbox.set_flags(changes),
                        {"imap.message": len(changes)})
        out = []
        if not silent:
            for index in indices:
                info = messages[index]
                extra = b"UID %d " % info.uid if uid else b""
                out.append(b"* %d FETCH (%sFLAGS %s)\r\n" % (
                    index + 1, extra, flag_list(info.flags, info.recent)))
        verb = b"UID STORE" if uid else b"STORE"
        return b"".join(out) + self._ok(tag, verb + b" completed"), work

    def _cmd_copy(self, tag, reader, sub, uid=False):
        indices = self._indices(reader, uid)
        reader.sp()
        name = self._name(reader)
        reader.end()
        entries, work = [], Work(cpu={"imap.message": len(indices)})
        for index in indices:
            text, got = self.mailbox.text(index)
            info = self.mailbox.messages[index]
            entries.append((text, info.flags, info.internaldate))
            work += got
        if entries:
            work += self.backend.append(self.user, name, entries, self.now_fn())
        verb = b"UID COPY" if uid else b"COPY"
        return self._ok(tag, verb + b" completed"), work

    def _cmd_search(self, tag, reader, sub, uid=False):
        messages = self.mailbox.messages
        criteria = parse_search(reader, len(messages), self.mailbox.uidnext)
        searcher = Searcher(self.mailbox, criteria)
        hits = searcher.matches()
        numbers = [messages[i].uid if uid else i + 1 for i in hits]
        line = b"* SEARCH" + b"".join(b" %d" % n for n in numbers) + b"\r\n"
        verb = b"UID SEARCH" if uid else b"SEARCH"
        return line + self._ok(tag, verb + b" completed"), searcher.work

    def abort(self) -> Work:
        """The connection dropped: checkpoint the mailbox as LOGOUT would."""
        work = self._close_mailbox()
        self.closed = True
        self._spent.append(work)
        return work
