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
