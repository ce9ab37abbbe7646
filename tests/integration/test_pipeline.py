"""The walking skeleton end to end on real parts: HTTP -> Kafka -> faust -> ClickHouse."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest

from deploy.demo import simulate
from schemas.events import CanonicalEvent
from tests.kafka_helpers import read_all
from tests.pipeline import Pipeline

pytestmark = pytest.mark.integration


PIPELINE_STARTED = True


def post_generic(p: Pipeline, bodies: list[bytes]) -> None:
    with httpx.Client(timeout=10) as client:
        for raw in bodies:
            response = p.post_generic(client, raw)
            assert response.status_code == 200, response.text


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


def test_duplicate_callbacks_are_counted_once(pipeline: Pipeline) -> None:
    raw = orjson.dumps(
        {
            "message_id": "dup-1",
            "to": "+14155550100",
            "from": "ACME",
            "status": "delivered",
            "provider_status_code": "0",
            "timestamp": "2025-08-12T10:15:00Z",
        }
    )
    post_generic(pipeline, [raw])
    time.sleep(1.1)  # a provider retry: same body, re-signed later
    post_generic(pipeline, [raw, raw])
    assert pipeline.wait_rows(1) == 1
    time.sleep(2)
    db = pipeline.settings.clickhouse_database
    assert int(pipeline.clickhouse().command(f"SELECT count() FROM {db}.events")) == 1
    raw_records = read_all(pipeline.settings.bootstrap, pipeline.settings.raw_topic, expect=2)
    assert len(raw_records) == 2  # both retries were acknowledged and produced once each
