"""Analytics benchmark (not a test): load synthetic canonical events through the sink path
into ClickHouse, then time the report queries.

    .venv/bin/python -m bench.analytics [--events 10000000] [--batch ROWS] [--repeat 5]

1. Uses `DLR_CLICKHOUSE_URL` when set; otherwise starts the local ClickHouse 26.9 launcher
   (`deploy.local.clickhouse`) on free ports with its own data directory
   `.data/bench/analytics/` (wiped first) and stops it at the end.
2. Creates a fresh database (`--database`, default `dlr_bench`, dropped first) with the
   project's migrations.
3. Generates N canonical events (default 10,000,000) lazily, message by message: 11 countries
   and their carriers, 9 providers, 16 campaigns, 1-5 events per message (accepted / queued
   / sent / a final state / a late stale report), about 3 % of messages still in flight, a
   carrier that never reports delivered (SilentTel) and one whose delivery rate collapses in
   the last 24 h (Glo), first events spread over the last 48 h. Each batch is built and
   serialized to its wire form (outside the clock), then goes through the sink path, as
   `dlr sink` does it: `rows.parse` per record, then the sink's `EventWriter`
   (`rows.to_columns` + clickhouse-connect insert with the writer's insert settings, the
   server's materialized views included), one batch after the other. Prints progress, the
   overall load rate and the rate of the sink path.
4. Refreshes the `status_snapshot` the reports read and the hourly `status_rollup` computed
   from it (`report.refresh`) and prints how long that took, then times every report of
   `sinks.clickhouse.report` with the default `exact=True` (so each includes its freshness
   check; the snapshot is fresh) (report by each dimension over 24 h, `exact=False` by
   carrier, the freshness check alone, stuck after 6 h, silent carriers, failure-reason
   spikes, the exact hourly trend that `dlr report --report hourly` prints, and the
   insights: cost by provider and country, providers compared by country and by country
   and carrier, filtering by campaign and carrier, one provider's billing export)
   `--repeat` times and prints min / median ms against the 200 ms target, then the
   dashboards' pre-aggregated hourly rollup (`report.hourly_rollup`, `hourly_v2`; not a
   `dlr report` query, no target), the carrier report read from `status_snapshot` only
   (`rollup=False`, what every report did before ddl/0013), the baseline for the cost
   report (the same question over the raw `events` table with FINAL, `COST_BASELINE`), the
   carrier report itself, and the tables' disk usage (`system.parts`).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import random
import resource
import shutil
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from deploy.local.ports import free_port
from deploy.report_cli import delivery_table
from deploy.settings import Settings
from schemas.events import CanonicalEvent
from schemas.lifecycle import FailureReason, State
from sinks.clickhouse import billing, insights, report, rows
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrate import check_identifier, migrate
from sinks.clickhouse.writer import EventWriter
from sinks.service import tune_gc

ROOT = Path(__file__).resolve().parent.parent
TARGET_ROWS_S = 50_000
TARGET_MS = 200.0

# country, region, mcc, carriers (name, mnc, delivery probability)
COUNTRIES: list[tuple[str, str, str, list[tuple[str, str, float]]]] = [
    ("GB", "Northern Europe", "234", [("EE", "30", 0.97), ("Vodafone UK", "15", 0.96),
                                      ("O2 UK", "10", 0.95), ("Three UK", "20", 0.93)]),
    ("US", "Northern America", "310", [("T-Mobile US", "260", 0.95), ("AT&T", "410", 0.94),
                                       ("Verizon", "012", 0.96)]),
    ("DE", "Western Europe", "262", [("Telekom DE", "01", 0.97), ("Vodafone DE", "02", 0.96),
                                     ("O2 DE", "03", 0.94)]),
    ("FR", "Western Europe", "208", [("Orange FR", "01", 0.96), ("SFR", "10", 0.94),
                                     ("Bouygues", "20", 0.93)]),
    ("IN", "Southern Asia", "404", [("Jio", "857", 0.88), ("Airtel IN", "10", 0.90),
                                    ("Vi", "20", 0.85)]),
    ("BR", "South America", "724", [("Vivo", "06", 0.91), ("Claro BR", "05", 0.90),
                                    ("TIM BR", "02", 0.89)]),
    ("NG", "Western Africa", "621", [("MTN NG", "30", 0.86), ("Airtel NG", "20", 0.84),
                                     ("Glo", "50", 0.88), ("SilentTel", "99", 0.0)]),
    ("ID", "South-eastern Asia", "510", [("Telkomsel", "10", 0.90), ("Indosat", "01", 0.88),
                                         ("XL Axiata", "11", 0.87)]),
    ("MX", "Central America", "334", [("Telcel", "020", 0.92), ("AT&T MX", "090", 0.90)]),
    ("PH", "South-eastern Asia", "515", [("Globe", "02", 0.89), ("Smart", "03", 0.90)]),
    ("ZA", "Southern Africa", "655", [("Vodacom", "01", 0.93), ("MTN ZA", "10", 0.91)]),
]  # fmt: skip
COUNTRY_WEIGHTS = [14, 20, 9, 8, 16, 8, 6, 6, 5, 4, 4]
CODES = {"GB": "44", "US": "1", "DE": "49", "FR": "33", "IN": "91", "BR": "55", "NG": "234",
         "ID": "62", "MX": "52", "PH": "63", "ZA": "27"}  # fmt: skip
PROVIDERS = ["twilio", "vonage", "plivo", "telnyx", "sinch", "infobip", "bird", "bandwidth", "sns"]
PROVIDER_WEIGHTS = [30, 15, 8, 8, 10, 12, 6, 6, 5]
#: Providers whose receipts carry their own timestamp.
TIMESTAMPED = {"twilio", "vonage", "sinch", "infobip", "telnyx"}
CAMPAIGNS = ["otp", "2fa", "login", "password-reset", "order-confirmation", "shipping",
             "delivery-window", "appointment", "reminder", "billing", "fraud-alert", "promo-spring",
             "promo-black-friday", "newsletter", "survey", "win-back"]  # fmt: skip
TENANTS = [f"tenant-{i:02d}" for i in range(12)]
#: The carrier whose delivery rate collapses in the last 24 h (what a regional alert must catch).
DEGRADED = ("Glo", 0.55)
FAILURES: list[tuple[State, float, list[FailureReason | None]]] = [
    (State.UNDELIVERED, 0.40, [FailureReason.UNREACHABLE, FailureReason.INVALID_NUMBER,
                               FailureReason.OPTED_OUT, None]),
    (State.FAILED, 0.20, [FailureReason.PROVIDER_ERROR, FailureReason.INSUFFICIENT_FUNDS,
                          FailureReason.BLOCKED_CONTENT, None]),
    (State.REJECTED, 0.15, [FailureReason.CARRIER_FILTERED, FailureReason.BLOCKED_CONTENT, None]),
    (State.EXPIRED, 0.15, [FailureReason.EXPIRED]),
    (State.UNKNOWN, 0.10, [None]),
]  # fmt: skip
PRE_FINAL = [State.ACCEPTED, State.QUEUED, State.SENT]
WINDOW_S = 48 * 3600
BY: tuple[report.GroupBy, ...] = ("carrier", "country", "region", "campaign", "provider")
#: The provider `billing export` is timed for.
BILLED = "plivo"
#: What an analyst without the snapshot would write for `cost by provider,country`: each
#: message's last state and price from the raw events (FINAL collapses re-emitted copies),
#: messages whose first event lies in the window, then spend per provider, country and
#: currency.
COST_BASELINE = """
SELECT provider, country, currency, count() AS messages,
       countIf(state = 'delivered') AS delivered, sum(price) AS spend,
       sum(price) / nullIf(countIf(state = 'delivered'), 0) AS cost_per_delivered
FROM (
    SELECT message_id, any(provider) AS provider, argMax(country, emitted_at) AS country,
           argMax(current_state, emitted_at) AS state,
           argMax(price, emitted_at) AS price, argMax(currency, emitted_at) AS currency,
           min(received_at) AS first_at
    FROM {db}.events FINAL
    WHERE received_at >= {{now:DateTime64(3, 'UTC')}} - INTERVAL {{since_s:UInt32}} SECOND
    GROUP BY message_id
    HAVING first_at >= {{now:DateTime64(3, 'UTC')}} - INTERVAL {{since_s:UInt32}} SECOND
)
GROUP BY provider, country, currency
"""


def rss_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_events(n: int, seed: int, now: datetime) -> Iterator[CanonicalEvent]:
    """Exactly `n` canonical events, message by message; O(1) memory."""
    rng = random.Random(seed)
    end = now.timestamp()
    places = [
        (country, region, mcc, name, mnc, p)
        for country, region, mcc, carriers in COUNTRIES
        for name, mnc, p in carriers
    ]
    place_weights = [
        COUNTRY_WEIGHTS[i] / len(carriers) * (0.05 if name == "SilentTel" else 1)
        for i, (_, _, _, carriers) in enumerate(COUNTRIES)
        for name, _, _ in carriers
    ]
    cum_places = _cumulative(place_weights)
    cum_providers = _cumulative(PROVIDER_WEIGHTS)
    cum_failures = _cumulative([w for _, w, _ in FAILURES])
    numbers = {
        c: [f"+{CODES[c]}{rng.randrange(10**9, 10**10)}" for _ in range(5000)] for c in CODES
    }
    senders = ["ACME", "ShopCo", "BankOne", "72345", "+447700900001", "Verify"]
    utc = UTC
    from_ts = datetime.fromtimestamp
    made = 0
    serial = 0
    while made < n:
        serial += 1
        country, region, mcc, carrier, mnc, p_delivered = places[_pick(rng, cum_places)]
        provider = PROVIDERS[_pick(rng, cum_providers)]
        pmid = f"{serial:x}{rng.getrandbits(40):010x}"
        mid = f"{provider}:{pmid}"
        t = end - rng.random() * WINDOW_S
        if carrier == DEGRADED[0] and t > end - 86400:
            p_delivered = DEGRADED[1]
        # the reports this message gets: some pre-final ones, then (usually) a final one
        steps = [s for s in PRE_FINAL if rng.random() < 0.6] or [State.SENT]
        final: State | None = None
        reason: FailureReason | None = None
        roll = rng.random()
        if roll >= 0.03:
            if carrier == "SilentTel":
                final = State.EXPIRED if rng.random() < 0.5 else None
                reason = FailureReason.EXPIRED if final else None
            elif rng.random() < p_delivered:
                final = State.DELIVERED
            else:
                final, _, reasons = FAILURES[_pick(rng, cum_failures)]
                reason = rng.choice(reasons)
        if final is not None:
            steps.append(final)
        stale = final is not None and rng.random() < 0.12
        info_price = round(rng.uniform(0.004, 0.09), 4)
        segments = 1 if rng.random() < 0.85 else rng.randint(2, 4)
        campaign = CAMPAIGNS[min(int(rng.expovariate(0.25)), len(CAMPAIGNS) - 1)]
        tenant = TENANTS[rng.randrange(len(TENANTS))]
        recipient = rng.choice(numbers[country])
        sender = rng.choice(senders)
        timestamped = provider in TIMESTAMPED
        previous: State | None = None
        for i, state in enumerate([*steps, State.SENT] if stale else steps):
            if made >= n:
                return
            late = stale and i == len(steps)
            if i:
                t += rng.lognormvariate(1.2, 1.0) if state is final or late else rng.random()
            if t >= end:
                break  # still in flight at `now`
            current = final if late and final is not None else state
            received = from_ts(t, utc)
            serial_hex = f"{seed:08x}{made:024x}"
            made += 1
            yield CanonicalEvent(
                event_id=serial_hex,
                message_id=mid,
                provider=provider,
                provider_message_id=pmid,
                state=state,
                current_state=current,
                previous_state=current if late else previous,
                transition="stale" if late else "advanced",
                is_final=current is final,
                failure_reason=reason if state is final and state is not State.DELIVERED else None,
                provider_status=str(state),
                provider_error_code=None if state is not final or reason is None else "E" + mnc,
                provider_error_text=None,
                mapped=True,
                recipient=recipient,
                sender=sender,
                carrier=carrier,
                mcc=mcc,
                mnc=mnc,
                country=country,
                region=region,
                campaign=campaign,
                tenant=tenant,
                client_ref=None,
                segments=segments,
                price=info_price,
                currency="USD",
                sequence=None,
                provider_timestamp=from_ts(t - 0.4, utc) if timestamped else None,
                received_at=received,
                emitted_at=from_ts(t + 0.03, utc),
                raw_sha256=hashlib.sha256(serial_hex.encode()).hexdigest(),
            )
            previous = state


def _cumulative(weights: Sequence[float]) -> list[float]:
    total = sum(weights)
    out, acc = [], 0.0
    for w in weights:
        acc += w / total
        out.append(acc)
    out[-1] = 1.0
    return out


def _pick(rng: random.Random, cumulative: list[float]) -> int:
    roll = rng.random()
    for i, edge in enumerate(cumulative):
        if roll < edge:
            return i
    return len(cumulative) - 1


def batches(events: Iterator[CanonicalEvent], size: int) -> Iterator[list[CanonicalEvent]]:
    """The events in lists of `size` (the last one shorter), built one at a time."""
    batch: list[CanonicalEvent] = []
    for event in events:
        batch.append(event)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def load(writer: EventWriter, n: int, batch: int, seed: int, now: datetime) -> None:
    """Write n events through the sink path in batches and print progress and rates.

    The sink path is what `dlr sink` does per batch (sinks/service.py `_flush`): parse every
    record of dlr.status.v1 (`rows.parse`), then `EventWriter.write` (columns straight from
    the parsed records, insert, the server's materialized views), then the next batch. The
    wire bytes are made before the clock starts (the worker's job, not the sink's);
    generation is outside it too.
    """
    tune_gc()  # what `dlr sink` does at start
    written = 0
    sink_s = 0.0
    parse_s = 0.0
    started = time.perf_counter()
    last_print = started
    for chunk in batches(synthetic_events(n, seed, now), batch):
        wire = [event.to_json() for event in chunk]
        t0 = time.perf_counter()
        records = [rows.parse(raw) for raw in wire]
        t1 = time.perf_counter()
        written += writer.write(records)
        t2 = time.perf_counter()
        parse_s += t1 - t0
        sink_s += t2 - t0
        if t2 - last_print >= 5 or written >= n:
            last_print = t2
            wall = t2 - started
            print(
                f"  {written:>11,} rows  {wall:7.1f}s  {written / wall:>9,.0f} rows/s overall  "
                f"{written / sink_s:>9,.0f} rows/s in the sink path  "
                f"peak RSS {rss_mb():,.0f} MB",
                flush=True,
            )
    wall = time.perf_counter() - started
    print(
        f"loaded {written:,} events in {wall:.1f}s: {written / wall:,.0f} rows/s overall "
        f"(generating and serializing each batch, then the sink path), "
        f"{written / sink_s:,.0f} rows/s in the sink path ({sink_s:.1f}s: parse "
        f"{parse_s / max(written, 1) * 1e6:.1f} us/event + to_columns + insert + materialized "
        f"views); target >= {TARGET_ROWS_S:,}. EventWriter.write alone (without the parse): "
        f"{written / max(sink_s - parse_s, 1e-9):,.0f} rows/s"
    )


def timed(call: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    """Milliseconds of each run and the last result."""
    times: list[float] = []
    result: Any = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - t0) * 1000)
    return times, result


def print_parts(client: Any, db: str) -> None:
    """Rows, parts and bytes of every table of the database (active parts)."""
    result = client.query(
        "SELECT table, sum(rows), count(), sum(data_compressed_bytes), "
        "sum(data_uncompressed_bytes), sum(bytes_on_disk) FROM system.parts "
        "WHERE database = {db:String} AND active GROUP BY table ORDER BY sum(bytes_on_disk) DESC",
        parameters={"db": db},
    )
    print(
        f"\n{'table':<20}{'rows':>14}{'parts':>7}{'compressed':>13}{'uncompressed':>14}"
        f"{'on disk':>12}{'bytes/row':>11}"
    )
    for table, count, parts, comp, uncomp, disk in result.result_rows:
        per_row = disk / count if count else 0
        print(
            f"{table:<20}{count:>14,}{parts:>7}{_mb(comp):>13}{_mb(uncomp):>14}{_mb(disk):>12}"
            f"{per_row:>11.1f}"
        )


def _mb(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def run_queries(client: Any, db: str, now: datetime, repeat: int) -> None:
    """Time each report function; print min / median and whether it meets the target."""
    day = 24 * 3600
    calls: list[tuple[str, Callable[[], Any]]] = [
        (f"report by {by}", functools.partial(report.report, client, db, by, day, now)) for by in BY
    ]
    calls += [
        (
            "carrier exact=False",
            functools.partial(report.report, client, db, "carrier", day, now, exact=False),
        ),
        ("freshness check", lambda: [report.snapshot_behind(client, db)]),
        ("stuck after 6h", lambda: report.stuck(client, db, 6, now)),
        ("silent carriers 24h", lambda: report.silent_carriers(client, db, day, now)),
        ("reason spikes by carrier", lambda: report.reason_spikes(client, db, day, now)),
        ("hourly by region (exact)", lambda: report.hourly(client, db, "region", day, now)),
        (
            "cost by provider,country",
            lambda: insights.cost(client, db, "provider,country", day, now),
        ),
        ("compare by country", lambda: insights.compare(client, db, "country", day, now)),
        (
            "compare by country,carrier",
            lambda: insights.compare(client, db, "country,carrier", day, now),
        ),
        (
            "filtering by campaign,carrier",
            lambda: insights.filtering(client, db, "campaign,carrier", day, now),
        ),
        (
            "billing export (2 days)",
            lambda: billing.export(
                client, db, BILLED, now - timedelta(days=2), now + timedelta(days=1)
            ),
        ),
    ]
    info: list[tuple[str, Callable[[], Any], str]] = [
        (
            "report by carrier, snapshot",
            functools.partial(report.report, client, db, "carrier", day, now, rollup=False),
            "rollup=False: status_snapshot row by row, as every report read it before ddl/0013",
        ),
        (
            "hourly rollup by region",
            lambda: report.hourly_rollup(client, db, "region", day, now),
            "dashboards' SQL over hourly_v2, not a dlr report query",
        ),
        (
            "cost over events FINAL",
            lambda: (
                client.query(
                    COST_BASELINE.format(db=db), parameters={"since_s": day, "now": now}
                ).result_rows
            ),
            "baseline: what `cost by provider,country` answers, from the raw events",
        ),
    ]
    print(f"\n{'query':<30}{'rows':>6}{'min ms':>10}{'median ms':>11}  target < {TARGET_MS:.0f} ms")
    carrier_rows: list[dict[str, Any]] = []
    for name, call in calls:
        times, result = timed(call, repeat)
        if name == "report by carrier":
            carrier_rows = result
        median = statistics.median(times)
        verdict = "ok" if median < TARGET_MS else "MISSED"
        print(
            f"{name:<30}{len(result):>6}{min(times):>10.0f}{median:>11.0f}  {verdict}", flush=True
        )
    for name, call, note in info:
        times, result = timed(call, repeat)
        print(
            f"{name:<30}{len(result):>6}{min(times):>10.0f}{statistics.median(times):>11.0f}  "
            f"({note})",
            flush=True,
        )
    if carrier_rows:
        print("\ndlr report --by carrier --since 24h (5 worst):")
        print(delivery_table(carrier_rows[:5], "carrier"))


def server_settings(name: str, keep_data: bool = False) -> tuple[Settings, bool]:
    """The configured server, or a fresh local launcher with its data in `.data/bench/<name>`
    (True: we start and stop it)."""
    configured = Settings()
    if configured.clickhouse_url:
        return configured, False
    from deploy.local import clickhouse

    data = ROOT / ".data" / "bench" / name
    settings = Settings(
        data_dir=data,
        clickhouse_url=None,
        clickhouse_http_port=free_port(),
        clickhouse_tcp_port=free_port(),
    )
    # a server an interrupted run left behind still holds the directory: stop it first
    clickhouse.stop(settings)
    if data.exists() and not keep_data:
        shutil.rmtree(data)
    return settings, True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument(
        "--batch",
        type=int,
        default=Settings().sink_batch_rows,
        help="rows per batch (default: DLR_SINK_BATCH_ROWS, what a catching-up sink inserts)",
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database", default="dlr_bench")
    parser.add_argument("--keep-data", action="store_true", help="keep the local server's data")
    parser.add_argument(
        "--queries-only",
        action="store_true",
        help="with --keep-data: time the queries on the database a previous run loaded "
        "(after applying the migrations it lacks)",
    )
    args = parser.parse_args(argv)
    db = check_identifier(args.database)
    settings, own = server_settings("analytics", args.keep_data)
    if own:
        from deploy.local import clickhouse

        clickhouse.start(settings)
    try:
        client = connect(settings)
        print(f"ClickHouse {client.server_version} at {settings.clickhouse}, database {db}")
        if args.queries_only:
            # migrations added since that run (applied ones are skipped)
            migrate(client, db)
            # the previous run's `now`: one second after its newest event
            newest = client.query(f"SELECT max(received_at) FROM {db}.events").result_rows[0][0]
            now = newest.replace(tzinfo=UTC, microsecond=0) + timedelta(seconds=1)
        else:
            client.command(f"DROP DATABASE IF EXISTS {db}")
            migrate(client, db)
            now = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
            writer = EventWriter(client, db, pii_mode=settings.pii_mode, salt=settings.pii_salt)
            print(f"loading {args.events:,} events in batches of {args.batch:,} ...", flush=True)
            load(writer, args.events, args.batch, args.seed, now)
        t0 = time.perf_counter()
        report.refresh(client, db)
        print(
            f"status_snapshot and status_rollup refreshed in {time.perf_counter() - t0:.1f}s "
            "(report.refresh: SYSTEM REFRESH VIEW + WAIT, then the same for status_rollup_mv; "
            "both also refresh every minute)"
        )
        messages = int(client.query(f"SELECT count() FROM {db}.status_snapshot").result_rows[0][0])
        print(f"{messages:,} messages ({args.events / max(messages, 1):.2f} events per message)")
        print_parts(client, db)
        run_queries(client, db, now, args.repeat)
        print_parts(client, db)
        client.close()
    finally:
        if own:
            from deploy.local import clickhouse

            clickhouse.stop(settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
