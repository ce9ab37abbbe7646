"""`dlr report`: delivery analytics from ClickHouse, printed as a table, JSON or CSV.

    dlr report --by DIM[,DIM] --since 24h [--format table|json|csv]

DIM: carrier, country, region, area, campaign, provider, line_type, carrier_source; a pair
such as `--by country,carrier` groups by both at once (is a drop one carrier everywhere,
or one carrier in one country?).

One row per group for the window `[now - since, now)` (a message belongs to it by its first
event): messages, attempts, delivered, delivery rate, the failure-reason mix, p50/p95 time
to deliver, and the same rate for the window of the same length just before; `DROP` flags a
group (a pair, with two dimensions) whose rate fell more than 10 % (relative) against that
previous window. Worst first. JSON and CSV also give the messages per `carrier_source`, the
evidence behind the carrier names. The numbers come from `sinks.clickhouse.report` (exact,
see sinks/clickhouse/README.md).

`--report` chooses another report (`python -m deploy.report_cli` takes the same arguments):

    dlr report --report stuck --stuck-after 6h                  # not final after 6 h
    dlr report --report silent --since 24h                      # carriers, no delivered
    dlr report --report spikes --since 24h --by carrier --min-count 10
    dlr report --report hourly --since 6h --by region           # per hour, exact
    dlr report --report unreported --since 24h                  # registered, no receipt
    dlr report --report cost --by provider,country --since 30d  # spend per currency
    dlr report --report compare --by country --since 7d         # providers side by side
    dlr report --report filtering --by campaign,carrier         # filtered / blocked shares

(the last three: deploy/insights_cli.py; `--rates FILE --to USD` converts spend with a
rate table; `--by` defaults to provider, country and campaign for them)

`--attempts sends` (default) counts registered messages that got no receipt within
`DLR_UNREPORTED_AFTER_S` as attempts of the delivery rate; `--attempts final` only
messages in a final state (sinks/clickhouse/README.md, "Delivery rate").

`--since` takes a number with a unit: `3600s`, `90m`, `24h`, `7d`, `2w` (a bare number is
seconds). Output goes to stdout; errors to stderr with exit status 1 (ClickHouse) or 2
(arguments). A ClickHouse that is away is waited for up to `DLR_TOOLS_WAIT_S` (default 60 s),
saying so on stderr, before the one-line error (deploy/weather.py).
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TextIO, cast, get_args

import orjson

from deploy import weather
from deploy.settings import Settings
from schemas.events import CarrierSource
from schemas.lifecycle import FailureReason
from sinks.clickhouse.report import GROUPS

if TYPE_CHECKING:
    from sinks.clickhouse.insights import Rates

ReportKind = Literal[
    "delivery",
    "stuck",
    "silent",
    "spikes",
    "hourly",
    "unreported",
    "cost",
    "compare",
    "filtering",
]
KINDS: tuple[str, ...] = get_args(ReportKind)
#: `--by` when none is given, per report.
DEFAULT_BY: dict[str, str] = {"cost": "provider", "compare": "country", "filtering": "campaign"}
#: `--min-count` when none is given, per report (spikes: messages with the reason;
#: filtering: filtered attempts).
DEFAULT_MIN_COUNT: dict[str, int] = {"spikes": 10, "filtering": 5}
FORMATS: tuple[str, ...] = ("table", "json", "csv")

#: carrier_source values, plus `unrecorded` (messages stored before the enrichment).
CARRIER_SOURCES: tuple[str, ...] = (*get_args(CarrierSource), "unrecorded")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
#: The report functions take a UInt32 window and double it for the previous window.
_MAX_WINDOW_S = 4_294_967_295 // 2
#: Failure reasons shown in the table's `failure reasons` column.
_TOP_REASONS = 3


class ReportError(Exception):
    """The report cannot be produced: bad arguments or ClickHouse refused or is unreachable."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def parse_duration(text: str) -> int:
    """'24h' -> 86400; units s, m, h, d, w; a bare number is seconds. At least 1 s."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 3600s, 90m, 24h, 7d)")
    seconds = float(match.group(1)) * _UNITS[(match.group(2) or "s").lower()]
    if not math.isfinite(seconds) or seconds < 1 or seconds > _MAX_WINDOW_S:
        raise ValueError(f"duration out of range: {text!r} (1 s to {_MAX_WINDOW_S // 86400} days)")
    return round(seconds)


def format_duration(seconds: float | None) -> str:
    """Compact human form for the table: 0.8s, 42s, 3m05s, 2h10m, 3d4h."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600}h"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _change(row: dict[str, Any]) -> str:
    """Relative change of the delivery rate against the previous window."""
    now, before = row.get("delivery_rate"), row.get("previous_delivery_rate")
    if now is None or not before:
        return "-"
    return f"{100 * (now - before) / before:+.1f}%"


def _reasons(mix: dict[str, int]) -> str:
    if not mix:
        return "-"
    ordered = sorted(mix.items(), key=lambda item: (-item[1], item[0]))
    shown = ", ".join(f"{name} {count}" for name, count in ordered[:_TOP_REASONS])
    rest = len(ordered) - _TOP_REASONS
    return f"{shown}, +{rest} more" if rest > 0 else shown


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return _short_time(value)
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def _short_time(value: datetime) -> str:
    """Table form of a time: UTC to the second."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> str:
    """Aligned text columns (numbers right-aligned), a rule under the header."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out.extend(line(row) for row in rows)
    return "\n".join(out)


def _json(rows: list[dict[str, Any]]) -> str:
    return orjson.dumps(rows, option=orjson.OPT_INDENT_2 | orjson.OPT_UTC_Z).decode()


def _csv(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return buffer.getvalue().rstrip("\n")


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, list | tuple):
        return ";".join(str(v) for v in value)
    if isinstance(value, dict):
        return ";".join(f"{k}={v}" for k, v in value.items())
    return value


# -- delivery report ---------------------------------------------------------------------


def _groups(by: str) -> list[str]:
    return [name.strip() for name in by.split(",")]


def _sources(mix: dict[str, int]) -> str:
    """Carrier evidence of a group, largest first: 'mcc_mnc 40, number_range 2'."""
    return ", ".join(f"{k} {v}" for k, v in sorted(mix.items(), key=lambda i: (-i[1], i[0])))


def delivery_table(rows: list[dict[str, Any]], by: str) -> str:
    """The delivery report as aligned text."""
    groups = _groups(by)
    headers = [
        *groups,
        "messages",
        "attempts",
        "unreported",
        "delivered",
        "rate",
        "prev rate",
        "change",
        "p50 ttd",
        "p95 ttd",
        "failure reasons",
        "flag",
    ]
    body = [
        [
            *("(none)" if row[g] is None else str(row[g]) for g in groups),
            str(row["messages"]),
            str(row["attempts"]),
            str(row.get("unreported", 0)),
            str(row["delivered"]),
            _percent(row["delivery_rate"]),
            _percent(row["previous_delivery_rate"]),
            _change(row),
            format_duration(row["ttd_p50_s"]),
            format_duration(row["ttd_p95_s"]),
            _reasons(row["failure_reasons"]),
            "DROP" if row["dropped"] else "",
        ]
        for row in rows
    ]
    first = len(groups)
    return render_table(headers, body, numeric=set(range(first, first + 9)))


def delivery_csv(rows: list[dict[str, Any]], by: str) -> str:
    """One line per group; the failure-reason mix as one `reason_<name>` column per reason.

    The reason columns are every `FailureReason` (stable header), then any other reason
    the data holds, sorted; then one `carrier_source_<name>` column per evidence kind.
    """
    known = [str(reason) for reason in FailureReason]
    extra = sorted({name for row in rows for name in row["failure_reasons"]} - set(known))
    reasons = known + extra
    sources = list(CARRIER_SOURCES) + sorted(
        {name for row in rows for name in row["carrier_sources"]} - set(CARRIER_SOURCES)
    )
    scalar = [
        *_groups(by),
        "messages",
        "attempts",
        "final_attempts",
        "unreported",
        "delivered",
        "delivery_rate",
        "ttd_p50_s",
        "ttd_p95_s",
        "previous_attempts",
        "previous_delivered",
        "previous_delivery_rate",
        "dropped",
    ]
    headers = [
        *scalar,
        *(f"reason_{name}" for name in reasons),
        *(f"carrier_source_{name}" for name in sources),
    ]
    body = [
        [
            *(_csv_value(row[name]) for name in scalar[:-1]),
            "true" if row["dropped"] else "false",
            *(row["failure_reasons"].get(name, 0) for name in reasons),
            *(row["carrier_sources"].get(name, 0) for name in sources),
        ]
        for row in rows
    ]
    return _csv(headers, body)


# -- the other reports --------------------------------------------------------------------

#: Table columns of each sub-report (all keys of a row go to JSON and CSV).
_COLUMNS: dict[str, tuple[str, ...]] = {
    "stuck": (
        "message_id",
        "provider",
        "current_state",
        "carrier",
        "country",
        "campaign",
        "first_event_at",
        "last_event_at",
        "age_hours",
    ),
    "silent": (
        "carrier",
        "carrier_sources",
        "providers",
        "countries",
        "messages",
        "attempts",
        "stuck_in_sent",
        "first_seen",
        "last_seen",
    ),
    "hourly": (
        "hour",
        "grp",
        "messages",
        "attempts",
        "delivered",
        "delivery_rate",
        "ttd_p50_s",
        "ttd_p95_s",
        "failure_reasons",
    ),
    "unreported": (
        "provider",
        "carrier",
        "registered",
        "unreported",
        "waiting",
        "share",
        "countries",
        "oldest_unreported",
    ),
    "spikes": (
        "grp",
        "reason",
        "count",
        "attempts",
        "share",
        "previous_count",
        "previous_attempts",
        "previous_share",
    ),
}
_NUMERIC = {
    "registered",
    "unreported",
    "waiting",
    "messages",
    "attempts",
    "stuck_in_sent",
    "count",
    "previous_count",
    "previous_attempts",
    "age_hours",
    "delivered",
}
_SHARES = {"share", "previous_share", "delivery_rate"}
_DURATIONS = {"ttd_p50_s", "ttd_p95_s"}


def generic_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """A sub-report as aligned text."""
    body = []
    for row in rows:
        cells = []
        for name in columns:
            value = row.get(name)
            if name in _SHARES:
                cells.append(_percent(value))
            elif name in _DURATIONS:
                cells.append(format_duration(value))
            elif isinstance(value, dict):
                cells.append(_sources(value) if name == "carrier_sources" else _reasons(value))
            else:
                cells.append(_cell(value))
        body.append(cells)
    numeric = {i for i, name in enumerate(columns) if name in _NUMERIC | _SHARES | _DURATIONS}
    return render_table(list(columns), body, numeric)


def generic_csv(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """A sub-report as CSV: the table's columns first, then any other keys of the rows."""
    headers = list(columns)
    for row in rows:
        headers.extend(k for k in row if k not in headers)
    return _csv(headers, [[_csv_value(row.get(name)) for name in headers] for row in rows])


# -- running ------------------------------------------------------------------------------


def _fetch(
    settings: Settings,
    kind: str,
    query: Callable[[Any], list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    """Connect and run one report function; ClickHouse errors become ReportError."""
    from clickhouse_connect.driver.exceptions import ClickHouseError

    from sinks.clickhouse.client import connect, parse_url

    try:
        where = repr(parse_url(settings.clickhouse))
    except ValueError as exc:
        raise ReportError(f"DLR_CLICKHOUSE_URL: {exc}", 2) from exc
    name, wait_s = weather.clickhouse_name(settings), settings.tools_wait_s
    try:
        client = weather.wait_for(name, lambda: connect(settings), patience=wait_s, label="report")
    except weather.Unreachable as exc:
        raise ReportError(str(exc), 1) from exc
    except ClickHouseError as exc:
        raise ReportError(f"cannot reach ClickHouse {where}: {_first_line(exc)}", 1) from exc
    try:
        return weather.wait_for(name, lambda: query(client), patience=wait_s, label="report")
    except weather.Unreachable as exc:
        raise ReportError(f"{kind} report failed: {exc}", 1) from exc
    except (ClickHouseError, OSError) as exc:
        raise ReportError(f"{kind} report failed on {where}: {_first_line(exc)}", 1) from exc
    finally:
        client.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _delivery_title(rows: list[dict[str, Any]], by: str, since: str, now: datetime) -> str:
    flagged = sum(1 for row in rows if row["dropped"])
    return (
        f"delivery by {by}, messages first seen in the {since} before {_iso(now)} "
        f"(previous window: the {since} before that); worst first; "
        f"{len(rows)} group{'s' if len(rows) != 1 else ''}, {flagged} flagged DROP (> 10 % lower)"
    )


def produce(
    settings: Settings,
    *,
    kind: str,
    by: str,
    since: str,
    fmt: str,
    now: datetime,
    stuck_after: str,
    min_count: int,
    limit: int,
    attempts: str = "sends",
    rates: Rates | None = None,
) -> str:
    """The text of one report (everything `run_report` prints)."""
    from sinks.clickhouse import report
    from sinks.clickhouse.cluster import ClusterSpec

    if kind not in KINDS:
        raise ReportError(f"--report must be one of {', '.join(KINDS)}", 2)
    try:
        group = report.check_groups(by)
    except ValueError as exc:
        raise ReportError(f"--by: {exc}", 2) from exc
    if kind in ("stuck", "silent", "unreported") and len(group) > 1:
        raise ReportError(f"--by takes no pair with --report {kind}", 2)
    if fmt not in FORMATS:
        raise ReportError(f"--format must be one of {', '.join(FORMATS)}", 2)
    try:
        since_s = parse_duration(since)
        after_s = parse_duration(stuck_after) if kind == "stuck" else 0
    except ValueError as exc:
        raise ReportError(str(exc), 2) from exc
    db = settings.clickhouse_database
    if attempts not in ("sends", "final"):
        raise ReportError("--attempts must be sends or final", 2)
    after = settings.unreported_after_s
    cluster = ClusterSpec.from_settings(settings)
    if kind in ("cost", "compare", "filtering"):
        from deploy.insights_cli import produce_insight

        return produce_insight(
            settings,
            kind=kind,
            groups=group,
            by=by,
            since=since,
            since_s=since_s,
            fmt=fmt,
            now=now,
            min_count=min_count,
            attempts=attempts,
            rates=rates,
        )
    if kind == "delivery":
        rows = _fetch(
            settings,
            kind,
            lambda c: report.report(
                c,
                db,
                group,
                since_s,
                now,
                attempts=cast(report.Attempts, attempts),
                unreported_after_s=after,
                cluster=cluster,
            ),
        )
        if fmt == "json":
            return _json(rows)
        if fmt == "csv":
            return delivery_csv(rows, by)
        title = _delivery_title(rows, by, since, now)
        if not rows:
            return f"{title}\nno messages in the window"
        return f"{title}\n\n{delivery_table(rows, by)}"
    if kind == "stuck":
        hours = after_s / 3600
        rows = _fetch(
            settings,
            kind,
            lambda c: report.stuck(c, db, hours, now, limit=limit, cluster=cluster),
        )
        title = f"messages not final {stuck_after} after their first event (at {_iso(now)})"
    elif kind == "unreported":
        rows = _fetch(
            settings,
            kind,
            lambda c: report.unreported(
                c, db, since_s, now, unreported_after_s=after, cluster=cluster
            ),
        )
        title = (
            f"registered messages submitted in the {since} before {_iso(now)} without any "
            f"receipt {after}s after submission, per provider and carrier (worst share first)"
        )
    elif kind == "silent":
        rows = _fetch(
            settings,
            kind,
            lambda c: report.silent_carriers(c, db, since_s, now, cluster=cluster),
        )
        title = f"carriers with messages in the {since} before {_iso(now)} and none delivered"
    elif kind == "hourly":
        rows = _fetch(
            settings, kind, lambda c: report.hourly(c, db, group, since_s, now, cluster=cluster)
        )
        title = (
            f"hourly delivery by {by}, messages first seen in the {since} before {_iso(now)}, "
            "by the hour of their first event (exact, as the delivery report)"
        )
    else:
        rows = _fetch(
            settings,
            kind,
            lambda c: report.reason_spikes(
                c, db, since_s, now, by=group, min_count=min_count, cluster=cluster
            ),
        )
        title = (
            f"failure reasons by {by} whose share of attempts at least doubled: the {since} "
            f"before {_iso(now)} against the {since} before that "
            f"(at least {min_count} message{'s' if min_count != 1 else ''})"
        )
    columns = _COLUMNS[kind]
    if kind in ("spikes", "hourly"):
        columns = tuple(part for name in columns for part in (group if name == "grp" else (name,)))
    if fmt == "json":
        return _json(rows)
    if fmt == "csv":
        return generic_csv(rows, columns)
    if not rows:
        return f"{title}\nnone"
    plural = "row" if len(rows) == 1 else "rows"
    return f"{title}\n\n{generic_table(rows, columns)}\n({len(rows)} {plural})"


def run_report(
    settings: Settings,
    *,
    by: str | None,
    since: str,
    fmt: str,
    kind: str = "delivery",
    stuck_after: str = "6h",
    min_count: int | None = None,
    limit: int = 1000,
    now: datetime | None = None,
    out: TextIO | None = None,
    attempts: str = "sends",
    rates: str | None = None,
    to: str | None = None,
) -> int:
    """Print one report; 0 on success, 1 when ClickHouse fails, 2 for bad arguments.
    `by` and `min_count` default per report (`DEFAULT_BY`, `DEFAULT_MIN_COUNT`);
    `rates` / `to`: a rate table file and the currency it converts into (cost, compare)."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    by = by or DEFAULT_BY.get(kind, "carrier")
    min_count = min_count if min_count is not None else DEFAULT_MIN_COUNT.get(kind, 10)
    try:
        from deploy.insights_cli import load_rates

        table = load_rates(rates, to)
        text = produce(
            settings,
            kind=kind,
            by=by,
            since=since,
            fmt=fmt,
            now=moment,
            stuck_after=stuck_after,
            min_count=min_count,
            limit=limit,
            attempts=attempts,
            rates=table,
        )
    except ReportError as exc:
        print(f"dlr report: {exc}", file=sys.stderr)
        return exc.status
    print(text, file=out or sys.stdout)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `dlr report` (deploy/cli.py) and of `python -m deploy.report_cli`."""
    parser.add_argument(
        "--report",
        default="delivery",
        choices=KINDS,
        help="delivery (default), messages stuck before a final state, carriers that never "
        "report delivered, failure-reason spikes, hourly trend, registered messages without "
        "any receipt per provider / carrier, spend per currency (cost), providers side by "
        "side per destination (compare), carrier filtering per campaign (filtering)",
    )
    parser.add_argument(
        "--by",
        default=None,
        help=f"one of {', '.join(GROUPS)}, or a pair: country,carrier (default: carrier; "
        + ", ".join(f"{k}: {v}" for k, v in DEFAULT_BY.items())
        + ")",
    )
    parser.add_argument("--since", default="24h", help="window length (all but stuck)")
    parser.add_argument("--format", default="table", choices=FORMATS)
    parser.add_argument("--stuck-after", default="6h", help="age of a stuck message (stuck)")
    parser.add_argument(
        "--min-count",
        type=int,
        default=None,
        help="messages with the reason for a spike (spikes, default 10); filtered attempts "
        "for RISING (filtering, default 5)",
    )
    parser.add_argument("--limit", type=int, default=1000, help="rows at most (stuck)")
    parser.add_argument(
        "--attempts",
        default="sends",
        choices=["sends", "final"],
        help="delivery rate denominator: sends (final states + unreported registrations, "
        "default) or final (final states only)",
    )
    parser.add_argument(
        "--rates",
        help="rate table (CSV currency,rate or a JSON object) converting spend into --to "
        "(cost, compare)",
    )
    parser.add_argument("--to", help="the currency --rates converts into, e.g. USD")


def run_args(settings: Settings, args: argparse.Namespace) -> int:
    """Run the report that parsed `add_arguments` arguments ask for."""
    kind = args.report
    return run_report(
        settings,
        by=args.by or DEFAULT_BY.get(kind, "carrier"),
        since=args.since,
        fmt=args.format,
        kind=kind,
        stuck_after=args.stuck_after,
        min_count=args.min_count if args.min_count is not None else DEFAULT_MIN_COUNT.get(kind, 10),
        limit=args.limit,
        attempts=args.attempts,
        rates=args.rates,
        to=args.to,
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m deploy.report_cli`: the same as `dlr report`."""
    parser = argparse.ArgumentParser(
        prog="python -m deploy.report_cli",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return run_args(Settings(), parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
