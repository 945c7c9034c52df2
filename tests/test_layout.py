"""Layout rules of STYLE.md that a parser can check."""

import ast
from pathlib import Path

import pytest

TWIN = Path(__file__).parent.parent / "twin"
FORBIDDEN = ("simpy", "twin.sim", "twin.hardware")
STAGE_FILES = sorted(
    [
        *(TWIN / "stages").rglob("*.py"),
        *(TWIN / "traffic").rglob("*.py"),
        *(TWIN / "access").rglob("*.py"),
    ]
)


def imported(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize(
    "path", STAGE_FILES, ids=[str(p.relative_to(TWIN)) for p in STAGE_FILES]
)
def test_stages_know_nothing_of_the_simulator(path):
    bad = [
        name
        for name in imported(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    ]
    assert not bad, f"{path} imports {bad}"


@pytest.mark.parametrize(
    "path", STAGE_FILES, ids=[str(p.relative_to(TWIN)) for p in STAGE_FILES]
)
def test_stages_do_not_read_the_host_clock(path):
    source = path.read_text()
    for call in ("time.time(", "datetime.now(", "datetime.utcnow(", "time.monotonic("):
        if "commands.py" in path.name or "server.py" in path.name:
            continue  # command and socket front ends may time real work
        assert call not in source, f"{path} reads the host clock via {call}"
