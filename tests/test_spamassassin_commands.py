"""The library functions behind the CLI: score_files and learn."""

from __future__ import annotations

import io
import json
from pathlib import Path

from twin.stages.spamassassin.bayes import BayesDB
from twin.stages.spamassassin.commands import learn, score_files

DATA = Path(__file__).parent / "data" / "spamassassin"


def test_score_files_json_and_not_mail_error(tmp_path: Path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01 not a message")
    out, err = io.StringIO(), io.StringIO()
    code = score_files(
        [DATA / "gtube.eml", junk, DATA / "nice_001.eml"], None, None, True, out, err
    )
    assert code == 2
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [Path(r["file"]).name for r in lines] == ["gtube.eml", "nice_001.eml"]
    assert lines[0]["is_spam"] is True and lines[0]["score"] >= 1000
    assert {"name": "GTUBE", "score": 1000.0} in lines[0]["tests"]
    assert lines[1]["is_spam"] is False and lines[1]["required"] == 5.0
    errors = err.getvalue().splitlines()
    assert errors[0].startswith("note: ") and "rules skipped" in errors[0]
    assert errors[1] == (
        f"error: {junk}: not scored: spamfilter input of "
        f"{len(junk.read_bytes())} bytes: no header block "
        "(no 'Name: value' line at the start)"
    )


def test_score_files_report_text_and_exit_0():
    out, err = io.StringIO(), io.StringIO()
    assert score_files([DATA / "gtube.eml"], None, None, False, out, err) == 0
    text = out.getvalue()
    assert text.startswith(f"{DATA / 'gtube.eml'}\nContent analysis details:   (")
    assert " pts rule name              description\n" in text
    assert "\n1000 GTUBE                  " in text


def test_missing_file_is_an_error_line(tmp_path: Path):
    out, err = io.StringIO(), io.StringIO()
    code = score_files([tmp_path / "absent"], None, None, False, out, err)
    assert code == 2
    assert err.getvalue().splitlines()[-1] == (
        f"error: {tmp_path / 'absent'}: not scored: No such file or directory"
    )


def test_learn_writes_a_database(tmp_path: Path):
    spam_dir, ham_dir = tmp_path / "spam", tmp_path / "ham"
    spam_dir.mkdir()
    ham_dir.mkdir()
    (spam_dir / "1").write_bytes((DATA / "spam_001.eml").read_bytes())
    (spam_dir / "cmds").write_text("ignored corpus command file\n")
    (ham_dir / "1").write_bytes((DATA / "nice_001.eml").read_bytes())
    (ham_dir / "2").write_bytes((DATA / "nice_mime1.eml").read_bytes())
    out = io.StringIO()
    db = tmp_path / "bayes.json"
    assert learn([spam_dir], [ham_dir], db, out) == 0
    bayes = BayesDB.load(db)
    assert (bayes.nspam, bayes.nham) == (1, 2)
    assert out.getvalue().startswith("learned 1 spam and 2 ham (0 files not mail)")


OCR_SAMPLES = Path(__file__).parent / "data" / "fuzzyocr"


def test_score_reports_fuzzy_ocr_hits_under_the_plugins_names():
    """FuzzyOCR runs after the rules: its hit is a test like the others."""
    sample = OCR_SAMPLES / "ocr-multi.eml"
    runs = {}
    for ocr in (True, False):
        out, err = io.StringIO(), io.StringIO()
        assert score_files([sample], None, None, True, out, err, ocr=ocr) == 0
        runs[ocr] = json.loads(out.getvalue())
    with_ocr, without = runs[True], runs[False]
    fuzzy = [t for t in with_ocr["tests"] if t["name"].startswith("FUZZY_OCR")]
    assert [t["name"] for t in fuzzy] == ["FUZZY_OCR"]
    assert not [t for t in without["tests"] if t["name"].startswith("FUZZY_OCR")]
    assert with_ocr["score"] == round(without["score"] + fuzzy[0]["score"], 3)
    # below the threshold on its rules alone, spam with what the image says
    assert without["is_spam"] is False and with_ocr["is_spam"] is True
    out, err = io.StringIO(), io.StringIO()
    score_files([sample], None, None, False, out, err)
    row = next(line for line in out.getvalue().splitlines() if "FUZZY_OCR" in line)
    assert row.split()[1] == "FUZZY_OCR" and "words found:" in row


def test_fuzzy_ocr_stays_off_when_the_rules_already_score_above_ten():
    """FuzzyOCR's autodisable_score (10): the PNG sample's rules score more."""
    out, err = io.StringIO(), io.StringIO()
    score_files([OCR_SAMPLES / "ocr-png.eml"], None, None, True, out, err)
    record = json.loads(out.getvalue())
    assert record["score"] > 10
    assert not [t for t in record["tests"] if t["name"].startswith("FUZZY_OCR")]
