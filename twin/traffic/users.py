"""The users reading mail: mailbox sizes, clients, working hours, session arrivals.

Twins the access side of the ECE mail system (DESIGN.md: over 1,400 users
reading mail, ``traffic.users.imap_share`` 0.8): what each user's mailbox holds
at the start of the week, which protocol and client they use, when their
client runs, and what a session does. Every number is a documented,
overridable default in ``ReadingSettings``; none is confirmed by FACTS.md, so
each is marked as the assumption it is.

Per user (``draw_profiles``, one vector draw per field, so changing one share
leaves the other fields' draws unchanged):

- mailbox at the start of the week: message count lognormal (median 800,
  sigma 1.5: mean ~2,500, 1 % of users over 26,000 messages), message sizes
  lognormal (median 6 KB, sigma 1.69 as the inbound legit mail of
  ``twin.traffic.workload``, mean ~25 KB) with a per-user median factor
  (lognormal, sigma 0.5: some users keep attachments). The product is heavy
  tailed: a few users of 1,400 keep a gigabyte or more; the department total
  is ~85 GB (assumption; the PE1750's 14 x 73 GB RAID 5 array held users and
  web). POP3 users who delete after download keep only the mail that arrived
  since their last download (Poisson, mean ``pop3_waiting_mean``).
- protocol: IMAP with probability ``imap_share`` (0.8, DESIGN.md), else POP3;
  ``idle_share`` of IMAP users stay connected with IDLE, the others poll every
  ``imap_poll_interval_s`` (600 s: Thunderbird's "check for new messages every
  10 minutes" default); POP3 clients poll every ``pop3_poll_interval_s``
  (1800 s: Outlook Express's 30-minute default) and ``pop3_keep_share`` of
  them leave mail on the server.
- working day: the client runs from a start hour (normal, mean 8.5 h, sd 1 h)
  for a length (normal, mean 8.5 h, sd 1.5 h), each day jittered (sd 0.5 h);
  ``all_day_share`` of users leave it running around the clock.
- habits: shares of new mail read at once, of older unread mail read per
  session, of read mail deleted and moved to a folder (Beta around the means).

Per day (``session_arrivals``): a user's client runs on a weekday with
probability ``weekday_active_share`` and on a weekend day with
``weekend_active_share``, for ``weekend_length_factor`` of the usual window;
on ``evening_share`` of days they also check mail for ``evening_length_h`` in
the evening (19:00-23:00 start). Each window starts with an "open" session
(client start: LIST, full sync), then "poll" sessions every interval; IDLE
users get one "idle" session lasting the window. Sessions are generated a day
at a time with numpy and yielded in start order (memory does not grow with
the span). Day 0 is a Monday, as in ``twin.traffic.profile``.

Scenario keys read (through ``twin.scenario``): ``traffic.users.*``.

Raises ``ValueError`` for a bad setting (naming the field and the allowed
range) or a non-positive duration.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, fields

import numpy as np

from twin.traffic.population import Population

DAY_S = 86_400.0
HOUR_S = 3_600.0
PROTOCOLS = ("imap", "pop3")
KINDS = ("open", "poll", "idle")
MESSAGE_SIZE_LIMIT_BYTES = 10_240_000  # Postfix message_size_limit default


@dataclass(frozen=True, slots=True)
class ReadingSettings:
    """How users keep and read mail; all defaults are assumptions (see module)."""

    # -- mailboxes at the start of the week --
    mailbox_messages_median: float = 800.0
    mailbox_messages_sigma: float = 1.5
    mailbox_messages_max: int = 200_000
    message_size_median_bytes: float = 6000.0  # as workload legit mail
    message_size_sigma: float = 1.69  # as workload legit mail
    user_size_sigma: float = 0.5  # per-user factor on the size median
    min_size_bytes: int = 800  # workload min_size_bytes
    max_size_bytes: int = MESSAGE_SIZE_LIMIT_BYTES
    unread_share: float = 0.03  # of kept messages still unread (newest first)
    history_days: float = 730.0  # kept mail spans the last two years
    pop3_waiting_mean: float = 2.0  # mail waiting for a POP3 user who deletes
    mailbox_scale: float = 1.0  # multiplies message counts (tests: 0.001)
    # -- protocols and clients --
    imap_share: float = 0.8  # DESIGN.md traffic.users.imap_share
    idle_share: float = 0.2  # of IMAP users
    pop3_keep_share: float = 0.3  # of POP3 users: leave mail on the server
    imap_poll_interval_s: float = 600.0  # Thunderbird: every 10 minutes
    pop3_poll_interval_s: float = 1800.0  # Outlook Express: every 30 minutes
    # -- when clients run (hours of the local day) --
    workday_start_mean_h: float = 8.5
    workday_start_sd_h: float = 1.0
    workday_length_mean_h: float = 8.5
    workday_length_sd_h: float = 1.5
    daily_jitter_sd_h: float = 0.5
    all_day_share: float = 0.1
    weekday_active_share: float = 0.95
    weekend_active_share: float = 0.3
    weekend_length_factor: float = 0.4
    evening_share: float = 0.2
    evening_length_h: float = 1.0
    # -- what a session does (means of per-user Beta habits) --
    read_now_mean: float = 0.6  # of new messages, body fetched at once
    backlog_read_mean: float = 0.2  # of older unread messages, per session
    delete_mean: float = 0.3  # of messages read, deleted
    move_mean: float = 0.1  # of messages read, moved to move_folder
    habit_concentration: float = 4.0  # Beta a + b: smaller spreads users more
    move_folder: str = "Archive"
    # Flags re-read per session: 0 = every known message, as Thunderbird 2 does
    # on SELECT; N = only the newest N known UIDs (a cheaper, cache-minded client).
    flag_sync_messages: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "move_folder":
                if not value or not value.isalnum() or not value.isascii():
                    raise ValueError(
                        f"move_folder(={value!r}) must be ASCII letters and digits"
                    )
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                not math.isfinite(value)
            ):
                raise ValueError(f"{f.name}(={value!r}) must be a finite number")
            if f.name.endswith(("_share", "_factor")) or f.name in (
                "read_now_mean", "backlog_read_mean", "delete_mean", "move_mean"
            ):
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"{f.name}(={value}) must be in [0, 1]")
            elif value < 0:
                raise ValueError(f"{f.name}(={value}) must be >= 0")
        for name in ("mailbox_messages_max", "flag_sync_messages", "min_size_bytes",
                     "max_size_bytes"):
            if not isinstance(getattr(self, name), int):
                raise ValueError(f"{name}(={getattr(self, name)!r}) must be an integer")
        if self.delete_mean + self.move_mean > 1.0:
            raise ValueError(
                f"delete_mean(={self.delete_mean}) + move_mean(={self.move_mean}) "
                "must be <= 1"
            )
        for name in ("imap_poll_interval_s", "pop3_poll_interval_s"):
            value = getattr(self, name)
            if not 60.0 <= value <= DAY_S:
                raise ValueError(f"{name}(={value}) must be in [60, 86400]")
        if not 1 <= self.min_size_bytes <= self.max_size_bytes:
            raise ValueError(
                f"min_size_bytes(={self.min_size_bytes}) must be in "
                f"[1, max_size_bytes(={self.max_size_bytes})]"
            )
        if self.min_size_bytes < 600:
            raise ValueError(f"min_size_bytes(={self.min_size_bytes}) must be >= 600")
        if self.message_size_median_bytes <= 0 or self.mailbox_messages_median <= 0:
            raise ValueError("message_size_median_bytes and mailbox_messages_median "
                             "must be > 0")
        if not 0.0 < self.mailbox_scale <= 1.0:
            raise ValueError(f"mailbox_scale(={self.mailbox_scale}) must be in (0, 1]")
        if not 0.0 < self.habit_concentration <= 1e6:
            raise ValueError(
                f"habit_concentration(={self.habit_concentration}) must be in (0, 1e6]"
            )
        if not 0.0 < self.evening_length_h <= 5.0:
            raise ValueError(
                f"evening_length_h(={self.evening_length_h}) must be in (0, 5]"
            )


@dataclass(frozen=True, slots=True)
class UserProfiles:
    """Per-user draws, arrays indexed like ``Population.usernames``."""

    imap: np.ndarray  # bool: IMAP (else POP3)
    idle: np.ndarray  # bool: IMAP client stays connected with IDLE
    keep_on_server: np.ndarray  # bool: POP3 client leaves mail on the server
    all_day: np.ndarray  # bool: client runs around the clock
    start_h: np.ndarray  # usual start of the working window, hours
    length_h: np.ndarray  # usual length of the working window, hours
    read_now: np.ndarray  # share of new messages read at once
    backlog_read: np.ndarray  # share of older unread messages read per session
    delete: np.ndarray  # share of read messages deleted
    move: np.ndarray  # share of read messages moved
    mailbox_messages: np.ndarray  # int: messages at the start of the week (unscaled)
    size_median_bytes: np.ndarray  # the user's message size median

    def protocol(self, user: int) -> str:
        return "imap" if self.imap[user] else "pop3"


def _beta(rng: np.random.Generator, mean: float, concentration: float,
          n: int) -> np.ndarray:
    if mean <= 0.0 or mean >= 1.0:
        rng.random(n)  # keep the draw count fixed
        return np.full(n, mean)
    return rng.beta(mean * concentration, (1.0 - mean) * concentration, n)


def draw_profiles(settings: ReadingSettings, population: Population,
                  rng: np.random.Generator) -> UserProfiles:
    """Every user's protocol, client, working window, habits and mailbox size."""
    n = len(population)
    s = settings
    imap = rng.random(n) < s.imap_share
    idle = imap & (rng.random(n) < s.idle_share)
    keep = ~imap & (rng.random(n) < s.pop3_keep_share)
    all_day = rng.random(n) < s.all_day_share
    start = np.clip(rng.normal(s.workday_start_mean_h, s.workday_start_sd_h, n),
                    5.0, 14.0)
    length = np.clip(rng.normal(s.workday_length_mean_h, s.workday_length_sd_h, n),
                     1.0, 16.0)
    c = s.habit_concentration
    read_now = _beta(rng, s.read_now_mean, c, n)
    backlog = _beta(rng, s.backlog_read_mean, c, n)
    delete = _beta(rng, s.delete_mean, c, n)
    move = np.minimum(_beta(rng, s.move_mean, c, n), 1.0 - delete)
    counts = np.exp(rng.normal(math.log(s.mailbox_messages_median),
                               s.mailbox_messages_sigma, n))
    counts = np.minimum(np.rint(counts), s.mailbox_messages_max).astype(np.int64)
    waiting = rng.poisson(s.pop3_waiting_mean, n)
    counts = np.where(~imap & ~keep, waiting, counts)
    medians = s.message_size_median_bytes * np.exp(rng.normal(0.0, s.user_size_sigma,
                                                              n))
    return UserProfiles(imap, idle, keep, all_day, start, length, read_now, backlog,
                        delete, move, counts, medians)


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """One client session, with the decisions drawn up front.

    ``kind`` is "open" (the client starts: list folders, full sync), "poll"
    (a timed check) or "idle" (an IMAP connection held ``duration_s`` with
    IDLE). ``read_share`` is the share of new messages whose body is fetched,
    ``backlog_share`` the share of older unread ones read now, ``delete_share``
    / ``move_share`` the shares of read messages deleted / moved to
    ``move_folder``. ``keep_on_server``: a POP3 client that does not DELE.
    ``flag_sync_messages``: how many of the newest known messages get their
    flags re-read (0: all).
    """

    session_id: int
    user: str
    password: str
    protocol: str
    start_s: float
    kind: str
    duration_s: float
    read_share: float
    backlog_share: float
    delete_share: float
    move_share: float
    keep_on_server: bool
    move_folder: str
    user_index: int
    flag_sync_messages: int = 0


def session_arrivals(settings: ReadingSettings, population: Population,
                     duration_s: float, rng: np.random.Generator,
                     profiles: UserProfiles | None = None) -> Iterator[SessionSpec]:
    """Client sessions starting in [0, duration_s), lazily, in start order.

    Without *profiles* they are drawn first from *rng* (``draw_profiles``);
    pass the same profiles to ``twin.traffic.mailboxes.populate`` so the
    mailboxes match. Each day then makes a fixed number of draws per user.
    ``session_id`` counts from 1.
    """
    if isinstance(duration_s, bool) or not isinstance(duration_s, (int, float)) or (
        not math.isfinite(duration_s) or duration_s <= 0
    ):
        raise ValueError(f"duration_s(={duration_s!r}) must be a finite number > 0")
    if profiles is None:
        profiles = draw_profiles(settings, population, rng)
    elif len(profiles.imap) != len(population):
        raise ValueError(
            f"profiles cover {len(profiles.imap)} users, population has "
            f"{len(population)}"
        )
    return _arrivals(settings, population, float(duration_s), rng, profiles)


def _day_windows(s: ReadingSettings, p: UserProfiles, day: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user, start_s, end_s) of the client windows of *day*."""
    n = len(p.imap)
    weekend = day % 7 >= 5
    active_u = rng.random(n)
    jitter = rng.normal(0.0, s.daily_jitter_sd_h, (2, n))
    evening_u = rng.random((2, n))
    active = active_u < (s.weekend_active_share if weekend else s.weekday_active_share)
    length = p.length_h * (s.weekend_length_factor if weekend else 1.0)
    start = np.clip(p.start_h + jitter[0], 0.0, 23.5)
    end = np.clip(start + np.maximum(length + jitter[1], 0.25), 0.0, 24.0)
    start = np.where(p.all_day, 0.0, start)
    end = np.where(p.all_day, 24.0, end)
    active |= p.all_day
    evening = (evening_u[0] < s.evening_share) & ~p.all_day
    e_start = 19.0 + 4.0 * evening_u[1]
    e_end = np.minimum(e_start + s.evening_length_h, 24.0)
    evening &= ~active | (end < e_start)  # a client still running needs no restart
    users = np.concatenate([np.flatnonzero(active), np.flatnonzero(evening)])
    starts = np.concatenate([start[active], e_start[evening]])
    ends = np.concatenate([end[active], e_end[evening]])
    base = day * DAY_S
    return users, base + starts * HOUR_S, base + ends * HOUR_S


def _arrivals(s: ReadingSettings, population: Population, duration_s: float,
              rng: np.random.Generator, p: UserProfiles) -> Iterator[SessionSpec]:
    interval = np.where(p.imap, s.imap_poll_interval_s, s.pop3_poll_interval_s)
    names, passwords = population.usernames, population.passwords
    protocol = ["imap" if x else "pop3" for x in p.imap.tolist()]
    read_now, backlog = p.read_now.tolist(), p.backlog_read.tolist()
    delete, move = p.delete.tolist(), p.move.tolist()
    keep = p.keep_on_server.tolist()
    folder, window = s.move_folder, s.flag_sync_messages
    session_id = 1
    spec = SessionSpec
    for day in range(math.ceil(duration_s / DAY_S)):
        users, starts, ends = _day_windows(s, p, day, rng)
        idle = p.idle[users]
        # Polling clients: an "open" at the window start, then one per interval.
        poll_users, poll_starts = users[~idle], starts[~idle]
        step = interval[poll_users]
        counts = np.ceil((ends[~idle] - poll_starts) / step).astype(np.int64)
        counts = np.maximum(counts, 1)
        row = np.repeat(np.arange(len(poll_users)), counts)
        k = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        times = poll_starts[row] + k * step[row]
        who = poll_users[row]
        first = k == 0
        durations = np.zeros(len(times))
        # IDLE clients: one connection held for the window.
        idle_users, idle_starts = users[idle], starts[idle]
        idle_len = np.minimum(ends[idle], duration_s) - idle_starts
        times = np.concatenate([times, idle_starts])
        who = np.concatenate([who, idle_users])
        kinds = np.concatenate([np.where(first, 0, 1), np.full(len(idle_users), 2)])
        durations = np.concatenate([durations, idle_len])
        keep_rows = times < duration_s
        order = np.argsort(times[keep_rows], kind="stable")
        times = times[keep_rows][order].tolist()
        who = who[keep_rows][order].tolist()
        kinds = kinds[keep_rows][order].tolist()
        durations = durations[keep_rows][order].tolist()
        for t, u, kind, held in zip(times, who, kinds, durations, strict=True):
            yield spec(session_id, names[u], passwords[u], protocol[u], t,
                       KINDS[kind], held, read_now[u], backlog[u], delete[u],
                       move[u], keep[u], folder, u, window)
            session_id += 1
