"""The snapshot's refresh (ddl/0014) needs less memory than a plain hash aggregation and
hash join over every message, and writes the same rows.

300,000 registrations, two thirds with a receipt (bench.api's generators), then the live
`status_snapshot_mv` query as the server stores it, run twice into `status_snapshot`:
once with only `join_use_nulls` (the baseline: how ddl/0013 ran it), measuring its peak
memory from the server's summary; then with the view's own settings under a
`max_memory_usage` of three quarters of that peak. Without ddl/0014's settings the second
run exceeds the limit; with them it succeeds and writes the same rows (same checksum).
The saving grows with the table (here ~0.57 of the baseline's peak; 0.18 at 5 M messages,
`bench.snapshot`), so a small table keeps the test short.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from bench.api import _LOAD_EVENTS, _LOAD_SENDS
from sinks.clickhouse.client import connect_url
from sinks.clickhouse.migrate import migrate

pytestmark = pytest.mark.integration

MESSAGES = 300_000


@pytest.fixture(scope="module")
def loaded(clickhouse_url: str) -> Iterator[tuple[Any, str]]:
    client = connect_url(clickhouse_url, send_receive_timeout=600)
    db = f"dlr_snapmem_{uuid.uuid4().hex[:10]}"
    migrate(client, db)
    views = client.query(
        "SELECT view FROM system.view_refreshes WHERE database = {d:String}", parameters={"d": db}
    ).result_rows
    for (view,) in views:  # this test runs the view's query itself
        client.command(f"SYSTEM STOP VIEW {db}.{view}")
    client.command(_LOAD_SENDS.format(db=db, start=0, count=MESSAGES))
    client.command(_LOAD_EVENTS.format(db=db, start=0, count=MESSAGES * 2 // 3))
    client.command(f"OPTIMIZE TABLE {db}.messages FINAL")
    client.command(f"OPTIMIZE TABLE {db}.sends FINAL")
    try:
        yield client, db
    finally:
        client.command(f"DROP DATABASE IF EXISTS {db}")
        client.close()


def view_query(client: Any, db: str) -> tuple[str, str]:
    """(SELECT, settings) of the live status_snapshot_mv, as the server stores it."""
    create: str = client.query(
        "SELECT create_table_query FROM system.tables WHERE database = {d:String} "
        "AND name = 'status_snapshot_mv'",
        parameters={"d": db},
    ).result_rows[0][0]
    found = re.search(r" AS (?=WITH |SELECT )", create)  # after the columns and SQL SECURITY
    assert found, create[:300]
    select = create[found.end() :]
    cut = select.rfind(" SETTINGS ")
    assert cut > 0, "the view has no SETTINGS clause"
    return select[:cut], select[cut + len(" SETTINGS ") :]


def insert(
    client: Any, db: str, select: str, settings: str, **limits: Any
) -> tuple[int, tuple[int, int]]:
    """(peak memory, checksum of the rows) of one INSERT of the query into an empty table."""
    client.command(f"TRUNCATE TABLE {db}.status_snapshot")
    summary = client.command(
        f"INSERT INTO {db}.status_snapshot {select} SETTINGS {settings}", settings=limits
    )
    count, checksum = client.query(
        f"SELECT count(), sum(cityHash64(toString(tuple(*)))) FROM {db}.status_snapshot"
    ).result_rows[0]
    return int(summary.summary["memory_usage"]), (int(count), int(checksum))


def test_the_refresh_fits_in_less_memory_than_a_hash_refresh_and_writes_the_same_rows(
    loaded: tuple[Any, str],
) -> None:
    client, db = loaded
    select, settings = view_query(client, db)
    assert "optimize_aggregation_in_order = 1" in settings, settings
    baseline_peak, baseline_rows = insert(client, db, select, "join_use_nulls = 1")
    assert baseline_rows[0] == MESSAGES, baseline_rows
    limit = baseline_peak * 3 // 4
    peak, rows = insert(client, db, select, settings, max_memory_usage=limit)
    assert peak < limit, (peak, limit)
    assert rows == baseline_rows
