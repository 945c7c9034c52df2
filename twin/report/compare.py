"""Side-by-side tables of run folders' summary metrics.

``compare(folders, metrics)`` reads each run's summary.json and lays the
chosen metrics (default: ``HEADLINE``, those present in any run) side by
side, as aligned text or a Markdown table. Runs are named by their folder;
a metric a run lacks shows as ``-``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from twin.errors import TwinError

HEADLINE = (
    "messages.offered",
    "messages.inbound.accepted",
    "messages.inbound.spam_accepted",
    "messages.outbound.accepted",
    "messages.accepted",
    "messages.rejected",
    "messages.abandoned",
    "messages.delivered",
    "messages.bounced",
    "messages.lost",
    "greylist.deferred",
    "greylist.passed",
    "relay.denied",
    "smtp.unknown_users",
    "latency.delivery.mean",
    "latency.delivery.p50",
    "latency.delivery.p95",
    "latency.delivery.p99",
)
"""The metrics shown when none are named (plus every util.* and queue.*.max)."""


def read_summary(folder: Path) -> dict[str, float | None]:
    path = Path(folder) / "summary.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise TwinError(
            f"{folder}: no summary.json (is it a complete run folder? "
            "run 'twin run' first)"
        ) from None
    except ValueError as exc:
        raise TwinError(f"{path}: not valid JSON ({exc})") from None


def _cell(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    return f"{value:.4g}"


def compare(
    folders: Sequence[Path],
    metrics: Sequence[str] | None = None,
    markdown: bool = False,
) -> list[str]:
    """Lines of a table: one row per metric, one column per run folder."""
    summaries = [read_summary(folder) for folder in folders]
    if metrics is None:
        present = set().union(*summaries)
        chosen = [name for name in HEADLINE if name in present]
        extra = sorted(
            name
            for name in present
            if name.startswith(("util.", "queue.")) and not name.endswith(".ci95")
        )
        chosen += extra
    else:
        chosen = list(metrics)
    names = [Path(folder).name for folder in folders]
    rows = [
        [metric, *(_cell(summary.get(metric)) for summary in summaries)]
        for metric in chosen
    ]
    header = ["metric", *names]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * len(names)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return lines
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    out = []
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0])]
        cells += [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        out.append("  ".join(cells))
    return out
