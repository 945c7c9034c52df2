"""Tests of mbox delivery (twin.stages.mbox) on real spool files."""

from __future__ import annotations

import collections
import mailbox
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from twin.stages.maildir import DeliveryDecision, LfMessage, lf_message
from twin.stages.mbox import (
    CPU_UNITS,
    MboxSettings,
    MboxStore,
    mbox_path,
    unquote_mboxrd,
)
from twin.stages.work import Work

CORPUS = Path("/work/shared/data/sa-publiccorpus/easy_ham")
MESSAGE = b"From: bob@example.org\r\nSubject: hi\r\n\r\nline one\r\nline two"
STORED = b"From: bob@example.org\nSubject: hi\n\nline one\nline two\n"
FROM_LINE = b"From bob@example.org  Mon Mar  5 00:00:10 2007\n"


def generated_messages(count: int, seed: int) -> list[bytes]:
    """Messages with From_ lines, quoted From_ lines, 8-bit bytes, CRLF or LF."""
    rng = np.random.default_rng(seed)
    pool = [
        b"Hello,",
        b"From the desk of the department head:",
        b">From an earlier message",
        b">>From deeper quoting",
        b"From",
        b"Fromage is cheese",
        b" From with a leading space",
        b"",
        b".",
        b"-- ",
    ]
    messages = []
    for n in range(count):
        lines = [
            b"From: sender%d@example.org" % n,
            b"To: user@example.edu",
            b"Subject: message %d" % n,
            b"",
        ]
        for _ in range(int(rng.integers(0, 40))):
            if rng.random() < 0.2:  # 8-bit text: bytes 0x80-0xff, no line ends
                lines.append(
                    bytes(rng.integers(128, 256, size=int(rng.integers(1, 60))))
                )
            else:
                lines.append(pool[int(rng.integers(len(pool)))])
        eol = b"\r\n" if rng.random() < 0.5 else b"\n"
        ending = int(rng.integers(3))  # no final line end, one, or a blank line
        messages.append(eol.join(lines) + eol * ending)
    return messages


def test_first_delivery_appends_under_both_locks(tmp_path):
    store = MboxStore(tmp_path, MboxSettings())
    result = store.deliver("alice", MESSAGE, 10.9, "bob@example.org")
    appended = len(FROM_LINE) + len(STORED) + 1
    assert result.decision is DeliveryDecision.DELIVERED
    assert result.key == "alice"
    assert result.size_bytes == appended
    assert result.reason == f"appended {appended} bytes to mbox alice"
    assert result.work == Work(
        cpu={"deliver.message": 1, "deliver.byte": appended, "deliver.mbox_line": 5},
        writes=(("alice", appended),),
        fsyncs=1,
        files_created=2,  # the dotlock and the new spool file
        files_deleted=1,  # the dotlock
        locks=1,
    )
    assert set(result.work.cpu) <= set(CPU_UNITS)
    assert mbox_path(tmp_path, "alice").read_bytes() == FROM_LINE + STORED + b"\n"
    assert sorted(os.listdir(tmp_path)) == ["alice"]  # no dotlock left

    second = store.deliver("alice", b"Subject: again\n\nbody\n", 20.0, "carol@x.org")
    assert second.work.files_created == 1
    assert store.mailbox_size_bytes("alice") == appended + second.size_bytes
    assert store.mailbox_size_bytes("nobody") == 0


def test_from_lines_are_quoted_mboxrd_and_unquote_restores_them(tmp_path):
    body = (
        b"Subject: quoting\n\nFrom here\n>From there\n>>From afar\nFromage\n"
        b" From indented\nnot From at start\nFrom"
    )
    quoted = (
        b"Subject: quoting\n\n>From here\n>>From there\n>>>From afar\nFromage\n"
        b" From indented\nnot From at start\nFrom\n"
    )
    store = MboxStore(tmp_path, MboxSettings())
    result = store.deliver("alice", body, 0.0, "bob@example.org")
    written = mbox_path(tmp_path, "alice").read_bytes()
    assert (
        written == b"From bob@example.org  Mon Mar  5 00:00:00 2007\n" + quoted + b"\n"
    )
    assert result.work.cpu["deliver.mbox_line"] == 9
    assert unquote_mboxrd(quoted) == lf_message(body)


@pytest.mark.parametrize(
    ("first", "stored"),
    [
        (b"From x", b">From x"),
        (b">From x", b">>From x"),
        (b">>From x", b">>>From x"),
        (b"Fromx", b"Fromx"),
        (b">From:x", b">From:x"),
    ],
)
def test_the_first_line_is_quoted_too(tmp_path, first, stored):
    store = MboxStore(tmp_path, MboxSettings())
    store.deliver("alice", first + b"\nFrom y\n", 0.0, "a@b")
    written = mbox_path(tmp_path, "alice").read_bytes().split(b"\n", 1)[1]
    assert written == stored + b"\n>From y\n\n"
    assert unquote_mboxrd(stored + b"\n>From y\n") == first + b"\nFrom y\n"
    reader = mailbox.mbox(mbox_path(tmp_path, "alice"), create=False)
    assert len(reader) == 1
    reader.close()


def test_null_sender_and_epoch_shape_the_from_line(tmp_path):
    store = MboxStore(tmp_path, MboxSettings(epoch_offset_s=0))
    store.deliver("alice", b"x\n", 86400.0 + 3661.5)
    assert (
        mbox_path(tmp_path, "alice")
        .read_bytes()
        .startswith(b"From MAILER-DAEMON  Fri Jan  2 01:01:01 1970\n")
    )


def test_host_fsync_does_not_change_the_work(tmp_path):
    fast = MboxStore(tmp_path / "fast", MboxSettings())
    synced = MboxStore(tmp_path / "synced", MboxSettings(host_fsync=True))
    assert (
        fast.deliver("u", MESSAGE, 1.0, "a@b").work
        == synced.deliver("u", MESSAGE, 1.0, "a@b").work
    )


def test_stale_dotlock_stops_delivery_and_leaves_the_mbox_alone(tmp_path):
    store = MboxStore(tmp_path, MboxSettings())
    store.deliver("alice", MESSAGE, 0.0, "bob@example.org")
    before = mbox_path(tmp_path, "alice").read_bytes()
    (tmp_path / "alice.lock").write_bytes(b"")
    with pytest.raises(RuntimeError, match="stale lock"):
        store.deliver("alice", MESSAGE, 1.0, "bob@example.org")
    assert mbox_path(tmp_path, "alice").read_bytes() == before
    assert (tmp_path / "alice.lock").exists()  # not ours to remove


@pytest.mark.parametrize(
    ("user", "sender", "now", "match"),
    [
        ("../etc", "", 0.0, "user="),
        ("alice.lock", "", 0.0, "user="),
        (".hidden", "", 0.0, "user="),
        ("alice", "two words", 0.0, "sender="),
        ("alice", "", -1.0, "now="),
    ],
)
def test_bad_arguments_raise_and_write_nothing(tmp_path, user, sender, now, match):
    store = MboxStore(tmp_path, MboxSettings())
    with pytest.raises(ValueError, match=match):
        store.deliver(user, MESSAGE, now, sender)
    assert os.listdir(tmp_path) == []


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="epoch_offset_s"):
        MboxSettings(epoch_offset_s=-5)


def test_python_mailbox_reads_every_message_once_byte_identical(tmp_path):
    """mailbox.mbox splits on From_ lines but does not unquote (it is mboxo on
    write, and leaves '>From ' alone on read): we check the split it makes, then
    undo our mboxrd quoting ourselves and compare with the LF-normalised input."""
    messages = generated_messages(200, seed=450)
    store = MboxStore(tmp_path, MboxSettings())
    expected: dict[str, collections.Counter] = collections.defaultdict(
        collections.Counter
    )
    sizes: collections.Counter = collections.Counter()
    total = Work()
    for n, message in enumerate(messages):
        user = f"user{n % 20:02d}"
        result = store.deliver(user, message, float(n * 60), f"s{n}@example.org")
        total += result.work
        sizes[user] += result.size_bytes
        expected[user][lf_message(message)] += 1
    assert total.locks == total.fsyncs == total.files_deleted == 200
    assert total.files_created == 200 + 20
    quoted_somewhere = False
    for user, wanted in expected.items():
        path = mbox_path(tmp_path, user)
        assert path.stat().st_size == sizes[user] == store.mailbox_size_bytes(user)
        reader = mailbox.mbox(path, create=False)
        assert len(reader) == sum(wanted.values())
        found: collections.Counter = collections.Counter()
        for key in reader.keys():
            raw = reader.get_bytes(key)
            found[unquote_mboxrd(raw)] += 1
            quoted_somewhere |= raw != unquote_mboxrd(raw)
            sender = reader.get_message(key).get_from()
            assert sender.startswith("s") and sender.endswith(" 2007")
        reader.close()
        assert found == wanted
    assert quoted_somewhere  # the test really exercised From_ quoting


def test_real_corpus_messages_round_trip(tmp_path):
    if not CORPUS.is_dir():
        pytest.skip(f"SpamAssassin public corpus not found at {CORPUS}")
    store = MboxStore(tmp_path, MboxSettings())
    originals = []
    for n, path in enumerate(sorted(CORPUS.iterdir())[:150]):
        raw = path.read_bytes()
        message = raw.split(b"\n", 1)[1]  # drop the corpus's own From_ line
        originals.append(lf_message(message))
        store.deliver("ham", message, float(n), "sender@example.org")
    reader = mailbox.mbox(mbox_path(tmp_path, "ham"), create=False)
    got = [unquote_mboxrd(reader.get_bytes(key)) for key in reader.keys()]
    reader.close()
    assert got == originals


def test_every_cpu_unit_has_a_reference_cost():
    costs_file = Path(__file__).parents[1] / "hardware" / "costs" / "deliver.yaml"
    costs = yaml.safe_load(costs_file.read_text())
    assert set(CPU_UNITS) <= set(costs)
    assert all(costs[kind] > 0 for kind in CPU_UNITS)


def test_an_lf_message_is_appended_as_its_bytes(tmp_path):
    # (the form a dialogue may leave for maildir's writer: mbox makes it)
    crlf = b"Subject: hi\r\n\r\nFrom here\r\nline two\r\n"
    form = LfMessage(b"X: 1\n", crlf, 5 + len(crlf) - crlf.count(b"\r"))
    for kind, message in (("bytes", bytes(form)), ("form", form)):
        MboxStore(tmp_path / kind, MboxSettings()).deliver(
            "alice", message, 10.0, "bob@example.org")
    assert ((tmp_path / "form" / "alice").read_bytes()
            == (tmp_path / "bytes" / "alice").read_bytes())
