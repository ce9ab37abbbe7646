"""The Grafana dashboards' ClickHouse panels, and their SQL rendered the way Grafana would.

`render()` substitutes what Grafana and the ClickHouse data source plugin (v4) substitute
before a query reaches ClickHouse: the template variables at their dashboard defaults
(`$__all` for the multi-value filters, the test's database for `${database}`), the
frontend macro `$__conditionalAll(cond, $var)` (`1=1` when the variable is All), and the
backend macros `$__timeFilter(c)`, `$__timeInterval(c)`, `$__fromTime`, `$__toTime`,
`$__interval_s` with the plugin's own expansions (its pkg/macros).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DASHBOARDS = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards"
CLICKHOUSE = "grafana-clickhouse-datasource"
PROMETHEUS = "prometheus"
INTERVAL_S = 60


@dataclass(frozen=True)
class Panel:
    """One panel's query and the columns it reads (its overrides name them)."""

    dashboard: str
    title: str
    sql: str
    columns: frozenset[str]
    variables: dict[str, Any]


def dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard JSON by file name."""
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def _defaults(dashboard: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for var in dashboard.get("templating", {}).get("list", []):
        value = var.get("current", {}).get("value", var.get("query"))
        out[var["name"]] = value
    return out


def clickhouse_panels() -> list[Panel]:
    """Every ClickHouse panel of every dashboard."""
    out = []
    for name, dashboard in dashboards().items():
        variables = _defaults(dashboard)
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                if target["datasource"]["type"] != CLICKHOUSE:
                    continue
                columns = {
                    o["matcher"]["options"]
                    for o in panel["fieldConfig"]["overrides"]
                    if o["matcher"]["id"] == "byName"
                }
                out.append(
                    Panel(name, panel["title"], target["rawSql"], frozenset(columns), variables)
                )
    return out


def prometheus_exprs() -> list[tuple[str, str]]:
    """(panel title, expression) of every Prometheus target."""
    return [
        (panel["title"], target["expr"])
        for dashboard in dashboards().values()
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if target["datasource"]["type"] == PROMETHEUS
    ]


def _args(text: str, start: int) -> tuple[list[str], int]:
    """Comma-separated arguments of a macro call whose '(' is at `start`; returns them and
    the index after the ')'."""
    depth, args, current = 0, [], ""
    for i in range(start, len(text)):
        ch = text[i]
        if ch == "(":
            depth += 1
            if depth == 1:
                continue
        elif ch == ")":
            depth -= 1
            if depth == 0:
                args.append(current.strip())
                return args, i + 1
        elif ch == "," and depth == 1:
            args.append(current.strip())
            current = ""
            continue
        current += ch
    raise ValueError(f"unbalanced macro call at {start}")


def _macro(text: str, name: str, expand: Any) -> str:
    while True:
        at = text.find(f"$__{name}(")
        if at < 0:
            return text
        args, end = _args(text, at + len(name) + 3)
        text = text[:at] + expand(args) + text[end:]


def render(
    sql: str, *, db: str, start: float, end: float, variables: dict[str, Any] | None = None
) -> str:
    """The SQL ClickHouse receives (see the module docstring)."""
    values = {"database": db, "by": "carrier", **(variables or {})}
    values["database"] = db

    def is_all(var: str) -> bool:
        value = values.get(var.lstrip("$").strip("{}"), "$__all")
        return value in ("$__all", ["$__all"])

    sql = _macro(sql, "conditionalAll", lambda a: "1=1" if is_all(a[1]) else a[0])
    frm, to = f"toDateTime({int(start)})", f"toDateTime({int(end)})"
    sql = _macro(sql, "timeFilter", lambda a: f"{a[0]} >= {frm} AND {a[0]} <= {to}")
    sql = _macro(
        sql,
        "timeInterval",
        lambda a: f"toStartOfInterval(toDateTime({a[0]}), INTERVAL {INTERVAL_S} second)",
    )
    sql = sql.replace("$__fromTime", frm).replace("$__toTime", to)
    sql = sql.replace("$__interval_s", str(INTERVAL_S))

    def variable(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        value = values[name]
        if isinstance(value, list):
            value = value[0]
        if match.group(2) == "singlequote":
            return "'" + str(value).replace("'", "\\'") + "'"
        return str(value)

    sql = re.sub(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)", variable, sql)
    assert "$" not in sql, f"unrendered: {sql}"
    return sql
