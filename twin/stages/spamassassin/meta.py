"""Meta-rule expressions: a small, safe parser (no Python ``eval``).

SpamAssassin's ``meta`` rules combine other rules' hit counts with Perl
operators: ``!``, unary ``-``, ``* /``, ``+ -``, ``< > <= >=``, ``== !=``,
``&&``, ``||`` and parentheses, in Perl's precedence.  A rule name stands for
its hit count (0 when it did not hit, was skipped, or is unknown, as network
rules are in a local-only SpamAssassin).  The same grammar serves ``if``
conditions in the configuration, whose ``version``/``plugin()``/``can()``
terms the config parser resolves to numbers first.

``parse(text)`` returns an ``Expression``: the rule names it reads and
``evaluate(values)`` over a name -> number mapping, one Python function
compiled from the parsed expression (source built only from the checked
tokens: names, numbers and the operators below; Perl's ``&&``/``||`` return
an operand, as Python's ``and``/``or`` do).  Raises ``MetaSyntaxError`` (a
``ValueError``) on anything outside the grammar.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["Expression", "MetaSyntaxError", "parse"]

Evaluator = Callable[[Mapping[str, float]], float]

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>&&|\|\||<=|>=|==|!=|[!()+\-*/<>]))"
)
# Binary operators by precedence level, lowest first (perlop).
_LEVELS = (
    ("||",),
    ("&&",),
    ("==", "!="),
    ("<", ">", "<=", ">="),
    ("+", "-"),
    ("*", "/"),
)


class MetaSyntaxError(ValueError):
    """A meta or if expression outside the supported grammar."""


@dataclass(frozen=True, slots=True)
class Expression:
    """A parsed expression: the names it reads and its evaluator."""

    text: str
    names: frozenset[str]
    evaluate: Evaluator

    def __reduce__(self) -> tuple[Callable[[str], Expression], tuple[str]]:
        # Pickled as its text (the evaluator is a closure): parsed again.
        return (parse, (self.text,))


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise MetaSyntaxError(
                f"unexpected text {text[pos : pos + 20]!r} in {text!r}"
            )
        tokens.append(match.group("num") or match.group("name") or match.group("op"))
        pos = match.end()
    return tokens


def _divide(left: float, right: float) -> float:
    return (left / right) if right else 0.0


# Python source of each operator (operands are parenthesised sources).
_SOURCE = {
    "||": "({} or {})",
    "&&": "({} and {})",
    "+": "({} + {})",
    "-": "({} - {})",
    "*": "({} * {})",
    "<": "(1 if {} < {} else 0)",
    ">": "(1 if {} > {} else 0)",
    "<=": "(1 if {} <= {} else 0)",
    ">=": "(1 if {} >= {} else 0)",
    "==": "(1 if {} == {} else 0)",
    "!=": "(1 if {} != {} else 0)",
    "/": "_divide({}, {})",
}
_GLOBALS = {"__builtins__": {}, "_divide": _divide}


def _binary(op: str, left: str, right: str) -> str:
    return _SOURCE[op].format(left, right)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0
        self.names: set[str] = set()

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise MetaSyntaxError(f"unexpected end of expression {self.text!r}")
        self.pos += 1
        return token

    def level(self, depth: int) -> str:
        if depth == len(_LEVELS):
            return self.unary()
        node = self.level(depth + 1)
        while self.peek() in _LEVELS[depth]:
            op = self.take()
            node = _binary(op, node, self.level(depth + 1))
        return node

    def unary(self) -> str:
        token = self.take()
        if token == "!":
            return f"(0 if {self.unary()} else 1)"
        if token == "-":
            return f"(-{self.unary()})"
        if token == "(":
            node = self.level(0)
            if self.take() != ")":
                raise MetaSyntaxError(f"missing ')' in {self.text!r}")
            return node
        if token[0].isdigit():
            return repr(float(token))
        if token[0].isalpha() or token[0] == "_":
            self.names.add(token)
            # ``_v.get(name, 0)``, spelled with ``in`` and ``[]`` (no method
            # call: fewer instructions, most names are absent): the same value.
            return f"(_v[{token!r}] if {token!r} in _v else 0)"
        raise MetaSyntaxError(f"unexpected {token!r} in {self.text!r}")


def parse(text: str) -> Expression:
    """Parse a meta/if expression into an ``Expression``."""
    parser = _Parser(text)
    if not parser.tokens:
        raise MetaSyntaxError("empty expression")
    try:
        node = parser.level(0)
    except RecursionError:
        raise MetaSyntaxError(f"expression nested too deeply: {text[:40]!r}") from None
    if parser.peek() is not None:
        raise MetaSyntaxError(f"unexpected {parser.peek()!r} in {text!r}")
    source = f"lambda _v: {node}"
    try:
        # Source made of checked tokens only (see the module docstring).
        evaluate = eval(compile(source, "<meta>", "eval"), _GLOBALS)  # noqa: S307
    except (RecursionError, MemoryError, SyntaxError):
        raise MetaSyntaxError(f"expression too large: {text[:40]!r}") from None
    return Expression(text=text, names=frozenset(parser.names), evaluate=evaluate)
