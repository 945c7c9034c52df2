"""Scripted mail clients: a Thunderbird-like IMAP client and a POP3 client.

``run_session(spec, session, rng=None, state=None)`` plays one
``twin.traffic.users.SessionSpec`` against a real in-process protocol session
(``twin.access.imap.ImapSession`` or ``twin.access.pop3.Pop3Session``, over
either backend): it feeds real command bytes, parses the real replies (tagged
OK/NO/BAD, literals, EXISTS, UIDVALIDITY/UIDNEXT, UIDs and flags, POP3
+OK/-ERR and multi-line listings) and returns a ``SessionOutcome``: one
``(command class, Work)`` entry per request/response exchange, in order, each
Work being what the server reported for it plus the exchange's bytes on the
link (``net_bytes``) and one round trip.

IMAP (Thunderbird 2 style): connect, LOGIN, LIST at client start ("open"),
SELECT INBOX, ``UID FETCH 1:last (UID FLAGS)`` for the messages it knows
(only the newest ``spec.flag_sync_messages`` when that is set),
``UID FETCH last+1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (...)])``
for new ones, then for each message read ``UID FETCH uid BODY.PEEK[]`` and
``UID STORE uid +FLAGS.SILENT (\\Seen)``; read messages to move get
``UID COPY`` to the folder (CREATE first if the server answers TRYCREATE),
those to delete or move ``UID STORE +FLAGS.SILENT (\\Deleted)`` and one
EXPUNGE; LOGOUT. An "idle" session ends its sync with IDLE; ``ImapClient``
lets a simulator hold it (``wake`` when mail may have arrived, ``finish``
sends DONE and LOGOUT); ``run_session`` goes straight to DONE.

POP3 (Outlook Express style): connect, USER, PASS, STAT, UIDL, RETR of every
message not yet downloaded, DELE of each unless the client keeps mail on the
server, QUIT.

Which messages are read, deleted or moved follows the spec's shares, with a
uniform per message from *rng* when given, else from a hash of the session id
and UID (deterministic without a Generator). ``ClientState`` is what a client
remembers between sessions (UIDVALIDITY, the highest UID it has seen, UIDLs
it has downloaded); keep one per user.

An unexpected NO or -ERR (a wrong password, a mailbox in use) ends the
session cleanly and is named in ``SessionOutcome.failure``; a BAD, or a reply
the client cannot parse, is our bug and raises AssertionError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import repeat

import numpy as np

from twin.access.imap import ImapSession
from twin.access.pop3 import Pop3Session
from twin.stages.work import Work
from twin.traffic.users import PROTOCOLS, SessionSpec

COMMAND_CLASSES: dict[str, str] = {
    "connect": "TCP connect and the server greeting",
    "login": "IMAP LOGIN; POP3 USER or PASS (PASS opens the maildrop)",
    "list": "IMAP LIST of the user's mailboxes at client start",
    "select": "IMAP SELECT INBOX",
    "fetch_flags": "UID FETCH (UID FLAGS) of the messages the client knows",
    "fetch_headers": "UID FETCH of size, flags and header fields of new messages",
    "fetch_body": "UID FETCH BODY.PEEK[] of one message being read",
    "store": "UID STORE of \\Seen (one message) or \\Deleted (a set)",
    "copy": "UID COPY of the messages being moved to a folder",
    "create": "CREATE of the folder after a COPY answered TRYCREATE",
    "expunge": "EXPUNGE of the deleted and moved messages",
    "idle": "IDLE started, or ended with DONE",
    "idle_poll": "the server checking for new mail during IDLE",
    "logout": "IMAP LOGOUT, or POP3 QUIT (the UPDATE state)",
    "stat": "POP3 STAT",
    "uidl": "POP3 UIDL listing",
    "retr": "POP3 RETR of one message",
    "dele": "POP3 DELE of one message",
}

HEADER_FIELDS = (b"From To Cc Subject Date Message-ID Priority X-Priority "
                 b"References Newsgroups In-Reply-To Content-Type")
"""What Thunderbird 2 asks for when it downloads new headers."""

# A FETCH (UID FLAGS) line of a message neither \Seen nor \Deleted: the scan
# stays in C and Python sees only the (few) unread UIDs.
_UNREAD = re.compile(
    rb"\* \d+ FETCH \(UID (\d+) FLAGS \((?![^)]*\\(?:Seen|Deleted))[^)]*\)\)")
_EXISTS = re.compile(rb"\* (\d+) EXISTS")
_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_UIDNEXT = re.compile(rb"\[UIDNEXT (\d+)\]")
_UID = re.compile(rb"UID (\d+)")
_LITERAL = re.compile(rb"\{(\d+)\}$")
_LITERAL_AT = re.compile(rb"\{(\d+)\}\r\n")
_POP_LINE = re.compile(rb"^(\d+) (\S+)\r$", re.MULTILINE)
_OCTETS = re.compile(rb"\+OK (\d+) octets")
_MASK = (1 << 64) - 1
_ZEROS = repeat(0)
_tuple_new = tuple.__new__


class ClientState:
    """What one user's client remembers between sessions."""

    __slots__ = ("uidvalidity", "last_uid", "pop3_seen", "pop3_known")

    def __init__(self, known_messages: int = 0) -> None:
        # UIDs 1..known_messages were seen before (twin.traffic.mailboxes lays
        # mailboxes out that way); UIDVALIDITY 0 adopts the server's.
        self.uidvalidity = 0
        self.last_uid = known_messages
        self.pop3_seen: set[bytes] = set()
        self.pop3_known = known_messages  # first UIDL entries already downloaded


@dataclass(frozen=True, slots=True)
class SessionOutcome:
    """What one session did, exchange by exchange.

    ``bytes_fetched`` counts message data received (header and body literals,
    RETR text); ``bytes_sent`` / ``bytes_received`` all protocol bytes.
    ``failure`` is "" for a session that ran to its end.
    """

    session_id: int
    user: str
    protocol: str
    kind: str
    commands: list[tuple[str, Work]]
    bytes_sent: int
    bytes_received: int
    bytes_fetched: int
    messages_new: int
    messages_read: int
    deleted: int
    moved: int
    failure: str

    def total_work(self) -> Work:
        total = Work()
        for _, work in self.commands:
            total += work
        return total


def _mix(session_id: int, uid: int, salt: int) -> float:
    """A uniform in [0, 1) from (session, uid, salt): splitmix64's finaliser."""
    x = (session_id * 0x9E3779B97F4A7C15 + uid * 0xD1B54A32D192ED03
         + salt * 0x8CB92BA72F3D8DD7) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return ((x ^ (x >> 31)) >> 11) / 9007199254740992.0


def uid_set(uids: list[int]) -> bytes:
    """A compact IMAP sequence set of sorted *uids* (``1:3,7,9:10``)."""
    parts = []
    start = prev = uids[0]
    for uid in uids[1:]:
        if uid == prev + 1:
            prev = uid
            continue
        parts.append(b"%d" % start if start == prev else b"%d:%d" % (start, prev))
        start = prev = uid
    parts.append(b"%d" % start if start == prev else b"%d:%d" % (start, prev))
    return b",".join(parts)


class _Script:
    """Shared bookkeeping of a scripted session."""

    def __init__(self, spec: SessionSpec, session, rng: np.random.Generator | None,
                 state: ClientState) -> None:
        self.spec = spec
        self.session = session
        self.rng = rng
        self.state = state
        self.commands: list[tuple[str, Work]] = []
        self.sent = self.received = self.fetched = 0
        self.new = self.read = self.deleted = self.moved = 0
        self.failure = ""
        self.draws: list[tuple[int, tuple[int, ...]]] = []  # (salt, uids) of _mix

    def exchange(self, name: str, data: bytes) -> bytes:
        # (session.feed(data), session.last_work) in one call
        reply, work = self.session.call(data)
        sent, received = len(data), len(reply)
        self.sent += sent
        self.received += received
        # plus_net(work, sent + received, 1), in line
        self.commands.append((name, _tuple_new(Work, (
            *work[:9], work[9] + sent + received, work[10] + 1))))
        return reply

    def connect(self) -> None:
        greeting = self.session.greeting()
        self.received += len(greeting)
        self.commands.append(("connect", Work(net_bytes=len(greeting),
                                              net_round_trips=1)))

    def uniforms(self, uids: list[int], salt: int) -> list[float]:
        if self.rng is not None:
            return self.rng.random(len(uids)).tolist()
        sid = self.spec.session_id
        if not uids:
            return []
        self.draws.append((salt, tuple(uids)))
        # [_mix(sid, uid, salt) for uid in uids], the session's and salt's
        # terms of the sum taken once (the same integers: the sum is exact)
        base = sid * 0x9E3779B97F4A7C15 + salt * 0x8CB92BA72F3D8DD7
        out = []
        for uid in uids:
            x = (base + uid * 0xD1B54A32D192ED03) & _MASK
            x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
            x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
            out.append(((x ^ (x >> 31)) >> 11) / 9007199254740992.0)
        return out

    def outcome(self) -> SessionOutcome:
        spec = self.spec
        return SessionOutcome(spec.session_id, spec.user, spec.protocol, spec.kind,
                              self.commands, self.sent, self.received, self.fetched,
                              self.new, self.read, self.deleted, self.moved,
                              self.failure)


class ImapClient(_Script):
    """A Thunderbird-like IMAP client driving one ``ImapSession``.

    ``start()`` connects, logs in, lists (open sessions), selects INBOX and
    syncs; an "idle" spec then enters IDLE. ``wake()`` checks an idling
    session for new mail and syncs it; ``finish()`` leaves IDLE if needed and
    logs out; ``outcome()`` tells what happened.
    """

    def __init__(self, spec: SessionSpec, session: ImapSession,
                 rng: np.random.Generator | None = None,
                 state: ClientState | None = None) -> None:
        super().__init__(spec, session, rng, state or ClientState())
        self._serial = 0
        self._idle_tag = b""
        self.idling = False

    # -- protocol ------------------------------------------------------------
    def _tag(self) -> bytes:
        self._serial += 1
        return b"A%03d" % self._serial

    def command(self, name: str, text: bytes) -> tuple[bool, bytes]:
        """Send one tagged command; (OK?, reply). NO ends the session's work."""
        tag = self._tag()
        reply = self.exchange(name, b"%s %s\r\n" % (tag, text))
        status = _last_line(reply)
        if status.startswith(tag + b" OK"):
            return True, reply
        if status.startswith(tag + b" NO") or self.session.closed:
            if not self.failure:
                self.failure = f"{name}: " + status.decode("ascii", "replace").strip()
            return False, reply
        raise AssertionError(f"client sent {text[:60]!r}, server answered "
                             f"{status[:120]!r}")

    # -- session -------------------------------------------------------------
    def start(self) -> bool:
        """Connect, log in, select INBOX and sync; False if it failed."""
        spec = self.spec
        self.connect()
        user, password = spec.user.encode(), spec.password.encode()
        if not self.command("login", b"LOGIN " + _astring(user) + b" "
                            + _astring(password))[0]:
            return False
        if spec.kind == "open" and not self.command("list", b'LIST "" "*"')[0]:
            return False
        ok, reply = self.command("select", b"SELECT INBOX")
        if not ok:
            return False
        state = self.state
        validity = _UIDVALIDITY.search(reply)
        uidnext = _UIDNEXT.search(reply)
        exists = _EXISTS.search(reply)
        if validity is None or uidnext is None or exists is None:
            raise AssertionError(f"SELECT reply lacks EXISTS/UIDVALIDITY/UIDNEXT: "
                                 f"{reply[:200]!r}")
        value = int(validity.group(1))
        if state.uidvalidity and state.uidvalidity != value:
            state.last_uid = 0  # the server renumbered: resync everything
        state.uidvalidity = value
        if not self.sync(int(exists.group(1)), int(uidnext.group(1))):
            return False
        if spec.kind == "idle":
            return self._idle()
        return True

    def _idle(self) -> bool:
        tag = self._tag()
        reply = self.exchange("idle", tag + b" IDLE\r\n")
        if not _last_line(reply).startswith(b"+"):
            raise AssertionError(f"IDLE answered {reply[:120]!r}")
        self._idle_tag = tag
        self.idling = True
        return True

    def _done(self) -> bool:
        self.idling = False
        reply = self.exchange("idle", b"DONE\r\n")
        if not reply.startswith(self._idle_tag + b" OK"):
            raise AssertionError(f"DONE answered {reply[:120]!r}")
        return True

    def wake(self) -> bool:
        """The server looks for new mail during IDLE; sync it if some came."""
        if not self.idling:
            return False
        before = len(self.session.commands)
        reply = self.session.poll()
        work = (self.session.commands[-1][1] if len(self.session.commands) > before
                else Work())
        self.received += len(reply)
        self.commands.append(("idle_poll", work + Work(net_bytes=len(reply))))
        if _EXISTS.search(reply) is None:
            return False
        self._done()
        self.sync(-1, 0)
        self._idle()
        return True

    def finish(self) -> SessionOutcome:
        """Leave IDLE if idling, log out, and return the outcome."""
        if self.idling:
            self._done()
        if not self.session.closed:
            self.command("logout", b"LOGOUT")
        return self.outcome()

    def sync(self, exists: int, uidnext: int) -> bool:
        """Flags of known mail, headers of new mail, then read/delete/move.

        *exists* < 0 (after IDLE) means "unknown": look for new mail anyway.
        """
        spec, state = self.spec, self.state
        last = state.last_uid
        backlog: list[int] = []
        if last and exists > 0:
            window = spec.flag_sync_messages
            first = max(1, last - window + 1) if window else 1
            ok, reply = self.command("fetch_flags",
                                     b"UID FETCH %d:%d (UID FLAGS)" % (first, last))
            if not ok:
                return False
            if spec.backlog_share > 0:
                backlog = [int(uid) for uid in _UNREAD.findall(reply)]
        fresh: list[int] = []
        if exists < 0 or uidnext > last + 1:
            ok, reply = self.command(
                "fetch_headers", b"UID FETCH %d:* (UID RFC822.SIZE FLAGS "
                b"BODY.PEEK[HEADER.FIELDS (%s)])" % (last + 1, HEADER_FIELDS))
            if not ok:
                return False
            count = 0
            for text, literal in _responses(reply):
                self.fetched += literal
                match = _UID.search(text)
                if match is None or int(match.group(1)) <= last:
                    continue  # "last+1:*" names the last message when none is new
                count += 1
                state.last_uid = max(state.last_uid, int(match.group(1)))
                if b"\\Seen" not in text:
                    fresh.append(int(match.group(1)))
            self.new += count
        to_read = [uid for uid, u in zip(fresh, self.uniforms(fresh, 1), strict=True)
                   if u < spec.read_share]
        if backlog and spec.backlog_share > 0:
            to_read += [uid for uid, u in zip(backlog, self.uniforms(backlog, 2),
                                              strict=True) if u < spec.backlog_share]
        for uid in to_read:
            ok, reply = self.command("fetch_body", b"UID FETCH %d BODY.PEEK[]" % uid)
            if not ok:
                return False
            # sum(literal for _, literal in _responses(reply)), in one pass
            self.fetched += _literal_bytes(reply)
            self.read += 1
            seen = b"UID STORE %d +FLAGS.SILENT (\\Seen)" % uid
            if not self.command("store", seen)[0]:
                return False
        if not to_read:
            return True
        delete, move = spec.delete_share, spec.move_share
        gone, moving = [], []
        for uid, u in zip(to_read, self.uniforms(to_read, 3), strict=True):
            if u < delete:
                gone.append(uid)
            elif u < delete + move:
                moving.append(uid)
        if moving:
            moving.sort()
            copy = b"UID COPY " + uid_set(moving) + b" " + spec.move_folder.encode()
            ok, reply = self.command("copy", copy)
            if not ok and b"[TRYCREATE]" in reply:
                self.failure = ""
                ok = (self.command("create", b"CREATE " + spec.move_folder.encode())[0]
                      and self.command("copy", copy)[0])
            if not ok:
                return False
            self.moved += len(moving)
        if gone or moving:
            marked = sorted(gone + moving)
            if not self.command("store", b"UID STORE " + uid_set(marked)
                                + b" +FLAGS.SILENT (\\Deleted)")[0]:
                return False
            if not self.command("expunge", b"EXPUNGE")[0]:
                return False
            self.deleted += len(gone)
        return True


def _last_line(reply: bytes) -> bytes:
    """The last CRLF line of *reply* (where a tagged status or ``+`` stands)."""
    cut = reply.rfind(b"\r\n", 0, len(reply) - 2)
    return reply[cut + 2 :] if cut >= 0 else reply


def _astring(value: bytes) -> bytes:
    """A quoted IMAP string (login names and passwords here are plain ASCII)."""
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _responses(reply: bytes) -> list[tuple[bytes, int]]:
    """Each response's text with its literals cut out, and the literals' bytes."""
    out: list[tuple[bytes, int]] = []
    pos, end = 0, len(reply)
    text: list[bytes] = []  # a response's pieces before its literals
    literal = 0
    search = _LITERAL_AT.search
    while pos < end:
        # the next literal ({n} ending a line); the lines before it are whole
        match = search(reply, pos)
        stop = end if match is None else match.start()
        cut = reply.rfind(b"\r\n", pos, stop)
        if cut >= 0:
            lines = reply[pos:cut].split(b"\r\n")
            if text:
                text.append(lines[0])
                out.append((b"".join(text), literal))
                text, literal = [], 0
                del lines[0]
            out += zip(lines, _ZEROS, strict=False)
            pos = cut + 2
        if match is None:
            if pos < end:
                raise AssertionError(
                    f"reply does not end in CRLF: {reply[pos:pos + 80]!r}")
            break
        text.append(reply[pos:stop])
        literal += int(match.group(1))
        pos = match.end() + int(match.group(1))
    return out


def _literal_bytes(reply: bytes) -> int:
    """``sum(literal for _, literal in _responses(reply))`` without the texts:
    a response's literals count once a line ends it (the same AssertionError
    when the reply does not end in CRLF)."""
    total = pending = 0
    pos, end = 0, len(reply)
    search = _LITERAL_AT.search
    while pos < end:
        match = search(reply, pos)
        stop = end if match is None else match.start()
        if pending and reply.find(b"\r\n", pos, stop) >= 0:
            total += pending  # the response's last line came
            pending = 0
        if match is None:
            cut = reply.rfind(b"\r\n", pos, end)
            if cut >= 0:
                pos = cut + 2
            if pos < end:
                raise AssertionError(
                    f"reply does not end in CRLF: {reply[pos:pos + 80]!r}")
            break
        size = int(match.group(1))
        pending += size
        pos = match.end() + size
    return total


def _responses_by_line(reply: bytes) -> list[tuple[bytes, int]]:
    """``_responses``, line by line (the plain form, kept for the tests)."""
    out = []
    pos, end = 0, len(reply)
    text, literal = [], 0
    while pos < end:
        eol = reply.find(b"\r\n", pos)
        if eol < 0:
            raise AssertionError(f"reply does not end in CRLF: {reply[pos:pos + 80]!r}")
        line = reply[pos:eol]
        match = _LITERAL.search(line) if line.endswith(b"}") else None
        if match is not None:
            size = int(match.group(1))
            text.append(line[: match.start()])
            literal += size
            pos = eol + 2 + size
            continue
        text.append(line)
        out.append((b"".join(text), literal))
        text, literal = [], 0
        pos = eol + 2
    return out


def run_pop3(spec: SessionSpec, session: Pop3Session,
             state: ClientState | None = None) -> SessionOutcome:
    """Download new mail over POP3 (see the module docstring)."""
    script = _Script(spec, session, None, state or ClientState())
    state = script.state
    script.connect()

    def ok(name: str, line: bytes) -> bytes | None:
        reply = script.exchange(name, line + b"\r\n")
        if reply.startswith(b"+OK"):
            return reply
        if not script.failure:
            script.failure = f"{name}: " + reply.split(b"\r\n", 1)[0].decode(
                "ascii", "replace")
        return None

    if ok("login", b"USER " + spec.user.encode()) is None or ok(
            "login", b"PASS " + spec.password.encode()) is None:
        if not session.closed:
            script.exchange("logout", b"QUIT\r\n")
        return script.outcome()
    if ok("stat", b"STAT") is None:
        script.exchange("logout", b"QUIT\r\n")
        return script.outcome()
    listing = ok("uidl", b"UIDL")
    if listing is None:
        script.exchange("logout", b"QUIT\r\n")
        return script.outcome()
    entries = _POP_LINE.findall(listing)
    if state.pop3_known:
        state.pop3_seen.update(uidl for _, uidl in entries[: state.pop3_known])
        state.pop3_known = 0
    seen = state.pop3_seen
    fresh = [(number, uidl) for number, uidl in entries if uidl not in seen]
    script.new = len(fresh)
    fetched = []
    for number, uidl in fresh:
        reply = ok("retr", b"RETR " + number)
        if reply is None:
            break
        match = _OCTETS.match(reply)
        script.fetched += int(match.group(1)) if match else len(reply)
        script.read += 1
        fetched.append((number, uidl))
    if spec.keep_on_server:
        present = {uidl for _, uidl in entries}
        state.pop3_seen = {u for u in seen if u in present}
        state.pop3_seen.update(uidl for _, uidl in fetched)
    else:
        for number, _ in fetched:
            if ok("dele", b"DELE " + number) is None:
                break
            script.deleted += 1
    if ok("logout", b"QUIT") is None:
        script.deleted = 0
    return script.outcome()


def _quiet(outcome: SessionOutcome) -> bool:
    """Whether no exchange of *outcome* wrote anything to the store."""
    for _, work in outcome.commands:
        if (work.writes or work.fsyncs or work.files_created or work.files_renamed
                or work.files_deleted):
            return False
    return True


def _state_key(spec: SessionSpec, state: ClientState) -> tuple:
    """What of *state* a session of *spec*'s protocol reads."""
    if spec.protocol == "imap":
        return (state.uidvalidity, state.last_uid)
    return (state.pop3_known, frozenset(state.pop3_seen))


class PollMemo:
    """Replays "poll" sessions that changed nothing (a simulator shortcut).

    A poll is a function of the user's spec, the client's state, the mailbox
    and the uniforms ``_mix`` draws from the session id. When one read
    nothing, wrote nothing to the store (no write, fsync or file operation in
    any exchange), left the client state and the mailbox's *signature* as
    they were, and did not fail, the next poll of that user with the same
    spec fields, state and signature asks the same commands and gets the same
    replies and Work -- unless its own uniforms pick a message the first did
    not (checked: the same draws with its session id must all stay at or above
    their share). Then ``play`` returns the first outcome under the new
    session id without running a session. The signature is the backend's
    ``signature(user)``: it changes whenever the mailbox may have (None:
    never memoized). With *verify* every replay is also played for real and
    compared (tests).
    """

    def __init__(self, verify: bool = False) -> None:
        self.verify = verify
        self.hits = 0
        self.misses = 0
        self._entries: dict[int, tuple[tuple, list, SessionOutcome]] = {}

    def play(self, spec: SessionSpec, make_session, state: ClientState,
             signature) -> SessionOutcome:
        """*spec*'s outcome; *make_session()* gives the server session and
        *signature()* the mailbox's signature now."""
        if spec.kind != "poll" or spec.protocol not in PROTOCOLS:
            return run_session(spec, make_session(), state=state)
        before = signature()
        if before is None:
            return run_session(spec, make_session(), state=state)
        known = _state_key(spec, state)
        key = (spec.user, spec.password, spec.flag_sync_messages, spec.read_share,
               spec.backlog_share, spec.move_folder, spec.keep_on_server, known,
               before)
        entry = self._entries.get(spec.user_index)
        if entry is not None and entry[0] == key and self._same_draws(spec, entry[1]):
            self.hits += 1
            first = entry[2]
            outcome = SessionOutcome(
                spec.session_id, first.user, first.protocol, first.kind,
                first.commands, first.bytes_sent, first.bytes_received,
                first.bytes_fetched, first.messages_new, first.messages_read,
                first.deleted, first.moved, first.failure)
            if self.verify:
                real = run_session(spec, make_session(), state=state)
                if real != outcome or _state_key(spec, state) != known:
                    raise AssertionError(f"replayed session {spec.session_id} "
                                         "differs from the real one")
            return outcome
        self.misses += 1
        if spec.protocol == "imap":
            client = ImapClient(spec, make_session(), None, state)
            client.start()
            outcome, draws = client.finish(), client.draws
        else:
            outcome, draws = run_pop3(spec, make_session(), state), []
        if (not outcome.failure and outcome.messages_read == 0
                and _state_key(spec, state) == known and _quiet(outcome)
                and signature() == before):
            self._entries[spec.user_index] = (key, draws, outcome)
        else:
            self._entries.pop(spec.user_index, None)
        return outcome

    @staticmethod
    def _same_draws(spec: SessionSpec, draws: list) -> bool:
        """Whether *spec*'s uniforms select nothing where the first selected
        nothing (salt 1: new mail read now, salt 2: older unread mail)."""
        sid = spec.session_id
        for salt, uids in draws:
            share = spec.read_share if salt == 1 else (
                spec.backlog_share if salt == 2 else None)
            if share is None:
                return False
            for uid in uids:
                if _mix(sid, uid, salt) < share:
                    return False
        return True


def run_session(spec: SessionSpec, session: ImapSession | Pop3Session,
                rng: np.random.Generator | None = None,
                state: ClientState | None = None) -> SessionOutcome:
    """Play *spec* against *session* from connect to logout (see module doc)."""
    if spec.protocol == "pop3":
        if not isinstance(session, Pop3Session):
            raise ValueError(f"session {spec.session_id} is pop3 but got "
                             f"{type(session).__name__}")
        return run_pop3(spec, session, state)
    if spec.protocol != "imap" or not isinstance(session, ImapSession):
        raise ValueError(f"session {spec.session_id}: protocol {spec.protocol!r} "
                         f"does not fit {type(session).__name__}")
    client = ImapClient(spec, session, rng, state)
    client.start()
    return client.finish()
