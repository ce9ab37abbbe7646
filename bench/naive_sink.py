"""Baseline for `bench.sink`: the ClickHouse sink a team writes first.

An aiokafka consumer in a loop: `getmany()` up to `DLR_SINK_BATCH_ROWS` records, each
parsed into a `CanonicalEvent` and turned into a row by `sinks.clickhouse.rows.to_row` (the
per-event reference the real sink's column path is tested against), one
clickhouse-connect `insert()` per batch, then `commit()`. No pipelining, no dead letters,
no retries. `bench.sink` runs it over the same pre-loaded topic as `dlr sink`.

    python -m bench.naive_sink     (DLR_* settings as for `dlr sink`)
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer

from schemas.events import CanonicalEvent
from sinks.clickhouse.client import connect
from sinks.clickhouse.rows import COLUMNS, to_row
from sinks.settings import SinkSettings


async def run(settings: SinkSettings) -> None:
    """Consume, convert, insert, commit, forever."""
    client = connect(settings, settings.clickhouse_database)
    consumer = AIOKafkaConsumer(
        settings.status_topic,
        bootstrap_servers=settings.bootstrap,
        group_id=settings.sink_group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        while True:
            batch = await consumer.getmany(
                timeout_ms=settings.sink_batch_ms, max_records=settings.sink_batch_rows
            )
            records = [record for records in batch.values() for record in records]
            if not records:
                continue
            rows = [
                to_row(
                    CanonicalEvent.from_json(record.value or b""),
                    pii_mode=settings.pii_mode,
                    salt=settings.pii_salt,
                )
                for record in records
            ]
            client.insert("events", rows, column_names=list(COLUMNS))
            await consumer.commit()
    finally:
        await consumer.stop()


if __name__ == "__main__":
    asyncio.run(run(SinkSettings()))
