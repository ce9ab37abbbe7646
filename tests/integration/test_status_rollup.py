"""status_rollup (ddl/0013) against status_snapshot, on the analytics benchmark's traffic.

Every report that can read the rollup gives, for groupings of both grains and windows whose
ends fall on, and off, the hour (to the millisecond), exactly what the same report reads
from the snapshot alone (`rollup=False`): counts and quantiles equal, sums of prices up to
rounding. The traffic: 20,000 events of `bench.analytics.synthetic_events` over 48 h (11
countries, 9 providers, 16 campaigns, a silent carrier, all final states and reasons).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bench.analytics import synthetic_events
from sinks.clickhouse import insights, report
from sinks.clickhouse.client import connect_url
from sinks.clickhouse.migrate import migrate
from sinks.clickhouse.writer import EventWriter
from tests.sinks.clickhouse.test_rows import wire

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
#: (end of the window, length): on the hour, off the hour, to the millisecond, one shorter
#: than an hour (inside one hour: no rollup row at all) and one of 30 h.
WINDOWS = [
    (NOW, 86400),
    (NOW - timedelta(minutes=17, seconds=3, milliseconds=7), 5400),
    (NOW - timedelta(hours=5, minutes=41), 600),
    (NOW - timedelta(minutes=1), 30 * 3600),
]
PROVIDER_GRAIN = ["carrier", "provider,country", "country,carrier"]
CAMPAIGN_GRAIN = ["campaign,carrier"]


@pytest.fixture(scope="module")
def loaded(clickhouse_url: str) -> Iterator[tuple[Any, str]]:
    client = connect_url(clickhouse_url)
    db = f"dlr_rollup_{uuid.uuid4().hex[:10]}"
    migrate(client, db)
    writer = EventWriter(client, db, pii_mode="hash", salt="test")
    events = list(synthetic_events(20_000, seed=3, now=NOW))
    for start in range(0, len(events), 10_000):
        writer.write(wire(*events[start : start + 10_000]))
    report.refresh(client, db)
    try:
        yield client, db
    finally:
        client.command(f"DROP DATABASE IF EXISTS {db}")
        client.close()


def same(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-9 (sums of prices in another order), NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


Call = Callable[..., list[dict[str, Any]]]
CALLS: list[tuple[str, Call, list[str]]] = [
    (
        "report",
        lambda c, db, by, end, since, r: report.report(c, db, by, since, end, rollup=r),
        PROVIDER_GRAIN + CAMPAIGN_GRAIN,
    ),
    (
        "hourly",
        lambda c, db, by, end, since, r: report.hourly(c, db, by, since, end, rollup=r),
        PROVIDER_GRAIN + CAMPAIGN_GRAIN,
    ),
    (
        "reason_spikes",
        lambda c, db, by, end, since, r: report.reason_spikes(
            c, db, since, end, by=by, factor=1.0, min_count=1, rollup=r
        ),
        PROVIDER_GRAIN + CAMPAIGN_GRAIN,
    ),
    (
        "filtering",
        lambda c, db, by, end, since, r: insights.filtering(
            c, db, by, since, end, min_count=1, rollup=r
        ),
        PROVIDER_GRAIN + CAMPAIGN_GRAIN,
    ),
    (
        "cost",
        lambda c, db, by, end, since, r: insights.cost(
            c, db, by, since, end, currencies={"vonage": "EUR"}, rollup=r
        ),
        PROVIDER_GRAIN,
    ),
    (
        "compare",
        lambda c, db, by, end, since, r: insights.compare(c, db, by, since, end, rollup=r),
        ["country", "country,carrier"],
    ),
    (
        "silent_carriers",
        lambda c, db, by, end, since, r: report.silent_carriers(c, db, since, end, rollup=r),
        ["carrier"],
    ),
]


def _sorted_arrays(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """silent_carriers over the snapshot lists providers, countries, sources unordered."""
    return [{k: sorted(v) if isinstance(v, list) else v for k, v in r.items()} for r in rows]


@pytest.mark.parametrize(("name", "call", "groupings"), CALLS, ids=[c[0] for c in CALLS])
def test_the_rollup_gives_the_snapshots_numbers(
    loaded: tuple[Any, str], name: str, call: Call, groupings: list[str]
) -> None:
    client, db = loaded
    compared = 0
    for by in groupings:
        assert report.query_for(name, {}, report.check_groups(by), None, True) != name
        for end, since in WINDOWS:
            rolled = call(client, db, by, end, since, True)
            snapshot = call(client, db, by, end, since, False)
            if name == "silent_carriers":
                snapshot = _sorted_arrays(snapshot)
            assert same(rolled, snapshot), (name, by, end, since)
            compared += len(snapshot)
    assert compared > 0, name


def test_the_rollup_holds_every_message_once_per_grain(loaded: tuple[Any, str]) -> None:
    client, db = loaded
    snapshot = client.query(f"SELECT count() FROM {db}.status_snapshot").result_rows[0][0]
    rows = client.query(
        f"SELECT grain, sum(messages) FROM {db}.status_rollup GROUP BY grain ORDER BY grain"
    ).result_rows
    assert rows == [
        ("campaign", snapshot),
        ("provider", snapshot),
    ]


def test_groupings_outside_both_grains_read_the_snapshot() -> None:
    for by in ("tenant", "sender", "campaign,provider", "area", "carrier_source"):
        assert report.query_for("report", {}, report.check_groups(by), None, True) == "report"
    assert report.query_for("report", {}, ("carrier",), None, False) == "report"
