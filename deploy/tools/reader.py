"""Reading a time range of one topic, as the tools need it (no consumer group, no commits).

`dlr capture` reads `[since, now]` of `dlr.raw.v1` and stops at the end offsets it found
on start; `dlr try` follows `dlr.status.v1` and `dlr.actions.v1` from just before it sent
until it saw what it waits for. Connecting waits out an absent broker (deploy/weather.py).
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from tqdm import tqdm

from deploy import weather
from deploy.settings import Settings


@asynccontextmanager
async def consumer(settings: Settings, label: str) -> AsyncIterator[AIOKafkaConsumer]:
    """A started consumer without a group (it commits nothing), stopped on exit."""

    async def start() -> AIOKafkaConsumer:
        client = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap,
            enable_auto_commit=False,
            request_timeout_ms=5000,
            metadata_max_age_ms=5000,
        )
        try:
            await client.start()
            await client.topics()  # forces a metadata fetch: a broker away shows here
        except BaseException:
            await client.stop()
            raise
        return client

    client = await weather.wait_for_async(
        weather.kafka_name(settings), start, patience=settings.tools_wait_s, label=label
    )
    try:
        yield client
    finally:
        await client.stop()


async def _partitions(settings: Settings, topic: str) -> list[int]:
    """The topic's partition numbers (the consumer's own metadata only knows assigned ones)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    found = [t for t in described if t.get("topic") == topic and not t.get("error_code")]
    if not found:
        raise weather.Unreachable(f"topic {topic} does not exist on {settings.bootstrap}")
    return sorted(int(p["partition"]) for p in found[0]["partitions"])


async def assign_since(
    settings: Settings, client: AIOKafkaConsumer, topics: list[str], since: float
) -> dict[TopicPartition, int]:
    """Assign every partition of `topics`, positioned at the first record at or after
    `since` (unix seconds); returns each partition's end offset as of now."""
    partitions = [
        TopicPartition(topic, p) for topic in topics for p in await _partitions(settings, topic)
    ]
    client.assign(partitions)
    found = await client.offsets_for_times({tp: int(since * 1000) for tp in partitions})
    ends: dict[TopicPartition, int] = await client.end_offsets(partitions)
    for tp in partitions:
        at = found.get(tp)
        client.seek(tp, at.offset if at is not None else ends[tp])
    return ends


async def until_end(
    client: AIOKafkaConsumer, ends: dict[TopicPartition, int], deadline: float
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """The assigned records up to `ends` (what `assign_since` found), or until `deadline`."""
    while time.monotonic() < deadline:
        positions = {tp: await client.position(tp) for tp in ends}
        if all(positions[tp] >= end for tp, end in ends.items()):
            return
        batches = await client.getmany(timeout_ms=500, max_records=2000)
        for tp, records in batches.items():
            for record in records:
                if record.offset < ends[tp]:
                    yield record


async def follow(
    client: AIOKafkaConsumer, deadline: float
) -> AsyncIterator[list[ConsumerRecord[bytes, bytes]]]:
    """Batches of new records of the assigned partitions (possibly empty) until `deadline`."""
    while time.monotonic() < deadline:
        batches = await client.getmany(timeout_ms=300, max_records=2000)
        yield [record for records in batches.values() for record in records]


async def time_range(
    settings: Settings, topic: str, since: float, label: str
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """The records of `topic` from `since` to the end offsets found on start, with a
    progress bar on stderr (`dlr capture`, `dlr replay --from-topic`)."""
    async with consumer(settings, label) as client:
        ends = await assign_since(settings, client, [topic], since)
        total = 0
        for tp, end in ends.items():
            total += end - await client.position(tp)
        deadline = time.monotonic() + max(600.0, settings.tools_wait_s)
        with tqdm(total=total, unit="rec", desc=f"[{label}]", file=sys.stderr) as bar:
            async for record in until_end(client, ends, deadline):
                bar.update(1)
                yield record
