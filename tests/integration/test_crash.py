"""Crash safety of the stream worker on real parts (issue: no double counting across crashes).

20,000 raw events (30 % duplicates, shuffled) go through a worker that is SIGKILLed three
times mid-stream and restarted; afterwards the (message_id, state) pairs in ClickHouse
equal the ground truth exactly and no event id is counted twice. A second test restarts
the Kafka broker itself mid-stream.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time

import pytest
from aiokafka import AIOKafkaProducer

from bench.streams import envelope
from deploy.local import kafka
from deploy.settings import Settings
from tests.pipeline import Pipeline

pytestmark = pytest.mark.integration

STATUSES = ["accepted", "queued", "sent", "delivered", "undelivered", "expired"]


def workload(n_events: int, seed: int) -> tuple[list[tuple[bytes, bytes]], set[tuple[str, str]]]:
    """Shuffled raw records with 30 % duplicates, and the set of (message_id, state) truths."""
    rng = random.Random(seed)
    unique: list[tuple[bytes, bytes]] = []
    truth: set[tuple[str, str]] = set()
    i = 0
    now = time.time()
    while len(unique) < int(n_events / 1.3):
        mid = f"crash-{seed}-{i}"
        for k, status in enumerate(rng.sample(STATUSES, rng.randint(2, 4))):
            unique.append(envelope(mid, status, k, now))
            truth.add((f"generic:{mid}", status))
        i += 1
    records = unique + [rng.choice(unique) for _ in range(n_events - len(unique))]
    rng.shuffle(records)
    return records, truth


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=v, key=k) for k, v in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def check_clickhouse(p: Pipeline, truth: set[tuple[str, str]]) -> None:
    client = p.clickhouse()
    db = p.settings.clickhouse_database
    got = p.wait_rows(len(truth), timeout=180)
    assert got == len(truth)
    pairs = {
        (m, str(s))
        for m, s in client.query(f"SELECT message_id, state FROM {db}.events FINAL").result_rows
    }
    assert pairs == truth
    counts = client.query(
        f"SELECT count(), uniqExact(event_id) FROM {db}.events FINAL"
    ).result_rows[0]
    assert counts[0] == counts[1] == len(truth)


@pytest.mark.heavy
def test_worker_killed_three_times_loses_and_duplicates_nothing(pipeline: Pipeline) -> None:
    records, truth = workload(20_000, seed=11)
    pipeline.start("sink")
    asyncio.run(produce(pipeline.settings.bootstrap, pipeline.settings.raw_topic, records))
    client = pipeline.clickhouse()
    db = pipeline.settings.clickhouse_database
    kills = 0
    for threshold in (0.15, 0.4, 0.65):
        pipeline.start("worker")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                done = int(client.command(f"SELECT uniqExact(event_id) FROM {db}.events"))
            except Exception:
                done = 0
            if done >= threshold * len(truth):
                break
            time.sleep(0.2)
        pipeline.kill("worker", signal.SIGKILL)
        kills += 1
    assert kills == 3
    pipeline.start("worker")
    check_clickhouse(pipeline, truth)


def test_broker_restart_mid_stream(kafka_launcher: Settings | None, pipeline: Pipeline) -> None:
    if kafka_launcher is None:
        pytest.skip("the broker is external (DLR_KAFKA_BOOTSTRAP or testcontainers)")
    records, truth = workload(6_000, seed=12)
    pipeline.start("worker", "sink")
    half = len(records) // 2
    asyncio.run(produce(pipeline.settings.bootstrap, pipeline.settings.raw_topic, records[:half]))
    time.sleep(1.0)
    kafka.stop(kafka_launcher)
    time.sleep(3.0)
    kafka.start(kafka_launcher)
    asyncio.run(produce(pipeline.settings.bootstrap, pipeline.settings.raw_topic, records[half:]))
    check_clickhouse(pipeline, truth)
    assert all(proc.poll() is None for proc in pipeline.procs.values()), "a service died"
