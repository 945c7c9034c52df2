"""Cyrus opens mark only the records after the last open's threshold recent.

``CyrusBackend._open`` used to set every record's \\Recent flag at each open;
it now marks only the records after the threshold of the last open of the
same records. These tests hold every open to the full marking: after each,
every message is recent exactly when its UID is above the index's recent
UID as it was at the open.
"""

import numpy as np
import pytest

from twin.access.cyrusstore import CyrusBackend, index_delivery
from twin.access.imap import ImapSession
from twin.access.pop3 import Pop3Session
from twin.stages.maildir import MaildirSettings, MaildirStore
from twin.traffic.client import ClientState, run_session
from twin.traffic.population import Population, PopulationSettings
from twin.traffic.users import SessionSpec

EPOCH = 1173052800.0


class _Directory:
    def __init__(self, population):
        self.population = population

    def authenticate(self, user, password):
        index = self.population.user_index(user)
        return index is not None and self.population.passwords[index] == password


@pytest.fixture
def checked_opens(monkeypatch):
    """Every open of a Cyrus mailbox, checked against the full marking."""
    opens = []
    original = CyrusBackend._open

    def _open(self, user, name, readonly, now, *args, **kwargs):
        threshold = None
        mailbox, work = original(self, user, name, readonly, now, *args, **kwargs)
        index = mailbox._index
        # the threshold the open marked by: the index's recent UID before a
        # read-write open moved it to the newest message
        threshold = index.recent_marked[0]
        wrong = [r.info.uid for r in index.records
                 if r.info.recent != (r.info.uid > threshold)]
        opens.append((user, name, readonly, len(index.records), wrong))
        return mailbox, work

    monkeypatch.setattr(CyrusBackend, "_open", _open)
    return opens


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_every_open_marks_recent_as_the_full_pass(tmp_path, checked_opens, seed):
    rng = np.random.default_rng(seed)
    population = Population(PopulationSettings(users=2), np.random.default_rng(seed))
    delivery = MaildirStore(tmp_path, MaildirSettings())
    backend = CyrusBackend(tmp_path, host_fsync=False, sole_writer=True)
    directory = _Directory(population)
    states = [ClientState(), ClientState()]
    serial = session_id = 0
    for rnd in range(25):
        for user in range(2):
            name = population.usernames[user]
            for _ in range(int(rng.integers(0, 4))):
                serial += 1
                data = (b"From: a@b\r\nTo: %s@x\r\nSubject: s%d\r\n\r\nbody %d\r\n"
                        % (name.encode(), serial, serial))
                done = delivery.deliver(name, data, 10.0 * rnd, f"Q{serial}")
                index_delivery(tmp_path, name, done.key.split("/Maildir/", 1)[1],
                               data, EPOCH + rnd)
            protocol = "pop3" if rng.random() < 0.2 else "imap"
            kind = "open" if rng.random() < 0.2 else "poll"
            session_id += 1
            spec = SessionSpec(session_id, name, population.passwords[user],
                               protocol, 10.0 * rnd, kind, 0.0,
                               float(rng.random()), float(rng.random() * 0.3),
                               float(rng.random() * 0.5), float(rng.random() * 0.3),
                               bool(rng.random() < 0.5), "Archive", user)
            session_kind = ImapSession if protocol == "imap" else Pop3Session
            session = session_kind(backend, directory,
                                   now_fn=lambda rnd=rnd: EPOCH + 10.0 * rnd)
            outcome = run_session(spec, session, state=states[user])
            assert not outcome.failure
            if rng.random() < 0.3:  # now and then a client that only looks
                mailbox, _ = backend.open(name, "INBOX", True, EPOCH + rnd)
                mailbox.close()
    assert len(checked_opens) > 40
    assert any(count > 5 for _, _, _, count, _ in checked_opens)
    assert [o for o in checked_opens if o[4]] == []


def test_recent_messages_are_those_delivered_since_the_last_select(tmp_path,
                                                                    checked_opens):
    """The flag as a client sees it: new mail is recent at the first
    read-write open after it arrived, and only then."""
    delivery = MaildirStore(tmp_path, MaildirSettings())
    backend = CyrusBackend(tmp_path, host_fsync=False, sole_writer=True)
    recent_seen = []
    for rnd, count in enumerate([3, 0, 2, 0, 0, 4]):
        for k in range(count):
            data = b"Subject: %d.%d\r\n\r\nx\r\n" % (rnd, k)
            done = delivery.deliver("bob", data, float(rnd), f"Q{rnd}-{k}")
            index_delivery(tmp_path, "bob", done.key.split("/Maildir/", 1)[1],
                           data, EPOCH + rnd)
        mailbox, _ = backend.open("bob", "INBOX", False, EPOCH + rnd)
        recent_seen.append(sum(1 for m in mailbox.messages if m.recent))
        mailbox.close()
    assert recent_seen == [3, 0, 2, 0, 0, 4]
    assert [o for o in checked_opens if o[4]] == []
