"""The mail engine end to end: real stores, conservation, relay control, determinism.

Short runs (hours, a few hundred users) of the two ECE scenarios; the week
itself is measured by benchmarks/mail_week.py.
"""

import email
import imaplib
import json
import mailbox
import re
import threading
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from twin.access.server import start
from twin.scenario import load_scenario
from twin.sim.run import run_scenario
from twin.stages.directory import read_credentials_csv

ROOT = Path(__file__).parent.parent / "scenarios"
BRIEF = [
    "duration=8h",
    "warmup=1h",
    "traffic.users.inboxes=300",
    "output.sample_interval=10m",
    "output.batches=10",
]
MAIL_PATH_ONLY = [
    "access=null",
    "pipeline.spf=null",
    "pipeline.antivirus=null",
    "pipeline.spamfilter=null",
    "pipeline.ocr=null",
]
SHORT = BRIEF + MAIL_PATH_ONLY
"""Hours of the mail path alone: every delivered message is in the store, once."""
MESSAGE_ID = re.compile(rb"^Message-ID: <\d+\.(\d+)\.", re.MULTILINE | re.IGNORECASE)


@pytest.fixture(scope="module")
def dell(tmp_path_factory):
    scenario = load_scenario(ROOT / "ece-2007-dell.yaml", SHORT)
    return run_scenario(scenario, tmp_path_factory.mktemp("dell") / "run", quiet=True)


@pytest.fixture(scope="module")
def sun(tmp_path_factory):
    scenario = load_scenario(ROOT / "ece-2004-sun.yaml", SHORT)
    return run_scenario(scenario, tmp_path_factory.mktemp("sun") / "run", quiet=True)


def delivered_ids(messages) -> Counter:
    ids = Counter()
    for message in messages:
        match = MESSAGE_ID.search(message)
        assert match, message[:300]
        ids[int(match.group(1))] += 1
    return ids


def expected_ids(folder: Path) -> Counter:
    """msg_id -> local deliveries, from the jobs table and the smtp outcomes."""
    jobs = pd.read_parquet(folder / "jobs.parquet")
    done = jobs[jobs.outcome.isin(["delivered", "bounced"])]
    return Counter(
        {
            int(row.job_id): int(row["deliver.visits"])
            for _, row in done.iterrows()
            if row["deliver.visits"] > 0
        }
    )


def test_dell_maildir_holds_every_delivery_once(dell):
    summary = dell.summary
    assert summary["messages.lost"] == 0
    assert summary["messages.accepted"] > 100
    store = dell.path / "store"
    messages = []
    for user_dir in sorted(p for p in store.iterdir() if p.is_dir()):
        box = mailbox.Maildir(user_dir / "Maildir", factory=None, create=False)
        messages.extend(box.get_bytes(key) for key in box.keys())
    assert len(messages) == summary["deliveries.local"]
    assert delivered_ids(messages) == expected_ids(dell.path)
    for raw in messages[:50]:
        parsed = email.message_from_bytes(raw)
        assert parsed["Received"] and "mail.ece.example.edu" in parsed["Received"]
        assert not parsed.defects


def test_sun_mbox_holds_every_delivery_once(sun):
    summary = sun.summary
    assert summary["messages.lost"] == 0
    store = sun.path / "store"
    messages = []
    for spool in sorted(
        p for p in store.iterdir() if p.is_file() and not p.name.startswith(".")
    ):
        box = mailbox.mbox(spool, create=False)
        messages.extend(box.get_bytes(key) for key in box.keys())
    assert len(messages) == summary["deliveries.local"]
    assert delivered_ids(messages) == expected_ids(sun.path)


def test_seed_counts_add_up(dell):
    s = dell.summary
    assert s["messages.offered"] == (
        s["messages.inbound.offered"] + s["messages.outbound.offered"]
    )
    assert s["messages.accepted"] == (
        s["messages.inbound.accepted"] + s["messages.outbound.accepted"]
    )
    assert s["messages.accepted"] == (
        s["messages.delivered"] + s["messages.bounced"] + s["messages.queued"]
    )
    finished = (
        s["messages.accepted"]
        + s["messages.rejected"]
        + s["messages.abandoned"]
        - s["messages.queued"]
    )
    jobs = pd.read_parquet(dell.path / "jobs.parquet")
    assert len(jobs) == s["messages.offered"]
    assert (jobs.outcome != "in_progress").sum() == finished
    assert s["greylist.deferred"] > 0
    assert (
        s["latency.delivery.p50"]
        <= s["latency.delivery.p95"]
        <= s["latency.delivery.p99"]
    )


def test_nobody_relays_without_authentication(dell, sun):
    for run in (dell, sun):
        jobs = pd.read_parquet(run.path / "jobs.parquet")
        relays = jobs[jobs.aim == "relay"]
        assert len(relays) > 0
        assert not (relays["remote.visits"] > 0).any()
        assert (relays.outcome != "delivered").all()
        assert run.summary["relay.denied"] > 0


def test_greylisting_keeps_spam_out(dell, sun):
    """Without spamd (the Sun) far more of the offered spam is accepted."""
    dell_share = (
        dell.summary["messages.inbound.spam_accepted"]
        / dell.summary["messages.inbound.spam_offered"]
    )
    sun_share = (
        sun.summary["messages.inbound.spam_accepted"]
        / sun.summary["messages.inbound.spam_offered"]
    )
    assert sun_share > 0.8
    assert dell_share < 0.5 * sun_share
    assert sun.summary["greylist.deferred"] == 0
    # the two scenarios share seed and workload: the same mail was offered
    assert dell.summary["messages.offered"] == sun.summary["messages.offered"]


def test_same_seed_same_results(dell, tmp_path):
    scenario = load_scenario(ROOT / "ece-2007-dell.yaml", SHORT)
    again = run_scenario(scenario, tmp_path / "again", quiet=True)
    for name in ("summary.json", "jobs.parquet", "resources.parquet"):
        assert (dell.path / name).read_bytes() == (again.path / name).read_bytes(), name


def test_run_folder_can_be_served_over_imap(dell):
    user, password = next(
        (u, p)
        for u, p in read_credentials_csv(dell.path / "credentials.csv")
        if (dell.path / "store" / u / "Maildir").is_dir()
        and any((dell.path / "store" / u / "Maildir" / "new").iterdir())
    )
    server = start("imap", dell.path)
    try:
        host, port = server.address
        client = imaplib.IMAP4(host, port, timeout=10)
        client.login(user, password)
        status, data = client.select("INBOX", readonly=True)
        assert status == "OK" and int(data[0]) > 0
        status, fetched = client.fetch("1", "(BODY.PEEK[])")
        assert status == "OK"
        body = fetched[0][1]
        box = mailbox.Maildir(
            dell.path / "store" / user / "Maildir", factory=None, create=False
        )
        # IMAP sends lines with CRLF; the maildir file holds them with LF
        assert body in [box.get_bytes(k).replace(b"\n", b"\r\n") for k in box.keys()]
        client.logout()
    finally:
        server.close()
    assert threading.active_count() < 50


def test_resources_and_utilisation_are_reported(dell):
    s = dell.summary
    for name in (
        "util.gateway.cpu",
        "util.mail.cpu",
        "util.mail.users",
        "util.spamd.cpu",
        "queue.gateway.smtpd.max",
        "queue.mail.users.max",
    ):
        assert name in s, name
        assert s[name] >= 0
    resources = pd.read_parquet(dell.path / "resources.parquet")
    assert {"mail.users", "gateway.cpu", "spamd.spamd"} <= set(resources.resource)
    manifest = json.loads((dell.path / "manifest.json").read_text())
    assert manifest["kind"] == "mail" and manifest["status"] == "complete"


def test_content_filters_and_spf_on_the_gateway(dell, tmp_path):
    """Viruses are blocked, spam tagged against ground truth, forged senders fail."""
    scenario = load_scenario(
        ROOT / "ece-2007-dell.yaml",
        [
            *SHORT,
            "duration=4h",
            "pipeline.spf={on: gateway}",
            "pipeline.antivirus={on: gateway}",
            "pipeline.spamfilter={on: gateway}",
            "traffic.inbound.virus_share=0.2",
        ],
    )
    run = run_scenario(scenario, tmp_path / "filters", quiet=True)
    s = run.summary
    assert s["messages.lost"] == 0
    assert s["virus.blocked"] > 0
    assert s["filter.scanned"] == (
        s["filter.spam_tagged"]
        + s["filter.spam_missed"]
        + s["filter.ham_tagged"]
        + s["filter.ham_passed"]
    )
    assert s["filter.catch_rate"] > 0.5
    assert s["spf.fail"] > 0 and s["spf.pass"] > 0
    jobs = pd.read_parquet(run.path / "jobs.parquet")
    blocked = jobs[jobs.outcome == "blocked"]
    assert len(blocked) == s["virus.blocked"]
    assert blocked.virus.all() and blocked.is_spam.all()
    assert not (blocked["deliver.visits"] > 0).any()
    # legitimate senders' mail passes SPF: no legit message is rejected by it
    legit = jobs[(jobs["class"] == "legit")]
    assert (legit.outcome != "rejected").all()
    store = run.path / "store"
    tagged = scanned = 0
    for user_dir in (p for p in store.iterdir() if p.is_dir()):
        box = mailbox.Maildir(user_dir / "Maildir", factory=None, create=False)
        for key in box.keys():
            message = email.message_from_bytes(box.get_bytes(key))
            if message["X-Spam-Status"] is None:
                continue  # users' own mail to each other is not filtered
            scanned += 1
            is_tagged = str(message["Subject"]).startswith("***SPAM***")
            assert is_tagged == (message["X-Spam-Flag"] == "YES")
            tagged += is_tagged
    assert tagged > 0 and scanned > tagged


def test_ocr_reads_image_spam_and_costs_the_gateway(tmp_path):
    quick = [
        *BRIEF,
        "duration=2h",
        "warmup=30m",
        "pipeline.spamfilter.enabled=false",
        "pipeline.antivirus.enabled=false",
        "pipeline.spf.enabled=false",
    ]
    on = run_scenario(
        load_scenario(ROOT / "ocr-impact.yaml", quick), tmp_path / "on", quiet=True
    ).summary
    off = run_scenario(
        load_scenario(ROOT / "ocr-impact.yaml", [*quick, "pipeline.ocr.enabled=false"]),
        tmp_path / "off",
        quiet=True,
    ).summary
    assert on["ocr.images"] > 0 and on["ocr.flagged"] > 0
    assert on["cpu.gateway.ocr.seconds"] > 0
    assert off["ocr.images"] == 0 and "cpu.gateway.ocr.seconds" not in off
    # the same mail was offered to both; OCR tags image spam the text filter misses
    assert on["messages.offered"] == off["messages.offered"]
    assert on["filter.spam_tagged"] > off["filter.spam_tagged"]
    # without the text filter only OCR can tag: image spam is what it catches
    assert on["filter.image_spam_tagged"] > 0
    images = on["filter.image_spam_tagged"] + on["filter.image_spam_missed"]
    assert on["filter.image_spam_catch_rate"] == on["filter.image_spam_tagged"] / images
    assert on["filter.spam_tagged"] == on["filter.image_spam_tagged"]


def test_static_whitelist_removes_the_greylisting_delay(dell, tmp_path):
    """The seed's fix for greylisting delays: whitelisted senders pass at once."""
    scenario = load_scenario(
        ROOT / "ece-2007-dell.yaml",
        [*SHORT, "pipeline.greylist.whitelist=[0.0.0.0/0]"],
    )
    open_door = run_scenario(scenario, tmp_path / "whitelisted", quiet=True).summary
    assert open_door["greylist.deferred"] == 0
    assert open_door["greylist.whitelisted"] > 0
    assert open_door["messages.lost"] == 0
    assert (
        open_door["latency.delivery.p95"] < 0.01 * dell.summary["latency.delivery.p95"]
    )
    # and spam walks in with the legitimate mail
    assert (
        open_door["messages.inbound.spam_accepted"]
        > 3 * dell.summary["messages.inbound.spam_accepted"]
    )


def test_the_default_scenario_is_the_whole_2007_system(tmp_path):
    """ece-2007-dell as shipped: greylisting, SPF, the content filters, delivery
    and users reading mail with Cyrus, all in one run; the Sun has its readers."""
    scenario = load_scenario(
        ROOT / "ece-2007-dell.yaml",
        [
            "duration=3h",
            "warmup=1h",
            "traffic.users.inboxes=120",
            "output.sample_interval=10m",
            "output.batches=5",
        ],
    )
    model = scenario.model
    assert model.pipeline.spamfilter.on == "gateway"
    assert model.pipeline.antivirus.on == model.pipeline.ocr.on == "gateway"
    assert model.access is not None and model.access.enabled
    sun = load_scenario(ROOT / "ece-2004-sun.yaml").model
    assert sun.access is not None and sun.access.enabled
    assert sun.pipeline.deliver.format == "mbox"
    s = run_scenario(scenario, tmp_path / "whole", quiet=True).summary
    assert s["messages.lost"] == 0
    assert s["filter.scanned"] > 100
    assert s["filter.spam_tagged"] > 0 and s["filter.catch_rate"] > 0.5
    assert s["filter.false_positive_rate"] < 0.05
    assert s["spf.pass"] > 0
    assert s["virus.scanned"] == s["messages.inbound.accepted"]
    for stage in ("smtp", "spamfilter", "antivirus", "spf"):
        assert s[f"cpu.gateway.{stage}.seconds"] > 0, stage
    assert s["access.sessions"] > 100 and s["access.failures"] == 0
    assert s["cpu.mail.imap.seconds"] > 0
    assert s["latency.imap.session.p95"] > 0 and s["latency.pop3.session.p95"] > 0
    assert 0 <= s["cache.mail.hit_rate"] <= 1
