"""Operational-law estimate of a mail scenario: U = X * D, in a second.

A sample of the scenario's own workload (the first ``SAMPLE`` messages of its
traffic, same seed) goes through the real stages once, without SimPy queueing,
in a throw-away folder: spamd's check, the SMTP dialogue, the queue file, the
hand-over to the mailbox host and the local deliveries. ``Host.demand`` turns
each step's work into busy seconds per resource. Per traffic class, the mean
demand of a message times the class's mean arrival rate over the scenario
(``TrafficSettings.expected_count``) gives each resource's utilisation:

    U = sum over classes of X_class * D_class / servers

Greylisting is counted without its delays: a sender that retries is taken to
make ``1 + retries before passtime`` attempts and then be accepted; one that
does not retry makes one attempt and is lost. Pools of processes (spamd
connections, smtpd) are estimated the same way from the time a session holds
them (the client's round trips and transfer). It is a first answer, not the
simulation: queueing delays and the page cache's warming are not in it.
"""

from __future__ import annotations

import itertools
import tempfile
from collections import defaultdict
from pathlib import Path

import simpy

from twin.estimate import Estimate
from twin.hardware.host import Host
from twin.hardware.profile import load_profile
from twin.schema.mail import MailScenario
from twin.sim.mailsetup import (
    DIALOGUE_COMMANDS,
    build_stages,
    play_dialogue,
    submission_host,
    traffic_settings,
)
from twin.sim.streams import Streams
from twin.stages.greylist import GreylistDecision
from twin.stages.smtp import RcptStatus
from twin.traffic.message import render
from twin.traffic.workload import generate

SAMPLE = 1500
"""Messages of the workload run through the stages for the estimate."""
FILTER_EVERY = 5
"""One accepted inbound message in this many goes through the content filters
(they are slow); its demand counts for all of them."""


def _attempts(spec, passtime: float, scan: float) -> tuple[int, bool]:
    """Attempts a sender makes through greylisting, and whether it gets in."""
    if spec.retry is None:
        return 1, False
    attempts, last = 1, spec.arrival_s
    while True:
        again = spec.retry.next_attempt(attempts, last)
        if again is None:
            return attempts, False
        attempts += 1
        if again >= spec.arrival_s + passtime + scan:
            return attempts, True
        last = again


def estimate_mail(model: MailScenario) -> Estimate:
    """Per-resource utilisation of *model* by the operational law."""
    settings = traffic_settings(model)
    streams = Streams(model.seed)
    env = simpy.Environment()
    hosts = {
        name: Host(env, name, load_profile(spec.hardware))
        for name, spec in model.hosts.items()
    }
    pipeline = model.pipeline
    mx, box, submit = pipeline.smtp.on, pipeline.deliver.on, submission_host(model)
    queue_array = {name: list(host.arrays)[0] for name, host in hosts.items()}
    if pipeline.smtp.queue_array:
        queue_array[mx] = pipeline.smtp.queue_array
    box_array = pipeline.deliver.array or list(hosts[box].arrays)[-1]
    demand: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    sampled: dict[str, int] = defaultdict(int)

    def charge(kind: str, host: str, work, array: str | None = None) -> None:
        for resource, seconds in hosts[host].demand(work, array).items():
            demand[kind][resource] += seconds

    with tempfile.TemporaryDirectory(prefix="twin-estimate-") as folder:
        stages = build_stages(model, streams, Path(folder))
        grey = stages.greylist
        grey_spec = pipeline.greylist
        rng = streams("traffic.render")
        filter_host = next(
            (
                stage.on
                for stage in (pipeline.antivirus, pipeline.spamfilter, pipeline.ocr)
                if stage is not None and stage.enabled
            ),
            None,
        )
        filtered = 0
        specs = generate(settings, stages.population, model.duration, streams)
        for spec in itertools.islice(specs, SAMPLE):
            kind = spec.kind
            sampled[kind] += 1
            inbound = kind != "outbound"
            if inbound and grey is not None:
                attempts, gets_in = _attempts(spec, grey_spec.passtime, 60.0)
                check = grey.check(
                    spec.client_ip,
                    spec.helo,
                    spec.sender,
                    spec.recipients[0],
                    spec.arrival_s,
                )
                for _ in range(attempts):
                    charge(kind, grey_spec.on, check.work)
                if check.decision is not GreylistDecision.PASSED:
                    hold = check.stutter_s + pipeline.smtp.client_rtt * (
                        DIALOGUE_COMMANDS + len(spec.recipients)
                    )
                    demand[kind][f"{grey_spec.on}.spamd"] += hold * (attempts - 1 or 1)
                if not gets_in:
                    continue
            server = stages.mx if inbound else stages.submission
            at = mx if inbound else submit
            side = pipeline.smtp if inbound else model.submission
            message = render(spec, stages.population, rng)
            result = play_dialogue(server, spec, message, spec.arrival_s,
                                   queue_prefix="E")
            talk = side.client_rtt * (DIALOGUE_COMMANDS + len(spec.recipients))
            accepted = bool(result.data_reply and result.data_reply.startswith("250"))
            if accepted:
                talk += len(message) / side.client_bandwidth
            pool = f"{mx}.smtpd" if inbound else f"{submit}.submission"
            demand[kind][pool] += talk
            if inbound and stages.spf is not None:
                checked = stages.spf.check(
                    spec.client_ip, spec.sender, spec.helo, spec.arrival_s
                )
                charge(kind, at, checked.work)
            charge(kind, at, result.work, queue_array[at])
            if not accepted:
                continue
            if inbound and filter_host is not None:
                filtered += 1
                if filtered % FILTER_EVERY == 0:  # a sample, weighted back up
                    for work in _filter_work(stages, result.message, spec):
                        for _ in range(FILTER_EVERY):
                            charge(kind, filter_host, work)
                        busy = hosts[filter_host].cpu_seconds(work) * FILTER_EVERY
                        demand[kind][f"{filter_host}.amavisd"] += busy
            entry = stages.queues[at].enqueue(
                result.queue_id, result.message, spec.arrival_s
            )
            charge(kind, at, entry.work, queue_array[at])
            users = [
                o.local_user
                for o in result.recipients
                if o.status is RcptStatus.ACCEPTED and o.local_user
            ]
            for index, user in enumerate(users):
                if pipeline.deliver.format == "maildir":
                    done = stages.store.deliver(
                        user, result.message, spec.arrival_s, f"E{spec.msg_id}x{index}"
                    )
                else:
                    done = stages.store.deliver(
                        user, result.message, spec.arrival_s, spec.sender
                    )
                charge(kind, box, done.work, box_array)
            charge(
                kind,
                at,
                stages.queues[at].delivered(result.queue_id, spec.arrival_s),
                queue_array[at],
            )
    capacity = _capacities(hosts, model)
    usage: dict[str, float] = defaultdict(float)
    for kind, resources in demand.items():
        if not sampled[kind]:
            continue
        rate = settings.expected_count(kind, model.duration) / model.duration
        for resource, seconds in resources.items():
            usage[resource] += rate * seconds / sampled[kind]
    result = Estimate(
        f"{model.name}: operational-law utilisation (U = X * D)",
        ["resource", "utilization", "servers"],
    )
    for resource in sorted(usage):
        servers = capacity.get(resource, 1.0)
        value = usage[resource] / servers
        result.rows.append([resource, f"{value:.4g}", f"{servers:g}"])
        result.metrics[f"util.{resource}"] = value
        if value >= 1:
            result.warnings.append(
                f"{resource}: utilisation {value:.3g} >= 1, its queue grows without "
                "bound (add capacity or lower the load)"
            )
    return result


def _filter_work(stages, message: bytes, spec) -> list:
    """The work of the content filters (scan, score, OCR) on one message."""
    steps = []
    if stages.scanner is not None:
        steps.append(stages.scanner.scan(message, spec.arrival_s).work)
    score = 0.0
    if stages.spamfilter is not None:
        result = stages.spamfilter.check(
            message, spec.arrival_s, spec.sender, spec.client_ip
        )
        steps.append(result.work)
        score, message = result.score, result.message
    if stages.ocr is not None:
        steps.append(stages.ocr.check(message, spec.arrival_s, score).work)
    return steps


def _capacities(hosts: dict[str, Host], model: MailScenario) -> dict[str, float]:
    capacity: dict[str, float] = {}
    for name, host in hosts.items():
        capacity[f"{name}.cpu"] = host.profile.cpu.saturation_cores
        for array_name, spec in host.profile.arrays.items():
            capacity[f"{name}.{array_name}"] = float(spec.disks)
        capacity[f"{name}.link"] = 1.0
    if model.pipeline.greylist is not None:
        grey = model.pipeline.greylist
        capacity[f"{grey.on}.spamd"] = float(grey.max_connections)
    capacity[f"{model.pipeline.smtp.on}.smtpd"] = float(model.pipeline.smtp.processes)
    for stage in (
        model.pipeline.antivirus,
        model.pipeline.spamfilter,
        model.pipeline.ocr,
    ):
        if stage is not None:
            capacity[f"{stage.on}.amavisd"] = float(model.pipeline.filter_children)
    capacity[f"{submission_host(model)}.submission"] = float(model.submission.processes)
    return capacity
