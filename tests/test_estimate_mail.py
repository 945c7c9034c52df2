"""Operational-law estimates of mail scenarios, from the real stages' work."""

from pathlib import Path

from twin.estimate import estimate
from twin.scenario import load_scenario

ROOT = Path(__file__).parent.parent / "scenarios"


def test_every_resource_has_a_utilisation():
    result = estimate(load_scenario(ROOT / "ece-2007-dell.yaml"))
    names = {row[0] for row in result.rows}
    assert {"spamd.cpu", "gateway.cpu", "mail.cpu", "mail.users", "gateway.smtpd",
            "spamd.spamd"} <= names
    assert all(0 <= value < 1 for value in result.metrics.values())
    assert not result.warnings


def test_a_hopeless_scenario_is_flagged():
    """A spam storm into one smtpd process on the Sun cannot keep up."""
    result = estimate(load_scenario(
        ROOT / "ece-2004-sun.yaml",
        ["pipeline.smtp.processes=1", "traffic.inbound.spam=20/s"],
    ))
    assert result.metrics["util.mail.smtpd"] >= 1
    assert any(w.startswith("mail.smtpd: utilisation") for w in result.warnings)


def test_estimate_tracks_the_load():
    base = estimate(load_scenario(ROOT / "ece-2004-sun.yaml")).metrics
    double = estimate(load_scenario(
        ROOT / "ece-2004-sun.yaml",
        ["traffic.inbound.legit=62000/week", "traffic.inbound.spam=152000/week",
         "traffic.outbound.rate=22000/week"],
    )).metrics
    ratio = double["util.mail.cpu"] / base["util.mail.cpu"]
    assert 1.8 < ratio < 2.2
