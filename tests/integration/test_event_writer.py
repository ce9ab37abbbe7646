"""`EventWriter` against the real ClickHouse: bad records refused before anything is
written, and no batch kept alive after its insert."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from clickhouse_connect.driver.insert import InsertContext

from deploy.settings import Settings
from schemas.lifecycle import State
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrate import migrate
from sinks.clickhouse.writer import EventWriter
from sinks.errors import SinkInvalid
from tests.sinks.clickhouse.test_rows import sample, wire

pytestmark = pytest.mark.integration


@pytest.fixture
def writer(clickhouse_url: str, unique: str) -> Iterator[EventWriter]:
    """A writer on a fresh migrated database, dropped afterwards."""
    settings = Settings(clickhouse_url=clickhouse_url, clickhouse_database=f"dlr_w_{unique}")
    client = connect(settings)
    db = settings.clickhouse_database
    try:
        migrate(client, db)
        yield EventWriter(client, db, pii_mode="hash", salt="test")
    finally:
        client.command(f"DROP DATABASE IF EXISTS {db}")
        client.close()


def count(writer: EventWriter) -> int:
    return int(writer.client.command(f"SELECT count() FROM {writer.database}.events"))


def batch(prefix: str, n: int) -> list[dict[str, Any]]:
    """n events received just now (older rows than the retention TTL are dropped on insert)."""
    now = datetime.now(UTC)
    return wire(
        *(
            sample(
                event_id=f"{prefix}-{i}",
                message_id=f"generic:{prefix}-{i}",
                state=State.SENT,
                provider_timestamp=now,
                received_at=now,
                emitted_at=now,
            )
            for i in range(n)
        )
    )


@pytest.mark.parametrize(
    "change",
    [
        {"price": "abc"},  # clickhouse-connect's encoder refuses it
        {"carrier": 5},
        {"campaign": ["a", "list"]},
        {"sequence": 2**70},
        {"state": "arrived"},  # rows.to_columns refuses it
    ],
)
@pytest.mark.parametrize("position", [0, 7])  # clickhouse-connect samples rows 0, 2, 4, ...
def test_a_bad_record_refuses_the_whole_batch_and_writes_nothing(
    writer: EventWriter, change: dict[str, Any], position: int
) -> None:
    records = batch("b", 20)
    records[position].update(change)
    with pytest.raises(SinkInvalid):
        writer.write(records)
    assert count(writer) == 0
    del records[position]
    assert writer.write(records) == 19  # the writer is usable again at once
    assert count(writer) == 19


def test_no_batch_stays_alive_after_its_insert(writer: EventWriter) -> None:
    """Each batch must be freed by reference counting: the sink's GC tuning means a batch
    caught in a reference cycle would stay until a full collection that never comes."""
    gc.collect()
    gc.disable()
    try:
        for n in range(6):
            writer.write(batch(f"g{n}", 50))
        contexts = [o for o in gc.get_objects() if isinstance(o, InsertContext)]
    finally:
        gc.enable()
    assert len(contexts) <= 1, f"{len(contexts)} insert contexts (and their batches) alive"
    assert count(writer) == 300
