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
from twin.sim.children import FRONT_CODE, adopt, discard_waiting, prespawn, prespawn_for
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


def test_a_child_never_adopted_ends_quietly():
    prespawn(FRONT_CODE, capture_errors=True)
    process, errors = children._WAITING[FRONT_CODE]
    discard_waiting()
    assert process.returncode == 0
    assert errors.closed  # nothing left open


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
    assert len(started) == 1 and started[0].returncode == 0
    assert not children._WAITING
