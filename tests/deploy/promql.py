"""PromQL helpers for lint tests: the metric names an expression selects, and a real parse.

The name extraction is lexical (strings, label matchers, ranges, grouping labels, numbers,
functions and keywords are removed; what is left are selectors' metric names). It is checked
by its own tests; the real parse is promtool's, which rejects what the lexer would misread.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

import yaml

from tests.deploy.tools import ToolRun, run_tool, system_tool

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_NUMBER = re.compile(r"(?<![\w:])(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?(?:ms|[smhdwy])*)")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = frozenset(
    "and or unless by without on ignoring group_left group_right bool offset atan2 inf nan".split()
)

#: Grafana's built-in interval variables, and what to put in their place for a parse.
GRAFANA_INTERVALS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "6h"}
_GRAFANA_VARIABLE = re.compile(r"\$\{\w+\}|\$\w+")


def without_grafana_variables(expr: str) -> str:
    """The expression Prometheus would get: intervals as durations, other variables as `.*`.

    Template variables here only stand inside regex label matchers (`tenant=~"$tenant"`).
    """
    for variable, duration in GRAFANA_INTERVALS.items():
        expr = expr.replace(variable, duration)
    return _GRAFANA_VARIABLE.sub(".*", expr)


def metric_names(expr: str) -> set[str]:
    """The metric names `expr` selects (`rate(foo_total{a="b"}[5m])` -> {"foo_total"})."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or match.group().lower() in _KEYWORDS:
            continue
        names.add(match.group())
    return names


def check_expressions(exprs: Iterable[str]) -> ToolRun:
    """Parses every expression for real: as recording rules, through `promtool check rules`."""
    rules = [{"record": f"lint:expr_{i}", "expr": expr} for i, expr in enumerate(exprs)]
    document = {"groups": [{"name": "lint", "rules": rules}]}
    promtool = system_tool("promtool")
    with tempfile.TemporaryDirectory(prefix="healthd-promql-") as tmp:
        path = Path(tmp) / "expressions.rules.yml"
        path.write_text(yaml.safe_dump(document))
        return run_tool([promtool, "check", "rules", str(path)])
