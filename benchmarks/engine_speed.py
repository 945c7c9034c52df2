"""Engine speed: twin's engine against a bare SimPy model of the same M/M/4.

Runs a 200,000-customer M/M/4 at utilisation 0.8 (lambda 3.2/s, mean service
1 s) through ``twin run`` machinery (scenario, engine, statistics, Parquet
tables) and through a bare SimPy model written here, in the same process, and
prints customers per second of each and the ratio (target: twin's time at most
1.5 x bare SimPy's). Then runs ``twin run`` of the same scenario in a child
process and reports its peak memory (target: under 400 MB).

    python benchmarks/engine_speed.py [--customers N] [--repeat R]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import simpy

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "validation" / "mm4.yaml"
RATE = 3.2
SERVERS = 4
MEAN_SERVICE = 1.0


def bare_simpy(customers: int, seed: int = 1) -> float:
    """The textbook SimPy M/M/4: a process per customer, a Resource, timeouts."""
    rng = random.Random(seed)
    env = simpy.Environment()
    servers = simpy.Resource(env, capacity=SERVERS)
    waits = []

    def customer(env):
        arrived = env.now
        with servers.request() as request:
            yield request
            waits.append(env.now - arrived)
            yield env.timeout(rng.expovariate(1 / MEAN_SERVICE))

    def source(env):
        for _ in range(customers):
            yield env.timeout(rng.expovariate(RATE))
            env.process(customer(env))

    started = time.perf_counter()
    env.process(source(env))
    env.run()
    elapsed = time.perf_counter() - started
    assert len(waits) == customers
    return elapsed


def twin_engine(customers: int, out: Path) -> float:
    from twin.scenario import load_scenario
    from twin.sim.run import run_scenario

    duration = customers / RATE
    scenario = load_scenario(
        SCENARIO, [f"duration={duration}s", f"warmup={duration / 10}s"]
    )
    started = time.perf_counter()
    result = run_scenario(scenario, out, quiet=True, force=True)
    elapsed = time.perf_counter() - started
    arrived = result.summary["jobs.arrived"]
    assert abs(arrived - customers) < 5 * customers**0.5, arrived
    return elapsed


def peak_memory_mb(customers: int, out: Path) -> float:
    duration = customers / RATE
    code = (
        "import resource, sys\n"
        "from twin.cli import main\n"
        f"code = main(['run', {str(SCENARIO)!r}, '--out', {str(out)!r}, '--quiet',"
        f" '--force', '--duration', '{duration}s',"
        f" '--set', 'warmup={duration / 10}s'])\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(peak / 1024)\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "mm4"
        bare_times, twin_times = [], []
        for _ in range(args.repeat):  # interleaved, so drift hits both alike
            bare_times.append(bare_simpy(args.customers))
            twin_times.append(twin_engine(args.customers, out))
        bare, ours = min(bare_times), min(twin_times)
        print(f"M/M/4 rho=0.8, {args.customers:,} customers, best of {args.repeat}")
        print(
            f"  bare SimPy : {bare:7.2f} s  {args.customers / bare:10,.0f} customers/s"
        )
        print(
            f"  twin engine: {ours:7.2f} s  {args.customers / ours:10,.0f} customers/s"
        )
        print(f"  ratio twin/bare: {ours / bare:.2f}  (target <= 1.5)")
        peak = peak_memory_mb(args.customers, out)
        print(f"  twin run peak memory: {peak:.0f} MB  (target < 400 MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
