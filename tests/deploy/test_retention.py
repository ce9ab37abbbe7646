"""Retention as the broker and the server apply it: every dlr.* topic's effective configs
and every ClickHouse table's TTLs, read back from the real broker and server."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from deploy.settings import Settings
from deploy.topics import SEGMENT_MS_MAX, Configs, describe_configs, sync_topics, topic_specs
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrate import migrate
from tests.polling import wait_for

pytestmark = pytest.mark.integration

HOUR_MS = 3_600_000


def _settings(bootstrap: str, unique: str, **changes: Any) -> Settings:
    names: dict[str, Any] = {
        f"{topic}_topic": f"{topic}.{unique}"
        for topic in (
            "raw",
            "status",
            "deadletter",
            "actions",
            "suppressions",
            "sends",
            "refused",
            "alerts",
        )
    }
    names["actions_deadletter_topic"] = f"actions-dead.{unique}"
    return Settings.model_validate(
        {"kafka_bootstrap": bootstrap, "topic_partitions": 2, **names, **changes}
    )


async def _effective(settings: Settings, topics: list[str] | None) -> Configs:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        names = topics or [t.name for t in topic_specs(settings)]
        return await describe_configs(admin, names)
    finally:
        await admin.close()


def effective(settings: Settings, topics: list[str] | None = None) -> Configs:
    """The configs the broker reports for these topics (default: all of the settings')."""
    return asyncio.run(_effective(settings, topics))


def applied(settings: Settings, topic: str, name: str, value: str) -> dict[str, Any]:
    """The topic's configs once the broker reports `name` set on it to `value` (a change
    reaches every broker's view shortly after the alteration was acknowledged)."""
    configs: dict[str, Any] = wait_for(
        lambda: effective(settings, [topic])[topic],
        lambda got: got[name] == (value, True),
        timeout=15,
        what=f"{topic} {name}={value}",
    )
    return configs


def test_every_topic_gets_an_explicit_retention_or_compaction(kafka_bootstrap: str) -> None:
    settings = _settings(
        kafka_bootstrap, uuid.uuid4().hex[:10], raw_retention_hours=3, deadletter_retention_hours=50
    )
    done = asyncio.run(sync_topics(settings))
    assert sorted(done.created) == sorted(t.name for t in topic_specs(settings))
    got = effective(settings)
    for name, configs in got.items():
        policy, own = configs["cleanup.policy"]
        assert own, f"{name}: cleanup.policy is the broker default, not set on the topic"
        if policy == "delete":
            assert configs["retention.ms"][1], f"{name}: retention.ms not set on the topic"
            retention = int(str(configs["retention.ms"][0]))
            assert int(str(configs["segment.ms"][0])) == min(retention, SEGMENT_MS_MAX)
        else:
            assert policy == "compact", name
    assert got[settings.raw_topic]["retention.ms"][0] == str(3 * HOUR_MS)
    assert got[settings.status_topic]["retention.ms"][0] == str(168 * HOUR_MS)
    assert got[settings.deadletter_topic]["retention.ms"][0] == str(50 * HOUR_MS)
    assert got[settings.actions_deadletter_topic]["retention.ms"][0] == str(50 * HOUR_MS)
    assert got[settings.refused_topic]["retention.ms"][0] == str(24 * HOUR_MS)  # a day
    suppressions = got[settings.suppressions_topic]
    assert suppressions["max.compaction.lag.ms"][0] == str(24 * HOUR_MS)
    assert suppressions["message.timestamp.type"][0] == "LogAppendTime"
    assert asyncio.run(sync_topics(settings)).altered == {}  # idempotent


async def _create_bare(settings: Settings) -> None:
    """Topics as an older version made them (compaction only, no retention), and a config
    an operator set by hand."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(settings.raw_topic, 2, 1),
                NewTopic(
                    settings.suppressions_topic, 2, 1, topic_configs={"cleanup.policy": "compact"}
                ),
            ]
        )
        await admin.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC, settings.raw_topic, {"max.message.bytes": "2097152"}
                )
            ]
        )
    finally:
        await admin.close()


def test_existing_topics_get_the_settings_and_keep_an_operators_configs(
    kafka_bootstrap: str,
) -> None:
    settings = _settings(kafka_bootstrap, uuid.uuid4().hex[:10])
    asyncio.run(_create_bare(settings))
    applied(settings, settings.raw_topic, "max.message.bytes", "2097152")  # the operator's, seen
    done = asyncio.run(sync_topics(settings))
    assert settings.raw_topic not in done.created
    # the broker's default retention happens to be 7 days too: set on the topic all the same
    assert done.altered[settings.raw_topic]["retention.ms"] == (None, str(168 * HOUR_MS))
    assert done.altered[settings.suppressions_topic]["max.compaction.lag.ms"] == (
        None,
        str(24 * HOUR_MS),
    )
    assert "cleanup.policy" not in done.altered[settings.suppressions_topic]  # was set already
    raw = applied(settings, settings.raw_topic, "retention.ms", str(168 * HOUR_MS))
    assert raw["max.message.bytes"] == ("2097152", True)  # the operator's value survived
    assert effective(settings)[settings.suppressions_topic]["max.compaction.lag.ms"][1]

    shorter = settings.model_copy(update={"raw_retention_hours": 3})
    changed = asyncio.run(sync_topics(shorter)).altered
    assert changed == {
        settings.raw_topic: {
            "retention.ms": (str(168 * HOUR_MS), str(3 * HOUR_MS)),
            "segment.ms": (str(SEGMENT_MS_MAX), str(3 * HOUR_MS)),
        }
    }
    raw = applied(shorter, settings.raw_topic, "retention.ms", str(3 * HOUR_MS))
    assert raw["max.message.bytes"] == ("2097152", True)


#: The table's TTL: after ENGINE = ..., up to SETTINGS or the end.
_ROW_TTL = re.compile(r"\) ENGINE = .*? TTL (.+?)(?: SETTINGS |$)", re.S)


def _column_ttl(query: str, column: str) -> str:
    match = re.search(rf"`{column}` [^,]*? TTL ([^,]+)", query)
    assert match is not None, f"{column} has no TTL"
    return match.group(1)


def test_clickhouse_tables_expire_rows_as_the_settings_say(clickhouse_url: str) -> None:
    settings = Settings(clickhouse_url=clickhouse_url)
    database = f"ttl_{uuid.uuid4().hex[:10]}"
    client: Any = connect(settings)
    try:
        migrate(client, database, retention_days=7, clear_pii_days=2, audit_retention_days=100)
        created = dict(
            client.query(
                "SELECT name, create_table_query FROM system.tables WHERE database = {db:String}",
                parameters={"db": database},
            ).result_rows
        )
        row_ttls = {
            name: match.group(1)
            for name, query in created.items()
            if (match := _ROW_TTL.search(query)) is not None
        }
        for table in ("events", "messages", "sends", "message_parts", "client_refs"):
            assert "toIntervalDay(7)" in row_ttls[table], (table, row_ttls.get(table))
        assert "toIntervalDay(100)" in row_ttls["erasure_audit"]
        for table in ("events", "sends"):
            for column in ("recipient_clear", "sender_clear"):
                assert _column_ttl(created[table], column).endswith("toIntervalDay(2)"), table
    finally:
        client.command(f"DROP DATABASE IF EXISTS {database}")
        client.close()
