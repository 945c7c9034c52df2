"""populate(files=...): the message files written by a writer process.

The same files (names, bytes), the same Cyrus indexes and the same draws as
writing them at once; the index's note of the directories' mtimes is true
once the writer is done; a reader that calls ``ready(user)`` finds the files.
"""

import mailbox
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from twin.access.cyrusstore import HEADER, CyrusBackend, StoreError
from twin.sim.writer import FileWriter, start_writer
from twin.stages.fileops import DIRECT, Files
from twin.stages.maildir import MaildirSettings, maildir_path
from twin.traffic import mailboxes
from twin.traffic.mailboxes import populate
from twin.traffic.population import Population, PopulationSettings
from twin.traffic.users import ReadingSettings, draw_profiles

SCALE = 0.05
SETTINGS = ReadingSettings(mailbox_scale=SCALE, message_size_median_bytes=20_000)
EPOCH_S = MaildirSettings().epoch_offset_s
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def population():
    return Population(PopulationSettings(users=10), np.random.default_rng(1))


@pytest.fixture(scope="module")
def profiles(population):
    return draw_profiles(SETTINGS, population, np.random.default_rng(2))


@pytest.fixture
def writer():
    files = start_writer()
    assert isinstance(files, FileWriter), "a writer process is needed here"
    yield files
    files.abandon()


def _tree(root):
    """Relative path -> bytes of every file under *root*; cyrus.index without
    its note of the directories' mtimes (bytes 32..48, the host's clock when
    written at once), which is returned apart, by folder."""
    files, notes = {}, {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                data = handle.read()
            relative = os.path.relpath(path, root)
            if name == "cyrus.index":
                notes[os.path.relpath(folder, root)] = HEADER.unpack_from(data)[-2:]
                data = data[:32] + data[48:]
            files[relative] = data
    return files, notes


def _populate(root, fmt, population, profiles, seed=5, **options):
    rng = np.random.default_rng(seed)
    stats = populate(root, fmt, population, SETTINGS, rng, profiles=profiles,
                     **options)
    return stats, rng.random()  # the draw after populate: same order of draws


@pytest.mark.parametrize("host_fsync", [False, True])
def test_maildir_through_the_writer_is_the_same_store(tmp_path, population, profiles,
                                                      writer, host_fsync):
    at_once = _populate(tmp_path / "a", "maildir", population, profiles,
                        host_fsync=host_fsync)
    written = _populate(tmp_path / "b", "maildir", population, profiles,
                        host_fsync=host_fsync, files=writer)
    writer.sync()
    assert written == at_once  # stats and the next draw
    files_a, notes_a = _tree(tmp_path / "a")
    files_b, notes_b = _tree(tmp_path / "b")
    assert files_b == files_a
    stats = at_once[0]
    assert stats.messages > 20 and stats.indexed
    assert sum(name.endswith("cyrus.index") for name in files_b) == len(population)
    assert sum("/cur/" in name for name in files_b) == stats.messages
    # the index notes the epoch as the mtime of new/ and cur/, and the
    # writer left them so; written at once too
    epoch_ns = EPOCH_S * 1_000_000_000
    assert set(notes_b.values()) == set(notes_a.values()) == {(epoch_ns, epoch_ns)}
    for folder, note in notes_b.items():
        inbox = tmp_path / "b" / folder
        assert (os.stat(inbox / "new").st_mtime_ns,
                os.stat(inbox / "cur").st_mtime_ns) == note
    for folder, note in notes_a.items():
        inbox = tmp_path / "a" / folder
        assert (os.stat(inbox / "new").st_mtime_ns,
                os.stat(inbox / "cur").st_mtime_ns) == note
    unread = 0
    for user, count in zip(population.usernames, stats.per_user_messages,
                           strict=True):
        box = mailbox.Maildir(maildir_path(tmp_path / "b", user), create=False)
        assert len(box) == count
        unread += sum("S" not in message.get_flags() for message in box)
    assert unread == stats.unread


@pytest.mark.parametrize("through_writer", [False, True])
def test_indexes_built_from_the_plan_are_the_same_store(tmp_path, population,
                                                        profiles, writer,
                                                        through_writer):
    """populate(defer_index=True) builds no index: the plan it hands over
    before writing a message builds them (in another process, as a session
    worker does), into the very files and mtimes of an eager populate."""
    eager = _populate(tmp_path / "a", "maildir", population, profiles,
                      host_fsync=False)
    handed = []
    options = {"files": writer} if through_writer else {}
    later = _populate(tmp_path / "b", "maildir", population, profiles,
                      host_fsync=False, defer_index=True,
                      on_plan=lambda plan, known: handed.append(
                          (plan, known, os.listdir(tmp_path / "b"))),
                      **options)
    assert later == eager  # the same stats and draws
    plan, known, listed = handed[0]
    assert len(handed) == 1 and later[0].index_plan is plan
    assert known == eager[0].known_messages
    assert ".format" in listed  # handed over before any message was written
    assert not any((tmp_path / "b").rglob("cyrus.index"))
    # built in a child process, from the plan alone (pickled as to a worker)
    code = ("import pickle, sys; from twin.traffic.mailboxes import build_indexes; "
            "build_indexes(pickle.loads(sys.stdin.buffer.read()))")
    subprocess.run([sys.executable, "-c", code], input=pickle.dumps(plan),
                   check=True, cwd=ROOT)
    if through_writer:
        writer.sync()
    assert _tree(tmp_path / "b") == _tree(tmp_path / "a")
    for user in population.usernames:
        inbox = maildir_path(tmp_path / "b", user)
        assert (os.stat(inbox / "new").st_mtime_ns, os.stat(inbox / "cur").st_mtime_ns
                ) == (EPOCH_S * 1_000_000_000,) * 2
    with pytest.raises(StoreError, match="has an index already"):
        mailboxes.build_indexes(plan)


class _Counting(Files):
    """Files done at once that count the creates asked of them and say the
    writer is behind (or not)."""

    def __init__(self, behind: bool) -> None:
        self.created = 0
        self._behind = behind

    def create(self, *args, **options) -> None:
        self.created += 1
        super().create(*args, **options)

    def behind(self) -> bool:
        return self._behind


def test_a_writer_behind_gets_no_more_mailboxes(tmp_path, population, profiles):
    """While the writer is behind, populate writes each mailbox itself
    instead of waiting; the store is the same."""
    at_once = _populate(tmp_path / "a", "maildir", population, profiles)
    sinks = {}
    for name, behind in (("b", True), ("c", False)):
        sinks[name] = _Counting(behind)
        assert _populate(tmp_path / name, "maildir", population, profiles,
                         files=sinks[name]) == at_once
        assert _tree(tmp_path / name) == _tree(tmp_path / "a")
    assert sinks["b"].created == 0
    assert 0 < sinks["c"].created < at_once[0].messages
    assert not DIRECT.behind()


def test_an_outside_reader_finds_the_index_in_step(tmp_path, population, profiles,
                                                   writer):
    """After the writer is done the directories' mtimes are what the index
    noted: a backend that checks them (not a sole writer) opens each INBOX
    with no rescan, the same Work as over the store written at once."""
    _populate(tmp_path / "a", "maildir", population, profiles, host_fsync=False)
    _populate(tmp_path / "b", "maildir", population, profiles, host_fsync=False,
              files=writer)
    writer.sync()
    works = {}
    for name in ("a", "b"):
        backend = CyrusBackend(tmp_path / name, host_fsync=False, sole_writer=False)
        works[name] = []
        for user in population.usernames:
            box, work = backend.open(user, "INBOX", True, float(EPOCH_S))
            assert work.dir_entries_scanned == 0 and not work.writes
            works[name].append((len(box.messages), work.reads[0][1]))
            box.close()
    assert works["b"] == works["a"]


def test_a_reader_that_waits_for_its_user_sees_the_files(tmp_path, population,
                                                         profiles, writer):
    writer.expect_readers()  # as the simulator does before populate
    stats, _ = _populate(tmp_path, "maildir", population, profiles,
                         host_fsync=False, files=writer)
    backend = CyrusBackend(tmp_path, host_fsync=False, sole_writer=True)
    for index in reversed(range(len(population))):
        user = population.usernames[index]
        writer.ready(user)
        inbox = maildir_path(tmp_path, user)
        assert len(os.listdir(inbox / "cur")) == stats.per_user_messages[index]
        box, _ = backend.open(user, "INBOX", True, float(EPOCH_S))
        assert len(box.messages) == stats.per_user_messages[index]
        for number, name in enumerate(sorted(os.listdir(inbox / "cur"))):
            text, _ = box.text(number)
            with open(inbox / "cur" / name, "rb") as handle:
                assert text == handle.read().replace(b"\n", b"\r\n")
        box.close()


def test_without_an_index_the_files_are_the_same(tmp_path, population, profiles,
                                                 writer):
    at_once = _populate(tmp_path / "a", "maildir", population, profiles,
                        index=False)
    written = _populate(tmp_path / "b", "maildir", population, profiles,
                        index=False, files=writer)
    writer.sync()
    assert written == at_once and not at_once[0].indexed
    assert _tree(tmp_path / "b")[0] == _tree(tmp_path / "a")[0]


def test_the_at_once_files_give_the_same_store(tmp_path, population, profiles):
    """``DIRECT`` (no writer process could start) goes the writer's way at once."""
    at_once = _populate(tmp_path / "a", "maildir", population, profiles,
                        host_fsync=False)
    direct = _populate(tmp_path / "b", "maildir", population, profiles,
                       host_fsync=False, files=DIRECT)
    assert direct == at_once
    files_b, notes_b = _tree(tmp_path / "b")
    assert files_b == _tree(tmp_path / "a")[0]
    epoch_ns = EPOCH_S * 1_000_000_000
    assert set(notes_b.values()) == {(epoch_ns, epoch_ns)}


def test_mbox_through_the_writer_is_the_same_store(tmp_path, population, profiles,
                                                   writer):
    at_once = _populate(tmp_path / "a", "mbox", population, profiles)
    written = _populate(tmp_path / "b", "mbox", population, profiles, files=writer)
    # synced by populate: the mbox delivery stage appends to them at once
    files_b = _tree(tmp_path / "b")[0]
    assert written == at_once
    assert files_b == _tree(tmp_path / "a")[0]
    assert len(files_b) == len(population) + 1  # the spool files and .format
    stats = at_once[0]
    for user, count in zip(population.usernames, stats.per_user_messages,
                           strict=True):
        assert len(mailbox.mbox(tmp_path / "b" / user, create=False)) == count


def test_a_spool_file_of_more_pieces_than_a_writev_takes(tmp_path, writer):
    """Over 1,024 pieces (a writev's limit) the file is written whole, through
    the writer and at once (fileops writes IOV_MAX pieces a call)."""
    count = 400  # 5 or 6 pieces a message
    sizes = [3_000 + 97 * k for k in range(count)]
    stamps = [EPOCH_S - 86_400 + 60 * k for k in range(count)]
    written = {}
    for name, files in (("a", None), ("b", writer), ("c", DIRECT)):
        (tmp_path / name).mkdir()
        corpus = mailboxes._Base64Corpus(np.random.default_rng(9))
        written[name] = mailboxes._write_mbox(tmp_path / name, "ann", b"example.edu",
                                              sizes, stamps, 100, corpus, files)
    writer.sync()
    assert written["a"] == written["b"] == written["c"]
    data = (tmp_path / "a" / "ann").read_bytes()
    assert len(data) == written["a"]
    assert (tmp_path / "b" / "ann").read_bytes() == data
    assert (tmp_path / "c" / "ann").read_bytes() == data
    assert len(mailbox.mbox(tmp_path / "b" / "ann", create=False)) == count


def test_a_pending_index_over_an_index_is_refused(tmp_path, population, profiles):
    _populate(tmp_path, "maildir", population, profiles, host_fsync=False)
    user = population.usernames[0]
    backend = CyrusBackend(tmp_path, host_fsync=False)
    with pytest.raises(StoreError, match="has an index already"):
        backend.index_written(user, {}, float(EPOCH_S), EPOCH_S * 1_000_000_000)


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_any_share_written_here_gives_the_same_store(tmp_path, population, profiles,
                                                     writer, monkeypatch, share):
    """All through the writer, or all here at once: the same files and notes;
    only the users the writer wrote are touched (``ready`` waits for them)."""
    at_once = _populate(tmp_path / "a", "maildir", population, profiles,
                        host_fsync=False)
    monkeypatch.setattr(mailboxes, "HERE_SHARE", share)
    written = _populate(tmp_path / "b", "maildir", population, profiles,
                        host_fsync=False, files=writer)
    assert set(writer._touched) == (set() if share else set(population.usernames))
    writer.sync()
    assert written == at_once
    files_b, notes_b = _tree(tmp_path / "b")
    assert files_b == _tree(tmp_path / "a")[0]
    epoch_ns = EPOCH_S * 1_000_000_000
    assert set(notes_b.values()) == {(epoch_ns, epoch_ns)}
