"""ddl/0010 on a database that already holds messages: the events stored before it give
their price, currency, segments and sender to message_status and the snapshot (the
migration aggregates them again), nothing is counted twice, and later events keep feeding
the new columns."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from clickhouse_connect.driver.client import Client

from deploy.settings import Settings
from schemas.lifecycle import State
from sinks.clickhouse import report
from sinks.clickhouse.client import connect
from sinks.clickhouse.writer import EventWriter
from tests.integration.test_enrichment_migration import _apply
from tests.sinks.clickhouse.test_rows import sample, wire

pytestmark = pytest.mark.integration


@pytest.fixture
def client(clickhouse_url: str, unique: str) -> Iterator[tuple[Client, str]]:
    settings = Settings(clickhouse_url=clickhouse_url, clickhouse_database=f"dlr_c_{unique}")
    connection = connect(settings)
    try:
        yield connection, settings.clickhouse_database
    finally:
        connection.command(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
        connection.close()


def test_messages_stored_before_0010_get_their_cost(client: tuple[Client, str]) -> None:
    connection, db = client
    _apply(connection, db, before="0010")
    now = datetime.now(UTC).replace(microsecond=0)
    sent = sample(event_id="a1", message_id="plivo:old", provider="plivo", state=State.SENT,
                  current_state=State.SENT, previous_state=None, failure_reason=None,
                  segments=2, price=0.0134, currency="USD", sender="ACME", received_at=now,
                  emitted_at=now, provider_timestamp=now)  # fmt: skip
    # a later report without price or sender: the message keeps what it was told
    delivered = replace(sent, event_id="a2", state=State.DELIVERED,
                        current_state=State.DELIVERED, previous_state=State.SENT,
                        segments=None, price=None, currency=None, sender=None,
                        received_at=now + timedelta(seconds=4),
                        emitted_at=now + timedelta(seconds=4))  # fmt: skip
    unpriced = replace(sent, event_id="b1", message_id="twilio:old", provider="twilio",
                       segments=None, price=None, currency=None)  # fmt: skip
    writer = EventWriter(connection, db, pii_mode="hash", salt="s")
    writer.write(wire(sent, delivered, unpriced))
    report.refresh(connection, db)
    before = report.report(connection, db, "provider", 3600, now + timedelta(minutes=1))

    _apply(connection, db, before=None, since="0010")  # over the stored rows
    _apply(connection, db, before=None, since="0010")  # again: re-runnable
    status = {
        r[0]: r[1:]
        for r in connection.query(
            f"SELECT message_id, current_state, segments, price, currency, sender"
            f" FROM {db}.message_status ORDER BY message_id"
        ).result_rows
    }
    assert status == {
        "plivo:old": ("delivered", 2, 0.0134, "USD", "ACME"),
        "twilio:old": ("sent", None, None, None, "ACME"),
    }
    later = replace(sent, event_id="c1", message_id="plivo:new", price=0.02,
                    received_at=now + timedelta(seconds=9),
                    emitted_at=now + timedelta(seconds=9))  # fmt: skip
    writer.write(wire(later))
    report.refresh(connection, db)
    snapshot = {
        str(r[0]): r[1:]
        for r in connection.query(
            f"SELECT message_id, segments, price, currency, sender FROM {db}.status_snapshot"
        ).result_rows
    }
    assert snapshot == {
        "plivo:old": (2, 0.0134, "USD", "ACME"),
        "twilio:old": (None, None, None, "ACME"),
        "plivo:new": (2, 0.02, "USD", "ACME"),
    }
    after = report.report(connection, db, "provider", 3600, now + timedelta(minutes=1))
    assert [(r["provider"], r["messages"], r["delivered"]) for r in after] == [
        (r["provider"], r["messages"] + (r["provider"] == "plivo"), r["delivered"]) for r in before
    ]  # the backfill counted nothing twice
