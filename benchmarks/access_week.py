"""The ece-2007-dell week with users reading mail: wall time against bare SimPy.

Runs the scenario with its access load (real IMAP/POP3 sessions over the
run's store, ``access:`` in the scenario or ``--set access={}``) and prints
wall seconds, sessions and SimPy events per wall second and peak memory,
beside a bare SimPy model fed the same session arrivals (the reading model's
``session_arrivals`` from the same seed streams; each session holds one of the
host's CPU threads for a fixed time per command class and waits a round trip)
in the same process, before and after the twin run, so the ratio to their
mean is comparable across noisy machines. The
issue's target: the week with access under 60 s wall and 2 GB. As
``mail_week.py``, it prints the machine's free memory and page cache first and
the CPU of the simulation and of its child processes after the run.

    python benchmarks/access_week.py [--scenario ece-2007-dell]
        [--duration 7d] [--whole] [--set KEY=VALUE ...] [--dir /dev/shm]

The target is the reading load on top of the mail path, so by default the
scenario's content filters are turned off (benchmarks/filter_accuracy.py
measures those); ``--whole`` keeps them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import simpy

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mail_week import (  # noqa: E402
    DIR_HELP,
    PIPELINE_ONLY,
    ROOT,
    after_removal,
    bare_line,
    machine_state,
    peak,
    replay,
    report_cpu,
    settle_disk,
    twin_run,
    work_folder,
)

COMMANDS = {"open": 8, "poll": 4, "idle": 3}
"""Commands a bare session sends, by session kind (login, select, fetch...)."""


def bare_simpy(scenario_name: str, overrides: list[str]) -> tuple[float, int]:
    """Seconds for a bare SimPy model over the scenario's sessions; sessions."""
    from twin.hardware.profile import load_profile
    from twin.scenario import load_scenario
    from twin.sim.access import reading_settings
    from twin.sim.mailsetup import population_settings
    from twin.sim.streams import Streams
    from twin.traffic.population import Population
    from twin.traffic.users import draw_profiles, session_arrivals

    model = load_scenario(ROOT / "scenarios" / f"{scenario_name}.yaml", overrides).model
    if model.access is None or not model.access.enabled:
        raise SystemExit(f"{scenario_name}: no access load (add --set 'access={{}}')")
    streams = Streams(model.seed)
    population = Population(population_settings(model), streams("population"))
    settings = reading_settings(model)
    started = time.perf_counter()
    profiles = draw_profiles(settings, population, streams("access.profiles"))
    specs = session_arrivals(
        settings,
        population,
        model.duration,
        streams("access.sessions"),
        profiles=profiles,
    )
    host = model.access.on or model.pipeline.deliver.on
    threads = load_profile(model.hosts[host].hardware).cpu.threads
    env = simpy.Environment()
    cpu = simpy.Resource(env, capacity=threads)
    rtt = model.access.client_rtt

    def session(env, kind: str, hold: float):
        for _ in range(COMMANDS.get(kind, 4)):
            with cpu.request() as slot:
                yield slot
                yield env.timeout(0.001)
            yield env.timeout(rtt)
        if hold:
            yield env.timeout(hold)

    def play(spec):
        hold = spec.duration_s if spec.kind == "idle" else 0.0
        return session(env, spec.kind, hold)

    count = replay(env, specs, model.duration, lambda spec: spec.start_s, play)
    return time.perf_counter() - started, count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="ece-2007-dell")
    parser.add_argument("--duration", default="7d")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a scenario override, as for twin run (repeatable)",
    )
    parser.add_argument(
        "--whole",
        action="store_true",
        help="keep the scenario's content filters (SPF, antivirus, spam, OCR)",
    )
    parser.add_argument("--dir", help=DIR_HELP)
    args = parser.parse_args()
    from twin.scenario import load_scenario
    from twin.units import parse_duration

    seconds = parse_duration(args.duration)
    filters = [] if args.whole else [
        item for item in PIPELINE_ONLY if not item.startswith("access")
    ]
    base = [
        f"duration={seconds}s", f"warmup={seconds / 7}s", *filters, *args.overrides
    ]
    model = load_scenario(ROOT / "scenarios" / f"{args.scenario}.yaml", base).model
    if model.access is None:
        base.append("access={}")
    where = work_folder(args.dir)
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        state = machine_state(Path(tmp))
        if state:
            print(state)
        before, sessions = bare_simpy(args.scenario, base)
        settle_disk(Path(tmp))
        result = twin_run(args.scenario, base, Path(tmp) / "access")
        after, _ = bare_simpy(args.scenario, base)
    summary = result["summary"]
    manifest = result["manifest"]
    wall = manifest["wall_seconds"]
    played = summary["access.sessions"]
    print(f"{args.scenario}, {args.duration}, with access")
    print(
        f"  twin run      : {wall:7.1f} s wall (process {result['wall']:.1f} s), "
        f"peak {peak(result)}"
    )
    print(
        f"  sessions      : {played:,.0f} played ({sessions:,} arrivals), "
        f"{played / wall:,.0f} per wall second; "
        f"{summary['messages.offered']:,.0f} messages offered"
    )
    print(
        f"  SimPy events  : {manifest['events']:,} "
        f"({manifest['events'] / wall:,.0f} per wall second)"
    )
    print(bare_line((before, after), wall, "sessions"))
    report_cpu(result)
    print("  targets: week with access < 60 s wall, < 2 GB peak")
    after_removal(where)
    return 0


if __name__ == "__main__":
    sys.exit(main())
