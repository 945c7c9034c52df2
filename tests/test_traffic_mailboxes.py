"""populate(): real maildir and mbox stores with the drawn counts and sizes."""

import mailbox
import math
import os

import numpy as np
import pytest

from twin.access.cyrusstore import CyrusBackend
from twin.access.imap import ImapSession
from twin.access.mboxstore import MboxBackend
from twin.traffic.mailboxes import populate
from twin.traffic.population import Population, PopulationSettings
from twin.traffic.users import ReadingSettings, draw_profiles

SCALE = 0.02


@pytest.fixture(scope="module")
def population():
    return Population(PopulationSettings(users=12), np.random.default_rng(1))


class Directory:
    def __init__(self, population):
        self.population = population

    def authenticate(self, user, password):
        return self.population.password_of(user) == password


def open_box(root, fmt, user):
    if fmt == "maildir":
        return mailbox.Maildir(root / user / "Maildir", create=False)
    return mailbox.mbox(root / user, create=False)


@pytest.mark.parametrize("fmt", ["maildir", "mbox"])
def test_counts_sizes_and_flags_read_back(tmp_path, population, fmt):
    settings = ReadingSettings(mailbox_scale=SCALE)
    profiles = draw_profiles(settings, population, np.random.default_rng(2))
    stats = populate(tmp_path, fmt, population, settings, np.random.default_rng(3),
                     profiles=profiles, index=False)
    assert stats.format == fmt and stats.users == 12
    assert stats.messages == sum(stats.per_user_messages) > 50
    assert stats.message_bytes == sum(stats.per_user_bytes)
    assert stats.largest_mailbox_bytes == max(stats.per_user_bytes)
    assert (tmp_path / ".format").read_text() == fmt + "\n"
    unread = 0
    for i, user in enumerate(population.usernames):
        box = open_box(tmp_path, fmt, user)
        keys = box.keys()
        assert len(keys) == stats.per_user_messages[i]
        assert sum(len(box.get_bytes(k)) for k in keys) == stats.per_user_bytes[i]
        for key in keys:
            message = box[key]
            seen = ("S" in message.get_flags() if fmt == "maildir"
                    else "R" in message.get_flags())
            unread += not seen
            assert message["Message-ID"] and message["To"] == (
                f"{user}@{population.local_domain}")
        waiting = not profiles.imap[i] and not profiles.keep_on_server[i]
        assert stats.known_messages[i] == (0 if waiting else len(keys))
        box.close()
    assert unread == stats.unread
    if fmt == "maildir":
        files = sum(len(f) for _, _, f in os.walk(tmp_path) if f)
        assert files == stats.messages + 1  # plus .format
        assert stats.file_bytes == stats.message_bytes
        assert not any(os.listdir(tmp_path / u / "Maildir" / "new")
                       for u in population.usernames)
    else:
        on_disk = sum(os.path.getsize(tmp_path / u) for u in population.usernames)
        assert stats.file_bytes == on_disk > stats.message_bytes


def test_counts_follow_the_scale(tmp_path, population):
    profiles = draw_profiles(ReadingSettings(), population, np.random.default_rng(2))
    stats = populate(tmp_path, "mbox", population,
                     ReadingSettings(mailbox_scale=SCALE), np.random.default_rng(3),
                     profiles=profiles)
    for drawn, written in zip(profiles.mailbox_messages, stats.per_user_messages,
                              strict=True):
        assert math.floor(drawn * SCALE) <= written <= math.ceil(drawn * SCALE)


def test_message_sizes_follow_the_lognormal(tmp_path):
    population = Population(PopulationSettings(users=4), np.random.default_rng(0))
    settings = ReadingSettings(mailbox_messages_median=3000.0,
                               mailbox_messages_sigma=0.0, user_size_sigma=0.0,
                               imap_share=1.0, mailbox_scale=0.5)
    stats = populate(tmp_path, "maildir", population, settings,
                     np.random.default_rng(5), index=False)
    assert stats.messages == 4 * 1500
    sizes = []
    for user in population.usernames:
        cur = tmp_path / user / "Maildir" / "cur"
        sizes += [entry.stat().st_size for entry in os.scandir(cur)]
    sizes = np.array(sizes)
    assert sizes.min() >= 800 and sizes.sum() == stats.message_bytes
    assert abs(np.mean(sizes <= 6000) - 0.5) < 0.03  # the median is 6 KB
    # Clipping at 800 bytes only lifts the lowest ~12 %.
    assert abs(np.mean(sizes <= 800) - 0.117) < 0.03
    assert abs(np.log(sizes[sizes > 800]).std() - 1.45) < 0.1
    big = [s for s in sizes if s > 16_384]
    assert big  # multipart messages with attachments exist and parse
    box = mailbox.Maildir(tmp_path / population.usernames[0] / "Maildir")
    multipart = [m for m in box if m.is_multipart()]
    assert multipart and all(len(m.get_payload()) == 2 for m in multipart)


def test_same_seed_same_store(tmp_path, population):
    settings = ReadingSettings(mailbox_scale=SCALE)
    a = populate(tmp_path / "a", "mbox", population, settings,
                 np.random.default_rng(9))
    b = populate(tmp_path / "b", "mbox", population, settings,
                 np.random.default_rng(9))
    assert a == b
    for user in population.usernames:
        assert (tmp_path / "a" / user).read_bytes() == (tmp_path / "b" / user
                                                        ).read_bytes()


@pytest.mark.parametrize("fmt", ["maildir", "mbox"])
def test_servers_see_uids_in_time_order_without_rewriting(tmp_path, population, fmt):
    settings = ReadingSettings(mailbox_scale=SCALE)
    stats = populate(tmp_path, fmt, population, settings, np.random.default_rng(3))
    assert stats.indexed == (fmt == "maildir")
    user = population.usernames[int(np.argmax(stats.per_user_messages))]
    count = max(stats.per_user_messages)
    if fmt == "maildir":
        assert (tmp_path / user / "Maildir" / "cyrus.index").is_file()
        backend = CyrusBackend(tmp_path)
    else:
        backend = MboxBackend(tmp_path)
    before = os.stat(tmp_path / user if fmt == "mbox"
                     else tmp_path / user / "Maildir" / "cyrus.index").st_mtime_ns
    imap = ImapSession(backend, Directory(population), now_fn=lambda: 1.2e9)
    imap.feed(b"a LOGIN %s %s\r\n" % (user.encode(),
                                      population.password_of(user).encode()))
    reply = imap.feed(b"b SELECT INBOX\r\n")
    assert b"* %d EXISTS\r\n" % count in reply
    assert b"* 0 RECENT\r\n" in reply
    assert b"[UIDNEXT %d]" % (count + 1) in reply
    if fmt == "maildir":
        assert len(imap.last_work.reads) == 1  # the index alone: no reconstruct
    dates = imap.feed(b"c UID FETCH 1:* (UID INTERNALDATE)\r\n")
    assert dates.count(b" FETCH (") == count
    reply = imap.feed(b"d LOGOUT\r\n")
    assert reply.endswith(b"d OK LOGOUT completed\r\n")
    assert imap.last_work.writes == ()  # UW found its headers: nothing to rewrite
    after = os.stat(tmp_path / user if fmt == "mbox"
                    else tmp_path / user / "Maildir" / "cyrus.index").st_mtime_ns
    assert after == before


def test_bad_format_and_profiles_raise(tmp_path, population):
    with pytest.raises(ValueError, match="format 'mh'"):
        populate(tmp_path, "mh", population, ReadingSettings(),
                 np.random.default_rng(0))
    other = Population(PopulationSettings(users=3), np.random.default_rng(0))
    profiles = draw_profiles(ReadingSettings(), other, np.random.default_rng(0))
    with pytest.raises(ValueError, match="profiles cover 3 users"):
        populate(tmp_path, "mbox", population, ReadingSettings(),
                 np.random.default_rng(0), profiles=profiles)


def _store_bytes(root):
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*")) if path.is_file()
    }


def _attachment_lines(files):
    """The first base64 line of every attachment in the stores' files."""
    marker = b"Content-Transfer-Encoding: base64\n\n"
    lines = []
    for data in files.values():
        pos = data.find(marker)
        while pos >= 0:
            start = pos + len(marker)
            lines.append(data[start : data.index(b"\n", start)])
            pos = data.find(marker, start)
    return lines


@pytest.mark.parametrize("fmt", ["maildir", "mbox"])
def test_the_seed_decides_every_byte(tmp_path, population, fmt):
    """Attachments come from the caller's generator too: same seed, same store;
    another seed, other attachment bytes (no fixed module-wide seed)."""
    settings = ReadingSettings(mailbox_scale=SCALE, message_size_median_bytes=20_000)
    profiles = draw_profiles(settings, population, np.random.default_rng(2))
    stores = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        stats = populate(tmp_path / name, fmt, population, settings,
                         np.random.default_rng(seed), profiles=profiles,
                         index=False)
        stores[name] = (stats, _store_bytes(tmp_path / name))
    (stats_a, files_a), (stats_b, files_b), (_stats_c, files_c) = (
        stores["a"], stores["b"], stores["c"])
    assert stats_a == stats_b and files_a == files_b
    assert files_a != files_c
    lines_a, lines_c = _attachment_lines(files_a), _attachment_lines(files_c)
    assert len(lines_a) > 5 and len(lines_c) > 5
    assert not set(lines_a) & set(lines_c)
