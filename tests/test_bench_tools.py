"""The measuring tools under benchmarks/ that wrap the package's functions."""

import importlib.util
import os
import re
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_timed_calls_counts_the_calls_of_a_wrapped_function(monkeypatch):
    timed = load("timed_calls")
    import twin.units as units

    monkeypatch.setattr(units, "parse_duration", units.parse_duration)  # restored after
    totals: dict[str, list] = {}
    timed.wrap("twin.units:parse_duration", totals)
    assert units.parse_duration("2h") == 7200.0
    assert units.parse_duration("90s") == 90.0
    wall, cpu, calls = totals["twin.units:parse_duration"]
    assert calls == 2 and wall >= cpu >= 0.0


def test_timed_calls_says_how_to_name_a_function():
    timed = load("timed_calls")
    with pytest.raises(SystemExit, match="MODULE:QUALNAME"):
        timed.wrap("twin.units.parse_duration", {})
    with pytest.raises(SystemExit):
        timed.main(["twin.units:parse_duration"])  # no command after --
    assert "benchmarks" not in sys.modules


def test_the_benchmarks_know_a_file_system_in_memory(tmp_path, monkeypatch):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        week = load("mail_week")
    finally:
        sys.path.remove(str(BENCHMARKS))
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "/dev/vda / ext4 rw 0 0\n"
        "tmpfs /dev/shm tmpfs rw 0 0\n"
        "tmpfs /dev/shmother tmpfs rw 0 0\n"
    )
    real_open = open

    def fake_open(path, *args, **kwargs):
        return real_open(mounts if path == "/proc/mounts" else path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", fake_open)
    assert week.in_memory(Path("/dev/shm/run"))
    assert week.in_memory(Path("/dev/shm"))
    assert not week.in_memory(Path("/dev/sh"))
    assert not week.in_memory(Path("/work/run"))
    monkeypatch.undo()
    # an in-memory folder: after_removal returns at once, without a wait
    monkeypatch.setattr(week, "in_memory", lambda folder: True)
    monkeypatch.setattr(week.time, "sleep", lambda s: pytest.fail("waited"))
    week.after_removal(tmp_path)
    assert week.work_folder(str(tmp_path)) == tmp_path
    with pytest.raises(SystemExit, match="--dir .*no such folder"):
        week.work_folder(str(tmp_path / "missing"))


def test_session_lookahead_times_the_sessions_of_a_run(monkeypatch, capsys):
    # it plays the sessions in its own process, whatever MAILTWIN_SESSIONS says
    # (in a worker it would find none to time); the front in a child, as in
    # a long run, where the sessions go to a worker by default
    monkeypatch.setenv("MAILTWIN_SESSIONS", "worker")
    monkeypatch.setenv("MAILTWIN_FRONT", "child")
    lookahead = load("session_lookahead")
    monkeypatch.setattr(sys, "argv", [
        "session_lookahead.py", "--duration", "4h",
        "--set", "warmup=1h", "--set", "traffic.users.inboxes=100",
        "--set", "access={mailbox_scale: 0.01}",
    ])
    assert lookahead.main() == 0
    out = capsys.readouterr().out
    sessions = int(re.search(r"4h: ([\d,]+) sessions", out)[1].replace(",", ""))
    assert sessions > 50
    shares = [float(line.split(":")[1].split("%")[0])
              for line in out.splitlines() if line.lstrip().startswith("H =")]
    assert len(shares) == len(lookahead.HORIZONS)
    # the further ahead, the fewer sessions nothing can reach before they start
    assert shares == sorted(shares, reverse=True) and shares[0] > shares[-1]
    assert os.environ["MAILTWIN_SESSIONS"] == "worker"  # put back


def test_the_waits_line_names_each_child_the_simulation_waited_for():
    week = load("mail_week")
    line = week.waits_line({"waited_seconds": {"front": 0.04, "writer": 2.25,
                                               "session_worker": 11.5}})
    assert line == ("  waits         : the simulation waited 0.0 s for the front's "
                    "frames, 2.2 s for the writer's reports, 11.5 s for the "
                    "session worker's outcomes")
    assert week.waits_line({"wall_seconds": 3.0}) == ""  # a run without children
