"""Alternate runs of this tree and another: wall and CPU of each, same results?

Two versions of the code compared one after the other on a noisy machine
differ by its swing more than by the change (README, Speed); alternated, in
the same minutes, each is the other's reference. This runs ``twin run`` of
a scenario with this tree and with *OTHER* (a checkout of another commit:
``git worktree add /tmp/base <commit>``) in turns, each into a fresh folder
(deleting a run's store slows the next run's file work on some disks, so
nothing is deleted until the end), after waiting for the disk to settle and
dropping the page cache where allowed (root). It prints each run's wall
seconds and the CPU seconds of the simulation and of its child processes,
then each tree's mean, and whether the two trees' first runs have the same
summary, jobs and resources tables and store files (in ``cyrus.index``,
all but its header's note of the directories' mtimes: trees before
``settle_store`` noted the host's clock there).

    python benchmarks/alternate.py OTHER [--pairs 3] [--scenario ece-2007-dell]
        [--duration 7d] [--access] [--set KEY=VALUE ...] [--keep]
        [--dir /dev/shm]

By default the mail path alone (``PIPELINE_ONLY`` of ``mail_week.py``);
``--access`` keeps the users reading mail (the access week's settings).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mail_week import (  # noqa: E402
    DIR_HELP,
    PIPELINE_ONLY,
    ROOT,
    settle_disk,
    settle_files,
    twin_run,
    work_folder,
)


def drop_caches() -> bool:
    """Write back and drop the page cache (Linux, root); whether it could."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def _files(root: Path) -> dict[str, str]:
    skip = {"manifest.json", "summary.json", "jobs.parquet", "resources.parquet"}
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            relative = path.relative_to(root).as_posix()
            if relative in skip:
                continue
            data = path.read_bytes()
            if name == "cyrus.index":
                # its header's note of the directories' mtimes: the host's
                # clock in trees before settle_store
                data = data[:32] + data[48:]
            found[relative] = hashlib.md5(data).hexdigest()
    return found


def same_results(a: Path, b: Path) -> list[str]:
    """What differs between the run folders *a* and *b* (empty: nothing)."""
    import pandas as pd

    differences = []
    sa = json.loads((a / "summary.json").read_text())
    sb = json.loads((b / "summary.json").read_text())
    keys = sorted(k for k in set(sa) | set(sb) if sa.get(k) != sb.get(k))
    if keys:
        differences.append(f"summary: {', '.join(keys[:8])}")
    for table in ("jobs", "resources"):
        pa, pb = a / f"{table}.parquet", b / f"{table}.parquet"
        if pa.exists() != pb.exists() or (
                pa.exists() and not pd.read_parquet(pa).equals(pd.read_parquet(pb))):
            differences.append(f"{table} table")
    fa, fb = _files(a), _files(b)
    changed = sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k))
    if changed:
        differences.append(f"{len(changed)} of {len(set(fa) | set(fb))} files, "
                           f"{changed[0]} among them")
    return differences


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="the other tree (a checkout)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--scenario", default="ece-2007-dell")
    parser.add_argument("--duration", default="7d")
    parser.add_argument("--access", action="store_true",
                        help="keep the users reading mail")
    parser.add_argument("--set", action="append", default=[], dest="overrides",
                        metavar="KEY=VALUE")
    parser.add_argument("--keep", action="store_true",
                        help="keep the run folders (printed)")
    parser.add_argument("--dir", help=DIR_HELP)
    args = parser.parse_args()
    other = args.other.resolve()
    if not (other / "twin" / "__init__.py").is_file():
        raise SystemExit(f"{other}: not a mailtwin tree (no twin/__init__.py); "
                         "make one with: git worktree add /tmp/base <commit>")
    from twin.units import parse_duration

    seconds = parse_duration(args.duration)
    filters = [item for item in PIPELINE_ONLY
               if not (args.access and item.startswith("access"))]
    overrides = [f"duration={seconds}s", f"warmup={seconds / 7}s", *filters,
                 *args.overrides]
    trees = {"this": ROOT, "other": other}
    work = Path(tempfile.mkdtemp(prefix="alternate-", dir=work_folder(args.dir)))
    times: dict[str, list[dict]] = {"this": [], "other": []}
    first: dict[str, Path] = {}
    print(f"{args.scenario}, {args.duration}{' with access' if args.access else ''}:"
          f" this tree ({ROOT}) and {other}, {args.pairs} pairs")
    try:
        for pair in range(args.pairs):
            for name in ("this", "other") if pair % 2 == 0 else ("other", "this"):
                out = work / f"{name}-{pair}"
                waited, _ = settle_disk(work)
                dropped = drop_caches()
                files_waited, _, create_us = settle_files(work)
                took = twin_run(args.scenario, overrides, out, trees[name])
                times[name].append(took)
                first.setdefault(name, out)
                print(f"  {name:5s}: {took['wall']:6.1f} s wall, simulation "
                      f"{took['user_s']:.1f} s user + {took['sys_s']:.1f} s sys, "
                      f"children {took['children_s']:.1f} s"
                      f"{'' if dropped else ' (page cache not dropped)'}"
                      f"{f', disk settled {waited:.0f} s first' if waited else ''}"
                      f", a file created in {create_us:.0f} µs"
                      f"{f' after {files_waited:.0f} s' if files_waited else ''}")
        for name in ("this", "other"):
            runs = times[name]
            walls = [t["wall"] for t in runs]
            users = [t["user_s"] for t in runs]
            print(f"  {name:5s} mean: {sum(walls) / len(walls):.1f} s wall, "
                  f"{sum(users) / len(users):.1f} s simulation user CPU")
        differences = same_results(first["this"], first["other"])
        print("  results: " + ("the same" if not differences
                               else "DIFFERENT: " + "; ".join(differences)))
    finally:
        if args.keep:
            print(f"  run folders in {work}")
        else:
            from twin.sim.run import remove_later

            remove_later(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
