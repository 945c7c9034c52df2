"""SpamAssassin config parsing: tricky lines, if/ifplugin blocks, score sets, skips."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.stages.spamassassin.conf import Config, parse_config, parse_files, rule_files
from twin.stages.spamassassin.rules import compile_rules


def _parse(text: str) -> Config:
    return parse_config(text, Config(), origin="test.cf")


def test_rule_lines_keep_their_text_and_comments_are_stripped():
    config = _parse(
        "header  FOO_AT   From =~ /\\@example\\.com/i  # trailing comment\n"
        "body    HASH    /foo\\#bar/\n"
        "describe FOO_AT  From: is at example.com\n"
        "   # a comment line\n"
        "header MISS  To !~ /x/ [if-unset: unset@unset.unset]\n"
    )
    assert config.rules["FOO_AT"].text == "From =~ /\\@example\\.com/i"
    assert config.rules["FOO_AT"].kind == "header"
    assert config.rules["HASH"].text == "/foo\\#bar/"
    assert config.rules["MISS"].text == "To !~ /x/ [if-unset: unset@unset.unset]"
    assert config.describe["FOO_AT"] == "From: is at example.com"
    assert config.rules["FOO_AT"].origin == "test.cf:1"


def test_score_sets_one_value_copies_to_all_four_and_defaults():
    config = _parse(
        "score ONE 2.5\n"
        "score FOUR 0 1.1 -2.2 3.3\n"
        "tflags NICE_ONE nice\n"
    )
    assert config.scores["ONE"] == (2.5, 2.5, 2.5, 2.5)
    assert config.score_of("FOUR", 0) == 0.0
    assert config.score_of("FOUR", 2) == -2.2
    assert config.score_of("UNSCORED", 0) == 1.0
    assert config.score_of("__SUB", 0) == 0.0
    assert config.score_of("T_TESTING", 2) == 0.01
    assert config.score_of("NICE_ONE", 0) == -1.0


def test_later_definition_replaces_earlier():
    config = _parse("body A /one/\nbody A /two/\n")
    assert config.rules["A"].text == "/two/"


def test_ifplugin_of_unloaded_plugin_skips_and_records_rules():
    config = _parse(
        "ifplugin Mail::SpamAssassin::Plugin::DNSEval\n"
        "header RCVD_IN_X eval:check_rbl('x', 'x.example.')\n"
        "score RCVD_IN_X 3\n"
        "endif\n"
        "ifplugin Mail::SpamAssassin::Plugin::HeaderEval\n"
        "header MISSING_HEADERS eval:check_for_missing_to_header()\n"
        "endif\n"
    )
    assert "RCVD_IN_X" not in config.rules
    assert config.skipped == {"RCVD_IN_X": "plugin DNSEval not loaded"}
    assert "RCVD_IN_X" not in config.scores
    assert "MISSING_HEADERS" in config.rules


def test_if_conditions_version_can_plugin_and_else():
    config = _parse(
        "if (version >= 3.004000)\nbody NEW /new/\nendif\n"
        "if (version >= 9.000000)\nbody FUTURE /future/\n"
        "else\nbody PAST /past/\nendif\n"
        "if !plugin(Mail::SpamAssassin::Plugin::ReplaceTags)\n"
        "body FALLBACK /x/\nendif\n"
        "if can(Mail::SpamAssassin::Conf::feature_bug6558_free)\n"
        "body CAN /c/\nendif\n"
        "if can(Mail::SpamAssassin::Conf::feature_capture_rules)\n"
        "body CAPT /c/\nendif\n"
    )
    assert set(config.rules) == {"NEW", "PAST", "CAN"}
    assert config.skipped == {}  # a false version/can block is not a skip


def test_unbalanced_endif_raises():
    with pytest.raises(ValueError, match="'endif' without 'if' at test.cf:1"):
        _parse("endif\n")
    with pytest.raises(ValueError, match="1 unclosed if/ifplugin"):
        _parse("ifplugin Mail::SpamAssassin::Plugin::Bayes\n")


def test_lang_lines_are_skipped_and_counted():
    config = _parse("lang de describe FOO Deutsch\ndescribe FOO English\n")
    assert config.describe["FOO"] == "English"
    assert config.ignored_directives == {"lang": 1}


def test_settings_directives():
    config = _parse(
        "required_score 6.5\n"
        "rewrite_header Subject ***SPAM***\n"
        'add_header all Status "_YESNO_, score=_SCORE_"\n'
        "report Content analysis details:   (_SCORE_ points, _REQD_ required)\n"
        "replace_tag A [a@4]\nreplace_rules FOO\nbayes_ignore_header X-Foo\n"
        "priority FOO -100\n"
    )
    assert config.required_score == 6.5
    assert config.rewrite_header == {"subject": "***SPAM***"}
    assert config.add_header == [("all", "Status", "_YESNO_, score=_SCORE_")]
    assert config.report_template[0].startswith("Content analysis details:")
    assert config.replace_tag == {"A": "[a@4]"}
    assert config.replace_rules == {"FOO"}
    assert config.bayes_ignore_header == {"x-foo"}
    assert config.priority == {"FOO": -100}


def test_replace_tags_expand_with_inter_and_post():
    config = _parse(
        "replace_tag V [vV]\nreplace_tag I [iI1]\nreplace_inter W1 \\W?\n"
        "replace_post P2 {1,2}\n"
        "body FUZZY /<inter W1><post P2><V><I>/\nreplace_rules FUZZY\n"
    )
    rules = compile_rules(config)
    pattern = rules.body_rules[0].regex.pattern
    assert pattern == rb"[vV]{1,2}\W?[iI1]{1,2}"


def test_untranslatable_regex_and_unknown_eval_are_skipped_and_counted():
    config = _parse(
        "body UNI /\\p{Lu}/\n"
        "body GOOD /good/\n"
        "header NOPE eval:no_such_test()\n"
        "meta BAD (GOOD &&\n"
    )
    rules = compile_rules(config)
    assert set(rules.skipped) == {"UNI", "NOPE", "BAD"}
    assert rules.skipped["NOPE"] == "eval test no_such_test not implemented"
    assert rules.skipped["UNI"].startswith("regex not translatable")
    assert [r.name for r in rules.body_rules] == ["GOOD"]


def test_rule_files_reject_a_folder_without_rules(tmp_path: Path):
    with pytest.raises(ValueError, match="holds no \\*.cf files"):
        rule_files(tmp_path)
    (tmp_path / "b.cf").write_text("body B /b/\n")
    (tmp_path / "a.cf").write_text("body A /a/\nbody B /first/\n")
    config = parse_files(rule_files(tmp_path))
    assert config.files == ["a.cf", "b.cf"]
    assert config.rules["B"].text == "/b/"  # b.cf is read after a.cf
