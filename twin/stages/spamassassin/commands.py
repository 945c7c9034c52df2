"""Library functions behind the ``twin spamassassin`` commands.

``score_files`` scores message files as ``spamassassin -t`` does and prints,
per file, the file name and the report block (or, with ``as_json``, one JSON
object a line: ``file``, ``score``, ``required``, ``is_spam``, ``tests`` as
``[{name, score}]``).  A file that is not a mail message gets one error line on
``err`` and the other files are still scored; the exit code is 2 if any file
failed, else 0.  ``learn`` trains a Bayes database from folders of spam and
ham (one message a file, as the SpamAssassin public corpus), as
``sa-learn --spam/--ham``.  The skipped-rule summary is said once, on ``err``.

``load_rules`` parses and compiles a rules folder (the shipped
``twin/data/spamassassin`` by default) once per process and keeps it; given a
cache folder it also keeps the compiled set there, keyed by a digest of the
rule files and of the package's code, for the next process.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import sys
from pathlib import Path
from typing import TextIO

from twin.stages.spamassassin import hsgate
from twin.stages.spamassassin.bayes import BayesDB
from twin.stages.spamassassin.conf import parse_files, rule_files
from twin.stages.spamassassin.message import NotAMessage, ParsedMessage
from twin.stages.spamassassin.rules import RuleSet, compile_rules
from twin.stages.spamassassin.stage import SpamFilter, SpamFilterSettings

__all__ = ["DEFAULT_RULES_DIR", "learn", "load_rules", "score_files", "skipped_summary"]

DEFAULT_RULES_DIR = Path(__file__).resolve().parents[2] / "data" / "spamassassin"


def _digest(files: list[Path]) -> str:
    """A key for a compiled rule set: the rule files and this package's code."""
    digest = hashlib.sha256(sys.version.encode() + hsgate.version().encode())
    code = sorted(Path(__file__).parent.glob("*.py"))
    for path in [*files, *code]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:32]


_LOADED: dict[str, tuple[RuleSet, str, set[str]]] = {}
"""By rules folder: its compiled set in this process, the digest of the files
it was made from, and the cache folders known to hold it (``_load``)."""


def _load(rules_dir: str, cache_dir: str) -> RuleSet:
    """The compiled set of *rules_dir*, once per process whatever the cache
    folder (a test suite asks for the shipped rules with and without one: it
    compiled them twice); kept in *cache_dir* too, if it is not there yet,
    under the digest of the files it was made from (not of the files now:
    edited since, they would name a stale set)."""
    kept = _LOADED.get(rules_dir)
    if kept is None:
        digest = _digest(rule_files(Path(rules_dir)))
        kept = (_compiled(rules_dir, cache_dir, digest), digest, set())
        _LOADED[rules_dir] = kept
    rules, digest, caches = kept
    if cache_dir and cache_dir not in caches:
        cached = _cache_file(cache_dir, digest)
        if not cached.is_file():
            _store(rules, cached)
        caches.add(cache_dir)
    return rules


def _cache_file(cache_dir: str, digest: str) -> Path:
    return Path(cache_dir) / f"sa-rules-{digest}.pickle"


def _compiled(rules_dir: str, cache_dir: str, digest: str | None = None) -> RuleSet:
    """Load *rules_dir*'s set from *cache_dir* ("": none), or compile it (and
    keep it there); *digest*: of its files, when known."""
    files = rule_files(Path(rules_dir))
    cached = None
    if cache_dir:
        cached = _cache_file(cache_dir, digest or _digest(files))
    if cached is not None and cached.is_file():
        try:
            # Streamed from the file: no copy of the whole pickle in memory.
            with cached.open("rb") as stream:
                rules = pickle.load(stream)
        except Exception:  # noqa: BLE001 -- a damaged cache file is rebuilt
            rules = None
        if isinstance(rules, RuleSet):
            return rules
    rules = compile_rules(parse_files(files))
    if cached is not None:
        _store(rules, cached)
    return rules


def _store(rules: RuleSet, cached: Path) -> None:
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
        with partial.open("wb") as stream:  # streamed, as it is read
            pickle.dump(rules, stream, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(partial, cached)
    except OSError:  # an unwritable cache only costs the next compile
        pass


def load_rules(rules_dir: Path | None = None, cache_dir: Path | None = None) -> RuleSet:
    """The compiled rule set of a folder (cached per process).

    With ``cache_dir`` the compiled set is also kept there as a pickle named
    by a digest of the rule files and of this package's code, and loaded from
    it when present (about half the compile time; a trusted folder only:
    loading a pickle runs code).
    """
    return _load(
        str((rules_dir or DEFAULT_RULES_DIR).resolve()),
        str(cache_dir.resolve()) if cache_dir is not None else "",
    )


def skipped_summary(rules: RuleSet) -> str:
    """One line saying how many rules were skipped and why."""
    reasons: dict[str, int] = {}
    for reason in rules.skipped.values():
        key = reason.split(":")[0]
        reasons[key] = reasons.get(key, 0) + 1
    top = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items(), key=lambda x: -x[1]))
    return f"note: {len(rules.skipped)} rules skipped, {rules.rule_count} active" + (
        f" ({top})" if top else ""
    )


def score_files(
    paths: list[Path],
    rules_dir: Path | None,
    bayes_db: Path | None,
    as_json: bool,
    out: TextIO,
    err: TextIO,
    *,
    ocr: bool = True,
    cache_dir: Path | None = None,
) -> int:
    """Score message files; print reports (or JSON lines); return the exit code.

    With *ocr* FuzzyOCR runs after the rules, as the plugin did on the seed's
    gateway, and its hits (FUZZY_OCR, FUZZY_OCR_WRONG_CTYPE, ...) are tests
    like the others. *cache_dir* keeps the compiled rules (see ``load_rules``).
    """
    try:
        rules = load_rules(rules_dir, cache_dir)
        bayes = BayesDB.load(bayes_db) if bayes_db is not None else None
    except ValueError as exc:
        err.write(f"error: {exc}\n")
        return 2
    if rules.skipped:
        err.write(skipped_summary(rules) + "\n")
    plugins: tuple[tuple[str, object], ...] = ()
    if ocr:
        from twin.stages.ocr.stage import FuzzyOcr

        plugins = (("ocr", FuzzyOcr()),)
    spam_filter = SpamFilter(
        SpamFilterSettings(use_awl=False, autolearn=False),
        rules,
        bayes,
        None,
        plugins=plugins,
    )
    failed = 0
    for path in paths:
        try:
            data = Path(path).read_bytes()
            result = spam_filter.check(data, now=0.0)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            err.write(f"error: {path}: not scored: {reason}\n")
            failed += 1
            continue
        if as_json:
            record = {
                "file": str(path),
                "score": round(result.score, 3),
                "required": result.required_score,
                "is_spam": result.decision.value == "spam",
                "tests": [{"name": n, "score": s} for n, s in result.tests],
            }
            out.write(json.dumps(record) + "\n")
        else:
            out.write(f"{path}\n{spam_filter.report(result)}\n")
    return 2 if failed else 0


def _message_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name != "cmds")


def learn(
    spam_dirs: list[Path], ham_dirs: list[Path], db_path: Path, out: TextIO
) -> int:
    """Learn folders of spam and ham into the Bayes database at ``db_path``."""
    bayes = BayesDB.load(db_path) if db_path.exists() else BayesDB()
    counts = {"spam": 0, "ham": 0, "skipped": 0}
    for folders, is_spam in ((spam_dirs, True), (ham_dirs, False)):
        for folder in folders:
            for path in _message_files(Path(folder)):
                try:
                    msg = ParsedMessage(path.read_bytes())
                except NotAMessage:
                    counts["skipped"] += 1
                    continue
                bayes.learn(msg, is_spam)
                counts["spam" if is_spam else "ham"] += 1
    bayes.save(db_path)
    out.write(
        f"learned {counts['spam']} spam and {counts['ham']} ham "
        f"({counts['skipped']} files not mail); database now holds "
        f"{bayes.nspam} spam, {bayes.nham} ham, {len(bayes.tokens)} tokens\n"
    )
    return 0
