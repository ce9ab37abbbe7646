"""Raw workloads with a known truth for the failure tests, and the exact check against it."""

from __future__ import annotations

import asyncio
import random
import time

from aiokafka import AIOKafkaProducer

from bench.streams import envelope
from tests.pipeline import Pipeline

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


async def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=v, key=k) for k, v in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    """Produce (key, value) records and wait until the broker acknowledged every one."""
    asyncio.run(_produce(bootstrap, topic, records))


def check_clickhouse(p: Pipeline, truth: set[tuple[str, str]], timeout: float = 180) -> None:
    """ClickHouse holds exactly the truth: every (message, state) once, nothing else."""
    client = p.clickhouse()
    db = p.settings.clickhouse_database
    got = p.wait_rows(len(truth), timeout=timeout)
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
