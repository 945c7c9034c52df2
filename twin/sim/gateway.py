"""The gateway of a mail scenario: SPF at the MX, amavisd's content filters.

``Gateway`` holds what the MX and the content-filter host do besides SMTP:

- ``spf``: RFC 7208 check_host of each inbound MAIL FROM over the senders'
  modelled DNS; a fail is refused when ``pipeline.spf.fail`` says so;
- ``content_filter``: an amavisd child scans (ClamAV-compatible: infected mail
  is dropped), scores (SpamAssassin-compatible: spam is tagged) and reads
  images (FuzzyOCR) of each accepted inbound message;
- ``refresh_signatures``: freshclam's hourly update and clamd's reload.

The workload's image spam, pictures and viruses are drawn with the content
of each message (``twin.sim.front.Contents``).

It works on the ``MailModel`` it belongs to (its clock, stages, counters and
hosts); metrics ``spf.<result>`` come from ``metrics``.
"""

from __future__ import annotations

from twin.resources import Servers
from twin.sim.mailrecord import FILTER, MessageRecord
from twin.stages.smtp import SmtpResult
from twin.stages.work import Work
from twin.traffic.workload import MessageSpec

SPF_CODES = ("none", "neutral", "pass", "fail", "softfail", "temperror", "permerror")


class Gateway:
    """SPF and the content filters of *model*'s pipeline."""

    def __init__(self, model) -> None:
        self.model = model
        pipeline = model.scenario.pipeline
        filters = [
            stage
            for stage in (pipeline.antivirus, pipeline.spamfilter, pipeline.ocr)
            if stage is not None and stage.enabled
        ]
        self.filter_host = filters[0].on if filters else None
        self.filters = (
            Servers(model.env, pipeline.filter_children, f"{self.filter_host}.amavisd")
            if self.filter_host
            else None
        )
        self.spf_results: dict[str, int] = {}
        """SPF results by code, over inbound attempts that reached the MX."""

    def start(self) -> None:
        if self.model.stages.scanner is not None:
            self.model.env.process(self.refresh_signatures())

    def metrics(self) -> dict[str, float]:
        if self.model.stages.spf is None:
            return {}
        return {
            f"spf.{code}": float(self.spf_results.get(code, 0)) for code in SPF_CODES
        }

    def content_filter(self, record: MessageRecord, result: SmtpResult):
        """amavisd: scan, score and OCR a queued message; its new bytes or None."""
        env = self.model.env
        stages = self.model.stages
        counters = self.model.counters
        host = self.filter_host
        spec = record.spec
        queued = env.now
        grant = self.filters.acquire()
        if grant is not None:
            yield grant
        start = env.now
        data = result.message
        if host != self.model.mx_host:
            yield from self.model._run(
                "relay", self.model.mx_host, Work(net_bytes=len(data))
            )
        if stages.scanner is not None:
            scan = stages.scanner.scan(data, env.now)
            counters.virus_scanned += 1
            yield from self.model._run("antivirus", host, scan.work)
            if scan.decision.name == "INFECTED":
                counters.virus_blocked += 1
                done = stages.queues[self.model.mx_host].delivered(
                    result.queue_id, env.now
                )
                self.model._queued(self.model.mx_host, -1)
                yield from self.model._run(
                    "queue",
                    self.model.mx_host,
                    done,
                    self.model.queue_array[self.model.mx_host],
                )
                self.filters.release()
                record.visit(FILTER, queued, start, env.now)
                record.verdict = "virus"
                self.model._finish(record, "blocked")
                return None
        tagged = False
        read = None
        if stages.spamfilter is not None:
            # FuzzyOCR runs inside SpamAssassin (a plugin) when both are on
            checked = stages.spamfilter.check(
                data, env.now, spec.sender, spec.client_ip
            )
            yield from self.model._run("spamfilter", host, checked.work)
            tagged = checked.decision.name == "SPAM"
            data = checked.message
            read = dict(checked.plugins).get("ocr")
        elif stages.ocr is not None:
            # FuzzyOCR alone: its own score against the usual threshold
            read = stages.ocr.check(data, env.now, 0.0)
            # against SpamAssassin's default required_score
            tagged = read.decision.name == "SPAM" and read.score >= 5.0
        if read is not None:
            yield from self.model._run("ocr", host, read.work)
            counters.ocr_images += read.work.cpu.get("ocr.image", 0)
            if any(hit[0] == "FUZZY_OCR_KNOWN_HASH" for hit in read.hits):
                counters.ocr_hash_hits += 1
            if read.decision.name == "SPAM":
                counters.ocr_flagged += 1
        self.filters.release()
        record.visit(FILTER, queued, start, env.now)
        counters.filter_scanned += 1
        if spec.is_spam:
            counters.spam_tagged += tagged
            counters.spam_missed += not tagged
            if record.image:
                counters.image_spam_tagged += tagged
                counters.image_spam_missed += not tagged
        else:
            counters.ham_tagged += tagged
            counters.ham_passed += not tagged
        record.verdict = "spam" if tagged else "ham"
        return data

    def refresh_signatures(self):
        """freshclam and clamd's reload, every refresh interval."""
        scanner = self.model.stages.scanner
        interval = scanner.settings.refresh_interval_s
        while True:
            yield self.model.env.timeout(interval)
            work = scanner.refresh(self.model.env.now)
            array = self.model._array(self.filter_host, None, first=True)
            yield from self.model._run("antivirus", self.filter_host, work, array)

    def spf(self, spec: MessageSpec, host_name: str):
        """check_host of the MAIL FROM; True when policy refuses the message."""
        env = self.model.env
        result = self.model.stages.spf.check(
            spec.client_ip, spec.sender, spec.helo, env.now
        )
        code = result.code.value
        self.spf_results[code] = self.spf_results.get(code, 0) + 1
        latency = self.model.scenario.pipeline.spf.dns_latency
        work = result.work
        wait = result.wait_s + latency * work.net_round_trips
        yield from self.model._run("spf", host_name, work)
        if wait > 0:
            yield env.timeout(wait)
        return code == "fail" and self.model.scenario.pipeline.spf.fail == "reject"
