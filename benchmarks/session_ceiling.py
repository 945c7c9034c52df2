"""The most the access week could gain from playing sessions on another core.

The simulation plays each user's IMAP/POP3 session in its own process, at
the session's start (``twin.sim.access``). A worker process could play them
instead, ahead of the clock: a session depends only on its user's mailbox,
which only deliveries to that user and the user's earlier sessions change.
This measures that design's best case before anyone builds it: it runs the
scenario three times in child processes -- as it is; recording every
session's outcome (``PollMemo.play``'s) to a file; and replaying those
outcomes instead of playing the sessions, each unpickled from its own bytes
as a worker's answer would be (the store then misses the sessions' changes,
so only the time is meaningful) -- and prints each run's wall and CPU
seconds. The replay's simulation CPU is the floor for the simulation with
every session played elsewhere, at no cost to it but reading the answers.

    python benchmarks/session_ceiling.py [--scenario ece-2007-dell]
        [--duration 7d] [--set KEY=VALUE ...]

By default the access week of ``access_week.py`` (gateway filters off).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mail_week import (  # noqa: E402
    PIPELINE_ONLY,
    ROOT,
    after_removal,
    settle_disk,
    twin_run,
)

_PATCH = r"""
import atexit, copyreg, dataclasses, pickle, types
MODE, OUTCOMES = {mode!r}, {outcomes!r}

def _proxy(items):
    return types.MappingProxyType(items)

# Work's empty CPU map is a read-only view: pickled as a dict
copyreg.pickle(types.MappingProxyType, lambda m: (_proxy, (dict(m),)))
import twin.traffic.client as client
play = client.PollMemo.play
if MODE == "record":
    answers = {{}}
    def recording(self, spec, make_session, state, signature):
        outcome = play(self, spec, make_session, state, signature)
        answers[spec.session_id] = pickle.dumps(outcome, protocol=5)
        return outcome
    client.PollMemo.play = recording
    def _save():
        with open(OUTCOMES, "wb") as handle:
            pickle.dump(answers, handle, protocol=5)
    atexit.register(_save)  # after the run's CPU is read
elif MODE == "replay":
    with open(OUTCOMES, "rb") as handle:
        answers = pickle.load(handle)
    last = {{}}
    def replaying(self, spec, make_session, state, signature):
        outcome = pickle.loads(answers[spec.session_id])
        before = last.get(spec.user_index)
        if before is not None and before.commands == outcome.commands:
            # a replayed poll: the memo's own list, as the worker would say
            outcome = dataclasses.replace(outcome, commands=before.commands)
        last[spec.user_index] = outcome
        return outcome
    client.PollMemo.play = replaying
"""
"""What the child runs before ``twin run``: ``PollMemo.play`` recording or
replaying each session's outcome ("plain": as it is)."""


def run(mode: str, outcomes: Path, scenario: str, overrides: list[str],
        out: Path) -> dict:
    settle_disk(out.parent)
    patch = _PATCH.format(mode=mode, outcomes=str(outcomes))
    return twin_run(scenario, overrides, out, prelude=patch)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="ece-2007-dell")
    parser.add_argument("--duration", default="7d")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    from twin.units import parse_duration

    seconds = parse_duration(args.duration)
    overrides = [f"duration={seconds}s", f"warmup={seconds / 7}s"]
    overrides += [item for item in PIPELINE_ONLY if not item.startswith("access")]
    overrides += args.set
    with tempfile.TemporaryDirectory(
        dir=ROOT / "reports" if (ROOT / "reports").is_dir() else None
    ) as tmp:
        folder = Path(tmp)
        outcomes = folder / "outcomes.pickle"
        print(f"{args.scenario}, {args.duration} with access: as it is, "
              "recording the sessions, replaying them")
        started = time.perf_counter()
        for mode in ("plain", "record", "replay"):
            result = run(mode, outcomes, args.scenario, overrides, folder / mode)
            result["wall"] = result["manifest"]["wall_seconds"]
            print(f"  {mode:7s}: {result['wall']:6.1f} s wall, simulation "
                  f"{result['user_s']:.1f} s user + {result['sys_s']:.1f} s sys, "
                  f"children {result['children_s']:.1f} s")
            if mode == "plain":
                plain = result
        replay = result
        cpu, floor = plain["cpu_s"], replay["cpu_s"]
        print(f"  the simulation with its sessions played elsewhere: {floor:.1f} s "
              f"of CPU instead of {cpu:.1f} s ({floor / cpu:.0%}); the run "
              f"{replay['wall']:.1f} s wall instead of {plain['wall']:.1f} s "
              f"({time.perf_counter() - started:.0f} s for the three runs)")
    after_removal()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
