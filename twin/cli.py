"""The ``twin`` command line: parse, call one library function, print.

Commands:
  twin run [SCENARIO] [--out DIR] [--seed N] [--duration D] [--set K=V ...]
           [--quiet] [--force]
  twin validate SCENARIO [--set K=V ...]
  twin estimate SCENARIO [--set K=V ...]
  twin list
  twin compare RUN_DIR... [--metric NAME ...] [--markdown]
  twin score [--json] [--rules DIR] [--bayes-db FILE] FILE...
  twin learn --spam DIR [--spam DIR ...] --ham DIR [--ham DIR ...] [--db FILE]
  twin scan [--db DIR] FILE...
  twin serve imap|pop3 RUN_DIR [--port N] [--host ADDRESS]

SCENARIO is a file, or the name of a scenario under scenarios/ (``mm4``,
``validation/mm1``); ``twin run`` alone runs the built-in default scenario.
Errors the user can fix print one line each (``FILE:LINE: key: problem``) to
standard error and exit 2 for scenarios, 1 otherwise; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from twin import __version__
from twin.errors import TwinError

DEFAULT_SCENARIO = "ece-2007-dell"
REPOSITORY = Path(__file__).resolve().parent.parent


def scenario_dirs() -> list[Path]:
    """Where scenario names are looked up: ./scenarios, then the project's."""
    found = []
    for folder in (Path("scenarios"), REPOSITORY / "scenarios"):
        if folder.is_dir() and folder.resolve() not in [f.resolve() for f in found]:
            found.append(folder)
    return found


def find_scenario(name: str) -> Path:
    """The file of scenario *name* (a path, or a name under scenarios/)."""
    path = Path(name)
    if path.is_file():
        return path
    for folder in scenario_dirs():
        for candidate in (folder / name, folder / f"{name}.yaml"):
            if candidate.is_file():
                return candidate
    return path  # load_scenario reports it as missing, with the hint


def _overrides(args: argparse.Namespace) -> list[str | tuple[str, str]]:
    sets: list[str | tuple[str, str]] = list(args.set or [])
    if getattr(args, "seed", None) is not None:
        sets.append((f"--seed {args.seed}", f"seed={args.seed}"))
    if getattr(args, "duration", None) is not None:
        sets.append((f"--duration {args.duration}", f"duration={args.duration}"))
    return sets


def _load(args: argparse.Namespace):
    from twin.scenario import load_scenario

    return load_scenario(find_scenario(args.scenario), _overrides(args))


def cmd_run(args: argparse.Namespace) -> int:
    from twin.sim.children import discard_waiting, prespawn_for, prespawn_guess

    # the run's front child imports the package while this process loads the
    # scenario and imports the simulator (twin.sim.children)
    prespawn_guess(find_scenario(args.scenario), _overrides(args))
    try:
        scenario = _load(args)
        prespawn_for(scenario)
        from twin.sim.run import run_scenario

        out = Path(args.out) if args.out else None
        result = run_scenario(
            scenario, out, quiet=args.quiet, force=args.force,
            progress_stream=sys.stderr,
        )
    finally:
        discard_waiting()
    if result.reused:
        print(
            f"{result.path}: already complete for this scenario "
            "(use --force to run again)"
        )
    else:
        wall = result.manifest.get("wall_seconds", 0)
        print(
            f"{result.path}: done in {wall:.1f} s wall, "
            f"{result.manifest.get('events', 0):,} events"
        )
    if not args.quiet:
        for line in headline(result.summary):
            print(line)
    return 0


MAIL_HEADLINE = (
    "messages.offered",
    "messages.inbound.accepted",
    "messages.inbound.spam_accepted",
    "messages.outbound.accepted",
    "messages.rejected",
    "messages.delivered",
    "messages.lost",
    "greylist.deferred",
    "relay.denied",
    "latency.delivery.p50",
    "latency.delivery.p95",
    "filter.spam_tagged",
    "filter.spam_missed",
    "filter.ham_tagged",
    "filter.catch_rate",
    "filter.false_positive_rate",
    "virus.blocked",
    "access.sessions",
    "latency.imap.select.p95",
    "latency.imap.session.p95",
    "latency.pop3.session.p95",
)
"""What ``twin run`` shows first of a mail run (those the run has)."""


def headline(summary: dict[str, float | None], limit: int = 40) -> list[str]:
    """The summary metrics as aligned lines, confidence intervals beside means.

    A mail run shows ``MAIL_HEADLINE`` and every host's utilisation first.
    """
    names = [name for name in summary if not name.endswith(".ci95")]
    if "messages.offered" in summary:
        # a stage the scenario does not have shows nothing (no zeros, no n/a)
        absent = {
            "filter": not summary.get("filter.scanned"),
            "virus": not summary.get("virus.scanned"),
        }
        first = [
            name
            for name in MAIL_HEADLINE
            if name in summary and not absent.get(name.split(".")[0])
        ]
        first += [
            name for name in names if name.startswith("util.") and name.endswith(".cpu")
        ]
        names = first + [name for name in names if name not in set(first)]
        limit = min(limit, len(first))
    width = max((len(name) for name in names), default=0)
    lines = []
    for name in names[:limit]:
        value = summary[name]
        text = "n/a" if value is None else f"{value:.6g}"
        half = summary.get(f"{name}.ci95")
        if half is not None:
            text += f" ± {half:.3g}"
        lines.append(f"  {name.ljust(width)}  {text}")
    if len(names) > limit:
        lines.append(f"  … {len(names) - limit} more in summary.json")
    return lines


def cmd_validate(args: argparse.Namespace) -> int:
    scenario = _load(args)
    print(
        f"{scenario.source}: ok ({scenario.kind} scenario {scenario.name!r}, "
        f"seed {scenario.seed})"
    )
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    from twin.estimate import estimate

    result = estimate(_load(args))
    if args.json:
        print(json.dumps(result.metrics, indent=2, sort_keys=True))
    else:
        for line in result.lines():
            print(line)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    for folder in scenario_dirs():
        for path in sorted(folder.rglob("*.yaml")):
            print(path.relative_to(folder).with_suffix(""))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from twin.report.compare import compare

    metrics = args.metric or None
    for line in compare([Path(p) for p in args.runs], metrics, args.markdown):
        print(line)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from twin.cache import cache_dir
    from twin.stages.spamassassin.commands import score_files

    return score_files(
        [Path(p) for p in args.files],
        Path(args.rules) if args.rules else None,
        Path(args.bayes_db) if args.bayes_db else None,
        args.json,
        sys.stdout,
        sys.stderr,
        ocr=not args.no_ocr,
        cache_dir=cache_dir(),
    )


def cmd_learn(args: argparse.Namespace) -> int:
    from twin.stages.spamassassin.commands import learn

    return learn(
        [Path(p) for p in args.spam or []],
        [Path(p) for p in args.ham or []],
        Path(args.db),
        sys.stdout,
    )


def cmd_scan(args: argparse.Namespace) -> int:
    from twin.stages.antivirus.commands import scan_files

    return scan_files(args.files, args.db, sys.stdout, sys.stderr)


def cmd_serve(args: argparse.Namespace) -> int:
    from twin.access.commands import serve_command

    return serve_command(args.kind, args.run_dir, args.host, args.port, sys.stdout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="twin", description="mailtwin: a digital twin of a campus mail system"
    )
    parser.add_argument(
        "--version", action="version", version=f"mailtwin {__version__}"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def scenario_options(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--set",
            action="append",
            metavar="PATH.TO.KEY=VALUE",
            help="override a scenario key (VALUE is YAML); repeatable",
        )

    run = commands.add_parser("run", help="run a scenario into a run folder")
    run.add_argument(
        "scenario",
        nargs="?",
        default=DEFAULT_SCENARIO,
        help=f"scenario file or name (default: {DEFAULT_SCENARIO})",
    )
    run.add_argument(
        "--out", metavar="DIR", help="run folder (default: reports/runs/<name>-seed<N>)"
    )
    run.add_argument("--seed", type=int, metavar="N", help="override the seed")
    run.add_argument("--duration", metavar="D", help="override the duration (e.g. 2d)")
    run.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    run.add_argument(
        "--force",
        action="store_true",
        help="run again even if the run folder is complete",
    )
    scenario_options(run)
    run.set_defaults(handler=cmd_run)

    validate = commands.add_parser("validate", help="check a scenario without running")
    validate.add_argument("scenario")
    scenario_options(validate)
    validate.set_defaults(handler=cmd_validate)

    estimate = commands.add_parser(
        "estimate", help="analytic answer without simulating"
    )
    estimate.add_argument("scenario")
    estimate.add_argument("--json", action="store_true", help="metrics as JSON")
    scenario_options(estimate)
    estimate.set_defaults(handler=cmd_estimate)

    listing = commands.add_parser("list", help="list the scenarios by name")
    listing.set_defaults(handler=cmd_list)

    comparing = commands.add_parser(
        "compare", help="summary metrics of run folders side by side"
    )
    comparing.add_argument("runs", nargs="+", metavar="RUN_DIR")
    comparing.add_argument(
        "--metric",
        action="append",
        metavar="NAME",
        help="a metric to show (repeatable; default: headline)",
    )
    comparing.add_argument("--markdown", action="store_true", help="a Markdown table")
    comparing.set_defaults(handler=cmd_compare)

    score = commands.add_parser(
        "score", help="score messages like 'spamassassin -t' (SpamAssassin rules)"
    )
    score.add_argument("files", nargs="+", metavar="FILE")
    score.add_argument("--json", action="store_true", help="one JSON object a line")
    score.add_argument("--rules", metavar="DIR", help="rule folder (default: shipped)")
    score.add_argument("--bayes-db", metavar="FILE", help="Bayes database to use")
    score.add_argument(
        "--no-ocr",
        action="store_true",
        help="without FuzzyOCR (by default it reads attached images after the rules)",
    )
    score.set_defaults(handler=cmd_score)

    learn = commands.add_parser("learn", help="train the Bayes database")
    learn.add_argument(
        "--spam",
        action="append",
        metavar="DIR",
        help="maildir, mbox or folder of spam; repeatable",
    )
    learn.add_argument(
        "--ham",
        action="append",
        metavar="DIR",
        help="maildir, mbox or folder of ham; repeatable",
    )
    learn.add_argument(
        "--db",
        default="bayes.json",
        metavar="FILE",
        help="Bayes database (default: bayes.json)",
    )
    learn.set_defaults(handler=cmd_learn)

    scan = commands.add_parser("scan", help="scan files like clamscan")
    scan.add_argument("files", nargs="+", metavar="FILE")
    scan.add_argument("--db", metavar="DIR", help="signature folder (default: shipped)")
    scan.set_defaults(handler=cmd_scan)

    serve = commands.add_parser("serve", help="serve a run's mailboxes over IMAP/POP3")
    serve.add_argument("kind", choices=["imap", "pop3"])
    serve.add_argument("run_dir", metavar="RUN_DIR")
    serve.add_argument(
        "--port", type=int, default=0, help="TCP port (default: any free port, printed)"
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    serve.set_defaults(handler=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except TwinError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("twin: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
