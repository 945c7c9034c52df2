"""Test-session settings shared by every test."""

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Keep derived caches (compiled rules) in the session's temporary folder.

    Runs started by tests, in process or as child processes, share it, and
    nothing is written to the user's ~/.cache.
    """
    before = os.environ.get("MAILTWIN_CACHE")
    os.environ["MAILTWIN_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if before is None:
        del os.environ["MAILTWIN_CACHE"]
    else:
        os.environ["MAILTWIN_CACHE"] = before


@pytest.fixture
def both_ways():
    """``both_ways(compiled, data)``: (hits, rules evaluated, regex bytes,
    prefilter checks) of compiled SpamAssassin rules on one message, with the
    Hyperscan gates and without, to compare a gate against plain ``re``."""
    from twin.stages.spamassassin.evals import Scan
    from twin.stages.spamassassin.message import ParsedMessage

    def run(compiled, data: bytes) -> list[tuple]:
        results = []
        for gated in (True, False):
            scan = Scan(ParsedMessage(data))
            hits = compiled.run(scan, hyperscan=gated)
            results.append(
                (hits, scan.rules_evaluated, scan.regex_bytes, scan.prefilter_checks)
            )
        return results

    return run


@pytest.fixture
def shipped_body_rules():
    """``shipped_body_rules(names)``: the shipped rules *names* compiled alone
    as body rules (each with its prefilter, finders and gates' patterns)."""
    from twin.stages.spamassassin import rules
    from twin.stages.spamassassin.commands import DEFAULT_RULES_DIR
    from twin.stages.spamassassin.conf import parse_files, rule_files
    from twin.stages.spamassassin.prefilter import TrigramIndex

    def compile_(names: tuple[str, ...]) -> list:
        config = parse_files(rule_files(DEFAULT_RULES_DIR))
        index = TrigramIndex()
        return [
            rules._regex_rule(name, "body", config.rules[name].text, config, index)
            for name in names
        ]

    return compile_


SA_CORPUS = "/work/shared/data/sa-publiccorpus"


@pytest.fixture
def corpus_messages():
    """``corpus_messages(every)``: every *every*-th message of the public
    corpus's spam, then easy_ham, parsed (skips when the corpus is absent)."""
    from pathlib import Path

    from twin.stages.spamassassin.message import NotAMessage, ParsedMessage

    def read(every: int) -> list:
        corpus = Path(SA_CORPUS)
        if not corpus.is_dir():
            pytest.skip(f"no corpus at {corpus}")
        messages = []
        for folder in ("spam", "easy_ham"):
            paths = sorted(p for p in (corpus / folder).iterdir() if p.is_file())
            for path in paths[::every]:
                try:
                    messages.append(ParsedMessage(path.read_bytes()))
                except NotAMessage:
                    continue
        return messages

    return read
