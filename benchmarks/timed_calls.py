"""Wall and CPU seconds spent in chosen functions over one ``twin`` command.

    python benchmarks/timed_calls.py MODULE:QUALNAME[,...] -- run SCENARIO ...

Each function is wrapped before the command runs (so modules that import it
by name later get the wrapper) and its calls, wall seconds and CPU seconds
of the calling thread are printed after it: for example
``twin.sim.writer:FileWriter._send`` or ``twin.stages.smtp:SmtpServer.transact``.
The wrapper costs ~0.3 µs a call; compare two versions of the code with the
same command (``PYTHONPATH=<other tree>``), not with absolute times.
"""

from __future__ import annotations

import importlib
import sys
import time


def wrap(spec: str, totals: dict[str, list]) -> None:
    """Wrap the function *spec* (``module:Qual.name``), counting into *totals*."""
    module_name, _, qualname = spec.partition(":")
    if not qualname:
        raise SystemExit(f"{spec}: give MODULE:QUALNAME, for example "
                         "twin.sim.writer:FileWriter._send")
    owner = importlib.import_module(module_name)
    *path, name = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    record = totals[spec] = [0.0, 0.0, 0]
    clock, cpu = time.perf_counter, time.thread_time

    def timed(*args, **kwargs):
        started, used = clock(), cpu()
        try:
            return original(*args, **kwargs)
        finally:
            record[0] += clock() - started
            record[1] += cpu() - used
            record[2] += 1

    setattr(owner, name, timed)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        raise SystemExit(__doc__)
    # the tree on PYTHONPATH, not the current folder, gives the package
    sys.path[:] = [p for p in sys.path if p not in ("", ".")]
    totals: dict[str, list] = {}
    for spec in argv[0].split(","):
        wrap(spec, totals)
    from twin.cli import main as twin_main

    started = time.perf_counter()
    code = twin_main(argv[2:])
    print(f"command: {time.perf_counter() - started:.1f} s wall")
    for spec, (wall, used, calls) in totals.items():
        each = wall / calls * 1e6 if calls else 0.0
        print(f"{wall:8.2f} s wall {used:8.2f} s CPU {calls:10,d} calls "
              f"{each:9.1f} µs each  {spec}")
    return code or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
