"""The spam filter stage: SpamAssassin on the mail gateway (spamd/spamc).

Twins one ``spamc``-to-``spamd`` check of a message: SpamAssassin's local
tests (no network tests in the twin), Bayes and the auto-whitelist.  It
decides HAM or SPAM (score >= ``required_score``, FACTS.md "SpamAssassin":
5.0), lists the tests hit with their points, adds ``X-Spam-Status``,
``X-Spam-Flag``, ``X-Spam-Level`` and ``X-Spam-Checker-Version`` and tags the
Subject of spam with ``subject_tag`` (opt-in; the ECE system used
``***SPAM***``).  Score set 0 is used without Bayes and set 2 with Bayes (once
Bayes has learned 200 spam and 200 ham).  Auto-learning (``autolearn``) feeds
Bayes messages whose learning score, computed in the non-Bayes set without
``learn``/``noautolearn``/``userconf`` rules, is below 0.1 (ham) or at least
12.0 with 3 header and 3 body points (spam), as SpamAssassin does.  Messages
over ``max_message_bytes`` are passed unscanned, as spamc does.

Scenario keys (``pipeline: - {stage: spamfilter, ...}``): ``required_score``,
``subject_tag``, ``use_bayes``, ``use_awl``, ``autolearn``,
``max_message_bytes``, ``memo_messages``.

Counts CPU units (``CPU_UNITS``): one ``spamfilter.message`` per check, message
bytes parsed, rules evaluated, literal prefilter checks, bytes scanned by
regexes, Bayes tokens looked up and learned, AWL lookups.  Raises
``ValueError`` for settings out of range and for input that is not a mail
message.
"""

from __future__ import annotations

import enum
import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass

from twin.stages.spamassassin.awl import AutoWhitelist
from twin.stages.spamassassin.bayes import BayesDB
from twin.stages.spamassassin.evals import Scan, check_bayes
from twin.stages.spamassassin.message import NotAMessage, ParsedMessage
from twin.stages.spamassassin.report import render_report, rewrite_message, spam_headers
from twin.stages.spamassassin.rules import RuleSet
from twin.stages.work import Work

__all__ = [
    "CPU_UNITS",
    "Decision",
    "SpamFilter",
    "SpamFilterSettings",
    "SpamResult",
]

CPU_UNITS: dict[str, str] = {
    "spamfilter.message": "one message checked (spamc/spamd round, setup, scoring)",
    "spamfilter.byte": "one octet of the message parsed and decoded",
    "spamfilter.rule": "one rule evaluated (regex rule, eval test or meta)",
    "spamfilter.prefilter": "one literal looked for in the rendered body",
    "spamfilter.regex_byte": "one octet scanned by a rule's regular expression",
    "spamfilter.token": "one Bayes token tokenized and looked up",
    "spamfilter.token_learned": "one Bayes token count updated by auto-learning",
    "spamfilter.awl": "one auto-whitelist lookup and update",
}
AUTOLEARN_HAM_BELOW = 0.1  # FACTS.md "SpamAssassin": auto-learn below 0.1 (ham)
AUTOLEARN_SPAM_FROM = 12.0  # FACTS.md: ... and above 12.0 (spam)
AUTOLEARN_MIN_HEADER_POINTS = 3.0  # SpamAssassin's AutoLearnThreshold plugin
AUTOLEARN_MIN_BODY_POINTS = 3.0
_NO_LEARN_FLAGS = frozenset(("learn", "noautolearn", "userconf"))
_BODY_KINDS = frozenset(("body", "rawbody", "uri", "full"))
# A memo entry: hit counts, rules evaluated, regex octets, prefilter checks.
_Memo = tuple[dict[str, float], int, int, int]


class Decision(enum.Enum):
    """The filter's verdict."""

    HAM = "ham"
    SPAM = "spam"


@dataclass(frozen=True, slots=True)
class SpamFilterSettings:
    """Settings of the spam filter (local.cf and spamc)."""

    required_score: float = 5.0  # FACTS.md "SpamAssassin": required_score 5
    subject_tag: str = ""  # rewrite_header Subject; opt-in (ECE used "***SPAM***")
    use_bayes: bool = True  # SpamAssassin default use_bayes 1
    use_awl: bool = True  # the ECE gateway ran the AWL (sample report)
    autolearn: bool = True  # SpamAssassin default bayes_auto_learn 1
    max_message_bytes: int = 512_000  # spamc -s default: 500 KB
    # Twin speed-up, not a SpamAssassin setting: the hits of every rule but
    # the Bayes tests and the metas (which are re-evaluated each time) are
    # kept for this many distinct messages and reused; the hits and the Work
    # reported are the same as a fresh scan's.  0 turns it off.
    memo_messages: int = 20_000
    # Twin speed-up: let the Hyperscan gates (``hsgate``; built when the
    # ``hyperscan`` package imports and MAILTWIN_HYPERSCAN is not 0) pick the
    # regex rules worth running.  Same hits and Work with it off.
    use_hyperscan: bool = True

    def __post_init__(self) -> None:
        if not math.isfinite(self.required_score) or not (
            -1000.0 <= self.required_score <= 1000.0
        ):
            raise ValueError(
                f"required_score {self.required_score} outside the range -1000..1000"
            )
        if self.max_message_bytes <= 0:
            raise ValueError(
                f"max_message_bytes {self.max_message_bytes} must be > 0 bytes"
            )
        if self.memo_messages < 0:
            raise ValueError(f"memo_messages {self.memo_messages} must be >= 0")
        if "\n" in self.subject_tag or "\r" in self.subject_tag:
            raise ValueError(f"subject_tag {self.subject_tag!r} must be one line")


@dataclass(frozen=True, slots=True)
class SpamResult:
    """One check: decision, score, tests hit and the rewritten message."""

    decision: Decision
    reason: str
    score: float
    required_score: float
    tests: tuple[tuple[str, float], ...]
    message: bytes
    autolearn: str
    bayes_probability: float | None
    work: Work
    plugins: tuple[tuple[str, object], ...] = ()
    """(name, result) of each plugin run after the rules, e.g. ("ocr", OcrResult);
    their work is in their results, not in ``work`` (it is their stage's)."""
    descriptions: tuple[tuple[str, str], ...] = ()
    """Report descriptions the plugins gave their hits (rule name, text)."""


class SpamFilter:
    """SpamAssassin with compiled rules, an optional Bayes DB and AWL."""

    def __init__(
        self,
        settings: SpamFilterSettings,
        rules: RuleSet,
        bayes: BayesDB | None = None,
        awl: AutoWhitelist | None = None,
        plugins: tuple[tuple[str, object], ...] = (),
    ) -> None:
        self.settings = settings
        self.rules = rules
        self.bayes = bayes
        self.awl = awl
        self.plugins = tuple(plugins)
        """(name, plugin) run after the rules and before AWL, as FuzzyOCR's eval
        runs at priority 900: ``plugin.check(message, now, score)`` returns a
        result with ``hits`` ((rule, points, description), ...) and ``work``."""
        self._memo: OrderedDict[bytes, _Memo] = OrderedDict()
        # The memo keeps run_static's hits, which must not read Bayes: a
        # header rule calling check_bayes (none ships) turns it off.
        self._memo_ok = not any(
            getattr(rule, "function", None) is check_bayes
            for rule in rules.header_rules
        )

    def check(
        self, message: bytes, now: float, sender: str = "", client_ip: str = ""
    ) -> SpamResult:
        """Score one message at simulated time ``now`` (seconds).

        ``now`` does not enter the decision: SpamAssassin's date tests compare
        the Date: header with the Received: headers.  ``sender`` (the envelope
        or From: address; From: when empty) and ``client_ip`` key the AWL.
        """
        settings = self.settings
        size = len(message)
        if size > settings.max_message_bytes:
            return SpamResult(
                decision=Decision.HAM,
                reason=f"not scanned: {size} bytes over max_message_bytes "
                f"{settings.max_message_bytes}",
                score=0.0,
                required_score=settings.required_score,
                tests=(),
                message=message,
                autolearn="no",
                bayes_probability=None,
                work=Work(cpu={"spamfilter.message": 1}),
            )
        try:
            msg = ParsedMessage(message)
        except NotAMessage as exc:
            raise ValueError(f"spamfilter input of {size} bytes: {exc}") from None
        scan = Scan(msg=msg)
        tokens = 0
        bayes = self.bayes if settings.use_bayes else None
        if bayes is not None:
            verdict = bayes.classify(msg)
            tokens = verdict.tokens_looked_up
            scan.bayes_probability = verdict.probability
        score_set = 2 if scan.bayes_probability is not None else 0
        hits = self._run_rules(scan, message)
        config = self.rules.config
        tests: list[tuple[str, float]] = []
        for name in hits:
            if name.startswith("__"):
                continue
            points = config.score_of(name, score_set)
            if points:
                tests.append((name, points))
        score = sum(points for _, points in tests)
        ran = []
        described = []
        for name, plugin in self.plugins:
            outcome = plugin.check(message, now, round(score, 3))
            ran.append((name, outcome))
            for rule, points, description in outcome.hits:
                tests.append((rule, points))
                described.append((rule, description))
                score += points
        awl_units = 0
        if settings.use_awl and self.awl is not None:
            address = (
                sender or (msg.header("From:addr") or b"").decode("latin-1").strip()
            )
            delta = round(self.awl.adjust(address, client_ip, score), 3)
            awl_units = 1
            if delta:
                tests.append(("AWL", delta))
                score += delta
        is_spam = round(score, 3) >= settings.required_score
        autolearn, learned = self._autolearn(msg, hits, score_set, is_spam)
        headers = spam_headers(
            is_spam, score, settings.required_score, [t for t, _ in tests], autolearn
        )
        rewritten = rewrite_message(
            message, headers, settings.subject_tag if is_spam else ""
        )
        work = Work(
            cpu={
                kind: units
                for kind, units in (
                    ("spamfilter.message", 1),
                    ("spamfilter.byte", size),
                    ("spamfilter.rule", scan.rules_evaluated),
                    ("spamfilter.prefilter", scan.prefilter_checks),
                    ("spamfilter.regex_byte", scan.regex_bytes),
                    ("spamfilter.token", tokens),
                    ("spamfilter.token_learned", learned),
                    ("spamfilter.awl", awl_units),
                )
                if units
            }
        )
        verdict_word = "spam" if is_spam else "ham"
        return SpamResult(
            decision=Decision.SPAM if is_spam else Decision.HAM,
            reason=f"{verdict_word}: score {score:.1f}, required "
            f"{settings.required_score:.1f}, {len(tests)} tests hit",
            score=round(score, 3),
            required_score=settings.required_score,
            tests=tuple(tests),
            message=rewritten,
            autolearn=autolearn,
            bayes_probability=scan.bayes_probability,
            work=work,
            plugins=tuple(ran),
            descriptions=tuple(described),
        )

    def _run_rules(self, scan: Scan, message: bytes) -> dict[str, float]:
        """Run the rules, reusing the Bayes-independent hits of the same message."""
        limit = self.settings.memo_messages
        if not limit or not self._memo_ok:
            return self.rules.run(scan, self.settings.use_hyperscan)
        key = hashlib.blake2b(message, digest_size=16).digest()
        memo = self._memo.get(key)
        if memo is not None:
            self._memo.move_to_end(key)
            static = memo[0]
            scan.rules_evaluated, scan.regex_bytes, scan.prefilter_checks = memo[1:]
        else:
            static = self.rules.run_static(scan, self.settings.use_hyperscan)
            self._memo[key] = (
                static, scan.rules_evaluated, scan.regex_bytes, scan.prefilter_checks
            )
            if len(self._memo) > limit:
                self._memo.popitem(last=False)
        return self.rules.finish(scan, static)

    def _autolearn(
        self, msg: ParsedMessage, hits: dict[str, float], score_set: int, is_spam: bool
    ) -> tuple[str, int]:
        """Auto-learn into Bayes; return (autolearn status, tokens updated)."""
        if not (self.settings.autolearn and self.settings.use_bayes and self.bayes):
            return "disabled", 0
        config = self.rules.config
        learn_set = 0 if score_set == 2 else score_set  # the set without Bayes
        total = header = body = 0.0
        for name in hits:
            if name.startswith("__") or config.tflags.get(name, frozenset()) & (
                _NO_LEARN_FLAGS
            ):
                continue
            points = config.score_of(name, learn_set)
            total += points
            kind = config.rules[name].kind if name in config.rules else ""
            if kind == "header":
                header += points
            elif kind in _BODY_KINDS:
                body += points
        if total < AUTOLEARN_HAM_BELOW and not is_spam:
            return "ham", self.bayes.learn(msg, is_spam=False)
        if (
            total >= AUTOLEARN_SPAM_FROM
            and is_spam
            and header >= AUTOLEARN_MIN_HEADER_POINTS
            and body >= AUTOLEARN_MIN_BODY_POINTS
        ):
            return "spam", self.bayes.learn(msg, is_spam=True)
        return "no", 0

    def report(self, result: SpamResult) -> str:
        """The ``spamassassin -t`` report block for a result."""
        describe = dict(self.rules.config.describe)
        describe.update(result.descriptions)
        rows = []
        for name, points in result.tests:
            extra = ""
            if name.startswith("BAYES_") and result.bayes_probability is not None:
                extra = f"[score: {result.bayes_probability:.4f}]"
            if name == "AWL":
                description = "AWL: Adjusted score from AWL reputation of From: address"
            else:
                description = describe.get(name, "")
            rows.append((name, points, description, extra))
        return render_report(result.score, result.required_score, rows)
