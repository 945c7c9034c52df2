"""This tree's run with an environment switch off and on, in turns.

    python benchmarks/toggle.py VARIABLE [--pairs 2] [--duration 7d]
        [--scenario ece-2007-dell] [--access] [--set KEY=VALUE ...] [--dir DIR]

Where ``alternate.py`` compares two trees, this compares one tree with
itself, a switch (``MAILTWIN_FRONT_SMTP``, ``MAILTWIN_WRITER``, ...) set to
``0`` and to ``1``: the runs alternate (0 1, 1 0, ...), each in a fresh
folder once the file system is settled (see ``mail_week.creation_us``), and
each prints its wall time and the simulation's and the children's CPU; then
the means. The machine drifts within minutes: read the pairs, not only the
means. ``--access`` keeps the users reading mail (the access week).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mail_week import (  # noqa: E402
    DIR_HELP,
    PIPELINE_ONLY,
    ROOT,
    after_removal,
    settle_disk,
    settle_files,
    twin_run,
    work_folder,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variable", help="environment switch to turn 0 and 1")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--duration", default="7d")
    parser.add_argument("--scenario", default="ece-2007-dell")
    parser.add_argument("--access", action="store_true",
                        help="keep the users reading mail")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE")
    parser.add_argument("--dir", help=DIR_HELP)
    args = parser.parse_args()
    from twin.units import parse_duration

    seconds = parse_duration(args.duration)
    filters = [item for item in PIPELINE_ONLY
               if not (args.access and item.startswith("access"))]
    overrides = [f"duration={seconds}s", f"warmup={seconds / 7}s", *filters,
                 *args.overrides]
    where = work_folder(args.dir)
    work = Path(tempfile.mkdtemp(prefix="toggle-", dir=where))
    runs: dict[str, list[dict]] = {"0": [], "1": []}
    before = os.environ.get(args.variable)
    print(f"{args.scenario}, {args.duration}: {args.variable}=0 and =1, "
          f"{args.pairs} pairs")
    try:
        for pair in range(args.pairs):
            for value in ("0", "1") if pair % 2 == 0 else ("1", "0"):
                os.environ[args.variable] = value
                settle_disk(work)
                settle_files(work)
                took = twin_run(args.scenario, overrides, work / f"{value}-{pair}",
                                ROOT)
                runs[value].append(took)
                print(f"  {args.variable}={value}: {took['wall']:6.1f} s wall, "
                      f"simulation {took['user_s']:.1f} s user + "
                      f"{took['sys_s']:.1f} s sys, children "
                      f"{took['children_s']:.1f} s", flush=True)
        for value, took in runs.items():
            count = len(took)
            print(f"  {args.variable}={value} mean: "
                  f"{sum(t['wall'] for t in took) / count:.1f} s wall, "
                  f"{sum(t['user_s'] for t in took) / count:.1f} s simulation "
                  "user CPU")
    finally:
        if before is None:
            os.environ.pop(args.variable, None)
        else:
            os.environ[args.variable] = before
        shutil.rmtree(work, ignore_errors=True)
        after_removal(where)
    return 0


if __name__ == "__main__":
    sys.exit(main())
