"""Golden outcomes: the scorer's decisions must not move when it is sped up.

``tests/data/spamassassin-golden/golden.json`` holds, for a fixed set of
messages, the score, the sorted names of the rules hit and the Bayes
probability (plus the order of the tests and a digest of the rewritten message,
with its X-Spam-* headers) the engine gave before the speed-up work (generated once with
``PYTHONPATH=. python tests/test_spamassassin_golden.py``).  Each test re-scores its
messages with the shipped rules and asserts the same outcome (scores to
1e-9).  Messages are the ones in ``tests/data/spamassassin``, SpamAssassin's
``t/data`` (nice, spam) and a sample of the SpamAssassin public corpus; the
last two are read from /work/shared/data and skipped when absent.  Bayes
(score set 2) is trained on a fixed part of the corpus that the sample does
not use.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import sys
from pathlib import Path

import pytest

from twin.stages.spamassassin import hsgate
from twin.stages.spamassassin.bayes import BayesDB
from twin.stages.spamassassin.commands import load_rules
from twin.stages.spamassassin.evals import Scan
from twin.stages.spamassassin.message import NotAMessage, ParsedMessage
from twin.stages.spamassassin.stage import SpamFilter, SpamFilterSettings

LOCAL = Path(__file__).parent / "data" / "spamassassin"
GOLDEN = Path(__file__).parent / "data" / "spamassassin-golden" / "golden.json"
CORPUS = Path("/work/shared/data/sa-publiccorpus")
T_DATA = Path("/work/shared/data/spamassassin-t-data")
SAMPLE_EVERY = 20  # corpus sample: every 20th message (index % 20 == 0)
TRAIN_EACH = 220  # Bayes: the first 220 spam and ham with index % 5 == 1..4


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name != "cmds")


def _groups() -> dict[str, list[Path]]:
    """Message files per group (empty when the data is absent)."""
    corpus: list[Path] = []
    for folder in ("easy_ham", "spam"):
        corpus += _files(CORPUS / folder)[::SAMPLE_EVERY]
    return {
        "local": sorted(LOCAL.glob("*.eml")),
        "t-data": _files(T_DATA / "nice") + _files(T_DATA / "spam"),
        "corpus": corpus,
    }


def _bayes() -> BayesDB | None:
    if not CORPUS.is_dir():
        return None
    bayes = BayesDB()
    for folder, is_spam in (("spam", True), ("easy_ham", False)):
        files = [p for i, p in enumerate(_files(CORPUS / folder)) if i % 5]
        for path in files[:TRAIN_EACH]:
            try:
                bayes.learn(ParsedMessage(path.read_bytes()), is_spam)
            except NotAMessage:
                continue
    return bayes


def _key(path: Path) -> str:
    for root in (LOCAL, CORPUS, T_DATA):
        if path.is_relative_to(root):
            return f"{root.name}/{path.relative_to(root)}"
    raise AssertionError(path)


def _outcomes(
    paths: list[Path], bayes: BayesDB | None, use_hyperscan: bool = True
) -> dict[str, dict]:
    settings = SpamFilterSettings(
        use_awl=False, autolearn=False, memo_messages=0, use_hyperscan=use_hyperscan
    )
    spam_filter = SpamFilter(settings, load_rules(), bayes, None)
    out: dict[str, dict] = {}
    for path in paths:
        try:
            result = spam_filter.check(path.read_bytes(), now=0.0)
        except ValueError as exc:
            out[_key(path)] = {"error": str(exc)}
            continue
        out[_key(path)] = {
            "score": result.score,
            "raw_score": sum(points for _, points in result.tests),
            "tests": sorted(name for name, _ in result.tests),
            "order": [name for name, _ in result.tests],
            "message": hashlib.blake2b(result.message, digest_size=12).hexdigest(),
            "bayes": result.bayes_probability,
            "decision": result.decision.value,
        }
    return out


def _generate() -> None:
    groups = _groups()
    if not groups["corpus"] or not groups["t-data"]:
        raise SystemExit("shared data absent: cannot generate the golden file")
    bayes = _bayes()
    golden = {
        "set0": {name: _outcomes(paths, None) for name, paths in groups.items()},
        "set2": {name: _outcomes(paths, bayes) for name, paths in groups.items()},
    }
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text())


@pytest.fixture(scope="module")
def trained() -> BayesDB | None:
    return _bayes()


def _assert_same(expected: dict[str, dict], got: dict[str, dict]) -> None:
    assert sorted(got) == sorted(expected)
    for key, want in expected.items():
        have = got[key]
        if "error" in want:
            assert have == want, key
            continue
        assert have["tests"] == want["tests"], key
        assert have["order"] == want["order"], key
        assert have["message"] == want["message"], key
        assert have["decision"] == want["decision"], key
        assert abs(have["score"] - want["score"]) <= 1e-9, key
        assert abs(have["raw_score"] - want["raw_score"]) <= 1e-9, key
        if want["bayes"] is None:
            assert have["bayes"] is None, key
        else:
            assert abs(have["bayes"] - want["bayes"]) <= 1e-9, key


@pytest.mark.parametrize("group", ["local", "t-data", "corpus"])
def test_no_bayes_outcomes_match_golden(golden: dict, group: str) -> None:
    paths = _groups()[group]
    if not paths:
        pytest.skip(f"no {group} messages (shared data absent)")
    _assert_same(golden["set0"][group], _outcomes(paths, None))


@pytest.mark.parametrize("group", ["local", "t-data", "corpus"])
def test_bayes_outcomes_match_golden(
    golden: dict, trained: BayesDB | None, group: str
) -> None:
    if trained is None:
        pytest.skip(f"corpus {CORPUS} absent: Bayes cannot be trained")
    paths = _groups()[group]
    if not paths:
        pytest.skip(f"no {group} messages (shared data absent)")
    _assert_same(golden["set2"][group], _outcomes(paths, trained))


@pytest.mark.parametrize("group", ["local", "t-data", "corpus"])
def test_pure_re_path_matches_golden(golden: dict, group: str) -> None:
    """Hyperscan gates off (as where the package does not import)."""
    paths = _groups()[group]
    if not paths:
        pytest.skip(f"no {group} messages (shared data absent)")
    _assert_same(golden["set0"][group], _outcomes(paths, None, use_hyperscan=False))


@pytest.mark.parametrize("group", ["local", "t-data", "corpus"])
def test_hyperscan_gates_change_no_hit_and_no_work(
    trained: BayesDB | None, group: str
) -> None:
    """With and without the Hyperscan gates: the same hit counts (every rule,
    ``__`` sub-rules included), results and Work, message by message."""
    paths = _groups()[group]
    if not paths:
        pytest.skip(f"no {group} messages (shared data absent)")
    rules = load_rules()
    if hsgate.available():
        assert rules.gated
    filters = [
        SpamFilter(
            SpamFilterSettings(
                use_awl=False, autolearn=False, memo_messages=0, use_hyperscan=flag
            ),
            rules,
            trained,
            None,
        )
        for flag in (True, False)
    ]
    for path in paths:
        data = path.read_bytes()
        try:
            ParsedMessage(data)
        except NotAMessage:
            continue
        fast, plain = (f.check(data, now=0.0) for f in filters)
        assert fast == plain, path
        hits = [
            rules.run(Scan(msg=ParsedMessage(data)), hyperscan=flag)
            for flag in (True, False)
        ]
        assert hits[0] == hits[1], path


def test_memo_across_bayes_verdicts_matches_golden(
    golden: dict, trained: BayesDB | None
) -> None:
    """One filter with the memo: Bayes-scored, then the same messages without
    Bayes (memo hits): golden outcomes, and the Work of fresh checks."""
    if trained is None:
        pytest.skip(f"corpus {CORPUS} absent: Bayes cannot be trained")
    paths = _groups()["t-data"][:40]
    if not paths:
        pytest.skip("no t-data messages (shared data absent)")
    settings = SpamFilterSettings(use_awl=False, autolearn=False)
    memo = SpamFilter(settings, load_rules(), trained, None)
    fresh_settings = SpamFilterSettings(use_awl=False, autolearn=False, memo_messages=0)
    for bayes, score_set in ((trained, "set2"), (None, "set0")):
        memo.bayes = bayes
        fresh = SpamFilter(fresh_settings, load_rules(), bayes, None)
        for path in paths:
            data = path.read_bytes()
            try:
                got = memo.check(data, now=0.0)
            except ValueError:
                continue
            want = golden[score_set]["t-data"][_key(path)]
            assert sorted(name for name, _ in got.tests) == want["tests"], path
            assert [name for name, _ in got.tests] == want["order"], path
            assert abs(got.score - want["score"]) <= 1e-9, path
            assert got.work == fresh.check(data, now=0.0).work, path
    assert len(memo._memo) == len(paths) - sum(
        "error" in golden["set0"]["t-data"][_key(p)] for p in paths
    )


def test_pickled_rule_set_matches_golden(golden: dict) -> None:
    """The rule set as the compile cache stores it scores exactly the same."""
    rules = pickle.loads(pickle.dumps(load_rules(), protocol=pickle.HIGHEST_PROTOCOL))
    assert rules is not load_rules()
    assert rules.rule_count == load_rules().rule_count
    paths = _groups()["local"] + _groups()["t-data"][:30]
    settings = SpamFilterSettings(use_awl=False, autolearn=False, memo_messages=0)
    spam_filter = SpamFilter(settings, rules, None, None)
    for path in paths:
        want = golden["set0"]["local" if path.parent == LOCAL else "t-data"][_key(path)]
        try:
            got = spam_filter.check(path.read_bytes(), now=0.0)
        except ValueError:
            assert "error" in want
            continue
        assert [name for name, _ in got.tests] == want["order"], path
        assert abs(got.score - want["score"]) <= 1e-9, path


def test_golden_covers_spam_and_ham(golden: dict) -> None:
    decisions = [
        entry.get("decision")
        for group in golden["set2"].values()
        for entry in group.values()
    ]
    assert decisions.count("spam") >= 20
    assert decisions.count("ham") >= 100


if __name__ == "__main__":  # regenerate (only from a trusted engine)
    _generate()
    sys.exit(0)
