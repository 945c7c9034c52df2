"""Users reading mail inside the twin: real IMAP/POP3 sessions, mbox vs maildir."""

import mailbox
from pathlib import Path

import pytest

from twin.scenario import load_scenario
from twin.sim.run import run_scenario

ROOT = Path(__file__).parent.parent / "scenarios"
READING = [
    "duration=14h",
    "warmup=8h",
    "traffic.users.inboxes=30",
    "access={mailbox_scale: 0.01}",
    "output.batches=5",
    # the reading load, without the 2007 gateway's content filters
    "pipeline.spf=null",
    "pipeline.antivirus=null",
    "pipeline.spamfilter=null",
    "pipeline.ocr=null",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("access")
    return {
        name: run_scenario(
            load_scenario(ROOT / f"{name}.yaml", READING), folder / name, quiet=True
        )
        for name in ("ece-2004-sun", "ece-2007-dell")
    }


def test_sessions_run_without_failures_on_both_stores(runs):
    sun, dell = runs["ece-2004-sun"].summary, runs["ece-2007-dell"].summary
    assert sun["access.sessions"] == dell["access.sessions"] > 100
    assert sun["access.failures"] == dell["access.failures"] == 0
    assert sun["messages.lost"] == dell["messages.lost"] == 0
    assert sun["access.messages_read"] > 0 and dell["access.bytes_fetched"] > 0


def test_cyrus_indexes_are_in_step_after_a_run(runs):
    """``settle_store``: the indexes note the simulated end as their
    directories' mtime, which the directories get, not the host's clock (so
    they repeat run to run: ``test_reading_load_is_deterministic``), and a
    backend opened on the store afterwards (``twin serve``) finds each in
    step with its directories, rescanning none."""
    import os

    from twin.access.cyrusstore import HEADER, CyrusBackend

    first = runs["ece-2007-dell"].path / "store"
    indexes = sorted(first.glob("*/Maildir/cyrus.index")) + sorted(
        first.glob("*/Maildir/.*/cyrus.index"))
    assert len(indexes) > 30  # every INBOX, and folders sessions moved mail to
    notes = set()
    for path in indexes:
        *_, new, cur = HEADER.unpack_from(path.read_bytes())
        folder = path.parent
        assert (new, cur) == (os.stat(folder / "new").st_mtime_ns,
                              os.stat(folder / "cur").st_mtime_ns)
        notes.add(new)
    assert len(notes) == 1  # the simulated end
    backend = CyrusBackend(first)  # as twin serve opens it: not a sole writer
    for path in indexes[:10]:
        user = path.relative_to(first).parts[0]
        mailbox, work = backend.open(user, "INBOX", True, 0.0)
        mailbox.close()
        # the index read, no directory listed (a rescan) and no message read
        assert work.dir_entries_scanned == 0, user
        assert {key.rsplit("/", 1)[-1] for key, _ in work.reads} <= {
            "cyrus.index"}, user
    assert backend.index_counts["read"] == 10


def test_uw_imap_on_mbox_costs_more_than_cyrus_on_maildir(runs):
    """UW IMAP parses the whole mbox at SELECT; Cyrus reads its index."""
    sun, dell = runs["ece-2004-sun"].summary, runs["ece-2007-dell"].summary
    assert sun["latency.imap.select.p95"] > 5 * dell["latency.imap.select.p95"]
    assert sun["cpu.mail.imap.seconds"] > 20 * dell["cpu.mail.imap.seconds"]


def test_stores_stay_readable_after_the_sessions(runs):
    store = runs["ece-2007-dell"].path / "store"
    users = [p for p in store.iterdir() if p.is_dir() and (p / "Maildir").is_dir()]
    assert len(users) == 30
    for user in users[:10]:
        box = mailbox.Maildir(user / "Maildir", factory=None, create=False)
        for key in list(box.keys())[:20]:
            assert box.get_bytes(key)
    store = runs["ece-2004-sun"].path / "store"
    spools = [p for p in store.iterdir() if p.is_file() and not p.name.startswith(".")]
    for spool in spools[:10]:
        assert len(mailbox.mbox(spool, create=False)) >= 0


def test_reading_load_is_deterministic(runs, tmp_path, monkeypatch):
    """Same seed, same bytes: nothing of the host (pids, mtimes) leaks in.

    The second run also plays every poll the memo replays and checks that the
    replay is what the real session answers."""
    import twin.sim.access as access
    from twin.traffic.client import PollMemo

    memos = []

    def verifying():
        memos.append(PollMemo(verify=True))
        return memos[-1]

    monkeypatch.setattr(access, "PollMemo", verifying)
    again = run_scenario(
        load_scenario(ROOT / "ece-2007-dell.yaml", READING),
        tmp_path / "again",
        quiet=True,
    )
    first = runs["ece-2007-dell"].path
    for name in ("summary.json", "jobs.parquet", "resources.parquet"):
        assert (first / name).read_bytes() == (again.path / name).read_bytes(), name
    assert len(memos) == 1 and memos[0].hits > 20
    # every file of the run folder, the store's indexes included, but the
    # manifest (wall times)
    files = sorted(path.relative_to(first) for path in first.rglob("*")
                   if path.is_file())
    assert sorted(path.relative_to(again.path) for path in again.path.rglob("*")
                  if path.is_file()) == files
    assert sum(path.name == "cyrus.index" for path in files) >= 30
    for relative in files:
        if relative.name != "manifest.json":
            assert (first / relative).read_bytes() == (
                again.path / relative).read_bytes(), relative


def test_a_delivery_tells_the_writer_when_its_user_reads_next(tmp_path, monkeypatch):
    """The writer may gather a delivery until shortly before its user's next
    session (``AccessLoad.delivered``): the time it is given is that
    session's start when the session is among those drawn ahead, else the
    time before which every session is drawn -- never later than it."""
    import twin.sim.access as access

    touched, played = [], []
    session = access.AccessLoad._session

    def playing(self, spec):
        played.append((spec.user, self.env.now))
        session(self, spec)

    def recording(load):
        kind = type(load.files)
        touch = kind.touch

        def noting(files, key, due=None):
            touched.append((len(played), key, load.env.now, due,
                            load._drawn_until))
            touch(files, key, due)

        monkeypatch.setattr(kind, "touch", noting)

    start = access.AccessLoad.start

    def starting(self, epoch_s):
        recording(self)  # after populate, which touches every mailbox at once
        start(self, epoch_s)

    monkeypatch.setattr(access.AccessLoad, "_session", playing)
    monkeypatch.setattr(access.AccessLoad, "start", starting)
    run_scenario(load_scenario(ROOT / "ece-2007-dell.yaml", READING),
                 tmp_path / "run", quiet=True)
    assert len(touched) > 20
    exact = 0
    for done, user, now, due, drawn in touched:
        assert due is not None and due >= now and drawn >= now
        later = [at for who, at in played[done:] if who == user]
        if later and later[0] < drawn:
            assert due == later[0]
            exact += 1
        else:
            assert due == drawn and (not later or due <= later[0])
    assert exact > 5
