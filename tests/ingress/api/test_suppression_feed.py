"""The API's suppression feed against a real broker: it loads the topic, and it stops in
bounded time even when the Kafka consumer's own `stop()` never returns (the API's shutdown
once hung in CI, waiting for it)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from deploy.settings import Settings
from ingress.api import suppressions
from ingress.api.suppressions import SuppressionFeed, SuppressionList
from schemas.settings import CommonSettings
from tests.kafka_helpers import StuckConsumer, create_topics

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(kafka_bootstrap: str, unique: str, tmp_path: Path) -> Settings:
    s = Settings(
        kafka_bootstrap=kafka_bootstrap,
        suppressions_topic=f"suppressions.{unique}",
        data_dir=tmp_path,
        dev_secrets=False,
    )
    create_topics(s)
    return s


async def _load_then_stop(settings: Settings, timeout_s: float) -> None:
    feed = SuppressionFeed(settings, SuppressionList())
    feed.start()
    await asyncio.wait_for(feed.loaded.wait(), 30)
    # Without the bound, the stuck consumer makes this wait forever.
    await asyncio.wait_for(feed.stop(timeout_s=timeout_s), timeout_s + 10)


def test_stop_abandons_a_consumer_that_never_closes(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def stuck(s: CommonSettings, **options: Any) -> AIOKafkaConsumer:
        return StuckConsumer(bootstrap_servers=s.bootstrap, group_id=None, **options)

    monkeypatch.setattr(suppressions, "_consumer", stuck)
    with caplog.at_level(logging.WARNING, logger="dlr.api"):
        asyncio.run(_load_then_stop(settings, 1.0))
    assert "did not close in time" in caplog.text


def test_stop_of_a_consumer_that_closes_says_nothing(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="dlr.api"):
        asyncio.run(_load_then_stop(settings, 5.0))
    assert "did not close in time" not in caplog.text
