"""The writer process does the stores' file operations as they would be done at once."""

from __future__ import annotations

import mailbox
import os

import pytest

from twin.errors import TwinError
from twin.sim import writer
from twin.sim.writer import FileWriter, start_writer
from twin.stages.fileops import DIRECT, Files
from twin.stages.maildir import MaildirSettings, MaildirStore
from twin.stages.queue import QueueManager, QueueSettings


@pytest.fixture
def files():
    made = FileWriter()
    yield made
    made.abandon()


def tree(root) -> dict[str, bytes]:
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, root)] = handle.read()
    return found


def work_on(files: Files, root) -> None:
    os.makedirs(root / "a")
    os.makedirs(root / "b")
    for n in range(300):
        files.create(f"{root}/a/{n}", (b"head ", b"x" * n), False)
        files.rename(f"{root}/a/{n}", f"{root}/b/{n}")
        if n % 3 == 0:
            files.unlink(f"{root}/b/{n}")
        elif n % 3 == 1:
            files.set_mtime(f"{root}/b/{n}", 1_000_000 + n)


def test_the_writer_leaves_the_same_files_as_doing_them_at_once(tmp_path, files):
    work_on(DIRECT, tmp_path / "direct")
    work_on(files, tmp_path / "writer")
    files.sync()
    assert tree(tmp_path / "writer") == tree(tmp_path / "direct")
    assert len(tree(tmp_path / "writer")) == 200
    assert os.stat(tmp_path / "writer" / "b" / "4").st_mtime == 1_000_004


def test_batches_larger_than_one_pipe_load_arrive_whole(tmp_path, files):
    big = b"y" * (writer.BATCH_BYTES // 3 + 7)
    for n in range(10):
        files.create(f"{tmp_path}/{n}", (big, str(n).encode()), False)
    files.sync()
    for n in range(10):
        assert (tmp_path / str(n)).read_bytes() == big + str(n).encode()


def test_data_shared_by_files_goes_down_the_pipe_once_and_lands_in_each(
    tmp_path, files, monkeypatch
):
    sent = []
    real = writer._write_vector

    def counting(fd, pieces, sizes):
        sent.append(sum(sizes))
        real(fd, pieces, sizes)

    monkeypatch.setattr(writer, "_write_vector", counting)
    message = b"Subject: one message, two queue files\r\n\r\n" + b"z" * 50_000
    other = bytearray(b"q" * 3000)
    view = memoryview(b"0123456789" * 10)[5:95]
    expected = {}
    for n in range(40):
        head = f"envelope {n}\n".encode()
        parts = (head, message) if n % 4 else (head, message, other, view, message)
        files.create(f"{tmp_path}/{n}", parts, False)
        expected[str(n)] = b"".join(parts)
    files.create(f"{tmp_path}/empty", (), False)
    expected["empty"] = b""
    files.sync()
    assert tree(tmp_path) == expected
    # each batch carries the message, the bytearray and the view once at most
    heads = sum(len(f"envelope {n}\n") for n in range(40))
    assert sum(sent) < heads + len(sent) * (len(message) + 3000 + 90) + 4096 * len(sent)
    assert sum(sent) < sum(map(len, expected.values())) // 10


def test_a_failure_is_named_at_sync_and_stops_what_follows(tmp_path, files):
    files.create(f"{tmp_path}/missing/dir/file", (b"x",), False)
    files.create(f"{tmp_path}/after", (b"x",), False)
    with pytest.raises(TwinError) as failure:
        files.sync()
    assert "create" in str(failure.value)
    assert f"{tmp_path}/missing/dir/file" in str(failure.value)
    assert "No such file or directory" in str(failure.value)
    assert not (tmp_path / "after").exists()


def test_close_finishes_the_work_and_ends_the_child(tmp_path):
    files = FileWriter()
    files.create(f"{tmp_path}/last", (b"done",), False)
    files.close()
    assert (tmp_path / "last").read_bytes() == b"done"
    assert files._process.poll() == 0
    files.close()  # twice is harmless


def test_sync_without_work_does_not_wait(files):
    files.sync()
    files.sync()


def test_the_switch_turns_the_writer_off(monkeypatch):
    monkeypatch.setenv("MAILTWIN_WRITER", "0")
    assert start_writer() is DIRECT


def test_a_maildir_written_by_the_writer_is_read_by_mailbox(tmp_path, files):
    store = MaildirStore(tmp_path / "store", MaildirSettings(), files)
    queue = QueueManager(tmp_path / "queue", QueueSettings(), files)
    bodies = [f"Subject: {n}\n\nbody {n}\n".encode() for n in range(20)]
    for n, body in enumerate(bodies):
        queue.enqueue(f"Q{n}", body, float(n))
        store.deliver("alice", body, float(n), f"P1Q{n}")
        queue.delivered(f"Q{n}", float(n))
    files.sync()
    box = mailbox.Maildir(tmp_path / "store" / "alice" / "Maildir", create=False)
    assert sorted(message.as_bytes() for message in box) == sorted(bodies)
    assert not list((tmp_path / "queue" / "active").iterdir())
    assert not list((tmp_path / "queue" / "incoming").iterdir())
    assert not list((tmp_path / "store" / "alice" / "Maildir" / "tmp").iterdir())


def test_a_name_clash_in_the_maildir_is_reported_at_sync(tmp_path, files):
    store = MaildirStore(tmp_path, MaildirSettings(), files)
    store.deliver("bob", b"Subject: a\n\na\n", 5.0, "same")
    store.deliver("bob", b"Subject: b\n\nb\n", 5.0, "same")
    with pytest.raises(TwinError, match="File exists"):
        files.sync()


def test_a_bounce_reads_its_queue_file_through_the_writer(tmp_path, files):
    queue = QueueManager(tmp_path, QueueSettings(), files)
    queue.enqueue("B1", b"Subject: lost\r\n\r\nnobody home\r\n", 0.0, "carol@x.org")
    queue.deferred("B1", 100.0, 1)
    lifetime = queue.settings.maximal_queue_lifetime_s
    bounce = queue.bounce("B1", lifetime + 1.0)
    assert b"Subject: lost\n" in bounce.message
    files.sync()
    assert not any(path.is_file() for path in tmp_path.rglob("*"))


def test_folders_made_through_the_writer_are_made_once(tmp_path, files):
    store = MaildirStore(tmp_path, MaildirSettings(), files)
    first = store.deliver("dave", b"Subject: a\n\na\n", 1.0, "u1")
    second = store.deliver("dave", b"Subject: b\n\nb\n", 2.0, "u2", folder="Lists")
    files.sync()
    assert first.work.files_created == 1 + 5  # dave/, Maildir/, tmp/ new/ cur/
    assert second.work.files_created == 1 + 5  # .Lists/, its three, maildirfolder
    lists = mailbox.Maildir(tmp_path / "dave" / "Maildir", create=False)
    assert lists.list_folders() == ["Lists"]
    assert len(lists.get_folder("Lists")) == 1


def test_ready_waits_for_the_batches_that_touched_a_key(tmp_path, files):
    files.create(f"{tmp_path}/erin", (b"mail for erin",), False)
    files.touch("erin")
    files.ready("erin")  # sends the batch being gathered and waits for it
    assert (tmp_path / "erin").read_bytes() == b"mail for erin"
    files.ready("nobody")  # never touched: no wait
    for n in range(50):
        files.create(f"{tmp_path}/f{n}", (b"x" * 100_000,), False)
    files.touch("frank")
    files.ready("erin")  # done long ago: frank's batch may still be pending
    files.ready("frank")
    assert len(list(tmp_path.iterdir())) == 51


def test_with_readers_a_batch_that_touches_a_key_is_sent_at_once(tmp_path, files):
    files.create(f"{tmp_path}/before", (b"gathered",), False)
    files.touch("gina")
    assert files._sent == 0  # without readers it waits for a full batch
    files.expect_readers()
    files.create(f"{tmp_path}/gina", (b"mail for gina",), False)
    files.touch("gina")
    assert files._sent == 1 and not files._batch
    files.touch("gina")  # nothing new for gina: no empty batch goes
    assert files._sent == 1
    files.create(f"{tmp_path}/other", (b"not a mailbox",), False)
    files._wait_for(1)  # the child did gina's batch
    sent = files._sent
    files.ready("gina")  # done already: nothing is sent, nothing waited for
    assert files._sent == sent and files._batch
    assert (tmp_path / "gina").read_bytes() == b"mail for gina"
    files.sync()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["before", "gina", "other"]


def test_the_at_once_files_expect_readers_too():
    DIRECT.expect_readers()  # nothing to prepare: every operation is done


def test_ready_reports_a_failure(tmp_path, files):
    files.create(f"{tmp_path}/no/such/dir/x", (b"x",), False)
    files.touch("gina")
    with pytest.raises(TwinError, match="No such file"):
        files.ready("gina")


def test_many_batches_do_not_fill_the_report_pipe(tmp_path, monkeypatch, files):
    monkeypatch.setattr(writer, "BATCH_OPERATIONS", 2)
    for n in range(20_000):
        files.set_mtime(str(tmp_path), float(n))
    files.sync()
    assert os.stat(tmp_path).st_mtime == 19_999.0
