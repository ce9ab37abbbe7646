"""`dlr alerts` rebuilds its state from the compacted topic (sinks/alerts/service.py
`read_latest`) on a real broker: the latest record of every fingerprint, read to the end
of every partition, whatever else the topic holds."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from deploy.settings import Settings
from sinks.alerts.service import read_latest
from sinks.alerts.tracker import Tracker
from tests.kafka_helpers import create_topics

pytestmark = pytest.mark.integration


def test_read_latest_returns_the_last_record_of_each_fingerprint(
    kafka_bootstrap: str, unique: str
) -> None:
    settings = Settings.model_validate(
        {"kafka_bootstrap": kafka_bootstrap, "alerts_topic": f"alerts.{unique}"}
    )
    assert asyncio.run(read_latest(settings)) == {}  # no topic yet: nothing was recorded
    create_topics(settings)
    assert asyncio.run(read_latest(settings)) == {}  # empty topic
    base = {
        "rule": "delivery_rate_drop",
        "labels": {"country": "DE", "carrier": "Vodafone"},
        "value": 0.5,
        "threshold": 0.81,
        "baseline": 0.9,
        "summary": "drop",
        "starts_at": "2026-11-30T10:00:00.000Z",
        "ends_at": None,
        "notification": 0,
    }
    records = [
        {**base, "fingerprint": f"fp{i}", "status": "firing", "at": "2026-11-30T10:00:00.000Z"}
        for i in range(20)
    ]
    records += [  # fp0 resolved afterwards; fp1 re-notified
        {**records[0], "status": "resolved", "at": "2026-11-30T10:05:00.000Z"},
        {**records[1], "notification": 1, "at": "2026-11-30T14:00:00.000Z"},
    ]

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for rec in records:
                key = str(rec["fingerprint"]).encode()
                await producer.send_and_wait(settings.alerts_topic, orjson.dumps(rec), key=key)
            await producer.send_and_wait(settings.alerts_topic, b"not json", key=b"fp0")
        finally:
            await producer.stop()

    asyncio.run(produce())
    for _ in range(3):  # the same answer every time (no race with the fetcher's reset)
        latest = asyncio.run(read_latest(settings))
        assert set(latest) == {f"fp{i}" for i in range(20)}
        assert latest["fp0"]["status"] == "resolved"
        assert latest["fp1"]["notification"] == 1
    tracker = Tracker(for_s=0, renotify_s=3600)
    assert tracker.restore(latest) == 19
    assert "fp0" not in tracker.firing and tracker.firing["fp1"].notification == 1
