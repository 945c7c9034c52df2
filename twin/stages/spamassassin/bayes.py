"""Bayes: SpamAssassin's naive-Bayes classifier (Mail::SpamAssassin::Bayes).

Tokenizer: the rendered visible body text and the headers (each header's tokens
prefixed ``H<name>:``; the ``bayes_ignore_header`` list and the spam filter's
own ``X-Spam-*`` headers are left out).  Octets other than
``-A-Za-z0-9,@*!_'"$.`` and 0xA1-0xFF become spaces, ``...``/``--`` runs are
split off, leading and trailing ``-'".,`` are trimmed, tokens under 3 octets and
the stop list are dropped, body words with an ``@`` or a dot-letter also yield
``UD:`` domain tokens, and tokens longer than 15 octets become ``sk:`` plus
their first 7 octets (FACTS.md "SpamAssassin": token length 15).  A message
counts each token once.

Classifier (FACTS.md "SpamAssassin"): per token p = (s/ns)/(n/nn + s/ns),
Robinson smoothing p = (S*X + N*p)/(S + N) with X = 0.538, S = 0.100
(3.1; 0.030 in 3.2), N = s + n; tokens with |p - 0.5| >= 0.346 are
significant and at most the 150 strongest are combined with chi-squared
combining: S' = 1 - chi2q(-2 ln prod(1-p), 2n), H' = 1 - chi2q(-2 ln prod p, 2n),
result ((S' - H') + 1)/2.  No probability until 200 spam and 200 ham were
learned (``None``, so no BAYES_xx rule hits).

The token database is a JSON file (format ``mailtwin-bayes-1``): message
counts, token -> [spam, ham] counts, and the digests of learned messages so a
message is not learned twice.  ``BayesDB.load`` raises ``ValueError`` for a file
of another format.  Counts tokens looked up and tokens learned.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections import deque
from dataclasses import dataclass, field
from itertools import accumulate, chain
from operator import add, mul
from pathlib import Path

from twin.stages.spamassassin.message import ParsedMessage

__all__ = [
    "BayesDB",
    "BayesVerdict",
    "chi2q",
    "chi_squared_combine",
    "robinson_probability",
    "tokenize",
]

FORMAT = "mailtwin-bayes-1"
MIN_SPAM = 200  # FACTS.md: Bayes needs 200 spam ...
MIN_HAM = 200  # ... and 200 ham learned
MAX_TOKENS = 150  # FACTS.md: at most 150 significant tokens
MAX_TOKEN_LENGTH = 15  # FACTS.md: token length 15
ROBINSON_X = 0.538  # FACTS.md
ROBINSON_S_31 = 0.100  # FACTS.md: S in 3.1 (0.030 in 3.2)
MIN_PROB_STRENGTH = 0.346  # FACTS.md: keep |p - 0.5| >= 0.346
_PROB_CACHE_SIZE = 200_000  # twin speed-up: token probabilities kept at most

_BODY_STRIP = re.compile(rb"[^-A-Za-z0-9,@*!_'\"$.\xa1-\xff]+")
# Twin speed-up: the same stripping as one translate (octet -> space); runs of
# spaces are left for ``split`` (no token or ``_DOTS`` match holds a space).
_STRIP_TABLE = bytes(
    octet if _BODY_STRIP.match(bytes((octet,))) is None else 0x20
    for octet in range(256)
)
_DOTS = re.compile(rb"(\w)(\.{3,6}|-{2,6})(\w)")
_TRIM = b"-'\".,"
_URIISH = re.compile(rb"\S\.[a-z]", re.I)
_SKIP_HEADERS = frozenset(
    (
        b"x-spam-status",
        b"x-spam-flag",
        b"x-spam-level",
        b"x-spam-checker-version",
        b"x-spam-report",
        b"x-spam-score",
    )
)


# The stop list, lower case: a word is dropped when its ASCII lower case is
# one of them.  Twin speed-up: a set rather than the anchored, case-blind
# regex of the same words (``tests/test_sa_speedups10.py`` keeps it).
_STOP_WORDS = frozenset(
    b"able all already and any are because both can come each email even few "
    b"first for from give has have http information into it's just know like "
    b"long look made mail mailing mailto make many more most much need not now "
    b"number off one only out own people place right same see such that the "
    b"this through time using web where why with without work world year "
    b"years you you're your".split()
)
_STOP_MAX = max(map(len, _STOP_WORDS))


def _token_words(token: bytes, body: bool) -> tuple[bytes, ...]:
    """The Bayes tokens one whitespace-separated word yields (a header word
    yields one at most)."""
    token = token.strip(_TRIM)
    size = len(token)
    # Twin speed-up: a set lookup instead of a regex match (the same words).
    if size < 3 or (size <= _STOP_MAX and token.lower() in _STOP_WORDS):
        return ()
    last = (
        b"sk:" + token[:7]
        if size > MAX_TOKEN_LENGTH and token.find(b"*") < 0
        else token
    )
    if body:
        # Twin speed-up: ``find`` within [1:-1] rather than a slice copy; and
        # ``_URIISH`` needs a "." after the first octet, looked for first.
        if token.find(b"@", 1, -1) >= 0:
            user, _, domain = token.rpartition(b"@")
            return (b"U:" + user, b"D:" + domain, last)
        if token.find(b".", 1) >= 0 and _URIISH.search(token):
            out = [b"UD:" + token]
            bit = token
            while b"." in bit[1:]:
                bit = bit.split(b".", 1)[1]
                if bit:
                    out.append(b"UD:" + bit)
            out.append(last)
            return tuple(out)
    return (last,)


# Twin speed-up: a word's tokens depend on the word alone, so they are kept
# (per body/header kind) for the words seen most recently.
class _WordCache(dict[bytes, tuple[bytes, ...]]):
    """Word -> its tokens (body or header kind), worked out on first lookup;
    with a *prefix* (``H<name>:``; header kind only) the token carries it."""

    __slots__ = ("body", "prefix")

    def __init__(self, body: bool, prefix: bytes = b"") -> None:
        super().__init__()
        self.body = body
        self.prefix = prefix

    def __missing__(self, word: bytes) -> tuple[bytes, ...]:
        tokens = _token_words(word, self.body)
        # (a header word has one token at most: no loop over them)
        if tokens and self.prefix:
            tokens = (self.prefix + tokens[0],)
        self[word] = tokens
        return tokens


_WORD_CACHE = (_WordCache(False), _WordCache(True))
_WORD_CACHE_SIZE = 200_000


# Twin speed-up: header name -> its prefixed word cache (bounded as above).
_HEADER_CACHES: dict[bytes, _WordCache] = {}
_HEADER_CACHE_NAMES = 2_000


def _split_words(text: bytes) -> set[bytes]:
    """The distinct words of a text as the tokenizer splits it."""
    text = text.translate(_STRIP_TABLE)
    words = set(text.split())
    # (``find`` rather than ``in``: the same answer, faster on bytes)
    if text.find(b"...") >= 0 or text.find(b"--") >= 0:  # else _DOTS cannot match
        _split_dotted(text, words)
    return words


def _split_dotted(text: bytes, words: set[bytes]) -> None:
    """Split, in *words* (the words of the stripped *text*), the words holding
    "..." or "--" at ``_DOTS``'s matches.

    A match holds no whitespace, so substituting word by word (only in the
    words holding "..." or "--") splits into the same words as substituting
    in the whole text.  Twin speed-up: those words are found from the
    occurrences of "..." and "--" (``find`` in C; the stripped text's only
    white space is " ") rather than by testing every word.
    """
    dotted: set[bytes] = set()
    find = text.find
    rfind = text.rfind
    for sep in (b"...", b"--"):
        pos = find(sep)
        while pos >= 0:
            end = find(b" ", pos)
            if end < 0:
                end = len(text)
            dotted.add(text[rfind(b" ", 0, pos) + 1 : end])
            pos = find(sep, end)
    words.difference_update(dotted)
    sub = _DOTS.sub
    for word in dotted:
        words.update(sub(rb"\1 \2 \3", word).split())


def _words(text: bytes, body: bool) -> set[bytes]:
    """The unique Bayes tokens of a text."""
    cache = _WORD_CACHE[body]
    if len(cache) > _WORD_CACHE_SIZE:
        cache.clear()
    return set(chain.from_iterable(map(cache.__getitem__, _split_words(text))))


def _header_cache(name: bytes) -> _WordCache:
    cache = _HEADER_CACHES.get(name)
    if cache is None:
        if len(_HEADER_CACHES) >= _HEADER_CACHE_NAMES:
            _HEADER_CACHES.clear()
        cache = _HEADER_CACHES[name] = _WordCache(False, b"H" + name + b":")
    elif len(cache) > _WORD_CACHE_SIZE:
        cache.clear()
    return cache


def tokenize(
    msg: ParsedMessage, ignore_headers: frozenset[bytes] = frozenset()
) -> set[bytes]:
    """The message's unique Bayes tokens."""
    # Paragraphs end in a newline, which the tokenizer turns into a space, so
    # the body is tokenized in one piece.
    tokens = _words(msg.body_text, body=True)
    update = tokens.update
    caches = _HEADER_CACHES
    table = _STRIP_TABLE
    # Twin speed-up: ``_split_words`` and ``_header_cache`` inline (the words
    # of a value need not be distinct: their tokens go into a set).
    for name, value in msg.headers:
        key = name.lower()
        if key in _SKIP_HEADERS or key in ignore_headers:
            continue
        # Each word's tokens, prefixed with ``H<name>:`` (kept per header).
        cache = caches.get(name)
        if cache is None or len(cache) > _WORD_CACHE_SIZE:
            cache = _header_cache(name)
        text = value.translate(table)
        if text.find(b"...") >= 0 or text.find(b"--") >= 0:
            words: set[bytes] | list[bytes] = set(text.split())
            _split_dotted(text, words)  # type: ignore[arg-type]
        else:
            words = text.split()
        update(chain.from_iterable(map(cache.__getitem__, words)))
    return tokens


def chi2q(x2: float, v: int) -> float:
    """P(chi-squared with v (even) degrees of freedom >= x2), as SpamAssassin."""
    m = x2 / 2.0
    # term_0 = exp(-m), term_i = term_(i-1) * (m / i) for i < v/2, and their
    # running total, left to right.  Twin speed-up: the same products and sums
    # in the same order, in C (``accumulate``), the last total kept.
    terms = accumulate(map(m.__truediv__, range(1, v // 2)), mul, initial=math.exp(-m))
    (total,) = deque(accumulate(terms, add), maxlen=1)
    return min(total, 1.0)


def chi_squared_combine(probs: list[float]) -> float:
    """Chi-squared combining of token probabilities (FACTS.md)."""
    n = len(probs)
    # Twin speed-up: ``map`` in C; the same terms summed in the same order.
    ln_spam = sum(map(math.log, map((1.0).__sub__, probs)))
    ln_ham = sum(map(math.log, probs))
    spam = 1.0 - chi2q(-2.0 * ln_spam, 2 * n)
    ham = 1.0 - chi2q(-2.0 * ln_ham, 2 * n)
    return ((spam - ham) + 1.0) / 2.0


def robinson_probability(
    spam: int, ham: int, nspam: int, nham: int, strength: float = ROBINSON_S_31
) -> float:
    """One token's smoothed spam probability (FACTS.md)."""
    ratio_s = spam / nspam if nspam else 0.0
    ratio_n = ham / nham if nham else 0.0
    if ratio_s + ratio_n == 0:
        return ROBINSON_X
    prob = ratio_s / (ratio_n + ratio_s)
    count = spam + ham
    return (strength * ROBINSON_X + count * prob) / (strength + count)


@dataclass(frozen=True, slots=True)
class BayesVerdict:
    """A Bayes scan: the probability (None when unusable) and tokens looked up."""

    probability: float | None
    tokens_looked_up: int
    significant: int


@dataclass
class BayesDB:
    """The token database, held in memory; ``save`` writes the JSON file."""

    nspam: int = 0
    nham: int = 0
    tokens: dict[bytes, list[int]] = field(default_factory=dict)
    seen: dict[str, str] = field(default_factory=dict)
    robinson_s: float = ROBINSON_S_31
    ignore_headers: frozenset[bytes] = frozenset()
    # Twin speed-up: token -> (strength, probability) of a significant token,
    # None for an insignificant one, for the tokens looked up since the
    # database last changed; ``_probs_key`` says which state it belongs to
    # (``learn`` bumps ``_generation``; counts, settings and the token
    # table's identity and size are in the key too).
    _probs: dict[bytes, tuple[float, float] | None] = field(
        default_factory=dict, repr=False, compare=False
    )
    _probs_key: tuple[object, ...] = field(default=(), repr=False, compare=False)
    # The significant tokens of ``_probs`` alone (token -> (strength, prob)).
    _significant: dict[bytes, tuple[float, float]] = field(
        default_factory=dict, repr=False, compare=False
    )
    _generation: int = field(default=0, repr=False, compare=False)

    @property
    def ready(self) -> bool:
        return self.nspam >= MIN_SPAM and self.nham >= MIN_HAM

    def classify(self, msg: ParsedMessage) -> BayesVerdict:
        """The message's spam probability (chi-squared combined)."""
        if not self.ready:
            return BayesVerdict(None, 0, 0)
        tokens = tokenize(msg, self.ignore_headers)
        probs, significant = self._token_probs()
        # Twin speed-up: set operations (in C) instead of a loop over the
        # tokens; the tokens not looked up before (since the database last
        # changed) that the database holds get their probability worked out.
        new = tokens.difference(probs)
        found = len(tokens) - len(new)
        if new:
            known = self.tokens.keys() & new
            found += len(known)
            if known:
                self._add_probs(known, probs, significant)
        if not found:
            return BayesVerdict(None, len(tokens), 0)
        # The significant tokens' (strength, probability), strongest first:
        # sorting makes the order of the set operations irrelevant.
        strengths = list(map(significant.__getitem__, significant.keys() & tokens))
        strengths.sort(reverse=True)
        chosen = [p for _, p in strengths[:MAX_TOKENS]]
        return BayesVerdict(chi_squared_combine(chosen), len(tokens), len(chosen))

    def _add_probs(
        self,
        tokens: set[bytes],
        probs: dict[bytes, tuple[float, float] | None],
        significant: dict[bytes, tuple[float, float]],
    ) -> None:
        """Work out the (strength, probability) of tokens the database holds."""
        lookup = self.tokens.__getitem__
        nspam, nham, robinson_s = self.nspam, self.nham, self.robinson_s
        prior = robinson_s * ROBINSON_X
        for token in tokens:
            # robinson_probability(spam, ham, nspam, nham, robinson_s), inline
            spam, ham = lookup(token)
            ratio_s = spam / nspam if nspam else 0.0
            ratio_n = ham / nham if nham else 0.0
            if ratio_s + ratio_n == 0:
                prob = ROBINSON_X
            else:
                count = spam + ham
                prob = (prior + count * (ratio_s / (ratio_n + ratio_s))) / (
                    robinson_s + count
                )
            strength = abs(prob - 0.5)
            if strength >= MIN_PROB_STRENGTH:
                probs[token] = significant[token] = (strength, prob)
            else:
                probs[token] = None

    def _token_probs(
        self,
    ) -> tuple[
        dict[bytes, tuple[float, float] | None], dict[bytes, tuple[float, float]]
    ]:
        """The probability cache and its significant tokens, emptied when the
        database has changed."""
        key = (
            self._generation, self.nspam, self.nham, self.robinson_s,
            id(self.tokens), len(self.tokens),
        )
        if key != self._probs_key or len(self._probs) > _PROB_CACHE_SIZE:
            self._probs = {}
            self._significant = {}
            self._probs_key = key
        return self._probs, self._significant

    def learn(self, msg: ParsedMessage, is_spam: bool) -> int:
        """Learn a message as spam or ham; return the tokens updated (0 if seen)."""
        digest = hashlib.sha1(msg.full).hexdigest()
        label = "s" if is_spam else "h"
        previous = self.seen.get(digest)
        if previous == label:
            return 0
        self._generation += 1  # the token probabilities change
        tokens = tokenize(msg, self.ignore_headers)
        index = 0 if is_spam else 1
        if previous is not None:  # relearn: forget the other class first
            other = 1 - index
            for token in tokens:
                counts = self.tokens.get(token)
                if counts and counts[other] > 0:
                    counts[other] -= 1
            if previous == "s":
                self.nspam -= 1
            else:
                self.nham -= 1
        for token in tokens:
            counts = self.tokens.get(token)
            if counts is None:
                counts = self.tokens[token] = [0, 0]
            counts[index] += 1
        if is_spam:
            self.nspam += 1
        else:
            self.nham += 1
        self.seen[digest] = label
        return len(tokens)

    def save(self, path: Path) -> None:
        """Write the database as JSON (atomically: temporary file, rename)."""
        data = {
            "format": FORMAT,
            "nspam": self.nspam,
            "nham": self.nham,
            "tokens": {t.decode("latin-1"): c for t, c in self.tokens.items()},
            "seen": self.seen,
        }
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(
        cls, path: Path, ignore_headers: frozenset[bytes] = frozenset()
    ) -> BayesDB:
        """Read a database written by ``save``."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(
                f"bayes database {str(path)!r} is unreadable: {exc}"
            ) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"bayes database {str(path)!r} is not in format {FORMAT}")
        return cls(
            nspam=int(data["nspam"]),
            nham=int(data["nham"]),
            tokens={t.encode("latin-1"): c for t, c in data["tokens"].items()},
            seen=dict(data.get("seen", {})),
            ignore_headers=ignore_headers,
        )
