"""The front of a mail run (arrivals, greylisting) apart from the rest.

spamd on a host of its own serves nothing after it, so the front runs ahead
in a child process (``twin.sim.front``). These tests hold it to the same
results as the front in the model's own environment, file for file.
"""

import hashlib
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from twin.errors import TwinError
from twin.scenario import load_scenario
from twin.sim.front import (
    BATCH_ITEMS,
    FIRST_ITEMS,
    IN,
    OUT,
    ROW,
    Dialogues,
    FrontStream,
    dialogues_ahead,
    front_apart,
    rebuilt,
    run_apart,
)
from twin.sim.run import run_scenario

ROOT = Path(__file__).parent.parent / "scenarios"
SHORT = [
    "duration=6h",
    "warmup=1h",
    "traffic.users.inboxes=300",
    "output.sample_interval=10m",
    "output.batches=10",
    "access=null",
    "pipeline.spf=null",
    "pipeline.antivirus=null",
    "pipeline.spamfilter=null",
    "pipeline.ocr=null",
]


def model(name: str, overrides=()):
    return load_scenario(ROOT / f"{name}.yaml", [*SHORT, *overrides]).model


def test_the_front_runs_apart_only_where_spamd_has_a_host_of_its_own():
    assert front_apart(model("ece-2007-dell"))
    # on the MX (postgrey's place), it shares the CPU with smtpd
    assert not front_apart(model("ece-2007-dell", ["pipeline.greylist.on=gateway"]))
    assert not front_apart(model("ece-2007-dell", ["pipeline.greylist.on=mail"]))
    # users reading mail on spamd's host would share it too
    reading = load_scenario(ROOT / "ece-2007-dell.yaml", ["access.on=spamd"]).model
    assert not front_apart(reading)
    assert not front_apart(model("ece-2007-dell", ["pipeline.greylist=null"]))
    assert not front_apart(model("ece-2004-sun"))


def files(folder: Path) -> dict[str, str]:
    """Relative path -> digest of every file of a run but its manifest, its
    summary (compared apart) and Cyrus index files (they hold the host's
    mtimes of new/ and cur/)."""
    found = {}
    for path in folder.rglob("*"):
        name = path.relative_to(folder).as_posix()
        if path.is_file() and name not in ("manifest.json", "summary.json") and (
            path.name != "cyrus.index"
        ):
            found[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The short dell run with its front shared, in a child and in process."""
    scenario = load_scenario(ROOT / "ece-2007-dell.yaml", SHORT)
    done = {}
    for mode in ("shared", "child", "inline"):
        before = os.environ.get("MAILTWIN_FRONT")
        os.environ["MAILTWIN_FRONT"] = mode
        try:
            folder = tmp_path_factory.mktemp(mode) / "run"
            done[mode] = run_scenario(scenario, folder, quiet=True)
        finally:
            if before is None:
                del os.environ["MAILTWIN_FRONT"]
            else:
                os.environ["MAILTWIN_FRONT"] = before
    return done


@pytest.mark.parametrize("mode", ["child", "inline"])
def test_an_apart_front_gives_the_shared_fronts_results(runs, mode):
    shared, apart = runs["shared"], runs[mode]
    summary = dict(shared.summary)
    other = dict(apart.summary)
    # the apart front's events are counted too, with those of the stream
    assert other.pop("sim.events") > summary.pop("sim.events")
    assert other == summary
    assert summary["greylist.deferred"] > 100
    assert summary["messages.abandoned"] > 100
    assert summary["util.spamd.spamd"] > 0
    for table in ("jobs.parquet", "resources.parquet"):
        left = pd.read_parquet(shared.path / table)
        right = pd.read_parquet(apart.path / table)
        pd.testing.assert_frame_equal(left, right)
    spamd = pd.read_parquet(apart.path / "resources.parquet")
    assert spamd[spamd.resource == "spamd.spamd"].busy.max() > 0
    left, right = files(shared.path), files(apart.path)
    assert "greylist/spamdb.txt" in left
    assert len(left) > 500  # the maildirs, the directory, the greylist
    assert left == right


def test_child_and_in_process_fronts_send_the_same_stream():
    scenario = model("ece-2007-dell", ["duration=2h", "warmup=10m"])
    child = FrontStream(scenario, 7, child=True)
    inline = FrontStream(scenario, 7, child=False)
    left, right = list(child), list(inline)
    assert repr(left) == repr(right)  # (nan != nan: compare the reprs)
    kinds = {item[1] for item in left}
    assert kinds == {IN, OUT, ROW}
    times = [item[0] for item in left]
    assert times == sorted(times)
    assert repr(child.final()) == repr(inline.final())
    assert child.snapshots == inline.snapshots
    assert 0.0 in child.snapshots and 600.0 in child.snapshots  # start, warm-up
    assert child.final()["counters"]["offered"] > 0


def test_the_first_frames_are_small_and_grow_to_the_batch_size():
    items = []
    run_apart(model("ece-2007-dell"), 7, lambda batch: items.append(len(batch)))
    assert items[0] <= FIRST_ITEMS
    assert all(n <= FIRST_ITEMS * 4**k for k, n in enumerate(items))
    assert 4 * FIRST_ITEMS < max(items) <= BATCH_ITEMS


def test_a_front_child_that_dies_while_read_ahead_is_a_one_line_error():
    stream = FrontStream(model("ece-2007-dell"), 7, child=True)
    first = next(iter(stream))  # the reader thread is reading ahead
    assert first[1] in (IN, OUT, ROW)
    stream._process.kill()
    with pytest.raises(TwinError, match="the front of the run .* failed: killed by"):
        list(stream)
    stream.close()
    assert not stream._reader.is_alive()


def test_closing_a_stream_not_read_ends_child_and_reader():
    stream = FrontStream(model("ece-2007-dell", ["duration=3d"]), 7, child=True)
    process = stream._process
    stream.close()  # the child blocked on a full pipe, the reader on room
    assert process.poll() is not None
    assert not stream._reader.is_alive()


def test_a_front_child_that_dies_is_a_one_line_error():
    stream = FrontStream(model("ece-2007-dell"), 7, child=True)
    stream._process.kill()
    with pytest.raises(TwinError, match="the front of the run .* failed: killed by"):
        list(stream)
    stream.close()


@pytest.fixture
def streams(monkeypatch) -> list:
    """Every FrontStream made while the test runs, each in a child."""
    monkeypatch.setenv("MAILTWIN_FRONT", "child")
    seen = []
    original = FrontStream.__init__

    def keep(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen.append(self)

    monkeypatch.setattr(FrontStream, "__init__", keep)
    return seen


def test_a_front_child_is_ended_when_the_run_fails(tmp_path, monkeypatch, streams):
    from twin.sim import mail

    def fail(self, record, content, *, inbound, ahead=None):
        raise RuntimeError("smtpd broke")
        yield  # a generator, as _receive is

    monkeypatch.setattr(mail.MailModel, "_receive", fail)
    scenario = load_scenario(ROOT / "ece-2007-dell.yaml", SHORT)
    with pytest.raises(RuntimeError, match="smtpd broke"):
        run_scenario(scenario, tmp_path / "run", quiet=True)
    (stream,) = streams
    assert stream._process is None  # closed: killed and waited for
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    # the tables the writer process held are closed: readable, partial
    for table in ("jobs.parquet", "resources.parquet"):
        pd.read_parquet(tmp_path / "run" / table)


def test_a_model_that_fails_to_build_ends_its_front_child(
    tmp_path, monkeypatch, streams
):
    from twin.sim import mail

    def broken(*args, **kwargs):
        raise OSError("no room for the store")

    monkeypatch.setattr(mail, "build_stages", broken)
    scenario = load_scenario(ROOT / "ece-2007-dell.yaml", SHORT)
    with pytest.raises(OSError, match="no room"):
        run_scenario(scenario, tmp_path / "run", quiet=True)
    (stream,) = streams
    assert stream._process is None


def test_where_no_child_can_start_the_front_shares_the_model(
    runs, tmp_path, monkeypatch
):
    from twin.sim import front

    def refused(*args, **kwargs):
        raise OSError("no more processes")

    monkeypatch.setattr(front, "spawn_child", refused)
    monkeypatch.setenv("MAILTWIN_FRONT", "child")
    scenario = load_scenario(ROOT / "ece-2007-dell.yaml", SHORT)
    done = run_scenario(scenario, tmp_path / "run", quiet=True)
    assert done.summary == runs["shared"].summary  # sim.events too: shared
    assert files(done.path) == files(runs["shared"].path)


READING = [
    "duration=8h",
    "warmup=1h",
    "traffic.users.inboxes=120",
    "access={mailbox_scale: 0.01}",
    "output.sample_interval=10m",
    "output.batches=5",
    "pipeline.spf=null",
    "pipeline.antivirus=null",
    "pipeline.spamfilter=null",
    "pipeline.ocr=null",
]


def test_the_front_plays_smtpds_side_only_where_users_read_and_nothing_delays_it():
    reading = load_scenario(ROOT / "ece-2007-dell.yaml", READING).model
    assert dialogues_ahead(reading)
    assert not dialogues_ahead(model("ece-2007-dell"))  # no readers: its core is full
    spf = [o for o in READING if o != "pipeline.spf=null"]
    with_spf = load_scenario(ROOT / "ece-2007-dell.yaml", spf).model
    assert with_spf.pipeline.spf is not None
    assert not dialogues_ahead(with_spf)


def test_dialogues_played_by_the_front_give_the_same_results(tmp_path, monkeypatch):
    """smtpd's side of each dialogue, played by the front at the hand-over
    (``Dialogues``), gives the run the results of playing it in the model."""
    import twin.sim.mail as mail

    taken = []

    def counting(ahead, message):
        taken.append(ahead[2].decision)
        return rebuilt(ahead, message)

    monkeypatch.setattr(mail, "rebuilt", counting)
    monkeypatch.setenv("MAILTWIN_FRONT", "inline")
    scenario = load_scenario(ROOT / "ece-2007-dell.yaml", READING)
    ahead = run_scenario(scenario, tmp_path / "ahead", quiet=True)
    assert len(taken) > 200
    assert len(set(taken)) > 1  # accepted ones, and some refused
    used = len(taken)
    monkeypatch.setenv("MAILTWIN_FRONT_SMTP", "0")
    here = run_scenario(scenario, tmp_path / "here", quiet=True)
    assert len(taken) == used  # none the second time
    assert ahead.summary == here.summary
    assert here.summary["access.sessions"] > 100
    assert here.summary["messages.delivered"] > 200
    for table in ("jobs.parquet", "resources.parquet"):
        assert (ahead.path / table).read_bytes() == (here.path / table).read_bytes()
    assert files(ahead.path) == files(here.path)


def test_a_dialogue_is_played_again_where_the_front_could_not_know_it():
    """Another second, or another TLS choice, than the front's: the entry
    is not taken (``MailModel._receive`` compares both)."""
    from twin.sim.mailsetup import population_settings
    from twin.sim.streams import Streams
    from twin.traffic.population import Population

    scenario = load_scenario(ROOT / "ece-2007-dell.yaml", READING).model
    population = Population(population_settings(scenario), Streams(3)("population"))
    dialogues = Dialogues(scenario, population, Streams(3))
    user = population.usernames[0]
    spec = type("Spec", (), {
        "client_ip": "192.0.2.7", "helo": "mx.example.org",
        "sender": "a@example.org", "recipients": (f"{user}@{scenario.domain}",),
        "auth": None, "msg_id": 42, "offsite": False})()
    message = b"Subject: hi\r\nFrom: a@example.org\r\n\r\nhello\r\n"
    entry = dialogues.inbound(spec, (message, False, False, True), 100.5)
    second, tls, result, header, body_lf, parsed = entry
    assert second == 100 and result.message is None
    # the LF form lmtpd delivers, and Cyrus's parse of it (a maildir store)
    assert body_lf == message.replace(b"\r", b"") and parsed[0] > len(body_lf)
    whole = rebuilt(entry, message)
    again = dialogues.mx.transact(
        spec.client_ip, spec.helo, spec.sender, spec.recipients, message,
        auth=None, tls=tls, now=100.9, queue_id="M0000002A", as_is=True)
    assert whole == again  # the same second: the same result
    later = dialogues.mx.transact(
        spec.client_ip, spec.helo, spec.sender, spec.recipients, message,
        auth=None, tls=tls, now=101.0, queue_id="M0000002A", as_is=True)
    assert later.message != whole.message  # the Received: header's date
    # a message that does not go as it is is left to the model
    assert dialogues.inbound(spec, (message, False, False, False), 100.5) is None
