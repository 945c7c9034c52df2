"""Session 9 speed-ups of the SpamAssassin rule runner (``rules.py``), each
against the plain path it replaces.

The metas walk writing straight into the hits (baselines merged in as it
passes them), the Bayes hits put in place without sorting every eval hit,
the header groups walked from a table (``exists:`` rules asked through
``has_header``), the mimeheader values fetched once per header, and the body
rules answered from the literal gate: the same hits, in the same order, and
the same work counts as the reference implementations kept here (the code
before) and as running without the Hyperscan gates, on crafted rule sets and
on real corpus messages with a part of the shipped rules.
"""

from __future__ import annotations

import pickle
from itertools import product

import numpy as np
import pytest

from twin.stages.spamassassin import evals, hsgate, rules
from twin.stages.spamassassin.commands import DEFAULT_RULES_DIR
from twin.stages.spamassassin.conf import parse_files, rule_files
from twin.stages.spamassassin.evals import Scan
from twin.stages.spamassassin.message import ParsedMessage


# ------------------------------------------------------------ references
def old_metas(ruleset: rules.RuleSet, scan: Scan, hits: dict[str, float]) -> None:
    """``RuleSet._metas`` before: a values dict, a list of evaluated metas
    and the hits rebuilt in meta order at the end."""
    metas = ruleset.metas
    readers = ruleset._readers
    plan = [
        (m.name, m.expression.evaluate, m.baseline, readers.get(m.name, ()))
        for m in metas
    ]
    values = dict(ruleset.baseline_hits)
    values.update(hits)
    todo = bytearray(len(plan))
    for name in hits:
        for reader in readers.get(name, ()):
            todo[reader] = 1
    evaluated: list[tuple[int, float]] = []
    index = todo.find(1)
    while index >= 0:
        name, evaluate, baseline, its_readers = plan[index]
        value = evaluate(values)
        value = float(value) if value else 0.0
        evaluated.append((index, value))
        if value:
            values[name] = value
        else:
            values.pop(name, None)
        if value != baseline:
            for reader in its_readers:
                todo[reader] = 1
        index = todo.find(1, index + 1)
    scan.rules_evaluated += len(evaluated)
    baselines = ruleset._baseline_order
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


def every_meta(ruleset: rules.RuleSet, hits: dict[str, float]) -> dict[str, float]:
    """Every meta evaluated in order (SpamAssassin's walk): the hits after."""
    values = dict(hits)
    for meta in ruleset.metas:
        value = meta.expression.evaluate(values)
        if value:
            values[meta.name] = float(value)
    return values


def old_finish(
    ruleset: rules.RuleSet, scan: Scan, static: dict[str, float]
) -> dict[str, float]:
    """``RuleSet.finish`` before: every eval hit sorted again after Bayes."""
    hits = dict(static)
    added = False
    for rule in ruleset.eval_rules:
        if rule.function is not evals.check_bayes:
            continue
        scan.rules_evaluated += 1
        value = rule.function(scan, *rule.args)
        if value:
            hits[rule.name] = float(value)
            added = True
    if added:
        order = {rule.name: i for i, rule in enumerate(ruleset.eval_rules)}
        evals_hit = sorted((n for n in hits if n in order), key=order.__getitem__)
        values = [(n, hits.pop(n)) for n in evals_hit]
        hits.update(values)
    old_metas(ruleset, scan, hits)
    return hits


def plain_headers(ruleset: rules.RuleSet, scan: Scan) -> tuple[dict, int, int]:
    """Each header rule on its own (SpamAssassin's way): hits in rule order,
    rules evaluated, regex octets (an absent header reads its if-unset
    value, an empty one is searched for nothing)."""
    hits: dict[str, float] = {}
    octets = 0
    for rule in ruleset.header_rules:
        if isinstance(rule, rules.EvalRule):
            value = rule.function(scan, *rule.args)
            if value:
                hits[rule.name] = float(value)
            continue
        hval = scan.msg.header(rule.header)
        if hval is None:
            hval = rule.if_unset or b""
        octets += len(hval)
        if (rule.regex.search(hval) is not None) != rule.negate:
            hits[rule.name] = 1.0
    return hits, len(ruleset.header_rules), octets


def counts(scan: Scan) -> tuple[int, int, int]:
    return scan.rules_evaluated, scan.regex_bytes, scan.prefilter_checks


# ------------------------------------------------------------ crafted metas
CRAFTED = """
body  __A       /apple/
body  __B       /banana/
body  __C       /cherry/
body  __D       /date/
tflags __D multiple maxhits=3
meta  __NOT_C   !__C
meta  __NOT_D   !__D
meta  M_BOTH    __A && __B
meta  M_OF_NOT  __NOT_C && __A
meta  M_SUM     (__A + __B + __D) > 1
meta  M_ARITH   __A * 2 - __B / 2 + __D
meta  M_DIV     __D / __B
meta  M_NEG     -__A + 1
meta  M_OR      __B || __D
meta  M_DEEP    (M_OF_NOT || M_SUM) && !M_BOTH
meta  M_DEEPER  M_DEEP + M_NEG + __NOT_D
meta  M_LAST    !M_DEEPER
score M_BOTH 1.0
score M_OF_NOT 1.0
score M_SUM 1.0
score M_ARITH 1.0
score M_DIV 1.0
score M_NEG 1.0
score M_OR 1.0
score M_DEEP 1.0
score M_DEEPER 1.0
score M_LAST 1.0
"""


@pytest.fixture(scope="module")
def crafted(tmp_path_factory) -> rules.RuleSet:
    folder = tmp_path_factory.mktemp("crafted")
    (folder / "local.cf").write_text(CRAFTED)
    return rules.compile_rules(parse_files(rule_files(folder)))


def test_crafted_metas_have_true_baselines(crafted) -> None:
    baselines = {m.name: m.baseline for m in crafted.metas if m.baseline}
    # true with nothing hit: negations, ``-0 + 1`` and a sum of them
    assert baselines == {
        "__NOT_C": 1.0, "__NOT_D": 1.0, "M_NEG": 1.0, "M_DEEPER": 2.0
    }


def test_metas_walk_matches_reference_on_every_combination(crafted) -> None:
    """Every combination of the four inputs (hit counts 0-2): the same hits
    in the same order (floats), the same count of metas evaluated as the old
    walk, and the values of evaluating every meta in order."""
    meta_names = {m.name for m in crafted.metas}
    seen_values = set()
    for a, b, c, d in product((0.0, 1.0, 2.0), repeat=4):
        static = {n: v for n, v in zip(("__A", "__B", "__C", "__D"), (a, b, c, d),
                                       strict=True) if v}
        scan_new, scan_old = Scan(ParsedMessage(b"S: x\n\nx\n")), Scan(
            ParsedMessage(b"S: x\n\nx\n"))
        new, ref = dict(static), dict(static)
        crafted._metas(scan_new, new)
        old_metas(crafted, scan_old, ref)
        assert list(new.items()) == list(ref.items())
        assert scan_new.rules_evaluated == scan_old.rules_evaluated
        assert all(type(v) is float for v in new.values())
        walked = every_meta(crafted, static)
        assert new == walked
        # metas in meta order after the static hits
        assert list(new)[: len(static)] == list(static)
        order = [n for n in new if n in meta_names]
        assert order == [m.name for m in crafted.metas if m.name in order]
        seen_values.update((n, v) for n, v in new.items() if n in meta_names)
    # the crafted cases reach changed baselines, arithmetic and deep metas
    names = {n for n, _v in seen_values}
    assert {"M_ARITH", "M_DIV", "M_DEEP", "M_LAST", "M_SUM", "M_BOTH"} <= names
    assert ("M_ARITH", 3.5) in seen_values  # 1*2 - 1/2 + 2
    assert ("M_DIV", 2.0) in seen_values


def test_metas_with_no_hit_give_the_baselines(crafted) -> None:
    scan = Scan(ParsedMessage(b"S: x\n\nx\n"))
    hits: dict[str, float] = {"UNREAD_RULE": 1.0}
    crafted._metas(scan, hits)
    assert scan.rules_evaluated == 0
    assert hits == {"UNREAD_RULE": 1.0, **crafted.baseline_hits}
    assert list(hits)[1:] == [n for _i, n, _v in crafted._baseline_order]


def test_metas_do_not_leak_between_messages(crafted) -> None:
    """The walk's tables are the rule set's; a message's values are not."""
    first = {"__A": 1.0, "__B": 1.0, "__D": 2.0}
    expected = dict(first)
    old_metas(crafted, Scan(ParsedMessage(b"S: x\n\nx\n")), expected)
    for _ in range(3):
        for static in (first, {}, {"__C": 1.0}, first):
            new, ref = dict(static), dict(static)
            crafted._metas(Scan(ParsedMessage(b"S: x\n\nx\n")), new)
            old_metas(crafted, Scan(ParsedMessage(b"S: x\n\nx\n")), ref)
            assert list(new.items()) == list(ref.items())
    again = dict(first)
    crafted._metas(Scan(ParsedMessage(b"S: x\n\nx\n")), again)
    assert again == expected


def test_crafted_run_both_ways_and_pickled(crafted, both_ways) -> None:
    bodies = [b"apple banana\n", b"cherry\n", b"nothing\n", b"apple date date\n",
              b"apple cherry banana date\n", b"banana\n\ndate date date date\n"]
    copy = pickle.loads(pickle.dumps(crafted, protocol=pickle.HIGHEST_PROTOCOL))
    assert copy._meta_plan is None and copy._header_table is None
    for body in bodies:
        data = b"Subject: fruit\n\n" + body
        results = both_ways(crafted, data)
        assert results[0] == results[1]
        assert both_ways(copy, data) == results
        assert list(results[0][0].items()) == list(both_ways(copy, data)[0][0].items())


# ------------------------------------------------------------ shipped rules
def _every(kind_counts: dict[str, int], kind: str, step: int) -> bool:
    index = kind_counts[kind] = kind_counts.get(kind, -1) + 1
    return index % step == 0


@pytest.fixture(scope="module")
def shipped_part() -> rules.RuleSet:
    """The shipped rules with every meta, eval and ``exists:`` rule and every
    eighth regex rule of each kind (with their gates when Hyperscan is
    there): a few seconds to compile instead of minutes."""
    config = parse_files(rule_files(DEFAULT_RULES_DIR))
    kept = {}
    seen: dict[str, int] = {}
    for name, rule in config.rules.items():
        text = rule.text
        if (
            rule.kind in ("meta", "full")
            or text.startswith(("eval:", "exists:"))
            or _every(seen, rule.kind, 8)
        ):
            kept[name] = rule
    config.rules = kept
    return rules.compile_rules(config)


def test_shipped_metas_random_hits(shipped_part) -> None:
    """Random static hits over the rules the shipped metas read: the same
    hits, order and count as the old walk, and every meta's value."""
    metas = shipped_part.metas
    assert len(metas) > 500 and shipped_part._baseline_order
    meta_names = {m.name for m in metas}
    inputs = sorted({d for m in metas for d in m.deps} - meta_names)
    rng = np.random.default_rng(9)
    for draw in range(300):
        size = int(rng.integers(0, 60))
        chosen = rng.choice(len(inputs), size=size, replace=False)
        static = {inputs[i]: float(rng.integers(1, 4)) for i in sorted(chosen)}
        new, ref = dict(static), dict(static)
        scan_new = Scan(ParsedMessage(b"S: x\n\nx\n"))
        scan_old = Scan(ParsedMessage(b"S: x\n\nx\n"))
        shipped_part._metas(scan_new, new)
        old_metas(shipped_part, scan_old, ref)
        assert list(new.items()) == list(ref.items()), draw
        assert scan_new.rules_evaluated == scan_old.rules_evaluated
        assert new == every_meta(shipped_part, static)


def test_shipped_finish_puts_bayes_hits_in_eval_order(shipped_part) -> None:
    """Static eval hits before and after the Bayes rules: ``finish`` gives
    the order (and counts) of sorting every eval hit again."""
    eval_rules = shipped_part.eval_rules
    bayes = [i for i, r in enumerate(eval_rules) if r.function is evals.check_bayes]
    assert bayes and bayes[-1] < len(eval_rules) - 1 and bayes[0] > 0
    names = [r.name for r in eval_rules if r.function is not evals.check_bayes]
    msg = ParsedMessage(b"Subject: x\n\nx\n")
    rng = np.random.default_rng(90)
    for draw in range(60):
        static = {"SOME_BODY_RULE": 1.0, "__A_HEADER": 1.0}
        for i in sorted(rng.choice(len(names), size=int(rng.integers(0, 8)),
                                   replace=False)):
            static[names[i]] = 1.0
        for probability in (None, 0.0, 0.005, 0.3, 0.5, 0.95, 0.9999, 1.0):
            scan_new, scan_old = Scan(msg), Scan(msg)
            scan_new.bayes_probability = scan_old.bayes_probability = probability
            before = list(static.items())
            new = shipped_part.finish(scan_new, static)
            ref = old_finish(shipped_part, scan_old, static)
            assert list(static.items()) == before  # left unchanged
            assert list(new.items()) == list(ref.items()), (draw, probability)
            assert counts(scan_new) == counts(scan_old)


def test_shipped_part_on_corpus(shipped_part, corpus_messages, both_ways) -> None:
    """Real messages: the header rules as run one by one, ``run`` with and
    without the gates (the literal-gate answers in the body rules against
    the literal checks), ``finish(run_static)`` as ``run``, and ``finish``
    as the old ``finish`` under a few Bayes verdicts."""
    messages = corpus_messages(15)
    assert len(messages) > 150
    header_hits = body_hits = mime_hits = 0
    for msg in messages:
        scan = Scan(msg)
        found: dict[str, float] = {}
        shipped_part._headers(scan, found, shipped_part.gated)
        expected, evaluated, octets = plain_headers(shipped_part, Scan(msg))
        assert list(found.items()) == list(expected.items())
        assert (scan.rules_evaluated, scan.regex_bytes) == (evaluated, octets)
        header_hits += len(found)

        scan_gated, scan_plain = Scan(msg), Scan(msg)
        gated = shipped_part.run(scan_gated, hyperscan=True)
        plain = shipped_part.run(scan_plain, hyperscan=False)
        assert list(gated.items()) == list(plain.items())
        assert counts(scan_gated) == counts(scan_plain)
        body_hits += sum(1 for r in shipped_part.body_rules if r.name in gated)
        mime_hits += sum(1 for r in shipped_part.mimeheader_rules if r.name in gated)

        scan_static = Scan(msg)
        static = shipped_part.run_static(scan_static)
        for probability in (None, 0.001, 0.5, 0.9999):
            scan_new, scan_old = Scan(msg), Scan(msg)
            for s in (scan_new, scan_old):
                s.bayes_probability = probability
                s.rules_evaluated, s.regex_bytes, s.prefilter_checks = counts(
                    scan_static
                )
            new = shipped_part.finish(scan_new, static)
            assert list(new.items()) == list(
                old_finish(shipped_part, scan_old, static).items()
            )
            assert counts(scan_new) == counts(scan_old)
            if probability is None:
                assert list(new.items()) == list(gated.items())
                assert counts(scan_new) == counts(scan_gated)
    assert header_hits > len(messages) and body_hits > 20 and mime_hits > 0


@pytest.mark.skipif(not hsgate.available(), reason="hyperscan not importable")
def test_literal_gate_answers_are_the_literal_checks(
    shipped_part, corpus_messages
) -> None:
    """What ``gated_indexes`` leaves ``match`` (the literals present, from the
    literal gate) is what each rule's own literal check says."""
    plan = shipped_part._body_plan("body")
    assert plan.literal_gate is not None
    checked = 0
    for msg in corpus_messages(40):
        body = rules._BodyText(msg.body_lines, shipped_part.trigrams)
        gates = plan.gates[body.view.level]
        if gates is None:
            continue
        plan.gated_indexes(gates, body, Scan(msg))
        assert body.present is not None
        for index, rule in enumerate(plan.rules):
            if rule.literals is None:
                continue
            ids = plan.literal_ids[index]
            assert (not body.present.isdisjoint(ids)) == rule.literal_check.present(
                body.view
            )
            checked += 1
    assert checked > 1000


def test_exists_rules_are_has_header(shipped_part, corpus_messages) -> None:
    """``_headers`` asks ``has_header`` for the ``exists:`` rules: what
    ``evals.header_exists`` answers."""
    table = shipped_part._header_table
    if table is None:
        shipped_part._headers(Scan(ParsedMessage(b"S: x\n\nx\n")), {})
        table = shipped_part._header_table
    exists = table[2]
    assert len(exists) > 10
    for msg in corpus_messages(50):
        scan = Scan(msg)
        for _name, header in exists:
            assert bool(evals.header_exists(scan, header)) == msg.has_header(header)
