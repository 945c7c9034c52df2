"""The senders' DNS: SPF records the legitimate domains publish."""

import pytest

from twin.sim.streams import Streams
from twin.stages.dns import Dns
from twin.stages.spf import SpfChecker, SpfCode
from twin.traffic.dnszones import sender_zones
from twin.traffic.population import Population, PopulationSettings
from twin.traffic.workload import TrafficSettings, _LegitSource


def setup(publish=0.5, hard=0.5):
    population = Population(PopulationSettings(), Streams(3)("population"))
    settings = TrafficSettings()
    zones = sender_zones(settings, population, Streams(3), publish, hard)
    legit = _LegitSource(settings, population, Streams(3))
    return population, zones, legit


def test_publishing_share_and_record_shape():
    _, zones, legit = setup(publish=0.5)
    published = [z for d, z in zones.items() if "TXT" in z and d != "ece.example.edu"]
    share = len(published) / (len(zones) - 1)
    assert 0.45 < share < 0.55
    assert all(z["TXT"][0].startswith("v=spf1 ip4:") for z in published)
    assert zones["ece.example.edu"]["TXT"] == ["v=spf1 ip4:10.20.0.0/16 -all"]


def test_legit_mtas_pass_and_forgers_fail():
    population, zones, legit = setup(publish=1.0, hard=1.0)
    spf = SpfChecker(Dns(zones))
    for index in range(0, 200, 7):
        domain, ip = legit.domains[index], legit.ips[index]
        assert spf.check(ip, f"x@{domain}", "mx", 0.0).code is SpfCode.PASS
        assert spf.check("198.51.100.7", f"x@{domain}", "bot", 0.0).code is SpfCode.FAIL
    forged = spf.check("198.51.100.7", "jsmith@ece.example.edu", "bot", 0.0)
    assert forged.code is SpfCode.FAIL
    assert spf.check("198.51.100.7", "x@nowhere.example", "b", 0.0).code is SpfCode.NONE


def test_bad_shares():
    population = Population(PopulationSettings(), Streams(3)("population"))
    with pytest.raises(ValueError, match="publish_share"):
        sender_zones(TrafficSettings(), population, Streams(3), 1.5, 0.5)
