"""`dlr billing export|compare`: reconcile a provider's invoice with the receipts.

    dlr billing export --provider plivo --month 2026-11 [--out plivo-2026-11.csv]
    dlr billing compare --provider plivo --invoice usage.csv [--tolerance 1%]
                        [--amount-tolerance 0.01] [--count-tolerance 0] [--currency USD]
                        [--format table|csv|json]

`export` writes, per day (UTC, the day each message was sent) and destination country,
the provider's messages, delivered, not delivered, unreported, segments and the spend
its receipts reported (one line per currency; `currency` empty for messages without a
price), as CSV (`sinks.clickhouse.billing.EXPORT_COLUMNS`).

`compare` reads a provider usage export (CSV with a header: `date` YYYY-MM-DD, `country`
ISO alpha-2, and any of `messages`, `segments`, `amount`, optionally `currency`; aliases
in `sinks.clickhouse.billing.INVOICE_COLUMNS`), exports our side for the days it covers
and lists every day and country whose figures differ by more than the tolerance (the
larger of `--tolerance` of the larger figure and the absolute allowance). Exit status:
0 when everything agrees, 1 when something differs, 2 for bad arguments or an unreadable
usage export, 3 when ClickHouse fails.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, TextIO

import orjson

from deploy.report_cli import ReportError, _csv, _fetch, render_table
from deploy.settings import Settings
from sinks.clickhouse import billing
from sinks.clickhouse.cluster import ClusterSpec

FORMATS: tuple[str, ...] = ("table", "csv", "json")


def _percent_arg(text: str) -> float:
    """'1%' or '0.01' -> 0.01."""
    raw = text.strip()
    value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    if not 0 <= value < 1:
        raise ValueError(f"tolerance out of range: {text!r} (0 to 100 %)")
    return value


def _export(
    settings: Settings, provider: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Our side of [start, end) for one provider (ReportError when ClickHouse fails)."""
    return _fetch(
        settings,
        "billing",
        lambda c: billing.export(
            c,
            settings.clickhouse_database,
            provider,
            start,
            end,
            currencies=settings.price_currencies,
            cluster=ClusterSpec.from_settings(settings),
        ),
    )


def run_export(
    settings: Settings, *, provider: str, month: str, out: Path | None, stdout: TextIO
) -> int:
    """Write the export of one provider and month; 0, 1 (ClickHouse), 2 (arguments)."""
    try:
        start, end = billing.month_bounds(month)
        rows = _export(settings, provider, start, end)
    except ValueError as exc:
        print(f"dlr billing export: {exc}", file=sys.stderr)
        return 2
    except ReportError as exc:
        print(f"dlr billing export: {exc}", file=sys.stderr)
        return exc.status
    text = billing.export_csv(rows)
    if out is None:
        stdout.write(text)
    else:
        out.write_text(text)
        messages = sum(r["messages"] for r in rows)
        print(
            f"[billing] {provider} {month}: {messages} messages on {len(rows)} lines -> {out}",
            file=sys.stderr,
        )
    return 0


def _number(value: float, name: str) -> str:
    return f"{value:,.4f}" if name == "amount" else f"{value:,.0f}"


def render(result: billing.Reconciliation, fmt: str) -> str:
    """The comparison as a table, CSV or JSON."""
    rows = [
        {
            "date": d.date.isoformat(),
            "country": d.country,
            "field": d.field,
            "ours": d.ours,
            "theirs": d.theirs,
            "difference": d.difference,
            "relative": d.relative,
            "note": d.note,
        }
        for d in result.differences
    ]
    if fmt == "json":
        summary = {
            "provider": result.provider,
            "first": result.first.isoformat(),
            "last": result.last.isoformat(),
            "currency": result.currency,
            "compared": result.compared,
            "totals": {k: {"ours": v[0], "theirs": v[1]} for k, v in result.totals.items()},
            "skipped": result.skipped,
            "other_currencies": result.other_currencies,
            "differences": rows,
        }
        return orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode()
    headers = ["date", "country", "field", "ours", "theirs", "difference", "relative", "note"]
    if fmt == "csv":
        return _csv(headers, [[r[h] if r[h] is not None else "" for h in headers] for r in rows])
    lines = [
        f"{result.provider} {result.first} to {result.last}: {result.compared} day x country "
        f"pairs compared, {len(rows)} figure{'s' if len(rows) != 1 else ''} differ"
        + (f" (amounts in {result.currency})" if result.currency else "")
    ]
    for name, (ours, theirs) in result.totals.items():
        lines.append(
            f"  {name:<9} ours {_number(ours, name):>14}  invoice {_number(theirs, name):>14}"
        )
    for name, why in result.skipped.items():
        lines.append(f"  {name:<9} not compared: {why}")
    if result.differences:
        body = [
            [
                d.date.isoformat(),
                d.country or "(none)",
                d.field,
                _number(d.ours, d.field),
                _number(d.theirs, d.field),
                _number(d.difference, d.field),
                "-" if d.relative is None else f"{100 * d.relative:+.1f}%",
                d.note,
            ]
            for d in result.differences
        ]
        lines += ["", render_table(headers, body, numeric={3, 4, 5, 6})]
    return "\n".join(lines)


def run_compare(
    settings: Settings,
    *,
    provider: str,
    invoice: Path,
    tolerance: billing.Tolerance,
    currency: str | None,
    fmt: str,
    stdout: TextIO,
) -> int:
    """Compare a usage export with ours; 0 (agrees), 1 (differs), 2 (bad input), 3 (ClickHouse)."""
    try:
        parsed = billing.parse_invoice(invoice.read_text(), currency=currency)
        if not parsed.lines:
            raise billing.InvoiceError("the usage export has no lines")
    except OSError as exc:
        print(f"dlr billing compare: cannot read {invoice}: {exc.strerror}", file=sys.stderr)
        return 2
    except billing.InvoiceError as exc:
        print(f"dlr billing compare: {invoice}: {exc}", file=sys.stderr)
        return 2
    first = min(day for day, _ in parsed.lines)
    last = max(day for day, _ in parsed.lines)
    start = datetime.combine(first, time(), UTC)
    end = datetime.combine(last + timedelta(days=1), time(), UTC)
    try:
        rows = _export(settings, provider, start, end)
    except ValueError as exc:
        print(f"dlr billing compare: {exc}", file=sys.stderr)
        return 2
    except ReportError as exc:
        print(f"dlr billing compare: {exc}", file=sys.stderr)
        return 3 if exc.status == 1 else exc.status
    result = billing.reconcile(provider, rows, parsed, tolerance)
    print(render(result, fmt), file=stdout)
    return 1 if result.differences else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`dlr billing export ...` and `dlr billing compare ...`."""
    sub = parser.add_subparsers(dest="billing_command", required=True)
    p = sub.add_parser("export", help="per day and destination: messages, segments, spend (CSV)")
    p.add_argument("--provider", required=True, help="provider slug, e.g. plivo")
    p.add_argument("--month", required=True, help="calendar month (UTC), e.g. 2026-11")
    p.add_argument("--out", type=Path, help="file to write (default: stdout)")
    p = sub.add_parser("compare", help="compare a provider usage export with the receipts")
    p.add_argument("--provider", required=True, help="provider slug, e.g. plivo")
    p.add_argument("--invoice", type=Path, required=True, help="the provider's usage CSV")
    p.add_argument("--tolerance", default="1%", help="relative tolerance (default 1%%)")
    p.add_argument(
        "--amount-tolerance", type=float, default=0.01, help="absolute, amounts (default 0.01)"
    )
    p.add_argument(
        "--count-tolerance", type=float, default=0, help="absolute, messages / segments (0)"
    )
    p.add_argument("--currency", help="the invoice's currency when it has no currency column")
    p.add_argument("--format", default="table", choices=FORMATS)


def run_args(settings: Settings, args: argparse.Namespace, stdout: TextIO | None = None) -> int:
    """Run what `add_arguments` parsed."""
    out = stdout or sys.stdout
    if args.billing_command == "export":
        return run_export(
            settings, provider=args.provider, month=args.month, out=args.out, stdout=out
        )
    try:
        tolerance = billing.Tolerance(
            relative=_percent_arg(args.tolerance),
            count=max(0.0, args.count_tolerance),
            amount=max(0.0, args.amount_tolerance),
        )
    except ValueError as exc:
        print(f"dlr billing compare: --tolerance: {exc}", file=sys.stderr)
        return 2
    return run_compare(
        settings,
        provider=args.provider,
        invoice=args.invoice,
        tolerance=tolerance,
        currency=args.currency,
        fmt=args.format,
        stdout=out,
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m deploy.billing_cli`: the same as `dlr billing`."""
    parser = argparse.ArgumentParser(
        prog="python -m deploy.billing_cli",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return run_args(Settings(), parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
