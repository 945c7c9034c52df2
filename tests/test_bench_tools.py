"""The measuring tools under benchmarks/ that wrap the package's functions."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_timed_calls_counts_the_calls_of_a_wrapped_function(monkeypatch):
    timed = load("timed_calls")
    import twin.units as units

    monkeypatch.setattr(units, "parse_duration", units.parse_duration)  # restored after
    totals: dict[str, list] = {}
    timed.wrap("twin.units:parse_duration", totals)
    assert units.parse_duration("2h") == 7200.0
    assert units.parse_duration("90s") == 90.0
    wall, cpu, calls = totals["twin.units:parse_duration"]
    assert calls == 2 and wall >= cpu >= 0.0


def test_timed_calls_says_how_to_name_a_function():
    timed = load("timed_calls")
    with pytest.raises(SystemExit, match="MODULE:QUALNAME"):
        timed.wrap("twin.units.parse_duration", {})
    with pytest.raises(SystemExit):
        timed.main(["twin.units:parse_duration"])  # no command after --
    assert "benchmarks" not in sys.modules
