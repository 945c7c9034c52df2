"""Tests of the user directory twin (twin.stages.directory): passwd and LDAP."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from twin.stages.directory import (
    CPU_UNITS,
    PBKDF2_ROUNDS,
    SYSTEM_ACCOUNTS,
    LdapDirectory,
    PasswdDirectory,
    open_directory,
    read_credentials_csv,
    shadow_path_for,
    ssha_hash,
    write_credentials_csv,
    write_users,
)
from twin.stages.work import Work

USERS = [("alice", "wonderland"), ("bob", "builder"), ("carol", "c4r0l")]
COSTS = Path(__file__).parent.parent / "hardware" / "costs" / "directory.yaml"


def linear_scan(path: Path, name: str) -> tuple[int, int]:
    """What getpwnam does: lines and bytes read until the name's line."""
    lines = bytes_ = 0
    for line in path.read_bytes().splitlines(keepends=True):
        lines += 1
        bytes_ += len(line)
        if line.split(b":", 1)[0] == name.encode():
            return lines, bytes_
    return lines, bytes_


@pytest.fixture
def passwd(tmp_path: Path) -> Path:
    write_users(tmp_path / "passwd", USERS, "passwd")
    return tmp_path / "passwd"


@pytest.fixture
def ldif(tmp_path: Path) -> Path:
    write_users(tmp_path / "people.ldif", USERS, "ldap")
    return tmp_path / "people.ldif"


def test_every_cpu_unit_has_a_documented_reference_cost():
    costs = yaml.safe_load(COSTS.read_text())
    assert set(costs) == set(CPU_UNITS)
    assert all(value > 0 for value in costs.values())
    for kind in CPU_UNITS:
        line = next(x for x in COSTS.read_text().splitlines() if x.startswith(kind))
        assert "#" in line, f"{kind} has no derivation comment"


def test_passwd_and_shadow_files_are_real_formats(passwd: Path):
    lines = passwd.read_text().splitlines()
    assert len(lines) == len(SYSTEM_ACCOUNTS) + 3
    assert lines[0] == "root:x:0:0:root:/root:/bin/bash"
    assert lines[-3] == "alice:x:1000:100:alice:/home/alice:/bin/bash"
    assert lines[-1] == "carol:x:1002:100:carol:/home/carol:/bin/bash"
    shadow = shadow_path_for(passwd)
    assert shadow == passwd.with_name("shadow")
    fields = shadow.read_text().splitlines()[-3].split(":")
    assert fields[0] == "alice" and fields[2:] == [
        "13514",
        "0",
        "99999",
        "7",
        "",
        "",
        "",
    ]
    scheme, rounds, salt, digest = fields[1].split("$")[1:]
    assert (scheme, rounds) == ("pbkdf2-sha256", str(PBKDF2_ROUNDS))
    expected = hashlib.pbkdf2_hmac("sha256", b"wonderland", bytes.fromhex(salt), 1000)
    assert digest == expected.hex()
    assert shadow.read_text().splitlines()[0].startswith("root:*:")


def test_salts_are_derived_from_names_unless_a_generator_is_given(tmp_path: Path):
    write_users(tmp_path / "a", USERS, "passwd")
    write_users(tmp_path / "b", USERS, "passwd")
    write_users(tmp_path / "c", USERS, "passwd", rng=np.random.default_rng(1))
    a, b, c = (shadow_path_for(tmp_path / n).read_text() for n in "abc")
    assert a == b
    assert a != c
    assert PasswdDirectory(tmp_path / "c").authenticate("bob", "builder").ok


def test_lookup_counts_exactly_the_lines_and_bytes_a_scan_passes(passwd: Path):
    directory = PasswdDirectory(passwd)
    root = directory.lookup("root")
    assert (root.found, root.uid, root.gid, root.home) == (True, 0, 0, "/root")
    size = passwd.stat().st_size  # < 4 KiB: stdio reads it whole
    assert root.work == Work(
        cpu={"directory.line_scanned": 1, "directory.byte_scanned": 32},
        reads=(("passwd", size),),
    )
    carol = directory.lookup("carol")
    assert (carol.uid, carol.home, carol.shell) == (1002, "/home/carol", "/bin/bash")
    lines, scanned = linear_scan(passwd, "carol")
    assert (lines, scanned) == (23, passwd.stat().st_size)
    assert carol.work.cpu == {
        "directory.line_scanned": 23,
        "directory.byte_scanned": scanned,
    }
    assert carol.work.reads == (("passwd", size),)
    for name in ("bin", "postfix", "alice", "bob"):
        work = directory.lookup(name).work.cpu
        assert (work["directory.line_scanned"], work["directory.byte_scanned"]) == (
            linear_scan(passwd, name)
        )


def test_a_miss_scans_the_whole_file_and_names_are_exact(passwd: Path):
    directory = PasswdDirectory(passwd)
    size = passwd.stat().st_size
    for name in ("zed", "Alice", "alic", "alice:x", "", "a\nb"):
        result = directory.lookup(name)
        assert not result.found and result.uid is None
        assert result.work.cpu == {
            "directory.line_scanned": 23,
            "directory.byte_scanned": size,
        }


def test_lookup_work_grows_with_the_file(tmp_path: Path):
    many = [(f"user{i:04d}", "pw") for i in range(400)]
    write_users(tmp_path / "passwd", many, "passwd")
    directory = PasswdDirectory(tmp_path / "passwd")
    assert directory.users == 420
    first = directory.lookup("user0000").work
    last = directory.lookup("user0399").work
    assert first.cpu["directory.line_scanned"] == 21
    assert last.cpu["directory.line_scanned"] == 420
    size = (tmp_path / "passwd").stat().st_size
    assert last.cpu["directory.byte_scanned"] == size
    assert first.reads == (("passwd", 4096),)  # one stdio block
    assert last.reads == (("passwd", size),)


def test_passwd_authentication_hashes_for_real(passwd: Path):
    directory = PasswdDirectory(passwd)
    good = directory.authenticate("bob", "builder")
    assert (good.ok, good.reason) == (True, "ok")
    passwd_lines, passwd_bytes = linear_scan(passwd, "bob")
    shadow_lines, shadow_bytes = linear_scan(shadow_path_for(passwd), "bob")
    assert good.work.cpu == {
        "directory.line_scanned": passwd_lines + shadow_lines,
        "directory.byte_scanned": passwd_bytes + shadow_bytes,
        "directory.hash_round": 1000,
    }
    sizes = passwd.stat().st_size, shadow_path_for(passwd).stat().st_size
    assert good.work.reads == (("passwd", sizes[0]), ("shadow", sizes[1]))
    bad = directory.authenticate("bob", "Builder")
    assert (bad.ok, bad.reason) == (False, "wrong password")
    assert bad.work == good.work
    unknown = directory.authenticate("zed", "builder")
    assert (unknown.ok, unknown.reason) == (False, "unknown user")
    assert "directory.hash_round" not in unknown.work.cpu
    locked = directory.authenticate("root", "")
    assert (locked.ok, locked.reason) == (False, "account locked")
    assert "directory.hash_round" not in locked.work.cpu


def test_ldif_file_holds_people_entries_with_ssha_passwords(ldif: Path):
    text = ldif.read_text()
    assert "dn: uid=alice,ou=people,dc=ece,dc=example,dc=edu\n" in text
    assert "dn: ou=people,dc=ece,dc=example,dc=edu\n" in text
    entry = text.split("dn: uid=bob,")[1].split("\n\n")[0]
    assert "uidNumber: 1001" in entry and "homeDirectory: /home/bob" in entry
    value = next(x for x in entry.splitlines() if x.startswith("userPassword: "))
    blob = base64.b64decode(value.removeprefix("userPassword: {SSHA}"))
    digest, salt = blob[:20], blob[20:]
    assert len(salt) == 4
    assert digest == hashlib.sha1(b"builder" + salt).digest()


def test_ldap_lookup_is_constant_probes_and_one_round_trip(ldif: Path):
    directory = LdapDirectory(ldif)
    assert directory.users == 3
    assert directory.base_dn == "dc=ece,dc=example,dc=edu"
    alice = directory.lookup("alice")
    assert (alice.found, alice.uid, alice.gid, alice.home) == (
        True, 1000, 100, "/home/alice",
    )  # fmt: skip
    # request 48 + 24 (base) + 5 (name) + 3 ("uid"); entry 12 + the dn + the
    # attributes but userPassword (8 + name + value each); done 14; 2 x 40 headers
    entry = 12 + len("uid=alice,ou=people,dc=ece,dc=example,dc=edu") + sum(
        8 + len(a) + len(v)
        for a, v in [
            ("objectClass", "top"), ("objectClass", "person"),
            ("objectClass", "posixAccount"), ("uid", "alice"), ("cn", "alice"),
            ("sn", "alice"), ("uidNumber", "1000"), ("gidNumber", "100"),
            ("homeDirectory", "/home/alice"), ("loginShell", "/bin/bash"),
        ]
    )  # fmt: skip
    assert alice.work == Work(
        cpu={"directory.ldap_op": 1, "directory.index_probe": 2},
        net_bytes=48 + 24 + 5 + 3 + entry + 14 + 80,
        net_round_trips=1,
    )
    miss = directory.lookup("zed")
    assert not miss.found
    assert miss.work == Work(
        cpu={"directory.ldap_op": 1, "directory.index_probe": 2},
        net_bytes=48 + 24 + 3 + 3 + 14 + 80,
        net_round_trips=1,
    )


def test_ldap_lookups_again_give_the_same_answer_and_work(ldif: Path):
    """A person found once is answered from what the first search found (the
    entries do not change); names not found are searched each time and not
    kept, however many a dictionary attack sends."""
    directory = LdapDirectory(ldif)
    first = directory.lookup("alice")
    again = directory.lookup("alice")
    assert again == first and again.work == first.work
    assert again == LdapDirectory(ldif).lookup("alice")  # as a fresh search
    for number in range(50):
        assert not directory.lookup(f"nobody{number}").found
    assert set(directory._found) == {"alice"}
    assert directory.lookup("bob").found and set(directory._found) == {"alice", "bob"}


def test_ldap_work_does_not_grow_with_the_directory(tmp_path: Path):
    many = [(f"user{i:04d}", "pw") for i in range(1400)]
    write_users(tmp_path / "big.ldif", many, "ldap")
    directory = LdapDirectory(tmp_path / "big.ldif")
    first = directory.lookup("user0000").work
    last = directory.lookup("user1399").work
    assert first.cpu == last.cpu == {"directory.ldap_op": 1, "directory.index_probe": 2}
    assert first.net_round_trips == last.net_round_trips == 1


def test_ldap_authentication_is_a_search_then_a_bind(ldif: Path):
    directory = LdapDirectory(ldif)
    good = directory.authenticate("carol", "c4r0l")
    assert (good.ok, good.reason) == (True, "ok")
    search = directory.lookup("carol").work
    bind_bytes = 14 + len("uid=carol,ou=people,dc=ece,dc=example,dc=edu") + 5 + 14 + 80
    assert good.work == search + Work(
        cpu={"directory.ldap_op": 1, "directory.index_probe": 2, "directory.ssha": 1},
        net_bytes=bind_bytes,
        net_round_trips=1,
    )
    bad = directory.authenticate("carol", "carol")
    assert (bad.ok, bad.reason) == (False, "wrong password")
    assert bad.work.net_round_trips == 2
    unknown = directory.authenticate("zed", "x")
    assert (unknown.ok, unknown.reason) == (False, "unknown user")
    assert (
        unknown.work.net_round_trips == 1 and "directory.ssha" not in unknown.work.cpu
    )


def test_ldap_directory_saves_and_reads_back_ldif(ldif: Path, tmp_path: Path):
    directory = LdapDirectory(ldif)
    copy = directory.save(tmp_path / "copy.ldif")
    assert copy.read_text() == ldif.read_text()
    assert LdapDirectory(copy).authenticate("alice", "wonderland").ok


def test_ldif_reader_takes_folded_lines_base64_values_and_comments(tmp_path: Path):
    password = ssha_hash("s3cret", b"\x01\x02\x03\x04")
    folded = password[:10] + "\n " + password[10:]
    shell = base64.b64encode(b" /bin/sh").decode()
    (tmp_path / "hand.ldif").write_text(
        "# written by hand\n"
        "dn: dc=example,dc=org\ndc: example\n\n"
        "dn: uid=dave,ou=people,dc=example,dc=org\n"
        "uid: dave\nuidNumber: 2001\ngidNumber: 50\nhomeDirectory: /u/da\n ve\n"
        f"loginShell:: {shell}\nuserPassword: {folded}\n"
    )
    directory = LdapDirectory(tmp_path / "hand.ldif")
    assert directory.base_dn == "dc=example,dc=org"
    dave = directory.lookup("dave")
    assert (dave.uid, dave.gid, dave.home, dave.shell) == (
        2001,
        50,
        "/u/dave",
        " /bin/sh",
    )
    assert directory.authenticate("dave", "s3cret").ok


def test_open_directory_and_both_kinds_agree_on_users(passwd: Path, ldif: Path):
    for directory in (open_directory(passwd, "passwd"), open_directory(ldif, "ldap")):
        assert directory.lookup("alice").uid == 1000
        assert directory.authenticate("alice", "wonderland").ok
        assert not directory.authenticate("alice", "wonder").ok
    with pytest.raises(ValueError, match="'nis' is not one of"):
        open_directory(passwd, "nis")


def test_credentials_csv_round_trips(tmp_path: Path):
    path = write_credentials_csv(tmp_path / "creds.csv", USERS)
    assert path.read_text().splitlines()[:2] == ["user,password", "alice,wonderland"]
    assert read_credentials_csv(path) == USERS


@pytest.mark.parametrize(
    "users, message",
    [
        ([("a:b", "x")], "not valid"),
        ([("", "x")], "not valid"),
        ([("a b", "x")], "not valid"),
        ([("alice", "x"), ("alice", "y")], "appears twice"),
        ([("root", "x")], "appears twice"),
        ([("eve", "x\ny")], "line break"),
    ],
)
def test_bad_user_lists_are_refused(tmp_path: Path, users, message):
    with pytest.raises(ValueError, match=message):
        write_users(tmp_path / "passwd", users, "passwd")


def test_unknown_kind_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="'nis' is not one of 'passwd', 'ldap'"):
        write_users(tmp_path / "x", USERS, "nis")
