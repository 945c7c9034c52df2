"""Scenario loading: every bad input gives a located one-line problem."""

import re
from pathlib import Path

import pytest

from twin.errors import ScenarioError
from twin.scenario import load_scenario, loads_scenario

DATA = Path(__file__).parent / "data"
BAD = sorted((DATA / "bad").glob("*.yaml"))
ROOT = Path(__file__).parent.parent


def expected(path: Path) -> tuple[int, str]:
    first = path.read_text().splitlines()[0]
    match = re.match(r"# expect: (\d+): (.*)", first)
    assert match, f"{path} must start with '# expect: LINE: text'"
    return int(match.group(1)), match.group(2)


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_scenarios_are_located(path):
    line, text = expected(path)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    lines = caught.value.lines()
    assert any(
        item.startswith(f"{path}:{line}: ") and text in item for item in lines
    ), lines
    assert caught.value.exit_code == 2


def test_every_problem_is_reported_at_once():
    text = (
        "kind: queueing\nname: many\nduration: 10q\nseed: -1\n"
        "arrivals: {to: s1, rate: 1/s}\n"
        "stations:\n  s1: {servers: 0, service: {dist: exponential, mean: 1s}}\n"
    )
    with pytest.raises(ScenarioError) as caught:
        loads_scenario(text, "x.yaml")
    lines = caught.value.lines()
    assert [line.split(":")[1] for line in lines] == ["3", "4", "7"]


def test_overrides_apply_and_are_located():
    scenario = load_scenario(
        ROOT / "scenarios/validation/mm4.yaml",
        ["seed=9", "stations.s1.servers=5", "duration=1d"],
    )
    assert scenario.seed == 9
    assert scenario.model.stations["s1"].servers == 5
    assert scenario.model.duration == 86400
    with pytest.raises(ScenarioError) as caught:
        load_scenario(
            ROOT / "scenarios/validation/mm4.yaml", ["stations.s1.servers=lots"]
        )
    assert caught.value.lines()[0].startswith(
        "--set stations.s1.servers=lots: stations.s1.servers:"
    )
    with pytest.raises(ScenarioError, match="expected path.to.key=VALUE"):
        load_scenario(ROOT / "scenarios/validation/mm4.yaml", ["oops"])
    with pytest.raises(ScenarioError, match="no such place"):
        load_scenario(ROOT / "scenarios/validation/mm4.yaml", ["name.first=1"])
    with pytest.raises(ScenarioError) as caught:
        load_scenario(ROOT / "scenarios/validation/mm4.yaml", ["stations.s1.speed=2"])
    assert caught.value.lines() == [
        "--set stations.s1.speed=2: stations.s1.speed: unknown key "
        "(allowed: next, servers, service)"
    ]


def test_resolved_yaml_fills_defaults_and_round_trips():
    scenario = load_scenario(ROOT / "scenarios/validation/jackson.yaml")
    assert "batches: 30" in scenario.resolved_yaml
    assert "sample_interval: 60.0" in scenario.resolved_yaml
    again = loads_scenario(scenario.resolved_yaml, "resolved.yaml")
    assert again.model == scenario.model
    assert again.digest == scenario.digest


def test_missing_file():
    with pytest.raises(ScenarioError, match="no such file"):
        load_scenario(DATA / "nope.yaml")
