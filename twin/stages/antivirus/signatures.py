"""ClamAV signature databases: hash (.hdb, .hsb) and body (.ndb) signatures.

Reads the formats of ClamAV 0.9x (FACTS.md "ClamAV"):

- ``.hdb``: ``MD5:size:Name`` -- a whole-file hash. ClamAV also accepts SHA1 and
  SHA256 digests in these files (the upstream unit-test ``clamav.hdb`` holds a
  SHA256 line), so the algorithm is taken from the digest length (32, 40 or 64
  hex digits), whatever the extension; ``.hsb`` is the SHA form. A size of ``*``
  (sizeless, later ClamAV) matches any size.
- ``.ndb``: ``Name:TargetType:Offset:HexSignature[:MinFL[:MaxFL]]`` -- a byte
  pattern with an offset ``*``, ``n``, ``n,maxshift``, ``EOF-n`` or
  ``EOF-n,maxshift``. PE-relative offsets (``EP+n``, ``Sx+n``, ``SL+n``,
  ``SEx``) need a PE parser the twin does not have: such lines are skipped and
  listed in ``SignatureSet.skipped``.

Nothing is decided here; ``matcher`` compiles the patterns. Raises ValueError
naming the file and line for a malformed line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

HASH_ALGORITHMS = {32: "md5", 40: "sha1", 64: "sha256"}
DATABASE_SUFFIXES = (".hdb", ".hsb", ".ndb")
DEFAULT_DATABASE_DIR = Path(__file__).resolve().parents[2] / "data" / "antivirus"

_HEX_DIGEST = re.compile(r"[0-9a-fA-F]+\Z")
_OFFSET = re.compile(r"(?:(\*)|(EOF-)?([0-9]+)(?:,([0-9]+))?)\Z")


@dataclass(frozen=True, slots=True)
class HashSignature:
    name: str
    algorithm: str  # md5, sha1, sha256
    digest: str  # lower-case hex
    size: int | None  # None: any size


@dataclass(frozen=True, slots=True)
class BodySignature:
    """An .ndb pattern; ``anchor`` is "any", "start" (offset n) or "eof"."""

    name: str
    target: int
    anchor: str
    offset: int
    max_shift: int
    hex_pattern: str
    source: str


@dataclass(frozen=True, slots=True)
class SignatureSet:
    hashes: tuple[HashSignature, ...] = ()
    bodies: tuple[BodySignature, ...] = ()
    skipped: tuple[str, ...] = ()  # "file:line: reason"
    source_bytes: int = 0

    @property
    def count(self) -> int:
        """Signatures loaded ("Known viruses" in clamscan's summary)."""
        return len(self.hashes) + len(self.bodies)

    def __add__(self, other: SignatureSet) -> SignatureSet:
        return SignatureSet(
            self.hashes + other.hashes,
            self.bodies + other.bodies,
            self.skipped + other.skipped,
            self.source_bytes + other.source_bytes,
        )


def parse_hash_db(text: str, source: str = "<hdb>") -> SignatureSet:
    hashes: list[HashSignature] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) < 3:
            raise ValueError(
                f"{source}:{lineno}: hash signature {line!r} is not HASH:size:Name"
            )
        digest, size, name = fields[0], fields[1], fields[2]
        algorithm = HASH_ALGORITHMS.get(len(digest))
        if algorithm is None or not _HEX_DIGEST.match(digest):
            raise ValueError(
                f"{source}:{lineno}: digest {digest!r} is not 32, 40 "
                "or 64 hex digits (MD5, SHA1, SHA256)"
            )
        if size == "*":
            size_bytes = None
        elif size.isdigit():
            size_bytes = int(size)
        else:
            raise ValueError(
                f"{source}:{lineno}: size {size!r} is not a number of bytes or *"
            )
        if not name:
            raise ValueError(f"{source}:{lineno}: empty signature name")
        hashes.append(HashSignature(name, algorithm, digest.lower(), size_bytes))
    return SignatureSet(hashes=tuple(hashes), source_bytes=len(text.encode()))


def parse_body_db(text: str, source: str = "<ndb>") -> SignatureSet:
    bodies: list[BodySignature] = []
    skipped: list[str] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}:{lineno}"
        fields = line.split(":")
        if len(fields) < 4:
            raise ValueError(
                f"{where}: body signature {line!r} is not "
                "Name:TargetType:Offset:HexSignature"
            )
        name, target, offset, pattern = fields[0], fields[1], fields[2], fields[3]
        if not name:
            raise ValueError(f"{where}: empty signature name")
        if not target.isdigit() or int(target) > 14:
            raise ValueError(f"{where}: target type {target!r} is not in 0..14")
        match = _OFFSET.match(offset)
        if match is None:
            skipped.append(f"{where}: offset {offset!r} of {name} is not supported")
            continue
        if match.group(1):
            anchor, start, shift = "any", 0, 0
        else:
            anchor = "eof" if match.group(2) else "start"
            start = int(match.group(3))
            shift = int(match.group(4)) if match.group(4) else 0
        bodies.append(
            BodySignature(
                name, int(target), anchor, start, shift, pattern.lower(), where
            )
        )
    return SignatureSet(
        bodies=tuple(bodies), skipped=tuple(skipped), source_bytes=len(text.encode())
    )


def load_database(directory: str | Path | None = None) -> SignatureSet:
    """Every .hdb, .hsb and .ndb file of ``directory`` (default: the twin's own)."""
    path = Path(directory) if directory is not None else DEFAULT_DATABASE_DIR
    if not path.is_dir():
        raise ValueError(f"signature database {str(path)!r} is not a directory")
    signatures = SignatureSet()
    files = sorted(p for p in path.iterdir() if p.suffix in DATABASE_SUFFIXES)
    if not files:
        raise ValueError(
            f"signature database {str(path)!r} holds no "
            f"{', '.join(DATABASE_SUFFIXES)} file"
        )
    for file in files:
        text = file.read_text(encoding="latin-1")
        if file.suffix == ".ndb":
            signatures = signatures + parse_body_db(text, str(file))
        else:
            signatures = signatures + parse_hash_db(text, str(file))
    return signatures
