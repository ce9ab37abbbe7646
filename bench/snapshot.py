"""Snapshot refresh benchmark (not a test): the refresh of `status_snapshot` at millions of
registered messages, its time and peak memory, next to ddl/0013's way of running it.

    .venv/bin/python -m bench.snapshot [--messages 5000000]

1. Uses `DLR_CLICKHOUSE_URL` when set; otherwise starts the local ClickHouse 26.9 launcher
   on free ports (data in `.data/bench/snapshot/`, wiped first) and stops it at the end.
2. A fresh database with the project's migrations; the refreshable views are paused while
   `--messages` registrations are loaded, two thirds of them with one delivered receipt
   (bench.api's generators, `INSERT ... SELECT FROM numbers()`), so both halves of the
   snapshot's query (messages with a receipt, registered ones without) have rows.
3. Runs the snapshot's query, as `INSERT INTO status_snapshot SELECT ...`, with ddl/0013's
   settings (the baseline: hash aggregation and a hash join over every message) and with
   ddl/0014's (aggregation in key order, a sorting-merge join): time, peak memory (the
   server's `X-ClickHouse-Summary` of the query) and a checksum of the rows each wrote,
   which must be equal. A run that exceeds the server's memory limit is reported as such.
4. Starts the view again, refreshes it (`SYSTEM REFRESH VIEW` + `WAIT`) and prints the
   server's duration of that refresh (`system.view_refreshes`), the way the pipeline runs it
   every minute.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import uuid
from typing import Any

from bench.analytics import ROOT, server_settings
from bench.api import _LOAD_EVENTS, _LOAD_SENDS
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrate import migrate

DDL = ROOT / "sinks" / "clickhouse" / "ddl"
_VIEW = re.compile(
    r"CREATE MATERIALIZED VIEW IF NOT EXISTS \{db\}\.status_snapshot_mv\n"
    r"REFRESH EVERY 1 MINUTE\nTO \{db\}\.status_snapshot AS\n(?P<query>.*?)\n"
    r"(?P<settings>SETTINGS [^;]*);",
    re.S,
)


def snapshot_query(file: str) -> tuple[str, str]:
    """The snapshot view's SELECT and its SETTINGS clause, as a DDL file defines them."""
    found = _VIEW.search((DDL / file).read_text())
    if found is None:
        raise SystemExit(f"no status_snapshot_mv in ddl/{file}")
    return found["query"], " ".join(found["settings"].split())


def run(client: Any, db: str, label: str, query: str, settings: str) -> dict[str, Any]:
    """One INSERT ... SELECT of the snapshot query into an emptied status_snapshot."""
    client.command(f"TRUNCATE TABLE {db}.status_snapshot")
    sql = f"INSERT INTO {db}.status_snapshot\n{query.replace('{db}', db)}\n{settings}"
    started = time.monotonic()
    try:
        summary = client.command(sql)
        error = ""
        memory = int(getattr(summary, "summary", {}).get("memory_usage", 0))
    except Exception as exc:  # the server's answer is the result: print it
        error = " ".join(str(exc).split())
        error = error[error.find("DB::Exception") :][:240]
        memory = 0
    seconds = time.monotonic() - started
    rows = client.command(f"SELECT count() FROM {db}.status_snapshot")
    checksum = client.command(
        f"SELECT sum(cityHash64(toString(tuple(*)))) FROM {db}.status_snapshot"
    )
    print(
        f"[bench] {label}: {seconds:.1f}s, peak {memory / 2**30:.2f} GiB, {rows:,} rows"
        + (f", FAILED: {error}" if error else ""),
        flush=True,
    )
    return {"s": seconds, "gib": memory / 2**30, "rows": rows, "sum": checksum, "error": error}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5_000_000)
    args = parser.parse_args()
    settings, own = server_settings("snapshot")
    from deploy.local import clickhouse

    if own:
        clickhouse.start(settings)
    db = f"bench_snapshot_{uuid.uuid4().hex[:6]}"
    try:
        client = connect(settings, send_receive_timeout=3600)
        migrate(client, db)
        views = [
            v
            for (v,) in client.query(
                "SELECT view FROM system.view_refreshes WHERE database = {d:String}",
                parameters={"d": db},
            ).result_rows
        ]
        for view in views:
            client.command(f"SYSTEM STOP VIEW {db}.{view}")
        limit = client.command(
            "SELECT formatReadableSize(toUInt64(value)) FROM system.server_settings "
            "WHERE name = 'max_server_memory_usage'"
        )
        print(f"[bench] paused {', '.join(views)} while loading; memory limit {limit}")
        started = time.monotonic()
        for start in range(0, args.messages, 1_000_000):
            count = min(1_000_000, args.messages - start)
            client.command(_LOAD_SENDS.format(db=db, start=start, count=count))
            client.command(_LOAD_EVENTS.format(db=db, start=start, count=count * 2 // 3))
            print(
                f"[bench] loaded {start + count:,} registrations "
                f"({time.monotonic() - started:.0f}s)",
                flush=True,
            )
        client.command(f"OPTIMIZE TABLE {db}.messages FINAL")
        client.command(f"OPTIMIZE TABLE {db}.sends FINAL")
        old_query, old_settings = snapshot_query("0013_status_rollup.sql")
        new_query, new_settings = snapshot_query("0014_snapshot_memory.sql")
        if old_query != new_query:
            raise SystemExit("ddl/0013 and ddl/0014 define different snapshot queries")
        baseline = run(client, db, f"ddl/0013 ({old_settings})", old_query, old_settings)
        project = run(client, db, f"ddl/0014 ({new_settings})", new_query, new_settings)
        client.command(f"TRUNCATE TABLE {db}.status_snapshot")
        began = time.monotonic()
        client.command(f"SYSTEM START VIEW {db}.status_snapshot_mv")
        client.command(f"SYSTEM REFRESH VIEW {db}.status_snapshot_mv")
        client.command(f"SYSTEM WAIT VIEW {db}.status_snapshot_mv")
        waited_s = time.monotonic() - began
        # Starting an overdue view may begin a scheduled refresh before ours, and the wait
        # then covers both: the server's own duration of the last refresh is the figure.
        duration = client.query(
            "SELECT last_success_duration_ms FROM system.view_refreshes "
            "WHERE database = {d:String} AND view = 'status_snapshot_mv'",
            parameters={"d": db},
        ).result_rows[0][0]
        refresh_s = int(duration or 0) / 1000
        refreshed = client.command(f"SELECT count() FROM {db}.status_snapshot")
    finally:
        if own:
            clickhouse.stop(settings)

    print(f"\nstatus_snapshot at {args.messages:,} registered messages (2/3 with a receipt)")
    print(f"{'refresh query':<38}{'seconds':>9}{'peak GiB':>12}{'rows':>12}")
    for label, r in (("ddl/0013 settings (baseline)", baseline), ("ddl/0014 settings", project)):
        shown = (
            "over limit"
            if "MEMORY_LIMIT" in r["error"] or "memory limit" in r["error"]
            else ("failed" if r["error"] else f"{r['gib']:.2f}")
        )
        print(f"{label:<38}{r['s']:>9.1f}{shown:>12}{r['rows']:>12,}")
    print(f"{'the view, one refresh (ddl/0014)':<38}{refresh_s:>9.1f}{'':>12}{refreshed:>12,}")
    print(f"(start + refresh + wait of the view took {waited_s:.1f}s)")
    if not baseline["error"] and project["gib"]:
        print(
            f"peak memory {baseline['gib'] / project['gib']:.1f}x lower, "
            f"time {baseline['s'] / project['s']:.2f}x"
        )
    same = baseline["error"] or (
        baseline["rows"] == project["rows"] and baseline["sum"] == project["sum"]
    )
    print("rows: " + ("identical" if same and not baseline["error"] else "baseline failed"))
    if project["error"] or not same or refreshed != project["rows"]:
        print("FAILED: the ddl/0014 refresh failed or wrote other rows", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
