"""Tests of maildir delivery (twin.stages.maildir) on real files."""

from __future__ import annotations

import collections
import mailbox
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from twin.stages.maildir import (
    CPU_UNITS,
    SIMULATION_EPOCH_S,
    DeliveryDecision,
    LfMessage,
    MaildirSettings,
    MaildirStore,
    lf_message,
    maildir_path,
)
from twin.stages.work import Work

CORPUS = Path("/work/shared/data/sa-publiccorpus/easy_ham")
MESSAGE = b"From: bob@example.org\r\nSubject: hi\r\n\r\nline one\r\nline two"
STORED = b"From: bob@example.org\nSubject: hi\n\nline one\nline two\n"


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
            b"Content-Transfer-Encoding: 8bit",
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
        text = eol.join(lines)
        ending = int(rng.integers(3))  # no final line end, one, or a blank line
        messages.append(text + eol * ending)
    return messages


def test_lf_message_normalises_line_ends():
    assert lf_message(MESSAGE) == STORED
    assert lf_message(b"") == b""
    assert lf_message(b"a\n\n") == b"a\n\n"
    assert lf_message(b"bare\rcr") == b"bare\rcr\n"
    # a bare CR among CRLF lines is data: only the CRLFs change
    assert lf_message(b"a\rb\r\nc\r\r\n") == b"a\rb\nc\r\n"
    assert lf_message(b"a\r\nb\r") == b"a\nb\r\n"


def test_lf_message_equals_replacing_every_crlf():
    # the fast path (one translate) only where every CR ends a line
    rng = np.random.default_rng(7)
    for _ in range(3000):
        message = bytes(rng.choice(list(b"\r\na."), size=int(rng.integers(0, 12))))
        expected = message.replace(b"\r\n", b"\n")
        if expected and not expected.endswith(b"\n"):
            expected += b"\n"
        assert lf_message(message) == expected, message


def test_first_delivery_creates_the_maildir_and_counts_it(tmp_path):
    store = MaildirStore(tmp_path, MaildirSettings())
    result = store.deliver("alice", MESSAGE, 10.7, "P1Q1")
    name = f"{SIMULATION_EPOCH_S + 10}.P1Q1.mail.example.edu"
    key = f"alice/Maildir/new/{name}"
    assert result.decision is DeliveryDecision.DELIVERED
    assert result.key == key
    assert result.size_bytes == len(STORED)
    assert result.reason == f"delivered {len(STORED)} bytes to {key}"
    assert result.work == Work(
        cpu={"deliver.message": 1, "deliver.byte": len(STORED)},
        writes=((key, len(STORED)),),
        fsyncs=1,
        files_created=1 + 5,  # the message; alice, Maildir, tmp, new, cur
        files_renamed=1,
    )
    assert set(result.work.cpu) <= set(CPU_UNITS)
    box = tmp_path / "alice" / "Maildir"
    assert box == maildir_path(tmp_path, "alice") == store.folder_path("alice")
    assert (box / "new" / name).read_bytes() == STORED
    assert sorted(os.listdir(box)) == ["cur", "new", "tmp"]
    assert os.listdir(box / "tmp") == [] and os.listdir(box / "cur") == []

    second = store.deliver("alice", MESSAGE, 11.0, "P1Q2")
    assert second.work.files_created == 1
    assert (
        second.key
        == f"alice/Maildir/new/{SIMULATION_EPOCH_S + 11}.P1Q2.mail.example.edu"
    )


def test_existing_maildir_is_not_recreated(tmp_path):
    MaildirStore(tmp_path, MaildirSettings()).deliver("alice", MESSAGE, 0.0, "A")
    fresh = MaildirStore(tmp_path, MaildirSettings())
    assert fresh.deliver("alice", MESSAGE, 0.0, "B").work.files_created == 1


def test_settings_shape_the_name(tmp_path):
    settings = MaildirSettings(hostname="mx/1:ece", epoch_offset_s=1_000_000_000)
    result = MaildirStore(tmp_path, settings).deliver("bob", MESSAGE, 5.0, "P9")
    assert result.key == "bob/Maildir/new/1000000005.P9.mx\\0571\\072ece"
    assert (tmp_path / result.key).is_file()


def test_host_fsync_does_not_change_the_work(tmp_path):
    fast = MaildirStore(tmp_path / "fast", MaildirSettings())
    synced = MaildirStore(tmp_path / "synced", MaildirSettings(host_fsync=True))
    assert (
        fast.deliver("u", MESSAGE, 1.0, "X").work
        == synced.deliver("u", MESSAGE, 1.0, "X").work
    )


def test_reused_unique_in_the_same_second_is_refused_and_nothing_is_lost(tmp_path):
    store = MaildirStore(tmp_path, MaildirSettings())
    first = store.deliver("alice", b"Subject: one\n\nfirst\n", 3.2, "P1")
    with pytest.raises(ValueError, match="already in"):
        store.deliver("alice", b"Subject: two\n\nsecond\n", 3.9, "P1")
    assert (tmp_path / first.key).read_bytes() == b"Subject: one\n\nfirst\n"
    assert os.listdir(tmp_path / "alice" / "Maildir" / "tmp") == []
    # the same unique one second later is a new name
    store.deliver("alice", b"Subject: two\n\nsecond\n", 4.0, "P1")


def test_subfolder_follows_maildir_plus_plus(tmp_path):
    store = MaildirStore(tmp_path, MaildirSettings())
    store.deliver("alice", MESSAGE, 0.0, "A")
    result = store.deliver("alice", MESSAGE, 1.0, "B", folder="Sent")
    # .Sent, its tmp/new/cur and the maildirfolder marker, plus the message
    assert result.work.files_created == 1 + 5
    assert result.key.startswith("alice/Maildir/.Sent/new/")
    sent = store.folder_path("alice", "Sent")
    assert sent == tmp_path / "alice" / "Maildir" / ".Sent"
    assert (sent / "maildirfolder").is_file()
    reader = mailbox.Maildir(tmp_path / "alice" / "Maildir", factory=None, create=False)
    assert reader.list_folders() == ["Sent"]
    assert [
        reader.get_folder("Sent").get_bytes(k) for k in reader.get_folder("Sent").keys()
    ] == [STORED]
    # a subfolder as first delivery also creates the inbox
    nested = store.deliver("carol", MESSAGE, 2.0, "C", folder="Lists.postfix")
    assert nested.work.files_created == 1 + 5 + 5


@pytest.mark.parametrize(
    ("user", "unique", "folder", "now", "match"),
    [
        ("../etc", "A", "", 0.0, "user="),
        (".hidden", "A", "", 0.0, "user="),
        ("a/b", "A", "", 0.0, "user="),
        ("alice", "a.b", "", 0.0, "unique="),
        ("alice", "a/b", "", 0.0, "unique="),
        ("alice", "", "", 0.0, "unique="),
        ("alice", "A", "../x", 0.0, "folder="),
        ("alice", "A", ".Sent", 0.0, "folder="),
        ("alice", "A", "", -1.0, "now="),
    ],
)
def test_bad_arguments_raise_and_write_nothing(
    tmp_path, user, unique, folder, now, match
):
    store = MaildirStore(tmp_path, MaildirSettings())
    with pytest.raises(ValueError, match=match):
        store.deliver(user, MESSAGE, now, unique, folder)
    assert os.listdir(tmp_path) == []


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="hostname"):
        MaildirSettings(hostname="")
    with pytest.raises(ValueError, match="epoch_offset_s"):
        MaildirSettings(epoch_offset_s=-1)


def test_python_mailbox_reads_every_message_once_byte_identical(tmp_path):
    messages = generated_messages(200, seed=1750)
    store = MaildirStore(tmp_path, MaildirSettings())
    expected: dict[str, collections.Counter] = collections.defaultdict(
        collections.Counter
    )
    total = Work()
    for n, message in enumerate(messages):
        user = f"user{n % 20:02d}"
        total += store.deliver(user, message, float(n * 7), f"P1Q{n}").work
        expected[user][lf_message(message)] += 1
    assert total.files_created == 200 + 20 * 5
    assert total.files_renamed == total.fsyncs == 200
    assert total.bytes_written == sum(len(lf_message(m)) for m in messages)
    for user, wanted in expected.items():
        reader = mailbox.Maildir(
            maildir_path(tmp_path, user), factory=None, create=False
        )
        found = collections.Counter(reader.get_bytes(key) for key in reader.keys())
        assert found == wanted
        for key in reader.keys():  # bodies survive the email parser too
            raw = reader.get_bytes(key)
            body = raw.split(b"\n\n", 1)[1] if b"\n\n" in raw else b""
            assert reader.get_message(key).get_payload(decode=True) == body


def test_real_corpus_messages_round_trip(tmp_path):
    if not CORPUS.is_dir():
        pytest.skip(f"SpamAssassin public corpus not found at {CORPUS}")
    store = MaildirStore(tmp_path, MaildirSettings())
    originals = []
    for n, path in enumerate(sorted(CORPUS.iterdir())[:150]):
        raw = path.read_bytes()
        message = raw.split(b"\n", 1)[1]  # drop the corpus's mbox From_ line
        originals.append(lf_message(message))
        result = store.deliver("ham", message, float(n), f"Q{n}")
        assert result.size_bytes == len(originals[-1])
    reader = mailbox.Maildir(maildir_path(tmp_path, "ham"), factory=None, create=False)
    assert sorted(reader.get_bytes(key) for key in reader.keys()) == sorted(originals)


def test_every_cpu_unit_has_a_reference_cost():
    costs_file = Path(__file__).parents[1] / "hardware" / "costs" / "deliver.yaml"
    costs = yaml.safe_load(costs_file.read_text())
    assert set(CPU_UNITS) <= set(costs)
    assert all(costs[kind] > 0 for kind in CPU_UNITS)


def test_an_lf_message_is_delivered_as_its_bytes_would_be(tmp_path):
    # the form a dialogue leaves to the writer (twin.stages.smtp's crs): the
    # same file, name and Work as the LF bytes it stands for
    head = b"Received: from c\n\tby mx; Mon, 5 Mar 2007\n"
    crlf = b"From: bob@example.org\r\nSubject: hi\r\n\r\nline one\r\n\r\n"
    form = LfMessage(head, crlf, len(head) + len(crlf) - crlf.count(b"\r"))
    assert bytes(form) == lf_message(head + crlf) and len(form) == len(bytes(form))
    done = {}
    for kind, message in (("bytes", bytes(form)), ("form", form)):
        store = MaildirStore(tmp_path / kind, MaildirSettings())
        done[kind] = store.deliver("alice", message, 60.0, "P1Q1")
    assert done["form"].work == done["bytes"].work
    assert done["form"].size_bytes == done["bytes"].size_bytes == len(form)
    box = mailbox.Maildir(maildir_path(tmp_path / "form", "alice"), create=False)
    assert [message.as_bytes() for message in box] == [bytes(form)]
    assert ((tmp_path / "form").rglob("new/*").__next__().read_bytes()
            == (tmp_path / "bytes").rglob("new/*").__next__().read_bytes())
