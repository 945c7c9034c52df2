"""The cache folder: chosen by environment, switchable off, never a result."""

from pathlib import Path

from twin.cache import cache_dir


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MAILTWIN_CACHE", str(tmp_path / "here"))
    assert cache_dir() == tmp_path / "here"
    monkeypatch.setenv("MAILTWIN_CACHE", "")
    assert cache_dir() is None
    monkeypatch.delenv("MAILTWIN_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "mailtwin"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == Path(tmp_path / "home" / ".cache" / "mailtwin")


def test_the_gateway_keeps_its_compiled_rules_in_the_cache():
    """The session's cache (tests/conftest.py): compiled once for every test."""
    from twin.scenario import load_scenario
    from twin.sim.mailsetup import content_filters

    root = Path(__file__).parent.parent / "scenarios"
    short = ["duration=1h", "warmup=0s"]
    scenario = load_scenario(root / "ece-2007-dell-gateway.yaml", short)
    content_filters(scenario.model)
    assert list(cache_dir().glob("sa-rules-*.pickle"))


def test_an_unwritable_cache_only_costs_the_compile(tmp_path):
    from twin.stages.spamassassin.commands import load_rules

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "local.cf").write_text("body MONEY /money/\nscore MONEY 1.5\n")
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    loaded = load_rules(rules, blocked / "cache")
    assert loaded.rule_count == 1
    assert blocked.read_text() == "not a folder"
