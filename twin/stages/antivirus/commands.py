"""A clamscan-like file scanner over the twin's ClamAV matcher.

``scan_files(paths, db_dir, out, err)`` prints one line per file,
``FILE: NAME FOUND`` or ``FILE: OK``, then clamscan's summary block (known
signatures, directories and files scanned, infected files, data scanned in MB
of 2^20 bytes; no engine version and no wall-clock time). Directories are
walked recursively in name order (as ``clamscan -r``). Returns clamscan's exit
code: 1 when something was found, else 2 when an error occurred (a file that
cannot be read, a database that cannot be loaded), else 0. Errors go to ``err``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from twin.stages.antivirus.signatures import load_database
from twin.stages.antivirus.stage import ScanDecision, Scanner, ScannerSettings


def scan_files(
    paths: Iterable[str | os.PathLike[str]],
    db_dir: str | None,
    out: TextIO,
    err: TextIO,
) -> int:
    """Scan files and directories like clamscan; returns 0, 1 or 2."""
    try:
        signatures = load_database(db_dir)
        scanner = Scanner(ScannerSettings(database_dir=db_dir), signatures)
    except (ValueError, OSError) as error:
        err.write(f"error: cannot load the signature database: {error}\n")
        return 2
    files = directories = infected = errors = scanned_bytes = 0
    for path in _walk(paths, err):
        if path is None:
            errors += 1
            continue
        if path.is_dir():
            directories += 1
            continue
        try:
            data = path.read_bytes()
        except OSError as error:
            err.write(f"{path}: cannot read: {error.strerror or error}\n")
            errors += 1
            continue
        files += 1
        result = scanner.scan_object(data, now=0.0)
        scanned_bytes += result.work.cpu.get("antivirus.byte", 0)
        if result.decision is ScanDecision.INFECTED:
            infected += 1
            out.write(f"{path}: {result.virus} FOUND\n")
        else:
            out.write(f"{path}: OK\n")
    out.write("\n----------- SCAN SUMMARY -----------\n")
    out.write(f"Known viruses: {signatures.count}\n")
    out.write(f"Scanned directories: {directories}\n")
    out.write(f"Scanned files: {files}\n")
    out.write(f"Infected files: {infected}\n")
    if errors:
        out.write(f"Total errors: {errors}\n")
    out.write(f"Data scanned: {scanned_bytes / 2**20:.2f} MB\n")
    if infected:
        return 1
    return 2 if errors else 0


def _walk(paths: Iterable[str | os.PathLike[str]], err: TextIO):
    """Files and directories under ``paths``; None for each one that is missing."""
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            err.write(f"{path}: no such file or directory\n")
            yield None
        elif path.is_dir():
            yield path
            for root, dirs, names in os.walk(path):
                dirs.sort()
                for name in dirs:
                    yield Path(root) / name
                for name in sorted(names):
                    yield Path(root) / name
        else:
            yield path
