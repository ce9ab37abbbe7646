"""A 3-broker Kafka cluster losing brokers under load (heavy: `make test-heavy`).

The whole pipeline (ingress, worker, sink) runs against a local 3-broker KRaft cluster with
replication factor 3 and min.insync.replicas 2. `dlr demo` traffic goes through HTTP; the
broker that leads the most `raw` partitions is SIGKILLed mid-run and restarted later.
Every callback the ingress answered 200 must end up exactly once in ClickHouse (the demo
reconciles ClickHouse with its `--truth`), every refusal must be a 503 with Retry-After,
and no service may have been restarted. A second test takes two of the three brokers
away: then nothing can be made durable and the ingress must refuse everything.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from deploy.demo import _run
from deploy.local import kafka
from deploy.settings import Settings
from sinks.clickhouse.client import connect
from tests.pipeline import Pipeline
from tests.polling import wait_for

#: Minutes each on a shared machine (cluster start, thousands of callbacks, kills, recovery).
pytestmark = [pytest.mark.integration, pytest.mark.heavy, pytest.mark.timeout(900)]

#: The cluster's durability, as an operator of an external cluster would set it.
CLUSTER_ENV = {
    "DLR_TOPIC_REPLICATION_FACTOR": "3",
    "DLR_TOPIC_MIN_INSYNC_REPLICAS": "2",
    "DLR_TOPIC_PARTITIONS": "6",
    "DLR_PRODUCE_TIMEOUT_S": "2",
}


async def _leaders(bootstrap: str, topic: str) -> dict[int, list[int]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    led: dict[int, list[int]] = {}
    for partition in described["partitions"]:
        led.setdefault(int(partition["leader"]), []).append(int(partition["partition"]))
    return led


def busiest_leader(bootstrap: str, topic: str) -> int:
    """Node id of the broker that leads the most partitions of `topic`."""
    led = asyncio.run(_leaders(bootstrap, topic))
    return max(led, key=lambda node: (len(led[node]), -node))


def test_leader_broker_killed_mid_run_loses_and_doubles_nothing(
    kafka_cluster: Settings, clickhouse_url: str, tmp_path: Path, unique: str
) -> None:
    p = Pipeline(kafka_cluster.bootstrap, clickhouse_url, tmp_path, unique, **CLUSTER_ENV)
    outcome: dict[str, int] = {}
    try:
        p.start()
        truth, summary = tmp_path / "truth.jsonl", tmp_path / "summary.json"
        demo = threading.Thread(
            target=lambda: outcome.update(
                code=_run(
                    p.settings,
                    p.base_url,
                    messages=2500,
                    seed=17,
                    truth=truth,
                    concurrency=24,
                    timeout=300,
                    connect=connect,
                    summary=summary,
                )
            )
        )
        demo.start()
        wait_for(p.event_count, lambda n: n >= 1500, timeout=120, what="traffic in ClickHouse")
        victim = busiest_leader(p.settings.bootstrap, p.settings.raw_topic)
        assert kafka.kill_node(kafka_cluster, victim), "the leader was not running"
        killed_at = p.event_count()
        # The two survivors hold every partition (ISR 2 >= min.insync 2): work goes on.
        wait_for(
            p.event_count,
            lambda n: n >= killed_at + 2000,
            timeout=180,
            what="progress with a broker down",
        )
        kafka.start_node(kafka_cluster, victim)
        demo.join(420)
        assert not demo.is_alive(), "the demo did not finish"
        result = json.loads(summary.read_text())
        assert outcome["code"] == 0, result
        assert result["ok"] and result["mismatched_messages"] == 0
        assert result["canonical_events"] == result["unique_callbacks"]
        assert result["rows_after_dedupe"] == result["canonical_events"]
        responses = Counter(result["responses"])
        refusals = {k for k in responses if k not in ("ok", "retried")}
        assert refusals <= {"http_503"}, responses  # never a 5xx without Retry-After, no 4xx
        lines = truth.read_text().splitlines()
        assert len(lines) == 2500
        for name, proc in p.procs.items():
            assert proc.poll() is None, f"{name} died: {p.log_tail(name)}"
        wait_for(
            lambda: kafka.ready(kafka_cluster.bootstrap, 3), timeout=120, what="the broker back"
        )
    finally:
        p.stop()


def _post(client: httpx.Client, p: Pipeline, mid: str) -> httpx.Response:
    return p.post_generic(
        client, orjson.dumps({"message_id": mid, "status": "delivered", "to": "+14155550100"})
    )


def test_two_brokers_down_nothing_is_acknowledged(
    kafka_cluster: Settings, clickhouse_url: str, tmp_path: Path, unique: str
) -> None:
    p = Pipeline(kafka_cluster.bootstrap, clickhouse_url, tmp_path, unique, **CLUSTER_ENV)
    try:
        wait_for(lambda: kafka.ready(kafka_cluster.bootstrap, 3), timeout=120, what="3 brokers")
        p.start()
        with httpx.Client(timeout=30) as client:
            before = [_post(client, p, f"two-down-before-{i}") for i in range(20)]
            assert [r.status_code for r in before] == [200] * 20
            # The worker and the sink are through their start (a worker whose start meets
            # the outage waits for the brokers, test_worker_start_outage): the outage below
            # is the ingress's, under a running pipeline.
            assert p.wait_rows(20, "message_id LIKE 'generic:two-down-before-%'") >= 20
            down = [n for n in (2, 3) if kafka.kill_node(kafka_cluster, n)]
            assert down == [2, 3]
            try:
                during = [_post(client, p, f"two-down-during-{i}") for i in range(12)]
            finally:
                for node in down:
                    kafka.start_node(kafka_cluster, node)
            # One replica cannot satisfy min.insync.replicas 2: nothing may be acknowledged.
            assert {r.status_code for r in during} == {503}, [r.status_code for r in during]
            assert all(r.headers.get("retry-after") for r in during)
            assert {r.json()["error"] for r in during} == {"broker_unavailable"}
            wait_for(
                lambda: kafka.ready(kafka_cluster.bootstrap, 3),
                timeout=180,
                what="the brokers back",
            )
            after: list[int] = []

            def post_after() -> list[int]:
                after.append(_post(client, p, f"two-down-after-{len(after)}").status_code)
                return after[-5:]

            wait_for(post_after, lambda last: last == [200] * 5, timeout=120, what="200s again")
        # Everything acknowledged, before and after, reaches ClickHouse once; a refused
        # callback may arrive too (the broker may keep it), a provider retry is deduped.
        acknowledged = {f"generic:two-down-before-{i}" for i in range(20)} | {
            f"generic:two-down-after-{i}" for i, status in enumerate(after) if status == 200
        }
        query = (
            f"SELECT message_id FROM {p.settings.clickhouse_database}.events FINAL "
            "WHERE message_id LIKE 'generic:two-down-%'"
        )
        ids = wait_for(
            lambda: [r[0] for r in p.clickhouse().query(query).result_rows],
            lambda got: acknowledged <= set(got),
            timeout=180,
            what="every acknowledged callback in ClickHouse",
        )
        assert len(ids) == len(set(ids)), "an event counted twice"
        for name, proc in p.procs.items():
            assert proc.poll() is None, f"{name} died: {p.log_tail(name)}"
    finally:
        p.stop()
