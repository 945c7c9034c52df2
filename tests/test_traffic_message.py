"""Rendering specs into real RFC 822 messages."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import email.utils
import zlib
from collections import Counter
from email.parser import BytesParser

import numpy as np
import pytest

from twin.stages.smtp import goes_as_is
from twin.traffic.message import (
    SIM_EPOCH_UNIX,
    format_date,
    render,
    render_sent,
)
from twin.traffic.message import rendered as rendered_counted
from twin.traffic.population import Population, PopulationSettings
from twin.traffic.profile import HOUR_S
from twin.traffic.workload import MessageSpec, TrafficSettings, generate

PARSER = BytesParser(policy=email.policy.default)
HAM_WORDS = (
    "lab", "seminar", "meeting", "homework", "thesis", "course", "lecture", "please",
    "thanks", "regards", "grades", "talk", "project", "proposal", "paper",
)  # fmt: skip
SPAM_WORDS = (
    "stock", "v1agra", "mortgage", "replica", "refinance", "meds", "rolex", "pharma",
    "cdgt", "offer", "buy", "price", "dear", "click",
)  # fmt: skip


def streams(seed: int):
    def stream(name: str) -> np.random.Generator:
        return np.random.default_rng([seed, zlib.crc32(name.encode())])

    return stream


@pytest.fixture(scope="module")
def population() -> Population:
    return Population(PopulationSettings(), np.random.default_rng(2007))


@pytest.fixture(scope="module")
def specs(population) -> list[MessageSpec]:
    """About 600 specs of all kinds from a weekday morning."""
    day = list(generate(TrafficSettings(), population, 12 * HOUR_S, streams(8)))
    return [s for s in day if s.arrival_s >= 9 * HOUR_S][::5]


@pytest.fixture(scope="module")
def rendered(specs, population) -> list[tuple[MessageSpec, bytes]]:
    rng = np.random.default_rng(42)
    return [(spec, render(spec, population, rng)) for spec in specs]


@pytest.fixture(scope="module")
def parsed(rendered) -> list[tuple[MessageSpec, bytes, email.message.EmailMessage]]:
    return [(spec, raw, PARSER.parsebytes(raw)) for spec, raw in rendered]


def _parts_without_defects(raw: bytes):
    message = PARSER.parsebytes(raw)
    assert not message.defects
    for part in message.walk():
        assert not part.defects, part.defects
        if not part.is_multipart():
            part.get_content()  # decodes base64 too
            assert not part.defects, part.defects
    return message


def test_rendered_size_is_the_spec_size(rendered):
    assert len(rendered) > 500
    assert all(len(raw) == spec.size_bytes for spec, raw in rendered)


def test_messages_parse_without_defects(rendered):
    for _spec, raw in rendered:
        _parts_without_defects(raw)
        assert not email.message_from_bytes(raw).defects
        assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
        assert max(len(line) for line in raw.split(b"\r\n")) <= 998


def test_headers_are_real_and_carry_no_label(parsed):
    for spec, raw, message in parsed:
        for name in ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version"):
            assert message[name], name
        assert spec.sender in message["From"]
        assert spec.recipients[0] in message["To"] or spec.is_spam
        assert (message["Received"] is None) == (spec.kind == "outbound")
        names = {key.lower() for key in message.keys()}
        assert not any("spam" in key or "label" in key for key in names)
        assert b"is_spam" not in raw and b"legit" not in raw.lower()


def test_dates_follow_the_simulated_clock(parsed):
    for spec, _raw, message in parsed:
        date = email.utils.parsedate_to_datetime(message["Date"])
        skew = date.timestamp() - (SIM_EPOCH_UNIX + spec.arrival_s)
        if spec.is_spam:
            assert -10 * 3600 <= skew <= 6 * 3600
        else:
            assert -125 <= skew <= 0


def test_structures_and_content_look_like_the_era(parsed):
    structures: Counter[tuple[str, str]] = Counter()
    for spec, raw, message in parsed:
        label = "spam" if spec.is_spam else "ham"
        structures[label, message.get_content_type()] += 1
        text = raw.lower()
        words = SPAM_WORDS if spec.is_spam else HAM_WORDS
        assert any(word.encode() in text for word in words)
        if message.get_content_type() == "multipart/mixed":
            attachment = list(message.iter_attachments())[0]
            assert attachment.get_content().startswith(b"%PDF-1.4")
    assert structures["spam", "multipart/alternative"] > 100
    assert structures["spam", "text/plain"] > 50
    assert structures["ham", "multipart/alternative"] > 10
    assert structures["ham", "multipart/mixed"] > 3
    assert structures["ham", "text/plain"] > 50


@pytest.mark.parametrize("size", [800, 801, 1234, 65_000, 250_000, 5_000_000])
@pytest.mark.parametrize("kind", ["legit", "spam", "outbound"])
def test_extreme_sizes_and_many_recipients(specs, population, kind, size):
    base = next(s for s in specs if s.kind == kind)
    many = dataclasses.replace(
        base, size_bytes=size, recipients=population.addresses[:50]
    )
    for seed in range(4):
        raw = render(many, population, np.random.default_rng(seed))
        assert len(raw) == size
        _parts_without_defects(raw)


def test_rendering_uses_only_the_passed_rng(specs, population):
    spec = specs[7]
    np.random.seed(123)
    legacy_state = np.random.get_state()[1].copy()
    a = render(spec, population, np.random.default_rng(5))
    b = render(spec, population, np.random.default_rng(5))
    c = render(spec, population, np.random.default_rng(6))
    assert a == b != c
    assert np.array_equal(np.random.get_state()[1], legacy_state)
    rng = np.random.default_rng(5)
    render(spec, population, rng)
    assert rng.random() == np.random.default_rng(5).random(14)[13]


def test_format_date():
    assert format_date(0.0, -300) == "Mon, 05 Feb 2007 00:00:00 -0500"
    assert format_date(86400 * 6 + 3599.9, 60) == "Sun, 11 Feb 2007 06:59:59 +0100"
    assert format_date(0.0, 330) == "Mon, 05 Feb 2007 10:30:00 +0530"


def test_bad_specs(specs, population):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"size_bytes\(=0\)"):
        render(dataclasses.replace(specs[0], size_bytes=0), population, rng)
    with pytest.raises(ValueError, match="has no recipients"):
        render(dataclasses.replace(specs[0], recipients=()), population, rng)


def test_render_sent_knows_whether_the_message_goes_as_it_is(specs, population):
    # the flag the front hands to smtpd, told from the corpus's line starts,
    # is what a search of the message finds: over every size from tiny to
    # past the corpora's length (a slice that wraps around is searched), with
    # enough cases that slices ending in a dot line turn up (~1 in 150)
    sizes = [1, 2, 3, 200, 799, 800, 801, 1234, 4000, 65_000, 97_000, 250_000,
             1_000_000]
    rng = np.random.default_rng(5)
    flags = Counter()
    cases = [(spec, None) for spec in specs] + [
        (spec, size) for spec in specs[::20] for size in sizes]
    for spec, size in cases * 4:
        if size is not None:
            spec = dataclasses.replace(spec, size_bytes=size)
        state = rng.bit_generator.state
        raw, as_is = render_sent(spec, population, rng)
        rng.bit_generator.state = state
        assert raw == render(spec, population, rng)  # the same draws
        assert as_is == goes_as_is(raw), (spec, size)
        rng.bit_generator.state = state
        assert rendered_counted(spec, population, rng) == (
            raw, as_is, raw.count(b"\r"))
        flags[as_is] += 1
    assert flags[True] > 1000 and flags[False] > 10, flags


def test_corpus_cut_of_a_text_with_bare_line_ends_is_searched():
    from twin.traffic.message import _NOT_AS_IS, _Corpus

    corpus = _Corpus("one\rtwo\r\n.three\r\nfour\nfive\r\n\r\n.\r\nsix\r\n")
    assert not corpus.plain
    size = len(corpus.text)
    for length in range(0, 3 * size + 3):
        for u in (0.0, 0.2, 0.4, 0.6, 0.8, 0.999):
            chunk, clean = corpus.cut(length, u)
            assert len(chunk) == length
            assert clean == ((chunk == "" or chunk.endswith("\r\n")) and (
                _NOT_AS_IS.search("\r\n" + chunk) is None)), (length, u)
            assert corpus.cut_data(length, u)[5] == chunk.count("\r")


def test_corpus_cut_tells_what_a_search_of_the_slice_finds():
    # every corpus, slices from nothing to past the corpus's end (where the
    # text wraps around and the slice is searched), at many line starts
    from twin.traffic.message import _NOT_AS_IS, _corpora

    rng = np.random.default_rng(11)
    for name, corpus in _corpora().items():
        assert corpus.plain, name
        size = len(corpus.text)
        for length in [0, 1, 2, 3, 4, 5, 80, 81, 200, size - 1, size, size + 7,
                       3 * size] + rng.integers(2, 5000, 60).tolist():
            for u in (0.0, 0.5, 0.999, *rng.random(8).tolist()):
                chunk, clean = corpus.cut(int(length), float(u))
                assert chunk == corpus.slice(int(length), float(u))
                # the bytes, in pieces, and their CRs counted by bisection
                source, first, last, tail, data_clean, crs = corpus.cut_data(
                    int(length), float(u))
                assert (source[first:last] + tail).decode("ascii") == chunk
                assert data_clean == clean
                assert crs == chunk.count("\r"), (name, length, u)
                assert len(chunk) == length
                searched = (chunk == "" or chunk.endswith("\r\n")) and (
                    _NOT_AS_IS.search("\r\n" + chunk) is None)
                assert clean == searched, (name, length, u)
