"""The child processes of a run: how they start, and starting them early.

A mail run has up to two children on the host's other core: the file writer
(``twin.sim.writer``) and, where spamd has a host of its own, the front
(``twin.sim.front``). Each is a fresh interpreter that spends ~0.35 s
importing the package before it can work, and the simulation waited for the
front's first frame ~0.5 s on every week.

``twin run`` knows whether a run will have a front child as soon as its
scenario is loaded, before it imports the simulator itself (numpy, SimPy,
pyarrow, the stages): ``prespawn_for`` starts the child then, its imports
overlapping the parent's, and ``FrontStream`` ``adopt``s it where it would
have started one. The child's first input is what the model sends it once
adopted (the scenario and seed), so one started early behaves exactly as one
started late. ``discard_waiting`` ends a child never adopted (a run found
complete, a scenario that fails later): it reads end of input and exits.
Only this module is imported before the scenario is known, so it imports
nothing heavy.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD_NICE = 10
"""The niceness of the writer and front processes. On two cores, three busy
processes made Linux share the simulation's core with a child now and then:
at +10 the week's run waited ~0.7 s less (``wall - CPU`` of the simulation,
3.1 s against 3.8 s, alternated; no gain from ranking the two children)."""

WRITER_CODE = "from twin.sim.writer import main; sys.exit(main())"
"""What the file writer child runs."""
FRONT_CODE = "from twin.sim.front import child_main; child_main()"
"""What the front child runs."""

FRONT_CHILD_FROM_S = 86_400.0
"""Simulated seconds from which an apart front runs in a child process by
default; a shorter run keeps it in the model's own environment, as the
child's ~0.5 s of start-up (imports) is waited for and a short run does not
win it back. ``MAILTWIN_FRONT=child``, ``inline`` (the front run in process
first, every hand-over held: for tests) or ``shared`` decides instead; the
results are the same."""


def spawn_child(code: str, stderr=None) -> subprocess.Popen:
    """A Python child running *code* with pipes on its stdin and stdout, at
    ``CHILD_NICE``; it imports this very package, wherever it was imported
    from."""
    root = str(Path(__file__).resolve().parents[2])
    start = (
        f"import os, sys\nif hasattr(os, 'nice'): os.nice({CHILD_NICE})\n"
        f"sys.path.insert(0, {root!r})\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", start + code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        close_fds=True,
    )


def front_apart(scenario) -> bool:
    """Whether the front of mail *scenario* can run apart from the rest: it
    has a greylist whose host nothing else in the scenario uses."""
    grey = scenario.pipeline.greylist
    if grey is None or not grey.enabled:
        return False
    pipeline = scenario.pipeline
    used = {
        pipeline.smtp.on,
        pipeline.deliver.on,
        # twin.sim.mailsetup.submission_host, which imports the simulator
        scenario.submission.on or pipeline.deliver.on,
        scenario.directory.on,
    }
    for name in ("spf", "antivirus", "spamfilter", "ocr"):
        stage = getattr(pipeline, name)
        if stage is not None:
            used.add(stage.on)
    if scenario.access is not None:
        used.add(scenario.access.on or pipeline.deliver.on)
    return grey.on not in used


def front_mode(scenario) -> str:
    """How the front of mail *scenario* runs: "child" (a process of its own),
    "inline" (in process, first: tests) or "shared" (in the model's own
    environment), as ``MAILTWIN_FRONT`` and ``FRONT_CHILD_FROM_S`` decide."""
    mode = os.environ.get("MAILTWIN_FRONT", "")
    if mode == "shared" or not front_apart(scenario):
        return "shared"
    if mode == "inline":
        return "inline"
    if mode == "child" or scenario.duration >= FRONT_CHILD_FROM_S:
        return "child"
    return "shared"


_WAITING: dict[str, tuple[subprocess.Popen, object]] = {}
"""Code -> a child started early running it, and its stderr file (or None)."""


def prespawn(code: str, capture_errors: bool = False) -> None:
    """Start a child running *code* now, for ``adopt`` later (its stderr into
    a temporary file with *capture_errors*); nothing where none can start."""
    if code in _WAITING:
        return
    errors = tempfile.TemporaryFile() if capture_errors else None
    try:
        process = spawn_child(code, stderr=errors)
    except OSError:
        if errors is not None:
            errors.close()
        return
    _WAITING[code] = (process, errors)


def prespawn_for(scenario) -> None:
    """Start the children of a run of *scenario* (a loaded ``Scenario``) that
    it waits for: the front of a mail scenario that runs it apart. (The
    writer is not: its first batch comes seconds into the run, and with it
    started early too, its imports beside the front's on the other core, the
    simulation waited as long for the first frame: 0.41 s against 0.38 s,
    five runs each.)"""
    if scenario.kind != "mail":
        return
    if front_mode(scenario.model) == "child":
        prespawn(FRONT_CODE, capture_errors=True)


def adopt(code: str) -> tuple[subprocess.Popen, object] | None:
    """The child started early running *code* and its stderr file, if one
    was and is still running; else None (then start one)."""
    waiting = _WAITING.pop(code, None)
    if waiting is not None and waiting[0].poll() is not None:
        _close(*waiting)  # it died on its own: a fresh one tells why
        return None
    return waiting


def discard_waiting() -> None:
    """End the children started early and never adopted."""
    while _WAITING:
        _close(*_WAITING.popitem()[1])


def _close(process: subprocess.Popen, errors) -> None:
    for pipe in (process.stdin, process.stdout):
        try:
            pipe.close()
        except OSError:
            pass
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if errors is not None:
        errors.close()
