"""Rule compilation and evaluation: SpamAssassin's Check plugin, twinned.

``compile_rules(config)`` turns a parsed ``Config`` into a ``RuleSet`` once:
every ``header body rawbody uri full mimeheader`` regex is translated from Perl
(``perlre``) after ReplaceTags expansion and compiled as a bytes pattern; eval
tests are bound to the functions in ``evals.EVAL_TESTS``; ``meta`` rules are
parsed (``meta``) and ordered so that dependencies come first.  Rules that
cannot be compiled (a regex with no Python equivalent, an eval test this twin
does not implement, a meta that does not parse) are skipped and recorded in
``RuleSet.skipped`` with the reason; rules of plugins that are not loaded were
already recorded by the config parser.  Rules no scored rule needs (score 0 in
both score sets used, no meta reading them) are not run, as SpamAssassin
disables zero-scored rules.

``RuleSet.run(scan)`` evaluates everything on one message and returns the hit
counts; it is ``finish(scan, run_static(scan))``, where ``run_static`` runs
every rule but the Bayes eval tests and the metas (so its result, which does
not depend on Bayes, can be kept per message and finished again under another
Bayes verdict).  Header rules are grouped by the header they read: each header
is fetched once per message and a group whose header is absent takes its
outcome precomputed at compile time.  Body and rawbody rules work on the
rendered body joined once: a set
of literals one of which every match must contain (extracted from the compiled
pattern) is looked for in the lower-cased body first; a rule whose literals are
absent is done, one whose literals are present runs its regex only on the
paragraphs holding them.  Rules without such a literal run once over the whole
body, and line by line only when the match would cross a paragraph, the rule is
anchored or counts multiple hits (SpamAssassin matches body rules per
paragraph).  Meta rules are re-evaluated only when one of their inputs differs
from the all-rules-missed baseline (reached by propagation from the hits).

Twin speed-ups that change no outcome (``prefilter``): each body/rawbody rule
also has a pattern for ASCII text and one for ASCII text without HTML
entities (branches that need other octets removed), and necessary checks
(literal sets, a lower-cased skeleton pattern) that skip the regex when it
cannot match; header rules know whether they match an empty value and a few
literals a value must hold.  Equal checks are shared between rules and each is
answered once per text; every literal check of the body rules is filed under
the trigram keys one of which it needs, so the rules whose checks can pass are
picked from the text's trigrams in a few set operations.  With the Hyperscan
gates (``hsgate``; one set per text level) the trigrams are not needed: the
rules looked at are those the gates let through plus those they do not
cover, and the literals present come from one literal-gate scan; a
paragraph of ``_LONG_PARAGRAPH`` octets or more is scanned alone by its
level's gates before ``re`` searches it for a rule.  A few back-reference
header rules and one full rule have a prefilter (``backref``) that proves
most values cannot match before their backtracking regex runs.  The work
counted is that of the engine described above, whatever the speed-ups skip.

It counts, into the scan, rules evaluated, literal prefilter checks and bytes
scanned by regexes.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, repeat

from twin.stages.spamassassin import backref, evals, hsgate
from twin.stages.spamassassin.conf import Config
from twin.stages.spamassassin.meta import Expression, MetaSyntaxError
from twin.stages.spamassassin.meta import parse as parse_meta
from twin.stages.spamassassin.perlre import (
    PerlRegexError,
    compile_perl,
    split_delimited,
)
from twin.stages.spamassassin.prefilter import (
    ENTITY,
    LiteralCheck,
    RegexCheck,
    RuleFilter,
    TextView,
    TrigramIndex,
    header_literals,
    rule_filter,
)

try:  # the regex parser: used only to find literals for the prefilter
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover -- Python 3.10 names it sre_parse
    import sre_parse as _sre_parse  # type: ignore[no-redef]

__all__ = ["RuleSet", "compile_rules"]

_EVAL = re.compile(r"^eval:\s*(\w+)\s*\((.*)\)\s*$", re.S)
_HEADER_DEF = re.compile(r"^(\S+?)\s*(=~|!~)\s*(.*)$", re.S)
_IF_UNSET = re.compile(r"^\[if-unset:\s?(.*)\]$", re.S)
_TAG = re.compile(r"<([A-Za-z0-9_]+)>")
_PRE_INTER_POST = re.compile(r"<(pre|inter|post)\s+([A-Za-z0-9_]+)>")
_ANCHOR = re.compile(r"(?<!\\)[\^$]|\\[AZz]")
_MAX_LITERAL_SCAN = 1500
# Skip literals (``skip_literals_of``): at most this many strings, from
# classes of at most this many octets.
_SKIP_STRINGS = 24
_SKIP_CLASS = 4
# Texts up to this many octets have their matches counted with findall
# (a list of them all); longer ones with finditer, which stops at the limit.
_FINDALL_BELOW = 16_384
# Paragraphs this long are scanned alone by their level's gates before a rule
# the whole text's gates let through runs ``re`` on them (``_BodyText.match``).
_LONG_PARAGRAPH = 16_384
# One meta as ``_metas`` walks it: name, evaluator, baseline, readers.
_MetaStep = tuple[str, Callable[..., float], float, tuple[int, ...]]
# The score sets this twin uses: 0 (no Bayes, no network) and 2 (Bayes).
USED_SCORE_SETS = (0, 2)


@dataclass(slots=True)
class RegexRule:
    """A compiled regex rule."""

    name: str
    kind: str
    regex: re.Pattern[bytes]
    literals: tuple[bytes, ...] | None
    anchored: bool
    maxhits: int
    header: str = ""
    negate: bool = False
    if_unset: bytes | None = None
    # Twin speed-ups (prefilter): per kind of text, an equivalent pattern and
    # necessary literal checks; and a check for ``literals``.
    filter: RuleFilter | None = None
    literal_check: LiteralCheck | None = None
    # Header rules: does the pattern match an empty value; a few literals
    # (lower-cased) one of which the value must hold for a match, or ().
    matches_empty: bool = False
    header_literals: tuple[bytes, ...] = ()
    # Header and full rules with a back-reference: a check (``backref``)
    # answering False only when the regex cannot match the value (given its
    # lower case; a full rule's check reads the message alone).
    backref: backref.Prefilter | None = None
    # Body and rawbody rules with literals: longer literals one of which any
    # match holds too (``skip_literals``), or None; used only to skip
    # paragraphs (never counted: the work counts follow ``literals``).
    skip_literals: tuple[bytes, ...] | None = None


@dataclass(slots=True)
class EvalRule:
    """A rule computed by an eval test."""

    name: str
    kind: str
    function: Callable[..., float]
    args: tuple[str, ...]


@dataclass(slots=True)
class MetaRule:
    """A meta rule with its parsed expression."""

    name: str
    expression: Expression
    deps: frozenset[str]
    baseline: float = 0.0


@dataclass
class RuleSet:
    """Compiled rules, ready to run on messages."""

    config: Config
    header_rules: list[RegexRule | EvalRule] = field(default_factory=list)
    body_rules: list[RegexRule] = field(default_factory=list)
    rawbody_rules: list[RegexRule] = field(default_factory=list)
    uri_rules: list[RegexRule] = field(default_factory=list)
    full_rules: list[RegexRule] = field(default_factory=list)
    mimeheader_rules: list[RegexRule] = field(default_factory=list)
    eval_rules: list[EvalRule] = field(default_factory=list)
    metas: list[MetaRule] = field(default_factory=list)
    baseline_hits: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    order: dict[str, int] = field(default_factory=dict)
    trigrams: TrigramIndex = field(default_factory=TrigramIndex)
    # For the metas: rule name -> indexes of the metas reading it; the metas
    # with a non-zero baseline, as (index, name, baseline).
    _readers: dict[str, tuple[int, ...]] = field(default_factory=dict)
    _baseline_order: list[tuple[int, str, float]] = field(default_factory=list)
    # The mimeheader rules' header names as octets, built on first use.
    _mime_keys: list[bytes] | None = None
    # Per meta, built on first use: (name, evaluator, baseline, readers).
    _meta_plan: list[_MetaStep] | None = None
    # With it: ``_baseline_order`` and a sentinel (``_build_meta_plan``).
    _meta_bases: list[tuple[int, str, float]] = field(default_factory=list)
    # Run plans (built once, on first use): header rules grouped by header,
    # body and rawbody rules gated by the trigrams of one necessary check.
    _header_plan: _HeaderPlan | None = None
    # ``_headers``' view of the header plan (``_header_table``), on first use.
    _header_table: tuple[object, ...] | None = None
    _body_plans: dict[str, _BodyPlan] = field(default_factory=dict)
    _eval_order: dict[str, int] = field(default_factory=dict)
    # ``_eval_split``: (eval_rules, its length, non-Bayes rules, Bayes rules).
    _evals_split: (
        tuple[list[EvalRule], int, list[EvalRule], list[EvalRule]] | None
    ) = None
    # Hyperscan gates (``hsgate``), built by ``compile_rules`` when available.
    gated: bool = False
    _uri_gate: hsgate.Gate | None = None
    _full_gate: hsgate.Gate | None = None
    # The URI gate, the URI rule count, the rules it does not cover (first use).
    _uri_uncovered: tuple[hsgate.Gate, int, list[int]] | None = None

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        state["_meta_plan"] = None  # closures: rebuilt on first use
        # Derived tables, rebuilt on first use.
        state["_header_table"] = state["_evals_split"] = None
        state["_uri_uncovered"] = None
        return state

    @property
    def rule_count(self) -> int:
        return (
            len(self.header_rules)
            + len(self.body_rules)
            + len(self.rawbody_rules)
            + len(self.uri_rules)
            + len(self.full_rules)
            + len(self.mimeheader_rules)
            + len(self.eval_rules)
            + len(self.metas)
        )

    def run(self, scan: evals.Scan, hyperscan: bool = True) -> dict[str, float]:
        """Evaluate every active rule on the scan's message; return hit counts.

        ``hyperscan`` lets the Hyperscan gates (``hsgate``) pick the regex
        rules worth running, when they were built; the hits and counts are
        the same either way."""
        return self.finish(scan, self.run_static(scan, hyperscan))

    def run_static(self, scan: evals.Scan, hyperscan: bool = True) -> dict[str, float]:
        """Hit counts of the rules that do not read the Bayes probability.

        That is every rule but the Bayes eval tests and the metas, which
        ``finish`` adds; the result can be kept and finished again for the
        same message under another Bayes verdict.
        """
        hits: dict[str, float] = {}
        msg = scan.msg
        gated = hyperscan and self.gated and hsgate.available()
        self._headers(scan, hits, gated)
        mime_rules = self.mimeheader_rules
        if mime_rules:
            scan.rules_evaluated += len(mime_rules)
            keys = self._mime_keys
            if keys is None or len(keys) != len(mime_rules):
                keys = self._mime_keys = [
                    rule.header.encode("latin-1") for rule in mime_rules
                ]
            parts = msg.parts
            # Each header's values (the non-empty ones, part by part) fetched
            # once for all the rules reading it.
            values_of: dict[bytes, list[bytes]] = {}
            for rule, key in zip(mime_rules, keys, strict=True):
                values = values_of.get(key)
                if values is None:
                    values = values_of[key] = [
                        value for part in parts if (value := part.header(key))
                    ]
                for value in values:
                    scan.regex_bytes += len(value)
                    if rule.regex.search(value):
                        hits[rule.name] = 1.0
                        break
        self._lines(scan, "body", msg.body_lines, hits, gated)
        self._lines(scan, "rawbody", msg.rawbody_lines, hits, gated)
        uris = msg.uris
        uri_rules = self.uri_rules
        gate = self._uri_gate if gated else None
        scan.rules_evaluated += len(uri_rules)
        if gate is None:
            chosen: Sequence[int] = range(len(uri_rules))
        else:
            # A covered rule the gate rules out is skipped, with the octets
            # the loop below would count for it (every URI's).
            covered = gate.covered
            maybe = gate.scan(hsgate.pieces(uris)) if uris else ()
            uncovered = self._uri_uncovered
            if uncovered is None or uncovered[:2] != (gate, len(uri_rules)):
                uncovered = self._uri_uncovered = (
                    gate,
                    len(uri_rules),
                    [i for i in range(len(uri_rules)) if i not in covered],
                )
            chosen = sorted(covered.intersection(maybe).union(uncovered[2]))
            scan.regex_bytes += sum(map(len, uris)) * (len(uri_rules) - len(chosen))
        for index in chosen:
            rule = uri_rules[index]
            count = 0
            for uri in uris:
                scan.regex_bytes += len(uri)
                if rule.regex.search(uri):
                    count += 1
                    if count >= rule.maxhits:
                        break
            if count:
                hits[rule.name] = float(count)
        full = msg.full
        full_rules = self.full_rules
        scan.rules_evaluated += len(full_rules)
        scan.regex_bytes += len(full) * len(full_rules)
        gate = self._full_gate if gated else None
        if gate is None:
            chosen = range(len(full_rules))
        else:
            # A covered rule the gate rules out finds nothing (its octets
            # are counted above all the same).
            covered = gate.covered
            maybe = set(gate.scan(full))
            chosen = [
                i for i in range(len(full_rules)) if i in maybe or i not in covered
            ]
        for index in chosen:
            rule = full_rules[index]
            check = rule.backref
            if check is not None and not check(full, full):
                continue  # proven: the regex finds nothing
            count = _count(rule.regex, full, rule.maxhits)
            if count:
                hits[rule.name] = float(count)
        for rule in self._eval_split()[0]:
            scan.rules_evaluated += 1
            value = rule.function(scan, *rule.args)
            if value:
                hits[rule.name] = float(value)
        return hits

    def finish(self, scan: evals.Scan, static: dict[str, float]) -> dict[str, float]:
        """Add the Bayes eval tests and the metas to ``run_static``'s hits
        (left unchanged); the hits come in rule order, as one full run's."""
        hits = dict(static)
        added: list[tuple[str, float]] = []
        for rule in self._eval_split()[1]:
            scan.rules_evaluated += 1
            value = rule.function(scan, *rule.args)
            if value:
                added.append((rule.name, float(value)))
        if added:
            # Eval hits sit last (in eval rule order) among the non-meta hits:
            # the static ones are the tail of ``static``, in that order, so
            # only those past the first Bayes hit move.
            order = self._eval_order
            if not order:
                order.update((rule.name, i) for i, rule in enumerate(self.eval_rules))
            first = order[added[0][0]]
            later = []
            for name in reversed(static):
                position = order.get(name)
                if position is None or position < first:
                    break
                later.append(name)
            if later:
                added += [(name, hits.pop(name)) for name in later]
                added.sort(key=lambda item: order[item[0]])
            hits.update(added)
        self._metas(scan, hits)
        return hits

    def _eval_split(self) -> tuple[list[EvalRule], list[EvalRule]]:
        """The eval rules but the Bayes ones, and the Bayes ones (each in
        rule order), built on first use (again if ``eval_rules`` changed)."""
        split = self._evals_split
        rules = self.eval_rules
        if split is None or split[0] is not rules or split[1] != len(rules):
            bayes = evals.check_bayes
            split = self._evals_split = (
                rules,
                len(rules),
                [rule for rule in rules if rule.function is not bayes],
                [rule for rule in rules if rule.function is bayes],
            )
        return split[2], split[3]

    def _headers(
        self, scan: evals.Scan, hits: dict[str, float], gated: bool = False
    ) -> None:
        """Header rules, each header fetched once for all the rules reading it.

        Same hits (in rule order) and counts as running the rules one by one:
        a group whose header is absent takes its precomputed outcome.
        """
        plan = self._header_plan
        if plan is None:
            plan = self._header_plan = _HeaderPlan(self.header_rules)
        table = self._header_table
        if table is None or table[0] is not plan:
            table = self._header_table = (plan, *_header_table(plan))
        _plan, groups, exists, other_evals = table
        msg = scan.msg
        header = msg.header
        found: dict[str, float] = {}
        octets = 0
        for spec, rules, missing, missing_octets, empty, gate, plain in groups:
            hval = header(spec)
            if hval is None:
                found.update(missing)
                octets += missing_octets
                continue
            if not hval:
                found.update(empty)
                continue
            octets += len(hval) * len(rules)
            lower = None
            if gate is None or not gated:
                chosen: Sequence[int] = plain
            else:
                # Covered rules the gate rules out do not match: only the
                # negated ones hit.
                uncovered, negated = gate[1]
                maybe = set(gate[0].scan(hval))
                for index in negated:
                    if index not in maybe:
                        found[rules[index].name] = 1.0
                chosen = maybe.union(uncovered) if uncovered else maybe
            for index in chosen:
                rule = rules[index]
                header_lits = rule.header_literals
                if header_lits:
                    if lower is None:
                        lower = hval.lower()
                    for literal in header_lits:
                        if lower.find(literal) >= 0:  # (``in`` is slower)
                            check = rule.backref
                            hit = (
                                check is None or check(hval, lower)
                            ) and rule.regex.search(hval) is not None
                            break
                    else:
                        hit = False
                elif rule.backref is not None:
                    if lower is None:
                        lower = hval.lower()
                    hit = (
                        rule.backref(hval, lower)
                        and rule.regex.search(hval) is not None
                    )
                else:
                    hit = rule.regex.search(hval) is not None
                if hit != rule.negate:
                    found[rule.name] = 1.0
        # ``exists:`` rules (``evals.header_exists``, whose whole test is
        # ``has_header``) asked straight: one call less each.
        has_header = msg.has_header
        for name, header_name in exists:
            if has_header(header_name):
                found[name] = 1.0
        for rule in other_evals:
            value = rule.function(scan, *rule.args)
            if value:
                found[rule.name] = float(value)
        scan.rules_evaluated += plan.count
        scan.regex_bytes += octets
        if found:
            names = sorted(found, key=plan.position.__getitem__)
            hits.update(zip(names, map(found.__getitem__, names), strict=True))

    def _body_plan(self, kind: str) -> _BodyPlan:
        rules = getattr(self, f"{kind}_rules")
        plan = self._body_plans.get(kind)
        if plan is None or plan.rules is not rules:
            plan = self._body_plans[kind] = _BodyPlan(rules)
        return plan

    def _lines(
        self,
        scan: evals.Scan,
        kind: str,
        lines: list[bytes],
        hits: dict[str, float],
        gated: bool = False,
    ) -> None:
        plan = self._body_plan(kind)
        rules = plan.rules
        if not rules:
            return
        body = _BodyText(lines, self.trigrams)
        # Counted for every rule, whatever the gates skip below.
        scan.rules_evaluated += len(rules)
        scan.prefilter_checks += plan.prefilter_checks
        scan.regex_bytes += body.size * plan.unfiltered
        view = body.view
        gates = plan.gates[view.level] if gated and plan.gates else None
        if gates is None:
            chosen = plan.candidate_indexes(view)
        elif plan.literal_gate is not None:
            chosen = plan.gated_indexes(gates, body, scan)
        else:
            chosen = plan.gate(plan.candidate_indexes(view), gates, body, scan)
        line_gates = plan.gates if gated and plan.gates else None
        for index in chosen:
            rule = rules[index]
            count = body.match(rule, scan, index, line_gates)
            if count:
                hits[rule.name] = count

    def _metas(self, scan: evals.Scan, hits: dict[str, float]) -> None:
        """Evaluate the metas some of whose inputs differ from the baseline.

        Same outcome as walking every meta in order: a meta whose inputs all
        keep their baseline value keeps its baseline value; only metas reached
        from a hit (through metas whose value changed) are evaluated, in order.
        """
        plan = self._meta_plan
        if plan is None or len(plan) != len(self.metas):
            plan = self._meta_plan = self._build_meta_plan()
        bases = self._meta_bases
        # A meta's readers come after it (the metas are in dependency order),
        # so one pass in index order over the metas marked to do, each found
        # with bytearray.find (in C), evaluates each once its inputs are final.
        todo = bytearray(len(plan))
        get_readers = self._readers.get
        for name in hits:
            found = get_readers(name)
            if found:
                for reader in found:
                    todo[reader] = 1
        # ``hits`` itself is what the metas read: every meta name added to it
        # comes in index order (so hits stay in meta order), a meta's inputs
        # come before it, and a meta not evaluated keeps its baseline: those
        # (few) are added, from ``bases``, as the walk passes them.
        find = todo.find
        index = find(1)
        base = 0
        next_base = bases[0][0]  # ``bases`` ends with a sentinel past every index
        while index >= 0:
            if index >= next_base:
                while next_base < index:
                    hits[bases[base][1]] = bases[base][2]
                    base += 1
                    next_base = bases[base][0]
                if next_base == index:  # evaluated below instead
                    base += 1
                    next_base = bases[base][0]
            name, evaluate, baseline, its_readers = plan[index]
            value = evaluate(hits)
            if value:
                # Comparisons give ints; hits are floats.
                if value.__class__ is not float:
                    value = float(value)
                hits[name] = value
                if value != baseline:
                    for reader in its_readers:
                        todo[reader] = 1
            elif baseline:
                for reader in its_readers:
                    todo[reader] = 1
            index = find(1, index + 1)
        for _index, name, value in bases[base:-1]:
            hits[name] = value
        scan.rules_evaluated += todo.count(1)  # each meta marked was evaluated

    def _build_meta_plan(self) -> list[_MetaStep]:
        """Per meta (name, evaluator, baseline, readers); and ``_meta_bases``,
        the metas with a non-zero baseline (index, name, baseline) in order
        and a sentinel (an index past every meta)."""
        readers = self._readers
        self._meta_bases = [*self._baseline_order, (len(self.metas), "", 0.0)]
        return [
            (m.name, m.expression.evaluate, m.baseline, readers.get(m.name, ()))
            for m in self.metas
        ]


class _BodyText:
    """One message's body (or rawbody) text as the body rules search it."""

    __slots__ = (
        "lines", "text", "view", "size", "starts", "_line_maybe", "_sizes",
        "present", "literal_ids", "literal_list",
    )

    def __init__(self, lines: list[bytes], trigrams: TrigramIndex) -> None:
        self.lines = lines
        self.text = b"".join(lines)
        self.view = TextView(self.text, trigrams)
        self.size = len(self.text)
        self.starts: list[int] | None = None
        self._sizes: list[int] | None = None
        # Per long paragraph (index): what its level's gates let through.
        self._line_maybe: dict[int, set[int]] = {}
        # Set by ``_BodyPlan.gated_indexes``: the ids of the literals in the
        # text (the literal gate's exact answer), the plan's rule index ->
        # literal ids and its literals by id; ``match`` then needs no literal
        # check of its own.
        self.present: set[int] | None = None
        self.literal_ids: dict[int, tuple[int, ...]] = {}
        self.literal_list: list[bytes] = []

    def octets(self, numbers: Iterable[int]) -> int:
        """The octets of the paragraphs ``numbers``."""
        sizes = self._sizes
        if sizes is None:
            sizes = self._sizes = list(map(len, self.lines))
        return sum(map(sizes.__getitem__, numbers))

    def line_maybe(
        self,
        number: int,
        gates: tuple[hsgate.Gate | None, hsgate.Gate | None, frozenset[int]],
    ) -> set[int]:
        """The rules (indexes) the gates of a paragraph's level say may match
        that paragraph searched alone, once per paragraph: each gate scans
        the paragraph as it is (as ``_gate_scan`` scans a whole text for its
        search; the paragraphs joined, which it scans too, are here the same
        paragraph with a newline added, needed for no rule searching it)."""
        maybe = self._line_maybe.get(number)
        if maybe is None:
            line = self.lines[number]
            main, end, _covered = gates
            maybe = set(main.scan(line)) if main is not None else set()
            if end is not None:
                maybe.update(end.scan(line))
            self._line_maybe[number] = maybe
        return maybe

    def literal_octets(self, literals: Sequence[bytes]) -> int:
        """The octets of the paragraphs holding one of ``literals`` (what
        ``match`` scans for a rule with these literals matching nowhere)."""
        return self.octets(self._holding(literals))

    def _holding(self, literals: Sequence[bytes]) -> Collection[int]:
        """Indices of the paragraphs holding one of ``literals``: for one
        literal a tuple in increasing order, else a set."""
        found = self.view.found
        if len(literals) == 1:
            held = found.get(literals[0])
            if held is None:
                held = found[literals[0]] = self._paragraphs(literals[0])
            return held  # type: ignore[return-value]
        chosen: set[int] = set()
        for literal in literals:
            held = found.get(literal)
            if held is None:
                held = found[literal] = self._paragraphs(literal)
            chosen.update(held)  # type: ignore[arg-type]
        return chosen

    def _paragraphs(self, literal: bytes) -> tuple[int, ...]:
        starts = self.starts
        if starts is None:
            starts = self.starts = list(
                accumulate((len(line) for line in self.lines), initial=0)
            )
        return _paragraphs(self.view.lower, literal, starts)

    def match(
        self,
        rule: RegexRule,
        scan: evals.Scan,
        index: int = -1,
        gates: Sequence[
            tuple[hsgate.Gate | None, hsgate.Gate | None, frozenset[int]] | None
        ]
        | None = None,
    ) -> float:
        """One rule's hit count; counts the octets its literals' paragraphs
        add (the caller counts the rule, its literals and a whole-text scan).

        With the plan's ``gates`` (per text level) and the rule's ``index``,
        a paragraph of ``_LONG_PARAGRAPH`` octets or more is searched only when
        the gates of its level, scanning it alone, let the rule through (or do
        not cover it): a rule they rule out cannot match it."""
        view = self.view
        text = self.text
        lines = self.lines
        literals = rule.literals
        strict: set[int] | None = None
        if literals is None:
            regex = rule.filter.pattern_for(view)  # type: ignore[union-attr]
            if regex is None:
                return 0.0
            # The level pattern, or the same behind its first-octet lookahead
            # (``prefilter.first_octet_pattern``): the same match, sooner.
            match = rule.filter.first_match(view.level, text)  # type: ignore[union-attr]
            if match is None:
                return 0.0
            start, end = match.span()
            if (
                not rule.anchored
                and rule.maxhits == 1
                and b"\n" not in text[start : max(start, end - 1)]
            ):
                return 1.0
            numbers: Sequence[int] = range(len(lines))
        else:
            present = self.present
            if present is not None and index >= 0:
                # The literal gate's answer, as the literal check's: the
                # rule's literals present (the others hold no paragraph).
                ids = self.literal_ids[index]
                if len(ids) > 1:
                    literal_list = self.literal_list
                    literals = [literal_list[i] for i in ids if i in present]
                elif ids[0] not in present:
                    literals = ()
                if not literals:
                    return 0.0
            elif not rule.literal_check.present(view):  # type: ignore[union-attr]
                return 0.0
            # Only paragraphs holding a literal can match: scan just those.
            chosen = self._holding(literals)
            numbers = chosen if chosen.__class__ is tuple else sorted(chosen)
            if rule.filter.pattern_for(view) is None:  # type: ignore[union-attr]
                scan.regex_bytes += self.octets(numbers)
                return 0.0
            skip = rule.skip_literals
            if skip is not None:
                # ... and of those, only the ones holding a skip literal
                # (counted as scanned all the same).
                held = self._holding(skip)
                if not held:
                    scan.regex_bytes += self.octets(numbers)
                    return 0.0
                strict = set(held)
        count = 0
        octets = 0  # counted into the scan once, after the loop
        maxhits = rule.maxhits
        levels = rule.filter.levels  # type: ignore[union-attr]
        level = view.level
        for number in numbers:
            line = lines[number]
            octets += len(line)
            if strict is not None and number not in strict:
                continue
            if level == 2:
                line_level = 2
            elif level == 0 and not line.isascii():
                line_level = 0
            else:
                line_level = 1 if ENTITY.search(line) else 2
            regex = levels[line_level][0]
            if regex is None:
                continue
            if gates is not None and len(line) >= _LONG_PARAGRAPH:
                level_gates = gates[line_level]
                if (
                    level_gates is not None
                    and index in level_gates[2]
                    and (number in self._line_maybe or not _plain(regex))
                    and index not in self.line_maybe(number, level_gates)
                ):
                    continue
            if maxhits == 1:  # ``_count`` with a limit of 1, inlined
                if regex.search(line):
                    count = 1
                    break
                continue
            count += _count(regex, line, maxhits - count)
            if count >= maxhits:
                break
        scan.regex_bytes += octets
        return float(count)



class _HeaderGroup:
    """The regex header rules reading one header (and the same if-unset value)."""

    __slots__ = (
        "spec", "rules", "missing_hits", "missing_octets", "empty_hits", "_if_unset",
        "gate", "_gate_plan",
    )

    def gate_plan(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Indexes of the rules the gate does not cover, and of the negated
        rules it covers (built on first use)."""
        plan = getattr(self, "_gate_plan", None)
        if plan is None:
            covered = self.gate.covered if self.gate is not None else frozenset()
            plan = self._gate_plan = (
                tuple(i for i in range(len(self.rules)) if i not in covered),
                tuple(
                    i for i in sorted(covered) if self.rules[i].negate
                ),
            )
        return plan

    def __init__(self, spec: str, if_unset: bytes | None) -> None:
        self.spec = spec
        self.rules: list[RegexRule] = []
        self.missing_hits: tuple[str, ...] = ()
        self.missing_octets = 0
        self.empty_hits: tuple[str, ...] = ()
        self._if_unset = if_unset
        self.gate: hsgate.Gate | None = None

    def finish(self) -> None:
        """Precompute the outcomes for an absent header and an empty value."""
        value = self._if_unset if self._if_unset is not None else b""
        missing = []
        for rule in self.rules:
            if not value:
                found = rule.matches_empty
            else:
                found = rule.regex.search(value) is not None
            if found != rule.negate:
                missing.append(rule.name)
        self.missing_hits = tuple(missing)
        self.missing_octets = len(value) * len(self.rules)
        self.empty_hits = tuple(
            rule.name for rule in self.rules if rule.matches_empty != rule.negate
        )


class _HeaderPlan:
    """Header rules grouped by the header they read; eval tests apart."""

    __slots__ = ("groups", "evals", "count", "position")

    def __init__(self, header_rules: Sequence[RegexRule | EvalRule]) -> None:
        groups: dict[tuple[str, bytes | None], _HeaderGroup] = {}
        self.evals: list[EvalRule] = []
        self.count = len(header_rules)
        self.position = {rule.name: i for i, rule in enumerate(header_rules)}
        for rule in header_rules:
            if isinstance(rule, EvalRule):
                self.evals.append(rule)
                continue
            key = (rule.header, rule.if_unset)
            group = groups.get(key)
            if group is None:
                group = groups[key] = _HeaderGroup(rule.header, rule.if_unset)
            group.rules.append(rule)
        for group in groups.values():
            group.finish()
        self.groups = list(groups.values())


def _header_table(plan: _HeaderPlan) -> tuple[list[tuple], list, list]:
    """What ``RuleSet._headers`` walks, as tuples (fewer look-ups per group):
    per group (header spec, rules, hits when absent as a dict, octets then
    counted, hits when empty as a dict, (gate, ``gate_plan()``) or None, all
    the rule indexes); the ``exists:`` eval rules as (rule name, header);
    the other eval rules."""
    groups = []
    for group in plan.groups:
        gate = group.gate
        groups.append((
            group.spec,
            group.rules,
            dict.fromkeys(group.missing_hits, 1.0),
            group.missing_octets,
            dict.fromkeys(group.empty_hits, 1.0),
            None if gate is None else (gate, group.gate_plan()),
            range(len(group.rules)),
        ))
    exists = []
    other = []
    for rule in plan.evals:
        if rule.function is evals.header_exists and len(rule.args) == 1:
            exists.append((rule.name, rule.args[0]))
        else:
            other.append(rule)
    return groups, exists, other


def _intern_checks(rules: Sequence[RegexRule]) -> None:
    """Share one check object between rules with equal checks (so a text's
    memo answers each distinct check once)."""
    shared: dict[tuple[object, ...], LiteralCheck | RegexCheck] = {}

    def intern(check: LiteralCheck | RegexCheck) -> LiteralCheck | RegexCheck:
        if isinstance(check, LiteralCheck):
            literals = [lit for pairs in check.longer.values() for lit, _ in pairs]
            key: tuple[object, ...] = (
                "literal", check.squeeze, check.short, tuple(sorted(literals))
            )
        else:
            key = ("regex", check.regex.pattern, check.regex.flags)
        return shared.setdefault(key, check)

    for rule in rules:
        if rule.literal_check is not None:
            rule.literal_check = intern(rule.literal_check)  # type: ignore[assignment]
        if rule.filter is not None:
            rule.filter.levels = tuple(  # type: ignore[assignment]
                (pattern, tuple(intern(c) for c in checks))
                for pattern, checks in rule.filter.levels
            )


def _gate(checks: Sequence[object]) -> LiteralCheck | None:
    """A literal check that cannot pass unless one of its keys is present."""
    best = None
    for check in checks:
        if isinstance(check, LiteralCheck) and check.keys and not check.short:
            if best is None or (best.squeeze and not check.squeeze):
                best = check
    return best


class _BodyPlan:
    """Which body (or rawbody) rules can pass their necessary checks on a text.

    Each rule gets, per text level, a gate: one literal check it cannot pass
    without (its ``literals`` check, or for a rule without literals a check of
    its level's filter).  A literal check needs one of its trigram keys in the
    text, so the rules worth looking at are found from the text's trigrams
    with a few set operations instead of one check per rule.  Rules without a
    gate are always looked at; rules whose level pattern cannot match (and
    that have no literals to count) never are.
    """

    __slots__ = (
        "rules", "prefilter_checks", "unfiltered", "always", "gated", "keys",
        "squeezed_keys", "needs_squeezed", "gates", "literal_gate", "literal_ids",
        "literal_list", "_by_literal", "_uncovered",
    )

    def __init__(self, rules: Sequence[RegexRule]) -> None:
        _intern_checks(rules)
        self.rules = rules
        self.gates: tuple[
            tuple[hsgate.Gate | None, hsgate.Gate | None, frozenset[int]] | None, ...
        ] = ()
        self.literal_gate: hsgate.Gate | None = None
        self.literal_ids: dict[int, tuple[int, ...]] = {}
        self.literal_list: list[bytes] = []
        self.prefilter_checks = sum(len(r.literals) for r in rules if r.literals)
        self.unfiltered = sum(1 for r in rules if r.literals is None)
        # Per level: indexes always looked at; key -> indexes gated by it.
        self.always: list[tuple[int, ...]] = []
        self.gated: list[dict[int, tuple[int, ...]]] = []
        self.keys: list[frozenset[int]] = []
        self.squeezed_keys: list[frozenset[int]] = []
        self.needs_squeezed: list[bool] = []
        for level in range(3):
            always: list[int] = []
            plain: dict[int, list[int]] = {}
            squeezed: dict[int, list[int]] = {}
            for index, rule in enumerate(rules):
                if rule.literals is not None:
                    gate = _gate((rule.literal_check,))
                else:
                    pattern, checks = rule.filter.levels[level]  # type: ignore[union-attr]
                    if pattern is None:
                        continue
                    gate = _gate(checks)
                if gate is None:
                    always.append(index)
                    continue
                table = squeezed if gate.squeeze else plain
                for key in gate.keys:
                    table.setdefault(key, []).append(index)
            # Squeezed and plain keys may collide: keep them in one table with
            # the squeezed ones offset past 2**24.
            gated = {key: tuple(v) for key, v in plain.items()}
            gated.update({key | (1 << 24): tuple(v) for key, v in squeezed.items()})
            self.always.append(tuple(always))
            self.gated.append(gated)
            self.keys.append(frozenset(plain))
            self.squeezed_keys.append(frozenset(squeezed))
            self.needs_squeezed.append(bool(squeezed))

    def candidates(self, view: TextView) -> list[RegexRule]:
        """The rules to look at for ``view``, in rule order."""
        rules = self.rules
        return [rules[i] for i in self.candidate_indexes(view)]

    def build_gates(self) -> None:
        """Hyperscan gates per text level over the rules' level patterns (with
        ``^``/``$`` multi-line): one for the patterns without ``$``, ``\\Z``
        or ``\\B``, one for those with (which may need a paragraph's very end,
        after its final newline); and the literal gate."""
        gates = []
        for level in range(3):
            main: list[tuple[int, re.Pattern[bytes]]] = []
            end: list[tuple[int, re.Pattern[bytes]]] = []
            for index, rule in enumerate(self.rules):
                pattern = rule.filter.levels[level][0]  # type: ignore[union-attr]
                if pattern is not None:
                    (end if hsgate.needs_piece_end(pattern) else main).append(
                        (index, pattern)
                    )
            main_gate = hsgate.build_gate(main, True)
            end_gate = hsgate.build_gate(end, True)
            covered = frozenset().union(
                *(gate.covered for gate in (main_gate, end_gate) if gate)
            )
            gates.append((main_gate, end_gate, covered) if covered else None)
        self.gates = tuple(gates)
        numbers: dict[bytes, int] = {}
        for index, rule in enumerate(self.rules):
            if rule.literals is not None:
                self.literal_ids[index] = tuple(
                    numbers.setdefault(lit, len(numbers)) for lit in rule.literals
                )
        self.literal_list = list(numbers)
        self.literal_gate = hsgate.build_literal_gate(self.literal_list)

    def gate(
        self,
        chosen: list[int],
        gates: tuple[hsgate.Gate | None, hsgate.Gate | None, frozenset[int]],
        body: _BodyText,
        scan: evals.Scan,
    ) -> list[int]:
        """The candidates the gates cannot rule out.

        A rule is ruled out when its pattern matches neither the text (the
        whole-text search of the rules without literals) nor any paragraph.
        The gates scan the text (a superset of its matches) and the paragraphs
        joined with a newline after each (``hsgate.pieces``: each paragraph
        bordered by newlines or the text edges, as by its own edges).  When
        every paragraph ends in a newline, the text is such a join already for
        the patterns without end assertions, and one scan serves both.  For a
        rule with literals ruled out, the octets of the paragraphs holding its
        literals (which ``match`` would search in vain) are counted here."""
        main, end, covered = gates
        maybe = _gate_scan(main, end, body.lines, body.text)
        kept = []
        rules = self.rules
        literal_gate = self.literal_gate
        present: set[int] | None = None
        for index in chosen:
            if index in covered and index not in maybe:
                rule = rules[index]
                if rule.literals is None:
                    continue
                if literal_gate is None:
                    scan.regex_bytes += body.literal_octets(rule.literals)
                    continue
                if present is None:
                    present = set(literal_gate.scan(body.view.lower))
                held = [
                    self.literal_list[i]
                    for i in self.literal_ids[index]
                    if i in present
                ]
                if held:
                    scan.regex_bytes += body.literal_octets(held)
                continue
            kept.append(index)
        return kept

    def _gated_tables(self) -> tuple[dict[int, tuple[int, ...]], list[tuple[int, ...]]]:
        """For ``gated_indexes``: literal id -> indexes of the rules with that
        literal; per level, the rules ``candidate_indexes`` may pick (those
        with literals, and those whose level pattern can match) that no gate
        covers."""
        by_literal = getattr(self, "_by_literal", None)
        if by_literal is None:
            table: dict[int, list[int]] = {}
            for index, ids in self.literal_ids.items():
                for literal_id in ids:
                    table.setdefault(literal_id, []).append(index)
            by_literal = self._by_literal = {k: tuple(v) for k, v in table.items()}
            uncovered = []
            for gates in self.gates:
                covered = gates[2] if gates else frozenset()
                uncovered.append(
                    tuple(
                        index
                        for index, rule in enumerate(self.rules)
                        if index not in covered
                        and (
                            rule.literals is not None
                            or rule.filter.levels[len(uncovered)][0] is not None  # type: ignore[union-attr]
                        )
                    )
                )
            self._uncovered = uncovered
        return by_literal, self._uncovered

    def gated_indexes(
        self,
        gates: tuple[hsgate.Gate | None, hsgate.Gate | None, frozenset[int]],
        body: _BodyText,
        scan: evals.Scan,
    ) -> list[int]:
        """What ``gate(candidate_indexes(view), ...)`` leaves to ``match``,
        give or take rules ``match`` finds nothing in and counts nothing for,
        without the text's trigrams: the covered rules the gates let through
        and every uncovered rule (``match`` runs their necessary checks).  The
        octets of the paragraphs holding the literals of a covered rule the
        gates rule out are counted here, as ``gate`` does (a rule with no
        literal in the text is no candidate and counts nothing)."""
        main, end, covered = gates
        maybe = _gate_scan(main, end, body.lines, body.text)
        by_literal, uncovered = self._gated_tables()
        present = set(self.literal_gate.scan(body.view.lower))  # type: ignore[union-attr]
        literal_list = self.literal_list
        literal_ids = self.literal_ids
        # For ``match``: the literals present (exact, as its literal checks).
        body.present = present
        body.literal_ids = literal_ids
        body.literal_list = literal_list
        if present:
            # The covered rules holding a present literal the gates rule out.
            holding: set[int] = set()
            holding.update(*map(by_literal.__getitem__, present))
            holding.intersection_update(covered)
            holding.difference_update(maybe)
            for index in holding:
                ids = literal_ids[index]
                if len(ids) == 1:  # (present: the rule is held by it)
                    scan.regex_bytes += body.literal_octets((literal_list[ids[0]],))
                else:
                    held = [literal_list[i] for i in ids if i in present]
                    scan.regex_bytes += body.literal_octets(held)
        maybe.update(uncovered[body.view.level])
        return sorted(maybe)

    def candidate_indexes(self, view: TextView) -> list[int]:
        """Indexes of the rules to look at for ``view``, in rule order."""
        level = view.level
        gated = self.gated[level]
        chosen = set(self.always[level])
        for key in self.keys[level].intersection(view.tri):
            chosen.update(gated[key])
        if self.needs_squeezed[level]:
            for key in self.squeezed_keys[level].intersection(view.tri_sq):
                chosen.update(gated[key | (1 << 24)])
        return sorted(chosen)


def _paragraphs(lower: bytes, literal: bytes, starts: list[int]) -> tuple[int, ...]:
    """Indexes of the paragraphs where ``literal`` starts (once per paragraph)."""
    chosen = []
    pos = lower.find(literal)
    while pos >= 0:
        index = bisect_right(starts, pos) - 1
        chosen.append(index)
        pos = lower.find(literal, starts[index + 1])
    return tuple(chosen)


# Patterns ``re`` searches about as fast as a gate scans (``_plain``).
_PLAIN: dict[re.Pattern[bytes], bool] = {}
_PLAIN_ITEMS = 4


def _plain(regex: re.Pattern[bytes]) -> bool:
    """Is the pattern at most a few octets or small classes (flag-less groups
    of them too)?  ``re`` then scans a long paragraph for it in C (a prefix
    or charset search), cheaper than a first gate scan of the paragraph:
    ``_BodyText.match`` asks the gates about such a rule only when they have
    scanned the paragraph already (asking or not, the same count)."""
    found = _PLAIN.get(regex)
    if found is None:
        try:
            items = list(_sre_parse.parse(regex.pattern, regex.flags & ~re.DEBUG))
        except Exception:  # noqa: BLE001 -- it compiled; parsing again cannot fail
            items = []
        found = 0 < len(items) <= _PLAIN_ITEMS and all(
            _exact_strings(item) is not None for item in items
        )
        if len(_PLAIN) < 4096:
            _PLAIN[regex] = found
    return found


def _count(regex: re.Pattern[bytes], text: bytes, limit: int) -> int:
    if limit <= 1:
        return 1 if regex.search(text) else 0
    if len(text) <= _FINDALL_BELOW:
        # One match per element, as finditer: counted in C.
        return min(len(regex.findall(text)), limit)
    count = 0
    for _ in regex.finditer(text):
        count += 1
        if count >= limit:
            break
    return count


# ------------------------------------------------------------------ literals
def _consider_inside(op: object, av: object, literals_of, consider) -> None:
    """Offer *consider* the literals *literals_of* finds inside a group, an
    alternation (literals every branch has) or a repeat of at least one."""
    constants = _sre_parse
    if op is constants.SUBPATTERN:
        consider(literals_of(av[-1]))  # type: ignore[index]
    elif op is getattr(constants, "ATOMIC_GROUP", None):
        consider(literals_of(av))
    elif op is constants.BRANCH:
        branches = [literals_of(b) for b in av[1]]  # type: ignore[index]
        if all(branches):
            consider(sorted({lit for b in branches for lit in b}))
    elif op in (constants.MAX_REPEAT, constants.MIN_REPEAT) or (
        op is getattr(constants, "POSSESSIVE_REPEAT", None)
    ):
        if av[0] >= 1:  # type: ignore[index]
            consider(literals_of(av[2]))  # type: ignore[index]


def _seq_literals(items: Sequence[tuple[object, object]]) -> list[bytes] | None:
    """The best set of literals one of which every match must contain."""
    best: list[bytes] | None = None
    run = bytearray()
    constants = _sre_parse

    def consider(candidate: list[bytes] | None) -> None:
        nonlocal best
        if not candidate or len(candidate) > 24:
            return
        shortest = min(len(c) for c in candidate)
        if best is None or shortest > min(len(b) for b in best):
            best = candidate

    for op, av in items:
        if op is constants.LITERAL:
            run.append(av)  # type: ignore[arg-type]
            continue
        if run:
            consider([bytes(run).lower()])
            run = bytearray()
        _consider_inside(op, av, _seq_literals, consider)
    if run:
        consider([bytes(run).lower()])
    return best


def required_literals(regex: re.Pattern[bytes]) -> tuple[bytes, ...] | None:
    """Literals (lower-cased) one of which any match contains, or None."""
    if len(regex.pattern) > _MAX_LITERAL_SCAN:
        return None  # ReplaceTags giants: costly to parse, rarely hold a literal
    try:
        parsed = _sre_parse.parse(regex.pattern, regex.flags & ~re.DEBUG)
    except Exception:  # noqa: BLE001 -- it compiled; parsing again cannot fail
        return None
    found = _seq_literals(list(parsed))
    if not found or min(len(f) for f in found) < 3:
        return None
    return tuple(found)


def _exact_strings(item: tuple[object, object]) -> list[bytes] | None:
    """The strings one parsed item matches when they are few (an octet, a
    small class, a flag-less group or an alternation of such sequences), else
    None."""
    constants = _sre_parse
    op, av = item
    if op is constants.LITERAL:
        return [bytes((av,))]  # type: ignore[arg-type]
    if op is constants.IN:
        octets: list[int] = []
        for kind, value in av:  # type: ignore[attr-defined]
            if kind is constants.LITERAL:
                octets.append(value)
            elif kind is constants.RANGE and value[1] - value[0] < _SKIP_CLASS:
                octets.extend(range(value[0], value[1] + 1))
            else:
                return None
        return [bytes((o,)) for o in octets] if len(octets) <= _SKIP_CLASS else None
    if op is constants.SUBPATTERN:
        if av[1] or av[2]:  # type: ignore[index]
            return None
        return _exact_run(av[-1])  # type: ignore[index]
    if op is constants.BRANCH:
        found: list[bytes] = []
        for branch in av[1]:  # type: ignore[index]
            strings = _exact_run(branch)
            if strings is None:
                return None
            found.extend(strings)
        return found if len(found) <= _SKIP_STRINGS else None
    return None


def _exact_run(items: Sequence[tuple[object, object]]) -> list[bytes] | None:
    """The strings a sequence of items matches when they are few, else None."""
    run = [b""]
    for item in items:
        strings = _exact_strings(item)
        if strings is None or len(run) * len(strings) > _SKIP_STRINGS:
            return None
        run = [a + b for a in run for b in strings]
    return run


def _skip_seq(items: Sequence[tuple[object, object]]) -> list[bytes] | None:
    """As ``_seq_literals``, with runs that go on through small classes,
    flag-less groups and alternations of literals (``zaw(?:=F3|[\xf3])d``
    gives ``zaw=f3d`` and ``zaw\xf3d``)."""
    best: list[bytes] | None = None

    def consider(candidate: list[bytes] | None) -> None:
        nonlocal best
        if not candidate or len(candidate) > _SKIP_STRINGS:
            return
        shortest = min(len(c) for c in candidate)
        if not shortest:
            return
        if best is None or shortest > min(len(b) for b in best):
            best = candidate

    run = [b""]
    for item in items:
        strings = _exact_strings(item)
        if strings is not None and len(run) * len(strings) <= _SKIP_STRINGS:
            run = [a + b for a in run for b in strings]
            continue
        consider(sorted({r.lower() for r in run}))
        run = [b""]
        if strings is not None:  # too many with the run: a run of its own
            run = strings
            continue
        op, av = item
        _consider_inside(op, av, _skip_seq, consider)
    consider(sorted({r.lower() for r in run}))
    return best


def skip_literals_of(
    regex: re.Pattern[bytes], literals: tuple[bytes, ...]
) -> tuple[bytes, ...] | None:
    """Literals (lower-cased) one of which any match contains, found through
    small classes and alternations too (``_skip_seq``), when they differ from
    ``literals`` and are no shorter; else None.  A twin speed-up: a
    paragraph holding none of them cannot match (``_BodyText.match`` skips
    it; the work counted stays that of ``literals``)."""
    if len(regex.pattern) > _MAX_LITERAL_SCAN:
        return None
    try:
        parsed = _sre_parse.parse(regex.pattern, regex.flags & ~re.DEBUG)
        found = _skip_seq(list(parsed))
    except Exception:  # noqa: BLE001 -- it compiled; parsing again cannot fail
        return None
    if not found or set(found) == set(literals):
        return None
    if min(len(f) for f in found) < min(len(f) for f in literals):
        return None
    return tuple(found)


# ---------------------------------------------------------------- compiling
def _expand_tags(pattern: str, config: Config) -> str:
    pre = inter = post = ""
    for match in _PRE_INTER_POST.finditer(pattern):
        table = getattr(config, f"replace_{match.group(1)}")
        value = table.get(match.group(2), "")
        if match.group(1) == "pre":
            pre = value
        elif match.group(1) == "inter":
            inter = value
        else:
            post = value
    pattern = _PRE_INTER_POST.sub("", pattern)
    if inter:
        pattern = re.sub(r"(?<=>)(?=<)", lambda _: inter, pattern)

    def tag(match: re.Match[str]) -> str:
        value = config.replace_tag.get(match.group(1))
        if value is None:
            return match.group(0)
        return pre + value + post

    return _TAG.sub(tag, pattern)


def _maxhits(flags: frozenset[str]) -> int:
    for flag in flags:
        if flag.startswith("maxhits="):
            return max(1, int(flag.split("=", 1)[1]))
    return 1000 if "multiple" in flags else 1


def _regex_rule(
    name: str, kind: str, text: str, config: Config, index: TrigramIndex
) -> RegexRule:
    if name in config.replace_rules:
        text = _expand_tags(text, config)
    header, negate, if_unset = "", False, None
    if kind in ("header", "mimeheader"):
        match = _HEADER_DEF.match(text)
        if not match:
            raise PerlRegexError(f"bad header rule {text!r}")
        header, negate = match.group(1), match.group(2) == "!~"
        text = match.group(3)
    pattern, modifiers, rest = split_delimited(text)
    if rest:
        unset = _IF_UNSET.match(rest)
        if unset is None:
            raise PerlRegexError(f"unexpected text after regex: {rest!r}")
        if_unset = unset.group(1).encode("latin-1")
    regex = compile_perl(pattern, modifiers)
    literals = required_literals(regex) if kind in ("body", "rawbody") else None
    skip_literals = skip_literals_of(regex, literals) if literals else None
    literal_check = None
    if literals:
        literal_check = LiteralCheck(literals)
        index.add(literal_check.trigrams)
    return RegexRule(
        name=name,
        kind=kind,
        regex=regex,
        literals=literals,
        filter=_body_filter(regex, index, literals) if kind in ("body", "rawbody")
        else None,
        literal_check=literal_check,
        matches_empty=regex.search(b"") is not None,
        header_literals=header_literals(regex) if kind == "header" else (),
        backref=backref.for_regex(regex) if kind in ("header", "full") else None,
        anchored=bool(_ANCHOR.search(pattern)),
        maxhits=_maxhits(config.tflags.get(name, frozenset())),
        header=header,
        negate=negate,
        if_unset=if_unset,
        skip_literals=skip_literals,
    )


def _body_filter(
    regex: re.Pattern[bytes], index: TrigramIndex, literals: tuple[bytes, ...] | None
) -> RuleFilter:
    """A body rule's filter; a rule without literals, whose level pattern
    searches the whole text, gets its first-octet searchers too."""
    found = rule_filter(regex, index)
    return found if literals else found.with_searchers()


def _eval_args(text: str) -> tuple[str, ...]:
    args = []
    for raw in re.findall(r"\"[^\"]*\"|'[^']*'|[^,]+", text):
        raw = raw.strip()
        if raw:
            args.append(raw.strip("'\"") if raw[0] in "'\"" else raw)
    return tuple(args)


def _needed(config: Config, metas: dict[str, Expression]) -> set[str]:
    """Rules worth running: scored in a used set, or read by a needed meta."""
    needed = {
        name
        for name in config.rules
        if any(config.score_of(name, s) for s in USED_SCORE_SETS)
    }
    stack = [n for n in needed if n in metas]
    while stack:
        for dep in metas[stack.pop()].names:
            if dep not in needed:
                needed.add(dep)
                if dep in metas:
                    stack.append(dep)
    return needed


def compile_rules(config: Config) -> RuleSet:
    """Compile a parsed config into a ``RuleSet`` (once per process)."""
    rules = RuleSet(config=config, skipped=dict(config.skipped))
    expressions: dict[str, Expression] = {}
    for name, rule in config.rules.items():
        if rule.kind == "meta":
            try:
                expressions[name] = parse_meta(rule.text)
            except MetaSyntaxError as exc:
                rules.skipped[name] = f"meta does not parse: {exc}"
    needed = _needed(config, expressions)
    for position, (name, rule) in enumerate(config.rules.items()):
        rules.order[name] = position
        if name not in needed or rule.kind == "meta" or name in rules.skipped:
            continue
        evaluation = _EVAL.match(rule.text)
        if evaluation or rule.text.startswith("eval:"):
            function = evals.EVAL_TESTS.get(evaluation.group(1)) if evaluation else None
            if function is None:
                test = evaluation.group(1) if evaluation else rule.text
                rules.skipped[name] = f"eval test {test} not implemented"
                continue
            bound = EvalRule(name, rule.kind, function, _eval_args(evaluation.group(2)))
            if rule.kind == "header":
                rules.header_rules.append(bound)
            else:
                rules.eval_rules.append(bound)
            continue
        if rule.kind == "header" and rule.text.startswith("exists:"):
            header = rule.text[len("exists:") :].strip()
            rules.header_rules.append(
                EvalRule(name, "header", evals.header_exists, (header,))
            )
            continue
        try:
            compiled = _regex_rule(name, rule.kind, rule.text, config, rules.trigrams)
        except PerlRegexError as exc:
            rules.skipped[name] = f"regex not translatable: {exc}"
            continue
        target = {
            "header": rules.header_rules,
            "body": rules.body_rules,
            "rawbody": rules.rawbody_rules,
            "uri": rules.uri_rules,
            "full": rules.full_rules,
            "mimeheader": rules.mimeheader_rules,
        }[rule.kind]
        target.append(compiled)  # type: ignore[arg-type]
    _order_metas(rules, expressions, needed)
    if hsgate.available():
        _build_gates(rules)
    return rules


_MIN_GATED_GROUP = 4  # header groups with fewer regex rules are not gated


def _build_gates(rules: RuleSet) -> None:
    """Build the run plans with their Hyperscan gates (kept when pickled)."""
    plan = rules._header_plan = _HeaderPlan(rules.header_rules)
    for group in plan.groups:
        if len(group.rules) >= _MIN_GATED_GROUP:
            group.gate = hsgate.build_gate(
                [(i, rule.regex) for i, rule in enumerate(group.rules)], False
            )
    for kind in ("body", "rawbody"):
        rules._body_plan(kind).build_gates()
    rules._uri_gate = hsgate.build_gate(
        [(i, rule.regex) for i, rule in enumerate(rules.uri_rules)], True
    )
    # Full rules search the whole message with their own flags: the gate
    # scans that same text, so its answer is a superset of theirs.
    rules._full_gate = hsgate.build_gate(
        [(i, rule.regex) for i, rule in enumerate(rules.full_rules)], False
    )
    rules.gated = True


def _order_metas(
    rules: RuleSet, expressions: dict[str, Expression], needed: set[str]
) -> None:
    """Topologically order needed metas; a meta in a cycle is skipped."""
    state: dict[str, int] = {}
    ordered: list[str] = []

    def visit(name: str, trail: tuple[str, ...]) -> bool:
        if state.get(name) == 2:
            return True
        if state.get(name) == 1:
            return False
        state[name] = 1
        ok = True
        for dep in expressions[name].names:
            if dep in expressions and dep not in rules.skipped:
                ok = visit(dep, trail + (name,)) and ok
        state[name] = 2
        if ok:
            ordered.append(name)
        else:
            rules.skipped[name] = "meta has a circular dependency"
        return ok

    for name in expressions:
        if name in needed and name not in rules.skipped:
            visit(name, ())
    baseline: dict[str, float] = {}
    for name in ordered:
        if name in rules.skipped:
            continue
        expression = expressions[name]
        value = float(expression.evaluate(baseline) or 0.0)
        if value:
            baseline[name] = value
        rules.metas.append(MetaRule(name, expression, expression.names, value))
    rules.baseline_hits = baseline
    readers: dict[str, list[int]] = {}
    for index, meta in enumerate(rules.metas):
        for dep in meta.deps:
            readers.setdefault(dep, []).append(index)
        if meta.baseline:
            rules._baseline_order.append((index, meta.name, meta.baseline))
    rules._readers = {name: tuple(indexes) for name, indexes in readers.items()}


def _gate_scan(main, end, lines, text) -> set[int]:
    """Indexes of the rules the body gates *main* and *end* say may match
    the paragraphs *lines* joined as *text*.

    *main* scans the text as it is when every paragraph ends in a newline
    (the text is then such a join already), else the text and the paragraphs
    as pieces of one join (``hsgate.pieces``); *end*, for the patterns with
    end assertions, always scans the latter."""
    # Twin speed-up: the text is one more piece of the paragraphs' join, so
    # one scan answers for both forms (a match in either, searched alone, is
    # a match of the join: each piece is bordered by newlines or the edges),
    # instead of a scan of each.
    maybe: set[int] = set()
    pieces = None
    if main is not None:
        # (``map`` over ``bytes.endswith``: the test in C, line by line)
        if all(map(bytes.endswith, lines, repeat(b"\n"))):
            maybe.update(main.scan(text))
        else:
            pieces = hsgate.pieces((text, *lines))
            maybe.update(main.scan(pieces))
    if end is not None:
        maybe.update(
            end.scan(pieces if pieces is not None else hsgate.pieces((text, *lines)))
        )
    return maybe
