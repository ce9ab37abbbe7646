"""What `ingress/_rdkafka.py` relies on in confluent-kafka, checked against this install and
the real broker: an upgrade fails here with what to re-check (the `Handle` layout in
confluent-kafka's `confluent_kafka.h`, then `CHECKED_VERSION`)."""

from __future__ import annotations

import os
import select
import time
from importlib.metadata import version
from pathlib import Path

import confluent_kafka
import pytest

from deploy.settings import Settings
from ingress import _rdkafka
from tests.kafka_helpers import create_topics

HINT = "confluent-kafka changed: re-check the Handle layout ingress/_rdkafka.py reads"


def test_the_installed_confluent_kafka_is_the_checked_one() -> None:
    assert version("confluent-kafka") == _rdkafka.CHECKED_VERSION, HINT


def _producer(bootstrap: str, client_id: str) -> confluent_kafka.Producer:
    return confluent_kafka.Producer(
        {"bootstrap.servers": bootstrap, "client.id": client_id, "linger.ms": 0}
    )


def _written(fd: int, timeout_s: float) -> bytes:
    ready, _, _ = select.select([fd], [], [], timeout_s)
    return os.read(fd, 64) if ready else b""


@pytest.mark.integration
def test_librdkafka_writes_when_a_delivery_report_waits(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap, raw_topic=f"raw.{unique}", data_dir=tmp_path
    )
    create_topics(settings)
    producer = _producer(settings.bootstrap, "dlr-boundary")
    read, write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        assert _rdkafka.enable_wakeups(producer, "dlr-boundary", write), HINT
        producer.poll(0)  # anything queued before: a write comes only for an empty queue
        reports: list[object] = []
        for round_ in range(2):  # again once served: the write is per empty -> not empty
            producer.produce(
                settings.raw_topic,
                b"v",
                f"k{round_}".encode(),
                on_delivery=lambda e, m: reports.append(e),
            )
            assert _written(read, 10) == b"r", HINT
            deadline = time.monotonic() + 10
            while len(reports) <= round_:  # the report may trail the write by a moment
                assert time.monotonic() < deadline, "written, but no report to serve"
                producer.poll(0.1)
        assert reports == [None, None]
        _rdkafka.disable_wakeups(producer, "dlr-boundary")
        producer.produce(settings.raw_topic, b"v", b"k", on_delivery=lambda e, m: reports.append(e))
        assert producer.flush(10) == 0
        assert _written(read, 0.5) == b""  # disabled: nothing written any more
    finally:
        os.close(read)
        os.close(write)


def test_a_producer_that_is_not_ours_is_refused() -> None:
    """The handle is checked by name before use: another client id is never written to."""
    producer = _producer("127.0.0.1:1", "someone-else")
    read, write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        assert not _rdkafka.enable_wakeups(producer, "dlr-boundary", write)
    finally:
        os.close(read)
        os.close(write)
