"""The DNS the workload's senders publish: SPF records of their domains.

``sender_zones`` gives zone data (``twin.stages.dns.Dns`` format) for the
domains the workload sends from:

- each legitimate MTA's domain publishes, with probability ``publish_share``,
  an SPF record naming its MTA's address: ``v=spf1 ip4:<mta> -all`` with
  probability ``hardfail_share``, else ``~all``, and an A record for its MTA;
- the local domain publishes ``v=spf1 ip4:<each internal network> -all``, so
  spam forging a local sender fails;
- bots' own domains publish nothing (SPF ``none``); spam forging a legitimate
  domain that publishes fails or softfails, as it should.

The MTA pool is rebuilt from the workload's own stream
(``traffic.legit.pool``), so *stream* must be a fresh source of the run's
streams (one whose ``traffic.legit.pool`` generator has not been drawn from).
Draws of this module come from the stream ``dns.zones``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from twin.traffic.population import Population
from twin.traffic.workload import TrafficSettings, _LegitSource


def sender_zones(
    settings: TrafficSettings,
    population: Population,
    stream: Callable[[str], np.random.Generator],
    publish_share: float,
    hardfail_share: float,
) -> dict[str, dict[str, object]]:
    """Zone data: domain -> {"TXT": [...], "A": [...]} for the senders."""
    for name, share in (
        ("publish_share", publish_share),
        ("hardfail_share", hardfail_share),
    ):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{name}(={share}) must be in [0, 1]")
    legit = _LegitSource(settings, population, stream)
    rng = stream("dns.zones")
    publish = rng.random(len(legit.domains)) < publish_share
    hard = rng.random(len(legit.domains)) < hardfail_share
    by_domain: dict[str, list[int]] = {}
    for index, domain in enumerate(legit.domains):
        by_domain.setdefault(domain, []).append(index)
    zones: dict[str, dict[str, object]] = {}
    for domain, members in by_domain.items():
        ips = [legit.ips[index] for index in members]
        entry: dict[str, object] = {"A": ips}
        first = members[0]  # the domain's policy is drawn with its first MTA
        if publish[first]:
            ending = "-all" if hard[first] else "~all"
            allowed = " ".join(f"ip4:{ip}" for ip in ips)
            entry["TXT"] = [f"v=spf1 {allowed} {ending}"]
        zones[domain] = entry
    networks = " ".join(f"ip4:{net}" for net in population.internal_networks)
    zones[population.local_domain] = {"TXT": [f"v=spf1 {networks} -all"]}
    return zones
