"""The command line, run as a user runs it: exit codes, one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from twin.cli import main

ROOT = Path(__file__).parent.parent
BAD = sorted((Path(__file__).parent / "data" / "bad").glob("*.yaml"))


def twin(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "twin.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_scenarios_exit_2_without_traceback(path, capsys):
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith(f"{path}:")
    assert main(["run", str(path), "--quiet", "--out", "/nonexistent/never"]) == 2


def test_validate_and_estimate(capsys):
    assert main(["validate", "validation/mm4"]) == 0
    assert "ok (queueing scenario 'mm4'" in capsys.readouterr().out
    assert main(["estimate", "validation/mm4"]) == 0
    out = capsys.readouterr().out
    assert "Erlang C" in out and "0.7455" in out
    assert main(["estimate", "validation/mm4", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["station.s1.utilization"] == pytest.approx(0.8)


def test_estimate_warns_when_hopeless(capsys):
    assert main(["estimate", "validation/mm1", "--set", "arrivals.rate=2/s"]) == 0
    out = capsys.readouterr().out
    assert "warning: station server: utilisation 2 >= 1" in out


def test_bad_set_is_one_line(capsys):
    assert main(["validate", "validation/mm4", "--set", "stations.s1.servers=-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "--set stations.s1.servers=-1: stations.s1.servers: input should "
        "be greater than or equal to 1, found -1"
    ]


def test_run_end_to_end_in_a_subprocess(tmp_path):
    out = tmp_path / "mm1"
    done = twin(
        "run",
        "validation/mm1",
        "--out",
        str(out),
        "--seed",
        "3",
        "--duration",
        "2000s",
        "--set",
        "warmup=100s",
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "station.server.utilization" in done.stdout
    assert "Traceback" not in done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sim.duration"] == 2000
    resolved = (out / "scenario.resolved.yaml").read_text()
    assert "seed: 3" in resolved
    again = twin(
        "run",
        "validation/mm1",
        "--out",
        str(out),
        "--seed",
        "3",
        "--duration",
        "2000s",
        "--set",
        "warmup=100s",
        cwd=ROOT,
    )
    assert "already complete" in again.stdout


def test_list_names_the_scenarios(capsys):
    assert main(["list"]) == 0
    names = capsys.readouterr().out.split()
    assert "validation/mm4" in names and "validation/jackson" in names


def test_unknown_scenario_name(capsys):
    assert main(["validate", "no-such-scenario"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_unwritable_run_folder_is_one_line(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code = main(
        [
            "run",
            "validation/mm1",
            "--duration",
            "100s",
            "--set",
            "warmup=10s",
            "--out",
            str(blocker / "run"),
            "--quiet",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot create the run folder" in err[0]
