"""Child processes started before the model needs them (``twin.sim.children``).

``twin run`` starts a run's front child as soon as the scenario is loaded;
the model adopts it. These tests hold an adopted child to the results of one
started late, and check that a child never adopted ends cleanly.
"""

from pathlib import Path

import pytest

from twin import cli
from twin.scenario import load_scenario
from twin.sim import children
from twin.sim.children import (
    FRONT_CODE,
    adopt,
    discard_waiting,
    prespawn,
    prespawn_for,
    prespawn_guess,
)
from twin.sim.front import FrontStream

ROOT = Path(__file__).parent.parent / "scenarios"
SHORT = [
    "duration=2h",
    "warmup=10m",
    "traffic.users.inboxes=200",
    "access=null",
    "pipeline.spf=null",
    "pipeline.antivirus=null",
    "pipeline.spamfilter=null",
    "pipeline.ocr=null",
]


@pytest.fixture(autouse=True)
def no_leftovers():
    yield
    discard_waiting()
    assert not children._WAITING


def dell(overrides=()):
    return load_scenario(ROOT / "ece-2007-dell.yaml", [*SHORT, *overrides])


def test_a_run_that_will_have_a_front_child_gets_one_started_early(monkeypatch):
    monkeypatch.delenv("MAILTWIN_FRONT", raising=False)
    prespawn_for(dell(["duration=1d"]))  # a day or more: a child
    assert FRONT_CODE in children._WAITING
    discard_waiting()
    for nothing in (
        dell(),  # shorter than a day: the front shares the model
        dell(["duration=1d", "pipeline.greylist.on=gateway"]),  # not apart
        load_scenario(ROOT / "validation" / "mm1.yaml", []),  # not a mail scenario
    ):
        prespawn_for(nothing)
        assert not children._WAITING
    monkeypatch.setenv("MAILTWIN_FRONT", "shared")
    prespawn_for(dell(["duration=1d"]))
    assert not children._WAITING
    monkeypatch.setenv("MAILTWIN_FRONT", "child")
    prespawn_for(dell())
    assert FRONT_CODE in children._WAITING


def test_an_adopted_front_child_sends_what_a_new_one_sends():
    scenario = dell().model
    fresh = list(FrontStream(scenario, 7))
    prespawn(FRONT_CODE, capture_errors=True)
    process = children._WAITING[FRONT_CODE][0]
    stream = FrontStream(scenario, 7)
    assert stream._process is process  # adopted, not started anew
    assert not children._WAITING
    adopted = list(stream)
    assert repr(adopted) == repr(fresh)  # (nan != nan: compare the reprs)
    assert len(adopted) > 100
    assert stream.final()["counters"]["offered"] > 0


def test_a_child_never_adopted_is_ended_at_once():
    prespawn(FRONT_CODE, capture_errors=True)
    process, errors = children._WAITING[FRONT_CODE]
    discard_waiting()
    assert process.returncode is not None  # ended, not left importing
    assert errors.closed  # nothing left open
    assert not children._WAITING


def test_a_child_whose_parent_goes_away_exits_quietly():
    # the parent's end closes the child's stdin: end of input, exit status 0
    process = children.spawn_child(FRONT_CODE)
    out, _ = process.communicate(b"", timeout=60)
    assert process.returncode == 0 and out == b""


def test_the_guess_from_the_file_starts_a_child_the_loaded_scenario_corrects(
        monkeypatch):
    monkeypatch.delenv("MAILTWIN_FRONT", raising=False)
    path = ROOT / "ece-2007-dell.yaml"  # a week
    prespawn_guess(path)
    assert FRONT_CODE in children._WAITING
    process = children._WAITING[FRONT_CODE][0]
    prespawn_for(dell(["duration=1d"]))  # it will have one: kept
    assert children._WAITING[FRONT_CODE][0] is process
    prespawn_for(dell())  # two hours: no child, the guessed one ended
    assert not children._WAITING and process.returncode is not None
    for overrides in (["duration=6h"], [("--duration 2h", "duration=2h")]):
        prespawn_guess(path, overrides)
        assert not children._WAITING
    prespawn_guess(path, ["traffic.users.inboxes=10", ("--duration 2d", "duration=2d")])
    assert FRONT_CODE in children._WAITING
    discard_waiting()
    for other in (ROOT / "validation" / "mm1.yaml", ROOT / "missing.yaml"):
        prespawn_guess(other)
        assert not children._WAITING
    monkeypatch.setenv("MAILTWIN_FRONT", "shared")
    prespawn_guess(path)
    assert not children._WAITING
    monkeypatch.setenv("MAILTWIN_FRONT", "child")
    prespawn_guess(path, ["duration=1h"])
    assert FRONT_CODE in children._WAITING


def test_a_child_that_died_while_waiting_is_not_adopted():
    prespawn(FRONT_CODE, capture_errors=True)
    process, _ = children._WAITING[FRONT_CODE]
    process.kill()
    process.wait()
    assert adopt(FRONT_CODE) is None
    assert not children._WAITING


def test_twin_run_leaves_no_child_behind(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MAILTWIN_FRONT", "child")
    scenario = ROOT / "ece-2007-dell.yaml"
    sets = [item for override in SHORT for item in ("--set", override)]
    out = tmp_path / "run"
    assert cli.main(["run", str(scenario), "--out", str(out), "--quiet", *sets]) == 0
    assert not children._WAITING
    # found complete: the child started early is not needed, and ended
    started = []
    real_prespawn = children.prespawn

    def counting(code, capture_errors=False):
        real_prespawn(code, capture_errors)
        started.append(children._WAITING[code][0])

    monkeypatch.setattr(children, "prespawn", counting)
    assert cli.main(["run", str(scenario), "--out", str(out), "--quiet", *sets]) == 0
    assert "already complete" in capsys.readouterr().out
    # started on the guess from the file, kept once the scenario was loaded
    assert len({id(process) for process in started}) == 1
    assert started[0].returncode is not None
    assert not children._WAITING


def test_write_frame_writes_head_and_body_whole_even_past_the_pipe_buffer():
    import os
    import threading

    from twin.sim.children import FRAME_HEAD, write_frame

    body = bytes(range(256)) * 4096  # 1 MiB: more than a default pipe holds
    read_end, write_end = os.pipe()
    got = bytearray()

    def drain():
        while chunk := os.read(read_end, 1 << 16):
            got.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    write_frame(write_end, body)
    write_frame(write_end, b"")
    os.close(write_end)
    reader.join()
    os.close(read_end)
    (size,) = FRAME_HEAD.unpack_from(got, 0)
    assert size == len(body)
    assert bytes(got[8:8 + size]) == body
    assert FRAME_HEAD.unpack_from(got, 8 + size) == (0,)
    assert len(got) == 8 + size + 8


def test_write_frame_goes_on_after_a_partial_write(monkeypatch):
    from twin.sim import children as module

    calls = []

    def short_writev(fd, pieces):  # takes at most 5 bytes a call
        data = b"".join(bytes(piece) for piece in pieces)[:5]
        calls.append(data)
        return len(data)

    monkeypatch.setattr(module.os, "writev", short_writev)
    module.write_frame(7, b"hello world")
    assert b"".join(calls) == module.FRAME_HEAD.pack(11) + b"hello world"
    assert len(calls) == 4


def test_exit_status_names_a_signal_and_suspects_memory_for_sigkill():
    from twin.sim.children import exit_status

    assert exit_status(0) == "exit status 0"
    assert exit_status(2) == "exit status 2"
    assert exit_status(-15) == "killed by SIGTERM"
    assert exit_status(-9).startswith("killed by SIGKILL: out of memory?")
