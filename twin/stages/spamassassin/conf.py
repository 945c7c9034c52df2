"""SpamAssassin configuration files (``*.cf``): the parser.

Twins Mail::SpamAssassin::Conf for the directives a local-only SpamAssassin
needs: rule definitions (``header body rawbody uri full meta mimeheader``),
``score`` (one value is copied to all four score sets, FACTS.md
"SpamAssassin"), ``describe``, ``tflags``, ``priority``, ``required_score``
(``required_hits``), ``rewrite_header``, ``report``/``clear_report_template``,
``add_header``/``clear_headers``, ``replace_tag``/``replace_inter``/
``replace_pre``/``replace_post``/``replace_rules`` (the ReplaceTags plugin,
25_replace.cf), ``bayes_ignore_header`` and the ``if``/``ifplugin``/``else``/
``endif`` blocks.  ``lang xx`` lines (translations) are skipped.  Files are read
in lexical order, as ``spamassassin`` reads its rules directory; a later
definition of a rule replaces an earlier one.

It decides which blocks are live: ``ifplugin X`` is true when X is in
``LOADED_PLUGINS`` (the plugins whose tests this package implements), and
``if`` conditions (``version``, ``plugin()``, ``can()``, ``! && || ( )``) are
evaluated with the meta-expression parser (no Python ``eval``).  Rules inside an
``ifplugin``/``if plugin()`` block of a plugin that is not loaded are recorded
in ``Config.skipped`` with the reason, so the caller can say once what was
left out.

Counts nothing (parsing happens once, before the simulation).  Raises
``ValueError`` for an unreadable rules folder or an unbalanced ``if``/``endif``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from twin.stages.spamassassin.meta import MetaSyntaxError
from twin.stages.spamassassin.meta import parse as parse_expression

__all__ = [
    "LOADED_PLUGINS",
    "RULE_KINDS",
    "SA_VERSION",
    "Config",
    "RuleText",
    "parse_config",
    "parse_files",
]

# The SpamAssassin version whose rule files we read (FACTS.md: 3.1/3.2 are the
# era's; the shipped rule set is 4.0.1, see twin/data/spamassassin/SOURCE.txt).
SA_VERSION = 4.000001
RULE_KINDS = ("header", "body", "rawbody", "uri", "full", "meta", "mimeheader")
LOADED_PLUGINS = frozenset(
    "Mail::SpamAssassin::Plugin::" + name
    for name in (
        "Check",
        "Bayes",
        "AWL",
        "BodyEval",
        "HTMLEval",
        "HeaderEval",
        "MIMEEval",
        "MIMEHeader",
        "RelayEval",
        "ReplaceTags",
        "URIEval",
        "WLBLEval",
        "HTTPSMismatch",
        "ImageInfo",
    )
)
# can(Mail::SpamAssassin::Conf::...) features this engine honours.
_CONF_FEATURES = frozenset(
    {
        "feature_bug6558_free",
        "feature_welcomelist_blocklist",
        "feature_yesno_takes_args",
        "feature_originating_ip_headers",
        "feature_dns_local_ports_permit_avoid",
        "feature_registryboundaries",
        "feature_bayes_stopwords",
        "perl_min_version_5010000",
    }
)
_COMMENT = re.compile(r"(?<!\\)#.*")
_CALL = re.compile(r"\b(plugin|can)\(\s*([\w:]+)\s*\)")


@dataclass(frozen=True, slots=True)
class RuleText:
    """One rule definition as written: kind, name, the text after the name."""

    kind: str
    name: str
    text: str
    origin: str  # "file:line"


@dataclass
class Config:
    """Everything the parser read, before rule compilation."""

    rules: dict[str, RuleText] = field(default_factory=dict)
    scores: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)
    describe: dict[str, str] = field(default_factory=dict)
    tflags: dict[str, frozenset[str]] = field(default_factory=dict)
    priority: dict[str, int] = field(default_factory=dict)
    required_score: float = 5.0  # FACTS.md "SpamAssassin": required_score 5
    rewrite_header: dict[str, str] = field(default_factory=dict)
    report_template: list[str] = field(default_factory=list)
    add_header: list[tuple[str, str, str]] = field(default_factory=list)
    replace_tag: dict[str, str] = field(default_factory=dict)
    replace_pre: dict[str, str] = field(default_factory=dict)
    replace_inter: dict[str, str] = field(default_factory=dict)
    replace_post: dict[str, str] = field(default_factory=dict)
    replace_rules: set[str] = field(default_factory=set)
    bayes_ignore_header: set[str] = field(default_factory=set)
    settings: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # rule -> reason
    ignored_directives: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    bytes_read: int = 0

    def score_of(self, name: str, score_set: int) -> float:
        """The rule's score in a set: its ``score`` line, else SA's default.

        Defaults: 1.0; -1.0 with ``tflags nice``; 0.01 for ``T_`` rules; 0 for
        ``__`` subrules.
        """
        if name in self.scores:
            return self.scores[name][score_set]
        if name.startswith("__"):
            return 0.0
        if name.startswith("T_"):
            return 0.01
        return -1.0 if "nice" in self.tflags.get(name, ()) else 1.0


def _condition(text: str) -> tuple[bool, str | None]:
    """Evaluate an ``if`` condition; also return the plugin it tests, if any."""
    plugin_named: list[str] = []

    def call(match: re.Match[str]) -> str:
        what, arg = match.group(1), match.group(2)
        if what == "plugin":
            plugin_named.append(arg)
            return "1" if arg in LOADED_PLUGINS else "0"
        owner, _, method = arg.rpartition("::")
        if owner == "Mail::SpamAssassin::Conf":
            return "1" if method in _CONF_FEATURES else "0"
        return "1" if owner in LOADED_PLUGINS else "0"

    expression = _CALL.sub(call, text)
    expression = re.sub(r"\bversion\b", f"{SA_VERSION:.6f}", expression)
    try:
        value = parse_expression(expression).evaluate({})
    except MetaSyntaxError:
        value = 0
    return bool(value), (plugin_named[0] if plugin_named else None)


def _score_values(args: list[str]) -> tuple[float, float, float, float] | None:
    values = []
    for arg in args[:4]:
        try:
            values.append(float(arg.strip("()")))
        except ValueError:
            return None
    if len(values) == 1:
        return (values[0],) * 4
    if len(values) == 4:
        return (values[0], values[1], values[2], values[3])
    return None


def parse_config(text: str, config: Config, origin: str = "<string>") -> Config:
    """Parse one file's text (Latin-1 decoded) into ``config``; return it."""
    # Stack of (active, skip_reason) per open if/ifplugin block.
    stack: list[tuple[bool, str | None]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = _COMMENT.sub("", raw).strip()
        if not line:
            continue
        parts = line.split(None, 1)
        directive = parts[0].lower()
        rest = parts[1] if len(parts) > 1 else ""
        where = f"{origin}:{number}"
        if directive in ("if", "ifplugin"):
            if directive == "ifplugin":
                active, plugin = rest.strip() in LOADED_PLUGINS, rest.strip()
            else:
                active, plugin = _condition(rest)
            outer_active = all(a for a, _ in stack)
            reason = None
            if (
                not active
                and plugin
                and rest.strip().lstrip("(").startswith(("plugin", "Mail"))
            ):
                reason = f"plugin {plugin.rsplit('::', 1)[-1]} not loaded"
            stack.append((active and outer_active, reason))
            continue
        if directive == "else":
            if not stack:
                raise ValueError(f"'else' without 'if' at {where}")
            active, _ = stack.pop()
            outer_active = all(a for a, _ in stack)
            stack.append((not active and outer_active, None))
            continue
        if directive == "endif":
            if not stack:
                raise ValueError(f"'endif' without 'if' at {where}")
            stack.pop()
            continue
        if not all(a for a, _ in stack):
            reasons = [r for _, r in stack if r]
            if reasons and directive in RULE_KINDS:
                name = rest.split(None, 1)[0] if rest else ""
                if name and name not in config.rules:
                    config.skipped[name] = reasons[-1]
            continue
        _directive(config, directive, rest, where)
    if stack:
        raise ValueError(f"{len(stack)} unclosed if/ifplugin block(s) in {origin}")
    return config


def _directive(config: Config, directive: str, rest: str, where: str) -> None:
    args = rest.split()
    if directive in RULE_KINDS:
        if len(args) < 2:
            config.skipped[args[0] if args else where] = "rule without definition"
            return
        name, text = rest.split(None, 1)
        config.rules[name] = RuleText(directive, name, text.strip(), where)
        config.skipped.pop(name, None)
    elif directive == "score" and len(args) >= 2:
        values = _score_values(args[1:])
        if values is not None:
            config.scores[args[0]] = values
    elif directive == "describe" and args:
        config.describe[args[0]] = rest.split(None, 1)[1] if len(args) > 1 else ""
    elif directive == "tflags" and args:
        config.tflags[args[0]] = frozenset(args[1:])
    elif directive == "priority" and len(args) == 2:
        config.priority[args[0]] = int(args[1])
    elif directive in ("required_score", "required_hits") and args:
        config.required_score = float(args[0])
    elif directive == "rewrite_header" and args:
        config.rewrite_header[args[0].lower()] = (
            rest.split(None, 1)[1] if (len(args) > 1) else ""
        )
    elif directive == "clear_report_template":
        config.report_template.clear()
    elif directive == "report":
        config.report_template.append(rest)
    elif directive == "clear_headers":
        config.add_header.clear()
    elif directive == "add_header" and len(args) >= 3:
        which, name, template = rest.split(None, 2)
        config.add_header = [
            h for h in config.add_header if h[1] != name or (h[0] != which.lower())
        ]
        config.add_header.append((which.lower(), name, template.strip().strip('"')))
    elif directive in ("replace_tag", "replace_pre", "replace_inter", "replace_post"):
        if len(args) >= 2:
            table = getattr(config, directive)
            table[args[0]] = rest.split(None, 1)[1].strip()
    elif directive == "replace_rules":
        config.replace_rules.update(args)
    elif directive == "bayes_ignore_header" and args:
        config.bayes_ignore_header.add(args[0].lower())
    elif directive == "lang":
        config.ignored_directives["lang"] = config.ignored_directives.get("lang", 0) + 1
    elif directive in ("use_bayes", "bayes_auto_learn", "report_safe", "ok_locales"):
        config.settings[directive] = rest
    else:
        config.ignored_directives[directive] = (
            config.ignored_directives.get(directive, 0) + 1
        )


def parse_files(paths: list[Path], config: Config | None = None) -> Config:
    """Parse rule files in the given order into one ``Config``."""
    config = config if config is not None else Config()
    for path in paths:
        data = path.read_bytes()
        config.bytes_read += len(data)
        config.files.append(path.name)
        parse_config(data.decode("latin-1"), config, origin=path.name)
    return config


def rule_files(rules_dir: Path) -> list[Path]:
    """The ``*.cf`` files of a rules folder in lexical order."""
    if not rules_dir.is_dir():
        raise ValueError(f"rules folder {str(rules_dir)!r} is not a directory")
    files = sorted(rules_dir.glob("*.cf"))
    if not files:
        raise ValueError(f"rules folder {str(rules_dir)!r} holds no *.cf files")
    return files
