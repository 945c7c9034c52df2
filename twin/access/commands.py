"""``twin serve imap|pop3 RUN_DIR [--port N]``: the library side of the command.

``serve_command`` checks its arguments, starts the server, writes one line
saying where it listens, and serves until interrupted (Ctrl-C), returning the
exit code: 0 after a clean stop, 2 for bad arguments (message on *out*, no
traceback). ``cli.py`` only parses and calls it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from twin.access.server import KINDS, AccessServer, serve


def serve_command(kind: str, run_dir: str | Path, host: str, port: int,
                  out: TextIO) -> int:
    """Serve *kind* over ``RUN_DIR/store`` on *host*:*port* until interrupted."""
    if kind not in KINDS:
        out.write(f"twin serve: kind {kind!r} must be one of {', '.join(KINDS)}\n")
        return 2
    if not 0 <= port <= 65535:
        out.write(f"twin serve: port {port} must be 0..65535\n")
        return 2
    if not (Path(run_dir) / "store").is_dir():
        out.write(f"twin serve: run folder {run_dir} has no store/ directory\n")
        return 2
    if not (Path(run_dir) / "credentials.csv").is_file():
        out.write(f"twin serve: run folder {run_dir} has no credentials.csv\n")
        return 2

    def ready(server: AccessServer) -> None:
        host_bound, port_bound = server.address
        tls = "with STARTTLS" if server.tls is not None else "without TLS"
        out.write(f"serving {kind} on {host_bound}:{port_bound} over the "
                  f"{server.format} store of {run_dir} ({tls})\n")
        out.flush()

    try:
        serve(kind, run_dir, host, port, ready=ready)
    except KeyboardInterrupt:
        out.write("stopped\n")
    except (OSError, ValueError) as exc:
        out.write(f"twin serve: {exc}\n")
        return 2
    return 0
