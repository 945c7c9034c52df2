"""The writer process does the stores' file operations as they would be done at once."""

from __future__ import annotations

import mailbox
import os
import random

import pytest

from twin.errors import TwinError
from twin.sim import writer
from twin.sim.writer import FileWriter, start_writer
from twin.stages.fileops import DIRECT, Files
from twin.stages.maildir import LfMessage, MaildirSettings, MaildirStore
from twin.stages.queue import QueueManager, QueueSettings


@pytest.fixture
def files():
    made = FileWriter()
    yield made
    made.abandon()


@pytest.fixture
def sent(monkeypatch) -> list[int]:
    """Bytes of each batch the writer pipes to its child, as they go."""
    sizes: list[int] = []
    real = writer._write_vector

    def counting(fd, pieces, piece_sizes):
        sizes.append(sum(piece_sizes))
        real(fd, pieces, piece_sizes)

    monkeypatch.setattr(writer, "_write_vector", counting)
    return sizes


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
    tmp_path, files, sent
):
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


def test_a_writer_child_that_dies_is_named_and_abandon_returns(tmp_path):
    files = FileWriter()
    files.create(f"{tmp_path}/first", (b"x",), False)
    files.sync()
    files._process.kill()
    files._process.wait()
    with pytest.raises(TwinError, match=(r"the writer process ended unexpectedly "
                                         r"\(killed by SIGKILL: out of memory\?")):
        # batches go to the sender thread until it finds the pipe broken
        for n in range(64):
            files.create(f"{tmp_path}/f{n}", (b"y" * (1 << 20),), False)
        files.sync()
    files.abandon()
    assert not files._sender.is_alive()


def test_large_batches_go_through_the_sender_thread_small_ones_at_once(
    tmp_path, monkeypatch, files
):
    import threading

    writers = []
    real = writer._write_vector

    def noting(fd, pieces, sizes):
        writers.append((sum(sizes), threading.current_thread().name))
        real(fd, pieces, sizes)

    monkeypatch.setattr(writer, "_write_vector", noting)
    files.create(f"{tmp_path}/small", (b"x" * 100,), False)
    files.sync()
    for n in range(3):  # 4 MB batches: past the size that goes at once
        files.create(f"{tmp_path}/big{n}", (os.urandom(3 << 20),), False)
    files.sync()
    assert writers[0][1] == threading.current_thread().name
    big = [name for size, name in writers if size > writer.SEND_AT_ONCE_BYTES]
    assert big and set(big) == {"twin-writer-send"}
    assert (tmp_path / "small").read_bytes() == b"x" * 100
    assert all((tmp_path / f"big{n}").stat().st_size == 3 << 20 for n in range(3))


@pytest.mark.skipif(not hasattr(os, "nice"), reason="no process priorities here")
def test_the_children_run_below_the_simulation():
    child = writer.spawn_child("print(os.nice(0), flush=True)")
    out, _ = child.communicate(timeout=60)
    assert int(out) == min(os.nice(0) + writer.CHILD_NICE, 19)


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


def test_the_child_strips_the_crs_of_an_lf_message(tmp_path, files):
    # a delivery whose LF form the writer makes (created in tmp/ and linked
    # into new/ in one batch: one create, its CRs stripped there), read back
    # by mailbox, as the same delivery of the bytes at once
    crlfs = [b"Subject: %d\r\n\r\nbody\r\n.. %d\r\n" % (n, n) for n in range(20)]
    for where, target in (("writer", files), ("at once", DIRECT)):
        store = MaildirStore(tmp_path / where, MaildirSettings(), target)
        for n, crlf in enumerate(crlfs):
            head = b"Received: %d\n" % n
            form = LfMessage(head, crlf, len(head) + len(crlf) - crlf.count(b"\r"))
            store.deliver("alice", form, float(n), f"P1Q{n}")
            if n == 10:
                target.sync()  # (a batch ends between two of them)
    files.sync()
    assert tree(tmp_path / "writer") == tree(tmp_path / "at once")
    box = mailbox.Maildir(tmp_path / "writer" / "alice" / "Maildir", create=False)
    assert sorted(message.as_bytes() for message in box) == sorted(
        b"Received: %d\n" % n + crlf.replace(b"\r", b"")
        for n, crlf in enumerate(crlfs))


def test_a_folded_rename_strips_the_crs_too(tmp_path, files):
    files.create(f"{tmp_path}/target", (b"old\r\n",), False)
    files.sync()
    files.create(f"{tmp_path}/source", (b"a\n", b"b\r\nc\r\n"), False, strip_cr=True)
    files.rename(f"{tmp_path}/source", f"{tmp_path}/target")  # create_over
    files.sync()
    assert (tmp_path / "target").read_bytes() == b"a\nb\nc\n"


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


def test_a_touch_with_a_due_time_goes_at_the_tick_before_it(tmp_path, files):
    margin = writer.READ_MARGIN_S
    files.expect_readers()
    files.create(f"{tmp_path}/hal", (b"mail for hal",), False)
    files.touch("hal", due=1000.0)  # hal reads at 1000 s: no batch yet
    files.create(f"{tmp_path}/ida", (b"mail for ida",), False)
    files.touch("ida", due=5000.0)
    files.tick(1000.0 - margin - 1.0)
    assert files._sent == 0 and len(files._batch) == 2  # both gathered
    files.tick(1000.0 - margin)  # hal's reader is near: both go in one batch
    assert files._sent == 1 and not files._batch
    files.tick(4999.0)  # nothing gathered: nothing goes
    assert files._sent == 1
    files.create(f"{tmp_path}/joe", (b"mail for joe",), False)
    files.touch("joe", due=9000.0)
    files.ready("joe")  # a reader before the tick: the batch goes, and is waited for
    assert (tmp_path / "joe").read_bytes() == b"mail for joe"
    assert files._sent == 2
    files.create(f"{tmp_path}/kim", (b"mail for kim",), False)
    files.touch("kim")  # no due time: at once, as before
    assert files._sent == 3
    files.tick(10_000.0)  # sent already: no empty batch
    assert files._sent == 3
    files.sync()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hal", "ida", "joe", "kim"]


def test_written_says_whether_a_key_is_done_without_waiting(tmp_path, files):
    assert files.written("nobody")  # never touched
    files.create(f"{tmp_path}/liz", (b"mail for liz",), False)
    files.touch("liz", due=9000.0)  # gathered, not sent
    assert files._sent == 0
    files.written("liz")  # sends the batch, does not wait for it
    assert files._sent == 1
    files.ready("liz")  # now waited for
    assert files.written("liz")
    assert (tmp_path / "liz").read_bytes() == b"mail for liz"
    assert DIRECT.written("liz")  # the at-once files: always done


def test_written_is_false_after_a_failure_that_ready_reports(tmp_path, files):
    files.create(f"{tmp_path}/no/such/dir/x", (b"x",), False)
    files.touch("max")
    with pytest.raises(TwinError, match="No such file"):
        files.ready("max")
    assert not files.written("max")


def test_the_at_once_files_take_due_times_and_ticks():
    DIRECT.touch("lee", due=3.0)
    DIRECT.tick(2.0)  # nothing gathered here: the calls just return


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


def test_files_made_and_removed_within_a_batch_never_reach_the_pipe(
    tmp_path, files, sent
):
    queue = QueueManager(tmp_path / "queue", QueueSettings(), files)
    store = MaildirStore(tmp_path / "store", MaildirSettings(), files)
    body = b"Subject: short-lived\r\n\r\n" + b"q" * 20_000 + b"\r\n"
    lf_body = body.replace(b"\r\n", b"\n")
    for n in range(30):  # Postfix: incoming/ -> active/, delivered, removed
        queue.enqueue(f"Q{n}", body, float(n))
        store.deliver("hal", lf_body, float(n), f"u{n}")
        queue.delivered(f"Q{n}", float(n))
    kept = b"Subject: still queued\r\n\r\nx\r\n"
    queue.enqueue("KEPT", kept, 99.0)
    files.sync()
    # the maildir copies went down the pipe (one object: once); no queue file did
    assert sum(sent) < len(body) + 10_000
    assert [p.name for p in (tmp_path / "queue" / "active").iterdir()] == ["KEPT"]
    assert kept in (tmp_path / "queue" / "active" / "KEPT").read_bytes()
    assert not list((tmp_path / "queue" / "incoming").iterdir())
    box = mailbox.Maildir(tmp_path / "store" / "hal" / "Maildir", create=False)
    assert len(box) == 30
    assert not list((tmp_path / "store" / "hal" / "Maildir" / "tmp").iterdir())


def test_a_folded_rename_replaces_a_file_of_an_earlier_batch(tmp_path, files):
    files.create(f"{tmp_path}/target", (b"old",), False)
    files.sync()
    files.create(f"{tmp_path}/source", (b"new",), False)
    files.rename(f"{tmp_path}/source", f"{tmp_path}/target")  # replaces it
    files.sync()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]
    assert (tmp_path / "target").read_bytes() == b"new"


def test_a_move_into_a_folder_made_after_the_file_is_not_folded(tmp_path, files):
    files.create(f"{tmp_path}/file", (b"data",), False)
    files.mkdir(f"{tmp_path}/later")
    files.rename(f"{tmp_path}/file", f"{tmp_path}/later/file")
    files.create(f"{tmp_path}/other", (b"o",), False)
    files.set_mtime(f"{tmp_path}/other", 5_000.0)
    files.link_new(f"{tmp_path}/other", f"{tmp_path}/later/other")
    files.sync()
    assert (tmp_path / "later" / "file").read_bytes() == b"data"
    assert (tmp_path / "later" / "other").read_bytes() == b"o"
    assert os.stat(tmp_path / "later" / "other").st_mtime == 5_000.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["later"]


def _random_operations(rng: random.Random, root, count: int) -> list[tuple]:
    """Operations that all succeed when done in order, over a few folders."""
    folders = [f"{root}/d0"]
    files: set[str] = set()
    made = 0
    shared = b"shared data " * 300
    plan: list[tuple] = [("mkdir", folders[0])]
    for _ in range(count):
        roll = rng.random()
        if roll < 0.05 and len(folders) < 5:
            folder = f"{root}/d{len(folders)}"
            folders.append(folder)
            plan.append(("mkdir", folder))
        elif roll < 0.4 or not files:
            path = f"{rng.choice(folders)}/f{made}"
            made += 1
            parts = rng.choice(
                [(b"x" * rng.randrange(0, 3000),), (b"head\n", shared), ()]
            )
            plan.append(("create", path, parts, rng.random() < 0.1))
            files.add(path)
        else:
            path = rng.choice(sorted(files))
            kind = rng.random()
            if kind < 0.3:
                plan.append(("unlink", path))
                files.discard(path)
            elif kind < 0.5:
                plan.append(("set_mtime", path, float(rng.randrange(10**6))))
            elif kind < 0.75:  # rename, onto an existing file at times
                if rng.random() < 0.3 and len(files) > 1:
                    target = rng.choice(sorted(files - {path}))
                else:
                    target = f"{rng.choice(folders)}/f{made}"
                    made += 1
                plan.append(("rename", path, target))
                files.discard(path)
                files.add(target)
            else:
                target = f"{rng.choice(folders)}/f{made}"
                made += 1
                plan.append(("link_new", path, target))
                files.discard(path)
                files.add(target)
        if rng.random() < 0.02:
            plan.append(("sync",))
    return plan


def _do(files: Files, plan: list[tuple]) -> None:
    for operation, *arguments in plan:
        getattr(files, operation)(*arguments)


def _tree_with_times(root) -> dict[str, tuple[bytes, float]]:
    return {
        name: (data, os.stat(os.path.join(root, name)).st_mtime)
        for name, data in tree(root).items()
    }


@pytest.mark.parametrize("seed", range(6))
def test_random_operations_leave_the_same_files_as_doing_them_at_once(
    tmp_path, files, monkeypatch, seed
):
    rng = random.Random(seed)
    # small batches at times, so that moves and removals straddle them
    monkeypatch.setattr(writer, "BATCH_OPERATIONS", rng.choice([7, 50, 2048]))
    plan_direct = _random_operations(random.Random(seed), tmp_path / "direct", 1500)
    plan_writer = _random_operations(random.Random(seed), tmp_path / "writer", 1500)
    os.makedirs(tmp_path / "direct")
    os.makedirs(tmp_path / "writer")
    _do(DIRECT, [step for step in plan_direct if step[0] != "sync"])
    _do(files, plan_writer)
    files.sync()
    direct = _tree_with_times(tmp_path / "direct")
    written = _tree_with_times(tmp_path / "writer")
    assert written.keys() == direct.keys()
    assert {k: v[0] for k, v in written.items()} == {k: v[0] for k, v in direct.items()}
    # time stamps: those set explicitly are equal; others are the host's clock
    for name, (_, stamp) in direct.items():
        if stamp < 10**6:
            assert written[name][1] == stamp


# -- transient files held back over a reader's touch ---------------------------


@pytest.fixture
def batches(monkeypatch) -> list[list[tuple]]:
    """The operations of each batch the writer pipes to its child."""
    import pickle

    seen: list[list[tuple]] = []
    real = writer._write_vector

    def recording(fd, pieces, piece_sizes):
        seen.append(pickle.loads(pieces[1]))
        real(fd, pieces, piece_sizes)

    monkeypatch.setattr(writer, "_write_vector", recording)
    return seen


def test_a_transient_file_removed_after_a_touch_is_never_written(
    tmp_path, files, batches
):
    for name in ("queue", "incoming", "mail"):
        os.makedirs(tmp_path / name)
    files.expect_readers()
    files.create(f"{tmp_path}/incoming/q1", (b"envelope\n", b"message"), False,
                 transient=True)
    files.rename(f"{tmp_path}/incoming/q1", f"{tmp_path}/queue/q1")
    files.create(f"{tmp_path}/mail/m1", (b"message",), False)
    files.touch("user")  # a reader waits for user: the batch goes now
    files.ready("user")
    assert (tmp_path / "mail" / "m1").read_bytes() == b"message"
    assert not (tmp_path / "queue" / "q1").exists()  # held back, not yet written
    files.unlink(f"{tmp_path}/queue/q1")
    files.sync()
    assert tree(tmp_path) == {"mail/m1": b"message"}
    sent_operations = [op for batch in batches for op, _ in batch]
    # the queue file was folded into a discard of its name: never written
    assert "create_over" not in sent_operations
    assert sent_operations.count("create") == 1


def test_a_queue_file_made_moved_and_removed_in_a_batch_sends_nothing(
    tmp_path, files, batches
):
    queue = QueueManager(tmp_path / "queue", QueueSettings(), files)
    for n in range(5):
        queue.enqueue(f"Q{n}", b"Subject: brief\r\n\r\nx\r\n", float(n))
        queue.delivered(f"Q{n}", float(n))
    files.sync()
    sent_paths = [args[0] for batch in batches for _, args in batch]
    # the move to active/ names a new file, so no removal of a file that might
    # have been there is left behind (each such unlink failed: ENOENT)
    assert not [path for path in sent_paths if "/Q" in path]
    assert not list((tmp_path / "queue" / "active").iterdir())


def test_a_rename_onto_a_new_name_that_exists_fails_loudly(tmp_path, files):
    files.create(f"{tmp_path}/target", (b"old",), False)
    files.sync()
    files.create(f"{tmp_path}/source", (b"new",), False)
    files.rename(f"{tmp_path}/source", f"{tmp_path}/target", new=True)
    with pytest.raises(TwinError, match="target"):
        files.sync()


def test_the_child_reuses_its_buffers_for_batches_of_any_size(tmp_path, files):
    sizes = [10, writer.BUFFER_BYTES + 5, 3, writer.BATCH_BYTES - 1, 1, 0, 77]
    expected = {}
    for round_ in range(3):
        for n, size in enumerate(sizes):
            data = bytes([65 + (n + round_) % 26]) * size
            name = f"r{round_}-{n}"
            files.create(f"{tmp_path}/{name}", (data,), False)
            expected[name] = data
            files.flush()  # each file a batch of its own
    files.sync()
    assert tree(tmp_path) == expected


def test_a_held_transient_file_is_written_at_sync(tmp_path, files):
    os.makedirs(tmp_path / "queue")
    os.makedirs(tmp_path / "mail")
    files.expect_readers()
    files.create(f"{tmp_path}/queue/q1", (b"queued",), False, transient=True)
    files.create(f"{tmp_path}/mail/m1", (b"message",), False)
    files.touch("user")
    files.touch("other")  # held again over a second send
    files.sync()
    assert tree(tmp_path) == {"queue/q1": b"queued", "mail/m1": b"message"}


def test_a_transient_file_whose_folder_moves_is_not_held(tmp_path, files):
    os.makedirs(tmp_path / "d1")
    os.makedirs(tmp_path / "mail")
    files.expect_readers()
    files.create(f"{tmp_path}/d1/f", (b"data",), False, transient=True)
    files.rename(f"{tmp_path}/d1", f"{tmp_path}/d9")  # names the file's folder
    files.create(f"{tmp_path}/mail/m1", (b"message",), False)
    files.touch("user")
    files.ready("user")
    assert (tmp_path / "d9" / "f").read_bytes() == b"data"
    files.sync()
    assert tree(tmp_path) == {"d9/f": b"data", "mail/m1": b"message"}


@pytest.mark.parametrize("seed", range(6))
def test_random_operations_with_transient_files_and_readers(
    tmp_path, files, monkeypatch, seed
):
    """Transient creates and touches at random: at every sync the files are
    the ones doing every operation at once leaves, and a touched key's files
    are there once ``ready`` returns."""
    rng = random.Random(seed)
    monkeypatch.setattr(writer, "BATCH_OPERATIONS", rng.choice([7, 50, 2048]))
    plans = {
        name: _random_operations(random.Random(seed), tmp_path / name, 1500)
        for name in ("direct", "writer")
    }
    marks = random.Random(seed + 100)
    for name, plan in plans.items():
        marks.seed(seed + 100)
        changed = []
        for step in plan:
            if step[0] == "create":
                changed.append((*step, marks.random() < 0.6))  # transient
            else:
                changed.append(step)
            if marks.random() < 0.1:
                changed.append(("touch", "key"))
        plans[name] = changed
        os.makedirs(tmp_path / name)
    files.expect_readers()
    syncs = 0
    for direct_step, writer_step in zip(plans["direct"], plans["writer"], strict=True):
        if direct_step[0] == "sync":
            files.sync()
            syncs += 1
            assert tree(tmp_path / "writer") == tree(tmp_path / "direct")
            continue
        getattr(DIRECT, direct_step[0])(*direct_step[1:])
        getattr(files, writer_step[0])(*writer_step[1:])
    files.sync()
    assert tree(tmp_path / "writer") == tree(tmp_path / "direct")
    assert syncs > 0


def test_a_table_written_by_the_child_is_the_table_written_at_once(tmp_path, files):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from twin.sim.recorder import TableWriter

    schema = pa.schema([("id", pa.int64()), ("name", pa.string()), ("x", pa.float64())])
    rows = [(i, f"m{i % 7}", float("nan") if i % 5 == 0 else i / 3) for i in range(700)]
    here = TableWriter(tmp_path / "here.parquet", schema, batch_rows=256)
    there = writer.PipedTable(files, tmp_path / "there.parquet", schema, 256, chunk=100)
    for row in rows:
        here.append(row)
        there.append(row)
    here.close()
    there.close()
    there.close()  # twice is once
    files.sync()
    assert there.written == len(rows)
    assert (tmp_path / "there.parquet").read_bytes() == (
        tmp_path / "here.parquet"
    ).read_bytes()
    table = pq.read_table(tmp_path / "there.parquet")
    assert table.num_rows == 700
    assert pq.ParquetFile(tmp_path / "there.parquet").metadata.num_row_groups == 3


def test_a_bad_row_for_the_childs_table_is_named_at_sync(tmp_path, files):
    import pyarrow as pa

    schema = pa.schema([("id", pa.int64())])
    table = writer.PipedTable(files, tmp_path / "t.parquet", schema, chunk=1)
    table.append(("not a number",))
    table.close()
    with pytest.raises(TwinError, match="table_close .*t.parquet: Could not convert"):
        files.sync()
