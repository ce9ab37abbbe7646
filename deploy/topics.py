"""The Kafka topics of the pipeline, created explicitly (partitions, compaction), idempotently."""

from __future__ import annotations

import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from deploy.settings import Settings


def topic_specs(settings: Settings) -> list[NewTopic]:
    """Every dlr.* topic with its partition count and config.

    All keyed topics share one partition count so that the stream worker's tables are
    co-partitioned with `dlr.raw.v1` (and `dlr.sends.v1`, which the same agent joins in).
    Suppressions are compacted: latest entry per recipient. Every topic gets the replication
    factor and `min.insync.replicas` of the settings, and unclean leader election off
    (`CommonSettings.topic_durability_configs`).
    """
    n, rf = settings.topic_partitions, settings.topic_replication_factor
    durable = settings.topic_durability_configs
    return [
        NewTopic(settings.raw_topic, n, rf, topic_configs=dict(durable)),
        NewTopic(settings.status_topic, n, rf, topic_configs=dict(durable)),
        NewTopic(settings.deadletter_topic, n, rf, topic_configs=dict(durable)),
        NewTopic(settings.actions_topic, n, rf, topic_configs=dict(durable)),
        NewTopic(settings.sends_topic, n, rf, topic_configs=dict(durable)),
        NewTopic(settings.actions_deadletter_topic, n, rf, topic_configs=dict(durable)),
        NewTopic(
            settings.suppressions_topic,
            n,
            rf,
            topic_configs={
                **durable,
                "cleanup.policy": "compact",
                "min.cleanable.dirty.ratio": "0.1",
            },
        ),
    ]


async def ensure_topics(settings: Settings) -> list[str]:
    """Create the missing topics; returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topic_specs(settings) if t.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
        return [t.name for t in missing]
    finally:
        await admin.close()
