"""scan_files: clamscan-like output and exit codes."""

import io
from pathlib import Path

import pytest

from twin.stages.antivirus.commands import scan_files

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
TESTFILES = Path("/work/shared/data/clamav-testfiles")


def _run(paths, db_dir=None):
    out, err = io.StringIO(), io.StringIO()
    code = scan_files(paths, db_dir, out, err)
    return code, out.getvalue(), err.getvalue()


def test_found_and_ok_lines_summary_and_exit_1(tmp_path):
    (tmp_path / "eicar.com").write_bytes(EICAR)
    (tmp_path / "clean.txt").write_bytes(b"hello\n")
    code, out, err = _run([tmp_path / "clean.txt", tmp_path / "eicar.com"])
    assert code == 1 and err == ""
    assert out == (f"{tmp_path}/clean.txt: OK\n"
                   f"{tmp_path}/eicar.com: Eicar-Test-Signature FOUND\n"
                   "\n----------- SCAN SUMMARY -----------\n"
                   "Known viruses: 6\n"
                   "Scanned directories: 0\n"
                   "Scanned files: 2\n"
                   "Infected files: 1\n"
                   "Data scanned: 0.00 MB\n")


def test_clean_files_exit_0_and_directories_are_walked(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "b.txt").write_bytes(b"b")
    (tmp_path / "a.txt").write_bytes(b"a")
    code, out, _ = _run([tmp_path])
    assert code == 0
    assert out.splitlines()[:2] == [f"{tmp_path}/a.txt: OK", f"{sub}/b.txt: OK"]
    assert "Scanned directories: 2\nScanned files: 2\nInfected files: 0\n" in out


def test_missing_file_is_an_error_exit_2_unless_something_was_found(tmp_path):
    (tmp_path / "eicar.com").write_bytes(EICAR)
    code, out, err = _run([tmp_path / "missing"])
    assert code == 2
    assert err == f"{tmp_path}/missing: no such file or directory\n"
    assert "Total errors: 1\n" in out
    code, _, _ = _run([tmp_path / "missing", tmp_path / "eicar.com"])
    assert code == 1


def test_bad_database_exits_2(tmp_path):
    code, out, err = _run([tmp_path], db_dir=str(tmp_path / "nodb"))
    assert code == 2 and out == ""
    assert err.startswith("error: cannot load the signature database:")


def test_clamav_test_files_with_the_upstream_database():
    if not TESTFILES.is_dir():
        pytest.skip("/work/shared/data/clamav-testfiles is absent (GPL data)")
    decoded = TESTFILES / "decoded"
    names = ["clam.exe", "clam.zip", "clam.mail", "clam.exe.mbox.uu", "clam.cab"]
    code, out, _ = _run([decoded / n for n in names], db_dir=str(TESTFILES))
    assert code == 1
    assert out.splitlines()[:5] == [
        f"{decoded}/clam.exe: ClamAV-Test-File FOUND",
        f"{decoded}/clam.zip: ClamAV-Test-File FOUND",
        f"{decoded}/clam.mail: ClamAV-Test-File FOUND",
        f"{decoded}/clam.exe.mbox.uu: ClamAV-Test-File FOUND",
        f"{decoded}/clam.cab: OK",  # cabinet archives are not unpacked by the twin
    ]
    assert "Known viruses: 1\n" in out and "Infected files: 4\n" in out
