"""Build the real stages of a mail scenario, and the files they keep in a run folder.

From a validated ``MailScenario`` this module makes the typed settings of every
stage (the stages never see the scenario), the user population, the user
directory files, and the stage objects themselves. A run folder gets:

    credentials.csv          user,password of every simulated user
    directory/passwd+shadow  (kind: passwd) or directory/users.ldif (kind: ldap)
    store/                   the mailboxes (maildir or mbox), store/.format
    queue/<host>/            the Postfix queue of each host that queues mail
    greylist/spamdb.txt      the greylister's state at the end (spamdb format)

so ``twin serve imap|pop3 RUN_DIR`` can serve the mailboxes after a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from twin.schema.mail import MailScenario
from twin.sim.streams import Streams
from twin.stages.directory import open_directory, write_credentials_csv, write_users
from twin.stages.fileops import DIRECT, Files
from twin.stages.greylist import Greylist, GreylistSettings
from twin.stages.maildir import MaildirSettings, MaildirStore
from twin.stages.mbox import MboxSettings, MboxStore
from twin.stages.queue import QueueManager, QueueSettings
from twin.stages.smtp import SmtpServer, SmtpSettings
from twin.traffic.message import SIM_EPOCH_UNIX
from twin.traffic.population import Population, PopulationSettings
from twin.traffic.workload import TrafficSettings

EPOCH_S = SIM_EPOCH_UNIX
"""Simulated time 0 as a Unix time (Monday 2007-02-05 00:00 EST): dates in
messages, Received headers and maildir names all count from it."""
DIALOGUE_COMMANDS = 5
"""Round trips of a minimal SMTP dialogue besides RCPT: greeting, EHLO, MAIL,
DATA, end of data (QUIT is not waited for)."""


def traffic_settings(model: MailScenario) -> TrafficSettings:
    """The workload settings of *model* (ValueError names a bad one)."""
    inbound = model.traffic.inbound
    outbound = model.traffic.outbound
    week = 7 * 86400.0
    mix = inbound.legit_retry_mix
    return TrafficSettings.from_weekly(
        legit_per_week=inbound.legit * week,
        spam_per_week=inbound.spam * week,
        outbound_per_week=outbound.rate * week,
        legit_profile=_profile(inbound.legit_profile),
        spam_profile=_profile(inbound.spam_profile),
        outbound_profile=_profile(outbound.profile),
        legit_mta_count=inbound.legit_mtas,
        legit_retry_mix=(mix.postfix_2_4, mix.postfix_pre_2_4, mix.sendmail),
        spam_bot_count=inbound.spam_bots,
        spam_retry_share=inbound.spam_retry_share,
        spam_dictionary_share=inbound.spam_dictionary_share,
        spam_greytrap_share=inbound.spam_greytrap_share,
        spam_relay_share=inbound.spam_relay_share,
        outbound_offsite_share=outbound.offsite_share,
        outbound_wrong_password_share=outbound.wrong_password_share,
        max_size_bytes=int(model.pipeline.smtp.message_size_limit),
    )


def _profile(value: str | list[float]) -> str | tuple[float, ...]:
    return value if isinstance(value, str) else tuple(value)


def population_settings(model: MailScenario) -> PopulationSettings:
    users = model.traffic.users
    return PopulationSettings(
        users=users.inboxes,
        local_domain=model.domain,
        internal_networks=tuple(users.internal_networks),
    )


def greylist_settings(model: MailScenario, population: Population) -> GreylistSettings:
    spec = model.pipeline.greylist
    assert spec is not None
    return GreylistSettings(
        flavour=spec.flavour,
        passtime_s=spec.passtime,
        greyexp_s=spec.greyexp,
        whiteexp_s=spec.whiteexp,
        trapexp_s=spec.trapexp,
        use_helo=spec.use_helo,
        stutter_s=spec.stutter,
        greytraps=tuple(population.greytraps) if spec.greytraps else (),
        whitelist=tuple(spec.whitelist),
        delay_s=spec.delay,
        max_age_s=spec.max_age,
        retry_window_s=spec.retry_window,
        auto_whitelist_clients=spec.auto_whitelist_clients,
        net_prefix=spec.net_prefix,
    )


def smtp_settings(model: MailScenario, *, submission: bool) -> SmtpSettings:
    mx = model.pipeline.smtp
    spec = model.submission if submission else mx
    return SmtpSettings(
        myhostname=model.hostname,
        local_domains=(model.domain, model.hostname, "localhost"),
        mynetworks=("127.0.0.0/8", *model.traffic.users.internal_networks),
        process_limit=spec.processes,
        sasl_enabled=spec.sasl,
        tls_enabled=spec.tls,
        smtps_enabled=getattr(spec, "smtps", False),
        message_size_limit_bytes=int(mx.message_size_limit),
        epoch_offset_s=EPOCH_S,
    )


def queue_settings(model: MailScenario, host: str) -> QueueSettings:
    queue = model.queue
    return QueueSettings.preset(
        queue.postfix,
        maximal_queue_lifetime_s=queue.maximal_queue_lifetime,
        hostname=f"{host}.{model.domain}",
        epoch_offset_s=EPOCH_S,
        host_fsync=model.pipeline.deliver.host_fsync,
    )


def content_filters(model: MailScenario):
    """The scanner, spam filter and FuzzyOCR of *model*'s pipeline (or None)."""
    pipeline = model.pipeline
    scanner = spamfilter = ocr = None
    av = pipeline.antivirus
    if av is not None and av.enabled:
        from twin.stages.antivirus.signatures import load_database
        from twin.stages.antivirus.stage import Scanner, ScannerSettings

        settings = ScannerSettings(
            database_dir=av.signatures,
            refresh_interval_s=av.refresh_interval,
            database_size_bytes=int(av.database_size),
        )
        scanner = Scanner(settings, load_database(av.signatures))
    spec = pipeline.ocr
    if spec is not None and spec.enabled:
        from twin.stages.ocr.stage import FuzzyOcr, OcrSettings

        ocr = FuzzyOcr(
            OcrSettings(
                use_hash_db=spec.hash_db,
                max_images=spec.max_images,
                timeout_s=spec.timeout,
                autodisable_score=spec.autodisable_score,
            )
        )
    sa = pipeline.spamfilter
    if sa is not None and sa.enabled:
        from twin.cache import cache_dir
        from twin.stages.spamassassin.awl import AutoWhitelist
        from twin.stages.spamassassin.bayes import BayesDB
        from twin.stages.spamassassin.commands import load_rules
        from twin.stages.spamassassin.stage import SpamFilter, SpamFilterSettings

        settings = SpamFilterSettings(
            required_score=sa.required_score,
            subject_tag=sa.subject_tag,
            use_bayes=sa.bayes,
            use_awl=sa.awl,
            autolearn=sa.autolearn,
            max_message_bytes=int(sa.max_message_size),
        )
        rules = load_rules(Path(sa.rules) if sa.rules else None, cache_dir())
        spamfilter = SpamFilter(
            settings,
            rules,
            BayesDB() if sa.bayes else None,
            AutoWhitelist() if sa.awl else None,
            # FuzzyOCR is a SpamAssassin plugin: its hits join the report and
            # the X-Spam-Status of the message; the gateway charges its work
            # to the ocr stage
            plugins=(("ocr", ocr),) if ocr is not None else (),
        )
    return scanner, spamfilter, ocr


def spf_checker(model: MailScenario, population: Population, seed: int):
    """SPF over a modelled DNS of the senders' zones, or None."""
    spec = model.pipeline.spf
    if spec is None or not spec.enabled:
        return None
    from twin.stages.dns import Dns
    from twin.stages.spf import SpfChecker, SpfSettings
    from twin.traffic.dnszones import sender_zones

    inbound = model.traffic.inbound
    # a fresh set of streams: the zones rebuild the workload's MTA pool
    zones = sender_zones(
        traffic_settings(model),
        population,
        Streams(seed),
        inbound.spf_publish_share,
        inbound.spf_hardfail_share,
    )
    return SpfChecker(Dns(zones), SpfSettings(receiver=model.hostname))


@dataclass
class MailStages:
    """The real stage objects of one run."""

    population: Population
    greylist: Greylist | None
    mx: SmtpServer
    submission: SmtpServer
    queues: dict[str, QueueManager]
    store: MaildirStore | MboxStore
    store_root: Path
    scanner: object = None
    spamfilter: object = None
    ocr: object = None
    spf: object = None


def build_stages(
    model: MailScenario, streams: Streams, folder: Path, files: Files = DIRECT
) -> MailStages:
    """Make the population, the directory files and every stage for a run.

    *files* does the queue and maildir file operations (``twin.stages.fileops``;
    the simulator passes a ``twin.sim.writer.FileWriter``).
    """
    population = Population(population_settings(model), streams("population"))
    users = list(zip(population.usernames, population.passwords, strict=True))
    write_credentials_csv(folder / "credentials.csv", users)
    greylist = None
    if model.pipeline.greylist is not None and model.pipeline.greylist.enabled:
        greylist = Greylist(greylist_settings(model, population))
    mx, submission = smtp_servers(model, population, folder)
    queue_hosts = {
        model.pipeline.smtp.on,
        model.pipeline.deliver.on,
        submission_host(model),
    }
    queues = {
        host: QueueManager(folder / "queue" / host, queue_settings(model, host), files)
        for host in sorted(queue_hosts)
    }
    store_root = folder / "store"
    store_root.mkdir()
    deliver = model.pipeline.deliver
    (store_root / ".format").write_text(deliver.format + "\n")
    if deliver.format == "maildir":
        store = MaildirStore(
            store_root,
            MaildirSettings(
                hostname=f"{deliver.on}.{model.domain}",
                epoch_offset_s=EPOCH_S,
                host_fsync=deliver.host_fsync,
            ),
            files,
        )
    else:
        store = MboxStore(
            store_root,
            MboxSettings(epoch_offset_s=EPOCH_S, host_fsync=deliver.host_fsync),
        )
    scanner, spamfilter, ocr = content_filters(model)
    return MailStages(
        population,
        greylist,
        mx,
        submission,
        queues,
        store,
        store_root,
        scanner,
        spamfilter,
        ocr,
        spf_checker(model, population, streams.seed),
    )


def smtp_servers(model: MailScenario, population: Population,
                 folder: Path) -> tuple[SmtpServer, SmtpServer]:
    """The MX's smtpd and the submission service of *model*, over the user
    directory they share, written into ``folder/directory`` (a passwd file
    and its shadow, or LDIF: the same bytes for the same population)."""
    users = list(zip(population.usernames, population.passwords, strict=True))
    (folder / "directory").mkdir()
    kind = model.directory.kind
    path = folder / "directory" / ("passwd" if kind == "passwd" else "users.ldif")
    write_users(path, users, kind)
    directory = open_directory(path, kind)
    mx = SmtpServer(smtp_settings(model, submission=False), directory)
    submission = SmtpServer(smtp_settings(model, submission=True), directory)
    return mx, submission


def play_dialogue(server: SmtpServer, spec, message: bytes, now: float, *,
                  tls: bool = False, as_is: bool = False, queue_prefix: str = "M",
                  crs: int | None = None):
    """*server*'s side of the SMTP dialogue of the workload's message *spec*
    (a ``MessageSpec``: its client, HELO, envelope and credentials) carrying
    *message*, at *now* (``SmtpServer.transact``, *as_is* and *crs* as it
    takes them). The queue id is *queue_prefix* and the message's number:
    the model's and the front's plays of one message must name the same
    queue file."""
    return server.transact(
        spec.client_ip,
        spec.helo,
        spec.sender,
        spec.recipients,
        message,
        auth=spec.auth,
        tls=tls,
        now=now,
        queue_id=f"{queue_prefix}{spec.msg_id:08X}",
        as_is=as_is,
        crs=crs,
    )


def submission_host(model: MailScenario) -> str:
    """The host taking the users' outbound mail (default: the delivering host)."""
    return model.submission_host()
