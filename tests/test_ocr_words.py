"""FuzzyOCR word list, normalisation and fuzzy matching (twin.stages.ocr.words)."""

import pytest

from twin.stages.ocr.words import (
    Word,
    fuzzy_score,
    load_word_list,
    match_words,
    normalise,
    parse_word_list,
)


def test_normalise_maps_lookalikes_and_keeps_letters_only():
    assert normalise("V!AGR4 |0w 8;1") == "viagriowail"
    assert normalise("$2.70 -- Price!") == "opricei"


def test_shipped_word_list_is_parsed_with_thresholds_and_deduplicated():
    words = load_word_list()
    texts = [w.text for w in words]
    assert len(texts) == len(set(texts)) == 42  # 43 entries, "alert" twice
    assert Word("news", 0.2) in words and Word("money", 0.01) in words
    assert Word("clickhere", None) in words


def test_bad_word_lists_are_rejected():
    with pytest.raises(ValueError, match="list:2: threshold 'x'"):
        parse_word_list("stock\nprice::x", "list")
    with pytest.raises(ValueError, match="must be in 0..1"):
        parse_word_list("price::1.5")
    with pytest.raises(ValueError, match="has no letters"):
        parse_word_list("$$$")


def test_approximate_substring_within_a_quarter_of_the_word():
    words = (Word("viagra"), Word("stock"), Word("buy"), Word("news", 0.2))
    lines = ["Buy V1AGRA now", "hot stcck pick", "newz", "vaorasoft"]
    found = match_words(lines, words, 0.25)
    # viagra: "vlagra" is one edit (1/6 <= 0.25); "vaora" is two (2/6 > 0.25)
    # stock: one edit; buy: exact; news: one edit is 0.25 > its own 0.2
    assert found.lines_per_word == (("viagra", 1), ("stock", 1), ("buy", 1))
    assert found.total == 3
    lengths = 6 + 5 + 3 + 4
    assert found.cells == lengths * sum(len(normalise(t)) for t in lines)


def test_threshold_setting_changes_matches():
    words = (Word("viagra"),)
    assert match_words(["vaora"], words, 0.25).total == 0
    assert match_words(["vaora"], words, 0.34).total == 1
    with pytest.raises(ValueError, match="threshold=1.2"):
        match_words(["x"], words, 1.2)


def test_word_counts_once_per_line_it_occurs_in():
    found = match_words(["price price", "the price", "nothing"], (Word("price"),), 0.25)
    assert found.lines_per_word == (("price", 2),)


def test_score_is_base_plus_add_per_match_beyond_required():
    assert fuzzy_score(1, 2, 5.0, 1.0) == 0.0
    assert fuzzy_score(2, 2, 5.0, 1.0) == 5.0
    assert fuzzy_score(12, 2, 5.0, 1.0) == 15.0
    assert fuzzy_score(12, 2, 4.0, 0.5) == 9.0
