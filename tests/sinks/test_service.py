"""The sink's batch loop, with a scripted consumer and writer: one insert in flight at most,
offsets committed in order after their insert, a failed insert surfacing at once.

(The loop against the real broker and ClickHouse: tests/integration/test_sink_*.py.)
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord, TopicPartition

from deploy.settings import Settings
from sinks.service import Sink

TOPIC = "status"


def record(partition: int, offset: int) -> ConsumerRecord[bytes, bytes]:
    value = orjson.dumps({"event_id": f"p{partition}-{offset}"})
    return ConsumerRecord(TOPIC, partition, offset, 0, 0, b"k", value, None, 1, len(value), ())


class ScriptedConsumer:
    """Hands out the given fetches, then nothing; records every commit."""

    def __init__(self, fetches: list[dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]]):
        self.fetches = fetches
        self.commits: list[dict[TopicPartition, int]] = []
        self.log: list[str] = []

    async def getmany(
        self, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        if self.fetches:
            return self.fetches.pop(0)
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))
        self.log.append(f"commit {sorted(offsets.values())}")

    def assignment(self) -> set[TopicPartition]:
        return set()

    def highwater(self, tp: TopicPartition) -> int | None:
        return None


class SlowWriter:
    """Takes 50 ms per batch (the server's share of an insert); counts overlapping calls."""

    def __init__(self, log: list[str], fail_on: int | None = None) -> None:
        self.log = log
        self.fail_on = fail_on
        self.calls = 0
        self.active = 0
        self.most_active = 0
        self.lock = threading.Lock()

    def write(self, records: Sequence[Mapping[str, Any]]) -> int:
        with self.lock:
            self.calls += 1
            self.active += 1
            self.most_active = max(self.most_active, self.active)
            call = self.calls
        try:
            time.sleep(0.05)
            if call == self.fail_on:
                raise RuntimeError("the insert blew up")
            self.log.append(f"write {[r['event_id'] for r in records]}")
            return len(records)
        finally:
            with self.lock:
                self.active -= 1


def sink(consumer: ScriptedConsumer, writer: SlowWriter) -> Sink:
    s = Sink(Settings(sink_batch_rows=2, sink_batch_ms=10_000))
    s.writer = writer  # type: ignore[assignment]
    return s


def fetches(count: int) -> list[dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]]:
    """`count` fetches of two records each (one batch each), alternating partitions."""
    return [
        {TopicPartition(TOPIC, i % 2): [record(i % 2, 2 * i), record(i % 2, 2 * i + 1)]}
        for i in range(count)
    ]


def test_batches_are_inserted_one_at_a_time_and_committed_in_order() -> None:
    consumer = ScriptedConsumer(fetches(5))
    writer = SlowWriter(consumer.log)
    s = sink(consumer, writer)

    async def run() -> None:
        loop = asyncio.create_task(s._loop(consumer))
        try:
            async with asyncio.timeout(10):  # a regression fails here instead of hanging
                while len(consumer.commits) < 5:
                    assert not loop.done(), "the loop ended before committing five batches"
                    await asyncio.sleep(0.01)
        finally:
            s.stop()
            await asyncio.wait_for(loop, 5)

    asyncio.run(run())
    assert writer.most_active == 1
    assert consumer.commits == [{TopicPartition(TOPIC, i % 2): 2 * i + 2} for i in range(5)]
    # every batch is written before its offsets are committed, and in fetch order
    assert consumer.log == [
        line
        for i in range(5)
        for line in (f"write ['p{i % 2}-{2 * i}', 'p{i % 2}-{2 * i + 1}']", f"commit [{2 * i + 2}]")
    ]


def test_a_failed_insert_stops_the_loop_even_when_nothing_more_arrives() -> None:
    consumer = ScriptedConsumer(fetches(1))
    writer = SlowWriter(consumer.log, fail_on=1)
    s = sink(consumer, writer)

    async def run() -> None:
        await asyncio.wait_for(s._loop(consumer), 3)

    with pytest.raises(RuntimeError, match="blew up"):
        asyncio.run(run())
    assert consumer.commits == []
