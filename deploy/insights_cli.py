"""`dlr report --report cost|compare|filtering`: money, routing and content filtering.

    dlr report --report cost --by provider,country --since 30d [--rates rates.csv --to USD]
    dlr report --report compare --by country[,carrier] --since 7d
    dlr report --report filtering --by campaign,carrier --since 24h

The numbers come from `sinks.clickhouse.insights` (exact over `status_snapshot`, see
sinks/clickhouse/README.md): cost per group and currency (never summed across
currencies; with a rate table one more converted line per group), providers side by side
per destination with the 95 % Wilson interval of the delivery rate (`BEST` only where
one provider's interval lies above every other's), and the share of attempts filtered
by the carrier or blocked for their content against the previous window (`RISING`).
`report_cli.produce` hands these three kinds here; the output formats are the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from deploy.report_cli import (
    ReportError,
    _csv,
    _csv_value,
    _fetch,
    _iso,
    _json,
    _percent,
    format_duration,
    render_table,
)
from deploy.settings import Settings
from sinks.clickhouse import insights
from sinks.clickhouse.cluster import ClusterSpec
from sinks.clickhouse.report import Attempts, GroupBy

#: The `--report` kinds this module renders.
INSIGHT_KINDS: tuple[str, ...] = ("cost", "compare", "filtering")


def load_rates(path: str | None, target: str | None) -> insights.Rates | None:
    """The rate table of `--rates FILE --to CUR` (both or neither)."""
    if path is None and target is None:
        return None
    if path is None or target is None:
        raise ReportError("--rates and --to go together (a rate table into one currency)", 2)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ReportError(f"--rates: cannot read {path}: {exc.strerror}", 2) from exc
    try:
        return insights.parse_rates(text, target)
    except insights.RatesError as exc:
        raise ReportError(f"--rates {path}: {exc}", 2) from exc


def _money(value: float | None, places: int = 4) -> str:
    return "-" if value is None else f"{value:,.{places}f}"


def _label(row: dict[str, Any], name: str) -> str:
    value = row[name]
    return "(none)" if value is None else str(value)


# -- cost ----------------------------------------------------------------------------------------

_COST_CSV = (
    "currency",
    "converted",
    "messages",
    "delivered",
    "not_delivered",
    "segments",
    "segments_reported",
    "spend",
    "spend_delivered",
    "spend_not_delivered",
    "spend_pending",
    "cost_per_delivered",
    "group_messages",
    "group_priced",
    "price_share",
    "missing_rates",
)


def cost_table(rows: list[dict[str, Any]], groups: Sequence[str]) -> str:
    """One line per group and currency; `(no price)` for the messages without one, and
    `= USD` for the converted line of a rate table."""
    headers = [
        *groups,
        "currency",
        "messages",
        "priced",
        "segments",
        "delivered",
        "not delivered",
        "spend",
        "on undelivered",
        "per delivered",
    ]
    body = []
    for row in rows:
        currency = row["currency"]
        if row["converted"]:
            shown = f"= {currency}"
        else:
            shown = "(no price)" if currency is None else str(currency)
        missing = row.get("missing_rates") or []
        no_price = currency is None and not row["converted"]
        body.append(
            [
                *(_label(row, g) for g in groups),
                shown,
                str(row["messages"]),
                _percent(row["price_share"]),
                "-"
                if row["segments"] is None or not row["segments_reported"]
                else str(row["segments"]),
                str(row["delivered"]),
                str(row["not_delivered"]),
                "not reported"
                if no_price
                else (f"no rate for {', '.join(missing)}" if missing else _money(row["spend"])),
                _money(row["spend_not_delivered"]),
                _money(row["cost_per_delivered"], 5),
            ]
        )
    first = len(groups) + 1
    return render_table(headers, body, numeric=set(range(first, first + 8)))


def cost_csv(rows: list[dict[str, Any]], groups: Sequence[str]) -> str:
    """One line per group and currency (`converted` true for a rate table's line)."""
    headers = [*groups, *_COST_CSV]
    return _csv(
        headers,
        [
            [
                *(_csv_value(row[g]) for g in groups),
                *(
                    ("true" if row[name] else "false")
                    if name == "converted"
                    else _csv_value(row.get(name))
                    for name in _COST_CSV
                ),
            ]
            for row in rows
        ],
    )


# -- providers compared -------------------------------------------------------------------------

_COMPARE_CSV = (
    "provider",
    "messages",
    "attempts",
    "delivered",
    "delivery_rate",
    "rate_low",
    "rate_high",
    "ttd_p50_s",
    "ttd_p95_s",
    "ttd_samples",
    "priced",
    "price_share",
    "cost_per_delivered",
    "spend",
    "best",
)


def _per_currency(costs: dict[str, float]) -> str:
    return "; ".join(f"{value:.5f} {currency}" for currency, value in costs.items()) or "-"


def compare_table(rows: list[dict[str, Any]], groups: Sequence[str]) -> str:
    """One line per destination and provider, best rate first within a destination."""
    converted = any("converted_cost_per_delivered" in row for row in rows)
    headers = [
        *groups,
        "provider",
        "attempts",
        "delivered",
        "rate",
        "95% interval",
        "p50 ttd",
        "p95 ttd",
        "priced",
        "cost per delivered",
        *(["converted"] if converted else []),
        "flag",
    ]
    body = []
    for row in rows:
        span = (
            "-"
            if row["rate_low"] is None
            else f"{100 * row['rate_low']:.1f}-{100 * row['rate_high']:.1f}%"
        )
        body.append(
            [
                *(_label(row, g) for g in groups),
                row["provider"],
                str(row["attempts"]),
                str(row["delivered"]),
                _percent(row["delivery_rate"]),
                span,
                format_duration(row["ttd_p50_s"]),
                format_duration(row["ttd_p95_s"]),
                _percent(row["price_share"]),
                _per_currency(row["cost_per_delivered"]),
                *([_money(row.get("converted_cost_per_delivered"), 5)] if converted else []),
                "BEST" if row["best"] else "",
            ]
        )
    first = len(groups) + 1
    return render_table(headers, body, numeric=set(range(first, first + 7 + int(converted))))


def compare_csv(rows: list[dict[str, Any]], groups: Sequence[str]) -> str:
    """One line per destination and provider; per-currency maps as `USD=0.0071;EUR=...`."""
    extra = (
        ["converted_cost_per_delivered"]
        if any("converted_cost_per_delivered" in row for row in rows)
        else []
    )
    headers = [*groups, *_COMPARE_CSV, *extra]
    body = []
    for row in rows:
        cells = [_csv_value(row.get(name)) for name in headers]
        cells[headers.index("best")] = "true" if row["best"] else "false"
        body.append(cells)
    return _csv(headers, body)


# -- filtering ------------------------------------------------------------------------------------

_FILTERING_CSV = (
    "attempts",
    "carrier_filtered",
    "blocked_content",
    "filtered",
    "share",
    "previous_attempts",
    "previous_carrier_filtered",
    "previous_blocked_content",
    "previous_filtered",
    "previous_share",
    "change",
    "rising",
)


def _points(change: float | None) -> str:
    return "-" if change is None else f"{100 * change:+.1f} pp"


def filtering_table(rows: list[dict[str, Any]], groups: Sequence[str]) -> str:
    """One line per group: filtered and blocked attempts now and before, `RISING` flags."""
    headers = [
        *groups,
        "attempts",
        "carrier filtered",
        "blocked content",
        "share",
        "prev attempts",
        "prev share",
        "change",
        "flag",
    ]
    body = [
        [
            *(_label(row, g) for g in groups),
            str(row["attempts"]),
            str(row["carrier_filtered"]),
            str(row["blocked_content"]),
            _percent(row["share"]),
            str(row["previous_attempts"]),
            _percent(row["previous_share"]),
            _points(row["change"]),
            "RISING" if row["rising"] else "",
        ]
        for row in rows
    ]
    first = len(groups)
    return render_table(headers, body, numeric=set(range(first, first + 7)))


def filtering_csv(rows: list[dict[str, Any]], groups: Sequence[str]) -> str:
    """One line per group."""
    headers = [*groups, *_FILTERING_CSV]
    body = []
    for row in rows:
        cells = [_csv_value(row.get(name)) for name in headers]
        cells[headers.index("rising")] = "true" if row["rising"] else "false"
        body.append(cells)
    return _csv(headers, body)


# -- running ---------------------------------------------------------------------------------------


def produce_insight(
    settings: Settings,
    *,
    kind: str,
    groups: tuple[GroupBy, ...],
    by: str,
    since: str,
    since_s: int,
    fmt: str,
    now: datetime,
    min_count: int,
    attempts: str,
    rates: insights.Rates | None,
) -> str:
    """The text of one cost, compare or filtering report."""
    db = settings.clickhouse_database
    currencies = settings.price_currencies
    cluster = ClusterSpec.from_settings(settings)
    window = f"messages first seen in the {since} before {_iso(now)}"
    if kind == "cost":
        rows = _fetch(
            settings,
            kind,
            lambda c: insights.cost(
                c, db, groups, since_s, now, currencies=currencies, rates=rates, cluster=cluster
            ),
        )
        if fmt == "json":
            return _json(rows)
        if fmt == "csv":
            return cost_csv(rows, groups)
        unpriced = sorted(
            {
                " / ".join(_label(r, g) for g in groups)
                for r in rows
                if r["currency"] is None and not r["converted"] and r["price_share"] == 0
            }
        )
        unstated = any(r["currency"] == insights.UNSTATED for r in rows)
        title = (
            f"cost by {by}, {window}; the providers' reported prices, one line per currency"
            + (f", converted into {rates.target} on '=' lines" if rates else "")
            + (f"; no price reported at all: {', '.join(unpriced)}" if unpriced else "")
            + (
                "; unstated: prices reported without a currency (DLR_PRICE_CURRENCIES "
                "names it per provider)"
                if unstated
                else ""
            )
        )
        return f"{title}\n\n{cost_table(rows, groups)}" if rows else f"{title}\nno messages"
    if kind == "compare":
        if "provider" in groups:
            raise ReportError(
                "--by: compare puts providers side by side per destination; "
                "group by country, carrier, ... without provider",
                2,
            )
        rows = _fetch(
            settings,
            kind,
            lambda c: insights.compare(
                c,
                db,
                groups,
                since_s,
                now,
                attempts=cast(Attempts, attempts),
                unreported_after_s=settings.unreported_after_s,
                currencies=currencies,
                rates=rates,
                cluster=cluster,
            ),
        )
        if fmt == "json":
            return _json(rows)
        if fmt == "csv":
            return compare_csv(rows, groups)
        destinations = len({tuple(r[g] for g in groups) for r in rows})
        best = sum(1 for r in rows if r["best"])
        title = (
            f"providers compared by {by}, {window}: {destinations} destination"
            f"{'s' if destinations != 1 else ''}, a BEST provider in {best} (only where its "
            "95 % Wilson interval of the delivery rate lies above every other provider's)"
        )
        return f"{title}\n\n{compare_table(rows, groups)}" if rows else f"{title}\nno attempts"
    rows = _fetch(
        settings,
        kind,
        lambda c: insights.filtering(
            c, db, groups, since_s, now, min_count=min_count, cluster=cluster
        ),
    )
    if fmt == "json":
        return _json(rows)
    if fmt == "csv":
        return filtering_csv(rows, groups)
    rising = sum(1 for r in rows if r["rising"])
    title = (
        f"content filtering by {by} (carrier_filtered + blocked_content over attempts), {window} "
        f"against the {since} before that; {rising} RISING (share at least doubled, at least "
        f"{min_count} filtered)"
    )
    return f"{title}\n\n{filtering_table(rows, groups)}" if rows else f"{title}\nno attempts"
