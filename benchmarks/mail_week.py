"""The ece-2007-dell week: wall time, messages and events per wall second.

Runs the scenario's simulated week through every real stage and prints wall
seconds, messages per wall second, SimPy events per wall second and peak
memory, beside a bare SimPy model fed the same arrivals (the same workload
specs, each taking an smtpd slot and a disk for fixed times) in the same
process, timed before and after the twin run (the machine's speed drifts
within minutes: back-to-back runs gave ratios 6.1 and 7.5 with a single
timing), so the ratio to their mean is comparable across noisy machines.
With ``--scale K``
it also runs K times the traffic (rates and users x K; ``--keep-users``: the
rates alone, each user getting K times the mail) and checks that the cost
grows no faster than the traffic (targets: the week under 20 s and 1 GB; at
10 x the traffic at most 10 x the time and under 2 GB), and prints the twin's
cost a unit of the bare model's at each scale (twin/bare): its growth is the
twin's own, as the bare model's cost grows with the traffic on the same
machine. It also prints the
machine's free memory and page cache first, and after each run the CPU
seconds of the simulation and of its child processes (the file writer, the
front): with the page cache full of earlier runs' files the writer, not the
simulation, may set the pace. Before each twin run it waits (at most 2
minutes) until the disk of its folder is nearly idle, as one still freeing
a deleted run folder slows the run's file work, and says on the machine
line how long it waited (``settle_disk``).

    python benchmarks/mail_week.py [--scenario ece-2007-dell] [--scale 10]
        [--keep-users] [--duration 7d] [--whole] [--set KEY=VALUE ...] [--dir /dev/shm]

The issue's target is the mail pipeline (greylisting, SMTP, queue, delivery),
so by default the scenario's content filters and users reading mail are
turned off (``PIPELINE_ONLY``); ``--whole`` runs the scenario as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import simpy

ROOT = Path(__file__).resolve().parent.parent
PIPELINE_ONLY = [
    "pipeline.spf=null",
    "pipeline.antivirus=null",
    "pipeline.spamfilter=null",
    "pipeline.ocr=null",
    "access=null",
]
"""Overrides that leave the mail pipeline of a scenario alone."""


def bare_simpy(scenario_name: str, overrides: list[str]) -> tuple[float, int]:
    """Seconds for a bare SimPy model over the scenario's arrivals; messages."""
    from twin.scenario import load_scenario
    from twin.sim.mailsetup import population_settings, traffic_settings
    from twin.sim.streams import Streams
    from twin.traffic.population import Population
    from twin.traffic.workload import generate

    model = load_scenario(ROOT / "scenarios" / f"{scenario_name}.yaml", overrides).model
    streams = Streams(model.seed)
    population = Population(population_settings(model), streams("population"))
    started = time.perf_counter()
    specs = generate(traffic_settings(model), population, model.duration, streams)
    env = simpy.Environment()
    smtpd = simpy.Resource(env, capacity=100)
    disk = simpy.Resource(env, capacity=14)

    def message(env):
        with smtpd.request() as slot:
            yield slot
            yield env.timeout(0.5)
        with disk.request() as spindle:
            yield spindle
            yield env.timeout(0.008)

    count = replay(env, specs, model.duration, lambda spec: spec.arrival_s,
                   lambda spec: message(env))
    return time.perf_counter() - started, count


def replay(env, specs, until: float, start_of, process_of) -> int:
    """Start ``process_of(spec)`` at ``start_of(spec)`` for each of *specs* in
    order, run *env* until *until*; how many were started."""
    count = 0

    def source(env):
        nonlocal count
        for spec in specs:
            delay = start_of(spec) - env.now
            if delay > 0:
                yield env.timeout(delay)
            count += 1
            env.process(process_of(spec))

    env.process(source(env))
    env.run(until=until)
    return count


def twin_run(scenario_name: str, overrides: list[str], out: Path,
             tree: Path | None = None, prelude: str = "") -> dict:
    """Run the scenario in a child process; its manifest, summary, peak MB and
    CPU seconds. *tree*: the checkout whose ``twin`` runs (default: the one
    this process imports); *prelude*: code the child runs before (a
    measurement's patches: ``session_ceiling.py``)."""
    # the child imports twin as this process does (PYTHONPATH first), not from
    # its working directory, so PYTHONPATH=<another tree> compares two trees
    code = (
        "import json, resource, sys\n"
        "sys.path[:] = [p for p in sys.path if p not in ('', '.')]\n"
        f"{prelude}\n"
        "from twin.cli import main\n"
        f"args = ['run', {scenario_name!r}, '--out', {str(out)!r}, '--quiet',"
        " '--force']\n"
        f"for item in {overrides!r}: args += ['--set', item]\n"
        "code = main(args)\n"
        "own = resource.getrusage(resource.RUSAGE_SELF)\n"
        "kids = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(json.dumps({'peak_mb': own.ru_maxrss / 1024,\n"
        "  'child_peak_mb': kids.ru_maxrss / 1024,\n"
        "  'cpu_s': own.ru_utime + own.ru_stime,\n"
        "  'user_s': own.ru_utime, 'sys_s': own.ru_stime,\n"
        "  'children_s': kids.ru_utime + kids.ru_stime,\n"
        "  'children_kernel_s': kids.ru_stime}))\n"
        "sys.exit(code)\n"
    )
    started = time.perf_counter()
    env = None if tree is None else dict(os.environ, PYTHONPATH=str(tree))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
        env=env,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{tree or ROOT}: twin run failed:\n{done.stderr}")
    usage = json.loads(done.stdout.strip().splitlines()[-1])
    manifest = json.loads((out / "manifest.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    return {"wall": wall, **usage, "manifest": manifest, "summary": summary}


def bare_line(bare: tuple[float, float], seconds: float, what: str) -> str:
    """The bare SimPy line: the model timed before and after the twin run
    (the machine's speed drifts within minutes), the ratio to their mean."""
    before, after = bare
    mean = (before + after) / 2
    return (
        f"  bare SimPy    : {mean:7.1f} s on the same {what} ({before:.1f} s "
        f"before the run, {after:.1f} s after); twin/bare {seconds / mean:.1f}"
    )


def report(label: str, result: dict, bare: tuple[float, float]) -> None:
    summary = result["summary"]
    manifest = result["manifest"]
    offered = summary["messages.offered"]
    seconds = manifest["wall_seconds"]
    print(f"{label}")
    print(
        f"  twin run      : {seconds:7.1f} s wall (process {result['wall']:.1f} s), "
        f"peak {peak(result)}"
    )
    print(
        f"  messages      : {offered:,.0f} offered, "
        f"{summary['messages.accepted']:,.0f} accepted, "
        f"{offered / seconds:,.0f} offered per wall second"
    )
    print(
        f"  SimPy events  : {manifest['events']:,} "
        f"({manifest['events'] / seconds:,.0f} per wall second)"
    )
    print(bare_line(bare, seconds, "arrivals"))
    report_cpu(result)


def peak(result: dict) -> str:
    """Peak memory of the run's process, and of its largest child."""
    return (
        f"{result['peak_mb']:.0f} MB (its largest child process "
        f"{result['child_peak_mb']:.0f} MB)"
    )


def report_cpu(result: dict) -> None:
    """The CPU seconds of the simulation and of its child processes.

    The children run beside it on the other core: the file writer
    (``twin/sim/writer.py``), where spamd has a host of its own the front of
    the run (arrivals and greylisting, ``twin/sim/front.py``), and where
    users read a Cyrus store the session worker (``twin/sim/sessions.py``).
    When their CPU nears the wall time, the run waited on them -- on the
    kernel writing the store, or on the worker's sessions -- not on the
    simulation."""
    print(
        f"  CPU           : simulation {result['cpu_s']:.1f} s, children (file "
        f"writer, front, session worker) {result['children_s']:.1f} s "
        f"({result['children_kernel_s']:.1f} s of it in the kernel)"
    )
    print(floor_line(result))
    line = waits_line(result["manifest"])
    if line:
        print(line)
    if result["children_s"] > 0.8 * result["wall"]:
        why = ("the kernel was slow to take the store's files (a full page "
               "cache?)") if result["children_kernel_s"] > 0.4 * result[
                   "children_s"] else "their own CPU (the other core is full)"
        print("  note          : the children, not the simulation, set the "
              f"pace: {why}")


WAITED_FOR = {
    "front": "the front's frames",
    "writer": "the writer's reports",
    "session_worker": "the session worker's outcomes",
}


def waits_line(manifest: dict) -> str:
    """What the simulation waited for, from the run's manifest
    (``waited_seconds``: host seconds it was blocked on each child); empty
    for a run with no child."""
    waits = manifest.get("waited_seconds")
    if not waits:
        return ""
    parts = [f"{seconds:.1f} s for {WAITED_FOR.get(name, name)}"
             for name, seconds in waits.items()]
    return "  waits         : the simulation waited " + ", ".join(parts)


def floor_line(result: dict, cores: int | None = None) -> str:
    """The least wall time this run's CPU seconds allow on *cores* (default:
    this machine's): as the work is split now, the simulation's own CPU (its
    process is one thread of work); with any split, all of the run's CPU
    spread evenly over the cores -- what no parallel design doing the same
    work could beat. And how busy the run kept the cores."""
    cores = cores or os.cpu_count() or 1
    total = result["cpu_s"] + result["children_s"]
    now = max(result["cpu_s"], total / cores)
    used = total / (result["wall"] * cores) if result["wall"] > 0 else 0.0
    return (
        f"  floor         : {now:.1f} s wall as the work is split now, "
        f"{total / cores:.1f} s with any split ({total:.1f} s of CPU on "
        f"{cores} core{'s' if cores > 1 else ''}); the cores {used:.0%} busy"
    )


def _disk_ticks(folder: Path) -> int | None:
    """Milliseconds the disk holding *folder* has spent doing I/O (Linux
    ``/sys/dev/block/M:m/stat``, io_ticks), or None where unknown."""
    try:
        device = os.stat(folder).st_dev
        stat = Path(f"/sys/dev/block/{os.major(device)}:{os.minor(device)}/stat")
        return int(stat.read_text().split()[9])
    except (OSError, ValueError, IndexError):
        return None


def settle_disk(folder: Path, limit_s: float = 120.0, quiet: float = 0.05,
                window_s: float = 0.5) -> tuple[float, float | None]:
    """Wait, at most *limit_s*, until the disk holding *folder* is busy less
    than *quiet* of a *window_s*; (seconds waited, busy share at first, None
    where the disk cannot be watched).

    A disk still freeing a deleted run folder (an ext4 mounted with
    ``discard`` takes ~10 s for a week's store; README, Speed) slows the
    next run's file work: a benchmark started right after another's end
    measured the writer's kernel time at 6.6 s instead of 3.8 s."""
    started = time.perf_counter()
    first = None
    while True:
        before = _disk_ticks(folder)
        if before is None:
            return 0.0, None
        time.sleep(window_s)
        after = _disk_ticks(folder)
        if after is None:
            return 0.0, None
        busy = (after - before) / 1000 / window_s
        if first is None:
            first = busy
            if busy < quiet:
                return 0.0, busy  # idle: no wait but the look
        waited = time.perf_counter() - started
        if busy < quiet or waited >= limit_s:
            return waited, first


PROBE_FILES = 300
"""Files the creation probe makes (8 KB each)."""
SLOW_CREATE_US = 150.0
"""A file creation slower than this (a settled disk: 30-50 µs) means the file
system is still paying for a deletion (see ``creation_us``)."""


def creation_us(folder: Path) -> float:
    """Microseconds to create and write one 8 KB file in a new directory in
    *folder* (``PROBE_FILES`` of them), left there: removing them would leave
    the very thing the probe looks for, and the next probe would step over
    them. The caller's folder (a benchmark's temporary one) goes at its end.

    On an ext4 without a journal (this machine's) an inode freed less than a
    minute ago (six while its inode table block is unwritten: Linux
    ``fs/ext4/ialloc.c``, ``RECENTCY_MIN`` and ``RECENTCY_DIRTY``) is not given
    out again, and each file created in a block group of many such inodes
    steps over them one by one (``recently_deleted`` in the kernel's
    samples): after a week's run folder was deleted, creating a file took
    ~450 µs of kernel CPU instead of ~35 µs for minutes, and a benchmark
    started then measured the mail week at 36.8 s instead of 17.4 s."""
    probe = Path(tempfile.mkdtemp(prefix=".probe-", dir=folder))
    data = b"x" * 8192
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    started = time.perf_counter()
    for number in range(PROBE_FILES):
        handle = os.open(probe / str(number), flags, 0o600)
        try:
            os.write(handle, data)
        finally:
            os.close(handle)
    return (time.perf_counter() - started) / PROBE_FILES * 1e6


def settle_files(folder: Path, limit_s: float = 360.0,
                 pause_s: float = 15.0) -> tuple[float, float, float]:
    """Wait, at most *limit_s*, until creating a file in *folder* takes under
    ``SLOW_CREATE_US``; (seconds waited, µs at first, µs at last)."""
    started = time.perf_counter()
    first = last = creation_us(folder)
    while last >= SLOW_CREATE_US and time.perf_counter() - started < limit_s:
        time.sleep(pause_s)
        last = creation_us(folder)
    waited = time.perf_counter() - started if first >= SLOW_CREATE_US else 0.0
    return waited, first, last


RECENT_S = 65.0
"""How long ext4 without a journal keeps a freed inode from being given out
again once its inode table block is written (60 s), and a little more."""


def in_memory(folder: Path) -> bool:
    """Whether *folder* is on a file system in memory (tmpfs, ramfs: Linux
    ``/proc/mounts``), which no disk slows and no removal leaves behind."""
    try:
        with open("/proc/mounts") as handle:
            mounts = [line.split()[1:3] for line in handle]
    except OSError:
        return False
    path = str(folder.resolve())
    best, kind = "", ""
    for point, fs in mounts:
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fs
    return kind in ("tmpfs", "ramfs")


def work_folder(where: str | None) -> Path | None:
    """The folder a benchmark's run folders go under: *where* (``--dir``,
    checked), else the tree's ``reports/`` where there is one (None: the
    system's temporary folder)."""
    if where is None:
        return ROOT / "reports" if (ROOT / "reports").is_dir() else None
    folder = Path(where)
    if not folder.is_dir():
        raise SystemExit(f"--dir {where}: no such folder; give an existing one "
                         "(e.g. /dev/shm, a file system in memory)")
    return folder


DIR_HELP = ("where the run folders go (default: reports/ of this tree); on a "
            "file system in memory such as /dev/shm the disk's swings are out "
            "of the measurement, and no wait follows the removal")


def after_removal(folder: Path | None = None) -> None:
    """Leave the file system settled for the next run, after a benchmark's
    run folders were removed: the freed inodes' table blocks written
    (``os.sync``), then ``RECENT_S`` waited, so that the next run does not
    step over them (see ``creation_us``; unwritten, they are held six
    minutes). A run started 10 s after the previous benchmark's end measured
    the mail week at 33.2 s instead of 17.3 s, its probe finding nothing.
    Nothing to wait for where *folder* is in memory (``in_memory``)."""
    if folder is not None and in_memory(folder):
        return
    if hasattr(os, "sync"):
        os.sync()
    print(f"  (waiting {RECENT_S:.0f} s for the file system to take back the "
          "removed run folders' inodes: the next run would pay for them)",
          flush=True)
    time.sleep(RECENT_S)


def _dirty_mib() -> float:
    """Page cache waiting to be written to disk, MiB (0 where not Linux)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("Dirty:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def machine_state(folder: Path | None = None) -> str:
    """Cores, free memory and page cache now (Linux), or "" elsewhere; with
    *folder*, after waiting for its disk to settle (``settle_disk``).

    A page cache full of earlier runs' files makes the kernel slow to take
    the store's new ones (README, Speed): the line says which case a run was.
    With *folder*, what earlier runs left dirty is written out first
    (``os.sync``): left to the kernel's flusher, it is written ~30 s after it
    was made, in the middle of the next run."""
    disk = ""
    if folder is not None:
        dirty = _dirty_mib()
        started = time.perf_counter()
        if hasattr(os, "sync"):
            os.sync()
        synced = time.perf_counter() - started
        waited, busy = settle_disk(folder)
        if dirty >= 1:
            disk = f", {dirty:.0f} MiB dirty synced in {synced:.1f} s"
        if busy is not None:
            disk += (", disk idle" if not waited else
                     f", disk settled after {waited:.0f} s (busy {busy:.0%} at first)")
        waited, first, last = settle_files(folder)
        disk += (f", a file created in {last:.0f} µs" if not waited else
                 f", a file created in {last:.0f} µs after waiting {waited:.0f} s "
                 f"({first:.0f} µs at first)")
    try:
        with open("/proc/meminfo") as handle:
            kib = {
                name: int(value.split()[0])
                for name, value in (line.split(":", 1) for line in handle)
            }
        free, total = kib["MemFree"], kib["MemTotal"]
    except (OSError, ValueError, IndexError, KeyError):
        return ""
    gib = 1024 * 1024
    return (
        f"  machine       : {os.cpu_count()} cores, "
        f"{free / gib:.1f} of {total / gib:.1f} GiB free, "
        f"page cache {kib.get('Cached', 0) / gib:.1f} GiB "
        f"({kib.get('Dirty', 0) / 1024:.0f} MiB dirty){disk}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="ece-2007-dell")
    parser.add_argument("--duration", default="7d")
    parser.add_argument(
        "--scale",
        type=float,
        default=0,
        help="also run this many times the traffic (e.g. 10)",
    )
    parser.add_argument(
        "--keep-users",
        action="store_true",
        help="with --scale: keep the scenario's users; only the traffic grows",
    )
    parser.add_argument(
        "--whole",
        action="store_true",
        help="keep the scenario's content filters and access load",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a scenario override, as for twin run (repeatable)",
    )
    parser.add_argument("--dir", help=DIR_HELP)
    args = parser.parse_args()
    from twin.units import parse_duration

    seconds = parse_duration(args.duration)
    base = [f"duration={seconds}s", f"warmup={seconds / 7}s"]
    base += ([] if args.whole else PIPELINE_ONLY) + args.set
    where = work_folder(args.dir)
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        state = machine_state(Path(tmp))
        if state:
            print(state)
        before, _ = bare_simpy(args.scenario, base)
        settle_disk(Path(tmp))
        one = twin_run(args.scenario, base, Path(tmp) / "x1")
        after, _ = bare_simpy(args.scenario, base)
        report(f"{args.scenario}, {args.duration}, traffic x1", one, (before, after))
        print("  targets: week < 20 s wall, < 1 GB peak")
        if args.scale:
            k = args.scale
            inbound = one["summary"]
            scaled = base + [
                f"traffic.inbound.legit={31000 * k}/week",
                f"traffic.inbound.spam={76000 * k}/week",
                f"traffic.outbound.rate={11000 * k}/week",
            ] + ([] if args.keep_users else [
                f"traffic.users.inboxes={int(1400 * k)}"])
            before_k, _ = bare_simpy(args.scenario, scaled)
            settle_disk(Path(tmp))
            many = twin_run(args.scenario, scaled, Path(tmp) / f"x{k:g}")
            after_k, _ = bare_simpy(args.scenario, scaled)
            report(f"{args.scenario}, {args.duration}, traffic x{k:g}", many,
                   (before_k, after_k))
            ratio = many["manifest"]["wall_seconds"] / one["manifest"]["wall_seconds"]
            growth = many["summary"]["messages.offered"] / inbound["messages.offered"]
            print(
                f"  cost x{ratio:.1f} for traffic x{growth:.1f} "
                f"(target: cost no more than traffic; peak < 2 GB)"
            )
            # the simulation's own CPU: what the file system's phases, which
            # set the children's pace, move least (README, Speed)
            both = [run["cpu_s"] + run["children_s"] for run in (one, many)]
            print(
                f"  simulation CPU x{many['cpu_s'] / one['cpu_s']:.2f}, "
                f"all CPU x{both[1] / both[0]:.2f}"
            )
            # the twin's cost a unit of the bare model's, at x1 and at xK: the
            # growth that is the twin's own, whatever the machine's speed
            per_bare = [
                run["manifest"]["wall_seconds"] / (sum(bare) / 2)
                for run, bare in ((one, (before, after)), (many, (before_k, after_k)))
            ]
            print(
                f"  twin/bare {per_bare[0]:.2f} at x1, {per_bare[1]:.2f} at x{k:g} "
                f"({per_bare[1] / per_bare[0] - 1:+.1%})"
            )
    after_removal(where)
    return 0


if __name__ == "__main__":
    sys.exit(main())
