"""`dlr alerts` stops in bounded time even when the alert history's Kafka consumer never
closes (aiokafka's consumer `stop()` once never returned in the API and hung a shutdown in
CI): real broker, real ClickHouse."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import clickhouse_connect
import pytest
from aiokafka import AIOKafkaConsumer

from deploy.settings import Settings
from sinks.alerts import service
from sinks.alerts.service import AlertService
from sinks.alerts.settings import AlertSettings
from tests.kafka_helpers import StuckConsumer, create_topics

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(
    kafka_bootstrap: str, clickhouse_url: str, unique: str, tmp_path: Path
) -> Iterator[AlertSettings]:
    database = f"alerts_stop_{unique}"
    client = clickhouse_connect.get_client(dsn=clickhouse_url)
    client.command(f"CREATE DATABASE {database}")
    # The history task starts its consumer once a table `alerts` exists; its columns do not
    # matter here, as nothing is recorded.
    client.command(f"CREATE TABLE {database}.alerts (id String) ENGINE = Memory")
    s = AlertSettings(
        kafka_bootstrap=kafka_bootstrap,
        clickhouse_url=clickhouse_url,
        clickhouse_database=database,
        alerts_topic=f"alerts.{unique}",
        alert_group=f"alerts-{unique}",
        alert_interval_s=3600,
        data_dir=tmp_path,
    )
    create_topics(Settings(kafka_bootstrap=kafka_bootstrap, alerts_topic=s.alerts_topic))
    yield s
    client.command(f"DROP DATABASE IF EXISTS {database}")


async def _run_then_stop(
    settings: AlertSettings, started: list[AIOKafkaConsumer], timeout_s: float
) -> float:
    """Run the service until its history consumer is up, stop it; the seconds stop took."""
    alerts = AlertService(settings)
    alerts.stop_timeout_s = timeout_s
    run = asyncio.create_task(alerts.run())
    await asyncio.wait_for(alerts.ready.wait(), 60)
    deadline = time.monotonic() + 60

    def consuming() -> bool:  # started and in its group: stop() now runs in a `finally`
        return bool(started) and bool(started[0].assignment())

    while not consuming() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert consuming(), "the history task never started its consumer"
    alerts.stop()
    began = time.monotonic()
    # Without the bound, the stuck consumer makes this wait forever.
    await asyncio.wait_for(run, timeout_s + 30)
    return time.monotonic() - began


def _consumers(
    monkeypatch: pytest.MonkeyPatch, kind: type[AIOKafkaConsumer]
) -> list[AIOKafkaConsumer]:
    """The history consumers the service makes, of this kind, as they are made."""
    made: list[AIOKafkaConsumer] = []
    original = service._history_consumer

    def make(s: AlertSettings) -> AIOKafkaConsumer:
        consumer = original(s, kind)
        made.append(consumer)
        return consumer

    monkeypatch.setattr(service, "_history_consumer", make)
    return made


def test_stop_abandons_a_history_consumer_that_never_closes(
    settings: AlertSettings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    started = _consumers(monkeypatch, StuckConsumer)
    with caplog.at_level(logging.WARNING, logger="dlr.alerts"):
        took = asyncio.run(_run_then_stop(settings, started, 1.0))
    [warning] = [r for r in caplog.records if "did not stop in time" in r.getMessage()]
    assert warning.__dict__["tasks"] == ["alert history"]  # the one stuck, named
    assert took < 15


def test_stop_with_a_consumer_that_closes_says_nothing(
    settings: AlertSettings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    started = _consumers(monkeypatch, AIOKafkaConsumer)
    with caplog.at_level(logging.WARNING, logger="dlr.alerts"):
        asyncio.run(_run_then_stop(settings, started, 5.0))
    assert "did not stop in time" not in caplog.text
