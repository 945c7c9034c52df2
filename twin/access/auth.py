"""Who may log in: the ``Authenticator`` protocol and a credentials-file one.

The sessions need only ``authenticate(user, password) -> bool``; the lead plugs
in the project's directory classes (``twin.stages.directory``), tests and
``twin serve`` use ``CredentialsFile`` built from a run folder's
``credentials.csv`` (``user,password`` rows; a ``user,password`` header row is
skipped). Passwords are compared in constant time.
"""

from __future__ import annotations

import csv
import hmac
from pathlib import Path
from typing import Protocol


class Authenticator(Protocol):
    """Anything that can check a user's password."""

    def authenticate(self, user: str, password: str) -> bool: ...


class CredentialsFile:
    """Users and plain passwords from a CSV file, read once."""

    def __init__(self, path: str | Path) -> None:
        self._passwords: dict[str, bytes] = {}
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.reader(handle):
                if len(row) < 2 or not row[0] or row[0].startswith("#"):
                    continue
                if row[0] == "user" and row[1] == "password":
                    continue
                self._passwords[row[0].strip().lower()] = row[1].encode("utf-8")

    def authenticate(self, user: str, password: str) -> bool:
        expected = self._passwords.get(user.lower())
        offered = password.encode("utf-8", "surrogateescape")
        if expected is None:
            hmac.compare_digest(offered, offered)
            return False
        return hmac.compare_digest(expected, offered)

    @property
    def users(self) -> tuple[str, ...]:
        return tuple(sorted(self._passwords))
