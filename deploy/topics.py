"""The Kafka topics of the pipeline: created explicitly, their retention set and kept set.

Every `dlr.*` topic has an explicit `cleanup.policy` and retention (`topic_specs`), from
the settings; `sync_topics` creates the missing topics and alters the configs of existing
ones that differ (a retention changed in the settings reaches a running cluster the next
time `dlr topics`, `dlr up` or the worker starts). Only the keys named here are changed:
the topic's other dynamic configs (set by an operator) are read and sent back as they
were, because the broker's AlterConfigs replaces a topic's whole dynamic set (aiokafka
has no IncrementalAlterConfigs): a change someone else makes to the same topic in the
same instant may be lost.

Kafka deletes whole segments, so a record of a `delete` topic lives between its retention
and its retention plus `segment.ms` (at most `SEGMENT_MS_MAX`, six hours) plus the
broker's retention check interval (five minutes by default).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from deploy.settings import Settings

__all__ = [
    "SEGMENT_MS_MAX",
    "TopicSync",
    "describe_configs",
    "ensure_topics",
    "sync_topics",
    "topic_configs",
    "topic_specs",
]

_HOUR_MS = 3_600_000
#: Longest `segment.ms`: how much longer than its retention a record may stay.
SEGMENT_MS_MAX = 6 * _HOUR_MS
#: Tombstones of the compacted topic stay this long, so every reader sees the deletion.
_TOMBSTONE_MS = 24 * _HOUR_MS
#: DescribeConfigs `config_source` of a value set on the topic itself.
_DYNAMIC_TOPIC_CONFIG = 1
#: Kafka error codes: a topic that exists (CreateTopics), one the broker does not know.
_TOPIC_ALREADY_EXISTS = 36
_UNKNOWN_TOPIC = 3


def _delete_after(hours: int) -> dict[str, str]:
    retention = hours * _HOUR_MS
    return {
        "cleanup.policy": "delete",
        "retention.ms": str(retention),
        "segment.ms": str(min(retention, SEGMENT_MS_MAX)),
    }


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """topic name -> the configs the project sets on it.

    - `dlr.raw.v1` keeps raw requests (clear numbers) `DLR_RAW_RETENTION_HOURS`;
    - canonical events, actions and registrations `DLR_TOPIC_RETENTION_HOURS`;
    - dead letters (the worker's and `dlr dispatch`'s) `DLR_DEADLETTER_RETENTION_HOURS`;
    - every topic: `min.insync.replicas` and no unclean leader election (durability);
    - suppressions are compacted (the latest record per number is the list, forever);
      a replaced record is compacted away within `DLR_SUPPRESSIONS_COMPACTION_LAG_HOURS`
      (`max.compaction.lag.ms`, which also rolls the active segment), tombstones stay a
      day; the broker stamps the append time, so an export by time is exact;
    - alerts are compacted: the latest record per fingerprint is what `dlr alerts`
      rebuilds its state from (no phone numbers in them: rule, labels, values);
    - refused requests (`DLR_CAPTURE_REFUSED`, a debugging aid the ingress writes
      fire-and-forget) `DLR_REFUSED_RETENTION_HOURS`, a day.
    """
    lag = settings.suppressions_compaction_lag_hours * _HOUR_MS
    durable = settings.topic_durability_configs
    return {
        settings.raw_topic: durable | _delete_after(settings.raw_retention_hours),
        settings.status_topic: durable | _delete_after(settings.topic_retention_hours),
        settings.deadletter_topic: durable | _delete_after(settings.deadletter_retention_hours),
        settings.actions_topic: durable | _delete_after(settings.topic_retention_hours),
        settings.actions_deadletter_topic: durable
        | _delete_after(settings.deadletter_retention_hours),
        settings.sends_topic: durable | _delete_after(settings.topic_retention_hours),
        settings.suppressions_topic: durable
        | {
            "cleanup.policy": "compact",
            "min.cleanable.dirty.ratio": "0.1",
            "max.compaction.lag.ms": str(lag),
            "delete.retention.ms": str(_TOMBSTONE_MS),
            "message.timestamp.type": "LogAppendTime",
        },
        settings.alerts_topic: durable
        | {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1"},
        settings.refused_topic: durable | _delete_after(settings.refused_retention_hours),
    }


def topic_specs(settings: Settings) -> list[NewTopic]:
    """Every dlr.* topic with its partition count and config.

    All keyed topics share one partition count so that the stream worker's tables are
    co-partitioned with `dlr.raw.v1` (and `dlr.sends.v1`, which the same agent joins in).
    Every topic gets the replication factor and `min.insync.replicas` of the settings,
    and unclean leader election off (`CommonSettings.topic_durability_configs`).
    """
    n, rf = settings.topic_partitions, settings.topic_replication_factor
    return [
        NewTopic(name, n, rf, topic_configs=configs)
        for name, configs in topic_configs(settings).items()
    ]


@dataclass(frozen=True, slots=True)
class TopicSync:
    """What `sync_topics` did."""

    created: list[str] = field(default_factory=list)
    #: topic -> {config: (before, after)} of the existing topics it altered (before: the
    #: value set on the topic, None when it followed the broker's default).
    altered: dict[str, dict[str, tuple[str | None, str]]] = field(default_factory=dict)


#: topic -> config -> (value, set on the topic itself rather than inherited)
Configs = dict[str, dict[str, tuple[str | None, bool]]]


async def describe_configs(
    admin: AIOKafkaAdminClient, topics: list[str], wait_s: float = 10.0
) -> Configs:
    """Every config of these topics as the broker reports it. A topic created a moment
    ago may be unknown to the broker that answers for a little while: asked again until
    `wait_s` has passed."""
    if not topics:
        return {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        try:
            return await _describe(admin, topics)
        except _UnknownYet:
            if loop.time() >= deadline:
                raise
            await asyncio.sleep(0.2)


class _UnknownYet(RuntimeError):
    """The broker does not know a topic (yet)."""


async def _describe(admin: AIOKafkaAdminClient, topics: list[str]) -> Configs:
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in topics]
    out: Configs = {}
    for response in await admin.describe_configs(resources):
        version = response.API_VERSION
        for resource in response.resources:
            error_code, _message, _type, name, entries = resource[:5]
            if error_code == _UNKNOWN_TOPIC:
                raise _UnknownYet(f"describe configs of {name}: unknown topic")
            if error_code:
                raise RuntimeError(f"describe configs of {name}: Kafka error {error_code}")
            configs: dict[str, tuple[str | None, bool]] = {}
            for entry in entries:
                # v0: (name, value, read_only, is_default, sensitive); v1+: (name, value,
                # read_only, config_source, sensitive, synonyms)
                own = (not entry[3]) if version == 0 else entry[3] == _DYNAMIC_TOPIC_CONFIG
                configs[entry[0]] = (entry[1], bool(own))
            out[name] = configs
    return out


async def topic_names(bootstrap: str) -> set[str]:
    """Every topic the cluster has."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def sync_topics(settings: Settings) -> TopicSync:
    """Create the missing topics; set the project's configs on the existing ones."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        specs = topic_specs(settings)
        missing = [t for t in specs if t.name not in existing]
        created: list[str] = []
        if missing:
            response = await admin.create_topics(missing)
            for name, error_code, *_ in response.topic_errors:
                if error_code == 0:
                    created.append(name)
                elif error_code == _TOPIC_ALREADY_EXISTS:  # metadata was behind, or a race
                    existing.add(name)
                else:
                    raise RuntimeError(f"create topic {name}: Kafka error {error_code}")
        wanted = {t.name: t.topic_configs for t in specs if t.name in existing}
        current = await describe_configs(admin, sorted(wanted))
        altered: dict[str, dict[str, tuple[str | None, str]]] = {}
        changes = []
        for name, configs in wanted.items():
            have = current.get(name, {})
            # a value counts only when set on the topic: a broker default may change later
            own = {k: value for k, (value, mine) in have.items() if mine and value is not None}
            diff = {k: (own.get(k), v) for k, v in configs.items() if own.get(k) != v}
            if not diff:
                continue
            changes.append(ConfigResource(ConfigResourceType.TOPIC, name, {**own, **configs}))
            altered[name] = diff
        if changes:
            for response in await admin.alter_configs(changes):
                for resource in response.resources:
                    if resource[0]:
                        raise RuntimeError(
                            f"alter configs of {resource[3]}: Kafka error {resource[0]} "
                            f"{resource[1]}"
                        )
        return TopicSync(created, altered)
    finally:
        await admin.close()


async def ensure_topics(settings: Settings) -> list[str]:
    """Create the missing topics and set the configs of existing ones; returns the names
    created (`sync_topics` says what was altered too)."""
    return (await sync_topics(settings)).created
