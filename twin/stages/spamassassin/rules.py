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
counts.  Body and rawbody rules work on the rendered body joined once: a set
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
literals a value must hold.  The work counted is that of the engine described
above, whatever the speed-ups skip.

It counts, into the scan, rules evaluated, literal prefilter checks and bytes
scanned by regexes.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from heapq import heappop, heappush
from itertools import accumulate

from twin.stages.spamassassin import evals
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

    def run(self, scan: evals.Scan) -> dict[str, float]:
        """Evaluate every active rule on the scan's message; return hit counts."""
        hits: dict[str, float] = {}
        msg = scan.msg
        lowered: dict[bytes, bytes] = {}
        for rule in self.header_rules:
            scan.rules_evaluated += 1
            if isinstance(rule, EvalRule):
                value = rule.function(scan, *rule.args)
                if value:
                    hits[rule.name] = float(value)
                continue
            hval = msg.header(rule.header)
            if hval is None:
                hval = rule.if_unset if rule.if_unset is not None else b""
            scan.regex_bytes += len(hval)
            if not hval:
                found = rule.matches_empty
            elif rule.header_literals:
                lower = lowered.get(hval)
                if lower is None:
                    lower = lowered[hval] = hval.lower()
                for literal in rule.header_literals:
                    if literal in lower:
                        found = rule.regex.search(hval) is not None
                        break
                else:
                    found = False
            else:
                found = rule.regex.search(hval) is not None
            if found != rule.negate:
                hits[rule.name] = 1.0
        for rule in self.mimeheader_rules:
            scan.rules_evaluated += 1
            for part in msg.parts:
                value = part.header(rule.header.encode("latin-1"))
                scan.regex_bytes += len(value)
                if value and rule.regex.search(value):
                    hits[rule.name] = 1.0
                    break
        self._lines(scan, self.body_rules, msg.body_lines, hits)
        self._lines(scan, self.rawbody_rules, msg.rawbody_lines, hits)
        uris = msg.uris
        for rule in self.uri_rules:
            scan.rules_evaluated += 1
            count = 0
            for uri in uris:
                scan.regex_bytes += len(uri)
                if rule.regex.search(uri):
                    count += 1
                    if count >= rule.maxhits:
                        break
            if count:
                hits[rule.name] = float(count)
        for rule in self.full_rules:
            scan.rules_evaluated += 1
            scan.regex_bytes += len(msg.full)
            count = _count(rule.regex, msg.full, rule.maxhits)
            if count:
                hits[rule.name] = float(count)
        for rule in self.eval_rules:
            scan.rules_evaluated += 1
            value = rule.function(scan, *rule.args)
            if value:
                hits[rule.name] = float(value)
        self._metas(scan, hits)
        return hits

    def _lines(
        self,
        scan: evals.Scan,
        rules: Sequence[RegexRule],
        lines: list[bytes],
        hits: dict[str, float],
    ) -> None:
        if not rules:
            return
        text = b"".join(lines)
        view = TextView(text, self.trigrams)
        lower = view.lower
        starts: list[int] | None = None
        size = len(text)
        found = view.found
        for rule in rules:
            scan.rules_evaluated += 1
            literals = rule.literals
            if literals is None:
                scan.regex_bytes += size
                regex = rule.filter.pattern_for(view)  # type: ignore[union-attr]
                if regex is None:
                    continue
                match = regex.search(text)
                if match is None:
                    continue
                start, end = match.span()
                if (
                    not rule.anchored
                    and rule.maxhits == 1
                    and b"\n" not in text[start : max(start, end - 1)]
                ):
                    hits[rule.name] = 1.0
                    continue
                candidates = lines
            else:
                scan.prefilter_checks += len(literals)
                if not rule.literal_check.present(view):  # type: ignore[union-attr]
                    continue
                # Only paragraphs holding a literal can match: scan just those.
                if starts is None:
                    starts = list(accumulate((len(line) for line in lines), initial=0))
                chosen: set[int] = set()
                for literal in literals:
                    held = found.get(literal)
                    if held is None:
                        held = found[literal] = _paragraphs(lower, literal, starts)
                    chosen.update(held)  # type: ignore[arg-type]
                candidates = [lines[i] for i in sorted(chosen)]
                if rule.filter.pattern_for(view) is None:  # type: ignore[union-attr]
                    scan.regex_bytes += sum(map(len, candidates))
                    continue
            count = 0
            maxhits = rule.maxhits
            levels = rule.filter.levels  # type: ignore[union-attr]
            level = view.level
            for line in candidates:
                scan.regex_bytes += len(line)
                if level == 2:
                    regex = levels[2][0]
                elif level == 0 and not line.isascii():
                    regex = levels[0][0]
                else:
                    regex = levels[1 if ENTITY.search(line) else 2][0]
                if regex is None:
                    continue
                count += _count(regex, line, maxhits - count)
                if count >= maxhits:
                    break
            if count:
                hits[rule.name] = float(count)

    def _metas(self, scan: evals.Scan, hits: dict[str, float]) -> None:
        """Evaluate the metas some of whose inputs differ from the baseline.

        Same outcome as walking every meta in order: a meta whose inputs all
        keep their baseline value keeps its baseline value; only metas reached
        from a hit (through metas whose value changed) are evaluated, in order.
        """
        metas = self.metas
        readers = self._readers
        values = dict(self.baseline_hits)
        values.update(hits)
        queue: list[int] = []
        queued: set[int] = set()
        for name in hits:
            for index in readers.get(name, ()):
                if index not in queued:
                    queued.add(index)
                    heappush(queue, index)
        evaluated: list[tuple[int, float]] = []
        while queue:
            index = heappop(queue)
            rule = metas[index]
            value = rule.expression.evaluate(values)
            value = float(value) if value else 0.0
            evaluated.append((index, value))
            if value:
                values[rule.name] = value
            else:
                values.pop(rule.name, None)
            if value != rule.baseline:
                for reader in readers.get(rule.name, ()):
                    if reader not in queued:
                        queued.add(reader)
                        heappush(queue, reader)
        scan.rules_evaluated += len(evaluated)
        # Hits in meta order: evaluated values, else baselines.
        baselines = self._baseline_order
        if not evaluated:
            for _index, name, value in baselines:
                hits[name] = value
            return
        done = dict(evaluated)
        for index in sorted(done.keys() | {i for i, _n, _v in baselines}):
            value = done.get(index)
            if value is None:
                value = metas[index].baseline
            if value:
                hits[metas[index].name] = value

def _paragraphs(lower: bytes, literal: bytes, starts: list[int]) -> tuple[int, ...]:
    """Indexes of the paragraphs where ``literal`` starts (once per paragraph)."""
    chosen = []
    pos = lower.find(literal)
    while pos >= 0:
        index = bisect_right(starts, pos) - 1
        chosen.append(index)
        pos = lower.find(literal, starts[index + 1])
    return tuple(chosen)


def _count(regex: re.Pattern[bytes], text: bytes, limit: int) -> int:
    if limit <= 1:
        return 1 if regex.search(text) else 0
    count = 0
    for _ in regex.finditer(text):
        count += 1
        if count >= limit:
            break
    return count


# ------------------------------------------------------------------ literals
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
        if op is constants.SUBPATTERN:
            consider(_seq_literals(av[-1]))  # type: ignore[index]
        elif op is getattr(constants, "ATOMIC_GROUP", None):
            consider(_seq_literals(av))  # type: ignore[arg-type]
        elif op is constants.BRANCH:
            branches = [_seq_literals(b) for b in av[1]]  # type: ignore[index]
            if all(branches):
                consider(sorted({lit for b in branches for lit in b}))  # type: ignore[union-attr]
        elif op in (constants.MAX_REPEAT, constants.MIN_REPEAT) or (
            op is getattr(constants, "POSSESSIVE_REPEAT", None)
        ):
            if av[0] >= 1:  # type: ignore[index]
                consider(_seq_literals(av[2]))  # type: ignore[index]
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
    literal_check = None
    if literals:
        literal_check = LiteralCheck(literals)
        index.add(literal_check.trigrams)
    return RegexRule(
        name=name,
        kind=kind,
        regex=regex,
        literals=literals,
        filter=rule_filter(regex, index) if kind in ("body", "rawbody") else None,
        literal_check=literal_check,
        matches_empty=regex.search(b"") is not None,
        header_literals=header_literals(regex) if kind == "header" else (),
        anchored=bool(_ANCHOR.search(pattern)),
        maxhits=_maxhits(config.tflags.get(name, frozenset())),
        header=header,
        negate=negate,
        if_unset=if_unset,
    )


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
    return rules


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
