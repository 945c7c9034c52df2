"""The virus-scanning stage of the gateway: ClamAV (clamd) behind amavisd-new.

Twins clamd scanning one message for the content filter: the raw message is
matched first, then every decoded MIME part (``mime.mail_parts``) and every
member of every zip archive found (``mime.zip_members``), nested up to the
clamd limits, until the first signature matches (clamd without --allmatch).
Decides CLEAN or INFECTED (with the virus name); infected mail is not
delivered. Also twins the hourly freshclam update and clamd's reload
(``refresh``).

Counts (CPU_UNITS): a message, bytes run through the matcher, MIME parts,
bytes decoded, archives opened, archive members, bytes inflated, bytes hashed,
hash lookups, and for a refresh the database bytes reloaded, the download
(network bytes and round trips) and the database file written and read back.
Temporary files of amavisd-new are assumed to stay in the page cache (tmpfs
was the common advice), so a scan does no disk work.

Scenario keys: the fields of ``ScannerSettings``. Raises ValueError on bad
settings and on a malformed signature database.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from twin.stages.antivirus.matcher import Matcher
from twin.stages.antivirus.mime import is_zip, looks_like_mail, mail_parts, zip_members
from twin.stages.antivirus.signatures import SignatureSet, load_database
from twin.stages.work import Work

CPU_UNITS: dict[str, str] = {
    "antivirus.message": "one message handed to clamd (session, temp file, result)",
    "antivirus.byte": "one byte run through the signature matcher",
    "antivirus.part": "one MIME entity parsed (headers read, boundaries split)",
    "antivirus.decode_byte": "one encoded byte decoded (base64, QP, uuencode)",
    "antivirus.archive": "one zip archive opened (central directory read)",
    "antivirus.archive_member": "one archive member extracted",
    "antivirus.inflate_byte": "one byte produced by decompressing a member",
    "antivirus.hash_byte": "one byte run through MD5/SHA for hash signatures",
    "antivirus.hash": "one hash-signature lookup",
    "antivirus.refresh_byte": "one database byte verified, parsed and loaded",
}


class ScanDecision(Enum):
    CLEAN = "clean"
    INFECTED = "infected"


@dataclass(frozen=True, slots=True)
class ScannerSettings:
    """clamd limits and the freshclam update model.

    Limits are clamd.conf defaults of ClamAV 0.9x (2007), unconfirmed here:
    ArchiveMaxRecursion 8 -> ``max_archive_depth``, ArchiveMaxFiles 1000 ->
    ``max_archive_files``, ArchiveMaxFileSize 10 MB -> ``max_file_size_bytes``,
    MailMaxRecursion 64 -> ``max_mail_depth``; ScanArchive and ScanMail yes.
    ``refresh_interval_s`` 3600: definitions were refreshed hourly (FACTS.md).
    ``database_size_bytes`` 12 MB (assumption: main.cvd about 9 MB and
    daily.cvd about 3 MB in 2007, some 100,000 signatures) and
    ``update_download_bytes`` 1 MB (assumption: a whole daily.cvd per update,
    before incremental .cdiff updates) size the refresh, not the scan: the scan
    matches the signatures actually loaded from ``database_dir`` (None: the
    twin's small default database in twin/data/antivirus).
    """

    database_dir: str | None = None
    scan_archives: bool = True
    scan_mail: bool = True
    max_archive_depth: int = 8
    max_archive_files: int = 1000
    max_file_size_bytes: int = 10 * 1024 * 1024
    max_mail_depth: int = 64
    refresh_interval_s: float = 3600.0
    database_size_bytes: int = 12_000_000
    update_download_bytes: int = 1_000_000

    def __post_init__(self) -> None:
        bounds = {
            "max_archive_depth": (0, 64),
            "max_archive_files": (1, 1_000_000),
            "max_file_size_bytes": (1, 2**40),
            "max_mail_depth": (0, 1000),
            "database_size_bytes": (0, 2**40),
            "update_download_bytes": (0, 2**40),
        }
        for name, (low, high) in bounds.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"{name}={value} must be in {low}..{high}")
        if not self.refresh_interval_s > 0:
            raise ValueError(
                f"refresh_interval_s={self.refresh_interval_s} must be > 0 s"
            )


@dataclass(frozen=True, slots=True)
class ScanResult:
    decision: ScanDecision
    virus: str | None
    reason: str
    work: Work


class _Counts:
    __slots__ = ("cpu", "limits")

    def __init__(self) -> None:
        self.cpu = dict.fromkeys(CPU_UNITS, 0)
        self.limits: list[str] = []

    def work(self) -> Work:
        return Work(cpu={k: v for k, v in self.cpu.items() if v})


class Scanner:
    """clamd with its database loaded; verbs ``scan``, ``scan_object``, ``refresh``."""

    def __init__(
        self,
        settings: ScannerSettings | None = None,
        signatures: SignatureSet | None = None,
    ) -> None:
        self.settings = settings or ScannerSettings()
        if signatures is None:
            signatures = load_database(self.settings.database_dir)
        self.signatures = signatures
        self.matcher = Matcher(signatures)
        self.last_refresh_s: float | None = None
        self.refreshes = 0

    def scan(self, message: bytes, now: float) -> ScanResult:
        """Scan one message as received (headers and body)."""
        return self._scan(message, is_mail=True)

    def scan_object(self, data: bytes, now: float) -> ScanResult:
        """Scan a file as clamscan does: mail is recognised by its first line."""
        return self._scan(data, is_mail=looks_like_mail(data))

    def _scan(self, data: bytes, is_mail: bool) -> ScanResult:
        counts = _Counts()
        counts.cpu["antivirus.message"] = 1
        found = self._object(
            data, "message" if is_mail else "file", is_mail, 0, 0, counts
        )
        limits = f"; limits: {', '.join(counts.limits)}" if counts.limits else ""
        if found is None:
            return ScanResult(
                ScanDecision.CLEAN, None, f"no signature matched{limits}", counts.work()
            )
        virus, where = found
        return ScanResult(
            ScanDecision.INFECTED, virus, f"{virus} found in {where}", counts.work()
        )

    def _object(
        self,
        data: bytes,
        where: str,
        is_mail: bool,
        archive_depth: int,
        mail_depth: int,
        counts: _Counts,
    ) -> tuple[str, str] | None:
        settings = self.settings
        cpu = counts.cpu
        cpu["antivirus.byte"] += len(data)
        outcome = self.matcher.match(data, is_mail)
        cpu["antivirus.hash_byte"] += outcome.hashed_bytes
        cpu["antivirus.hash"] += outcome.hash_lookups
        if outcome.virus is not None:
            return outcome.virus, where
        if settings.scan_archives and is_zip(data):
            if archive_depth >= settings.max_archive_depth:
                counts.limits.append(
                    f"{where}: archive depth {settings.max_archive_depth}"
                )
                return None
            cpu["antivirus.archive"] += 1
            unpacked = zip_members(
                data, settings.max_archive_files, settings.max_file_size_bytes
            )
            cpu["antivirus.archive_member"] += len(unpacked.members)
            cpu["antivirus.inflate_byte"] += unpacked.inflated_bytes
            counts.limits.extend(f"{where}: {s}" for s in unpacked.skipped)
            for name, content in unpacked.members:
                found = self._object(
                    content,
                    f"{where}/{name}",
                    looks_like_mail(content),
                    archive_depth + 1,
                    mail_depth,
                    counts,
                )
                if found is not None:
                    return found
            return None
        if settings.scan_mail and is_mail:
            if mail_depth >= settings.max_mail_depth:
                counts.limits.append(f"{where}: mail depth {settings.max_mail_depth}")
                return None
            parsed = mail_parts(data, settings.max_mail_depth - mail_depth)
            cpu["antivirus.part"] += parsed.entities
            cpu["antivirus.decode_byte"] += parsed.decoded_bytes
            if parsed.depth_exceeded:
                counts.limits.append(f"{where}: mail depth {settings.max_mail_depth}")
            for part in parsed.parts:
                nested_mail = looks_like_mail(part.data)
                found = self._object(
                    part.data,
                    f"{where} part {part.name}",
                    nested_mail,
                    archive_depth,
                    mail_depth + 1 + part.depth,
                    counts,
                )
                if found is not None:
                    return found
        return None

    def refresh(self, now: float) -> Work:
        """The hourly freshclam update and clamd reload, when one is due at ``now``.

        Downloads ``update_download_bytes`` (a DNS TXT version check and an HTTP
        GET: two round trips), writes the new database file (created, renamed
        into place, fsynced) and has clamd read and reload the whole
        ``database_size_bytes``. Before the interval has passed since the last
        refresh it does nothing.
        """
        settings = self.settings
        if (
            self.last_refresh_s is not None
            and now < self.last_refresh_s + settings.refresh_interval_s
        ):
            return Work()
        self.last_refresh_s = now
        self.refreshes += 1
        size = settings.database_size_bytes
        return Work(
            cpu={"antivirus.refresh_byte": size} if size else {},
            writes=(("clamav/daily.cvd", size),),
            reads=(("clamav/daily.cvd", size),),
            fsyncs=1,
            files_created=1,
            files_renamed=1,
            net_bytes=settings.update_download_bytes,
            net_round_trips=2,
        )
