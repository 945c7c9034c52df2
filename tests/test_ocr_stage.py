"""The FuzzyOCR stage (twin.stages.ocr.stage) on real and generated image spam."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from twin.stages.ocr.hashdb import HashDb
from twin.stages.ocr.imagespam import legit_message, spam_message
from twin.stages.ocr.stage import (
    CPU_UNITS,
    REFERENCE_COST_S,
    FuzzyOcr,
    OcrDecision,
    OcrSettings,
)

DATA = Path(__file__).parent / "data" / "fuzzyocr"
COSTS = Path(__file__).parent.parent / "hardware" / "costs" / "ocr.yaml"

# Words FuzzyOCR found in each sample (tests/data/fuzzyocr/README).
README_WORDS = {
    "ocr-gif.eml": {"target", "service", "stock", "price", "company", "recommendation"},
    "ocr-animated.eml": {"price", "company", "alert", "news"},
    "ocr-obfuscated.eml": {"target", "profit", "trade"},
    "ocr-jpg.eml": {"levitra", "viagra"},
    "ocr-png.eml": {
        "buy",
        "target",
        "service",
        "stock",
        "investor",
        "price",
        "company",
        "trade",
        "software",
        "recommendation",
        "news",
    },
}


def sample(name):
    return (DATA / name).read_bytes()


@pytest.fixture(scope="module")
def plugin():
    return FuzzyOcr()


@pytest.mark.parametrize("name", sorted(README_WORDS))
def test_samples_flagged_by_fuzzyocr_are_flagged(plugin, name):
    result = plugin.check(sample(name), now=0.0)
    assert result.decision is OcrDecision.SPAM
    rules = [hit[0] for hit in result.hits]
    assert "FUZZY_OCR" in rules
    found = {word for word, _ in result.words}
    assert len(found & README_WORDS[name]) >= 2
    assert sum(n for _, n in result.words) >= 2


def test_jpeg_sample_reads_the_readme_words_exactly(plugin):
    result = plugin.check(sample("ocr-jpg.eml"), now=0.0)
    assert result.words == (("viagra", 2), ("levitra", 1))
    assert result.hits == (
        (
            "FUZZY_OCR",
            6.0,
            'words found: "viagra" in 2 lines, "levitra" in 1 lines '
            "(3 word occurrences found)",
        ),
    )
    assert result.score == 6.0
    assert dict(result.work.cpu) == {
        "ocr.message": 1,
        "ocr.byte": 27506,
        "ocr.decode_byte": 20584,
        "ocr.image": 1,
        "ocr.pixel": 443 * 246,
        "ocr.pass": 1,
        "ocr.pass_pixel": 443 * 246,
        "ocr.glyph": 92,
        "ocr.glyph_try": 222,  # parts of wide glyphs (every cut column), pairs joined
        "ocr.skew_pixel": 268350,  # 10,734 ink pixels x 25 skew angles
        "ocr.despeckle_pixel": 443 * 246,
        "ocr.match_cell": 17751,
    }


def test_corrupt_gif_with_wrong_content_type(plugin):
    result = plugin.check(sample("ocr-gif.eml"), now=0.0)
    assert [(name, score) for name, score, _ in result.hits[:2]] == [
        ("FUZZY_OCR_WRONG_CTYPE", 1.5),
        ("FUZZY_OCR_CORRUPT_IMG", 2.5),
    ]
    assert (
        result.hits[0][2] == 'image has format "GIF" but content-type is "image/jpeg"'
    )
    assert result.score == pytest.approx(4.0 + result.hits[2][1])
    cpu = result.work.cpu
    assert (cpu["ocr.frame"], cpu["ocr.pixel"], cpu["ocr.glyph"]) == (1, 549 * 327, 496)


def test_animated_gif_counts_every_frame(plugin):
    cpu = plugin.check(sample("ocr-animated.eml"), now=0.0).work.cpu
    assert cpu["ocr.frame"] == 7 and cpu["ocr.pixel"] == 447 * 361 * 7
    assert cpu["ocr.pass_pixel"] == 447 * 361 * cpu["ocr.pass"]


def test_generated_legitimate_images_do_not_score(plugin):
    rng = np.random.default_rng(2007)
    for _ in range(30):
        result = plugin.check(legit_message(rng).raw, now=0.0)
        assert result.decision is OcrDecision.CLEAN, result.words
        assert result.score == 0.0 and result.work.cpu["ocr.image"] == 1


def test_generated_image_spam_scores(plugin):
    rng = np.random.default_rng(2006)
    for tricks in [
        ("plain",),
        ("noise",),
        ("shapes",),
        ("animated",),
        ("jpeg",),
        ("split",),
        ("rotate",),
    ]:
        result = plugin.check(spam_message(rng, tricks).raw, now=0.0)
        assert result.decision is OcrDecision.SPAM, tricks
        assert result.hits[-1][0] == "FUZZY_OCR"
        rotated = result.work.cpu.get("ocr.rotate_pixel", 0)
        if tricks == ("rotate",):  # the grey image is rotated level, every pixel
            assert rotated == result.work.cpu["ocr.despeckle_pixel"]
        elif tricks == ("plain",):
            assert rotated == 0


def test_wrong_ctype_trick_scores_the_rule(plugin):
    raw = spam_message(np.random.default_rng(5), ("wrong_ctype",)).raw
    assert plugin.check(raw, now=0.0).hits[0][:2] == ("FUZZY_OCR_WRONG_CTYPE", 1.5)


def test_not_scanned_paths():
    raw = sample("ocr-jpg.eml")
    off = FuzzyOcr(OcrSettings(enabled=False)).check(raw, now=0.0)
    assert off.decision is OcrDecision.NOT_SCANNED and off.work.cpu == {}
    plugin = FuzzyOcr()
    high = plugin.check(raw, now=0.0, current_score=10.0)
    assert high.decision is OcrDecision.NOT_SCANNED and "autodisabled" in high.reason
    assert dict(high.work.cpu) == {"ocr.message": 1}
    low = plugin.check(raw, now=0.0, current_score=-5.0)
    assert low.decision is OcrDecision.NOT_SCANNED
    text = b"Subject: x\r\n\r\nplain text\r\n"
    none = plugin.check(text, now=0.0)
    assert none.reason == "no images"
    assert dict(none.work.cpu) == {"ocr.message": 1, "ocr.byte": len(text)}


def test_settings_change_results():
    raw = sample("ocr-jpg.eml")
    assert (
        FuzzyOcr(OcrSettings(autodisable_score=20.0))
        .check(raw, 0.0, current_score=12.0)
        .score
        == 6.0
    )
    assert (
        FuzzyOcr(OcrSettings(base_score=4.0, add_score=0.5)).check(raw, 0.0).score
        == 4.5
    )
    strict = FuzzyOcr(OcrSettings(counts_required=4)).check(raw, 0.0)
    assert strict.decision is OcrDecision.CLEAN
    assert strict.work.cpu["ocr.pass"] > 1  # no early stop: more scansets read
    small = FuzzyOcr(OcrSettings(max_width_px=400)).check(raw, 0.0)
    assert small.decision is OcrDecision.CLEAN and "out of limits" in small.reason
    assert "ocr.pixel" not in small.work.cpu
    gif = sample("ocr-gif.eml")
    quiet = FuzzyOcr(OcrSettings(wrong_ctype_score=0.5, corrupt_image_score=1.0))
    assert [h[1] for h in quiet.check(gif, 0.0).hits[:2]] == [0.5, 1.0]


def test_max_images_caps_the_work():
    raw = sample("ocr-multi.eml")
    one = FuzzyOcr(OcrSettings(max_images=1)).check(raw, 0.0)
    both = FuzzyOcr().check(raw, 0.0)
    assert one.work.cpu["ocr.image"] == 1 and both.work.cpu["ocr.image"] == 2
    assert "1 images over max_images" in one.reason


def test_timeout_from_modelled_cost():
    raw = sample("ocr-png.eml")
    slow = {kind: cost * 12.5 for kind, cost in REFERENCE_COST_S.items()}
    sun = FuzzyOcr(OcrSettings(reference_cost_s=slow, timeout_s=1.0)).check(raw, 0.0)
    assert sun.decision is OcrDecision.TIMED_OUT and sun.score == 0.0
    assert "timed out" in sun.reason and sun.words == ()
    assert sun.work.cpu["ocr.pass"] == 1  # stopped after the pass that crossed it
    dell = FuzzyOcr(OcrSettings(timeout_s=1.0)).check(raw, 0.0)
    assert dell.decision is OcrDecision.SPAM


def test_hash_db_learns_and_short_cuts_the_ocr():
    raw = sample("ocr-jpg.eml")
    database = HashDb()
    plugin = FuzzyOcr(OcrSettings(use_hash_db=True), hash_db=database)
    first = plugin.check(raw, now=0.0)
    assert first.hits[0][0] == "FUZZY_OCR" and len(database) == 1
    assert first.work.cpu["ocr.hash"] == 1
    again = plugin.check(raw, now=86400.0)
    assert again.hits == (("FUZZY_OCR_KNOWN_HASH", 6.0, again.hits[0][2]),)
    assert "ocr.pass" not in again.work.cpu and "ocr.glyph" not in again.work.cpu
    later = plugin.check(raw, now=86400.0 + 36 * 86400.0)
    assert later.hits[0][0] == "FUZZY_OCR"  # expired after 35 days unseen


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="threshold=1.5"):
        OcrSettings(threshold=1.5)
    with pytest.raises(ValueError, match="max_images=-1"):
        OcrSettings(max_images=-1)
    with pytest.raises(ValueError, match="min_width_px=900 exceeds"):
        OcrSettings(min_width_px=900)
    with pytest.raises(ValueError, match="timeout_s=0"):
        OcrSettings(timeout_s=0)
    with pytest.raises(ValueError, match="reference_cost_s lacks"):
        OcrSettings(reference_cost_s={"ocr.glyph": 1.0})
    settings = OcrSettings()
    assert replace(settings, max_images=2).max_images == 2


def test_cost_table_matches_units_and_defaults():
    table = yaml.safe_load(COSTS.read_text())
    assert table == dict(REFERENCE_COST_S)
    assert set(table) == set(CPU_UNITS)
