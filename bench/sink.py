"""Sink benchmark (not a test): the real `dlr sink` process catching up a backlog.

`bench.analytics` times the sink's functions (parse, columns, insert) in one process; this
runs the whole service: aiokafka fetching from the real broker, batching, the inserts,
the offset commits, with the broker and ClickHouse on the same machine.

1. Uses the running local broker (or starts it; `DLR_KAFKA_BOOTSTRAP` when set) and a fresh
   local ClickHouse launcher on free ports (`.data/bench/sink/`, wiped first), unless
   `DLR_CLICKHOUSE_URL` is set.
2. Pre-loads N canonical events (default 2,000,000; `bench.analytics`' generator, keyed by
   message id) into a fresh status topic and migrates a fresh database (both outside the
   clock).
3. Starts ONE `dlr sink` (a separate process, default settings otherwise) and polls its
   `/metrics` until it has written every row; prints rows/s from its first to its last
   row, its CPU time per row, its peak RSS, and checks the row count in ClickHouse. With
   its own local ClickHouse it also prints the server's CPU time per row over the same
   interval, and then the bytes per row of every table on disk.

    .venv/bin/python -m bench.sink [--events 2000000]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from aiokafka import AIOKafkaProducer

from bench.analytics import (
    ROOT,
    TARGET_ROWS_S,
    free_port,
    print_parts,
    server_settings,
    synthetic_events,
)
from bench.streams import cpu_s, rss_mb
from deploy.local import clickhouse, kafka
from deploy.settings import Settings
from deploy.topics import ensure_topics
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrate import migrate


async def preload(bootstrap: str, topic: str, n: int) -> None:
    """N canonical events of the last 48 h into `topic`, keyed by message id."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=1024 * 1024
    )
    await producer.start()
    try:
        now = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        pending = []
        for i, event in enumerate(synthetic_events(n, seed=11, now=now), 1):
            pending.append(
                await producer.send(topic, value=event.to_json(), key=event.message_id.encode())
            )
            if len(pending) >= 20_000 or i == n:
                await asyncio.gather(*pending)
                pending.clear()
                if i % 200_000 == 0 or i == n:
                    print(f"[bench] pre-loaded {i:,}/{n:,} canonical events", flush=True)
    finally:
        await producer.stop()


def rows_written(port: int) -> float:
    """`dlr_sink_rows_total` of the sink's /metrics (0 before it answers)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0.0
    match = re.search(r"^dlr_sink_rows_total ([0-9.e+]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    args = parser.parse_args(argv)
    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # "topic not found" until metadata

    base = Settings()
    started_kafka = False
    if not base.kafka_bootstrap and not kafka.status(base):
        kafka.start(base)
        started_kafka = True
    server, own_clickhouse = server_settings("sink")
    server_pid = clickhouse.start(server) if own_clickhouse else 0
    data = ROOT / ".data" / "bench" / "sink"
    run = uuid.uuid4().hex[:8]
    port = free_port()
    env_vars = {
        "DLR_KAFKA_BOOTSTRAP": base.bootstrap,
        "DLR_CLICKHOUSE_URL": server.clickhouse,
        "DLR_CLICKHOUSE_DATABASE": f"dlr_bench_sink_{run}",
        "DLR_STATUS_TOPIC": f"bench.status.{run}",
        "DLR_DEADLETTER_TOPIC": f"bench.dl.{run}",
        "DLR_SINK_GROUP": f"bench-sink-{run}",
        "DLR_SINK_METRICS_PORT": str(port),
        "DLR_DATA_DIR": str(data),
        "DLR_LOG_LEVEL": "WARNING",
    }
    settings = Settings.from_vars(env_vars)
    sink: subprocess.Popen[bytes] | None = None
    try:
        asyncio.run(ensure_topics(settings))
        asyncio.run(preload(settings.bootstrap, settings.status_topic, args.events))
        client = connect(settings)
        migrate(client, settings.clickhouse_database)
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("DLR_")}, **env_vars}
        data.mkdir(parents=True, exist_ok=True)
        print(
            f"[bench] starting dlr sink (batches of {settings.sink_batch_rows:,} rows / "
            f"{settings.sink_batch_ms} ms) ...",
            flush=True,
        )
        sink = subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", "sink"],
            cwd=ROOT,
            env=env,
            stdout=(data / "sink.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        first: tuple[float, float, float] | None = None  # (time, rows, cpu s)
        server_first = server_last = 0.0  # the local ClickHouse server's CPU s, same moments
        last = (time.monotonic(), 0.0, 0.0)
        peak = 0.0
        last_print = 0.0
        while sink.poll() is None:
            rows = rows_written(port)
            now = time.monotonic()
            peak = max(peak, rss_mb(sink.pid))
            if rows and first is None:
                first = (now, rows, cpu_s(sink.pid)[0])
                server_first = cpu_s(server_pid)[0] if server_pid else 0.0
            if rows != last[1]:
                last = (now, rows, cpu_s(sink.pid)[0])
                server_last = cpu_s(server_pid)[0] if server_pid else 0.0
            if now - last_print >= 5:
                last_print = now
                print(f"[bench] {rows:>12,.0f} rows written", flush=True)
            if rows >= args.events or (first and now - last[0] > 60):
                break
            time.sleep(0.25)
        if first is None or sink.poll() is not None:
            raise SystemExit(f"the sink wrote nothing or died; see {data / 'sink.log'}")
        if last[1] <= first[1]:
            raise SystemExit("every row arrived within one poll: too few --events to time")
        seconds = max(last[0] - first[0], 1e-9)
        rows = last[1] - first[1]
        rate = rows / seconds
        cpu_us = (last[2] - first[2]) / max(rows, 1) * 1e6
        db = settings.clickhouse_database
        stored = int(client.query(f"SELECT count() FROM {db}.events").result_rows[0][0])
        verdict = "met" if rate >= TARGET_ROWS_S else "NOT met"
        print(
            f"[bench] dlr sink: {rows:,.0f} rows in {seconds:.1f}s (first to last row) = "
            f"{rate:,.0f} rows/s ({verdict}: >= {TARGET_ROWS_S:,}); sink CPU {cpu_us:.1f} us/row; "
            f"peak RSS {peak:,.0f} MB; {stored:,} rows in ClickHouse of {args.events:,} produced",
            flush=True,
        )
        if server_pid:
            server_us = (server_last - server_first) / max(rows, 1) * 1e6
            print(
                f"[bench] ClickHouse server CPU {server_us:.1f} us/row (insert, two materialized "
                "views, merges meanwhile; the local chdb engine)",
                flush=True,
            )
        print_parts(client, db)
        return 0 if stored == args.events else 1
    finally:
        if sink is not None and sink.poll() is None:
            os.killpg(sink.pid, signal.SIGTERM)
            sink.wait(60)
        if own_clickhouse:
            clickhouse.stop(server)
        if started_kafka:
            kafka.stop(base)


if __name__ == "__main__":
    raise SystemExit(main())
