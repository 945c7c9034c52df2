"""The child processes of a run: how they start, and starting them early.

A mail run has up to two children on the host's other core: the file writer
(``twin.sim.writer``) and, where spamd has a host of its own, the front
(``twin.sim.front``). Each is a fresh interpreter that spends ~0.35 s
importing the package before it can work, and the simulation waited for the
front's first frame ~0.5 s on every week.

``twin run`` starts the front child first thing, where the scenario file's
own kind and duration say the run will have one (``prespawn_guess``), its
imports overlapping the parent's loading of the scenario and the simulator
(numpy, SimPy, pyarrow, the stages); once the scenario is loaded,
``prespawn_for`` starts one if the guess missed it and ends one the run will
not have. ``FrontStream`` ``adopt``s the child where it would have started
one. Its first input is what the model sends it once adopted (the scenario
and seed), so one started early behaves exactly as one started late.
``discard_waiting`` ends a child never adopted (a run found complete, a
scenario that fails later). Only this module is imported before the scenario
is known, so it imports nothing heavy.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD_NICE = 10
"""The niceness of the writer and front processes. On two cores, three busy
processes made Linux share the simulation's core with a child now and then:
at +10 the week's run waited ~0.7 s less (``wall - CPU`` of the simulation,
3.1 s against 3.8 s, alternated; no gain from ranking the two children)."""

RUN_GC_THRESHOLDS = (50_000, 20, 20)
"""The cyclic collector's thresholds while the clock runs (Python's are 700,
10, 10). A run makes almost no garbage cycles -- the collector freed ~1,100
objects over the mail path's week and as many over a day of the whole
system -- yet its passes took 0.61 s of that week and 2.56 s of that day;
with these, 0.29 s and 0.46 s, peak memory unchanged (``gc.callbacks``
timing, ``reports/s11/gct.py``). Cycles are still collected, only later."""

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


FRAME_HEAD = struct.Struct("<Q")
"""A frame's head on a child's pipe: the little-endian 8-byte size of what
follows."""


def write_frame(fd: int, data: bytes) -> None:
    """Write *data* to the pipe *fd* as one frame (its size, then it) in one
    system call where the pipe takes it: a head written apart woke a reader
    blocked on the pipe once for the head and again for the body, and with
    ``PYTHONUNBUFFERED`` set (the children inherit it) ``sys.stdout.buffer``
    wrote the two apart."""
    pieces = [FRAME_HEAD.pack(len(data)), data]
    while pieces:
        written = os.writev(fd, pieces)
        while pieces and written >= len(pieces[0]):
            written -= len(pieces[0])
            del pieces[0]
        if written:
            pieces[0] = memoryview(pieces[0])[written:]


def exit_status(code: int) -> str:
    """A child's exit *code* in words (a signal's name where it was killed;
    SIGKILL is what Linux's out-of-memory killer sends)."""
    if code >= 0:
        return f"exit status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    if name == "SIGKILL":
        return ("killed by SIGKILL: out of memory? a store on tmpfs such as "
                "/dev/shm takes memory as it fills")
    return f"killed by {name}"


def spawn_child(code: str, stderr=None, nice: int = CHILD_NICE) -> subprocess.Popen:
    """A Python child running *code* with pipes on its stdin and stdout, at
    niceness *nice*; it imports this very package, wherever it was imported
    from."""
    root = str(Path(__file__).resolve().parents[2])
    start = (
        f"import os, sys\nif hasattr(os, 'nice'): os.nice({nice})\n"
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
        scenario.submission_host(),
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


def prespawn_guess(path, overrides=()) -> None:
    """Start a front child now if the scenario file *path* with *overrides*
    (``KEY=VALUE`` items, or ``(where, KEY=VALUE)`` pairs) looks like a run
    that will have one: a mail scenario of a simulated day or more, as its
    own ``kind`` and ``duration`` and the overrides say (``MAILTWIN_FRONT``
    obeyed). A guess from the file alone, before the scenario is loaded
    (~0.3 s of imports and validation): ``prespawn_for`` then keeps or ends
    the child as the loaded scenario decides."""
    mode = os.environ.get("MAILTWIN_FRONT", "")
    if mode in ("shared", "inline"):
        return
    import yaml  # (the scenario's loading imports it anyway)

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.load(handle, Loader=loader)
    except (OSError, ValueError, yaml.YAMLError):
        return  # the loading reports it
    if not isinstance(data, dict) or data.get("kind") != "mail":
        return
    duration = data.get("duration")
    for item in overrides:
        key, _, value = (item[1] if isinstance(item, tuple) else item).partition("=")
        if key.strip() == "duration":
            duration = value.strip()
    if mode != "child":
        from twin.units import parse_duration

        try:
            if parse_duration(duration) < FRONT_CHILD_FROM_S:
                return
        except (TypeError, ValueError):
            return
    prespawn(FRONT_CODE, capture_errors=True)


def prespawn_for(scenario) -> None:
    """Start the children of a run of *scenario* (a loaded ``Scenario``) that
    it waits for, and end those started on a guess that it will not have:
    the front of a mail scenario that runs it apart. (The
    writer is not: its first batch comes seconds into the run, and with it
    started early too, its imports beside the front's on the other core, the
    simulation waited as long for the first frame: 0.41 s against 0.38 s,
    five runs each.)"""
    if scenario.kind == "mail" and front_mode(scenario.model) == "child":
        prespawn(FRONT_CODE, capture_errors=True)
    else:
        waiting = _WAITING.pop(FRONT_CODE, None)
        if waiting is not None:
            _close(*waiting)


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
    """End a child never adopted at once: it has read nothing and written
    nothing yet (one left to itself would finish its imports first, then
    exit at the end of its input)."""
    if process.poll() is None:
        process.kill()
    for pipe in (process.stdin, process.stdout):
        try:
            pipe.close()
        except OSError:
            pass
    process.wait()
    if errors is not None:
        errors.close()
