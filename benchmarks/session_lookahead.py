"""How far ahead of the clock a worker could play the users' sessions.

``session_ceiling.py`` measures the best case of playing the access load's
sessions in a worker process; this measures how much of it a worker could
take without knowing the future. A session of user u at T may be played
early, at T - H, when no message that could reach u's mailbox is in the
simulation during [T - H, T): none naming u as a recipient, or as its
sender (a bounce comes back), from the moment the front hands it over to
its end. That is what the simulation itself would know at T - H, given the
front's hand-overs up to T (the front runs ahead of it). This runs the
scenario once in this process, noting every message's users and times and
every session's user, start, whether the memo replayed it and its play time
(``AccessLoad._session``, the host's clock), and prints for each H the share
of sessions, and of their play time, that could have been played that early.

    python benchmarks/session_lookahead.py [--scenario ece-2007-dell]
        [--duration 2d] [--set KEY=VALUE ...]

By default two simulated days of the access week of ``access_week.py``
(gateway filters off). The run folder is a temporary one.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mail_week import PIPELINE_ONLY  # noqa: E402

HORIZONS = (1, 10, 60, 300, 1800, 3600)
"""Simulated seconds ahead (a simulated minute is ~8 ms of the access
week's wall time)."""


def observe(scenario: str, overrides: list[str], out: Path):
    """Run the scenario; (messages as (users, start, end), sessions as
    (user, start, replayed, play seconds), the run's last session start)."""
    import twin.sim.access as access
    import twin.sim.mailrecord as mailrecord
    from twin.cli import main as twin_main

    messages: list[tuple[set[str], float, object]] = []
    sessions: list[tuple[str, float, bool, float]] = []
    clock: list = [None]
    make_record = mailrecord.MessageRecord.__init__
    play = access.AccessLoad._session

    def noting_record(self, spec):
        make_record(self, spec)
        env = clock[0]
        users = {address.split("@")[0].lower()
                 for address in (*spec.recipients, spec.sender) if "@" in address}
        messages.append((users, spec.arrival_s if env is None else env.now, self))

    def noting_session(self, spec):
        clock[0] = self.env
        hits = self.memo.hits
        started = time.perf_counter()
        play(self, spec)
        sessions.append((spec.user, self.env.now, self.memo.hits > hits,
                         time.perf_counter() - started))

    mailrecord.MessageRecord.__init__ = noting_record
    access.AccessLoad._session = noting_session
    # the sessions played here, where they can be timed one by one (in a
    # worker, AccessLoad._session is never called)
    inline = os.environ.get("MAILTWIN_SESSIONS")
    os.environ["MAILTWIN_SESSIONS"] = "inline"
    try:
        code = twin_main(["run", scenario, "--out", str(out), "--quiet", "--force",
                          *[f"--set={item}" for item in overrides]])
    finally:
        mailrecord.MessageRecord.__init__ = make_record
        access.AccessLoad._session = play
        if inline is None:
            del os.environ["MAILTWIN_SESSIONS"]
        else:
            os.environ["MAILTWIN_SESSIONS"] = inline
    if code:
        raise SystemExit(code)
    if not sessions:
        raise SystemExit("the run played no sessions: does the scenario have access?")
    return messages, sessions


def busy_times(messages, end: float) -> dict[str, list[tuple[float, float]]]:
    """Per user, the (start, end) of every message naming the user, sorted."""
    busy: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for users, start, record in messages:
        stop = record.departure
        if record.outcome == "in_progress" or stop != stop:  # still there, NaN
            stop = end
        for user in users:
            busy[user].append((start, stop))
    for spans in busy.values():
        spans.sort()
    return busy


def free(spans: list[tuple[float, float]], low: float, high: float) -> bool:
    for start, stop in spans:
        if start >= high:
            return True
        if stop > low:
            return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="ece-2007-dell")
    parser.add_argument("--duration", default="2d")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    overrides = [item for item in PIPELINE_ONLY if not item.startswith("access=")]
    overrides += [f"duration={args.duration}", *args.set]
    with tempfile.TemporaryDirectory(prefix="lookahead-") as tmp:
        messages, sessions = observe(args.scenario, overrides, Path(tmp) / "run")
    end = max(start for _, start, _, _ in sessions) + 1.0
    busy = busy_times(messages, end)
    played = [s for s in sessions if not s[2]]
    total_time = sum(s[3] for s in sessions)
    played_time = sum(s[3] for s in played)
    print(f"{args.scenario}, {args.duration}: {len(sessions):,} sessions, "
          f"{total_time:.1f} s of play; not replayed by the memo "
          f"{len(played):,} ({played_time:.1f} s)")
    for horizon in HORIZONS:
        early = [s for s in sessions
                 if free(busy.get(s[0], ()), s[1] - horizon, s[1])]
        early_played = [s for s in early if not s[2]]
        print(f"  H = {horizon:>5} s: {len(early) / len(sessions):6.1%} of sessions, "
              f"{sum(s[3] for s in early) / max(total_time, 1e-9):6.1%} of play time;"
              f" not replayed: {len(early_played) / max(len(played), 1):6.1%}, "
              f"{sum(s[3] for s in early_played) / max(played_time, 1e-9):6.1%}"
              " of their time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
