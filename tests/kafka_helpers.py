"""Small helpers for tests that read what really landed in Kafka."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from deploy.settings import Settings
from deploy.topics import ensure_topics, topic_specs


class StuckConsumer(AIOKafkaConsumer):  # type: ignore[misc]  # aiokafka ships no types
    """aiokafka's consumer, except that `stop()` closes and then never returns (as aiokafka's
    once did in CI): shutdown code must stop without it."""

    async def stop(self) -> None:
        await super().stop()
        await asyncio.Event().wait()


def create_topics(settings: Settings, timeout: float = 60.0) -> None:
    """Create the settings' topics on the test broker and wait until each partition has a
    leader: a produce right after creation otherwise meets NotLeaderForPartition (seen
    lasting over 5 s on a loaded machine)."""
    asyncio.run(ensure_topics(settings))
    names = [spec.name for spec in topic_specs(settings)]
    asyncio.run(_wait_for_leaders(settings.bootstrap, names, timeout))


async def _wait_for_leaders(bootstrap: str, topics: list[str], timeout: float) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            described = await admin.describe_topics(topics)
            leaderless = [
                f"{topic.get('topic', topic.get('name'))}/{part.get('partition', '?')}"
                for topic in described
                for part in (topic.get("partitions") or [{}])
                if topic.get("error_code") or part.get("leader", part.get("leader_id", -1)) < 0
            ]
            if not leaderless:
                return
            if loop.time() >= deadline:
                raise AssertionError(
                    f"partitions without a leader after {timeout:g} s: {leaderless}"
                )
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of `topic`, for a consumer that does not subscribe to it."""
    cluster = await consumer._client.fetch_all_metadata()
    tps = [TopicPartition(topic, p) for p in sorted(cluster.partitions_for_topic(topic) or ())]
    assert tps, f"no partitions for {topic}"
    return tps


async def _read(
    bootstrap: str, topic: str, expect: int | None, timeout: float
) -> list[ConsumerRecord[bytes, bytes]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    out: list[ConsumerRecord[bytes, bytes]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        idle_rounds = 0
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            got = [r for records in batch.values() for r in records]
            out.extend(got)
            if expect is not None and len(out) >= expect:
                # read a little longer to catch anything unexpected beyond `expect`
                idle_rounds += 1
                if idle_rounds >= 2:
                    break
            elif expect is None and not got:
                idle_rounds += 1
                if idle_rounds >= 3:
                    break
    finally:
        await consumer.stop()
    return out


def read_all(
    bootstrap: str, topic: str, expect: int | None = None, timeout: float = 10.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record currently in a topic (waits for `expect` records when given)."""
    return asyncio.run(_read(bootstrap, topic, expect, timeout))


async def _end_offsets_total(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, topic)
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


def records_in(bootstrap: str, topic: str) -> int:
    """How many records a topic holds (the sum of its partitions' end offsets)."""
    return asyncio.run(_end_offsets_total(bootstrap, topic))


async def _uncommitted(bootstrap: str, group: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, topic)
        ends = await consumer.end_offsets(tps)
        behind = 0
        for tp in tps:
            behind += ends[tp] - (await consumer.committed(tp) or 0)
        return behind
    finally:
        await consumer.stop()


def uncommitted(bootstrap: str, group: str, topic: str) -> int:
    """Records of `topic` beyond the consumer group's committed offsets."""
    return asyncio.run(_uncommitted(bootstrap, group, topic))
