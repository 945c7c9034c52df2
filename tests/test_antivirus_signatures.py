"""Signature files and the matcher: .hdb/.hsb/.ndb parsing, hex patterns, offsets."""

import hashlib
import re
from pathlib import Path

import pytest

from twin.stages.antivirus.matcher import (
    TARGET_ASCII,
    TARGET_HTML,
    TARGET_MAIL,
    TARGET_PE,
    Matcher,
    compile_hex,
    detect_types,
)
from twin.stages.antivirus.signatures import (
    SignatureSet,
    load_database,
    parse_body_db,
    parse_hash_db,
)

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
TESTFILES = Path("/work/shared/data/clamav-testfiles")


def _regex(hexsig: str) -> re.Pattern[bytes]:
    return re.compile(compile_hex(hexsig)[0], re.S)


def test_hash_db_takes_the_algorithm_from_the_digest_length():
    text = (f"{hashlib.md5(b'abc').hexdigest()}:3:Md5.Sig\n"
            f"{hashlib.sha1(b'abc').hexdigest()}:3:Sha1.Sig\n"
            f"{hashlib.sha256(b'abc').hexdigest().upper()}:*:Sha256.Sig\n"
            "# a comment\n\n")
    sigs = parse_hash_db(text, "x.hdb")
    assert [(h.name, h.algorithm, h.size) for h in sigs.hashes] == [
        ("Md5.Sig", "md5", 3), ("Sha1.Sig", "sha1", 3), ("Sha256.Sig", "sha256", None)]
    assert sigs.hashes[2].digest == hashlib.sha256(b"abc").hexdigest()
    assert sigs.count == 3


@pytest.mark.parametrize("line, message", [
    ("abcd:3:Short", "32, 40 or 64 hex digits"),
    (f"{'z' * 32}:3:NotHex", "32, 40 or 64 hex digits"),
    (f"{'a' * 32}:three:BadSize", "size 'three'"),
    (f"{'a' * 32}:3", "HASH:size:Name"),
])
def test_hash_db_rejects_malformed_lines_naming_file_and_line(line, message):
    with pytest.raises(ValueError, match=rf"x\.hdb:2: .*{re.escape(message)}"):
        parse_hash_db("# first\n" + line, "x.hdb")


def test_real_clamav_hdb_holds_a_sha256_signature():
    if not TESTFILES.is_dir():
        pytest.skip("/work/shared/data/clamav-testfiles is absent (GPL data)")
    sigs = parse_hash_db((TESTFILES / "clamav.hdb").read_text(), "clamav.hdb")
    assert [(h.algorithm, h.size, h.name) for h in sigs.hashes] == [
        ("sha256", 544, "ClamAV-Test-File")]


def test_body_db_offsets_and_skipped_pe_offsets():
    text = ("A:0:*:41424344\nB:1:10:41424344\nC:0:10,5:41424344\n"
            "D:0:EOF-4:41424344\nE:0:EOF-8,2:41424344\nF:1:EP+0:41424344\n")
    sigs = parse_body_db(text, "x.ndb")
    assert [(b.name, b.target, b.anchor, b.offset, b.max_shift) for b in sigs.bodies] \
        == [("A", 0, "any", 0, 0), ("B", 1, "start", 10, 0), ("C", 0, "start", 10, 5),
            ("D", 0, "eof", 4, 0), ("E", 0, "eof", 8, 2)]
    assert sigs.skipped == ("x.ndb:6: offset 'EP+0' of F is not supported",)


def test_body_db_rejects_bad_lines():
    with pytest.raises(ValueError, match=r"x\.ndb:1: .*Name:TargetType"):
        parse_body_db("A:0:*", "x.ndb")
    with pytest.raises(ValueError, match=r"x\.ndb:1: target type '99'"):
        parse_body_db("A:99:*:4142", "x.ndb")


@pytest.mark.parametrize("hexsig, hits, misses", [
    ("41424344", [b"xxABCDyy"], [b"ABCxD"]),
    ("41??43", [b"AzC", b"A\nC"], [b"AC", b"AzzC"]),
    ("414?", [b"AA", b"AO"], [b"AP", b"A1"]),
    ("41?2", [b"A\x02", b"A\xf2"], [b"A\x03"]),
    ("41*42", [b"AB", b"A....B"], [b"BA"]),
    ("41{2}42", [b"A..B"], [b"A.B", b"A...B"]),
    ("41{2-}42", [b"A..B", b"A.....B"], [b"A.B"]),
    ("41{-2}42", [b"AB", b"A..B"], [b"A...B"]),
    ("41{1-3}42", [b"A.B", b"A...B"], [b"AB", b"A....B"]),
    ("41[1-2]42", [b"A.B", b"A..B"], [b"AB", b"A...B"]),
    ("41(42|4344)45", [b"ABE", b"ACDE"], [b"ACE", b"AE"]),
    ("41!(42|43)45", [b"AXE"], [b"ABE", b"ACE"]),
    ("(B)41424344(B)", [b"ABCD", b"x ABCD."], [b"xABCD", b"ABCDx"]),
])
def test_hex_pattern_syntax(hexsig, hits, misses):
    regex = _regex(hexsig)
    for data in hits:
        assert regex.search(data), (hexsig, data)
    for data in misses:
        assert not regex.search(data), (hexsig, data)


def test_anchor_is_the_longest_literal_run():
    assert compile_hex("4142??434445*46")[1] == b"CDE"
    assert compile_hex("41(42|43)44")[1] == b"A"


@pytest.mark.parametrize("hexsig", ["414", "41zz", "41{3-1}42", "41(42)43",
                                    "41(42|*)43", "41{x}42", ""])
def test_malformed_hex_patterns_raise(hexsig):
    with pytest.raises(ValueError, match="signature S"):
        compile_hex(hexsig, "S")


def _matcher(ndb: str = "", hdb: str = "") -> Matcher:
    return Matcher(parse_body_db(ndb, "t.ndb") + parse_hash_db(hdb, "t.hdb"))


def test_offsets_are_honoured():
    m = _matcher("Start:0:2:4142\nShift:0:10,3:4344\nEof:0:EOF-3:454647\n"
                 "EofShift:0:EOF-6,1:5859\n")
    assert m.match(b"..AB").virus == "Start"
    assert m.match(b"...AB").virus is None
    assert m.match(b"0123456789.." + b"CD").virus == "Shift"
    assert m.match(b"0123456789..." + b"CD").virus == "Shift"
    assert m.match(b"0123456789...." + b"CD").virus is None
    assert m.match(b"........EFG").virus == "Eof"
    assert m.match(b"........EFG.").virus is None
    assert m.match(b".XY.....").virus is None  # EOF-6 of 8 bytes is offset 2
    assert m.match(b"..XY....").virus == "EofShift"
    assert m.match(b"...XY...").virus == "EofShift"
    assert m.match(b"....XY..").virus is None
    assert m.match(b"EFG").virus == "Eof"
    assert m.match(b"FG").virus is None


def test_hash_before_body_and_hashing_only_for_listed_sizes():
    md5 = hashlib.md5(EICAR).hexdigest()
    m = _matcher("Body.Eicar:0:*:" + EICAR[:20].hex(), f"{md5}:68:Hash.Eicar")
    outcome = m.match(EICAR)
    assert (outcome.virus, outcome.hashed_bytes, outcome.hash_lookups) == \
        ("Hash.Eicar", 68, 1)
    outcome = m.match(EICAR + b"\r\n")  # 70 bytes: no hash signature of that size
    assert (outcome.virus, outcome.hashed_bytes, outcome.hash_lookups) == \
        ("Body.Eicar", 0, 0)


def test_sizeless_sha256_hash_matches_any_size():
    digest = hashlib.sha256(b"payload").hexdigest()
    m = Matcher(parse_hash_db(f"{digest}:*:Sizeless", "t.hsb"))
    assert m.match(b"payload").virus == "Sizeless"
    assert m.match(b"payload!").virus is None


def test_target_types_restrict_body_signatures():
    m = _matcher("Pe.Only:1:*:4142434445\nMail.Only:4:*:5a5a5a5a\n")
    assert m.match(b"xxABCDE").virus is None
    assert m.match(b"MZ..ABCDE").virus == "Pe.Only"
    assert m.match(b"From: x\n\nZZZZ").virus is None
    assert m.match(b"From: x\n\nZZZZ", is_mail=True).virus == "Mail.Only"
    assert detect_types(b"MZ\x90\x00", False) >= {TARGET_PE}
    assert detect_types(b"<html><body>hi", True) >= {TARGET_ASCII, TARGET_HTML,
                                                     TARGET_MAIL}


def test_default_database_holds_eicar_and_the_test_signatures():
    sigs = load_database()
    names = [b.name for b in sigs.bodies] + [h.name for h in sigs.hashes]
    assert names == ["Eicar-Test-Signature", "Twin.Test.Marker", "Twin.Test.Nibbles",
                     "Twin.Test.Trailer", "Twin.Test.ClamExe", "Eicar-Test-Signature"]
    m = Matcher(sigs)
    assert m.match(EICAR).virus == "Eicar-Test-Signature"
    assert m.match(EICAR + b"\n").virus == "Eicar-Test-Signature"
    assert m.match(b"x" + EICAR).virus is None  # EICAR belongs at offset 0
    assert m.match(b"...MAILTWIN-TEST12_VIRUS7!").virus == "Twin.Test.Marker"
    assert m.match(b"...MAILTWIN-TEST123456789_VIRUS7!").virus is None
    assert m.match(b"TWKNNIBq and then -END").virus == "Twin.Test.Nibbles"
    assert m.match(b"TWKNNIBr and then -END").virus is None
    assert m.match(b"body\nTWIN-TRAILER\n").virus == "Twin.Test.Trailer"
    assert m.match(b"body\nTWIN-TRAILER\n\n").virus is None


def test_load_database_reads_hdb_hsb_ndb_and_ignores_other_files(tmp_path):
    (tmp_path / "a.hdb").write_text(f"{hashlib.md5(b'a').hexdigest()}:1:A\n")
    (tmp_path / "b.hsb").write_text(f"{hashlib.sha256(b'b').hexdigest()}:1:B\n")
    (tmp_path / "c.ndb").write_text("C:0:*:636363\n")
    (tmp_path / "notes.txt").write_text("not a database")
    sigs = load_database(tmp_path)
    assert sigs.count == 3
    assert isinstance(sigs, SignatureSet)
    m = Matcher(sigs)
    assert [m.match(x).virus for x in (b"a", b"b", b"xccc", b"z")] == \
        ["A", "B", "C", None]
    with pytest.raises(ValueError, match="is not a directory"):
        load_database(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no"):
        load_database(empty)
