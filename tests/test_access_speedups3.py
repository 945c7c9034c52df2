"""Session-6 fast paths of the access stack against their plain forms.

Each fast path (memoized sequence sets, preformatted flag lines, Work built
without the named tuple's constructor, path concatenation, the sole writer's
stat-free index upkeep) must answer exactly what the plain path answers.
"""

import os
import random
import shutil

from twin.access.cyrusstore import (
    CUR,
    CUR_BARE,
    HEADER_BYTES,
    NEW,
    CyrusBackend,
    _Record,
    index_delivery,
    settle_store,
)
from twin.access.imapfetch import (
    fetch_flags,
    fetch_one,
    fetch_plan,
    flag_list,
    parse_fetch_items,
)
from twin.access.imapparse import ParseError, Reader, _parse_seqset, parse_seqset
from twin.access.store import (
    DELETED,
    SEEN,
    MessageInfo,
    maildir_info,
    plus_cpu,
    plus_net,
    sum_work,
)
from twin.stages.work import Work

NOW = 1_170_000_000.0


def _token(rng: random.Random) -> bytes:
    parts = []
    for _ in range(rng.randint(1, 4)):
        bound = rng.choice([b"*", b"%d" % rng.randint(0, 40), b"", b"x",
                            b"%d" % rng.randint(1, 12)])
        if rng.random() < 0.5:
            bound += b":" + rng.choice([b"*", b"%d" % rng.randint(1, 40), b""])
        parts.append(bound)
    return b",".join(parts)


def test_memoized_seqsets_answer_as_the_parse():
    rng = random.Random(1)
    for _ in range(3000):
        token, largest = _token(rng), rng.randint(1, 50)
        try:
            plain = _parse_seqset(token, largest)
        except ParseError as exc:
            plain = str(exc)
        for _ in range(2):  # the second call is served from the memo
            try:
                got = parse_seqset(token, largest)
            except ParseError as exc:
                got = str(exc)
            assert got == plain
            if isinstance(got, list):
                got.append((0, 0))  # a caller's change stays its own


def _messages(rng: random.Random, count: int) -> list[MessageInfo]:
    return [MessageInfo(uid, rng.randint(1, 9999), int(NOW), rng.randint(0, 31),
                        rng.random() < 0.3)
            for uid in sorted(rng.sample(range(1, 5 * count + 2), count))]


def test_flag_lines_match_fetch_one():
    rng = random.Random(2)

    class Box:
        readonly = True

    for _ in range(300):
        box = Box()
        box.messages = _messages(rng, rng.randint(1, 30))
        count = len(box.messages)
        indices = sorted(rng.sample(range(count), rng.randint(1, count)))
        if rng.random() < 0.5:
            indices = list(range(indices[0], count))  # a run
        for text in (b"(UID FLAGS)", b"FLAGS", b"(FLAGS UID)", b"(FLAGS)"):
            items = parse_fetch_items(Reader(text))
            order = tuple(item.kind == b"UID" for item in items)
            for with_uid in (True, False):
                lines, work = fetch_flags(box.messages, indices, order, with_uid)
                plain = [fetch_one(box, i, items, with_uid, fetch_plan(items))
                         for i in indices]
                assert lines == b"".join(line for line, _, _ in plain)
                assert work == sum_work([w for _, w, _ in plain])
        info = box.messages[indices[0]]
        assert b"FLAGS " + flag_list(info.flags, info.recent) in lines


def test_record_names_match_path_joins():
    rng = random.Random(3)
    for _ in range(500):
        location = rng.choice([NEW, CUR, CUR_BARE])
        flags = rng.randint(0, 31)
        record = _Record(MessageInfo(1, 1, 1, flags), 0, location,
                         f"{rng.randint(1, 10**9)}.M{rng.randint(0, 99)}.host",
                         0, 0)
        if location == NEW:
            plain = os.path.join("new", record.name)
        elif location == CUR:
            plain = os.path.join("cur", record.name + ":2," + maildir_info(flags))
        else:
            plain = os.path.join("cur", record.name)
        assert record.filename() == plain


def _work(rng: random.Random) -> Work:
    cpu = {k: rng.randint(0, 9) for k in rng.sample(["a.x", "b.y", "c.z"],
                                                      rng.randint(0, 3))}
    return Work(cpu=cpu, reads=tuple((f"f{i}", i) for i in range(rng.randint(0, 2))),
                writes=tuple((f"g{i}", i) for i in range(rng.randint(0, 2))),
                **{name: rng.randint(0, 3) for name in Work._fields[3:]})


def test_work_helpers_are_the_plain_sums():
    rng = random.Random(4)
    for _ in range(2000):
        work = _work(rng)
        units = {k: rng.randint(0, 5) for k in rng.sample(["a.x", "d.w"],
                                                          rng.randint(0, 2))}
        plain = work + Work(cpu=dict(units))
        got = plus_cpu(work, dict(units))
        assert got == plain and list(got.cpu) == list(plain.cpu)
        assert type(got) is Work
        net, trips = rng.randint(0, 99), rng.randint(0, 2)
        assert plus_net(work, net, trips) == work + Work(net_bytes=net,
                                                        net_round_trips=trips)
        works = [_work(rng) for _ in range(rng.randint(0, 5))]
        total = Work()
        for one in works:
            total += one
        got = sum_work(works)
        assert got == total and list(got.cpu) == list(total.cpu)
        assert type(got) is Work and type(got.cpu) is type(total.cpu)


def _store(root, users: int) -> None:
    for u in range(users):
        for sub in ("cur", "new", "tmp"):
            os.makedirs(root / f"u{u}" / "Maildir" / sub)


def _files(root) -> dict[str, bytes]:
    out = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                data = handle.read()
            if name == "cyrus.index":
                data = data[:32] + data[48:]  # new/ and cur/ mtimes: host clock
            out[os.path.relpath(path, root)] = data
    return out


def _play(root, sole: bool, seed: int) -> tuple[list, dict]:
    """Deliveries, opens, flag changes and expunges in a random order."""
    rng = random.Random(seed)
    backend = CyrusBackend(root, host_fsync=False, sole_writer=sole)
    log = []
    serial = 0
    for step in range(120):
        user = f"u{rng.randrange(3)}"
        action = rng.random()
        if action < 0.45:
            serial += 1
            name = f"{int(NOW) + serial}.M{serial}.host"
            body = b"Subject: m%d\n\n" % serial + b"line\n" * rng.randint(0, 40)
            (root / user / "Maildir" / "new" / name).write_bytes(body)
            log.append(index_delivery(root, user, "new/" + name, body,
                                      NOW + serial))
            continue
        box, work = backend.open(user, "INBOX", rng.random() < 0.2, NOW + step)
        log.append((work, [(m.uid, m.flags, m.recent) for m in box.messages]))
        if box.messages and not box.readonly:
            picks = rng.sample(range(len(box.messages)),
                               rng.randint(1, len(box.messages)))
            log.append(box.set_flags([(i, rng.choice([SEEN, SEEN | DELETED, 0]))
                                      for i in picks]))
            if rng.random() < 0.4:
                log.append(box.expunge(None))
            log.append(box.header(0) if box.messages else None)
            log.append(box.refresh())
        log.append(box.close())
    return log, backend.index_counts


def test_sole_writer_upkeep_matches_the_outside_writers_path(tmp_path):
    for seed in range(4):
        runs = {}
        for sole in (False, True):
            root = tmp_path / f"{seed}-{sole}"
            _store(root, 3)
            # the index made by a first session, as the simulator's populate
            backend = CyrusBackend(root, host_fsync=False, sole_writer=sole)
            for u in range(3):
                backend.index_written(f"u{u}", {}, NOW)
            log, counts = _play(root, sole, seed)
            runs[sole] = (log, _files(root), counts)
        assert runs[True][0] == runs[False][0]
        assert runs[True][1] == runs[False][1]
        # the sole writer reuses its kept indexes across deliveries
        assert runs[True][2]["reused"] >= runs[False][2]["reused"]


def test_sole_delivery_without_a_kept_index_reads_the_header(tmp_path):
    _store(tmp_path, 1)
    backend = CyrusBackend(tmp_path, host_fsync=False, sole_writer=True)
    backend.index_written("u0", {}, NOW)
    box, _ = backend.open("u0", "INBOX", False, NOW)  # held: not kept idle
    body = b"Subject: x\n\nx\n"
    (tmp_path / "u0" / "Maildir" / "new" / "1.M1.h").write_bytes(body)
    work = index_delivery(tmp_path, "u0", "new/1.M1.h", body, NOW)
    assert work.reads == (("u0/Maildir/cyrus.index", HEADER_BYTES),)
    expunged, got = box.refresh()
    assert expunged == [] and [m.uid for m in box.messages] == [1]
    box.close()


def test_an_index_kept_after_append_serves_as_a_fresh_read(tmp_path):
    for sole in (True, False):
        root = tmp_path / f"a-{sole}"
        _store(root, 1)
        backend = CyrusBackend(root, host_fsync=False, sole_writer=sole)
        backend.create("u0", "Archive", NOW)
        for step in range(3):
            text = b"Subject: a%d\r\n\r\n" % step + b"x\r\n" * step
            backend.append("u0", "Archive", [(text, SEEN, int(NOW) + step)], NOW)
            box, work = backend.open("u0", "Archive", True, NOW + step)
            where = root
            if sole:
                # a sole writer's index notes its directories at the end of a
                # run (settle_store): a reader outside it reads a settled copy
                where = tmp_path / f"settled-{step}"
                shutil.copytree(root, where)
                settle_store(where, int(NOW) + step)
            fresh_box, fresh = CyrusBackend(where, host_fsync=False).open(
                "u0", "Archive", True, NOW + step)
            assert work == fresh
            assert [(m.uid, m.size, m.flags) for m in box.messages] == [
                (m.uid, m.size, m.flags) for m in fresh_box.messages]
            assert box.header(step) == fresh_box.header(step)
            box.close()
            fresh_box.close()
        assert backend.index_counts["reused"] == 5  # appends and opens after the first


def test_quoted_strings_unescape_as_the_substitution():
    from twin.access.imapparse import _UNQUOTE

    rng = random.Random(5)
    for _ in range(2000):
        inner = b"".join(rng.choice([b"a", b"\\\\", b'\\"', b" ", b"x y", b"\xe9"])
                         for _ in range(rng.randint(0, 8)))
        reader = Reader(b'"' + inner + b'" rest')
        assert reader.quoted() == _UNQUOTE.sub(rb"\1", inner)
        assert reader.pos == len(inner) + 2


def test_settling_a_store_notes_its_folders_and_skips_what_is_not_a_maildir(tmp_path):
    """``settle_store``: every index notes the given time as its folder's
    ``new/`` and ``cur/`` mtime, which they get; a folder without its
    directories or with someone else's index is left as it is."""
    root = tmp_path / "store"
    _store(root, 3)
    backend = CyrusBackend(root, host_fsync=False, sole_writer=True)
    backend.create("u0", "Archive", NOW)
    for user in ("u0", "u1", "u2"):
        backend.open(user, "INBOX", False, NOW)[0].close()
    os.rmdir(root / "u1" / "Maildir" / "new")  # no longer a whole maildir
    (root / "u2" / "Maildir" / "cyrus.index").write_bytes(b"x" * HEADER_BYTES)
    before = (root / "u1" / "Maildir" / "cyrus.index").read_bytes()
    assert settle_store(root, 1_200_000_000) == 2  # u0's INBOX and Archive
    note = 1_200_000_000 * 10**9
    for folder in (root / "u0" / "Maildir", root / "u0" / "Maildir" / ".Archive"):
        data = (folder / "cyrus.index").read_bytes()
        assert data[32:48] == note.to_bytes(8, "little") * 2
        assert os.stat(folder / "new").st_mtime_ns == note
        assert os.stat(folder / "cur").st_mtime_ns == note
    assert (root / "u1" / "Maildir" / "cyrus.index").read_bytes() == before
    assert (root / "u2" / "Maildir" / "cyrus.index").read_bytes() == b"x" * HEADER_BYTES
