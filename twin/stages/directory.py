"""User directory: the /etc/passwd file of 2004 and the LDAP server of 2007.

Twins the user lookup behind mail acceptance (Postfix's local recipient table)
and password checks behind SASL and IMAP/POP3 logins. Two real implementations
share one small interface, ``lookup(user)`` and ``authenticate(user, password)``:

- ``PasswdDirectory``: a flat ``name:x:uid:gid:gecos:home:shell`` file and a
  shadow-format file beside it (``shadow`` next to ``passwd``, else
  ``<name>.shadow``). A lookup scans from the top until the name's line, as
  glibc's getpwnam/getspnam do on ``files``; the work therefore grows with the
  file and with the user's position in it. Passwords are
  ``$pbkdf2-sha256$<rounds>$<salt hex>$<hash hex>``, verified for real.
- ``LdapDirectory``: an indexed directory (a dict keyed by uid, as slapd's
  equality index on ``uid``), loaded from and saved to LDIF with
  ``userPassword: {SSHA}...`` (salted SHA-1, OpenLDAP's slappasswd format).
  A lookup is one search over the network: constant index probes and one round
  trip; an authentication is a search then a simple bind (saslauthd's
  ``ldap_auth_method: bind``), two round trips.

Counts (``Work``): passwd lines and bytes scanned, the file data read through
stdio (4 KiB ``st_blksize`` buffers, keyed by file name so the page cache can
serve re-reads), PBKDF2 rounds; for LDAP the operations, index probes, SSHA
hashes, round trips and bytes on the wire. CPU kinds are in ``CPU_UNITS``.

Scenario keys: ``directory: {kind: passwd | ldap, ...}`` (built by scenario.py).
Raises ValueError for bad user lists, unknown kinds and malformed files.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from twin.stages.work import Work

CPU_UNITS: dict[str, str] = {
    "directory.line_scanned": "one passwd/shadow line compared in a linear scan",
    "directory.byte_scanned": "one passwd/shadow byte read and searched by the scan",
    "directory.hash_round": "one PBKDF2-HMAC-SHA256 round verifying a password",
    "directory.index_probe": "one LDAP database probe (uid index, dn2id, id2entry)",
    "directory.ldap_op": "one LDAP operation served: decode, ACL check, encode",
    "directory.ssha": "one salted SHA-1 verifying an LDAP {SSHA} userPassword",
}

# md5crypt ($1$, the Linux shadow default of the era) runs a fixed 1000 MD5
# rounds (FreeBSD/glibc crypt-md5); our PBKDF2 uses the same fixed count.
PBKDF2_ROUNDS = 1000
# stdio reads a regular file in st_blksize chunks: 4 KiB on ext3 and UFS.
STDIO_BLOCK_BYTES = 4096
# shadow's lastchg field: days since 1970-01-01 of 2007-01-01.
SHADOW_LASTCHG_DAYS = 13514
# OpenLDAP slappasswd draws a 4-byte salt for {SSHA}.
SSHA_SALT_BYTES = 4
DEFAULT_BASE_DN = "dc=ece,dc=example,dc=edu"

# LDAP wire sizes (assumption, from the BER layout of RFC 4511 messages):
# LDAPMessage envelope, message id, scope/deref/limits and filter tags of a
# searchRequest; per attribute of a searchResEntry; a bare LDAPResult.
_SEARCH_REQUEST_OVERHEAD_BYTES = 48
_ENTRY_OVERHEAD_BYTES = 12
_ATTRIBUTE_OVERHEAD_BYTES = 8
_RESULT_DONE_BYTES = 14
_BIND_REQUEST_OVERHEAD_BYTES = 14
# One request segment and one reply segment, 20 B IPv4 + 20 B TCP headers each.
_TCP_IP_HEADER_BYTES = 40

# Accounts a Red Hat style passwd file of the era starts with; the scan to a
# user's line passes them first. Shadow entries are locked ("*" / "!!").
SYSTEM_ACCOUNTS: tuple[tuple[str, int, int, str, str, str], ...] = (
    ("root", 0, 0, "root", "/root", "/bin/bash"),
    ("bin", 1, 1, "bin", "/bin", "/sbin/nologin"),
    ("daemon", 2, 2, "daemon", "/sbin", "/sbin/nologin"),
    ("adm", 3, 4, "adm", "/var/adm", "/sbin/nologin"),
    ("lp", 4, 7, "lp", "/var/spool/lpd", "/sbin/nologin"),
    ("sync", 5, 0, "sync", "/sbin", "/bin/sync"),
    ("shutdown", 6, 0, "shutdown", "/sbin", "/sbin/shutdown"),
    ("halt", 7, 0, "halt", "/sbin", "/sbin/halt"),
    ("mail", 8, 12, "mail", "/var/spool/mail", "/sbin/nologin"),
    ("news", 9, 13, "news", "/etc/news", ""),
    ("uucp", 10, 14, "uucp", "/var/spool/uucp", "/sbin/nologin"),
    ("operator", 11, 0, "operator", "/root", "/sbin/nologin"),
    ("games", 12, 100, "games", "/usr/games", "/sbin/nologin"),
    ("ftp", 14, 50, "FTP User", "/var/ftp", "/sbin/nologin"),
    ("nobody", 99, 99, "Nobody", "/", "/sbin/nologin"),
    ("sshd", 74, 74, "Privilege-separated SSH", "/var/empty/sshd", "/sbin/nologin"),
    ("postfix", 89, 89, "", "/var/spool/postfix", "/sbin/nologin"),
    ("cyrus", 76, 12, "Cyrus IMAP Server", "/var/lib/imap", "/bin/bash"),
    ("ldap", 55, 55, "LDAP User", "/var/lib/ldap", "/bin/false"),
    ("ntp", 38, 38, "", "/etc/ntp", "/sbin/nologin"),
)
_USER_GID = 100
_FIRST_USER_UID = 1000


@dataclass(frozen=True, slots=True)
class LookupResult:
    """Outcome of one getpwnam-style lookup and the work it took."""

    found: bool
    name: str
    uid: int | None
    gid: int | None
    home: str | None
    shell: str | None
    work: Work


@dataclass(frozen=True, slots=True)
class AuthResult:
    """Outcome of one password check: ok, a readable reason, and the work."""

    ok: bool
    reason: str
    work: Work


class Directory(Protocol):
    """What the SMTP, IMAP and POP3 stages need from a user directory."""

    kind: str

    def lookup(self, user: str) -> LookupResult: ...

    def authenticate(self, user: str, password: str) -> AuthResult: ...


# ---------------------------------------------------------------- passwords


def _utf8(text: str) -> bytes:
    """UTF-8 bytes of *text*, keeping undecodable bytes a client sent."""
    return text.encode("utf-8", "surrogateescape")


def _derived_salt(name: str, size: int, rng: np.random.Generator | None) -> bytes:
    """A salt from the caller's generator, else derived from the name."""
    if rng is not None:
        return rng.bytes(size)
    return hashlib.sha256(b"mailtwin-salt:" + name.encode()).digest()[:size]


def pbkdf2_hash(password: str, salt: bytes, rounds: int = PBKDF2_ROUNDS) -> str:
    """The shadow field for *password*: ``$pbkdf2-sha256$rounds$salt$hash``."""
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, rounds)
    return f"$pbkdf2-sha256${rounds}${salt.hex()}${digest.hex()}"


def ssha_hash(password: str, salt: bytes) -> str:
    """The LDAP ``userPassword`` value ``{SSHA}base64(sha1(pw+salt)+salt)``."""
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode("ascii")


def _check_users(users: Sequence[tuple[str, str]]) -> None:
    seen: set[str] = set()
    system = {account[0] for account in SYSTEM_ACCOUNTS}
    for name, password in users:
        if (
            not name
            or name != name.strip()
            or any(c in name for c in ":,\n\r\t =")
            or not name.isprintable()
        ):
            raise ValueError(
                f"user name {name!r} is not valid: non-empty, printable, "
                "without ':', ',', '=', spaces or line breaks"
            )
        if "\n" in password or "\r" in password:
            raise ValueError(f"password of user {name!r} holds a line break")
        if name in seen or name in system:
            raise ValueError(f"user name {name!r} appears twice (or is a system one)")
        seen.add(name)


def shadow_path_for(passwd_path: Path) -> Path:
    """Where the shadow file of *passwd_path* lives (``shadow`` beside it)."""
    passwd_path = Path(passwd_path)
    if passwd_path.name == "passwd":
        return passwd_path.with_name("shadow")
    return passwd_path.with_name(passwd_path.name + ".shadow")


def write_users(
    path: Path | str,
    users: Sequence[tuple[str, str]],
    kind: str,
    *,
    rng: np.random.Generator | None = None,
    base_dn: str = DEFAULT_BASE_DN,
) -> tuple[Path, ...]:
    """Write *users* ``(name, password)`` as a directory of *kind*; return paths.

    ``kind="passwd"`` writes *path* (system accounts first, then users from uid
    1000 in the given order) and its shadow file; ``kind="ldap"`` writes an
    LDIF file at *path*. Salts come from *rng* if given, else from the name.
    """
    path = Path(path)
    _check_users(users)
    if kind == "passwd":
        shadow = shadow_path_for(path)
        passwd_lines = []
        shadow_lines = []
        for name, uid, gid, gecos, home, shell in SYSTEM_ACCOUNTS:
            passwd_lines.append(f"{name}:x:{uid}:{gid}:{gecos}:{home}:{shell}\n")
            locked = "*" if uid < 99 else "!!"
            shadow_lines.append(f"{name}:{locked}:{SHADOW_LASTCHG_DAYS}:0:99999:7:::\n")
        for offset, (name, password) in enumerate(users):
            uid = _FIRST_USER_UID + offset
            passwd_lines.append(
                f"{name}:x:{uid}:{_USER_GID}:{name}:/home/{name}:/bin/bash\n"
            )
            field = pbkdf2_hash(password, _derived_salt(name, 8, rng))
            shadow_lines.append(f"{name}:{field}:{SHADOW_LASTCHG_DAYS}:0:99999:7:::\n")
        path.write_text("".join(passwd_lines), encoding="utf-8")
        shadow.write_text("".join(shadow_lines), encoding="utf-8")
        return (path, shadow)
    if kind == "ldap":
        entries = {}
        for offset, (name, password) in enumerate(users):
            salt = _derived_salt(name, SSHA_SALT_BYTES, rng)
            entries[name] = _person_entry(
                name, _FIRST_USER_UID + offset, ssha_hash(password, salt)
            )
        _write_ldif(path, base_dn, entries)
        return (path,)
    raise ValueError(f"directory kind {kind!r} is not one of 'passwd', 'ldap'")


def write_credentials_csv(path: Path | str, users: Iterable[tuple[str, str]]) -> Path:
    """Write a ``user,password`` header and one row per user (for load tests)."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("user", "password"))
        for name, password in users:
            writer.writerow((name, password))
    return path


def read_credentials_csv(path: Path | str) -> list[tuple[str, str]]:
    """The ``(user, password)`` rows written by ``write_credentials_csv``."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows or rows[0] != ["user", "password"]:
        raise ValueError(f"{path}: first row must be 'user,password'")
    return [(row[0], row[1]) for row in rows[1:] if row]


def open_directory(path: Path | str, kind: str) -> PasswdDirectory | LdapDirectory:
    """Load the directory of *kind* (``passwd`` or ``ldap``) stored at *path*."""
    if kind == "passwd":
        return PasswdDirectory(path)
    if kind == "ldap":
        return LdapDirectory(path)
    raise ValueError(f"directory kind {kind!r} is not one of 'passwd', 'ldap'")


# ------------------------------------------------------------ passwd + shadow


class _FlatFile:
    """One colon-separated file held in memory, searched as getpwnam would.

    getpwnam on ``files`` reads the file from the top and compares each
    line's first field until one matches. The file is read once (the page
    cache keeps it); on that read we note, for each name's first line, how
    many lines and bytes the scan passes to reach it, so a lookup costs a dict
    probe here while its reported work is exactly that of the scan.
    """

    __slots__ = ("key", "size", "lines", "_where")

    def __init__(self, path: Path, key: str) -> None:
        raw = path.read_bytes()
        self.key = key
        self.size = len(raw)
        self._where: dict[bytes, tuple[int, int, bytes]] = {}
        pieces = raw.split(b"\n")
        if pieces[-1] == b"":
            pieces.pop()  # the file ends with a newline
        offset = 0
        for number, line in enumerate(pieces, 1):
            offset = min(offset + len(line) + 1, self.size)  # through the newline
            name, colon, _ = line.partition(b":")
            if colon and name not in self._where:
                self._where[name] = (number, offset, line)
        self.lines = len(pieces)

    def scan(self, name: str) -> tuple[bytes | None, int, int]:
        """The line of *name* (or None), lines scanned, bytes scanned."""
        found = self._where.get(name.encode("utf-8", "surrogateescape"))
        if found is None:
            return None, self.lines, self.size
        number, scanned, line = found
        return line, number, scanned

    def read_bytes_for(self, scanned: int) -> int:
        """File bytes stdio pulls in to scan *scanned* bytes."""
        blocks = -(-scanned // STDIO_BLOCK_BYTES)
        return min(self.size, blocks * STDIO_BLOCK_BYTES)


class PasswdDirectory:
    """A passwd file and its shadow file, searched line by line from the top."""

    kind = "passwd"

    def __init__(self, path: Path | str, shadow_path: Path | str | None = None) -> None:
        path = Path(path)
        shadow = Path(shadow_path) if shadow_path is not None else shadow_path_for(path)
        self._passwd = _FlatFile(path, path.name)
        self._shadow = _FlatFile(shadow, shadow.name)

    @property
    def users(self) -> int:
        """Lines in the passwd file (system accounts included)."""
        return self._passwd.lines

    def _scan_work(self, table: _FlatFile, lines: int, scanned: int) -> Work:
        return Work(
            cpu={
                "directory.line_scanned": lines,
                "directory.byte_scanned": scanned,
            },
            reads=((table.key, table.read_bytes_for(scanned)),),
        )

    def lookup(self, user: str) -> LookupResult:
        """getpwnam(*user*): scan the passwd file until the name's line."""
        line, lines, scanned = self._passwd.scan(user)
        work = self._scan_work(self._passwd, lines, scanned)
        if line is not None:
            fields = line.decode("utf-8", "replace").split(":")
            if len(fields) == 7 and fields[2].isdigit() and fields[3].isdigit():
                return LookupResult(
                    True,
                    user,
                    int(fields[2]),
                    int(fields[3]),
                    fields[5],
                    fields[6],
                    work,
                )
        return LookupResult(False, user, None, None, None, None, work)

    def authenticate(self, user: str, password: str) -> AuthResult:
        """getpwnam + getspnam, then the password hash, as pam_unix does."""
        found = self.lookup(user)
        if not found.found:
            return AuthResult(False, "unknown user", found.work)
        line, lines, scanned = self._shadow.scan(user)
        work = found.work + self._scan_work(self._shadow, lines, scanned)
        if line is None:
            return AuthResult(False, "no shadow entry", work)
        fields = line.decode("utf-8", "replace").split(":")
        parts = fields[1].split("$") if len(fields) > 1 else []
        # "$pbkdf2-sha256$rounds$salt$hash" splits to ['', name, r, s, h].
        if len(parts) != 5 or parts[1] != "pbkdf2-sha256" or not parts[2].isdigit():
            return AuthResult(False, "account locked", work)
        rounds = int(parts[2])
        try:
            salt = bytes.fromhex(parts[3])
        except ValueError:
            return AuthResult(False, "account locked", work)
        digest = hashlib.pbkdf2_hmac("sha256", _utf8(password), salt, rounds)
        work = work + Work(cpu={"directory.hash_round": rounds})
        if hmac.compare_digest(digest.hex().encode(), _utf8(parts[4])):
            return AuthResult(True, "ok", work)
        return AuthResult(False, "wrong password", work)


# ------------------------------------------------------------------ LDAP


def _person_entry(name: str, uid: int, password_value: str) -> dict[str, list[str]]:
    return {
        "objectClass": ["top", "person", "posixAccount"],
        "uid": [name],
        "cn": [name],
        "sn": [name],
        "uidNumber": [str(uid)],
        "gidNumber": [str(_USER_GID)],
        "homeDirectory": [f"/home/{name}"],
        "loginShell": ["/bin/bash"],
        "userPassword": [password_value],
    }


def _ldif_line(attribute: str, value: str) -> str:
    safe = (
        value.isascii()
        and value.isprintable()
        and not value.startswith((" ", ":", "<"))
    )
    if safe:
        return f"{attribute}: {value}\n"
    encoded = base64.b64encode(value.encode("utf-8")).decode("ascii")
    return f"{attribute}:: {encoded}\n"


def _write_ldif(
    path: Path, base_dn: str, entries: dict[str, dict[str, list[str]]]
) -> None:
    top = base_dn.split(",", 1)[0].partition("=")[2]
    chunks = [
        "version: 1\n\n",
        f"dn: {base_dn}\nobjectClass: top\nobjectClass: dcObject\n"
        f"objectClass: organization\no: {top}\ndc: {top}\n\n",
        f"dn: ou=people,{base_dn}\nobjectClass: top\n"
        "objectClass: organizationalUnit\nou: people\n\n",
    ]
    for name, attributes in entries.items():
        lines = [f"dn: uid={name},ou=people,{base_dn}\n"]
        for attribute, values in attributes.items():
            lines.extend(_ldif_line(attribute, value) for value in values)
        lines.append("\n")
        chunks.append("".join(lines))
    path.write_text("".join(chunks), encoding="utf-8")


def _read_ldif(path: Path) -> list[tuple[str, dict[str, list[str]]]]:
    """Records of an LDIF file as ``(dn, {attribute: [values]})``."""
    unfolded: list[str] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if raw.startswith(" "):
            if not unfolded or not unfolded[-1]:
                raise ValueError(
                    f"{path}:{number}: continuation line with nothing before"
                )
            unfolded[-1] += raw[1:]
        elif raw.startswith("#"):
            continue
        else:
            unfolded.append(raw)
    records = []
    dn = None
    attributes: dict[str, list[str]] = {}
    for line in [*unfolded, ""]:
        if not line:
            if dn is not None:
                records.append((dn, attributes))
            dn, attributes = None, {}
            continue
        attribute, colon, value = line.partition(":")
        if not colon:
            raise ValueError(f"{path}: LDIF line {line!r} has no ':'")
        if value.startswith(":"):
            value = base64.b64decode(value[1:].strip()).decode("utf-8")
        else:
            value = value.strip()
        if attribute.lower() == "dn":
            dn = value
        elif attribute.lower() != "version" or dn is not None:
            attributes.setdefault(attribute, []).append(value)
    return records


class LdapDirectory:
    """An LDAP-like directory: people entries indexed by uid, kept in LDIF."""

    kind = "ldap"

    def __init__(self, path: Path | str, base_dn: str | None = None) -> None:
        path = Path(path)
        self._index: dict[str, tuple[str, dict[str, list[str]], int]] = {}
        found_base = None
        for dn, attributes in _read_ldif(path):
            uid = attributes.get("uid")
            if uid and "uidNumber" in attributes:
                self._index[uid[0]] = (
                    dn,
                    attributes,
                    self._entry_bytes(dn, attributes),
                )
            elif found_base is None and "dc" in attributes:
                found_base = dn
        self.base_dn = base_dn or found_base or DEFAULT_BASE_DN
        self._found: dict[str, LookupResult] = {}
        """Lookups of people found so far: the entries do not change, so a
        second search gets the same answer and Work (unknown names are not
        kept: a dictionary attack sends endless ones)."""

    @property
    def users(self) -> int:
        """People entries in the index."""
        return len(self._index)

    @staticmethod
    def _entry_bytes(dn: str, attributes: dict[str, list[str]]) -> int:
        """A searchResEntry's size; the ACL never returns userPassword."""
        size = _ENTRY_OVERHEAD_BYTES + len(dn)
        for attribute, values in attributes.items():
            if attribute != "userPassword":
                size += sum(
                    _ATTRIBUTE_OVERHEAD_BYTES + len(attribute) + len(v) for v in values
                )
        return size

    def save(self, path: Path | str) -> Path:
        """Write the directory back as LDIF."""
        path = Path(path)
        _write_ldif(path, self.base_dn, {name: e[1] for name, e in self._index.items()})
        return path

    def _search_work(self, user: str, entry_bytes: int) -> Work:
        request = _SEARCH_REQUEST_OVERHEAD_BYTES + len(self.base_dn) + len(user) + 3
        reply = entry_bytes + _RESULT_DONE_BYTES
        return Work(
            # equality index on uid -> entry id, then id2entry for the entry
            cpu={"directory.ldap_op": 1, "directory.index_probe": 2},
            net_bytes=request + reply + 2 * _TCP_IP_HEADER_BYTES,
            net_round_trips=1,
        )

    def lookup(self, user: str) -> LookupResult:
        """A search ``(uid=user)`` under ou=people: one round trip."""
        known = self._found.get(user)
        if known is not None:
            return known
        entry = self._index.get(user)
        if entry is None:
            return LookupResult(
                False, user, None, None, None, None, self._search_work(user, 0)
            )
        _, attributes, entry_bytes = entry
        uid = attributes["uidNumber"][0]
        gid = attributes.get("gidNumber", [""])[0]
        known = self._found[user] = LookupResult(
            True,
            user,
            int(uid) if uid.isdigit() else None,
            int(gid) if gid.isdigit() else None,
            attributes.get("homeDirectory", [None])[0],
            attributes.get("loginShell", [None])[0],
            self._search_work(user, entry_bytes),
        )
        return known

    def authenticate(self, user: str, password: str) -> AuthResult:
        """A search for the DN, then a simple bind with *password*."""
        entry = self._index.get(user)
        if entry is None:
            return AuthResult(False, "unknown user", self._search_work(user, 0))
        dn, attributes, entry_bytes = entry
        bind = Work(
            # dn2id then id2entry to fetch userPassword, one salted SHA-1
            cpu={
                "directory.ldap_op": 1,
                "directory.index_probe": 2,
                "directory.ssha": 1,
            },
            net_bytes=_BIND_REQUEST_OVERHEAD_BYTES
            + len(dn)
            + len(password)
            + _RESULT_DONE_BYTES
            + 2 * _TCP_IP_HEADER_BYTES,
            net_round_trips=1,
        )
        work = self._search_work(user, entry_bytes) + bind
        stored = attributes.get("userPassword", [""])[0]
        if not stored.startswith("{SSHA}"):
            return AuthResult(False, "account locked", work)
        try:
            blob = base64.b64decode(stored[6:], validate=True)
        except ValueError:
            return AuthResult(False, "account locked", work)
        digest, salt = blob[:20], blob[20:]
        if len(digest) == 20 and hmac.compare_digest(
            hashlib.sha1(_utf8(password) + salt).digest(), digest
        ):
            return AuthResult(True, "ok", work)
        return AuthResult(False, "wrong password", work)
