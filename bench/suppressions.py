"""Suppression checks benchmark (not a test): one number's check at 1 M entries.

1. `--entries` (default 1,000,000) suppression records are produced to a fresh compacted
   topic (half of the numbers suppressed, half suppressed and then allowed again, so the
   list holds `entries / 2` suppressed numbers and the topic `1.5 x entries` records).
2. One `dlr api` process starts on it: the time until `/readyz` answers (the list read
   from the topic) and the process's RSS are printed.
3. `--lookups` checks, one at a time on one keep-alive connection, of random numbers (half
   suppressed): `GET /v1/suppressions/{number}` end to end over HTTP, p50 / p99.
4. Baselines, in the same run:
   - a bare Starlette endpoint answering a constant (the HTTP floor of one request);
   - the same entries in a ClickHouse table ordered by the hash (ReplacingMergeTree, what a
     "ClickHouse primary-key lookup" store would be): one clickhouse-connect query per check,
     measured at the client, without any HTTP API in front;
   - reading the number's partition of the topic per check (`dlr suppressions check`, the
     naive store-less way), a few samples.
   And the store's own cost: the same checks in process (E.164, hash, dictionary lookup)
   on a list of the same size, no HTTP.

    .venv/bin/python -m bench.suppressions [--entries 1000000] [--lookups 2000]

Uses the configured Kafka / ClickHouse (`DLR_KAFKA_BOOTSTRAP`, `DLR_CLICKHOUSE_URL`) or
starts local ones (the broker on the configured ports, ClickHouse on free ports with its
data in `.data/bench/`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from typing import Any

import httpx

from bench._broker import local_broker
from bench.analytics import server_settings
from bench.ingress import ROOT, serve, stop, wait_http
from bench.streams import rss_mb
from deploy.local.ports import free_port
from deploy.settings import Settings
from deploy.topics import ensure_topics
from ingress.api.keys import token_hash
from ingress.api.suppressions import SuppressionList, read_entry
from ingress.producer import RawProducer
from schemas.phone import number_hash
from schemas.suppressions import SuppressionEntry
from sinks.clickhouse.client import connect

TOKEN = "bench-suppressions-token"
SALT = "bench-salt"


def number(i: int) -> str:
    return f"+1{2_000_000_000 + i}"


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _produce(settings: Settings, entries: int) -> None:
    producer = RawProducer(settings.bootstrap, settings.suppressions_topic, 30.0)
    await producer.start()
    started = time.monotonic()
    try:
        batch: list[tuple[bytes, bytes]] = []
        since = "2025-08-12T10:00:00.000Z"
        for i in range(entries):
            n = number(i)
            h = number_hash(n, SALT)
            for suppressed in (True,) if i % 2 else (True, False):
                entry = SuppressionEntry(
                    number_hash=h, number=n, suppressed=suppressed,
                    reason="opted_out" if suppressed else "opted_in", source="inbound",
                    since=since, provider="twilio", keyword="STOP" if suppressed else "START",
                    language="en",
                )  # fmt: skip
                batch.append((entry.key(), entry.to_json()))
            if len(batch) >= 20_000:
                await producer.send_all(batch)
                batch = []
            if (i + 1) % 100_000 == 0:
                print(
                    f"[bench] produced {i + 1:,} numbers ({time.monotonic() - started:.0f}s)",
                    flush=True,
                )
        if batch:
            await producer.send_all(batch)
    finally:
        await producer.stop()


def _checks(url: str, numbers: list[str], headers: dict[str, str]) -> list[float]:
    timings = []
    with httpx.Client(headers=headers, timeout=10.0) as client:
        for n in numbers[:50]:  # warm-up
            client.get(url.format(n))
        for n in numbers:
            t0 = time.perf_counter()
            response = client.get(url.format(n))
            timings.append(time.perf_counter() - t0)
            assert response.status_code < 400, response.text
    return timings


_CLICKHOUSE_TABLE = """
CREATE TABLE {db}.suppressions
(number_hash String, number Nullable(String), suppressed Bool, reason LowCardinality(String),
 source LowCardinality(String), since DateTime64(3, 'UTC'), version UInt64)
ENGINE = ReplacingMergeTree(version) ORDER BY number_hash
"""
_CLICKHOUSE_LOAD = """
INSERT INTO {db}.suppressions
SELECT lower(hex(SHA256(concat('{salt}', '|+1', toString(2000000000 + number))))),
       concat('+1', toString(2000000000 + number)), number % 2 = 1,
       if(number % 2 = 1, 'opted_out', 'opted_in'), 'inbound', now64(3), 1
FROM numbers({entries})
"""


def clickhouse_baseline(entries: int, numbers: list[str]) -> list[float]:
    settings, own = server_settings("suppressions")
    from deploy.local import clickhouse

    if own:
        clickhouse.start(settings)
    db = f"bench_supp_{uuid.uuid4().hex[:6]}"
    try:
        client: Any = connect(settings)
        client.command(f"CREATE DATABASE {db}")
        client.command(_CLICKHOUSE_TABLE.format(db=db))
        client.command(_CLICKHOUSE_LOAD.format(db=db, salt=SALT, entries=entries))
        client.command(f"OPTIMIZE TABLE {db}.suppressions FINAL")
        query = (
            f"SELECT suppressed, reason, source, since FROM {db}.suppressions FINAL "
            "WHERE number_hash = {h:String}"
        )
        hashes = [number_hash(n, SALT) for n in numbers]
        for h in hashes[:50]:
            client.query(query, parameters={"h": h})
        timings = []
        for h, n in zip(hashes, numbers, strict=True):
            t0 = time.perf_counter()
            rows = client.query(query, parameters={"h": h}).result_rows
            timings.append(time.perf_counter() - t0)
            assert rows and rows[0][0] == (int(n[-1]) % 2 == 1), n
        client.command(f"DROP DATABASE {db}")
        client.close()
        return timings
    finally:
        if own:
            clickhouse.stop(settings)


def in_process(entries: int, numbers: list[str]) -> list[float]:
    """What one check costs inside the API process: normalise, hash, look up."""
    from schemas.phone import e164

    store = SuppressionList()
    since = "2025-08-12T10:00:00.000Z"
    for i in range(1, entries, 2):
        n = number(i)
        store.apply(
            number_hash(n, SALT),
            SuppressionEntry(number_hash(n, SALT), n, True, "opted_out", "inbound", since),
        )
    timings = []
    for n in numbers:
        t0 = time.perf_counter()
        written = e164(n)
        assert written is not None
        store.lookup(number_hash(written, SALT))
        timings.append(time.perf_counter() - t0)
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--partition-reads", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(11)
    numbers = [number(rng.randrange(args.entries)) for _ in range(args.lookups)]
    results: dict[str, list[float]] = {}
    logs = ROOT / ".data" / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    with local_broker() as base:
        run = uuid.uuid4().hex[:8]
        settings = base.model_copy(update={"suppressions_topic": f"bench.suppressions.{run}"})
        asyncio.run(ensure_topics(settings))
        asyncio.run(_produce(settings, args.entries))
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DLR_")},
            "DLR_KAFKA_BOOTSTRAP": settings.bootstrap,
            "DLR_SUPPRESSIONS_TOPIC": settings.suppressions_topic,
            "DLR_PII_SALT": SALT,
            "DLR_API_PORT": str(port),
            "DLR_API_KEYS": f'[{{"id": "bench", "sha256": "{token_hash(TOKEN)}", '
            '"scopes": ["suppressions:read"]}]',
            "DLR_API_RATE_LIMIT_PER_S": "0",
            "DLR_REQUIRE_HTTPS": "false",  # plain HTTP on loopback, as the baseline
            "DLR_LOG_LEVEL": "WARNING",
        }
        started = time.monotonic()
        api_log = logs / "suppressions-api.log"
        api = serve([sys.executable, "-m", "deploy.cli", "api"], env, api_log)
        try:
            _wait_ready(api, f"http://127.0.0.1:{port}/readyz", started)
            load_s = time.monotonic() - started
            rss = rss_mb(api.pid)
            print(f"[bench] dlr api ready in {load_s:.1f}s, RSS {rss:.0f} MB", flush=True)
            url = f"http://127.0.0.1:{port}/v1/suppressions/{{}}"
            results["dlr api GET /v1/suppressions/{n}"] = _checks(
                url, numbers, {"authorization": f"Bearer {TOKEN}"}
            )
        finally:
            stop(api)
        bare_port = free_port()
        bare = serve(
            [sys.executable, "-m", "uvicorn", "bench.bare_app:lookup_app", "--port",
             str(bare_port), "--no-access-log", "--log-level", "warning"],
            env,
            logs / "bare-lookup.log",
        )  # fmt: skip
        try:
            wait_http(f"http://127.0.0.1:{bare_port}/lookup/x")
            results["bare Starlette constant (HTTP floor)"] = _checks(
                f"http://127.0.0.1:{bare_port}/lookup/{{}}", numbers, {}
            )
        finally:
            stop(bare)
        reads = []
        for n in numbers[: args.partition_reads]:
            t0 = time.perf_counter()
            asyncio.run(read_entry(settings, number_hash(n, SALT)))
            reads.append(time.perf_counter() - t0)
        results["read the number's topic partition"] = reads
    results["ClickHouse primary-key query (no HTTP API)"] = clickhouse_baseline(
        args.entries, numbers
    )
    results["in process: E.164 + hash + list lookup"] = in_process(args.entries, numbers)
    print(
        f"\none number's check, {args.entries:,} numbers on the list "
        f"({args.entries // 2:,} suppressed), sequential, one connection"
    )
    print(f"{'store':<44}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for name, values in results.items():
        print(
            f"{name:<44}{len(values):>6}{_p(values, 0.5) * 1000:>10.3f}"
            f"{_p(values, 0.99) * 1000:>10.3f}{statistics.mean(values) * 1000:>10.3f}"
        )
    print(f"dlr api: list read in {load_s:.1f}s at start, RSS {rss:.0f} MB")
    return 0


def _wait_ready(api: Any, url: str, started: float) -> None:
    """Until /readyz answers 200: the list was read from the topic (progress every 10 s)."""
    said = started
    while True:
        if api.poll() is not None:
            raise SystemExit("dlr api exited; see .data/bench/suppressions-api.log")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        now = time.monotonic()
        if now - started > 900:
            raise SystemExit("the list did not load in 15 minutes")
        if now - said >= 10:
            print(f"[bench] dlr api reading the list ... {now - started:.0f}s", flush=True)
            said = now
        time.sleep(0.5)


if __name__ == "__main__":
    raise SystemExit(main())
