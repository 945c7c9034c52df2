"""The ``kind: mail`` scenario: hosts, the mail pipeline, the directory, traffic.

::

    kind: mail
    name: ece-2007-dell
    seed: 2007
    duration: 7d
    warmup: 1d
    hosts:
      spamd:   {hardware: openbsd-gateway}
      gateway: {hardware: dell-pe1750}
      mail:    {hardware: dell-pe1750}
    pipeline:                        # the inbound path, in this order
      greylist: {on: spamd, flavour: spamd, passtime: 25m, greyexp: 4h, whiteexp: 36d}
      smtp:     {on: gateway, processes: 100, tls: true}
      deliver:  {on: mail, format: maildir, array: users}
    submission: {on: mail, sasl: true, tls: true}   # users' outbound mail
    directory:  {kind: ldap, on: mail}
    traffic:
      inbound:  {legit: 31000/week, spam: 76000/week}
      outbound: {rate: 11000/week, offsite_share: 0.2}
      users:    {inboxes: 1400}

Every stage names the host it runs on (``on``); the hardware of each host is a
profile under ``hardware/``. Defaults are those of the real daemons (spamd,
Postfix) or of the workload's calibration (``twin.traffic.workload``); each
field's comment says which. Cross-references (hosts, arrays, profiles) are
checked by ``mail_references`` so each problem is reported at its own line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from twin.schema.common import (
    Duration,
    NonNegativeRate,
    Output,
    PositiveDuration,
    Probability,
    Size,
    Strict,
)
from twin.units import parse_bandwidth

WEEK = 7 * 86400.0
Bandwidth = Annotated[float, BeforeValidator(parse_bandwidth), Field(gt=0)]
"""Bytes per second, written as ``1Mbit/s`` or ``64KiB/s``."""


class HostSpec(Strict):
    hardware: str
    """A profile name under hardware/ (``dell-pe1750``) or a path to one."""


class GreylistSpec(Strict):
    """OpenBSD spamd (or postgrey) in front of the SMTP server."""

    on: str
    enabled: bool = True
    flavour: Literal["spamd", "postgrey"] = "spamd"
    passtime: Duration = 25 * 60.0  # spamd PASSTIME (FACTS.md)
    greyexp: PositiveDuration = 4 * 3600.0  # spamd GREYEXP
    whiteexp: PositiveDuration = 864 * 3600.0  # spamd WHITEEXP, 36 days
    trapexp: PositiveDuration = 24 * 3600.0  # spamd TRAPEXP
    use_helo: bool = True  # later spamd keys on HELO; the 2004 code did not
    stutter: Duration = 10.0  # spamd -S: greylisted clients stuttered 10 s
    whitelist: list[str] = Field(default_factory=list)
    """Static whitelist: IPv4 addresses, CIDR networks or domains."""
    greytraps: bool = True
    """Use the population's greytrap addresses as spamd traps."""
    max_connections: int = Field(default=800, ge=1)  # spamd -c
    delay: PositiveDuration = 300.0  # postgrey --delay
    max_age: PositiveDuration = 35 * 86400.0  # postgrey --max-age
    retry_window: PositiveDuration = 2 * 86400.0  # postgrey --retry-window
    auto_whitelist_clients: int = Field(default=5, ge=0)  # postgrey
    net_prefix: int = Field(default=24, ge=1, le=32)  # postgrey /24 nets


class SmtpSpec(Strict):
    """Postfix smtpd accepting mail from outside (the MX)."""

    on: str
    processes: int = Field(default=100, ge=1)  # Postfix default_process_limit
    tls: bool = False  # smtpd_use_tls
    tls_share: Probability = 0.1
    """Share of inbound MTA sessions that use STARTTLS when offered (assumption:
    few MTAs did opportunistic TLS in 2007)."""
    sasl: bool = False  # smtpd_sasl_auth_enable
    queue_array: str | None = None
    """Array of the Postfix queue (default: the host's first array)."""
    message_size_limit: Size = 10_240_000.0  # Postfix message_size_limit
    client_rtt: Duration = 0.1
    """Round trip to a remote client (assumption: 100 ms across the Internet)."""
    client_bandwidth: Bandwidth = 64 * 1024.0
    """Rate a remote client sends at (assumption: 512 kbit/s)."""


class SubmissionSpec(Strict):
    """Postfix smtpd taking the users' outbound mail (SASL, TLS, SMTPS)."""

    on: str | None = None
    """Default: the host that delivers (the users' mail server)."""
    processes: int = Field(default=100, ge=1)
    tls: bool = False
    smtps: bool = False
    sasl: bool = False
    client_rtt: Duration = 0.01  # assumption: campus LAN or a nearby ISP
    client_bandwidth: Bandwidth = 256 * 1024.0  # assumption: 2 Mbit/s


class SpfSpec(Strict):
    """SPF check_host (RFC 7208) of each inbound MAIL FROM, at the MX."""

    on: str
    enabled: bool = True
    fail: Literal["reject", "accept"] = "reject"
    """What to do with an SPF fail: reject it (550) or accept it."""
    dns_latency: Duration = 0.05
    """One DNS round trip to the senders' name servers (assumption)."""


class AntivirusSpec(Strict):
    """ClamAV-compatible scanning of every accepted message (clamd)."""

    on: str
    enabled: bool = True
    signatures: str | None = None
    """Folder of .hdb/.hsb/.ndb files (default: the project's small set)."""
    database_size: Size = 12_000_000.0
    """Size of the definitions clamd reloads each refresh (assumption: 2007)."""
    refresh_interval: PositiveDuration = 3600.0  # hourly updates (FACTS.md)


class SpamFilterSpec(Strict):
    """SpamAssassin on the gateway (spamd), tagging spam above a threshold."""

    on: str
    enabled: bool = True
    rules: str | None = None
    """Folder of SpamAssassin .cf files (default: the shipped 4.0.1 rules)."""
    required_score: float = 5.0  # SpamAssassin default (FACTS.md)
    subject_tag: str = "***SPAM***"  # what the ECE gateway used (DESIGN.md)
    bayes: bool = True
    awl: bool = True
    autolearn: bool = True
    max_message_size: Size = 512_000.0  # spamc -s default


class OcrSpec(Strict):
    """FuzzyOCR: OCR of attached images, after the spam filter."""

    on: str
    enabled: bool = True
    hash_db: bool = False
    max_images: int = Field(default=5, ge=0)  # FuzzyOCR per-message image cap
    timeout: PositiveDuration = 10.0  # FuzzyOCR timeout (FACTS.md)
    autodisable_score: float = 10.0  # FACTS.md


class DeliverSpec(Strict):
    """Local delivery into the users' mailboxes."""

    on: str
    format: Literal["maildir", "mbox"] = "maildir"
    array: str | None = None
    """Array holding the mailboxes (default: the host's last array)."""
    host_fsync: bool = False
    """Really fsync on the machine running the twin (slow; the work is counted
    either way)."""


class QueueSpec(Strict):
    """The Postfix queue manager and remote delivery."""

    postfix: Literal["2.4", "pre-2.4"] = "2.4"  # backoff defaults (FACTS.md)
    maximal_queue_lifetime: PositiveDuration = 5 * 86400.0  # Postfix default
    remote_tempfail_share: Probability = 0.03
    """Share of remote delivery attempts that get a 4xx (assumption)."""
    remote_unreachable_share: Probability = 0.002
    """Share of outbound messages whose destination stays down: every attempt
    tempfails until the message bounces after maximal_queue_lifetime
    (assumption)."""
    remote_rtt: Duration = 0.1
    remote_bandwidth: Bandwidth = 256 * 1024.0


class AccessSpec(Strict):
    """Users reading mail with real IMAP4rev1 / POP3 servers over the store.

    The server follows the store: Cyrus (index and cache files) on maildir,
    UW IMAP and QPopper on mbox. Defaults of the reading model are in
    ``twin.traffic.users.ReadingSettings``; the common ones are here."""

    on: str | None = None
    """The host serving the mailboxes (default: the delivering host)."""
    enabled: bool = True
    mailbox_scale: float = Field(default=0.01, gt=0, le=1)
    """Messages already in the mailboxes at the start, as a share of the
    reading model's full-size mailboxes (median 800 messages; 1.0 is ~85 GB for
    1,400 users: keep it small on a laptop)."""
    imap_share: Probability = 0.8
    idle_share: Probability = 0.2
    imap_poll_interval: PositiveDuration = 600.0  # Thunderbird: every 10 minutes
    pop3_poll_interval: PositiveDuration = 1800.0  # Outlook Express: 30 minutes
    flag_sync_messages: int = Field(default=0, ge=0)
    """IMAP clients re-read the flags of at most this many known messages per
    poll (0: all, as Thunderbird 2 did)."""
    client_rtt: Duration = 0.005
    """Round trip between a reader's client and the server (campus LAN)."""


class DirectorySpec(Strict):
    kind: Literal["passwd", "ldap"] = "ldap"
    on: str


class Pipeline(Strict):
    """The inbound path, in the order the stages run."""

    greylist: GreylistSpec | None = None
    smtp: SmtpSpec
    spf: SpfSpec | None = None
    antivirus: AntivirusSpec | None = None
    spamfilter: SpamFilterSpec | None = None
    ocr: OcrSpec | None = None
    filter_children: int = Field(default=6, ge=1)
    """amavisd-new children running the content filters on their host
    (FACTS.md: 2-3 per CPU, past ~10 no gain)."""
    deliver: DeliverSpec


WeekWeights = str | list[Annotated[float, Field(ge=0)]]
"""A built-in week profile by name, or 168 hourly weights from Monday 00:00."""


class RetryMix(Strict):
    """How legitimate MTAs retry a tempfail (assumption; FACTS.md schedules)."""

    postfix_2_4: Probability = 0.5
    postfix_pre_2_4: Probability = 0.2
    sendmail: Probability = 0.3


class InboundTraffic(Strict):
    legit: NonNegativeRate = 31_000 / WEEK  # calibration (twin.traffic.workload)
    spam: NonNegativeRate = 76_000 / WEEK  # offered, before greylisting
    legit_profile: WeekWeights = "campus-weekday"
    spam_profile: WeekWeights = "spam-flat"
    legit_mtas: int = Field(default=3000, ge=1)
    legit_retry_mix: RetryMix = Field(default_factory=RetryMix)
    spam_bots: int = Field(default=50_000, ge=1)
    spam_retry_share: Probability = 0.15
    spam_dictionary_share: Probability = 0.03
    spam_greytrap_share: Probability = 0.01
    spam_relay_share: Probability = 0.01
    spf_publish_share: Probability = 0.25
    """Share of legitimate senders' domains publishing SPF (assumption, 2007)."""
    spf_hardfail_share: Probability = 0.5
    """Of those, the share ending in -all rather than ~all (assumption)."""
    image_spam_share: Probability = 0.0
    """Share of inbound spam that is image spam: the text in GIF/PNG/JPEG
    attachments (FuzzyOCR's target; it peaked at a third of spam in early 2007,
    assumption). Drawn per message; made with Pillow."""
    legit_image_share: Probability = 0.0
    """Share of legitimate inbound mail carrying a photo or logo."""
    virus_share: Probability = 0.005
    """Share of inbound spam carrying a virus in a zip attachment (assumption:
    under 1 % of 2007 mail was viral)."""


class OutboundTraffic(Strict):
    rate: NonNegativeRate = 11_000 / WEEK
    profile: WeekWeights = "outbound-campus"
    offsite_share: Probability = 0.2
    wrong_password_share: Probability = 0.03


class Users(Strict):
    inboxes: int = Field(default=1400, ge=1, le=200_000)
    internal_networks: list[str] = Field(default_factory=lambda: ["10.20.0.0/16"])


class Traffic(Strict):
    corpus: str | None = None
    """A folder of real messages to use as content instead of the generator:
    sub-folders named *spam* and *ham* (the SpamAssassin public corpus fits).
    The workload still decides who sends what, when, to whom."""
    inbound: InboundTraffic = Field(default_factory=InboundTraffic)
    outbound: OutboundTraffic = Field(default_factory=OutboundTraffic)
    users: Users = Field(default_factory=Users)


class MailScenario(Strict):
    """The whole ``kind: mail`` scenario."""

    kind: Literal["mail"]
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    seed: int = Field(default=1, ge=0)
    duration: PositiveDuration = WEEK
    warmup: Duration = 0.0
    domain: str = Field(
        default="ece.example.edu", pattern=r"^[a-z0-9-]+(\.[a-z0-9-]+)+$"
    )
    hostname: str = "mail.ece.example.edu"
    hosts: dict[str, HostSpec] = Field(min_length=1)
    pipeline: Pipeline
    submission: SubmissionSpec = Field(default_factory=SubmissionSpec)
    queue: QueueSpec = Field(default_factory=QueueSpec)
    directory: DirectorySpec
    access: AccessSpec | None = None
    traffic: Traffic = Field(default_factory=Traffic)
    output: Output = Field(default_factory=Output)

    def submission_host(self) -> str:
        """The host taking the users' outbound mail (default: the delivering
        host)."""
        return self.submission.on or self.pipeline.deliver.on


def mail_references(model: MailScenario, locator) -> list:
    """Problems with hosts, profiles, arrays and traffic of a mail scenario."""
    from twin.hardware.profile import ProfileError, load_profile
    from twin.scenario import did_you_mean
    from twin.sim.mailsetup import traffic_settings

    problems = []
    profiles = {}
    for name, host in model.hosts.items():
        try:
            profiles[name] = load_profile(host.hardware)
        except ProfileError as exc:
            problems.append(
                locator.problem(
                    ("hosts", name, "hardware"),
                    f"{exc.message} for {host.hardware!r} "
                    f"(use a profile under hardware/, e.g. dell-pe1750)"
                    if exc.path == host.hardware
                    else str(exc),
                )
            )
    hosts = set(model.hosts)

    def placed(path: tuple, host: str | None, array: str | None = None) -> None:
        if host is None:
            return
        if host not in hosts:
            problems.append(
                locator.problem(
                    (*path, "on"), f"no host {host!r} ({did_you_mean(host, hosts)})"
                )
            )
            return
        if array is not None and host in profiles:
            arrays = profiles[host].arrays
            if array not in arrays:
                where = "queue_array" if path[-1] == "smtp" else "array"
                problems.append(
                    locator.problem(
                        (*path, where),
                        f"host {host!r} ({model.hosts[host].hardware}) "
                        f"has no array {array!r} ({did_you_mean(array, arrays)})",
                    )
                )

    pipeline = model.pipeline
    if pipeline.greylist is not None:
        placed(("pipeline", "greylist"), pipeline.greylist.on)
    placed(("pipeline", "smtp"), pipeline.smtp.on, pipeline.smtp.queue_array)
    placed(("pipeline", "deliver"), pipeline.deliver.on, pipeline.deliver.array)
    for name in ("spf", "antivirus", "spamfilter", "ocr"):
        stage = getattr(pipeline, name)
        if stage is not None:
            placed(("pipeline", name), stage.on)
    if pipeline.spf is not None and pipeline.spf.on != pipeline.smtp.on:
        problems.append(
            locator.problem(
                ("pipeline", "spf", "on"),
                f"SPF is checked by the MX's smtpd: put it on "
                f"{pipeline.smtp.on!r} (pipeline.smtp.on), not {pipeline.spf.on!r}",
            )
        )
    filters = {
        getattr(pipeline, n).on
        for n in ("antivirus", "spamfilter", "ocr")
        if getattr(pipeline, n) is not None
    }
    if len(filters) > 1:
        problems.append(
            locator.problem(
                ("pipeline",),
                f"content filters run on {', '.join(sorted(filters))} "
                "(put antivirus, spamfilter and ocr on one host, as amavisd runs them)",
            )
        )
    for name, folder in (("antivirus", "signatures"), ("spamfilter", "rules")):
        stage = getattr(pipeline, name)
        value = getattr(stage, folder, None) if stage is not None else None
        if value is not None and not Path(value).is_dir():
            problems.append(
                locator.problem(
                    ("pipeline", name, folder),
                    f"no such folder {value!r} "
                    "(give a folder of rule or signature files, or leave it out)",
                )
            )
    placed(("submission",), model.submission.on)
    placed(("directory",), model.directory.on)
    if model.access is not None:
        placed(("access",), model.access.on)
    mix = model.traffic.inbound.legit_retry_mix
    total = mix.postfix_2_4 + mix.postfix_pre_2_4 + mix.sendmail
    if abs(total - 1) > 1e-9:
        problems.append(
            locator.problem(
                ("traffic", "inbound", "legit_retry_mix"),
                f"shares sum to {total:g} (they must sum to 1)",
            )
        )
    if model.warmup >= model.duration:
        problems.append(
            locator.problem(
                ("warmup",),
                f"warm-up {model.warmup:g}s is not shorter than the "
                f"duration {model.duration:g}s (shorten it)",
            )
        )
    if model.traffic.corpus is not None:
        from twin.traffic.corpus import Corpus

        try:
            Corpus(model.traffic.corpus)
        except ValueError as exc:
            problems.append(locator.problem(("traffic", "corpus"), str(exc)))
    if not problems:
        try:
            traffic_settings(model)
        except ValueError as exc:
            problems.append(locator.problem(("traffic",), str(exc)))
    return problems
