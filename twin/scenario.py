"""Scenario files: loading, overrides, validation, and the resolved form.

A scenario is a YAML file with a ``kind`` (``queueing`` or ``mail``) that picks
its typed schema in ``twin.schema``. ``load_scenario`` reads it keeping the line
of every key, applies ``--set path.to.key=VALUE`` overrides, validates it
against the schema and the cross-references (stations, hosts), and returns a
``Scenario``: the typed model, where it came from, and its resolved YAML (every
default filled in; running the resolved file again gives the same result).

Every problem found is collected and raised at once as ``ScenarioError``, one
``FILE:LINE: key.path: what is wrong (what would be right)`` line each.
Overrides given on the command line are located as ``--set`` instead of a line.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from twin.errors import Problem, ScenarioError
from twin.schema.queueing import EXIT, QueueingScenario

Path_ = tuple[Any, ...]


def _schemas() -> dict[str, type[BaseModel]]:
    from twin.schema.mail import MailScenario

    return {"queueing": QueueingScenario, "mail": MailScenario}


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: the typed model plus where it came from."""

    model: Any
    source: str
    resolved_yaml: str

    @property
    def kind(self) -> str:
        return self.model.kind

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def seed(self) -> int:
        return self.model.seed

    @property
    def digest(self) -> str:
        """SHA-256 of the resolved YAML: equal digests run identically."""
        return hashlib.sha256(self.resolved_yaml.encode()).hexdigest()


class _Locator:
    """Where each key path came from: a file line, or a --set override."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[Path_, int] = {}
        self.overrides: dict[Path_, str] = {}

    def where(self, path: Path_) -> tuple[str, int]:
        for cut in range(len(path), -1, -1):
            prefix = path[:cut]
            if prefix in self.overrides:
                return self.overrides[prefix], 0
            if prefix in self.lines:
                return self.source, self.lines[prefix]
        return self.source, 0

    def problem(self, path: Path_, message: str) -> Problem:
        file, line = self.where(path)
        return Problem(file, line, _dotted(path), message)


def _dotted(path: Iterable[Any]) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _walk(node: yaml.Node, path: Path_, locator: _Locator, problems: list[Problem]):
    locator.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            child = (*path, key)
            if key in seen:
                problems.append(
                    Problem(
                        locator.source,
                        key_node.start_mark.line + 1,
                        _dotted(child),
                        "duplicate key (keep one of them)",
                    )
                )
            seen.add(key)
            locator.lines[child] = key_node.start_mark.line + 1
            _walk(value_node, child, locator, problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), locator, problems)


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """YAML 1.2 booleans: only true/false, so ``on:`` and ``no`` stay strings.

    libyaml's parser where PyYAML has it: about 10 x faster, marks alike."""


_Loader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _parse_yaml(text: str, source: str) -> tuple[Any, _Locator]:
    locator = _Locator(source)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        what = exc.problem or "invalid YAML"
        if exc.context:
            what = f"{exc.context}, {what}"
        raise ScenarioError(
            [Problem(source, line, "", f"YAML syntax error: {what} (fix the syntax)")]
        ) from None
    except yaml.YAMLError as exc:
        raise ScenarioError([Problem(source, 0, "", f"YAML error: {exc}")]) from None
    finally:
        loader.dispose()
    problems: list[Problem] = []
    if node is not None:
        _walk(node, (), locator, problems)
    if problems:
        raise ScenarioError(problems)
    return data, locator


def _split_override(text: str) -> tuple[list[Any], Any]:
    if "=" not in text:
        raise ValueError("expected path.to.key=VALUE")
    key, _, raw = text.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ValueError("expected path.to.key=VALUE with a non-empty key path")
    try:
        value = yaml.load(raw, Loader=_Loader) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    parts: list[Any] = [
        int(part) if part.isdigit() else part for part in key.split(".")
    ]
    return parts, value


def apply_overrides(
    data: Any, overrides: Sequence[str | tuple[str, str]], locator: _Locator
) -> Any:
    """Set each ``path.to.key=VALUE`` into *data*; VALUE is read as YAML.

    An override may be a ``(label, text)`` pair: problems with it are then
    located by *label* (say ``--duration 2x``) instead of ``--set text``.
    """
    problems = []
    for item in overrides:
        label, text = item if isinstance(item, tuple) else (f"--set {item}", item)
        try:
            parts, value = _split_override(text)
        except ValueError as exc:
            problems.append(Problem(label, 0, "", str(exc)))
            continue
        target = data
        for depth, part in enumerate(parts[:-1]):
            if isinstance(target, dict):
                part = str(part) if isinstance(part, int) else part
                target = target.setdefault(part, {})
            elif (
                isinstance(target, list)
                and isinstance(part, int)
                and part < len(target)
            ):
                target = target[part]
            else:
                problems.append(
                    Problem(
                        label,
                        0,
                        _dotted(parts[: depth + 1]),
                        "no such place to set (check the key path)",
                    )
                )
                break
        else:
            last = parts[-1]
            if isinstance(target, dict):
                last = str(last) if isinstance(last, int) else last
                target[last] = value
            elif (
                isinstance(target, list)
                and isinstance(last, int)
                and last < len(target)
            ):
                target[last] = value
            else:
                problems.append(
                    Problem(
                        label,
                        0,
                        _dotted(parts),
                        "no such place to set (check the key path)",
                    )
                )
                continue
            locator.overrides[tuple(parts)] = label
    if problems:
        raise ScenarioError(problems)
    return data


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types an annotation may hold (Annotated/Optional peeled)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        found = []
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                found.extend(_unwrap(arg))
        return found
    return [annotation]


def _model_at(root: type[BaseModel], path: Path_) -> type[BaseModel] | None:
    """The schema model that owns the keys at *path*, if any."""
    current: list[Any] = [root]
    for part in path:
        following: list[Any] = []
        for candidate in current:
            origin = typing.get_origin(candidate)
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                field = candidate.model_fields.get(part)
                if field is not None:
                    following.extend(_unwrap(field.annotation))
            elif origin is dict:
                following.extend(_unwrap(typing.get_args(candidate)[1]))
            elif origin is list and isinstance(part, int):
                following.extend(_unwrap(typing.get_args(candidate)[0]))
        current = following
    for candidate in current:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` or the list of choices, for an unknown name."""
    choices = sorted(str(choice) for choice in choices)
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    if len(choices) <= 12:
        return "allowed: " + ", ".join(choices)
    return f"see the schema for the {len(choices)} allowed keys"


def _describe(error: dict[str, Any], root: type[BaseModel]) -> str:
    kind = error["type"]
    loc = tuple(error["loc"])
    found = error.get("input")
    if kind == "extra_forbidden":
        model = _model_at(root, loc[:-1])
        allowed = model.model_fields if model else ()
        return f"unknown key ({did_you_mean(loc[-1], allowed)})"
    if kind == "missing":
        return "required key is missing (add it)"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"{found!r} is not allowed (use one of {expected})"
    if kind in (
        "int_parsing",
        "float_parsing",
        "int_type",
        "float_type",
        "bool_parsing",
        "bool_type",
        "string_type",
        "dict_type",
        "list_type",
        "int_from_float",
        "model_type",
    ):
        return f"{message[0].lower()}{message[1:]}, found {found!r}"
    if kind in (
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "too_short",
        "string_pattern_mismatch",
    ):
        return f"{message[0].lower()}{message[1:]}, found {found!r}"
    return message[0].lower() + message[1:] if message else kind


def _schema_problems(
    exc: ValidationError, root: type[BaseModel], locator: _Locator
) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(part for part in error["loc"])
        problems.append(locator.problem(loc, _describe(error, root)))
    return sorted(problems, key=lambda problem: problem.line)


def _queueing_references(model: QueueingScenario, locator: _Locator) -> list[Problem]:
    names = set(model.stations)
    problems = []
    if EXIT in names:
        problems.append(
            locator.problem(
                ("stations", EXIT),
                f"'{EXIT}' is reserved for leaving the network (rename the station)",
            )
        )
    for index, arrival in enumerate(model.arrivals):
        if arrival.to not in names:
            problems.append(
                locator.problem(
                    ("arrivals", index, "to"),
                    f"no station {arrival.to!r} ({did_you_mean(arrival.to, names)})",
                )
            )
    for name, station in model.stations.items():
        for target in station.next:
            if target != EXIT and target not in names:
                problems.append(
                    locator.problem(
                        ("stations", name, "next", target),
                        f"no station {target!r} "
                        f"({did_you_mean(target, names | {EXIT})})",
                    )
                )
        total = sum(station.next.values())
        if abs(total - 1.0) > 1e-9:
            problems.append(
                locator.problem(
                    ("stations", name, "next"),
                    f"routing probabilities sum to {total:g} (they must sum to 1)",
                )
            )
    if model.warmup >= model.duration:
        problems.append(
            locator.problem(
                ("warmup",),
                f"warm-up {model.warmup:g}s is not shorter than the duration "
                f"{model.duration:g}s (shorten it)",
            )
        )
    return problems


def _resolved_yaml(model: BaseModel) -> str:
    data = model.model_dump(mode="json", exclude_none=True)
    header = (
        "# resolved by mailtwin: every default filled in; durations in seconds,\n"
        "# sizes in bytes, rates per second.\n"
    )
    return header + yaml.safe_dump(
        data, sort_keys=False, default_flow_style=False, allow_unicode=True, width=88
    )


def validate_data(data: Any, locator: _Locator) -> Scenario:
    """Validate parsed scenario *data*; raise ScenarioError listing every problem."""
    schemas = _schemas()
    if not isinstance(data, dict):
        raise ScenarioError(
            [
                locator.problem(
                    (),
                    "a scenario must be a YAML mapping "
                    "(start with 'kind: queueing' or "
                    "'kind: mail')",
                )
            ]
        )
    kind = data.get("kind")
    if kind is None:
        raise ScenarioError(
            [
                locator.problem(
                    ("kind",), f"required key is missing (one of {', '.join(schemas)})"
                )
            ]
        )
    if kind not in schemas:
        raise ScenarioError(
            [
                locator.problem(
                    ("kind",), f"unknown kind {kind!r} ({did_you_mean(kind, schemas)})"
                )
            ]
        )
    root = schemas[kind]
    try:
        model = root.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_schema_problems(exc, root, locator)) from None
    if kind == "queueing":
        problems = _queueing_references(model, locator)
    else:
        from twin.schema.mail import mail_references

        problems = mail_references(model, locator)
    if problems:
        raise ScenarioError(problems)
    return Scenario(
        model=model, source=locator.source, resolved_yaml=_resolved_yaml(model)
    )


def load_scenario(
    path: str | Path, overrides: Sequence[str | tuple[str, str]] = ()
) -> Scenario:
    """Read, override and validate the scenario file at *path*."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(
            [
                Problem(
                    source, 0, "", "no such file (check the path, or run 'twin list')"
                )
            ]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError([Problem(source, 0, "", f"cannot read: {exc}")]) from None
    data, locator = _parse_yaml(text, source)
    data = apply_overrides(data, overrides, locator)
    return validate_data(data, locator)


def loads_scenario(
    text: str,
    source: str = "<scenario>",
    overrides: Sequence[str | tuple[str, str]] = (),
) -> Scenario:
    """Like ``load_scenario`` for YAML text already in memory."""
    data, locator = _parse_yaml(text, source)
    data = apply_overrides(data, overrides, locator)
    return validate_data(data, locator)
