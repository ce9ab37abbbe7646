"""ddl/0007 (and 0009, the snapshot) on a database that already holds messages: old rows
keep working, new events of the same messages carry the enrichment into message_status and
the snapshot."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from clickhouse_connect.driver.client import Client

from deploy.settings import Settings
from schemas.lifecycle import State
from sinks.clickhouse import migrate, report, rows
from sinks.clickhouse.client import connect
from sinks.clickhouse.writer import EventWriter
from tests.sinks.clickhouse.test_rows import sample, wire

pytestmark = pytest.mark.integration

NEW = ("carrier_source", "line_type", "area")


@pytest.fixture
def client(clickhouse_url: str, unique: str) -> Iterator[tuple[Client, str]]:
    settings = Settings(clickhouse_url=clickhouse_url, clickhouse_database=f"dlr_e_{unique}")
    connection = connect(settings)
    try:
        yield connection, settings.clickhouse_database
    finally:
        connection.command(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
        connection.close()


def _apply(connection: Client, db: str, before: str | None, since: str = "") -> None:
    """Apply the DDL files named in [since, before) (to the end when None), as `migrate`
    would."""
    values = {
        "db": db,
        "retention_days": "180",
        "clear_pii_days": "30",
        "audit_retention_days": "2190",
    }
    connection.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    for name, text in migrate.ddl_files():
        if name >= since and (before is None or name < before):
            for statement in migrate.statements(migrate.render(text, values)):
                connection.command(statement)


def test_messages_stored_before_0007_keep_working(client: tuple[Client, str]) -> None:
    connection, db = client
    _apply(connection, db, before="0007")
    now = datetime.now(UTC).replace(microsecond=0)
    old = [
        sample(event_id="a1", message_id="generic:old", state=State.SENT, current_state=State.SENT,
               previous_state=None, failure_reason=None, received_at=now, emitted_at=now,
               provider_timestamp=now),
        sample(event_id="b1", message_id="generic:both", state=State.SENT,
               current_state=State.SENT, previous_state=None, failure_reason=None,
               received_at=now, emitted_at=now, provider_timestamp=now),
    ]  # fmt: skip
    existing = {
        str(r[0])
        for r in connection.query(
            f"SELECT name FROM system.columns WHERE database = '{db}' AND table = 'events'"
        ).result_rows
    }
    assert not existing & set(NEW)
    columns = [c for c in rows.COLUMNS if c in existing]
    data = rows.to_columns(wire(*old), pii_mode="hash", salt="s")
    kept = [col for name, col in zip(rows.COLUMNS, data, strict=True) if name in existing]
    connection.insert("events", list(zip(*kept, strict=True)), database=db, column_names=columns)

    _apply(connection, db, before=None, since="0007")  # over the stored rows
    _apply(connection, db, before=None, since="0007")  # again: re-runnable
    later = now + timedelta(seconds=5)
    delivered = replace(
        old[1],
        event_id="b2",
        state=State.DELIVERED,
        current_state=State.DELIVERED,
        previous_state=State.SENT,
        failure_reason=None,
        carrier="O2 (UK)",
        carrier_source="mcc_mnc",
        line_type="mobile",
        area=None,
        received_at=later,
        emitted_at=later,
        provider_timestamp=later,
    )
    EventWriter(connection, db, pii_mode="hash", salt="s").write(wire(delivered))

    status = {
        r[0]: r[1:]
        for r in connection.query(
            f"SELECT message_id, current_state, carrier, carrier_source, line_type, area,"
            f" time_to_deliver_s FROM {db}.message_status ORDER BY message_id"
        ).result_rows
    }
    assert status["generic:old"] == ("sent", "Xcell", None, None, None, None)
    assert status["generic:both"] == ("delivered", "O2 (UK)", "mcc_mnc", "mobile", None, 5.0)
    views = connection.query(
        f"SELECT name FROM system.tables WHERE database = '{db}' AND name LIKE 'messages_mv%'"
    ).result_rows
    assert views == [("messages_mv_v3",)]  # one view (ddl/0010's): nothing is fed twice

    report.refresh(connection, db)
    query = f"SELECT message_id, carrier_source FROM {db}.status_snapshot"
    snapshot = {str(r[0]): r[1] for r in connection.query(query).result_rows}
    assert snapshot == {"generic:old": None, "generic:both": "mcc_mnc"}
