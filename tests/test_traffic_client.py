"""Scripted clients against the real in-process IMAP and POP3 sessions."""

import dataclasses
import mailbox

import numpy as np
import pytest

from twin.access.cyrusstore import CyrusBackend, index_delivery
from twin.access.imap import ImapSession
from twin.access.mboxstore import MboxBackend
from twin.access.pop3 import Pop3Session
from twin.stages.maildir import MaildirSettings, MaildirStore
from twin.stages.mbox import MboxSettings, MboxStore
from twin.traffic.client import (
    COMMAND_CLASSES,
    ClientState,
    ImapClient,
    PollMemo,
    run_session,
    uid_set,
)
from twin.traffic.mailboxes import populate
from twin.traffic.population import Population, PopulationSettings
from twin.traffic.users import ReadingSettings, SessionSpec, session_arrivals

FORMATS = ["maildir", "mbox"]
EPOCH = 1173052800.0
BODY = (b"From: Ann Lee <ann@example.org>\r\nTo: %s@ece.example.edu\r\n"
        b"Subject: note %d\r\nDate: Mon, 5 Mar 2007 09:00:00 +0000\r\n"
        b"Message-ID: <%d@example.org>\r\n\r\nline one\r\nFrom here on\r\n"
        b".a dot line\r\n")


@pytest.fixture(scope="module")
def population():
    return Population(PopulationSettings(users=3), np.random.default_rng(1))


class Directory:
    def __init__(self, population):
        self.population = population

    def authenticate(self, user, password):
        index = self.population.user_index(user)
        return index is not None and self.population.passwords[index] == password


class Store:
    """A store written by the delivery stages, served by the matching backend."""

    def __init__(self, root, fmt, population):
        self.root, self.fmt, self.population = root, fmt, population
        self.directory = Directory(population)
        if fmt == "maildir":
            self.delivery = MaildirStore(root, MaildirSettings())
            self.backend = CyrusBackend(root)
        else:
            self.delivery = MboxStore(root, MboxSettings())
            self.backend = MboxBackend(root)
        self.serial = 0

    def deliver(self, user, count, now=100.0):
        for _ in range(count):
            self.serial += 1
            message = BODY % (user.encode(), self.serial, self.serial)
            if self.fmt == "maildir":
                self.delivery.deliver(user, message, now, f"P1Q{self.serial}")
            else:
                self.delivery.deliver(user, message, now, "ann@example.org")

    def session(self, protocol):
        kind = ImapSession if protocol == "imap" else Pop3Session
        return kind(self.backend, self.directory, now_fn=lambda: EPOCH + 500.0)

    def inbox(self, user):
        if self.fmt == "maildir":
            return mailbox.Maildir(self.root / user / "Maildir", create=False)
        return mailbox.mbox(self.root / user, create=False)

    def folder(self, user, name):
        if self.fmt == "maildir":
            return mailbox.Maildir(self.root / user / "Maildir" / f".{name}",
                                   create=False)
        return mailbox.mbox(self.root / f"{user}.folders" / name, create=False)


def spec(population, protocol="imap", kind="poll", session_id=1, user=0, **shares):
    values = {"read_share": 1.0, "backlog_share": 0.0, "delete_share": 0.0,
              "move_share": 0.0, "keep_on_server": False}
    values.update(shares)
    return SessionSpec(session_id, population.usernames[user],
                       population.passwords[user], protocol, 100.0, kind, 0.0,
                       values["read_share"], values["backlog_share"],
                       values["delete_share"], values["move_share"],
                       values["keep_on_server"], "Archive", user)


@pytest.fixture(params=FORMATS)
def store(request, tmp_path, population):
    return Store(tmp_path / "store", request.param, population)


def names(outcome):
    return [name for name, _ in outcome.commands]


def test_first_poll_reads_everything_and_deletes_it(store, population):
    user = population.usernames[0]
    store.deliver(user, 3)
    outcome = run_session(spec(population, delete_share=1.0),
                          store.session("imap"))
    assert outcome.failure == ""
    assert names(outcome) == (["connect", "login", "select", "fetch_headers"]
                              + ["fetch_body", "store"] * 3
                              + ["store", "expunge", "logout"])
    assert set(names(outcome)) <= set(COMMAND_CLASSES)
    assert (outcome.messages_new, outcome.messages_read, outcome.deleted,
            outcome.moved) == (3, 3, 3, 0)
    assert len(store.inbox(user)) == 0
    total = outcome.total_work()
    assert total.net_round_trips == len(outcome.commands)
    assert total.net_bytes == outcome.bytes_sent + outcome.bytes_received
    assert total.cpu["imap.command"] == len(outcome.commands) - 1  # not connect
    assert total.cpu["imap.auth"] == 1
    # Bodies are CRLF on the wire: each message's CRLF size, plus header literals.
    crlf = len(BODY % (user.encode(), 1, 1))
    assert outcome.bytes_fetched > 3 * crlf


def test_moves_land_in_the_folder_created_on_trycreate(store, population):
    user = population.usernames[1]
    store.deliver(user, 4)
    outcome = run_session(spec(population, user=1, move_share=1.0),
                          store.session("imap"))
    assert outcome.failure == "" and outcome.moved == 4 and outcome.deleted == 0
    assert names(outcome)[-6:] == ["copy", "create", "copy", "store", "expunge",
                                   "logout"]
    assert len(store.inbox(user)) == 0
    folder = store.folder(user, "Archive")
    subjects = sorted(m["Subject"] for m in folder)
    assert subjects == [f"note {i}" for i in range(1, 5)]
    # The next move finds the folder and copies at once.
    store.deliver(user, 1)
    again = run_session(spec(population, user=1, session_id=2, move_share=1.0),
                        store.session("imap"))
    assert "create" not in names(again) and again.moved == 1
    assert len(store.folder(user, "Archive")) == 5


def test_reading_sets_seen_and_state_skips_known_mail(store, population):
    user = population.usernames[0]
    store.deliver(user, 3)
    state = ClientState()
    first = run_session(spec(population), store.session("imap"), state=state)
    assert first.messages_read == 3 and state.last_uid == 3 and state.uidvalidity
    box = store.inbox(user)
    flags = sorted(m.get_flags() for m in box)
    assert flags == (["S"] * 3 if store.fmt == "maildir" else ["RO"] * 3)
    # Nothing new: flags of known mail only, no header or body fetch.
    quiet = run_session(spec(population, session_id=2), store.session("imap"),
                        state=state)
    assert names(quiet) == ["connect", "login", "select", "fetch_flags", "logout"]
    assert quiet.messages_new == 0 and quiet.bytes_fetched == 0
    store.deliver(user, 2)
    later = run_session(spec(population, session_id=3, read_share=0.0),
                        store.session("imap"), state=state)
    assert names(later) == ["connect", "login", "select", "fetch_flags",
                            "fetch_headers", "logout"]
    assert later.messages_new == 2 and later.messages_read == 0
    assert state.last_uid == 5
    # Unread mail is read later from the backlog.
    backlog = run_session(spec(population, session_id=4, backlog_share=1.0),
                          store.session("imap"), state=state)
    assert backlog.messages_new == 0 and backlog.messages_read == 2
    assert all(("S" in m.get_flags()) if store.fmt == "maildir"
               else ("R" in m.get_flags()) for m in store.inbox(user))


def test_open_session_lists_and_flag_window_limits_the_fetch(store, population):
    user = population.usernames[2]
    store.deliver(user, 6)
    state = ClientState(known_messages=6)
    opened = dataclasses.replace(spec(population, user=2, kind="open"),
                                 flag_sync_messages=2)
    outcome = run_session(opened, store.session("imap"), state=state)
    assert names(outcome)[:5] == ["connect", "login", "list", "select",
                                  "fetch_flags"]
    # Known but unread (never flagged \Seen) and outside the window: not read.
    assert outcome.messages_new == 0 and outcome.messages_read == 0
    flag_work = dict(outcome.commands)["fetch_flags"]
    assert flag_work.cpu["imap.message"] == 2


def test_mixed_shares_account_for_every_message(store, population):
    user = population.usernames[0]
    store.deliver(user, 40)
    outcome = run_session(spec(population, read_share=0.7, delete_share=0.3,
                               move_share=0.3), store.session("imap"),
                          rng=np.random.default_rng(5))
    kept = len(store.inbox(user))
    moved = len(store.folder(user, "Archive")) if outcome.moved else 0
    assert 0 < outcome.messages_read < 40
    assert outcome.deleted > 0 and outcome.moved > 0
    assert kept == 40 - outcome.deleted - outcome.moved and moved == outcome.moved
    again = Store(store.root.parent / "again", store.fmt, population)
    again.deliver(user, 40)
    twin = run_session(spec(population, read_share=0.7, delete_share=0.3,
                            move_share=0.3), again.session("imap"),
                       rng=np.random.default_rng(5))
    assert (twin.messages_read, twin.deleted, twin.moved) == (
        outcome.messages_read, outcome.deleted, outcome.moved)


def test_hash_decisions_are_the_same_on_both_backends(tmp_path, population):
    user = population.usernames[0]
    results = []
    for fmt in FORMATS:
        store = Store(tmp_path / fmt, fmt, population)
        store.deliver(user, 30)
        outcome = run_session(spec(population, session_id=77, read_share=0.5,
                                   delete_share=0.4, move_share=0.2),
                              store.session("imap"))
        results.append((names(outcome), outcome.messages_read, outcome.deleted,
                        outcome.moved))
    assert results[0] == results[1]
    assert 0 < results[0][1] < 30


def test_idle_client_wakes_for_new_mail(store, population):
    user = population.usernames[0]
    store.deliver(user, 1)
    session = store.session("imap")
    client = ImapClient(spec(population, kind="idle", read_share=0.0), session)
    assert client.start() and client.idling
    assert client.wake() is False  # nothing new yet
    store.deliver(user, 2, now=200.0)
    assert client.wake() is True and client.idling
    outcome = client.finish()
    assert outcome.failure == "" and outcome.messages_new == 3
    assert names(outcome) == ["connect", "login", "select", "fetch_headers", "idle",
                              "idle_poll", "idle_poll", "idle", "fetch_headers",
                              "idle", "idle", "logout"]
    assert session.closed


def test_pop3_downloads_and_deletes(store, population):
    user = population.usernames[1]
    store.deliver(user, 3)
    probe = store.session("pop3")
    probe.feed(b"USER %s\r\nPASS %s\r\n" % (user.encode(),
                                                population.passwords[1].encode()))
    listing = probe.feed(b"LIST\r\n").split(b"\r\n")[1:-2]
    probe.feed(b"QUIT\r\n")
    sizes = [int(line.split()[1]) for line in listing]
    outcome = run_session(spec(population, protocol="pop3", user=1),
                          store.session("pop3"))
    assert outcome.failure == ""
    assert names(outcome) == (["connect", "login", "login", "stat", "uidl"]
                              + ["retr"] * 3 + ["dele"] * 3 + ["logout"])
    assert (outcome.messages_new, outcome.messages_read, outcome.deleted) == (3, 3, 3)
    assert len(sizes) == 3 and outcome.bytes_fetched == sum(sizes)
    assert len(store.inbox(user)) == 0
    total = outcome.total_work()
    assert total.cpu["pop3.auth"] == 1 and total.cpu["pop3.command"] == 11


def test_pop3_keep_on_server_fetches_only_new_mail(store, population):
    user = population.usernames[2]
    store.deliver(user, 2)
    state = ClientState()
    keep = spec(population, protocol="pop3", user=2, keep_on_server=True)
    first = run_session(keep, store.session("pop3"), state=state)
    assert first.messages_read == 2 and first.deleted == 0
    assert len(store.inbox(user)) == 2
    store.deliver(user, 1)
    second = run_session(dataclasses.replace(keep, session_id=2),
                         store.session("pop3"), state=state)
    assert second.messages_new == 1 and names(second).count("retr") == 1
    assert len(store.inbox(user)) == 3 and len(state.pop3_seen) == 3


def test_pop3_known_messages_count_as_downloaded(store, population):
    user = population.usernames[2]
    store.deliver(user, 4)
    state = ClientState(known_messages=3)
    keep = spec(population, protocol="pop3", user=2, keep_on_server=True)
    outcome = run_session(keep, store.session("pop3"), state=state)
    assert outcome.messages_new == 1 and names(outcome).count("retr") == 1


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_wrong_password_fails_cleanly(store, population, protocol):
    bad = dataclasses.replace(spec(population, protocol=protocol), password="nope")
    outcome = run_session(bad, store.session(protocol))
    assert "login" in outcome.failure and outcome.messages_read == 0
    assert names(outcome)[-1] == "logout"


def test_protocol_mismatch_raises(store, population):
    with pytest.raises(ValueError, match="pop3"):
        run_session(spec(population, protocol="pop3"), store.session("imap"))


def test_uid_set_is_compact():
    assert uid_set([1, 2, 3, 7, 9, 10]) == b"1:3,7,9:10"
    assert uid_set([5]) == b"5"


@pytest.mark.parametrize("fmt", FORMATS)
def test_generated_sessions_run_against_populated_stores(tmp_path, fmt):
    population = Population(PopulationSettings(users=6), np.random.default_rng(2))
    settings = ReadingSettings(mailbox_scale=0.01, all_day_share=1.0,
                               idle_share=0.0)
    stats = populate(tmp_path, fmt, population, settings, np.random.default_rng(3))
    states = [ClientState(k) for k in stats.known_messages]
    store = Store(tmp_path, fmt, population)
    counts = {}
    for i, item in enumerate(session_arrivals(settings, population, 3 * 3600.0,
                                              np.random.default_rng(4))):
        if i % 5 == 0:
            store.deliver(item.user, 1, now=item.start_s)
        outcome = run_session(item, store.session(item.protocol),
                              state=states[item.user_index])
        assert outcome.failure == ""
        for name, _ in outcome.commands:
            counts[name] = counts.get(name, 0) + 1
    assert counts["login"] >= 6 * 6 and counts["logout"] >= 6 * 6
    for i, user in enumerate(population.usernames):
        assert len(store.inbox(user)) <= stats.per_user_messages[i] + 20


@pytest.mark.parametrize("protocol,keep,sole", [
    ("imap", False, False), ("pop3", True, False), ("pop3", False, False),
    ("imap", False, True), ("pop3", False, True)])
def test_poll_memo_replays_quiet_polls_exactly(tmp_path, population, protocol,
                                               keep, sole):
    """Polls that changed nothing are replayed; every outcome is what a real
    session gives (verify=True plays each replay too), in step with a twin
    store served without the memo (and, with *sole*, the memo's backend
    tells changes by its generation alone)."""
    user = population.usernames[0]
    stores = [Store(tmp_path / name, "maildir", population)
              for name in ("memo", "plain")]
    stores[0].backend = CyrusBackend(stores[0].root, sole_writer=sole)
    memo = PollMemo(verify=True)
    states = [ClientState(), ClientState()]
    got = ([], [])
    for sid in range(1, 61):
        if sid % 9 == 1:  # mail arrives, indexed as the delivery agent does
            for store in stores:
                store.serial += 1
                message = BODY % (user.encode(), store.serial, store.serial)
                done = store.delivery.deliver(user, message, 100.0 + sid,
                                              f"P1Q{store.serial}")
                index_delivery(store.root, user, done.key.split("/Maildir/", 1)[1],
                               message, EPOCH + sid)
        poll = spec(population, protocol, session_id=sid, read_share=0.5,
                    backlog_share=0.3, delete_share=0.3, keep_on_server=keep)
        memo_store, plain = stores
        got[0].append(memo.play(poll, lambda s=memo_store: s.session(protocol),
                                states[0],
                                lambda s=memo_store: s.backend.signature(user)))
        got[1].append(run_session(poll, plain.session(protocol), state=states[1]))
    assert got[0] == got[1]
    assert (states[0].last_uid, states[0].pop3_seen) == (
        states[1].last_uid, states[1].pop3_seen)
    assert memo.hits >= 15 and memo.misses >= 6
    assert sum(o.messages_read for o in got[0]) >= 6
    # not memoized: other kinds, and a store without a signature
    for kind in ("open", "idle"):
        before = memo.hits + memo.misses
        memo.play(spec(population, "imap", kind, session_id=99),
                  lambda s=stores[0]: s.session("imap"), ClientState(),
                  lambda: ("x",))
        assert memo.hits + memo.misses == before
    assert MboxBackend(tmp_path).signature(user) is None
