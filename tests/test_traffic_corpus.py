"""Real messages as workload content, labelled by folder name."""

from pathlib import Path

import pytest

from twin.errors import ScenarioError
from twin.scenario import load_scenario
from twin.traffic.corpus import Corpus

ROOT = Path(__file__).parent.parent / "scenarios"
SHARED = Path(__file__).parent.parent.parent / "shared" / "data" / "sa-publiccorpus"


def make_corpus(tmp_path):
    (tmp_path / "easy_ham").mkdir()
    (tmp_path / "spam").mkdir()
    (tmp_path / "easy_ham" / "0001").write_bytes(
        b"From someone Mon Jan 1 00:00:00 2002\nSubject: hi\n\nhello\n")
    (tmp_path / "easy_ham" / "cmds").write_bytes(b"not a message\n")
    (tmp_path / "spam" / "0001").write_bytes(b"Subject: buy\r\n\r\nnow")
    return tmp_path


def test_labels_by_folder_and_crlf(tmp_path):
    corpus = Corpus(make_corpus(tmp_path))
    assert corpus.count("ham") == 1 and corpus.count("spam") == 1
    assert corpus.message(False, 7) == b"Subject: hi\r\n\r\nhello\r\n"
    assert corpus.message(True, 7) == b"Subject: buy\r\n\r\nnow\r\n"


def test_missing_label_or_folder(tmp_path):
    (tmp_path / "spam").mkdir()
    (tmp_path / "spam" / "1").write_bytes(b"Subject: x\n\ny\n")
    with pytest.raises(ValueError, match="no ham messages"):
        Corpus(tmp_path)
    with pytest.raises(ValueError, match="no such folder"):
        Corpus(tmp_path / "nope")
    with pytest.raises(ScenarioError, match="traffic.corpus: corpus"):
        load_scenario(ROOT / "ece-2007-dell.yaml", [f"traffic.corpus={tmp_path}"])


def test_the_choice_is_stable_and_spread():
    if not SHARED.is_dir():
        pytest.skip("../shared/data/sa-publiccorpus is absent (not redistributable)")
    corpus = Corpus(SHARED, seed=5)
    picks = {corpus.message(True, key) for key in range(200)}
    assert len(picks) > 100
    assert corpus.message(False, 42) == Corpus(SHARED, seed=5).message(False, 42)
