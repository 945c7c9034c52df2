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
