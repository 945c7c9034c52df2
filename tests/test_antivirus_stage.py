"""The antivirus stage: decisions, exact work, limits, refresh, ClamAV test files."""

import base64
import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from twin.stages.antivirus.signatures import load_database, parse_hash_db
from twin.stages.antivirus.stage import (
    CPU_UNITS,
    ScanDecision,
    Scanner,
    ScannerSettings,
)
from twin.stages.work import Work

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
HEAD = b"From: a@example.com\r\nTo: b@example.edu\r\nSubject: test\r\n"
TESTFILES = Path("/work/shared/data/clamav-testfiles")
DECODED = TESTFILES / "decoded"


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _attachment_mail(payload: bytes, name: str = "eicar.zip") -> bytes:
    encoded = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    return (HEAD + b"MIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
            b"--b1\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n"
            b"--b1\r\nContent-Type: application/zip; name=" + name.encode() +
            b"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + encoded +
            b"--b1--\r\n"), encoded


def test_clean_mail_work_counts():
    message = HEAD + b"\r\nhello, nothing to see\r\n"
    result = Scanner().scan(message, now=0.0)
    assert result.decision is ScanDecision.CLEAN and result.virus is None
    assert result.reason == "no signature matched"
    assert result.work == Work(cpu={"antivirus.message": 1,
                                    "antivirus.byte": len(message) + 23,
                                    "antivirus.part": 1})


def test_eicar_in_the_body_is_infected_with_exact_work():
    message = HEAD + b"\r\n" + EICAR + b"\r\n"
    result = Scanner().scan(message, now=0.0)
    assert result.decision is ScanDecision.INFECTED
    assert result.virus == "Eicar-Test-Signature"
    assert result.reason == "Eicar-Test-Signature found in message part /"
    # the raw message (EICAR not at offset 0), then the 70-byte body (no hash of
    # that size in the database; the .ndb pattern at offset 0 matches)
    assert result.work == Work(cpu={"antivirus.message": 1,
                                    "antivirus.byte": len(message) + 70,
                                    "antivirus.part": 1})


def test_eicar_in_a_zipped_attachment_is_found_by_hash():
    archive = _zip({"readme.txt": b"hello", "eicar.com": EICAR})
    message, encoded = _attachment_mail(archive)
    result = Scanner().scan(message, now=0.0)
    assert result.virus == "Eicar-Test-Signature"
    assert result.reason == ("Eicar-Test-Signature found in message part "
                             "eicar.zip/eicar.com")
    assert result.work == Work(cpu={
        "antivirus.message": 1,
        "antivirus.byte": len(message) + len(b"see attachment\r\n") + len(archive)
        + 5 + 68,
        "antivirus.part": 3,
        "antivirus.decode_byte": len(encoded),
        "antivirus.archive": 1,
        "antivirus.archive_member": 2,
        "antivirus.inflate_byte": 73,
        "antivirus.hash_byte": 68,
        "antivirus.hash": 1,
    })
    assert set(result.work.cpu) <= set(CPU_UNITS)


def test_settings_change_the_decision():
    archive = _zip({"eicar.com": EICAR})
    message, _ = _attachment_mail(archive)
    no_archives = Scanner(ScannerSettings(scan_archives=False)).scan(message, 0.0)
    assert no_archives.decision is ScanDecision.CLEAN
    no_mail = Scanner(ScannerSettings(scan_mail=False)).scan(message, 0.0)
    assert no_mail.decision is ScanDecision.CLEAN
    assert no_mail.work == Work(cpu={"antivirus.message": 1,
                                     "antivirus.byte": len(message)})
    small = Scanner(ScannerSettings(max_file_size_bytes=67)).scan(message, 0.0)
    assert small.decision is ScanDecision.CLEAN
    assert small.reason == ("no signature matched; limits: message part eicar.zip: "
                            "eicar.com: 68 bytes over 67")


def test_nested_zips_stop_at_the_archive_depth():
    nested = EICAR
    for level in range(3):
        nested = _zip({f"level{level}.bin": nested})
    message, _ = _attachment_mail(nested)
    assert Scanner(ScannerSettings(max_archive_depth=3)).scan(message, 0.0).virus \
        == "Eicar-Test-Signature"
    shallow = Scanner(ScannerSettings(max_archive_depth=2)).scan(message, 0.0)
    assert shallow.decision is ScanDecision.CLEAN
    assert "archive depth 2" in shallow.reason
    assert shallow.work.cpu["antivirus.archive"] == 2


def test_first_signature_wins_and_scanning_stops():
    signatures = load_database()
    scanner = Scanner(signatures=signatures)
    message = HEAD + b"\r\nMAILTWIN-TEST-VIRUS!!\r\n"
    result = scanner.scan(message, 0.0)
    assert result.virus == "Twin.Test.Marker"
    assert result.reason == "Twin.Test.Marker found in message"
    assert result.work == Work(cpu={"antivirus.message": 1,
                                    "antivirus.byte": len(message)})


def test_refresh_costs_scale_with_database_size_and_happen_hourly():
    scanner = Scanner(ScannerSettings(database_size_bytes=5_000_000,
                                      update_download_bytes=200_000))
    work = scanner.refresh(now=0.0)
    assert work == Work(cpu={"antivirus.refresh_byte": 5_000_000},
                        writes=(("clamav/daily.cvd", 5_000_000),),
                        reads=(("clamav/daily.cvd", 5_000_000),),
                        fsyncs=1, files_created=1, files_renamed=1,
                        net_bytes=200_000, net_round_trips=2)
    assert scanner.refresh(now=3599.0) == Work()
    assert scanner.refresh(now=3600.0).cpu["antivirus.refresh_byte"] == 5_000_000
    assert scanner.refreshes == 2
    bigger = Scanner(ScannerSettings(database_size_bytes=20_000_000))
    assert bigger.refresh(now=0.0).bytes_written == 20_000_000


@pytest.mark.parametrize("field, value", [
    ("max_archive_depth", -1), ("max_archive_files", 0), ("max_mail_depth", 1001),
    ("database_size_bytes", -5), ("refresh_interval_s", 0.0),
])
def test_bad_settings_raise(field, value):
    with pytest.raises(ValueError, match=field):
        ScannerSettings(**{field: value})


def _clamav_scanner() -> Scanner:
    if not TESTFILES.is_dir():
        pytest.skip("/work/shared/data/clamav-testfiles is absent (GPL data, not "
                    "copied into the tree)")
    return Scanner(signatures=parse_hash_db((TESTFILES / "clamav.hdb").read_text()))


def test_clam_exe_is_found_by_its_sha256():
    scanner = _clamav_scanner()
    data = (DECODED / "clam.exe").read_bytes()
    assert hashlib.sha256(data).hexdigest().startswith("71e7b604")
    result = scanner.scan_object(data, 0.0)
    assert result.virus == "ClamAV-Test-File"
    assert result.work == Work(cpu={"antivirus.message": 1, "antivirus.byte": 544,
                                    "antivirus.hash_byte": 544, "antivirus.hash": 1})


@pytest.mark.parametrize("name", [
    "clam.zip", "clam.bz2.zip", "clam.split.oneseg.zip", "clam.mail",
    "clam.exe.mbox.base64", "clam.exe.mbox.uu",
    "clam.mail-boundary-content-disposition.eml",
    "clam.mail-comment-header-name.eml",
    "clam.mail-disposition-rfc2231-boundary.eml",
    "clam.mail-multiple-boundaries.eml",
    "clam.mail-multiple-content-type.eml",
    "clam.mail-nested-comment-header-name.eml",
    "clam.mail-semicolon-boundary.eml",
])
def test_clam_exe_is_found_inside_its_wrappers(name):
    scanner = _clamav_scanner()
    result = scanner.scan_object((DECODED / name).read_bytes(), 0.0)
    assert result.decision is ScanDecision.INFECTED, result.reason
    assert result.virus == "ClamAV-Test-File"


def test_clam_mail_as_a_received_message_exact_work():
    scanner = _clamav_scanner()
    result = scanner.scan((DECODED / "clam.mail").read_bytes(), 0.0)
    assert result.reason == "ClamAV-Test-File found in message part clam.exe"
    # 1,337 raw bytes, the 50-byte text part, the 544-byte clam.exe
    assert result.work == Work(cpu={
        "antivirus.message": 1, "antivirus.byte": 1337 + 50 + 544,
        "antivirus.part": 3, "antivirus.decode_byte": 739,
        "antivirus.hash_byte": 544, "antivirus.hash": 1})


def test_unsupported_zip_methods_are_reported_not_crashed():
    scanner = _clamav_scanner()
    result = scanner.scan_object((DECODED / "clam.impl.zip").read_bytes(), 0.0)
    assert result.decision is ScanDecision.CLEAN
    assert result.reason == ("no signature matched; limits: file: CLAM.EXE: That "
                             "compression method is not supported")
