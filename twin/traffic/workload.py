"""The workload: a week (or any span) of ECE campus mail, as message specs.

Twins the load on the department's mail system (DESIGN.md, "the system being
twinned"): three traffic classes, each a non-homogeneous Poisson process over
its week profile (``twin.traffic.profile``):

- ``legit``: inbound mail from RFC-compliant MTAs (a pool of a few thousand,
  Zipf popularity, each with its own retry policy: Postfix 2.4+, Postfix before
  2.4 or sendmail, mixed per ``legit_retry_mix``);
- ``spam``: unsolicited mail offered by bots (a large pool, few repeats), a
  share of which retry a tempfail (``spam_retry_share``); small shares aim at
  unknown users (dictionary attacks), at greytrap addresses, and at outside
  domains (relay attempts);
- ``outbound``: mail the users send; a share comes from off-site clients that
  authenticate with SASL (the user's password, or a wrong one for a small
  share).

Calibration of the defaults (the seed's facts, DESIGN.md): legit 31,000/week
all get through greylisting (MTAs retry); spam offered 76,000/week is 71 % of
inbound (the share seen in a comparable 2005 department); retrying bots are a
per-bot property, and a whitelisted bot's later mail passes too, so about
``76,000 x 0.15 x 0.95`` (minus dictionary, trap and relay mail) ~ 10,800 spam
a week are received: over 40,000 received, over 10,000 spam; outbound
11,000/week (over 10,000 sent).

``generate`` yields ``MessageSpec`` rows lazily in arrival order, one hour at a
time (memory does not grow with the span). Randomness comes only from named
streams the caller provides, one per class and purpose
(``traffic.<class>.pool``, ``.arrivals``, ``.attributes``), so changing one
class's settings leaves the other classes' specs unchanged (common random
numbers), and within a class a fixed number of draws is made per message
whatever the shares are. Labels (``is_spam``, ``aim``, ``bad_password``) stay
in the spec and never enter a rendered message (``twin.traffic.message``).

Scenario keys read (through ``twin.scenario``): ``traffic.inbound.*``,
``traffic.outbound.*``, ``traffic.sizes.*``.

Raises ``ValueError`` for a bad setting (naming the field and the allowed
range), a non-positive duration, or a missing random stream.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields

import numpy as np

from twin.traffic.population import SURNAMES, Population
from twin.traffic.profile import HOUR_S, WEEK_S, WeekProfile, arrival_times
from twin.traffic.retry import (
    POSTFIX_PRE24_QUEUE_RUN_DELAY_S,
    POSTFIX_QUEUE_RUN_DELAY_S,
    SENDMAIL_QUEUE_INTERVAL_MAX_S,
    SENDMAIL_QUEUE_INTERVAL_MIN_S,
    SPAMWARE_LIFETIME_S,
    RetryPolicy,
    RetrySchedule,
    postfix_policy,
    postfix_pre24_policy,
    sendmail_policy,
    spamware_policy,
)

KINDS = ("legit", "spam", "outbound")
AIMS = ("deliver", "dictionary", "greytrap", "relay", "send")
MESSAGE_SIZE_LIMIT_BYTES = 10_240_000  # Postfix message_size_limit default

FIRST_NAMES = (
    "john", "mike", "david", "james", "robert", "mary", "linda", "susan", "karen",
    "lisa", "mark", "paul", "steve", "kevin", "brian", "jason", "jeff", "scott",
    "eric", "chris", "amy", "anna", "laura", "sarah", "emily", "jessica", "jen",
    "kate", "tom", "dan", "matt", "andrew", "peter", "alex", "nick", "ryan",
    "wei", "jing", "hui", "yan", "raj", "anil", "priya", "deepak", "sanjay",
    "hiro", "yuki", "ken", "min", "jae", "sung", "ali", "omar", "fatima", "hans",
    "klaus", "anja", "marco", "luca", "giulia", "pierre", "marie", "jose",
    "carlos", "maria", "ana", "ivan", "olga", "piotr", "tomas", "eva", "nina",
)  # fmt: skip
_ROLE_LOCALS = (
    "admin", "info", "sales", "webmaster", "support", "office", "contact", "jobs",
    "hr", "test", "help", "news", "billing", "service", "marketing", "staff",
    "root", "www", "mail", "user", "guest", "student", "faculty", "lab", "secretary",
)  # fmt: skip
_SYLLABLES = (
    "ka", "lo", "mi", "ra", "ven", "tor", "sel", "dan", "por", "qui", "bel", "nor",
    "ax", "ly", "tec", "ron", "vi", "sa", "mar", "len", "cor", "tha", "zen", "do",
    "pri", "mo", "gal", "ter", "fin", "wes",
)  # fmt: skip
_LEGIT_TLDS = ("com", "edu", "net", "org", "com", "edu", "com", "de", "uk", "ca")
_SPAM_TLDS = ("com", "net", "biz", "info", "ru", "cn", "com", "info")
_SPAM_WORDS = (
    "rx", "meds", "pharm", "deals", "loans", "rate", "watch", "stock", "online",
    "direct", "club", "best", "cheap", "shop", "mail", "news",
)  # fmt: skip
_ISP_WORDS = ("dsl", "dyn", "cable", "pool", "dialup", "adsl", "ppp", "res")
# First octets that look like allocated unicast space (no 0, 10, 100, 127,
# 169, 172, 192, 198, 203 or multicast): bots and MTAs are drawn from these.
_PUBLIC_FIRST_OCTETS = np.array(
    [12, 24, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 74, 75,
     76, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 121, 122, 123, 124, 125,
     128, 129, 130, 131, 132, 134, 137, 140, 141, 146, 150, 151, 152, 155, 160,
     161, 164, 189, 190, 193, 194, 195, 200, 201, 202, 205, 206, 207, 208, 209,
     210, 211, 212, 213, 216, 217, 218, 219, 220, 221, 222],
    dtype=np.uint32,
)  # fmt: skip

_LEGIT_SENDER_LOCALS = 600  # distinct sender local parts walked from the names
_LEGIT_SENDER_ZIPF = 1.0  # assumption: a few correspondents write most mail
_SPAM_SENDER_LOCALS = 4000
_SPAM_DOMAINS = 5000
_ISP_DOMAINS = 300
# Spam forging a sender in a legitimate MTA's domain (SPF fail, assumption).
_SPAM_FORGED_LEGIT_DOMAIN_SHARE = 0.25
# In a dictionary attack, the share of guesses after the first that exist.
_DICTIONARY_HIT_SHARE = 0.2  # assumption


def _per_week(count: float) -> float:
    return count / WEEK_S


@dataclass(frozen=True, slots=True)
class TrafficSettings:
    """All knobs of the workload. Rates are per second (documented per week).

    Defaults are the calibration in the module docstring; sizes and recipient
    counts are assumptions (see each comment). Build from per-week numbers
    with ``TrafficSettings.from_weekly``.
    """

    # 31,000/week legit inbound (assumption calibrated to the seed's 40,000+).
    legit_rate_per_s: float = _per_week(31_000)
    # 76,000/week spam offered: 71 % of inbound, as in a 2005 department.
    spam_rate_per_s: float = _per_week(76_000)
    # 11,000/week sent by the users (DESIGN.md: over 10,000 sent a week).
    outbound_rate_per_s: float = _per_week(11_000)
    legit_profile: WeekProfile = field(
        default_factory=lambda: WeekProfile.named("campus-weekday", "legit")
    )
    spam_profile: WeekProfile = field(
        default_factory=lambda: WeekProfile.named("spam-flat", "spam")
    )
    outbound_profile: WeekProfile = field(
        default_factory=lambda: WeekProfile.named("outbound-campus", "outbound")
    )
    # Sending MTAs: a few thousand distinct hosts, Zipf popularity by rank.
    legit_mta_count: int = 3000  # assumption
    legit_mta_zipf: float = 1.0  # assumption: the top MTA sends ~12 %
    # Retry policy mix of legit MTAs: Postfix >= 2.4, Postfix < 2.4, sendmail
    # (assumption for 2005-2007; FACTS.md gives each policy's numbers).
    legit_retry_mix: tuple[float, float, float] = (0.5, 0.2, 0.3)
    # Bots: many hosts, drawn uniformly, so few send twice in a week.
    spam_bot_count: int = 50_000  # assumption
    # Share of bots whose software retries a tempfail (assumption, calibrated
    # so that ~10,800 spam/week pass greylisting; FACTS.md: most do not retry).
    spam_retry_share: float = 0.15
    # A retrying bot retries at a fixed interval drawn per bot in this range
    # and gives up after spam_retry_lifetime_s (assumption).
    spam_retry_interval_min_s: float = 600.0
    spam_retry_interval_max_s: float = 3600.0
    spam_retry_lifetime_s: float = SPAMWARE_LIFETIME_S
    # Shares of spam messages aimed at unknown users (dictionary attack), at a
    # greytrap, and at outside domains (relay attempt); the rest aim at users.
    spam_dictionary_share: float = 0.03  # assumption
    spam_greytrap_share: float = 0.01  # assumption
    spam_relay_share: float = 0.01  # assumption
    # Spam forging a local user as the envelope sender (joe-job, assumption).
    spam_forged_local_sender_share: float = 0.05
    # Outbound mail from off-site clients (must use SASL to relay).
    outbound_offsite_share: float = 0.2
    # Off-site attempts that give a wrong password (typo, stale client setting).
    outbound_wrong_password_share: float = 0.03  # assumption
    # Sizes: lognormal by median and sigma of ln(size) (assumptions): legit
    # median 6 KB, mean 6000 * exp(1.69^2 / 2) ~ 25 KB, heavy tail; spam median
    # 3 KB, mean ~4.5 KB; outbound median 5 KB, mean ~18 KB.
    legit_size_median_bytes: float = 6000.0
    legit_size_sigma: float = 1.69
    spam_size_median_bytes: float = 3000.0
    spam_size_sigma: float = 0.9
    outbound_size_median_bytes: float = 5000.0
    outbound_size_sigma: float = 1.6
    # Clip below at the smallest message the renderer writes with full headers
    # (real messages with a Received chain were rarely under 1 KB).
    min_size_bytes: int = 800
    # Clip above at Postfix's message_size_limit default (10,240,000 bytes).
    max_size_bytes: int = MESSAGE_SIZE_LIMIT_BYTES
    # Recipients per message: Zipf (P(k) ~ k^-a), capped. a = 3.0 gives 83 %
    # single-recipient mail and a mean ~1.35 (assumption); bulk mail spreads
    # more (a = 2.5: 75 % single).
    legit_recipients_zipf: float = 3.0
    spam_recipients_zipf: float = 2.5
    outbound_recipients_zipf: float = 2.8
    max_recipients: int = 50  # assumption (Postfix smtpd_recipient_limit is 1000)

    def __post_init__(self) -> None:
        for name in ("legit_rate_per_s", "spam_rate_per_s", "outbound_rate_per_s"):
            _check_range(name, getattr(self, name), 0.0, 1000.0)
        for name, kind in (
            ("legit_profile", "legit"),
            ("spam_profile", "spam"),
            ("outbound_profile", "outbound"),
        ):
            if not isinstance(getattr(self, name), WeekProfile):
                raise ValueError(
                    f"{name} must be a WeekProfile (use WeekProfile.resolve(..., "
                    f"{kind!r}) or TrafficSettings.from_weekly), got "
                    f"{type(getattr(self, name)).__name__}"
                )
        _check_int("legit_mta_count", self.legit_mta_count, 1, 1_000_000)
        _check_int("spam_bot_count", self.spam_bot_count, 1, 10_000_000)
        _check_range("legit_mta_zipf", self.legit_mta_zipf, 0.0, 10.0)
        if len(self.legit_retry_mix) != 3:
            raise ValueError(
                f"legit_retry_mix(={self.legit_retry_mix}) must be 3 shares "
                "(postfix-2.4, postfix-2.3, sendmail)"
            )
        for share in self.legit_retry_mix:
            _check_range("legit_retry_mix", share, 0.0, 1.0)
        if not math.isclose(sum(self.legit_retry_mix), 1.0, abs_tol=1e-9):
            raise ValueError(f"legit_retry_mix(={self.legit_retry_mix}) must sum to 1")
        for name in (
            "spam_retry_share",
            "spam_dictionary_share",
            "spam_greytrap_share",
            "spam_relay_share",
            "spam_forged_local_sender_share",
            "outbound_offsite_share",
            "outbound_wrong_password_share",
        ):
            _check_range(name, getattr(self, name), 0.0, 1.0)
        aimed = self.spam_dictionary_share + self.spam_greytrap_share
        aimed += self.spam_relay_share
        if aimed > 1.0 + 1e-12:
            raise ValueError(
                f"spam_dictionary_share + spam_greytrap_share + spam_relay_share"
                f"(={aimed}) must be <= 1"
            )
        _check_range(
            "spam_retry_interval_min_s", self.spam_retry_interval_min_s, 1.0, 86400.0
        )
        _check_range(
            "spam_retry_interval_max_s",
            self.spam_retry_interval_max_s,
            self.spam_retry_interval_min_s,
            86400.0,
        )
        _check_range(
            "spam_retry_lifetime_s", self.spam_retry_lifetime_s, 0.0, 30 * 86400
        )
        _check_int("min_size_bytes", self.min_size_bytes, 800, 1_000_000)
        _check_int("max_size_bytes", self.max_size_bytes, self.min_size_bytes, 2**31)
        for kind in KINDS:
            _check_range(
                f"{kind}_size_median_bytes",
                getattr(self, f"{kind}_size_median_bytes"),
                1.0,
                1e9,
            )
            _check_range(
                f"{kind}_size_sigma", getattr(self, f"{kind}_size_sigma"), 0, 5
            )
            # numpy's zipf needs a > 1.
            _check_range(
                f"{kind}_recipients_zipf",
                getattr(self, f"{kind}_recipients_zipf"),
                1.01,
                20.0,
            )
        _check_int("max_recipients", self.max_recipients, 1, 1000)

    @classmethod
    def from_weekly(
        cls,
        legit_per_week: float = 31_000,
        spam_per_week: float = 76_000,
        outbound_per_week: float = 11_000,
        legit_profile: str | tuple[float, ...] | WeekProfile = "campus-weekday",
        spam_profile: str | tuple[float, ...] | WeekProfile = "spam-flat",
        outbound_profile: str | tuple[float, ...] | WeekProfile = "outbound-campus",
        **other: object,
    ) -> TrafficSettings:
        """Settings from messages per week, profiles by name or 168 weights."""
        for name, value in (
            ("legit_per_week", legit_per_week),
            ("spam_per_week", spam_per_week),
            ("outbound_per_week", outbound_per_week),
        ):
            _check_range(name, value, 0.0, 1000.0 * WEEK_S)
        known = {f.name for f in fields(cls)}
        for name in other:
            if name not in known or name.endswith("_rate_per_s"):
                raise ValueError(f"unknown traffic setting {name!r}")
        return cls(
            legit_rate_per_s=legit_per_week / WEEK_S,
            spam_rate_per_s=spam_per_week / WEEK_S,
            outbound_rate_per_s=outbound_per_week / WEEK_S,
            legit_profile=WeekProfile.resolve(legit_profile, "legit"),
            spam_profile=WeekProfile.resolve(spam_profile, "spam"),
            outbound_profile=WeekProfile.resolve(outbound_profile, "outbound"),
            **other,  # type: ignore[arg-type]
        )

    def per_week(self, kind: str) -> float:
        """Mean messages per week of traffic class *kind*."""
        return self._rate(kind) * WEEK_S

    def expected_count(self, kind: str, duration_s: float) -> float:
        """Mean number of *kind* arrivals in [0, duration_s)."""
        profile = getattr(self, f"{kind}_profile")
        return profile.expected_count(self._rate(kind), duration_s)

    def _rate(self, kind: str) -> float:
        if kind not in KINDS:
            raise ValueError(f"traffic class {kind!r} is not one of {KINDS}")
        return getattr(self, f"{kind}_rate_per_s")


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}(={value!r}) must be a number in [{low}, {high}]")
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{name}(={value}) must be in [{low}, {high}]")


def _check_int(name: str, value: int, low: int, high: int) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not low <= value <= high
    ):
        raise ValueError(f"{name}(={value!r}) must be an integer in [{low}, {high}]")


@dataclass(frozen=True, slots=True)
class MessageSpec:
    """One message offered to (or sent from) the system, with its ground truth.

    ``kind`` is "legit", "spam" or "outbound"; ``aim`` is "deliver" (inbound to
    users), "dictionary" (unknown users), "greytrap", "relay" (outside
    recipients from an outside client) or "send" (outbound). ``offsite`` is
    True when the client connects from outside the internal networks (all
    inbound mail, and outbound mail sent from off-site, which must
    authenticate). ``auth`` is the (username, password) an off-site client
    offers; ``bad_password`` marks a wrong one. ``source_index`` is the index
    of the sending MTA, bot or user in its pool. ``size_bytes`` is the size of
    the message as the client sends it.
    """

    msg_id: int
    kind: str
    arrival_s: float
    client_ip: str
    helo: str
    sender: str
    recipients: tuple[str, ...]
    size_bytes: int
    is_spam: bool
    retry: RetrySchedule | None
    offsite: bool
    auth: tuple[str, str] | None
    aim: str
    bad_password: bool
    source_index: int


RandomStreams = Mapping[str, np.random.Generator] | Callable[[str], np.random.Generator]


def _stream_getter(rngs: RandomStreams) -> Callable[[str], np.random.Generator]:
    if callable(rngs) and not isinstance(rngs, Mapping):
        return rngs

    def lookup(name: str) -> np.random.Generator:
        try:
            return rngs[name]
        except KeyError:
            raise ValueError(f"random stream {name!r} missing from rngs") from None

    return lookup


def stream_names() -> tuple[str, ...]:
    """Names of the random streams ``generate`` asks for."""
    return tuple(
        f"traffic.{kind}.{purpose}"
        for kind in KINDS
        for purpose in ("pool", "arrivals", "attributes")
    )


# --- names, domains, addresses --------------------------------------------


def _syllable_name(index: int, salt: int) -> str:
    n = len(_SYLLABLES)
    mixed = (index * 2654435761 + salt * 40503) % 4294967296
    parts = 2 + (mixed >> 30) % 2
    text = ""
    for _ in range(parts):
        text += _SYLLABLES[mixed % n]
        mixed //= n
    return text


def legit_domain(index: int) -> str:
    """Domain of legit MTA *index* (a label: syllables, a running number)."""
    n = len(_SYLLABLES)
    name = _SYLLABLES[index % n] + _SYLLABLES[(index // n) % n]
    if index >= n * n:
        name += _SYLLABLES[(index // (n * n)) % n]
    if index >= n * n * n:
        name += str(index // (n * n * n))
    return f"{name}.{_LEGIT_TLDS[(index * 7) % len(_LEGIT_TLDS)]}"


def _spam_domain(index: int) -> str:
    word = _SPAM_WORDS[(index * 13) % len(_SPAM_WORDS)]
    sep = "-" if index % 3 == 0 else ""
    tld = _SPAM_TLDS[(index * 5) % len(_SPAM_TLDS)]
    return f"{_syllable_name(index, 7)}{sep}{word}.{tld}"


def _legit_local(index: int) -> str:
    first = FIRST_NAMES[index % len(FIRST_NAMES)]
    surname = SURNAMES[(index * 7) % len(SURNAMES)]
    style = (index // len(FIRST_NAMES)) % 3
    if style == 0:
        return f"{first}.{surname}"
    if style == 1:
        return f"{first[0]}{surname}"
    return f"{first}{surname[0]}"


def _spam_local(index: int) -> str:
    style = index % 4
    if style == 0:
        return _syllable_name(index, 3) + str(index % 97)
    if style == 1:
        return f"{FIRST_NAMES[index % len(FIRST_NAMES)]}.{_syllable_name(index, 5)}"
    if style == 2:
        return _ROLE_LOCALS[index % len(_ROLE_LOCALS)] + str(index % 1000)
    return _syllable_name(index, 11)


def _dictionary_locals(population: Population) -> tuple[str, ...]:
    """Guessable local parts that are not users or greytraps."""
    candidates = list(_ROLE_LOCALS) + list(FIRST_NAMES)
    candidates += [f"{first}.{surname}" for first in FIRST_NAMES[:20] for surname in
                   SURNAMES[:40]]  # fmt: skip
    candidates += [f"{first[0]}{surname}"[:8] for first in FIRST_NAMES for surname in
                   SURNAMES[:30]]  # fmt: skip
    traps = {address.split("@", 1)[0] for address in population.greytraps}
    seen: set[str] = set()
    result = []
    for local in candidates:
        if local not in seen and local not in traps and not population.is_user(local):
            seen.add(local)
            result.append(local)
    return tuple(result)


def _ip_strings(values: np.ndarray) -> list[str]:
    a = (values >> 24).tolist()
    b = ((values >> 16) & 0xFF).tolist()
    c = ((values >> 8) & 0xFF).tolist()
    d = (values & 0xFF).tolist()
    return [f"{w}.{x}.{y}.{z}" for w, x, y, z in zip(a, b, c, d, strict=True)]


def _outside_ipv4(
    rng: np.random.Generator, count: int, excluded: tuple[str, ...]
) -> np.ndarray:
    """*count* public-looking IPv4 addresses (uint32) outside *excluded* nets."""
    nets = [ipaddress.ip_network(text) for text in excluded]
    masks = [(int(net.netmask), int(net.network_address)) for net in nets]

    def draw(n: int) -> np.ndarray:
        first = _PUBLIC_FIRST_OCTETS[rng.integers(0, len(_PUBLIC_FIRST_OCTETS), n)]
        rest = rng.integers(0, 1 << 24, n, dtype=np.uint32)
        rest = (rest & np.uint32(0xFFFF00)) | (rest % np.uint32(254) + np.uint32(1))
        return (first << np.uint32(24)) | rest

    values = draw(count)
    for _ in range(100):
        bad = np.zeros(count, dtype=bool)
        for mask, net in masks:
            bad |= (values & np.uint32(mask)) == np.uint32(net)
        n_bad = int(bad.sum())
        if not n_bad:
            return values
        values[bad] = draw(n_bad)
    raise ValueError(f"internal_networks {excluded} leave no room for outside hosts")


def _zipf_cumulative(count: int, exponent: float) -> np.ndarray:
    weights = np.arange(1, count + 1, dtype=np.float64) ** -exponent
    cumulative = np.cumsum(weights)
    cumulative /= cumulative[-1]
    return cumulative


def _pick(cumulative: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    picked = np.searchsorted(cumulative, uniforms, side="right")
    np.minimum(picked, len(cumulative) - 1, out=picked)
    return picked


def _sizes(
    rng: np.random.Generator,
    count: int,
    median: float,
    sigma: float,
    settings: TrafficSettings,
) -> list[int]:
    sizes = rng.lognormal(math.log(median), sigma, count)
    np.clip(sizes, settings.min_size_bytes, settings.max_size_bytes, out=sizes)
    return np.rint(sizes).astype(np.int64).tolist()


def _recipient_counts(
    rng: np.random.Generator, count: int, exponent: float, cap: int
) -> np.ndarray:
    counts = rng.zipf(exponent, count)
    np.minimum(counts, cap, out=counts)
    return counts


def _unique(addresses: list[str]) -> tuple[str, ...]:
    if len(addresses) == 1:
        return (addresses[0],)
    return tuple(dict.fromkeys(addresses))


# --- the three sources -----------------------------------------------------


class _LegitSource:
    """Inbound mail from legitimate MTAs."""

    def __init__(self, settings: TrafficSettings, population: Population, stream):
        self.settings = settings
        self.population = population
        pool_rng = stream("traffic.legit.pool")
        self.arrivals = stream("traffic.legit.arrivals")
        self.attributes = stream("traffic.legit.attributes")
        count = settings.legit_mta_count
        self.domains = [legit_domain(i) for i in range(count)]
        ips = _outside_ipv4(pool_rng, count, population.internal_networks)
        self.ips = _ip_strings(ips)
        prefixes = ("mail", "smtp", "mx1", "mailhost", "mx", "relay")
        self.helos = [
            f"{prefixes[(i * 5) % len(prefixes)]}.{domain}"
            for i, domain in enumerate(self.domains)
        ]
        self.cumulative = _zipf_cumulative(count, settings.legit_mta_zipf)
        kind_u = pool_rng.random(count).tolist()
        phase_u = pool_rng.random(count).tolist()
        interval_minutes = pool_rng.integers(
            int(SENDMAIL_QUEUE_INTERVAL_MIN_S // 60),
            int(SENDMAIL_QUEUE_INTERVAL_MAX_S // 60) + 1,
            count,
        ).tolist()
        share_24, share_23, _ = settings.legit_retry_mix
        policies: list[RetryPolicy] = []
        for u, phase, minutes in zip(kind_u, phase_u, interval_minutes, strict=True):
            if u < share_24:
                policy = postfix_policy(phase * POSTFIX_QUEUE_RUN_DELAY_S)
            elif u < share_24 + share_23:
                policy = postfix_pre24_policy(phase * POSTFIX_PRE24_QUEUE_RUN_DELAY_S)
            else:
                policy = sendmail_policy(minutes * 60.0, phase * minutes * 60.0)
            policies.append(policy)
        self.policies = policies
        self.sender_locals = [_legit_local(i) for i in range(_LEGIT_SENDER_LOCALS)]
        self.sender_cumulative = _zipf_cumulative(
            _LEGIT_SENDER_LOCALS, _LEGIT_SENDER_ZIPF
        )

    def hour(self, hour_index: int, span_s: float) -> tuple[np.ndarray, list]:
        settings = self.settings
        times = arrival_times(
            settings.legit_profile,
            settings.legit_rate_per_s,
            hour_index,
            span_s,
            self.arrivals,
        )
        n = len(times)
        rng = self.attributes
        mtas = _pick(self.cumulative, rng.random(n)).tolist()
        locals_ = _pick(self.sender_cumulative, rng.random(n)).tolist()
        sizes = _sizes(
            rng,
            n,
            settings.legit_size_median_bytes,
            settings.legit_size_sigma,
            settings,
        )
        counts = _recipient_counts(
            rng, n, settings.legit_recipients_zipf, settings.max_recipients
        )
        users = self.population.pick_users(rng.random(int(counts.sum()))).tolist()
        addresses = self.population.addresses
        rows = []
        start = 0
        for t, mta, local, size, k in zip(
            times.tolist(), mtas, locals_, sizes, counts.tolist(), strict=True
        ):
            if k == 1:
                recipients: tuple[str, ...] = (addresses[users[start]],)
            else:
                recipients = _unique([addresses[u] for u in users[start : start + k]])
            start += k
            rows.append(
                (
                    "legit",
                    t,
                    self.ips[mta],
                    self.helos[mta],
                    f"{self.sender_locals[local]}@{self.domains[mta]}",
                    recipients,
                    size,
                    False,
                    RetrySchedule(self.policies[mta], t),
                    True,
                    None,
                    "deliver",
                    False,
                    mta,
                )
            )
        return times, rows


class _SpamSource:
    """Unsolicited mail offered by bots."""

    def __init__(
        self,
        settings: TrafficSettings,
        population: Population,
        stream,
        legit: _LegitSource,
    ):
        self.settings = settings
        self.population = population
        self.legit = legit
        pool_rng = stream("traffic.spam.pool")
        self.arrivals = stream("traffic.spam.arrivals")
        self.attributes = stream("traffic.spam.attributes")
        count = settings.spam_bot_count
        values = _outside_ipv4(pool_rng, count, population.internal_networks)
        self.ips = _ip_strings(values)
        helo_u = pool_rng.random(count).tolist()
        retry_u = pool_rng.random(count).tolist()
        interval_u = pool_rng.random(count).tolist()
        helos = []
        policies: list[RetryPolicy | None] = []
        low = settings.spam_retry_interval_min_s
        span = settings.spam_retry_interval_max_s - low
        isps = [legit_domain(k * 97 + 11) for k in range(_ISP_DOMAINS)]
        for i, (ip, hu, ru, iu) in enumerate(
            zip(self.ips, helo_u, retry_u, interval_u, strict=True)
        ):
            if hu < 0.3:  # an address literal
                helo = f"[{ip}]"
            elif hu < 0.7:  # the bot's dynamic reverse-DNS name
                isp = isps[int(hu * 1e6) % _ISP_DOMAINS]
                word = _ISP_WORDS[i % len(_ISP_WORDS)]
                helo = f"{word}-{ip.replace('.', '-')}.{isp}"
            elif hu < 0.85:  # a made-up word
                helo = _syllable_name(i, 13)
            else:  # a forged well-known-looking domain
                helo = isps[i % 50]
            helos.append(helo)
            if ru < settings.spam_retry_share:
                interval = low + span * iu
                policies.append(
                    spamware_policy(interval, settings.spam_retry_lifetime_s)
                )
            else:
                policies.append(None)
        self.helos = helos
        self.policies = policies
        self.dictionary = _dictionary_locals(population)
        self.spam_locals = [_spam_local(i) for i in range(_SPAM_SENDER_LOCALS)]
        self.spam_domains = [_spam_domain(i) for i in range(_SPAM_DOMAINS)]

    def hour(self, hour_index: int, span_s: float) -> tuple[np.ndarray, list]:
        settings = self.settings
        population = self.population
        legit = self.legit
        times = arrival_times(
            settings.spam_profile,
            settings.spam_rate_per_s,
            hour_index,
            span_s,
            self.arrivals,
        )
        n = len(times)
        rng = self.attributes
        bots = rng.integers(0, settings.spam_bot_count, n).tolist()
        aim_u = rng.random(n).tolist()
        sender_u = rng.random(n).tolist()
        sender_local = rng.integers(0, _SPAM_SENDER_LOCALS, n).tolist()
        sender_domain = rng.integers(0, _SPAM_DOMAINS, n).tolist()
        sender_mta = _pick(legit.cumulative, rng.random(n)).tolist()
        sender_user = rng.integers(0, len(population), n).tolist()
        trap_index = rng.integers(0, max(1, len(population.greytraps)), n).tolist()
        sizes = _sizes(
            rng, n, settings.spam_size_median_bytes, settings.spam_size_sigma, settings
        )
        counts = _recipient_counts(
            rng, n, settings.spam_recipients_zipf, settings.max_recipients
        )
        total = int(counts.sum())
        users = population.pick_users(rng.random(total)).tolist()
        guesses = rng.integers(0, len(self.dictionary), total).tolist()
        hits = (rng.random(total) < _DICTIONARY_HIT_SHARE).tolist()
        outside_mta = _pick(legit.cumulative, rng.random(total)).tolist()
        outside_local = rng.integers(0, _LEGIT_SENDER_LOCALS, total).tolist()

        addresses = population.addresses
        domain = population.local_domain
        traps = population.greytraps
        # Aim by a uniform: [0, d) dictionary, [d, d + g) greytrap (users if
        # there are no traps), [d + g, d + g + r) relay, the rest users.
        dictionary_at = settings.spam_dictionary_share
        relay_from = dictionary_at + settings.spam_greytrap_share
        trap_at = relay_from if traps else dictionary_at
        relay_at = relay_from + settings.spam_relay_share
        local_sender_at = settings.spam_forged_local_sender_share
        legit_sender_at = local_sender_at + _SPAM_FORGED_LEGIT_DOMAIN_SHARE
        rows = []
        start = 0
        for i, (t, bot, size, k) in enumerate(
            zip(times.tolist(), bots, sizes, counts.tolist(), strict=True)
        ):
            end = start + k
            u = aim_u[i]
            if u < dictionary_at:
                aim = "dictionary"  # the first guess misses, later ones may hit
                recipients = _unique(
                    [
                        addresses[users[j]] if hits[j] and j > start else
                        f"{self.dictionary[guesses[j]]}@{domain}"
                        for j in range(start, end)
                    ]
                )  # fmt: skip
            elif u < trap_at:
                aim = "greytrap"
                recipients = _unique(
                    [traps[trap_index[i]]]
                    + [addresses[users[j]] for j in range(start + 1, end)]
                )
            elif relay_from <= u < relay_at:
                aim = "relay"
                recipients = _unique(
                    [
                        f"{legit.sender_locals[outside_local[j]]}@"
                        f"{legit.domains[outside_mta[j]]}"
                        for j in range(start, end)
                    ]
                )
            else:
                aim = "deliver"
                if k == 1:
                    recipients = (addresses[users[start]],)
                else:
                    recipients = _unique(
                        [addresses[users[j]] for j in range(start, end)]
                    )
            start = end
            su = sender_u[i]
            if su < local_sender_at:
                sender = addresses[sender_user[i]]
            elif su < legit_sender_at:
                sender = (
                    f"{self.spam_locals[sender_local[i]]}@"
                    f"{legit.domains[sender_mta[i]]}"
                )
            else:
                sender = (
                    f"{self.spam_locals[sender_local[i]]}@"
                    f"{self.spam_domains[sender_domain[i]]}"
                )
            policy = self.policies[bot]
            rows.append(
                (
                    "spam",
                    t,
                    self.ips[bot],
                    self.helos[bot],
                    sender,
                    recipients,
                    size,
                    True,
                    None if policy is None else RetrySchedule(policy, t),
                    True,
                    None,
                    aim,
                    False,
                    bot,
                )
            )
        return times, rows


class _OutboundSource:
    """Mail the users send, on-site (trusted network) or off-site (SASL)."""

    def __init__(
        self,
        settings: TrafficSettings,
        population: Population,
        stream,
        legit: _LegitSource,
    ):
        self.settings = settings
        self.population = population
        self.legit = legit
        pool_rng = stream("traffic.outbound.pool")
        self.arrivals = stream("traffic.outbound.arrivals")
        self.attributes = stream("traffic.outbound.attributes")
        # Each user's home connection (a residential address, kept all week).
        homes = _outside_ipv4(pool_rng, len(population), population.internal_networks)
        self.home_ips = _ip_strings(homes)
        domain = population.local_domain
        self.onsite_helos = [f"{name}-pc.{domain}" for name in population.usernames]
        self.offsite_helos = [f"{name}-home" for name in population.usernames]

    def hour(self, hour_index: int, span_s: float) -> tuple[np.ndarray, list]:
        settings = self.settings
        population = self.population
        legit = self.legit
        times = arrival_times(
            settings.outbound_profile,
            settings.outbound_rate_per_s,
            hour_index,
            span_s,
            self.arrivals,
        )
        n = len(times)
        rng = self.attributes
        senders = population.pick_users(rng.random(n)).tolist()
        offsite_u = rng.random(n).tolist()
        wrong_u = rng.random(n).tolist()
        sizes = _sizes(
            rng,
            n,
            settings.outbound_size_median_bytes,
            settings.outbound_size_sigma,
            settings,
        )
        counts = _recipient_counts(
            rng, n, settings.outbound_recipients_zipf, settings.max_recipients
        )
        total = int(counts.sum())
        outside_mta = _pick(legit.cumulative, rng.random(total)).tolist()
        outside_local = rng.integers(0, _LEGIT_SENDER_LOCALS, total).tolist()
        sender_locals = legit.sender_locals
        domains = legit.domains
        offsite_at = settings.outbound_offsite_share
        wrong_at = settings.outbound_wrong_password_share
        rows = []
        start = 0
        for i, (t, user, size, k) in enumerate(
            zip(times.tolist(), senders, sizes, counts.tolist(), strict=True)
        ):
            end = start + k
            recipients = _unique(
                [
                    f"{sender_locals[outside_local[j]]}@{domains[outside_mta[j]]}"
                    for j in range(start, end)
                ]
            )
            start = end
            offsite = offsite_u[i] < offsite_at
            bad = offsite and wrong_u[i] < wrong_at
            if offsite:
                name = population.usernames[user]
                password = population.passwords[user]
                if bad:  # a stale or mistyped password: last character changed
                    password = password[:-1] + ("x" if password[-1] != "x" else "y")
                auth: tuple[str, str] | None = (name, password)
                ip = self.home_ips[user]
                helo = self.offsite_helos[user]
            else:
                auth = None
                ip = population.workstation_ips[user]
                helo = self.onsite_helos[user]
            rows.append(
                (
                    "outbound",
                    t,
                    ip,
                    helo,
                    population.addresses[user],
                    recipients,
                    size,
                    False,
                    None,
                    offsite,
                    auth,
                    "send",
                    bad,
                    user,
                )
            )
        return times, rows


def generate(
    settings: TrafficSettings,
    population: Population,
    duration_s: float,
    rngs: RandomStreams,
) -> Iterator[MessageSpec]:
    """Message specs arriving in [0, duration_s), lazily, in arrival order.

    *rngs* maps stream names (``stream_names()``) to Generators, or is a
    callable ``stream(name) -> Generator``. ``msg_id`` counts from 1.
    """
    if not (isinstance(duration_s, (int, float)) and math.isfinite(duration_s)):
        raise ValueError(f"duration_s(={duration_s!r}) must be a finite number > 0")
    if duration_s <= 0:
        raise ValueError(f"duration_s(={duration_s}) must be > 0")
    stream = _stream_getter(rngs)
    return _generate(settings, population, float(duration_s), stream)


def _generate(
    settings: TrafficSettings,
    population: Population,
    duration_s: float,
    stream: Callable[[str], np.random.Generator],
) -> Iterator[MessageSpec]:
    legit = _LegitSource(settings, population, stream)
    spam = _SpamSource(settings, population, stream, legit)
    outbound = _OutboundSource(settings, population, stream, legit)
    sources = (legit, spam, outbound)
    hours = math.ceil(duration_s / HOUR_S)
    msg_id = 1
    spec = MessageSpec
    for hour_index in range(hours):
        span = min(HOUR_S, duration_s - hour_index * HOUR_S)
        batches = [source.hour(hour_index, span) for source in sources]
        rows = batches[0][1] + batches[1][1] + batches[2][1]
        if not rows:
            continue
        times = np.concatenate([batch[0] for batch in batches])
        for j in np.argsort(times, kind="stable").tolist():
            yield spec(msg_id, *rows[j])
            msg_id += 1
