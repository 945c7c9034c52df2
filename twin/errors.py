"""Errors that carry their exit code; only the top of ``cli.py`` prints them.

- ``TwinError`` (exit 1): something the user can fix that is not the scenario
  (a missing run folder, a file that is not a message).
- ``ScenarioError`` (exit 2): one or more problems in a scenario, each located
  as ``FILE:LINE: key.path: what is wrong (what would be right)``.
"""

from __future__ import annotations

from dataclasses import dataclass


class TwinError(Exception):
    """A failure the user can act on; printed as one line, exit status 1."""

    exit_code = 1

    def lines(self) -> list[str]:
        return [str(self)]


@dataclass(frozen=True)
class Problem:
    """One problem in a scenario, located by file, line and key path."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = f" {self.path}:" if self.path else ""
        return f"{where}:{key} {self.message}"


class ScenarioError(TwinError):
    """A scenario that cannot run; every problem found, one line each, exit 2."""

    exit_code = 2

    def __init__(self, problems: list[Problem]) -> None:
        if not problems:
            raise ValueError("a ScenarioError needs at least one problem")
        self.problems = list(problems)
        super().__init__(str(self.problems[0]))

    def lines(self) -> list[str]:
        return [str(problem) for problem in self.problems]
