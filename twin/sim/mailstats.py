"""Counters and latencies of a mail run, and the summary.json metrics they give.

Metric names (README "Mail metrics"): ``messages.offered``,
``messages.accepted``, ``messages.inbound.accepted`` (from outside, for local
users: the seed's "received"), ``messages.inbound.spam_accepted``,
``messages.outbound.accepted`` (the seed's "sent"), ``messages.lost``,
``messages.rejected``, ``messages.delivered``, ``messages.bounced``,
``greylist.deferred``, ``greylist.passed``, ``greylist.whitelisted``,
``relay.denied``, ``latency.delivery.mean`` (+ ``.ci95``), ``.p50``, ``.p95``,
``.p99``, ``util.<host>.cpu``, ``util.<host>.<array>``,
``queue.<host>.<resource>.max``, and more counts beside them.

Counts cover the whole run; latencies, utilisations and their intervals cover
the time after the warm-up (a message counts by the time it first arrived).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, fields

import numpy as np

from twin.sim.stats import BatchClock, Tally


@dataclass
class MailCounters:
    """Whole-run counts of what happened to messages and connections."""

    offered: int = 0
    offered_inbound: int = 0
    offered_spam: int = 0
    offered_outbound: int = 0
    attempts: int = 0
    accepted: int = 0
    inbound_accepted: int = 0
    inbound_spam_accepted: int = 0
    inbound_ham_accepted: int = 0
    outbound_accepted: int = 0
    rejected: int = 0
    abandoned: int = 0
    delivered: int = 0
    bounced: int = 0
    deliveries_local: int = 0
    deliveries_remote: int = 0
    remote_deferred: int = 0
    greylist_deferred: int = 0
    greylist_passed: int = 0
    greylist_whitelisted: int = 0
    greylist_trapped: int = 0
    greylist_blacklisted: int = 0
    relay_denied: int = 0
    unknown_users: int = 0
    auth_failed: int = 0
    auth_succeeded: int = 0
    filter_scanned: int = 0
    spam_tagged: int = 0
    spam_missed: int = 0
    ham_tagged: int = 0
    ham_passed: int = 0
    virus_scanned: int = 0
    virus_blocked: int = 0
    ocr_images: int = 0
    ocr_hash_hits: int = 0
    ocr_flagged: int = 0
    image_spam_tagged: int = 0
    image_spam_missed: int = 0

    def metrics(self) -> dict[str, float]:
        """The counts under their summary.json names."""
        names = {
            "offered": "messages.offered",
            "offered_inbound": "messages.inbound.offered",
            "offered_spam": "messages.inbound.spam_offered",
            "offered_outbound": "messages.outbound.offered",
            "attempts": "messages.attempts",
            "accepted": "messages.accepted",
            "inbound_accepted": "messages.inbound.accepted",
            "inbound_spam_accepted": "messages.inbound.spam_accepted",
            "inbound_ham_accepted": "messages.inbound.ham_accepted",
            "outbound_accepted": "messages.outbound.accepted",
            "rejected": "messages.rejected",
            "abandoned": "messages.abandoned",
            "delivered": "messages.delivered",
            "bounced": "messages.bounced",
            "deliveries_local": "deliveries.local",
            "deliveries_remote": "deliveries.remote",
            "remote_deferred": "deliveries.remote_deferred",
            "greylist_deferred": "greylist.deferred",
            "greylist_passed": "greylist.passed",
            "greylist_whitelisted": "greylist.whitelisted",
            "greylist_trapped": "greylist.trapped",
            "greylist_blacklisted": "greylist.blacklisted",
            "relay_denied": "relay.denied",
            "unknown_users": "smtp.unknown_users",
            "auth_failed": "smtp.auth_failed",
            "auth_succeeded": "smtp.auth_succeeded",
            "filter_scanned": "filter.scanned",
            "spam_tagged": "filter.spam_tagged",
            "spam_missed": "filter.spam_missed",
            "ham_tagged": "filter.ham_tagged",
            "ham_passed": "filter.ham_passed",
            "virus_scanned": "virus.scanned",
            "virus_blocked": "virus.blocked",
            "ocr_images": "ocr.images",
            "ocr_hash_hits": "ocr.hash_hits",
            "ocr_flagged": "ocr.flagged",
            "image_spam_tagged": "filter.image_spam_tagged",
            "image_spam_missed": "filter.image_spam_missed",
        }
        out = {names[f.name]: float(getattr(self, f.name)) for f in fields(self)}
        out["messages.blocked"] = float(self.virus_blocked)
        spam = self.spam_tagged + self.spam_missed
        ham = self.ham_tagged + self.ham_passed
        out["filter.catch_rate"] = self.spam_tagged / spam if spam else float("nan")
        images = self.image_spam_tagged + self.image_spam_missed
        out["filter.image_spam_catch_rate"] = (
            self.image_spam_tagged / images if images else float("nan")
        )
        out["filter.false_positive_rate"] = (
            self.ham_tagged / ham if ham else float("nan")
        )
        return out


class Latencies:
    """Delivery latencies after the warm-up: all values, and batch tallies."""

    def __init__(self, clock: BatchClock) -> None:
        self.clock = clock
        self.values = array("d")
        self.tally = Tally(clock.count)

    def add(self, arrival: float, latency: float) -> None:
        batch = self.clock.index(arrival)
        if batch >= 0:
            self.values.append(latency)
            self.tally.add(batch, latency)

    def metrics(self, prefix: str) -> dict[str, float]:
        values = np.frombuffer(self.values, dtype=float) if self.values else None
        mean, half = self.tally.mean_ci()
        out = {
            f"{prefix}.mean": mean,
            f"{prefix}.mean.ci95": half,
            f"{prefix}.count": float(len(self.values)),
        }
        for label, q in (("p50", 50), ("p95", 95), ("p99", 99)):
            out[f"{prefix}.{label}"] = (
                float(np.percentile(values, q)) if values is not None else float("nan")
            )
        out[f"{prefix}.max"] = (
            float(values.max()) if values is not None else float("nan")
        )
        return out


def utilisation(marks: dict[str, float], monitors, span: float) -> dict[str, float]:
    """``util.<resource>`` over [warm-up, end] from busy-area marks."""
    out = {}
    for name, resource in monitors:
        resource.sync()
        start_area = marks.get(name, 0.0)
        capacity = max(resource.capacity, 1)
        out[f"util.{name}"] = (resource.busy_area - start_area) / (capacity * span)
    return out
