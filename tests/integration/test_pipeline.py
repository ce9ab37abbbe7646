"""The walking skeleton end to end on real parts: HTTP -> Kafka -> faust -> ClickHouse."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest
from aiokafka.partitioner import murmur2  # Kafka's default partitioner, as the ingress's

from deploy.demo import simulate
from schemas.events import CanonicalEvent
from tests.kafka_helpers import read_all
from tests.pipeline import Pipeline

pytestmark = pytest.mark.integration


PIPELINE_STARTED = True


def post_generic(p: Pipeline, bodies: list[bytes], at: int | None = None) -> list[str]:
    """POST each body signed at `at` (default now); every answer must be 200. The statuses."""
    statuses = []
    with httpx.Client(timeout=10) as client:
        for raw in bodies:
            response = p.post_generic(client, raw, at)
            assert response.status_code == 200, response.text
            statuses.append(response.json()["status"])
    return statuses


def same_partition_id(message_id: str, partitions: int) -> str:
    """Another generic message id whose key lands on the same partition as `message_id`'s."""

    def partition(mid: str) -> int:
        return int(murmur2(f"generic:{mid}".encode()) & 0x7FFFFFFF) % partitions

    return next(
        f"{message_id}-marker-{i}"
        for i in range(1000)
        if partition(f"{message_id}-marker-{i}") == partition(message_id)
    )


def test_signed_webhooks_reach_clickhouse_exactly(pipeline: Pipeline) -> None:
    bodies, truths, unique = simulate(60, seed=7, run="e2e")
    post_generic(pipeline, bodies)
    assert pipeline.wait_rows(unique) == unique, pipeline.log_tail("worker")
    db = pipeline.settings.clickhouse_database
    client = pipeline.clickhouse()
    rows = client.query(f"SELECT message_id, current_state FROM {db}.message_status").result_rows
    assert {m: str(s) for m, s in rows} == {t.message_id: t.final_state for t in truths}
    assert int(client.command(f"SELECT count() FROM {db}.events FINAL")) == unique

    # Downstream services read the canonical topic: every value is a valid v1 event.
    records = read_all(pipeline.settings.bootstrap, pipeline.settings.status_topic, expect=unique)
    events = [CanonicalEvent.from_json(r.value or b"") for r in records]
    assert {e.event_id for e in events} == set(
        client.query(f"SELECT event_id FROM {db}.events").result_columns[0]
    )
    assert all(r.key == e.message_id.encode() for r, e in zip(records, events, strict=True))

    # Each service's Prometheus endpoint answers (the worker's once failed on its charset).
    for service in ("ingress", "worker", "sink"):
        response = httpx.get(pipeline.metrics_url(service), timeout=10)
        assert response.status_code == 200, (service, response.text[:200])
        assert response.headers["content-type"].startswith("text/plain"), service
    worker_metrics = httpx.get(pipeline.metrics_url("worker"), timeout=10).text
    assert "dlr_faust_" in worker_metrics and "dlr_streams_" in worker_metrics


def report(message_id: str) -> bytes:
    return orjson.dumps(
        {
            "message_id": message_id,
            "to": "+14155550100",
            "from": "ACME",
            "status": "delivered",
            "provider_status_code": "0",
            "timestamp": "2025-08-12T10:15:00Z",
        }
    )


def test_duplicate_callbacks_are_counted_once(pipeline: Pipeline) -> None:
    s = pipeline.settings
    raw = report("dup-1")
    now = int(time.time())
    assert post_generic(pipeline, [raw], at=now - 2) == ["accepted"]
    # a provider retry: same body, signed again later (a new signature, so the ingress
    # produces it again), then that retry replayed as is (the ingress drops it)
    assert post_generic(pipeline, [raw, raw], at=now) == ["accepted", "duplicate"]
    # A later report on the same partition: once it is in ClickHouse, the worker and the
    # sink have handled everything before it there, duplicates included.
    marker = same_partition_id("dup-1", s.topic_partitions)
    post_generic(pipeline, [report(marker)])
    assert pipeline.wait_rows(1, where=f"message_id = 'generic:{marker}'") == 1
    db = s.clickhouse_database
    assert int(pipeline.clickhouse().command(f"SELECT count() FROM {db}.events")) == 2
    assert (
        int(
            pipeline.clickhouse().command(
                f"SELECT count() FROM {db}.events WHERE message_id = 'generic:dup-1'"
            )
        )
        == 1
    )
    raw_records = read_all(s.bootstrap, s.raw_topic, expect=3)
    keys = [r.key for r in raw_records]
    # both deliveries of dup-1 were acknowledged and produced once each
    assert sorted(keys) == sorted(
        [b"generic:dup-1", b"generic:dup-1", f"generic:{marker}".encode()]
    )
