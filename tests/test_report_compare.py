"""Side-by-side tables of run folders."""

import json

import pytest

from twin.cli import main
from twin.errors import TwinError
from twin.report.compare import compare


def run_folder(path, summary):
    path.mkdir()
    (path / "summary.json").write_text(json.dumps(summary))
    return path


def test_markdown_and_text_tables(tmp_path):
    a = run_folder(tmp_path / "sun", {"messages.offered": 1000.0, "util.mail.cpu": 0.5,
                                      "latency.delivery.p95": 12.25})
    b = run_folder(tmp_path / "dell", {"messages.offered": 1000.0,
                                       "util.mail.cpu": 0.125})
    lines = compare([a, b], markdown=True)
    assert lines[0] == "| metric | sun | dell |"
    assert "| messages.offered | 1,000 | 1,000 |" in lines
    assert "| latency.delivery.p95 | 12.25 | - |" in lines
    assert "| util.mail.cpu | 0.5 | 0.125 |" in lines
    text = compare([a, b], ["util.mail.cpu"])
    assert text[1].split() == ["util.mail.cpu", "0.5", "0.125"]


def test_missing_run_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(TwinError, match="no summary.json"):
        compare([tmp_path / "nope"])
    assert main(["compare", str(tmp_path / "nope")]) == 1
    assert "no summary.json" in capsys.readouterr().err
