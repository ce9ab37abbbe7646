"""The local ClickHouse launcher and the whole ClickHouse model on the real engine.

Starts `deploy.local.clickhouse` on free ports with a throw-away data dir, applies the
migrations to a randomly named database, inserts canonical events through clickhouse-connect
(the same batch twice, re-emitted events in another batch, superseded finals) and checks
that events, messages and every report number are exact; then stops the server, starts it
again on the same data dir and checks the data is still there. No mocks.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from deploy.local import clickhouse as launcher
from deploy.local._process import pid_alive, port_open, read_pid
from deploy.settings import Settings
from schemas.events import CanonicalEvent
from schemas.lifecycle import FailureReason, State, is_final
from schemas.phone import number_hash
from sinks.clickhouse import migrate as migrate_module
from sinks.clickhouse import rows
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrate import ddl_files, migrate
from sinks.clickhouse.report import (
    hourly,
    hourly_rollup,
    reason_spikes,
    refresh,
    report,
    silent_carriers,
    snapshot_behind,
    stuck,
)
from streams.state_machine import MessageState, Report, decide
from tests.conftest import local_clickhouse

pytestmark = pytest.mark.integration

SALT = "it-salt"
# Everything happens in the last two hours, so no TTL can touch the rows during the test.
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
PREVIOUS = NOW - timedelta(hours=2) + timedelta(minutes=10)
CURRENT = NOW - timedelta(hours=1) + timedelta(minutes=1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A local server of our own (never DLR_CLICKHOUSE_URL: this tests the launcher)."""
    settings = local_clickhouse(tmp_path_factory.mktemp("clickhouse-local"))
    launcher.start(settings)
    try:
        yield settings
    finally:
        pid = read_pid(launcher.pid_file(settings))
        launcher.stop(settings)
        assert pid is None or not pid_alive(pid)


@pytest.fixture
def client(server: Settings) -> Any:
    return connect(server)


@pytest.fixture
def database(server: Settings) -> Iterator[str]:
    name = f"dlr_test_{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        if launcher.status(server):
            connect(server).command(f"DROP DATABASE IF EXISTS {name}")


# -- building realistic events: the real state machine decides every transition ----------


@dataclass
class Msg:
    """One message: its dimensions and its provider reports in arrival order."""

    message_id: str
    base: datetime
    carrier: str | None = "Xcell"
    country: str | None = "US"
    campaign: str | None = "spring"
    #: (state, provider time offset in seconds, failure reason)
    reports: list[tuple[State, float, FailureReason | None]] = field(default_factory=list)


def events_of(msg: Msg) -> list[CanonicalEvent]:
    """What the worker emits for the reports, in order (reports that change nothing: none)."""
    prior: MessageState | None = None
    received = -1.0
    out: list[CanonicalEvent] = []
    for n, (state, at, reason) in enumerate(msg.reports):
        received = max(at, received) + 0.5
        info = {"carrier": msg.carrier, "country": msg.country, "campaign": msg.campaign}
        provider_time = msg.base + timedelta(seconds=at)
        decision = decide(prior, Report(state, provider_time.timestamp(), None, False, info))
        prior = decision.after
        if decision.transition is None:
            continue
        current = decision.current
        out.append(
            CanonicalEvent(
                event_id=hashlib.sha256(f"{msg.message_id}|{n}".encode()).hexdigest()[:32],
                message_id=msg.message_id,
                provider="generic",
                provider_message_id=msg.message_id.split(":", 1)[1],
                state=state,
                current_state=current,
                previous_state=decision.previous,
                transition=decision.transition,
                is_final=is_final(current),
                failure_reason=reason,
                provider_status=str(state).upper(),
                provider_error_code=None,
                provider_error_text=None,
                mapped=True,
                recipient="+14155550100",
                sender="ACME",
                carrier=prior.info.get("carrier"),
                mcc=None,
                mnc=None,
                country=prior.info.get("country"),
                region=None,
                campaign=prior.info.get("campaign"),
                tenant=None,
                client_ref=None,
                segments=1,
                price=0.0075,
                currency="USD",
                sequence=None,
                provider_timestamp=provider_time,
                received_at=msg.base + timedelta(seconds=received),
                emitted_at=msg.base + timedelta(seconds=received + 0.2),
                raw_sha256=hashlib.sha256(f"{msg.message_id}|{n}|raw".encode()).hexdigest(),
            )
        )
    return out


S, D, U, F, R, K = (
    State.SENT,
    State.DELIVERED,
    State.UNDELIVERED,
    State.FAILED,
    State.REJECTED,
    State.UNKNOWN,
)

MESSAGES: list[Msg] = [
    # previous window: four delivered in 8 s, one never leaves `sent`
    *[Msg(f"generic:p{i}", PREVIOUS, reports=[(S, 0, None), (D, 8, None)]) for i in range(1, 5)],
    Msg("generic:p5", PREVIOUS, reports=[(S, 0, None)]),
    # current window, carrier Xcell
    Msg("generic:a1", CURRENT, reports=[(S, 0, None), (D, 4, None)]),
    Msg(
        "generic:a2",
        CURRENT,
        reports=[(S, 0, None), (U, 10, FailureReason.UNREACHABLE), (D, 30, None)],
    ),
    Msg("generic:a3", CURRENT, reports=[(F, 3, FailureReason.INVALID_NUMBER), (S, 1, None)]),
    Msg("generic:a4", CURRENT, reports=[(S, 0, None)]),
    Msg("generic:a5", CURRENT, reports=[(K, 5, None), (R, 50, None)]),
    Msg("generic:a6", CURRENT, reports=[(State.ACCEPTED, 0, None), (S, 2, None), (D, 12, None)]),
    Msg("generic:a7", CURRENT, reports=[(D, 7, None)]),
    # current window, carrier Ycom: no delivery at all
    Msg(
        "generic:b1",
        CURRENT,
        carrier="Ycom",
        country="GB",
        reports=[(S, 0, None), (U, 9, FailureReason.UNREACHABLE)],
    ),
    Msg("generic:b2", CURRENT, carrier="Ycom", country="GB", reports=[(State.ACCEPTED, 20, None)]),
]

#: message -> (final state, is attempt, failure reason, time to deliver in s)
EXPECTED: dict[str, tuple[str, bool, str | None, float | None]] = {
    **{f"generic:p{i}": ("delivered", True, None, 8.0) for i in range(1, 5)},
    "generic:p5": ("sent", False, None, None),
    "generic:a1": ("delivered", True, None, 4.0),
    "generic:a2": ("delivered", True, None, 30.0),
    "generic:a3": ("failed", True, "invalid_number", None),
    "generic:a4": ("sent", False, None, None),
    "generic:a5": ("rejected", True, "carrier_filtered", None),
    "generic:a6": ("delivered", True, None, 10.0),
    "generic:a7": ("delivered", True, None, None),
    "generic:b1": ("undelivered", True, "unreachable", None),
    "generic:b2": ("accepted", False, None, None),
}


def batches() -> tuple[list[CanonicalEvent], list[CanonicalEvent], list[CanonicalEvent]]:
    """First reports / later reports / re-emitted copies (same event_id, later emitted_at)."""
    first: list[CanonicalEvent] = []
    later: list[CanonicalEvent] = []
    for msg in MESSAGES:
        events = events_of(msg)
        first.append(events[0])
        later.extend(events[1:])
    by_id = {e.message_id: e for e in later}
    reemit_of = [
        next(e for e in later if e.message_id == "generic:a2" and e.state is U),  # superseded
        next(e for e in first if e.message_id == "generic:a5"),  # superseded unknown
        by_id["generic:a1"],  # delivered
        by_id["generic:b1"],  # the failure itself
    ]
    reemitted = [replace(e, emitted_at=e.emitted_at + timedelta(minutes=5)) for e in reemit_of]
    return first, later, reemitted


def insert(client: Any, db: str, events: list[CanonicalEvent], pii_mode: str = "hash") -> None:
    client.insert(
        rows.TABLE,
        [rows.to_row(e, pii_mode=pii_mode, salt=SALT) for e in events],
        database=db,
        column_names=list(rows.COLUMNS),
        column_type_names=list(rows.TYPES),
    )


def load(client: Any, db: str) -> int:
    """Insert the scenario with its duplicates; returns the number of distinct events."""
    first, later, reemitted = batches()
    insert(client, db, first)
    insert(client, db, first)  # the same batch twice (a retried flush)
    insert(client, db, later)
    insert(client, db, reemitted)  # re-emitted events in a different batch
    return len({e.event_id for e in first + later})


def status_rows(client: Any, db: str) -> dict[str, tuple[Any, ...]]:
    result = client.query(
        f"SELECT message_id, current_state, is_attempt, failure_reason, time_to_deliver_s "
        f"FROM {db}.message_status"
    )
    return {r[0]: (r[1], bool(r[2]), r[3], r[4]) for r in result.result_rows}


# -- the launcher ------------------------------------------------------------------------------


def test_server_answers_and_start_is_idempotent(server: Settings, client: Any) -> None:
    pid = read_pid(launcher.pid_file(server))
    assert pid is not None and pid_alive(pid)
    assert launcher.status(server)
    assert launcher.start(server) == pid  # already running: nothing new started
    assert read_pid(launcher.pid_file(server)) == pid
    assert client.server_version.startswith("26.9")
    assert port_open("127.0.0.1", server.clickhouse_tcp_port)
    assert (launcher.data_dir(server)).is_dir()
    assert (
        "<listen_host>127.0.0.1</listen_host>"
        in (launcher.base_dir(server) / "config.xml").read_text()
    )


def test_launcher_refuses_when_an_external_url_is_configured(server: Settings) -> None:
    external = server.model_copy(update={"clickhouse_url": "https://u:p@example.invalid:8443"})
    with pytest.raises(RuntimeError, match="DLR_CLICKHOUSE_URL"):
        launcher.start(external)


# -- migrations --------------------------------------------------------------------------------


def test_migrations_apply_once_with_settings_ttls(client: Any, database: str) -> None:
    names = [name for name, _ in ddl_files()]
    assert migrate(client, database, retention_days=7, clear_pii_days=2) == names
    assert migrate(client, database, retention_days=7, clear_pii_days=2) == []
    recorded = client.query(f"SELECT name FROM {database}.schema_migrations FINAL ORDER BY name")
    assert [r[0] for r in recorded.result_rows] == names
    tables = {
        r[0]: r[1]
        for r in client.query(
            "SELECT name, create_table_query FROM system.tables WHERE database = %(db)s",
            parameters={"db": database},
        ).result_rows
    }
    assert {
        "events",
        "messages",
        "message_status",
        "status_snapshot",
        "status_snapshot_mv",
        "hourly",
        "hourly_v2",
        "messages_mv_v3",
        "hourly_v2_mv",
    } <= set(tables)
    assert "hourly_mv" not in tables  # replaced by hourly_v2_mv (ddl/0006)
    assert "messages_mv" not in tables  # replaced by messages_mv_v2 (ddl/0007)
    assert "messages_mv_v2" not in tables  # replaced by messages_mv_v3 (ddl/0010)
    refreshes = client.query(
        "SELECT view, status FROM system.view_refreshes WHERE database = %(db)s",
        parameters={"db": database},
    ).result_rows
    assert refreshes and all(status != "Disabled" for _, status in refreshes)  # resumed
    events = tables["events"]
    assert "toIntervalDay(7)" in events and events.count("toIntervalDay(2)") == 2
    assert "toIntervalDay(7)" in tables["messages"] and "toIntervalDay(7)" in tables["hourly_v2"]


def test_no_refresh_runs_while_a_migration_alters_tables(
    client: Any, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A view's first refresh (at creation) must not overlap a later ALTER of its target:
    it would swap in a table of the old columns and the next CREATE VIEW would fail."""
    seen: list[tuple[str, str]] = []
    run = migrate_module._Target.run

    def spy(self: Any, sql: str) -> None:
        if sql.lstrip().upper().startswith("ALTER TABLE"):
            states = client.query(
                "SELECT view, status FROM system.view_refreshes WHERE database = %(db)s",
                parameters={"db": database},
            ).result_rows
            seen.extend((str(view), str(status)) for view, status in states)
        run(self, sql)

    monkeypatch.setattr(migrate_module._Target, "run", spy)
    migrate(client, database)
    assert seen  # 0007, 0008 and 0010 alter tables after status_snapshot_mv exists
    assert all(status == "Disabled" for _, status in seen), seen


def test_events_columns_equal_rows_module(client: Any, database: str) -> None:
    migrate(client, database)
    described = client.query(
        "SELECT name, type, default_kind FROM system.columns "
        "WHERE database = %(db)s AND table = 'events' ORDER BY position",
        parameters={"db": database},
    ).result_rows
    inserted = [(name, kind) for name, kind, default in described if not default]
    assert inserted == list(zip(rows.COLUMNS, rows.TYPES, strict=True))


# -- exact numbers with duplicates, re-emission and superseded finals --------------------------


def test_events_and_messages_are_exact(client: Any, database: str) -> None:
    migrate(client, database)
    distinct = load(client, database)
    assert int(client.command(f"SELECT count() FROM {database}.events")) > distinct
    assert int(client.command(f"SELECT count() FROM {database}.events FINAL")) == distinct
    assert int(client.command(f"SELECT uniqExact(event_id) FROM {database}.events")) == distinct

    messages = client.query(
        f"SELECT message_id, finalizeAggregation(status).state FROM {database}.messages FINAL"
    ).result_rows
    assert len(messages) == len(EXPECTED)
    assert {m: s for m, s in messages} == {m: e[0] for m, e in EXPECTED.items()}
    assert status_rows(client, database) == EXPECTED

    # merging everything changes nothing
    for table in ("events", "messages", "hourly_v2"):
        client.command(f"OPTIMIZE TABLE {database}.{table} FINAL")
    assert int(client.command(f"SELECT count() FROM {database}.events")) == distinct
    assert int(client.command(f"SELECT count() FROM {database}.messages")) == len(EXPECTED)
    assert status_rows(client, database) == EXPECTED


def test_report_is_exact(client: Any, database: str) -> None:
    migrate(client, database)
    load(client, database)
    got = report(client, database, "carrier", 3600, NOW)
    assert got == [
        {
            "carrier": "Ycom",
            "messages": 2,
            "attempts": 1,
            "final_attempts": 1,
            "unreported": 0,
            "delivered": 0,
            "delivery_rate": 0.0,
            "failure_reasons": {"unreachable": 1},
            "ttd_p50_s": None,
            "ttd_p95_s": None,
            "previous_attempts": 0,
            "previous_delivered": 0,
            "previous_delivery_rate": None,
            "dropped": False,
            "carrier_sources": {"unrecorded": 2},  # events without the enrichment
        },
        {
            "carrier": "Xcell",
            "messages": 7,
            "attempts": 6,
            "final_attempts": 6,
            "unreported": 0,
            "delivered": 4,
            "delivery_rate": pytest.approx(4 / 6),
            "failure_reasons": {"carrier_filtered": 1, "invalid_number": 1},
            # delivered with an earlier report: 4, 10, 30 s (linear interpolation)
            "ttd_p50_s": pytest.approx(10.0),
            "ttd_p95_s": pytest.approx(28.0),
            "previous_attempts": 4,
            "previous_delivered": 4,
            "previous_delivery_rate": 1.0,
            "dropped": True,
            "carrier_sources": {"unrecorded": 7},
        },
    ]
    by_campaign = report(client, database, "campaign", 3600, NOW)
    assert [(r["campaign"], r["attempts"], r["delivered"], r["dropped"]) for r in by_campaign] == [
        ("spring", 7, 4, True)
    ]
    # a 2-hour window holds both halves; nothing before it
    wide = report(client, database, "country", 7200, NOW)
    assert [(r["country"], r["messages"], r["attempts"], r["delivered"]) for r in wide] == [
        ("GB", 2, 1, 0),
        ("US", 12, 10, 8),
    ]
    assert wide[1]["ttd_p50_s"] == pytest.approx(8.0)


def test_snapshot_freshness(client: Any, database: str) -> None:
    migrate(client, database)
    refresh(client, database)
    assert not snapshot_behind(client, database)
    load(client, database)
    assert snapshot_behind(client, database)
    # exact=False reads the snapshot as it is (here: refreshed before the load, so empty)
    assert report(client, database, "carrier", 3600, NOW, exact=False) == []
    exact = report(client, database, "carrier", 3600, NOW)  # refreshes first
    assert not snapshot_behind(client, database)
    assert [(r["carrier"], r["attempts"]) for r in exact] == [("Ycom", 1), ("Xcell", 6)]
    assert report(client, database, "carrier", 3600, NOW, exact=False) == exact
    # merging moves no block numbers: still fresh, the same answer
    client.command(f"OPTIMIZE TABLE {database}.messages FINAL")
    assert not snapshot_behind(client, database)
    refresh(client, database)
    assert report(client, database, "carrier", 3600, NOW, exact=False) == exact
    snapshot = int(client.command(f"SELECT count() FROM {database}.status_snapshot"))
    assert snapshot == len(EXPECTED)


def test_stuck_silent_and_spikes(client: Any, database: str) -> None:
    migrate(client, database)
    load(client, database)
    assert [m["message_id"] for m in stuck(client, database, 1, NOW)] == ["generic:p5"]
    # 1.5 h: p5 (first event 1 h 50 min ago) only; 0.75 h: the current window's a4 / b2 too
    assert [m["message_id"] for m in stuck(client, database, 1.5, NOW)] == ["generic:p5"]
    assert [m["message_id"] for m in stuck(client, database, 0.75, NOW)] == [
        "generic:p5",
        "generic:a4",
        "generic:b2",
    ]
    assert [m["message_id"] for m in stuck(client, database, 0, NOW)] == [
        "generic:p5",
        "generic:a4",
        "generic:b2",
    ]
    assert stuck(client, database, 0, NOW)[0]["first_event_at"].tzinfo is UTC

    silent = silent_carriers(client, database, 3600, NOW)
    assert [(c["carrier"], c["messages"], c["attempts"]) for c in silent] == [("Ycom", 2, 1)]

    spikes = reason_spikes(client, database, 3600, NOW, by="carrier", min_count=1)
    assert [(s["carrier"], s["reason"], s["count"], s["attempts"]) for s in spikes] == [
        ("Xcell", "carrier_filtered", 1, 6),
        ("Xcell", "invalid_number", 1, 6),
    ]
    assert spikes[0]["previous_share"] == 0.0


def test_hourly_counts_each_message_once(client: Any, database: str) -> None:
    migrate(client, database)
    load(client, database)
    result = client.query(
        f"""
        SELECT carrier,
               uniqExactMerge(attempts), uniqExactMerge(delivered),
               uniqExactMerge(undelivered), uniqExactMerge(failed), uniqExactMerge(rejected),
               uniqExactMerge(unknown), uniqExactMerge(superseded),
               uniqExactMapMerge(reasons),
               quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99)(time_to_deliver)
        FROM {database}.hourly_v2
        WHERE hour >= %(start)s
        GROUP BY carrier ORDER BY carrier
        """,
        parameters={"start": (NOW - timedelta(hours=1)).replace(tzinfo=None)},
    ).result_rows
    (x, *xs), (y, *ys) = result
    assert x == "Xcell" and y == "Ycom"
    assert xs[:7] == [6, 4, 1, 1, 1, 1, 2]
    assert dict(xs[7]) == {
        "unreachable": 1,
        "invalid_number": 1,
        "unknown": 1,
        "carrier_filtered": 1,
    }
    assert 4.0 <= xs[8][0] <= 30.0
    assert ys[:7] == [1, 0, 1, 0, 0, 0, 0]

    # the dashboards' rollup (queries/hourly_rollup.sql) reads exactly these states
    rollup = hourly_rollup(client, database, "carrier", 7200, NOW)
    assert [(r["carrier"], r["attempts"], r["delivered"]) for r in rollup] == [
        ("Xcell", 4, 4),  # previous hour: p1..p4
        ("Xcell", 6, 4),
        ("Ycom", 1, 0),
    ]
    assert rollup[0]["hour"] == NOW - timedelta(hours=2)
    assert rollup[0]["ttd_p50_s"] == pytest.approx(8.0)
    assert rollup[1]["failure_reasons"] == dict(xs[7])  # superseded unreachable / unknown too


def test_hourly_trend_is_exact(client: Any, database: str) -> None:
    """`hourly()` (what `dlr report --report hourly` prints) reads the per-message snapshot:
    every message once, in its final state, in the hour of its first event; summed over the
    hours, the same numbers as `report()` for the window.
    """
    migrate(client, database)
    load(client, database)
    trend = hourly(client, database, "carrier", 7200, NOW)
    got = [
        (
            r["hour"],
            r["carrier"],
            r["messages"],
            r["attempts"],
            r["delivered"],
            r["undelivered"],
            r["failed"],
            r["rejected"],
            r["unknown"],
            r["failure_reasons"],
            r["ttd_samples"],
        )
        for r in trend
    ]
    assert got == [
        # p1..p4 delivered in 8 s, p5 still sent
        (NOW - timedelta(hours=2), "Xcell", 5, 4, 4, 0, 0, 0, 0, {}, 4),
        # a1 a2 a6 a7 delivered (a2 after undelivered: counted once, delivered), a3 failed,
        # a5 rejected (after unknown: not unknown any more), a4 still sent
        (
            NOW - timedelta(hours=1),
            "Xcell",
            7,
            6,
            4,
            0,
            1,
            1,
            0,
            {"carrier_filtered": 1, "invalid_number": 1},
            3,
        ),
        (NOW - timedelta(hours=1), "Ycom", 2, 1, 0, 1, 0, 0, 0, {"unreachable": 1}, 0),
    ]
    assert trend[0]["hour"].tzinfo is UTC
    assert trend[0]["ttd_p50_s"] == pytest.approx(8.0)
    assert trend[0]["delivery_rate"] == 1.0
    # delivered with an earlier report: 4, 10, 30 s (linear interpolation, as report())
    assert trend[1]["ttd_p50_s"] == pytest.approx(10.0)
    assert trend[1]["ttd_p95_s"] == pytest.approx(28.0)
    assert trend[1]["delivery_rate"] == pytest.approx(4 / 6)
    assert trend[2]["ttd_p50_s"] is None and trend[2]["ttd_p99_s"] is None

    whole = {r["carrier"]: r for r in report(client, database, "carrier", 7200, NOW)}
    for carrier, row in whole.items():
        hours = [r for r in trend if r["carrier"] == carrier]
        assert sum(r["messages"] for r in hours) == row["messages"]
        assert sum(r["attempts"] for r in hours) == row["attempts"]
        assert sum(r["delivered"] for r in hours) == row["delivered"]
        reasons: dict[str, int] = {}
        for r in hours:
            for reason, count in r["failure_reasons"].items():
                reasons[reason] = reasons.get(reason, 0) + count
        assert reasons == row["failure_reasons"]
    # one hour: only the current one (first events from NOW - 59 min on)
    assert [
        (r["carrier"], r["attempts"]) for r in hourly(client, database, "carrier", 3600, NOW)
    ] == [
        ("Xcell", 6),
        ("Ycom", 1),
    ]


def test_phone_numbers_follow_the_pii_mode(client: Any, database: str) -> None:
    migrate(client, database)
    event = events_of(MESSAGES[0])[0]
    insert(client, database, [replace(event, event_id="h" * 32)], "hash")
    insert(client, database, [replace(event, event_id="m" * 32)], "mask")
    insert(client, database, [replace(event, event_id="c" * 32)], "clear")
    got = {
        r[0][0]: r[1:]
        for r in client.query(
            f"SELECT event_id, pii_mode, recipient, recipient_clear FROM {database}.events FINAL"
        ).result_rows
    }
    digest = number_hash("+14155550100", SALT)
    assert got == {
        "h": ("hash", digest, None),
        "m": ("mask", "*********00", None),
        "c": ("clear", digest, "+14155550100"),
    }


# -- persistence: stop, start again on the same data dir ---------------------------------------


def test_restart_keeps_the_data(server: Settings, database: str) -> None:
    client: Any = connect(server)
    migrate(client, database)
    distinct = load(client, database)
    before = report(client, database, "carrier", 3600, NOW)
    old_pid = read_pid(launcher.pid_file(server))
    assert old_pid is not None

    assert launcher.stop(server)
    assert not pid_alive(old_pid)
    assert not launcher.status(server)
    assert not launcher.pid_file(server).exists()
    assert not port_open("127.0.0.1", server.clickhouse_http_port)

    new_pid = launcher.start(server)
    assert new_pid != old_pid and pid_alive(new_pid)
    client = connect(server)
    assert int(client.command(f"SELECT count() FROM {database}.events FINAL")) == distinct
    assert status_rows(client, database) == EXPECTED
    assert report(client, database, "carrier", 3600, NOW) == before
    assert migrate(client, database) == []


def test_data_lives_under_the_configured_dir(server: Settings) -> None:
    assert launcher.data_dir(server) == Path(server.data_dir).resolve() / "clickhouse" / "data"
    assert any(launcher.data_dir(server).iterdir())
