"""Seconds a GB of the byte passes a message meets on its way through the model.

Times, on the delivered maildir files of a run (the real mix of sizes and
structures), each pass over a message's bytes that the SMTP and delivery
stages make or avoid: the client's DATA form (``_stuffed`` of LF and of CRLF
messages), the LF form for delivery (``lf_message``), the searches behind
them, and ``goes_as_is``, the one search the front makes where ``render``
cannot tell. Beside them, as the reference measured in the same run, a copy
of the same bytes (``bytes`` concatenation): the ratio column is comparable
across machines.

    python benchmarks/byte_passes.py RUN_DIR [--messages 2000]

RUN_DIR is a run folder with a maildir store (``twin run ece-2007-dell
--duration 1d``, for example).
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twin.stages.maildir import _BARE_CR, lf_message  # noqa: E402
from twin.stages.smtp import _DOT_LINE, _stuffed, goes_as_is  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder with a maildir store")
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    files = sorted((args.run / "store").glob("*/Maildir/new/*"))[: args.messages]
    if not files:
        raise SystemExit(f"{args.run}: no maildir files under store/*/Maildir/new/;"
                         " give a run folder of a maildir scenario")
    lf = [path.read_bytes() for path in files]
    crlf = [_stuffed(message) for message in lf]
    total = sum(map(len, lf))

    def seconds_a_gb(function, messages) -> float:
        best = min(timeit.repeat(lambda: [function(m) for m in messages],
                                 number=1, repeat=5))
        return best / total * 1e9

    reference = seconds_a_gb(lambda m: b"x" + m, lf)
    passes = [
        ("_stuffed of LF messages", _stuffed, lf),
        ("_stuffed of CRLF messages", _stuffed, crlf),
        ("lf_message of CRLF messages", lf_message, crlf),
        ('b"\\r\\n" in (none there)', lambda m: b"\r\n" in m, lf),
        ('b"\\r" in (none there)', lambda m: b"\r" in m, lf),
        ("_DOT_LINE.search", _DOT_LINE.search, crlf),
        ("_BARE_CR.search", _BARE_CR.search, crlf),
        ("goes_as_is", goes_as_is, crlf),
        ("replace LF by CRLF", lambda m: m.replace(b"\n", b"\r\n"), lf),
        ("translate (drop CRs)", lambda m: m.translate(None, b"\r"), crlf),
        ("replace (drop CRs)", lambda m: m.replace(b"\r", b""), crlf),
    ]
    print(f"{len(lf):,} messages, {total / 1e6:.1f} MB ({args.run})")
    print(f"  {'copy (reference)':32s} {reference:6.3f} s/GB   1.0")
    for name, function, messages in passes:
        took = seconds_a_gb(function, messages)
        print(f"  {name:32s} {took:6.3f} s/GB {took / reference:5.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
