"""The users' sessions played in a worker process, ahead of the clock.

Playing the reading load's sessions -- the scripted client against the real
Cyrus servers over the run's maildir store -- is the largest share of the
access week's CPU, and a session depends on nothing but its user's mailbox,
client state and spec: on the deliveries to that user and the user's earlier
sessions. So a worker process on the host's other core can own the Cyrus
side of the store (the populated mailboxes, every index and cache file, the
in-memory indexes, the clients' states and the poll memo) and play each
session before the simulation's clock reaches it, as soon as nothing can
change that user's mailbox before it starts: the simulation books the
session's commands at its start with the worker's outcome, read from a pipe.

The parent (``SessionWorker``) sends, in the order of its clock, each
delivery's index update (``index_delivery``'s arguments; the simulation
books its Work without the mailbox, ``delivery_work``, and the worker checks
that the real update reported the same) and each session to play, with the
exact instant its start will have. It sends a session ahead when no message
naming its user (as a recipient or as the sender, to whom a bounce comes
back) is in the simulation, none of the front's hand-overs read so far names
the user before the session starts, the front's hand-overs are read past
that instant, and the user's earlier sessions have gone; else at the start
itself, waiting for the answer (``AccessLoad``, ``twin.sim.access``). The
worker does each user's items in the order they came, so each user's
deliveries and sessions reach its mailbox in simulated-time order, as in
process; the result files are the same (``tests/test_session_worker.py``).
Other users' items may go first: when the simulation needs an outcome it
has not got, it takes the answers that came, and if it is not among them
asks for it (``("u", number)``) and the worker, which looks
at its pipe between items, plays that session (after its user's items
queued before it) ahead of the rest of its queue: a session sent at its
start waited ~6.7 ms behind the sessions sent ahead of the clock, ~2.2 ms
so.

Frames both ways: a little-endian 8-byte size, then a pickled list of
items. To the worker, first the run (scenario, store root, run folder, each
user's messages known to the client, the plan of the indexes it builds
first: ``build_indexes``, as soon as the mailboxes are drawn), then
``("d", user, filename, now, parsed)`` (a delivery to index, *now* its
internal date), ``("p", number, spec, now)`` (a session to play at epoch
second *now*), ``("u", number)`` (that session's outcome is needed now),
``("e",)`` (the end). From it:
``("o", number, commands, failure, messages_read, bytes_fetched)`` per
session (*commands* None: the same list as that user's last), in frames of
up to ``ANSWERS_EVERY`` while items are queued, at once when asked, and
``("done", hits, misses)`` at the end. A failure in the
worker ends it; its last line of stderr becomes the run's ``TwinError``.
``MAILTWIN_SESSIONS=inline`` plays the sessions in the simulation's process.
"""

from __future__ import annotations

import gc
import os
import pickle
import select
import sys
import tempfile
import time
from collections import deque
from operator import attrgetter

from twin.errors import TwinError
from twin.sim.children import FRAME_HEAD, exit_status, write_frame

SESSIONS_CODE = "from twin.sim.sessions import child_main; child_main()"
"""What the session worker child runs."""

SESSIONS_NICE = 0
"""The worker's niceness: the simulation's, above the writer's and the
front's (``CHILD_NICE``), which have more slack: the simulation waits for a
session's outcome at its start. At 5 the simulation waited ~6 s of two
simulated days for outcomes, at 0 ~3 s (``AccessLoad``'s waits timed,
alternated runs)."""
ANSWERS_EVERY = 32
"""Sessions played between two frames of answers while items are queued
(the parent asks, ``("u", number)``, for one it needs before)."""

def _spec_fields() -> list[str]:
    from dataclasses import fields

    from twin.traffic.users import SessionSpec

    return [field.name for field in fields(SessionSpec)]


_spec_values = attrgetter(*_spec_fields())
"""A ``SessionSpec``'s fields in order (``SessionSpec(*values)`` again)."""
_USER = _spec_fields().index("user")
"""Where the user is in a ``SessionSpec``'s fields (``_spec_values``)."""


def sessions_apart(scenario) -> bool:
    """Whether the reading load of mail *scenario* plays its sessions in a
    worker process: a maildir store (Cyrus), unless ``MAILTWIN_SESSIONS=inline``.
    The caller also needs the front's hand-overs ahead (an apart front)."""
    if os.environ.get("MAILTWIN_SESSIONS", "worker") == "inline":
        return False
    return scenario.pipeline.deliver.format == "maildir"


# -- the parent's side -------------------------------------------------------


class SessionWorker:
    """The parent's end of a session worker over the maildir store at
    *store_root* of the run in *folder*. Raises ``OSError`` where no child
    can start."""

    def __init__(self) -> None:
        from twin.sim.children import spawn_child
        from twin.sim.writer import widen_pipe

        self._errors = tempfile.TemporaryFile()
        self._process = spawn_child(SESSIONS_CODE, stderr=self._errors,
                                    nice=SESSIONS_NICE)
        self._in = self._process.stdin
        self._out = self._process.stdout
        widen_pipe(self._in)
        widen_pipe(self._out)
        self._answers = _Frames(self._out.fileno())
        """The worker's frames of answers, read as they come (``_receive``)."""
        self._items: list = []
        self._outcomes: dict[int, tuple] = {}
        self._last: dict[str, list] = {}
        """By user: the commands of the user's last outcome."""
        self._ended = None
        self.sent = 0
        """Sessions sent to play."""
        self.waited = 0
        """Sessions sent at their start, not ahead: their user's mailbox
        might have changed before (``outcome(waited=True)``)."""
        self.unasked = 0
        """Outcomes not read yet when needed but come, found without asking
        (``outcome``)."""
        self.waited_s = 0.0
        """Host seconds the simulation spent waiting for outcomes not here
        yet (a diagnostic for the run's manifest, never in a result)."""

    def begin(self, scenario, store_root, folder, known: list[int],
              plan=None) -> None:
        """Take over the store at *store_root* of the run in *folder*, as
        ``populate`` leaves it (the message files through the run's writer),
        *known* each user's messages their client has seen; the worker
        builds the indexes first from *plan* (``populate(defer_index=True)``,
        ``build_indexes``), else they are in their files."""
        self._send_now([(scenario, str(store_root), str(folder), list(known),
                         plan)])

    # sending

    def deliver(self, user: str, filename: str, now: float, parsed: tuple) -> None:
        """Index a delivery of *user*'s (in order with the sessions)."""
        self._items.append(("d", user, filename, now, parsed))

    def play(self, number: int, spec, now: float) -> None:
        """Play session *spec* (its start at epoch second *now*); its outcome
        is ``outcome(number)``. Sent at the next ``flush``."""
        # its fields: a tuple pickles in a fraction of a frozen dataclass's time
        self._items.append(("p", number, _spec_values(spec), now))
        self.sent += 1

    def flush(self) -> None:
        if self._items:
            items, self._items = self._items, []
            self._send_now(items)

    def _send_now(self, items: list) -> None:
        data = pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            write_frame(self._in.fileno(), data)
        except OSError:
            self._fail()

    # receiving

    def _receive(self, wait: bool = True) -> None:
        """Take the frames of answers that came (*wait*: at least one)."""
        try:
            items = self._answers.wait() if wait else self._answers.poll()
        except OSError:
            items = None
        if items is None:
            self._fail()
        outcomes = self._outcomes
        for item in items:
            kind = item[0]
            if kind == "o":
                outcomes[item[1]] = item
            else:
                self._ended = item[1:]

    def outcome(self, number: int, user: str, waited: bool = False) -> tuple:
        """(commands, failure, messages read, bytes fetched) of session
        *number* of *user* (waiting for it)."""
        outcomes = self._outcomes
        found = outcomes.pop(number, None)
        if found is None:
            # sent since, unasked? (the worker sends frames of answers as
            # it goes: asking costs a round trip)
            self._receive(wait=False)
            found = outcomes.pop(number, None)
            self.unasked += found is not None
        if found is None:
            # ask for it: the worker plays it before other users' sessions
            self.waited += waited
            self._items.append(("u", number))
            started = time.perf_counter()
            self.flush()
            while number not in outcomes:
                self._receive()
            self.waited_s += time.perf_counter() - started
            found = outcomes.pop(number)
        commands = found[2]
        if commands is None:
            commands = self._last[user]
        else:
            self._last[user] = commands
        return commands, found[3], found[4], found[5]

    def finish(self) -> tuple[int, int]:
        """Send the end, wait for the worker to finish every item; the poll
        memo's (hits, misses)."""
        self._items.append(("e",))
        self.flush()
        while self._ended is None:
            self._receive()
        self._process.stdin.close()
        self._process.wait()
        self._errors.close()
        return self._ended

    def close(self) -> None:
        """End the worker (after a failure too)."""
        process = self._process
        if process.poll() is None:
            process.kill()
        process.wait()
        for pipe in (self._in, self._out):
            try:
                pipe.close()
            except OSError:
                pass
        if not self._errors.closed:
            self._errors.close()

    def _fail(self):
        process = self._process
        try:
            process.stdin.close()
        except OSError:
            pass
        process.wait()
        self._errors.seek(0)
        lines = self._errors.read().decode("utf-8", "replace").strip().splitlines()
        last = lines[-1] if lines else exit_status(process.returncode)
        raise TwinError(f"the session worker of the run (users reading mail) "
                        f"failed: {last}")


# -- the worker --------------------------------------------------------------


def child_main() -> None:
    """A spawned child: the run on stdin, then frames of items; answers on
    stdout."""
    source = _Frames(sys.stdin.fileno())
    out = sys.stdout.buffer
    try:
        first = source.wait()
        if first is None:  # started for a run that did not need it
            os._exit(0)
        _serve(*first[0], source, out, first[1:])
    except BrokenPipeError:  # the parent stopped reading: it failed or ended
        os._exit(0)


class _Frames:
    """The worker's end of the parent's frames, read from the pipe *fd* as
    they come: ``wait`` for the next ones, ``poll`` for any that came (so
    that an urgent item is seen while others are queued)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._data = bytearray()
        os.set_blocking(fd, False)

    def _take(self) -> list:
        """The items of the whole frames read so far."""
        data = self._data
        items: list = []
        at = 0
        while len(data) - at >= FRAME_HEAD.size:
            (size,) = FRAME_HEAD.unpack_from(data, at)
            if len(data) - at - FRAME_HEAD.size < size:
                break
            at += FRAME_HEAD.size
            items.extend(pickle.loads(memoryview(data)[at:at + size]))
            at += size
        if at:
            del data[:at]
        return items

    def _fill(self) -> bool:
        """Read what the pipe holds; False at its end."""
        try:
            chunk = os.read(self._fd, 1 << 20)
        except BlockingIOError:
            return True
        if not chunk:
            return False
        self._data += chunk
        return True

    def poll(self) -> list:
        """The items that came since, without waiting (the pipe's end gives
        none: ``wait`` reports it)."""
        self._fill()
        return self._take()

    def wait(self) -> list | None:
        """The next items (waiting for a whole frame); None at the pipe's
        end."""
        while True:
            items = self._take()
            if items:
                return items
            select.select([self._fd], [], [])
            if not self._fill():
                return None


def _user_of(item) -> str | None:
    """The user an item to the worker is for (None: the end)."""
    kind = item[0]
    if kind == "p":
        return item[2][_USER]
    return item[1] if kind == "d" else None


def _write(out, items: list) -> None:
    write_frame(out.fileno(), pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL))


def _serve(scenario, store_root: str, folder: str, known: list[int], plan,
           source: _Frames, out, items: list) -> None:
    from pathlib import Path

    from twin.access.auth import CredentialsFile
    from twin.access.cyrusstore import CyrusBackend, delivery_work, index_delivery
    from twin.access.imap import ImapSession
    from twin.access.pop3 import Pop3Session
    from twin.sim.children import RUN_GC_THRESHOLDS
    from twin.traffic.client import ClientState, PollMemo
    from twin.traffic.mailboxes import build_indexes
    from twin.traffic.users import SessionSpec

    states = [ClientState(seen) for seen in known]
    # the mailboxes' indexes: built here from the plan (the same as the
    # populating process builds without a worker), else read from their
    # files as each is first opened (the same Work either way)
    backend = CyrusBackend(store_root, host_fsync=scenario.pipeline.deliver.host_fsync,
                           sole_writer=True)
    if plan is not None:
        # built here, kept in memory (the same as read from their files)
        build_indexes(plan, backend)
    directory = CredentialsFile(Path(folder) / "credentials.csv")
    memo = PollMemo()
    last: dict[str, list] = {}
    gc.freeze()
    gc.set_threshold(*RUN_GC_THRESHOLDS)

    def play(item) -> tuple:
        _, number, values, now = item
        spec = SessionSpec(*values)
        kind_of = ImapSession if spec.protocol == "imap" else Pop3Session
        user = spec.user

        def make_session():
            return kind_of(backend, directory, now_fn=lambda: now)

        outcome = memo.play(spec, make_session, states[spec.user_index],
                            lambda: backend.signature(user))
        commands = outcome.commands
        if last.get(user) is commands:
            commands = None
        else:
            last[user] = commands
        return ("o", number, commands, outcome.failure, outcome.messages_read,
                outcome.bytes_fetched)

    def index(item) -> None:
        _, user, filename, now, parsed = item
        work = index_delivery(store_root, user, filename, b"", now,
                              parsed=parsed)
        booked = delivery_work(store_root, user, filename, parsed)
        if work != booked:
            raise RuntimeError(
                f"the delivery of {filename} to {user} did work {work}, "
                f"the simulation booked {booked}")

    queue: deque = deque()
    """The items to do, in the order they came (each user's in order)."""
    answers: list = []
    urgent: list[int] = []

    def take(items: list) -> None:
        for item in items:
            if item[0] == "u":
                urgent.append(item[1])
            else:
                queue.append(item)

    def hurry(number: int) -> None:
        """Do session *number* now, after its user's items queued before it
        (other users' wait: no item depends on another user's)."""
        at = next((k for k, item in enumerate(queue)
                   if item[0] == "p" and item[1] == number), None)
        if at is None:
            return  # done already
        user = queue[at][2][_USER]
        mine = [k for k in range(at) if _user_of(queue[k]) == user]
        for k in (*mine, at):
            mine_item = queue[k]
            if mine_item[0] == "p":
                answers.append(play(mine_item))
            else:
                index(mine_item)
        for k in reversed((*mine, at)):
            del queue[k]

    take(items)
    while True:
        if urgent:
            for number in urgent:
                hurry(number)
            urgent.clear()
            _write(out, answers)
            answers = []
        if not queue:
            if answers:
                _write(out, answers)
                answers = []
            items = source.wait()
            if items is None:
                return  # the parent ended without the end (it failed)
            take(items)
            continue
        item = queue.popleft()
        kind = item[0]
        if kind == "p":
            answers.append(play(item))
            if len(answers) >= ANSWERS_EVERY:
                _write(out, answers)
                answers = []
        elif kind == "d":
            index(item)
        else:
            answers.append(("done", memo.hits, memo.misses))
            _write(out, answers)
            return
        take(source.poll())
