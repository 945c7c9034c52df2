"""Run a scenario into a run folder that is always complete.

A run folder holds:

- ``scenario.resolved.yaml``: the scenario with every default filled in;
- ``manifest.json``: version, seed, scenario hash, simulated duration, wall
  seconds, SimPy events processed, status (``complete`` or ``failed``);
- ``summary.json``: one flat object, metric name -> number (only when complete);
- ``jobs.parquet`` and ``resources.parquet``;
- ``error.txt``: the traceback, when the run failed.

The folder is built under a hidden staging name beside its final place and
renamed into place at the end, so a crash never leaves a half-written
summary; a failed run still leaves the resolved scenario, the manifest and the
error (desmod's habit), then re-raises. A folder that is already complete for
the same scenario hash is reused, not recomputed, so an interrupted batch of
runs resumes where it stopped.
"""

from __future__ import annotations

import gc
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TextIO

import numpy as np
import simpy

import twin
from twin.errors import TwinError
from twin.scenario import Scenario
from twin.sim.children import RUN_GC_THRESHOLDS
from twin.sim.recorder import (
    RESOURCE_SCHEMA,
    NullWriter,
    ResourceSampler,
    TableWriter,
)
from twin.sim.streams import Streams
from twin.units import format_duration

DEFAULT_RUNS = Path("reports") / "runs"
PROGRESS_STEPS = 200
LINE_STEPS = 10
"""Progress lines of a run whose output is not a terminal."""


@dataclass(frozen=True)
class RunResult:
    """Where a run went and what it found."""

    path: Path
    summary: dict[str, float]
    manifest: dict
    reused: bool = False


def default_folder(scenario: Scenario) -> Path:
    return DEFAULT_RUNS / f"{scenario.name}-seed{scenario.seed}"


def _json_number(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def write_json(path: Path, data: dict) -> None:
    """Write JSON atomically: a temporary file renamed over *path*."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)


def read_complete(folder: Path, digest: str) -> RunResult | None:
    """The result already in *folder* if it is complete for scenario *digest*."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    if (
        manifest.get("status") != "complete"
        or manifest.get("scenario_sha256") != digest
    ):
        return None
    return RunResult(folder, summary, manifest, reused=True)


class Progress:
    """Progress of simulated time: a one-line bar on a terminal, or, with
    *lines* (a log file, a pipe), a plain line every tenth of the run."""

    def __init__(
        self,
        stream: TextIO | None,
        duration: float,
        label: str,
        lines: bool = False,
    ) -> None:
        self.stream = stream
        self.duration = duration
        self.label = label
        self.lines = lines
        self.steps = LINE_STEPS if lines else PROGRESS_STEPS
        self.started = time.perf_counter()

    def show(self, now: float) -> None:
        if self.stream is None:
            return
        share = min(now / self.duration, 1.0)
        elapsed = time.perf_counter() - self.started
        if self.lines:
            self.stream.write(
                f"{self.label}: {format_duration(now)} of "
                f"{format_duration(self.duration)} simulated ({share:.0%}), "
                f"{elapsed:.1f}s wall\n"
            )
        else:
            filled = int(share * 30)
            self.stream.write(
                f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] "
                f"{format_duration(now)} / {format_duration(self.duration)} "
                f"{share:4.0%}  {elapsed:5.1f}s wall"
            )
        self.stream.flush()

    def done(self) -> None:
        if self.stream is not None and not self.lines:
            self.stream.write("\n")
            self.stream.flush()


def events_processed(env: simpy.Environment) -> int:
    """SimPy events processed so far (scheduled ids minus those still queued)."""
    counter = getattr(env, "_eid", None)
    queue = getattr(env, "_queue", None)
    if counter is None or queue is None:
        return -1
    scheduled = next(counter)
    return scheduled - len(queue)


@lru_cache(maxsize=1)
def _run_call_events() -> int:
    """Events one more ``env.run(until=...)`` adds to ``events_processed``."""
    counts = []
    for calls in (1, 2):
        env = simpy.Environment()
        for call in range(1, calls + 1):
            env.run(until=float(call))
        counts.append(events_processed(env))
    return counts[1] - counts[0]


def _build(env, scenario: Scenario, streams: Streams, folder: Path):
    model = scenario.model
    if scenario.kind == "queueing":
        from twin.sim.queueing import QueueingModel

        schema = QueueingModel.schema(model)
        jobs = (
            TableWriter(folder / "jobs.parquet", schema)
            if model.output.jobs_table
            else NullWriter()
        )
        return QueueingModel(env, model, streams, jobs), jobs
    from twin.sim.mail import MailModel

    built = MailModel(env, model, streams, folder)
    return built, built.jobs


def simulate(scenario: Scenario, folder: Path, progress: Progress,
             host: dict | None = None) -> tuple[dict, int]:
    """Run *scenario* writing its tables into *folder*; summary and event
    count. *host*, if given, gets what the run's host did that is no result
    (``waited_seconds``: the model's waits for its child processes)."""
    model_spec = scenario.model
    env = simpy.Environment()
    streams = Streams(scenario.seed)
    model, jobs = _build(env, scenario, streams, folder)
    # a model with a writer process has its tables written there too
    table = getattr(model, "table", TableWriter)
    resources = None
    try:
        resources = table(folder / "resources.parquet", RESOURCE_SCHEMA)
        sampler = ResourceSampler(
            env, model.monitors(), model_spec.output.sample_interval, resources
        )
        env.process(sampler.process())
        model.start()
        duration = model_spec.duration
        # The model's long-lived objects (rule sets, OCR templates, stores,
        # directories) stay out of the cyclic collector's full passes while the
        # clock runs: without this they are ~10 % of a filtered run's time.
        gc.collect()
        gc.freeze()
        thresholds = gc.get_threshold()
        gc.set_threshold(*RUN_GC_THRESHOLDS)
        try:
            steps = 1 if progress.stream is None else progress.steps
            for step in range(1, steps + 1):
                env.run(until=duration * step / steps)
                progress.show(env.now)
            progress.done()
        finally:
            gc.set_threshold(*thresholds)
            gc.unfreeze()
        sampler.sample()  # the last, partial interval up to the end
        summary = model.finish()
        waited = getattr(model, "waited_seconds", None)
        if host is not None and waited is not None:
            host["waited_seconds"] = waited()
        for name, most in sampler.maxima.items():
            summary.setdefault(f"queue.{name}.max", float(most))
    finally:
        close = getattr(model, "close", None)
        if close is not None:
            close()
        jobs.close()
        if resources is not None:
            resources.close()
    # each run(until=...) adds events of its own: count those of one, as a
    # run without progress does, so the count does not depend on the progress
    events = events_processed(env) - (steps - 1) * _run_call_events()
    events += getattr(model, "front_events", 0)  # an apart front's (twin.sim.front)
    summary["sim.duration"] = float(duration)
    summary["sim.warmup"] = float(model_spec.warmup)
    summary["sim.events"] = float(events)
    return summary, events


def run_scenario(
    scenario: Scenario,
    out: Path | None = None,
    *,
    quiet: bool = False,
    force: bool = False,
    progress_stream: TextIO | None = None,
) -> RunResult:
    """Run *scenario* into the folder *out* (default reports/runs/<name>-seed<N>)."""
    folder = Path(out) if out is not None else default_folder(scenario)
    if not force:
        done = read_complete(folder, scenario.digest)
        if done is not None:
            return done
    staging = folder.parent / f".{folder.name}.partial-{os.getpid()}"
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir()
    except OSError as exc:
        raise TwinError(
            f"{folder}: cannot create the run folder ({exc.strerror or exc}); "
            "choose another --out"
        ) from None
    (staging / "scenario.resolved.yaml").write_text(scenario.resolved_yaml)
    manifest = {
        "package": "mailtwin",
        "version": twin.__version__,
        "scenario": scenario.name,
        "scenario_source": scenario.source,
        "scenario_sha256": scenario.digest,
        "kind": scenario.kind,
        "seed": scenario.seed,
        "simulated_duration_s": scenario.model.duration,
        "warmup_s": scenario.model.warmup,
        "python": platform.python_version(),
        "simpy": simpy.__version__,
        "numpy": np.__version__,
        "status": "running",
    }
    write_json(staging / "manifest.json", manifest)
    stream = None if quiet else progress_stream
    lines = stream is not None and not stream.isatty()
    progress = Progress(stream, scenario.model.duration, scenario.name, lines)
    started = time.perf_counter()
    host: dict = {}
    try:
        summary, events = simulate(scenario, staging, progress, host)
    except BaseException as exc:
        manifest.update(
            status="failed",
            error=repr(exc),
            wall_seconds=round(time.perf_counter() - started, 3),
        )
        (staging / "error.txt").write_text(traceback.format_exc())
        write_json(staging / "manifest.json", manifest)
        _replace(staging, folder)
        raise
    clean = {name: _json_number(value) for name, value in sorted(summary.items())}
    write_json(staging / "summary.json", clean)
    manifest.update(
        status="complete",
        events=events,
        wall_seconds=round(time.perf_counter() - started, 3),
        **host,
    )
    write_json(staging / "manifest.json", manifest)
    _replace(staging, folder)
    return RunResult(folder, clean, manifest)


def _replace(staging: Path, folder: Path) -> None:
    """Move *staging* to *folder*, replacing an older run there (moved aside
    at once, then removed by ``remove_later``)."""
    old = None
    if folder.exists():
        old = folder.parent / f".{folder.name}.old-{os.getpid()}"
        if old.exists():
            shutil.rmtree(old)
        os.replace(folder, old)
    os.replace(staging, folder)
    if old is not None:
        remove_later(old)


_REMOVER = (
    "import os, shutil, sys\n"
    "if hasattr(os, 'nice'): os.nice(19)\n"
    "shutil.rmtree(sys.argv[1], ignore_errors=True)\n"
)


def remove_later(path: Path) -> subprocess.Popen | None:
    """Remove the folder *path* in a detached process at the lowest priority,
    so that the command which replaced it returns at once; the process, or
    None where none could start (then it is removed before returning).

    A week with users reading mail leaves ~72,000 files (1.7 GB) in its run
    folder; removing them took 10.4 s on an ext4 file system mounted with
    ``discard`` (``shutil.rmtree``, timed), which a rerun of the scenario
    used to wait for after printing its result."""
    _removers[:] = [process for process in _removers if process.poll() is None]
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", _REMOVER, str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # no Ctrl-C of the command reaches it
        )
    except OSError:
        shutil.rmtree(path, ignore_errors=True)
        return None
    _removers.append(process)
    return process


_removers: list[subprocess.Popen] = []
"""The removals this process started that may still run."""


def wait_for_removals() -> None:
    """Wait until the old run folders this process handed to ``remove_later``
    are gone (for scripts and tests that need the space or a clean parent)."""
    while _removers:
        _removers.pop().wait()
