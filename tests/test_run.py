"""Run folders: complete, deterministic, atomic, resumable; failures recorded."""

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from twin.scenario import load_scenario
from twin.sim.queueing import QueueingModel, jobs_schema
from twin.sim.recorder import RESOURCE_SCHEMA
from twin.sim.run import run_scenario, wait_for_removals

JACKSON = Path(__file__).parent.parent / "scenarios" / "validation" / "jackson.yaml"
SHORT = [
    "duration=3000s",
    "warmup=300s",
    "output.jobs_table=true",
    "output.sample_interval=100s",
    "output.batches=10",
]


def short(*extra):
    return load_scenario(JACKSON, [*SHORT, *extra])


def test_run_folder_contents(tmp_path):
    result = run_scenario(short(), tmp_path / "run", quiet=True)
    folder = result.path
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "jobs.parquet",
        "manifest.json",
        "resources.parquet",
        "scenario.resolved.yaml",
        "summary.json",
    ]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["seed"] == 1
    assert manifest["events"] > 0 and manifest["wall_seconds"] >= 0
    assert manifest["simulated_duration_s"] == 3000
    summary = json.loads((folder / "summary.json").read_text())
    assert all(
        isinstance(value, (int, float)) or value is None for value in summary.values()
    )
    assert summary["station.s1.utilization"] > 0
    jobs = pd.read_parquet(folder / "jobs.parquet")
    assert len(jobs) == summary["jobs.arrived"]
    completed = jobs[jobs.outcome == "completed"]
    assert len(completed) == summary["jobs.completed"]
    assert (completed["departure"] >= completed["arrival"]).all()
    assert (completed["s1.visits"] >= 1).all()
    assert sorted(jobs["job_id"]) == list(range(1, len(jobs) + 1))
    resources = pd.read_parquet(folder / "resources.parquet")
    assert set(resources.resource) == {"s1", "s2", "s3"}
    assert len(resources) == 3 * 30
    assert resources.utilization.between(0, 1).all()


def test_schemas_are_pinned(tmp_path):
    folder = run_scenario(short(), tmp_path / "run", quiet=True).path
    jobs = pq.read_schema(folder / "jobs.parquet")
    assert jobs.names[:6] == [
        "job_id",
        "class",
        "arrival",
        "departure",
        "response",
        "outcome",
    ]
    assert jobs.names[6:10] == ["s1.start", "s1.end", "s1.wait", "s1.visits"]
    assert jobs.equals(jobs_schema(["s1", "s2", "s3"]), check_metadata=False)
    assert pq.read_schema(folder / "resources.parquet").equals(
        RESOURCE_SCHEMA, check_metadata=False
    )


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    first = run_scenario(short(), tmp_path / "a", quiet=True).path
    second = run_scenario(short(), tmp_path / "b", quiet=True).path
    for name in (
        "summary.json",
        "jobs.parquet",
        "resources.parquet",
        "scenario.resolved.yaml",
    ):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    third = run_scenario(short("seed=2"), tmp_path / "c", quiet=True).path
    assert (first / "summary.json").read_bytes() != (
        third / "summary.json"
    ).read_bytes()


def test_resolved_scenario_reruns_identically(tmp_path):
    first = run_scenario(short(), tmp_path / "a", quiet=True).path
    again = load_scenario(first / "scenario.resolved.yaml")
    second = run_scenario(again, tmp_path / "b", quiet=True).path
    assert (first / "summary.json").read_bytes() == (
        second / "summary.json"
    ).read_bytes()


def test_complete_run_is_reused_unless_forced(tmp_path):
    first = run_scenario(short(), tmp_path / "run", quiet=True)
    assert not first.reused
    again = run_scenario(short(), tmp_path / "run", quiet=True)
    assert again.reused and again.summary == first.summary
    changed = run_scenario(short("stations.s1.servers=3"), tmp_path / "run", quiet=True)
    assert not changed.reused
    forced = run_scenario(
        short("stations.s1.servers=3"), tmp_path / "run", quiet=True, force=True
    )
    assert not forced.reused
    wait_for_removals()  # the replaced runs go in the background
    assert not list(tmp_path.glob(".run*")), "staging folders must not be left behind"


def test_a_replaced_run_is_moved_aside_and_removed_in_the_background(tmp_path):
    first = run_scenario(short(), tmp_path / "run", quiet=True)
    (first.path / "extra" / "deep").mkdir(parents=True)
    (first.path / "extra" / "deep" / "file").write_bytes(b"x" * 4096)
    second = run_scenario(short("seed=3"), tmp_path / "run", quiet=True)
    assert second.path == first.path and not (second.path / "extra").exists()
    aside = [p.name for p in tmp_path.iterdir() if p.name != "run"]
    assert all(name.startswith(".run.old-") for name in aside), aside
    wait_for_removals()
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    assert (second.path / "summary.json").exists()


def test_a_replaced_run_is_removed_at_once_where_no_process_starts(
        tmp_path, monkeypatch):
    import subprocess

    run_scenario(short(), tmp_path / "run", quiet=True)

    def refuse(*args, **kwargs):
        raise OSError("no processes left")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    run_scenario(short("seed=3"), tmp_path / "run", quiet=True)
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


@pytest.mark.parametrize("phase", ["__init__", "start", "_job", "finish"])
def test_failure_in_each_phase_leaves_a_complete_record(tmp_path, monkeypatch, phase):
    original = getattr(QueueingModel, phase)

    def broken(self, *args, **kwargs):
        if phase == "__init__":
            original(self, *args, **kwargs)
        raise RuntimeError(f"injected failure in {phase}")

    def broken_job(self, *args, **kwargs):
        raise RuntimeError("injected failure in a job")
        yield  # a generator, like the real one

    monkeypatch.setattr(QueueingModel, phase, broken_job if phase == "_job" else broken)
    with pytest.raises(RuntimeError, match="injected failure"):
        run_scenario(short(), tmp_path / "run", quiet=True)
    folder = tmp_path / "run"
    assert (folder / "scenario.resolved.yaml").exists()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert "injected failure" in manifest["error"]
    assert "injected failure" in (folder / "error.txt").read_text()
    assert not (folder / "summary.json").exists()
    monkeypatch.undo()
    rerun = run_scenario(short(), tmp_path / "run", quiet=True)
    assert not rerun.reused and (folder / "summary.json").exists()


@pytest.mark.parametrize("fail", [False, True])
def test_collector_is_slowed_only_while_the_clock_runs(tmp_path, monkeypatch, fail):
    import gc

    from twin.sim.run import RUN_GC_THRESHOLDS

    seen = []
    original = QueueingModel._job

    def watched(self, *args, **kwargs):
        # (the first jobs only: get_freeze_count walks every frozen object,
        # which after a long test session took minutes over a whole run)
        if len(seen) < 100:
            seen.append((gc.get_threshold(), gc.get_freeze_count() > 0))
        if fail:
            raise RuntimeError("injected failure in a job")
        yield from original(self, *args, **kwargs)

    monkeypatch.setattr(QueueingModel, "_job", watched)
    before = gc.get_threshold()
    if fail:
        with pytest.raises(RuntimeError, match="injected failure"):
            run_scenario(short(), tmp_path / "run", quiet=True)
    else:
        run_scenario(short(), tmp_path / "run", quiet=True)
    assert seen and set(seen) == {(RUN_GC_THRESHOLDS, True)}
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
    assert RUN_GC_THRESHOLDS[0] > before[0]


def test_progress_goes_to_a_log_as_lines_and_changes_nothing(tmp_path):
    import io

    log = io.StringIO()  # not a terminal: a line every tenth of the run
    logged = run_scenario(short(), tmp_path / "logged", progress_stream=log)
    lines = log.getvalue().splitlines()
    assert len(lines) == 10
    assert lines[0].startswith("jackson: 5m of 50m simulated (10%), ")
    assert lines[-1].startswith("jackson: 50m of 50m simulated (100%), ")
    silent = run_scenario(short(), tmp_path / "silent", quiet=True)
    for name in ("summary.json", "jobs.parquet", "resources.parquet"):
        assert (logged.path / name).read_bytes() == (silent.path / name).read_bytes()
