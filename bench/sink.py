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
   interval, and the bytes per row of every table on disk.
4. Baseline, in the same run: `bench.naive_sink` (consume, `to_row` per event, insert,
   commit: the sink a team writes first) drains the same topic into a second database.

    .venv/bin/python -m bench.sink [--events 2000000] [--no-baseline]
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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer

from bench._broker import local_broker
from bench.analytics import (
    ROOT,
    TARGET_ROWS_S,
    print_parts,
    server_settings,
    synthetic_events,
)
from bench.streams import cpu_s, rss_mb
from deploy.local import clickhouse
from deploy.local.ports import free_port
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


@dataclass(frozen=True, slots=True)
class Run:
    """One sink process catching up the backlog."""

    label: str
    rows: float
    seconds: float
    cpu_us: float
    peak_mb: float
    #: The local ClickHouse server's CPU per row over the same interval (0: not ours).
    server_us: float = 0.0

    @property
    def rate(self) -> float:
        """Rows per second from its first to its last row."""
        return self.rows / max(self.seconds, 1e-9)


def measure(
    label: str,
    proc: subprocess.Popen[bytes],
    written: Callable[[], float],
    target: int,
    log: Path,
    server_pid: int = 0,
) -> Run:
    """Poll `written()` until `target` rows (or 60 s without progress): rate, CPU, RSS, and
    the ClickHouse server's CPU when its pid is given."""
    first: tuple[float, float, float] | None = None  # (time, rows, cpu s)
    last = (time.monotonic(), 0.0, 0.0)
    server = [0.0, 0.0]  # the server's CPU s at the first and the last row
    peak = 0.0
    last_print = 0.0
    while proc.poll() is None:
        rows = written()
        now = time.monotonic()
        peak = max(peak, rss_mb(proc.pid))
        if rows and first is None:
            first = (now, rows, cpu_s(proc.pid)[0])
            server[0] = cpu_s(server_pid)[0] if server_pid else 0.0
        if rows != last[1]:
            last = (now, rows, cpu_s(proc.pid)[0])
            server[1] = cpu_s(server_pid)[0] if server_pid else 0.0
        if now - last_print >= 5:
            last_print = now
            print(f"[bench] {label}: {rows:>12,.0f} rows written", flush=True)
        if rows >= target or (first and now - last[0] > 60):
            break
        time.sleep(0.25)
    if first is None or proc.poll() is not None:
        raise SystemExit(f"{label} wrote nothing or died; see {log}")
    if last[1] <= first[1]:
        raise SystemExit("every row arrived within one poll: too few --events to time")
    rows = last[1] - first[1]
    cpu_us = (last[2] - first[2]) / max(rows, 1) * 1e6
    server_us = (server[1] - server[0]) / max(rows, 1) * 1e6
    return Run(label, rows, last[0] - first[0], cpu_us, peak, server_us)


def spawn(command: list[str], env_vars: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A sink process with exactly these DLR_* variables, logging to `log`."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DLR_")}, **env_vars}
    return subprocess.Popen(
        [sys.executable, "-m", *command],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM the process group and wait."""
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the naive sink (bench.naive_sink)"
    )
    args = parser.parse_args(argv)
    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # "topic not found" until metadata

    with local_broker() as base:
        return run_both(args, base)


def run_both(args: argparse.Namespace, base: Settings) -> int:
    """Both sinks against the broker at `base.bootstrap` and a ClickHouse server."""
    server, own_clickhouse = server_settings("sink")
    server_pid = clickhouse.start(server) if own_clickhouse else 0
    data = ROOT / ".data" / "bench" / "sink"
    data.mkdir(parents=True, exist_ok=True)
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
    naive_vars = {
        **env_vars,
        "DLR_CLICKHOUSE_DATABASE": f"dlr_bench_naive_{run}",
        "DLR_SINK_GROUP": f"bench-naive-sink-{run}",
    }
    settings = Settings.from_vars(env_vars)
    naive_settings = Settings.from_vars(naive_vars)
    sink: subprocess.Popen[bytes] | None = None
    naive: subprocess.Popen[bytes] | None = None
    runs: list[Run] = []
    try:
        asyncio.run(ensure_topics(settings))
        asyncio.run(preload(settings.bootstrap, settings.status_topic, args.events))
        client = connect(settings)
        migrate(client, settings.clickhouse_database)
        print(
            f"[bench] starting dlr sink (batches of {settings.sink_batch_rows:,} rows / "
            f"{settings.sink_batch_ms} ms) ...",
            flush=True,
        )
        sink = spawn(["deploy.cli", "sink"], env_vars, data / "sink.log")
        runs.append(
            measure(
                "dlr sink",
                sink,
                lambda: rows_written(port),
                args.events,
                data / "sink.log",
                server_pid,
            )
        )
        stop(sink)
        db = settings.clickhouse_database
        stored = int(client.query(f"SELECT count() FROM {db}.events").result_rows[0][0])
        if not args.no_baseline:
            naive_db = naive_settings.clickhouse_database
            migrate(client, naive_db)
            print("[bench] starting the naive sink (bench.naive_sink) ...", flush=True)
            naive = spawn(["bench.naive_sink"], naive_vars, data / "naive-sink.log")

            def naive_rows() -> float:
                query = f"SELECT count() FROM {naive_db}.events"
                return float(client.query(query).result_rows[0][0])

            runs.append(
                measure("naive sink", naive, naive_rows, args.events, data / "naive-sink.log")
            )
        ours = runs[0]
        verdict = "met" if ours.rate >= TARGET_ROWS_S else "NOT met"
        print(
            f"[bench] dlr sink: {ours.rows:,.0f} rows in {ours.seconds:.1f}s (first to last row)"
            f" = {ours.rate:,.0f} rows/s ({verdict}: >= {TARGET_ROWS_S:,}); "
            f"{stored:,} rows in ClickHouse of {args.events:,} produced",
            flush=True,
        )
        print(
            f"\n{'sink':<12} {'rows/s':>9} {'CPU us/row':>11} {'peak RSS MB':>12} {'vs naive':>9}"
        )
        for r in runs:
            ratio = f"{r.rate / runs[-1].rate:.2f}x" if len(runs) > 1 else "-"
            print(f"{r.label:<12} {r.rate:>9,.0f} {r.cpu_us:>11.1f} {r.peak_mb:>12,.0f} {ratio:>9}")
        if ours.server_us:
            print(
                f"\n[bench] ClickHouse server CPU behind dlr sink: {ours.server_us:.1f} us/row "
                "(insert, the materialized views, merges meanwhile; the local chdb engine)"
            )
        print_parts(client, db)
        return 0 if stored == args.events else 1
    finally:
        stop(sink)
        stop(naive)
        if own_clickhouse:
            clickhouse.stop(server)


if __name__ == "__main__":
    raise SystemExit(main())
