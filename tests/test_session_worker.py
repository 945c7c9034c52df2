"""The users' sessions played ahead of the clock in a worker process.

Where the store is Cyrus on maildir and the front runs apart, a worker
process owns the Cyrus side of the store and plays each session as soon as
nothing can change its user's mailbox before it starts
(``twin.sim.sessions``). These tests hold it to the results of playing the
sessions in the simulation's own process, file for file, and check that the
sessions did go ahead.
"""

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from twin.access.cyrusstore import (
    CyrusBackend,
    delivery_parse,
    delivery_work,
    index_delivery,
)
from twin.errors import TwinError
from twin.scenario import load_scenario
from twin.sim import access, sessions
from twin.sim.run import run_scenario

ROOT = Path(__file__).parent.parent / "scenarios"
READING = [
    "duration=10h",
    "warmup=1h",
    "traffic.users.inboxes=150",
    "access={mailbox_scale: 0.01}",
    "output.sample_interval=10m",
    "output.batches=5",
    "pipeline.spf=null",
    "pipeline.antivirus=null",
    "pipeline.spamfilter=null",
    "pipeline.ocr=null",
]


def files(folder: Path) -> dict[str, str]:
    """Relative path -> digest of every file of a run but its manifest."""
    return {
        path.relative_to(folder).as_posix():
            hashlib.sha256(path.read_bytes()).hexdigest()
        for path in folder.rglob("*")
        if path.is_file() and path.name != "manifest.json"
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The reading run with its sessions here and in the worker, the front
    in a child (hand-overs read as the run goes) and in process (all read
    at once, so every session that may go goes a minute ahead); and in the
    worker with the blocked sessions looked at again at every session's
    start ("rescan"), not only when one may have become free to go."""
    scenario = load_scenario(ROOT / "ece-2007-dell.yaml", READING)
    done, counts, blocked = {}, {}, {}
    finish = sessions.SessionWorker.finish
    begin = access.AccessLoad._begin

    def counting(self):
        counts[mode] = (self.sent, self.waited, self.unasked)
        return finish(self)

    def rescanning(self, now):
        blocked[mode] = max(blocked.get(mode, 0), len(self._blocked))
        if mode == "rescan":
            self._recheck = True
        return begin(self, now)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sessions.SessionWorker, "finish", counting)
        patch.setattr(access.AccessLoad, "_begin", rescanning)
        for mode, front, where in (("here", "child", "inline"),
                                   ("worker", "child", "worker"),
                                   ("worker-inline-front", "inline", "worker"),
                                   ("rescan", "child", "worker")):
            patch.setenv("MAILTWIN_FRONT", front)
            patch.setenv("MAILTWIN_SESSIONS", where)
            folder = tmp_path_factory.mktemp(mode) / "run"
            done[mode] = run_scenario(scenario, folder, quiet=True)
    return done, counts, blocked


@pytest.mark.parametrize("mode", ["worker", "worker-inline-front", "rescan"])
def test_sessions_in_the_worker_give_the_same_results(runs, mode):
    done, counts, _ = runs
    here, apart = done["here"], done[mode]
    assert apart.summary == here.summary
    assert here.summary["access.sessions"] > 1000
    assert here.summary["access.messages_read"] > 100
    for table in ("jobs.parquet", "resources.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(here.path / table),
                                      pd.read_parquet(apart.path / table))
    left, right = files(here.path), files(apart.path)
    assert sum("/Maildir/" in name for name in left) > 500
    assert any(name.endswith("cyrus.index") for name in left)
    assert left == right
    # every session went through the worker, nearly all of them ahead
    sent, waited, _ = counts[mode]
    assert "here" not in counts
    assert sent == here.summary["access.sessions"]
    assert waited < 0.05 * sent
    # outcomes not read when needed that had come were taken without asking
    # (how many depends on the host's timing; over three runs, some)
    assert sum(count[2] for count in counts.values()) > 0


def test_blocked_sessions_go_as_early_as_a_rescan_at_every_start_sends_them(runs):
    # a blocked session is looked at again only when a message naming its
    # user leaves or the user's session before it goes: no other change
    # can free it, so it goes at the same start as when every start looks
    _, counts, blocked = runs
    assert blocked["worker"] > 0 and blocked["rescan"] > 0
    assert counts["worker"][:2] == counts["rescan"][:2]


def test_a_delivery_is_booked_with_the_work_of_the_real_index_update(tmp_path):
    backend = CyrusBackend(tmp_path, host_fsync=False, sole_writer=True)
    mailbox, _ = backend.open("ann", "INBOX", readonly=False, now=1e9)
    mailbox.close()
    message = (b"From: bob@example.org\nTo: ann@example.edu\nSubject: hi\n"
               b"Content-Type: text/plain\n\nhello\n")
    name = "new/1000000001.M1.host"
    (tmp_path / "ann" / "Maildir" / name).write_bytes(message)
    parsed = delivery_parse(message)
    booked = delivery_work(tmp_path, "ann", name, parsed)
    assert booked.cpu["cyrus.parse_byte"] == parsed[0]
    assert index_delivery(tmp_path, "ann", name, message, 1e9 + 1,
                          parsed=parsed) == booked


def test_a_failed_worker_ends_the_run_with_its_last_words(tmp_path, monkeypatch):
    monkeypatch.setattr(sessions, "SESSIONS_CODE",
                        "raise SystemExit('session worker broke')")
    monkeypatch.setenv("MAILTWIN_FRONT", "child")
    monkeypatch.setenv("MAILTWIN_SESSIONS", "worker")
    scenario = load_scenario(ROOT / "ece-2007-dell.yaml", READING)
    with pytest.raises(TwinError, match="session worker broke"):
        run_scenario(scenario, tmp_path / "run", quiet=True)


def test_the_worker_reads_whole_frames_as_they_come():
    import os
    import pickle

    read, write = os.pipe()
    frames = sessions._Frames(read)

    def frame(items):
        data = pickle.dumps(items)
        return sessions.FRAME_HEAD.pack(len(data)) + data

    assert frames.poll() == []  # nothing came: no wait
    first, second = frame([("p", 1), ("p", 2)]), frame([("u", 2)])
    os.write(write, first + second[:5])  # a frame and a piece of the next
    assert frames.poll() == [("p", 1), ("p", 2)]
    assert frames.poll() == []  # the piece waits for the rest
    os.write(write, second[5:])
    assert frames.wait() == [("u", 2)]
    os.write(write, frame([("e",)]) + frame([("d", "ann")]))
    assert frames.wait() == [("e",), ("d", "ann")]  # both at once
    os.close(write)
    assert frames.wait() is None  # the parent ended
    os.close(read)


def test_each_item_names_its_user():
    spec_values = ("x",) * sessions._USER + ("bob",)
    assert sessions._user_of(("p", 7, spec_values, 0.0)) == "bob"
    assert sessions._user_of(("d", "cy", "name", 0.0, ())) == "cy"
    assert sessions._user_of(("e",)) is None


def test_the_manifest_says_what_the_simulation_waited_for(runs):
    # host seconds, for whoever asks where the wall time went; never a result
    done, _, _ = runs
    waits = done["worker"].manifest["waited_seconds"]
    assert set(waits) == {"front", "writer", "session_worker"}
    assert all(isinstance(s, float) and s >= 0 for s in waits.values())
    assert waits["session_worker"] > 0  # some outcome was not there yet
    assert done["worker"].manifest["wall_seconds"] >= max(waits.values())
    assert set(done["here"].manifest["waited_seconds"]) == {"front", "writer"}
    assert set(done["worker-inline-front"].manifest["waited_seconds"]) == {
        "writer", "session_worker"}
