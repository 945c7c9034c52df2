"""Real messages as the workload's content: a corpus labelled by folder name.

``Corpus(path)`` indexes a folder of message files whose sub-folders are
labelled by name: a folder whose name contains ``spam`` holds spam, one whose
name contains ``ham`` holds legitimate mail (the SpamAssassin public corpus's
``easy_ham``, ``hard_ham``, ``spam``, ``spam_2`` fit). ``message(is_spam,
key)`` returns one message of that label as the client sends it: CRLF line
ends, without an mbox ``From `` line. The message is chosen by *key* (a
message id), so the same spec gets the same message in every configuration.
Files are read when first used and not kept, so memory does not grow with the
corpus.

Raises ``ValueError`` when the folder is missing or lacks one of the labels.
"""

from __future__ import annotations

import zlib
from pathlib import Path

LABELS = ("ham", "spam")


class Corpus:
    """Message files under *path*, by label."""

    def __init__(self, path: str | Path, seed: int = 0) -> None:
        root = Path(path)
        if not root.is_dir():
            raise ValueError(f"corpus {root}: no such folder")
        self.root = root
        self.seed = seed
        self.files: dict[str, list[Path]] = {label: [] for label in LABELS}
        for folder in sorted(p for p in root.rglob("*") if p.is_dir()):
            name = folder.name.lower()
            label = "spam" if "spam" in name else "ham" if "ham" in name else None
            if label is None:
                continue
            self.files[label].extend(
                sorted(
                    p
                    for p in folder.iterdir()
                    if p.is_file() and not p.name.startswith((".", "cmds"))
                )
            )
        for label in LABELS:
            if not self.files[label]:
                raise ValueError(
                    f"corpus {root}: no {label} messages (put them in a folder "
                    f"whose name contains '{label}')"
                )

    def count(self, label: str) -> int:
        return len(self.files[label])

    def message(self, is_spam: bool, key: int) -> bytes:
        """A message of the label, picked by *key*, with CRLF line ends."""
        files = self.files["spam" if is_spam else "ham"]
        pick = zlib.crc32(f"{self.seed}:{key}".encode()) % len(files)
        data = files[pick].read_bytes()
        if data.startswith(b"From "):
            data = data.split(b"\n", 1)[1] if b"\n" in data else b""
        data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        return data
