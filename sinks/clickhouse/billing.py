"""Billing reconciliation: what we can hold against a provider's invoice, and the check.

`export()` (`queries/billing.sql`) gives, for one provider and a date range (a calendar
month: `month_bounds("2026-11")`), one row per day, destination country and currency:
messages, delivered, not delivered, unreported, segments, priced messages and the spend
the provider's receipts reported. `export_csv()` writes it.

`parse_invoice()` reads a provider usage export (CSV, one line per day and country; the
accepted columns are `INVOICE_COLUMNS`, header names case-insensitive) and
`reconcile()` compares it with our export: per day and country, messages, segments and
amount, each only when the invoice has the column and our side can say something (a
provider that reports no prices has no amount to compare: the result says so instead of
listing every day). A figure differs when `|ours - theirs| > max(absolute, relative *
max(|ours|, |theirs|))`.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from sinks.clickhouse.insights import currency_params
from sinks.clickhouse.migrate import check_identifier
from sinks.clickhouse.report import _fresh, _now, _rows

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from sinks.clickhouse.cluster import ClusterSpec

__all__ = [
    "EXPORT_COLUMNS",
    "INVOICE_COLUMNS",
    "Difference",
    "Invoice",
    "InvoiceError",
    "InvoiceLine",
    "Reconciliation",
    "Tolerance",
    "export",
    "export_csv",
    "month_bounds",
    "parse_invoice",
    "reconcile",
]

#: Columns of the export, in order (`export_csv`).
EXPORT_COLUMNS: tuple[str, ...] = (
    "date",
    "country",
    "currency",
    "messages",
    "delivered",
    "not_delivered",
    "unreported",
    "segments",
    "segments_reported",
    "priced",
    "spend",
)

#: What `parse_invoice` accepts: our name -> the header names it recognises.
INVOICE_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "date": ("date", "day", "usage_date"),
    "country": ("country", "destination", "country_code"),
    "messages": ("messages", "count", "message_count"),
    "segments": ("segments", "parts", "units"),
    "amount": ("amount", "spend", "cost", "price"),
    "currency": ("currency", "price_unit"),
}

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """`YYYY-MM` -> [first instant, first instant of the next month), UTC."""
    match = _MONTH.match(month.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"not a month: {month!r} (use YYYY-MM, e.g. 2026-11)")
    year, number = int(match.group(1)), int(match.group(2))
    start = datetime(year, number, 1, tzinfo=UTC)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
    return start, end


def export(
    client: Client,
    database: str,
    provider: str,
    start: datetime,
    end: datetime,
    *,
    currencies: Mapping[str, str] | None = None,
    exact: bool = True,
    cluster: ClusterSpec | None = None,
) -> list[dict[str, Any]]:
    """Per day (UTC, the day the message was sent), destination country and currency
    (`""`: messages without a price), what we know of one provider's traffic in
    [start, end): see `EXPORT_COLUMNS` and `queries/billing.sql`."""
    if not provider or not provider.replace("_", "").isalnum():
        raise ValueError(f"not a provider slug: {provider!r}")
    if end <= start:
        raise ValueError("end must be after start")
    parameters = {
        "db": check_identifier(database),
        "provider": provider,
        "start": _now(start),
        "end": _now(end),
        **currency_params(currencies or {}),
    }
    _fresh(client, database, exact, cluster)
    out: list[dict[str, Any]] = []
    for found in _rows(client, "billing", parameters):
        row: dict[str, Any] = {
            "date": found["day"],
            "country": str(found["country"]),
            "currency": str(found["currency"]),
        }
        for name in EXPORT_COLUMNS[3:-1]:
            row[name] = int(found[name])
        row["spend"] = float(found["spend"])
        out.append(row)
    return out


def _amount(value: float) -> str:
    """Money without float noise: at most 10 decimals, trailing zeros dropped."""
    text = f"{value:.10f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def export_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """The export as CSV with a header line (`EXPORT_COLUMNS`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        writer.writerow(
            [
                row["date"].isoformat(),
                *(row[name] for name in EXPORT_COLUMNS[1:-1]),
                _amount(row["spend"]),
            ]
        )
    return buffer.getvalue()


# -- the provider's side ------------------------------------------------------------------------


class InvoiceError(ValueError):
    """A usage export we cannot read: missing columns, a bad line (with its number)."""


@dataclass
class InvoiceLine:
    """One day and country of a provider's usage export (lines for the same pair summed)."""

    messages: int = 0
    segments: int = 0
    amount: float = 0.0


@dataclass
class Invoice:
    """A provider usage export: lines per (day, country), the figures it has, its currency."""

    lines: dict[tuple[date, str], InvoiceLine]
    #: Which of messages, segments, amount the export has.
    fields: frozenset[str]
    currency: str | None


def _header_map(header: Sequence[str]) -> dict[str, int]:
    names = [h.strip().lower().replace(" ", "_") for h in header]
    found: dict[str, int] = {}
    for ours, accepted in INVOICE_COLUMNS.items():
        for index, name in enumerate(names):
            if name in accepted:
                found[ours] = index
                break
    return found


def _day(text: str, number: int) -> date:
    try:
        return date.fromisoformat(text.strip()[:10])
    except ValueError as exc:
        raise InvoiceError(f"line {number}: date {text!r} is not YYYY-MM-DD") from exc


def _count(text: str, name: str, number: int) -> int:
    raw = text.strip().replace(",", "")
    try:
        value = float(raw) if raw else 0.0
    except ValueError as exc:
        raise InvoiceError(f"line {number}: {name} {text!r} is not a number") from exc
    if value < 0 or not value.is_integer():
        raise InvoiceError(f"line {number}: {name} {text!r} is not a whole number >= 0")
    return int(value)


def _money(text: str, number: int) -> float:
    raw = text.strip()
    try:
        value = float(raw) if raw else 0.0
    except ValueError as exc:
        raise InvoiceError(f"line {number}: amount {text!r} is not a number") from exc
    if not math.isfinite(value):
        raise InvoiceError(f"line {number}: amount {text!r} is not a number")
    return value


def parse_invoice(text: str, *, currency: str | None = None) -> Invoice:
    """A provider usage export as CSV: a header naming `date` and `country` (ISO 3166
    alpha-2) and at least one of `messages`, `segments`, `amount` (aliases in
    `INVOICE_COLUMNS`), optionally `currency` (one currency per file; `currency` given
    here applies when the file has none). Lines of the same day and country are summed."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    if header is None:
        raise InvoiceError("the usage export is empty")
    columns = _header_map(header)
    missing = [name for name in ("date", "country") if name not in columns]
    if missing:
        raise InvoiceError(
            f"the header has no {' or '.join(missing)} column (accepted: "
            + "; ".join(f"{k}: {', '.join(v)}" for k, v in INVOICE_COLUMNS.items())
            + ")"
        )
    fields = frozenset(name for name in ("messages", "segments", "amount") if name in columns)
    if not fields:
        raise InvoiceError("the header has none of messages, segments, amount")
    lines: dict[tuple[date, str], InvoiceLine] = defaultdict(InvoiceLine)
    currencies: set[str] = set()
    for number, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise InvoiceError(f"line {number}: {len(row)} cells, the header has {len(header)}")
        day = _day(row[columns["date"]], number)
        country = row[columns["country"]].strip().upper()
        if country and not (len(country) == 2 and country.isalpha()):
            raise InvoiceError(f"line {number}: country {country!r} is not ISO 3166 alpha-2")
        line = lines[day, country]
        if "messages" in columns:
            line.messages += _count(row[columns["messages"]], "messages", number)
        if "segments" in columns:
            line.segments += _count(row[columns["segments"]], "segments", number)
        if "amount" in columns:
            line.amount += _money(row[columns["amount"]], number)
        if "currency" in columns and row[columns["currency"]].strip():
            currencies.add(row[columns["currency"]].strip().upper())
    if len(currencies) > 1:
        raise InvoiceError(f"more than one currency in the usage export: {sorted(currencies)}")
    stated = next(iter(currencies), None) or (currency.upper() if currency else None)
    return Invoice(dict(lines), fields, stated)


# -- the comparison ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerance:
    """How far a figure may be off before it counts as different: the larger of
    `relative` (of the larger side) and the absolute allowance of its kind."""

    relative: float = 0.01
    count: float = 0.0
    amount: float = 0.01

    def allows(self, name: str, ours: float, theirs: float) -> bool:
        """True when the two figures agree within the tolerance."""
        absolute = self.amount if name == "amount" else self.count
        allowed = max(absolute, self.relative * max(abs(ours), abs(theirs)))
        return abs(ours - theirs) <= allowed + 1e-9


@dataclass(frozen=True)
class Difference:
    """One figure of one day and country that differs beyond the tolerance."""

    date: date
    country: str
    field: str
    ours: float
    theirs: float
    note: str = ""

    @property
    def difference(self) -> float:
        """Ours minus theirs."""
        return self.ours - self.theirs

    @property
    def relative(self) -> float | None:
        """The difference over the invoice's figure (None when theirs is 0)."""
        return self.difference / self.theirs if self.theirs else None


@dataclass
class Reconciliation:
    """The comparison of our export with a provider's usage export."""

    provider: str
    first: date
    last: date
    currency: str | None
    #: (day, country) pairs compared: the union of both sides within [first, last].
    compared: int
    differences: list[Difference]
    #: field -> (our total, their total) over the compared days.
    totals: dict[str, tuple[float, float]]
    #: Why a figure of the invoice was not compared (no prices reported, ...).
    skipped: dict[str, str] = field(default_factory=dict)
    #: Our spend in other currencies than the invoice's, per currency.
    other_currencies: dict[str, float] = field(default_factory=dict)


def reconcile(
    provider: str,
    ours: Sequence[Mapping[str, Any]],
    invoice: Invoice,
    tolerance: Tolerance | None = None,
) -> Reconciliation:
    """Compare our export rows (`export()`) with `invoice` per day and country over the
    days the invoice covers. Our messages are every message sent that day (priced or
    not); segments and amount count what the receipts reported."""
    limits = tolerance or Tolerance()
    if not invoice.lines:
        raise InvoiceError("the usage export has no lines")
    first = min(day for day, _ in invoice.lines)
    last = max(day for day, _ in invoice.lines)
    mine: dict[tuple[date, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    other: dict[str, float] = defaultdict(float)
    reported = {"segments": 0, "priced": 0, "messages": 0}
    for row in ours:
        day = row["date"]
        if not first <= day <= last:
            continue
        key = (day, str(row["country"]).upper())
        figures = mine[key]
        figures["messages"] += row["messages"]
        figures["segments"] += row["segments"]
        figures["segments_reported"] += row["segments_reported"]
        figures["priced"] += row["priced"]
        reported["messages"] += row["messages"]
        reported["segments"] += row["segments_reported"]
        reported["priced"] += row["priced"]
        currency = str(row["currency"])
        if not currency:
            continue
        if invoice.currency is None or currency == invoice.currency:
            figures["amount"] += row["spend"]
        else:
            other[currency] += row["spend"]
    skipped: dict[str, str] = {}
    checked = [name for name in ("messages", "segments", "amount") if name in invoice.fields]
    if "segments" in checked and reported["messages"] and not reported["segments"]:
        skipped["segments"] = f"{provider} reported no segment counts on its receipts"
    if "amount" in checked and reported["messages"] and not reported["priced"]:
        skipped["amount"] = f"{provider} reported no prices on its receipts"
    if "amount" in checked and other and invoice.currency is not None:
        shown = ", ".join(f"{c} {_amount(v)}" for c, v in sorted(other.items()))
        skipped.setdefault(
            "amount", f"the receipts state prices in {shown}, the invoice in {invoice.currency}"
        )
    checked = [name for name in checked if name not in skipped]
    keys = sorted(set(invoice.lines) | set(mine))
    differences: list[Difference] = []
    totals = {name: (0.0, 0.0) for name in checked}
    for key in keys:
        theirs_line = invoice.lines.get(key, InvoiceLine())
        figures = mine.get(key, {})
        for name in checked:
            ours_value = float(figures.get(name, 0.0))
            theirs_value = float(getattr(theirs_line, name))
            total = totals[name]
            totals[name] = (total[0] + ours_value, total[1] + theirs_value)
            if limits.allows(name, ours_value, theirs_value):
                continue
            differences.append(
                Difference(key[0], key[1], name, ours_value, theirs_value, _note(name, figures))
            )
    return Reconciliation(
        provider=provider,
        first=first,
        last=last,
        currency=invoice.currency,
        compared=len(keys),
        differences=differences,
        totals=totals,
        skipped=skipped,
        other_currencies=dict(other),
    )


def _note(name: str, figures: Mapping[str, float]) -> str:
    """Why our side may be short: messages whose receipts did not state the figure."""
    messages = int(figures.get("messages", 0))
    if not messages:
        return "no messages of ours"
    if name == "segments" and figures.get("segments_reported", 0) < messages:
        return f"{int(figures.get('segments_reported', 0))} of {messages} reported segments"
    if name == "amount" and figures.get("priced", 0) < messages:
        return f"{int(figures.get('priced', 0))} of {messages} reported a price"
    return ""
