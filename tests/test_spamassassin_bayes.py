"""Bayes: token maths against hand computations, learning, the database file."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from twin.stages.spamassassin.bayes import (
    BayesDB,
    chi2q,
    chi_squared_combine,
    robinson_probability,
    tokenize,
)
from twin.stages.spamassassin.message import ParsedMessage

MESSAGE = (
    b"From: seller@example.com\nTo: you@example.org\nSubject: cheap watches\n\n"
    b"Replica watches at unbeatable prices, visit www.example.com today!\n"
)


def test_chi2q_hand_computation():
    # v = 4: chi2q = e^-m (1 + m), m = x2 / 2
    assert chi2q(4.0, 4) == pytest.approx(3 * math.exp(-2))
    assert chi2q(0.0, 6) == 1.0
    assert chi2q(10.0, 2) == pytest.approx(math.exp(-5))


def test_chi_squared_combine_hand_computation():
    # probs 0.9 and 0.8: prod(1-p) = 0.02, prod(p) = 0.72, 2n = 4 degrees
    spam = 1 - 0.02 * (1 - math.log(0.02))
    ham = 1 - 0.72 * (1 - math.log(0.72))
    assert chi_squared_combine([0.9, 0.8]) == pytest.approx(((spam - ham) + 1) / 2)
    assert chi_squared_combine([0.9, 0.8]) == pytest.approx(0.9291413, abs=1e-6)
    assert chi_squared_combine([]) == 0.5


def test_robinson_smoothing_hand_computation():
    # s=3 of 10 spam, n=1 of 20 ham: p = 0.3/0.35; N = 4; S = 0.1, X = 0.538
    expected = (0.1 * 0.538 + 4 * (0.3 / 0.35)) / 4.1
    assert robinson_probability(3, 1, 10, 20) == pytest.approx(expected)
    assert robinson_probability(3, 1, 10, 20, strength=0.03) == pytest.approx(
        (0.03 * 0.538 + 4 * (0.3 / 0.35)) / 4.03
    )


def test_tokenizer():
    tokens = tokenize(ParsedMessage(MESSAGE))
    assert b"Replica" in tokens and b"watches" in tokens and b"unbeatable" in tokens
    assert b"UD:www.example.com" in tokens and b"UD:example.com" in tokens
    assert b"at" not in tokens  # under 3 octets
    assert b"HSubject:cheap" in tokens
    assert b"HFrom:sk:seller@" in tokens  # 18 octets: over the 15-octet limit
    text = b"Subject: x\n\nsupercalifragilisticexpialidocious\n"
    long = tokenize(ParsedMessage(text))
    assert b"sk:superca" in long


def test_no_probability_below_200_of_each():
    bayes = BayesDB(nspam=199, nham=500)
    verdict = bayes.classify(ParsedMessage(MESSAGE))
    assert verdict.probability is None
    assert verdict.tokens_looked_up == 0


def test_classify_spammy_and_hammy_tokens():
    msg = ParsedMessage(MESSAGE)
    tokens = tokenize(msg)
    spammy = BayesDB(nspam=200, nham=200, tokens={t: [50, 0] for t in tokens})
    verdict = spammy.classify(msg)
    assert verdict.probability == pytest.approx(1.0, abs=1e-6)
    assert verdict.tokens_looked_up == len(tokens)
    assert verdict.significant == min(150, len(tokens))
    hammy = BayesDB(nspam=200, nham=200, tokens={t: [0, 50] for t in tokens})
    assert hammy.classify(msg).probability == pytest.approx(0.0, abs=1e-6)
    unknown = BayesDB(nspam=200, nham=200, tokens={})
    assert unknown.classify(msg).probability is None


def test_learn_counts_once_and_relearns(tmp_path: Path):
    bayes = BayesDB()
    msg = ParsedMessage(MESSAGE)
    tokens = tokenize(msg)
    assert bayes.learn(msg, is_spam=True) == len(tokens)
    assert bayes.learn(msg, is_spam=True) == 0  # already learned
    assert bayes.nspam == 1 and bayes.tokens[b"watches"] == [1, 0]
    assert bayes.learn(msg, is_spam=False) == len(tokens)
    assert (bayes.nspam, bayes.nham) == (0, 1)
    assert bayes.tokens[b"watches"] == [0, 1]
    path = tmp_path / "bayes.json"
    bayes.save(path)
    again = BayesDB.load(path)
    assert (again.nspam, again.nham, again.tokens, again.seen) == (
        0, 1, bayes.tokens, bayes.seen)


def test_load_rejects_other_files(tmp_path: Path):
    path = tmp_path / "x.json"
    path.write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not in format mailtwin-bayes-1"):
        BayesDB.load(path)


def test_probability_cache_follows_learning():
    """The per-token probabilities kept between scans are dropped when the
    database learns (or relearns): each verdict equals a fresh database's."""
    msg = ParsedMessage(MESSAGE)
    tokens = tokenize(msg)
    counts = {t: [3 + i % 5, 1 + i % 3] for i, t in enumerate(sorted(tokens))}
    bayes = BayesDB(nspam=200, nham=200, tokens={t: list(c) for t, c in counts.items()})

    def fresh() -> float | None:
        copy = BayesDB(
            nspam=bayes.nspam, nham=bayes.nham,
            tokens={t: list(c) for t, c in bayes.tokens.items()},
        )
        return copy.classify(msg).probability

    first = bayes.classify(msg)
    assert first.probability == fresh()
    assert bayes.classify(msg) == first  # answered from the cache
    hammy = ParsedMessage(MESSAGE.replace(b"today!", b"tomorrow, thanks"))
    for _ in range(3):
        assert bayes.learn(hammy, is_spam=False) > 0
        learned = bayes.classify(msg)
        assert learned.probability == fresh()
        assert learned.probability != first.probability
        assert bayes.learn(hammy, is_spam=True) > 0  # relearn as spam
        assert bayes.classify(msg).probability == fresh()
    assert bayes.learn(hammy, is_spam=True) == 0  # seen: nothing changes
    assert bayes.classify(msg).probability == fresh()
    # A new token table (not through learn) is noticed too.
    bayes.tokens = {t: [0, 50] for t in tokens}
    assert bayes.classify(msg).probability == fresh()
    assert bayes.classify(msg).probability == pytest.approx(0.0, abs=1e-6)


def test_header_tokens_equal_prefixing_each_headers_words():
    """The per-header word caches give the tokens of prefixing each word's
    header tokens with ``H<name>:``, for repeated and new header names."""
    from twin.stages.spamassassin.bayes import _words

    for data in (MESSAGE, MESSAGE, MESSAGE.replace(b"To:", b"X-Odd-Name:")):
        msg = ParsedMessage(data)
        expected = _words(b"".join(msg.body_lines[1:]), body=True)
        for name, value in msg.headers:
            expected |= {b"H" + name + b":" + w for w in _words(value, body=False)}
        assert tokenize(msg) == expected
    assert b"HX-Odd-Name:you@example.org" in tokenize(ParsedMessage(
        MESSAGE.replace(b"To:", b"X-Odd-Name:")))
