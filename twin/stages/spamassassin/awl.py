"""AWL: SpamAssassin's auto-whitelist (Mail::SpamAssassin::Plugin::AWL).

Keeps, per sender, the number of messages seen and the sum of their scores,
keyed ``address|ip=<first two octets of the client IP>`` (FACTS.md
"SpamAssassin").  For a sender seen before, the message's score is pulled
toward the sender's mean: ``delta = (mean - score) * factor``, factor 0.5
(``auto_whitelist_factor``), shown as rule ``AWL`` with that delta.  The
message's own pre-AWL score is then added to the history, as SpamAssassin
does.  Entries are held in memory; ``save``/``load`` use a JSON file.

Counts one lookup per ``adjust``.  Raises ``ValueError`` for a factor outside
[0, 1].
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["AWL_FACTOR", "AutoWhitelist", "awl_key"]

AWL_FACTOR = 0.5  # FACTS.md "SpamAssassin": auto_whitelist_factor 0.5


def awl_key(address: str, client_ip: str) -> str:
    """``address|ip=a.b``: the lower-cased sender and the IP's first two octets."""
    octets = client_ip.split(".")
    prefix = ".".join(octets[:2]) if len(octets) == 4 else (client_ip or "none")
    return f"{address.strip().lower()}|ip={prefix}"


@dataclass
class AutoWhitelist:
    """Per-sender score history: key -> [count, total score]."""

    factor: float = AWL_FACTOR
    entries: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.factor <= 1.0:
            raise ValueError(f"awl factor {self.factor} outside the range 0..1")

    def adjust(self, address: str, client_ip: str, score: float) -> float:
        """Return the AWL delta for this score and record the score."""
        key = awl_key(address, client_ip)
        entry = self.entries.get(key)
        delta = 0.0
        if entry is not None and entry[0] > 0:
            mean = entry[1] / entry[0]
            delta = (mean - score) * self.factor
        if entry is None:
            entry = self.entries[key] = [0, 0.0]
        entry[0] += 1
        entry[1] += score
        return delta

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(
            json.dumps({"format": "mailtwin-awl-1", "entries": self.entries})
        )
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, factor: float = AWL_FACTOR) -> AutoWhitelist:
        data = json.loads(path.read_text())
        if data.get("format") != "mailtwin-awl-1":
            raise ValueError(f"awl file {str(path)!r} is not in format mailtwin-awl-1")
        return cls(factor=factor, entries=data["entries"])
