"""The user population: the department's mailboxes, passwords and addresses.

Twins the ECE department's 1,400+ inboxes (DESIGN.md): login names in the
style of a 2004 Unix passwd file (initial(s) + surname, lowercase, at most 8
characters, unique), each with a password, an address in the local domain,
a workstation address inside the campus network, and a popularity weight
(Zipf over a random ranking: a few mailboxes get much of the mail). Greytrap
addresses are extra local addresses that no user owns (OpenBSD spamd's
SPAMTRAP entries).

Usernames are a pure function of the user count (walked from the name lists
below); passwords and the popularity ranking come from the ``Generator`` the
caller passes. Network strings (RFC 1918 ``10.20.0.0/16`` by default) are
labels inside the simulation: nothing connects to them.

Scenario keys read (through ``twin.scenario``): ``traffic.users.inboxes``,
``traffic.users.local_domain``, ``traffic.users.internal_networks``,
``traffic.users.greytraps``, ``traffic.users.popularity_zipf``.

Raises ``ValueError`` for a user count outside 1..20,000, an empty or bad
domain or network, a network too small for the users, a greytrap that is a
user's name, or a negative Zipf exponent.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

import numpy as np

# Surnames (a mix, as on a US engineering campus of the 2000s).
SURNAMES = (
    "smith", "johnson", "williams", "brown", "jones", "miller", "davis", "garcia",
    "wilson", "anderson", "taylor", "thomas", "moore", "martin", "jackson",
    "thompson", "white", "lopez", "lee", "gonzalez", "harris", "clark", "lewis",
    "robinson", "walker", "perez", "hall", "young", "allen", "sanchez", "wright",
    "king", "scott", "green", "baker", "adams", "nelson", "hill", "ramirez",
    "campbell", "mitchell", "roberts", "carter", "phillips", "evans", "turner",
    "torres", "parker", "collins", "edwards", "stewart", "flores", "morris",
    "nguyen", "murphy", "rivera", "cook", "rogers", "morgan", "peterson",
    "cooper", "reed", "bailey", "bell", "gomez", "kelly", "howard", "ward",
    "cox", "diaz", "richards", "wood", "watson", "brooks", "bennett", "gray",
    "james", "reyes", "cruz", "hughes", "price", "myers", "long", "foster",
    "sanders", "ross", "morales", "powell", "sullivan", "russell", "ortiz",
    "jenkins", "gutierre", "perry", "butler", "barnes", "fisher", "henderso",
    "coleman", "simmons", "patterso", "jordan", "reynolds", "hamilton", "graham",
    "kim", "wang", "li", "zhang", "chen", "liu", "yang", "huang", "zhao", "wu",
    "zhou", "xu", "sun", "ma", "zhu", "hu", "guo", "he", "lin", "gao", "luo",
    "patel", "shah", "kumar", "singh", "gupta", "sharma", "rao", "reddy", "iyer",
    "mehta", "park", "choi", "kang", "cho", "yoon", "jang", "lim", "han", "tanaka",
    "suzuki", "sato", "ito", "muller", "schmidt", "schneide", "fischer", "weber",
    "meyer", "wagner", "becker", "hoffmann", "schulz", "koch", "rossi", "russo",
    "ferrari", "esposito", "bianchi", "romano", "costa", "ricci", "dubois",
    "moreau", "laurent", "simon", "michel", "leroy", "roux", "david", "bertrand",
    "novak", "kowalski", "nowak", "ivanov", "petrov", "popescu", "papadopo",
    "ahmed", "hassan", "ali", "khan", "ibrahim", "yilmaz", "kaya", "demir",
    "oconnor", "obrien", "mccarthy", "kennedy", "walsh", "byrne", "ryan",
    "okafor", "mensah", "silva", "santos", "oliveira", "souza", "pereira",
)  # fmt: skip

INITIALS = "abcdefghijklmnopqrstuvwxyz"
# Skewed order of first initials (j, m, s, d, ... are common first letters).
_INITIAL_ORDER = "jmsdkacrbltpeghnwyvfozixuq"

DEFAULT_USERS = 1400  # DESIGN.md: over 1,400 inboxes
DEFAULT_LOCAL_DOMAIN = "ece.example.edu"  # RFC 2606 example domain, a label
DEFAULT_INTERNAL_NETWORKS = ("10.20.0.0/16",)  # RFC 1918, a label
# Unused local addresses published only to harvesters (assumption: a handful).
DEFAULT_GREYTRAP_LOCALS = ("jdoe1", "mwalsh2", "ta-archive", "lab-old")
DEFAULT_POPULARITY_ZIPF = 0.8  # assumption: top mailbox gets ~6 % of mail
PASSWORD_LENGTH = 8  # crypt(3) of the era used only 8 characters
_PASSWORD_ALPHABET = np.array(
    list("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
)
MAX_USERS = 20_000


def campus_usernames(count: int) -> tuple[str, ...]:
    """*count* unique login names, a pure function of *count*'s order.

    Walks first initial + surname, then two initials + surname, truncated to
    8 characters, skipping duplicates.
    """
    if not 1 <= count <= MAX_USERS:
        raise ValueError(f"user count(={count}) must be in 1..{MAX_USERS}")
    names: list[str] = []
    seen: set[str] = set()
    n_surnames = len(SURNAMES)
    single_round = 0  # 26 rounds: each surname with each first initial
    double_round = 0  # 676 rounds: each surname with each pair of initials
    round_number = 0
    while len(names) < count:
        use_double = (round_number % 3 == 2 and double_round < 676) or (
            single_round >= 26
        )
        if use_double and double_round >= 676:  # pragma: no cover - > 130k names
            raise AssertionError("name lists cannot make enough unique usernames")
        for j in range(n_surnames):
            surname = SURNAMES[(j * 37 + round_number) % n_surnames]
            if use_double:
                first = _INITIAL_ORDER[(double_round + j) % 26]
                middle = INITIALS[(double_round // 26 + 3 * j) % 26]
                name = (first + middle + surname)[:8]
            else:
                name = (_INITIAL_ORDER[(single_round + j) % 26] + surname)[:8]
            if name not in seen:
                seen.add(name)
                names.append(name)
                if len(names) == count:
                    break
        if use_double:
            double_round += 1
        else:
            single_round += 1
        round_number += 1
    return tuple(names)


@dataclass(frozen=True, slots=True)
class PopulationSettings:
    """What the population looks like; defaults from DESIGN.md or assumptions."""

    users: int = DEFAULT_USERS
    local_domain: str = DEFAULT_LOCAL_DOMAIN
    internal_networks: tuple[str, ...] = DEFAULT_INTERNAL_NETWORKS
    greytrap_locals: tuple[str, ...] = DEFAULT_GREYTRAP_LOCALS
    popularity_zipf: float = DEFAULT_POPULARITY_ZIPF

    def __post_init__(self) -> None:
        if not 1 <= self.users <= MAX_USERS:
            raise ValueError(f"users(={self.users}) must be in 1..{MAX_USERS}")
        domain = self.local_domain
        if not domain or "." not in domain or "@" in domain or domain != domain.lower():
            raise ValueError(
                f"local_domain(={domain!r}) must be a lowercase dotted domain name"
            )
        if not self.internal_networks:
            raise ValueError("internal_networks must name at least one network")
        for text in self.internal_networks:
            try:
                net = ipaddress.ip_network(text)
            except ValueError as exc:
                raise ValueError(
                    f"internal_networks: {text!r} is not a network: {exc}"
                ) from None
            if net.version != 4:
                raise ValueError(f"internal_networks: {text!r} must be IPv4")
        first = ipaddress.ip_network(self.internal_networks[0])
        if first.num_addresses < self.users + 512:
            raise ValueError(
                f"internal_networks[0](={self.internal_networks[0]}) has "
                f"{first.num_addresses} addresses, too few for {self.users} users "
                "(need users + 512)"
            )
        if not math.isfinite(self.popularity_zipf) or self.popularity_zipf < 0.0:
            raise ValueError(
                f"popularity_zipf(={self.popularity_zipf}) must be finite and >= 0"
            )
        for local in self.greytrap_locals:
            if not local or "@" in local or local != local.lower():
                raise ValueError(
                    f"greytrap_locals: {local!r} must be a lowercase local part"
                )


class Population:
    """The department's users, built once per run from settings and a Generator.

    Attributes (read-only by convention): ``usernames``, ``passwords``,
    ``addresses`` (``user@local_domain``), ``workstation_ips``,
    ``greytraps`` (full addresses), ``popularity`` (weights, sum 1),
    ``local_domain``, ``internal_networks``.
    """

    __slots__ = (
        "settings",
        "usernames",
        "passwords",
        "addresses",
        "workstation_ips",
        "greytraps",
        "popularity",
        "_cumulative",
        "_index",
        "local_domain",
        "internal_networks",
    )

    def __init__(self, settings: PopulationSettings, rng: np.random.Generator) -> None:
        self.settings = settings
        self.local_domain = settings.local_domain
        self.internal_networks = settings.internal_networks
        self.usernames = campus_usernames(settings.users)
        self._index = {name: i for i, name in enumerate(self.usernames)}
        for local in settings.greytrap_locals:
            if local in self._index:
                raise ValueError(
                    f"greytrap_locals: {local!r} is the login name of user "
                    f"{self._index[local]}"
                )
        domain = settings.local_domain
        self.addresses = tuple(f"{name}@{domain}" for name in self.usernames)
        self.greytraps = tuple(
            f"{local}@{domain}" for local in settings.greytrap_locals
        )
        letters = rng.integers(
            0, len(_PASSWORD_ALPHABET), size=(settings.users, PASSWORD_LENGTH)
        )
        chars = _PASSWORD_ALPHABET[letters]
        self.passwords = tuple("".join(row) for row in chars.tolist())
        # Popularity: Zipf weight by rank, ranks shuffled over the users.
        ranks = rng.permutation(settings.users) + 1
        weights = ranks.astype(np.float64) ** -settings.popularity_zipf
        weights /= weights.sum()
        self.popularity = weights
        self._cumulative = np.cumsum(weights)
        self._cumulative[-1] = 1.0
        net = ipaddress.ip_network(settings.internal_networks[0])
        base = int(net.network_address) + 256  # skip the first /24 (routers)
        self.workstation_ips = tuple(
            str(ipaddress.IPv4Address(base + i)) for i in range(settings.users)
        )

    def __len__(self) -> int:
        return len(self.usernames)

    def user_index(self, username: str) -> int | None:
        """Index of *username*, or None if no such user."""
        return self._index.get(username)

    def is_user(self, local_part: str) -> bool:
        """Whether *local_part* is a user's login name."""
        return local_part in self._index

    def password_of(self, username: str) -> str:
        """The password of *username* (KeyError if unknown)."""
        return self.passwords[self._index[username]]

    def is_greytrap(self, address: str) -> bool:
        """Whether *address* is one of the greytrap addresses."""
        return address in self.greytraps

    def pick_users(self, uniforms: np.ndarray) -> np.ndarray:
        """User indices for uniforms in [0, 1), by popularity (vectorised)."""
        picked = np.searchsorted(self._cumulative, uniforms, side="right")
        np.minimum(picked, len(self.usernames) - 1, out=picked)
        return picked
