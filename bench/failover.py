"""Worker failover benchmark (not a test): kill one of three workers, with and without standbys.

How long a group of `dlr worker` processes takes, after one of them is SIGKILLed, until
every partition is processed in under a second again, on a table of N messages (default
1,000,000), once with `DLR_TABLE_STANDBY_REPLICAS=0` (the new owner of a dead worker's
partitions replays their whole changelog) and once with 1 (it already holds a warm copy):

1. Pre-loads N raw records, one per message, into a fresh raw topic (outside the clock).
2. Per configuration: three workers of a fresh group (own changelog, own output topic)
   build the N-message table from that backlog; then records for existing messages are
   produced at a steady `--rate` (each stamped with its send time); after `--warmup`
   seconds the worker holding the most of the eight partitions is SIGKILLed.
3. Every canonical event says when its raw record was sent (`received_at`) and when it was
   emitted (`emitted_at`). The failover time is from the kill to the last event emitted
   more than 1 s after its record was sent, provided every partition has emitted in
   under 1 s since (else "not recovered" within `--window`). It includes the group's
   session timeout (`DLR_WORKER_SESSION_TIMEOUT_S`, printed): how long Kafka waits before
   it declares the silent worker dead. The group's lag is printed every 30 s meanwhile.
4. After the window the load stops and, once the group's lag is 0 (or 120 s passed), every
   steady record is reconciled with the output topic: lost (no canonical event), doubled
   (two different event ids for one report: the sink would store both); the same event id
   again (a replay after the kill) is not counted, the sink keeps one row per event id.

    .venv/bin/python -m bench.failover [--messages 1000000] [--rate 300] [--window 400]
                                      [--standbys 0,1]

Uses the running local broker (or starts one; `DLR_KAFKA_BOOTSTRAP` when set). Takes
minutes: building the table twice is most of it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from bench._broker import local_broker
from bench.streams import canonical_events, envelope, produce
from deploy.local.ports import free_port
from deploy.settings import Settings
from deploy.topics import ensure_topics

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 8
WORKERS = 3


async def group_lag(bootstrap: str, group: str, topic: str) -> int:
    """Records of `topic` the group has not committed yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(tps)
        committed = await admin.list_consumer_group_offsets(group)
        return sum(ends[tp] - (committed[tp].offset if tp in committed else 0) for tp in tps)
    finally:
        await consumer.stop()
        await admin.close()


@dataclass
class Steady:
    """Records for existing messages at a steady rate, each stamped with its send time.

    The messages are `first` .. `first + count - 1`, each once: every configuration takes
    its own range, since it also processes the records of the ones before (a second
    report of a message would be a duplicate, and emit nothing).
    """

    bootstrap: str
    topic: str
    rate: float
    first: int
    count: int
    stop: threading.Event = field(default_factory=threading.Event)
    sent: int = 0

    async def run(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5)
        await producer.start()
        try:
            started = time.monotonic()
            i = 0
            while not self.stop.is_set():
                delay = started + i / self.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                mid = f"fo-{self.first + (i * 7919) % self.count}"  # 7919: prime
                key, value = envelope(mid, "delivered", 3, time.time())
                await producer.send(self.topic, value=value, key=key)
                i += 1
                self.sent = i
        finally:
            await producer.stop()


def outputs(
    events: list[tuple[int, float, float, dict[str, Any]]], since: float
) -> list[tuple[int, float, float]]:
    """(partition, emitted_at, latency) of every canonical event emitted after `since`."""
    return [
        (p, emitted, emitted - received) for p, received, emitted, _ in events if emitted >= since
    ]


def steady_events(
    events: list[tuple[int, float, float, dict[str, Any]]], since: float
) -> dict[str, set[str]]:
    """message id -> the distinct event ids emitted for the records received after `since`
    (the steady load's: the table's own `accepted` records were received before it)."""
    seen: dict[str, set[str]] = {}
    for _, received, _, event in events:
        if received >= since:
            seen.setdefault(event["message_id"], set()).add(event["event_id"])
    return seen


def reconcile(load: Steady, seen: dict[str, set[str]]) -> tuple[int, int, int]:
    """(lost, doubled, re-emitted) of the steady load's records: a record with no canonical
    event is lost; a message with two different event ids is doubled (the sink would store
    both); the same event id again is a replay after the kill (the sink keeps one)."""
    expected = {f"generic:fo-{load.first + (i * 7919) % load.count}" for i in range(load.sent)}
    lost = len(expected - seen.keys())
    doubled = sum(1 for mid in expected if len(seen.get(mid, ())) > 1)
    return lost, doubled, len(seen.keys() - expected)


def wait_lag_zero(bootstrap: str, group: str, topic: str, timeout: float) -> int:
    """Poll the group's lag on `topic` until 0 or `timeout`; the last lag seen."""
    deadline = time.monotonic() + timeout
    lag = -1
    while time.monotonic() < deadline:
        try:
            lag = asyncio.run(group_lag(bootstrap, group, topic))
        except KafkaError:
            lag = -1
        if lag == 0:
            break
        time.sleep(2)
    return lag


class Outcome(NamedTuple):
    """One configuration's run: failover seconds (None: not recovered), worst lateness after
    the kill, and the steady records sent, lost and doubled."""

    seconds: float | None
    worst: float
    sent: int
    lost: int
    doubled: int


def failover_time(events: list[tuple[int, float, float]], killed_at: float) -> float | None:
    """Seconds from the kill to the last event over 1 s late, if every partition then
    emitted in time; None when some partition never got back under 1 s."""
    late = [emitted for _, emitted, latency in events if latency >= 1.0 and emitted >= killed_at]
    recovered_at = max(late, default=killed_at)
    back = {p for p, emitted, latency in events if emitted > recovered_at and latency < 1.0}
    if len(back) < PARTITIONS:
        return None
    return recovered_at - killed_at


def worker_env(settings_env: dict[str, str], name: str, data: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DLR_")}
    return {
        **env,
        **settings_env,
        "DLR_DATA_DIR": str(data / name),
        "DLR_WORKER_WEB_PORT": str(port),
        "PYTHONUNBUFFERED": "1",
    }


def active_partitions(web_ports: dict[str, int]) -> dict[str, int]:
    """Partitions each worker holds as active, from faust's router (`GET /router/`)."""
    for port in web_ports.values():
        try:
            routes = httpx.get(f"http://127.0.0.1:{port}/router/", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            continue
        by_port = {int(url.rsplit(":", 1)[1]): topics for url, topics in routes.items()}
        return {
            name: sum(len(parts) for parts in by_port.get(port, {}).values())
            for name, port in web_ports.items()
        }
    return dict.fromkeys(web_ports, 0)


def run_config(
    base: Settings, raw: str, run: str, standbys: int, steady: range, args: argparse.Namespace
) -> Outcome:
    """Build the table with three workers, then kill one under steady load."""
    tag = f"{run}-sb{standbys}"
    data = ROOT / ".data" / "bench" / f"failover-{tag}"
    env_vars = {
        "DLR_KAFKA_BOOTSTRAP": base.bootstrap,
        "DLR_RAW_TOPIC": raw,
        "DLR_STATUS_TOPIC": f"bench.fo.status.{tag}",
        "DLR_DEADLETTER_TOPIC": f"bench.fo.dl.{tag}",
        "DLR_ACTIONS_TOPIC": f"bench.fo.actions.{tag}",
        "DLR_SUPPRESSIONS_TOPIC": f"bench.fo.supp.{tag}",
        "DLR_WORKER_ID": f"bench-fo-{tag}",
        "DLR_TOPIC_PARTITIONS": str(PARTITIONS),
        "DLR_TABLE_STANDBY_REPLICAS": str(standbys),
        "DLR_LOG_LEVEL": "WARNING",
    }
    settings = Settings.from_vars(env_vars)
    asyncio.run(ensure_topics(settings))
    print(f"\n[bench] standby replicas {standbys}: three workers build the table ...", flush=True)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    ports: dict[str, int] = {}
    started = time.monotonic()
    try:
        for i in range(WORKERS):
            name = f"worker-{i + 1}"
            (data / name).mkdir(parents=True, exist_ok=True)
            ports[name] = free_port()
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", "deploy.cli", "worker"],
                cwd=ROOT,
                env=worker_env(env_vars, name, data, ports[name]),
                stdout=(data / f"{name}.log").open("ab"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        while True:
            try:
                lag = asyncio.run(group_lag(base.bootstrap, settings.worker_id, raw))
            except KafkaError as exc:  # a fresh broker has no group coordinator yet
                print(f"[bench]   lag unknown yet ({type(exc).__name__})", flush=True)
                time.sleep(5)
                continue
            print(f"[bench]   lag {lag} records, {time.monotonic() - started:.0f}s", flush=True)
            if lag == 0:
                break
            if any(p.poll() is not None for p in procs.values()):
                raise SystemExit(f"a worker exited; see {data}")
            time.sleep(5)
        load = Steady(base.bootstrap, raw, args.rate, steady.start, len(steady))
        thread = threading.Thread(target=lambda: asyncio.run(load.run()), daemon=True)
        since = time.time()
        thread.start()
        time.sleep(args.warmup)
        held = active_partitions(ports)
        victim = max(procs, key=lambda name: (held[name], name))
        killed_at = time.time()
        os.killpg(procs[victim].pid, signal.SIGKILL)
        procs[victim].wait()
        print(
            f"[bench]   SIGKILLed {victim} ({held[victim]} of {PARTITIONS} partitions) after "
            f"{args.warmup:.0f}s at {args.rate:.0f} records/s; watching for {args.window:.0f}s",
            flush=True,
        )
        watch_until = time.monotonic() + args.window
        while (left := watch_until - time.monotonic()) > 0:
            time.sleep(min(30.0, left))
            try:
                now_lag = str(asyncio.run(group_lag(base.bootstrap, settings.worker_id, raw)))
            except KafkaError as exc:
                now_lag = f"unknown ({type(exc).__name__})"
            print(
                f"[bench]   {time.time() - killed_at:.0f}s after the kill: lag {now_lag} records, "
                f"{load.sent} steady records sent",
                flush=True,
            )
        load.stop.set()
        thread.join(30)
        # every steady record processed (or 120 s) before its events are counted
        lag_left = wait_lag_zero(base.bootstrap, settings.worker_id, raw, 120.0)
        emitted = asyncio.run(canonical_events(base.bootstrap, settings.status_topic))
        events = outputs(emitted, since)
        lost, doubled, other = reconcile(load, steady_events(emitted, since))
        print(
            f"[bench]   steady records {load.sent}: lost {lost}, doubled {doubled} (two event "
            f"ids for one report), unexpected {other}; lag at the end {lag_left}",
            flush=True,
        )
        seconds = failover_time(events, killed_at)
        worst = max((lat for _, e, lat in events if e >= killed_at), default=0.0)
        print(
            f"[bench]   {len(events)} events; worst lateness {worst:.1f}s; failover "
            + (
                f"{seconds:.1f}s" if seconds is not None else f"not recovered in {args.window:.0f}s"
            ),
            flush=True,
        )
        return Outcome(seconds, worst, load.sent, lost, doubled)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--window", type=float, default=400.0)
    parser.add_argument(
        "--standbys", default="0,1", help="standby replica counts to run, comma-separated"
    )
    args = parser.parse_args()
    with local_broker() as base:
        run = uuid.uuid4().hex[:8]
        raw = f"bench.fo.raw.{run}"
        asyncio.run(
            ensure_topics(
                Settings.from_vars(
                    {
                        "DLR_KAFKA_BOOTSTRAP": base.bootstrap,
                        "DLR_RAW_TOPIC": raw,
                        "DLR_TOPIC_PARTITIONS": str(PARTITIONS),
                    }
                )
            )
        )
        print(f"[bench] pre-loading {args.messages} messages into {raw} ...", flush=True)
        now = time.time()  # one `accepted` record per message: a table of N keys
        backlog = (envelope(f"fo-{i}", "accepted", 0, now) for i in range(args.messages))
        asyncio.run(produce(base.bootstrap, raw, backlog, total=args.messages))
        counts = [int(n) for n in args.standbys.split(",")]
        share = args.messages // len(counts)
        results = {
            sb: run_config(base, raw, run, sb, range(k * share, (k + 1) * share), args)
            for k, sb in enumerate(counts)
        }
        timeout = Settings().worker_session_timeout_s
        print(
            f"\n[bench] failover of 1 of {WORKERS} workers, {PARTITIONS} partitions, "
            f"{args.messages} messages in the table, {args.rate:.0f} records/s, "
            f"session timeout {timeout:.0f}s (part of both):"
        )
        print(f"[bench]   {'':<44} failover  worst late  steady sent  lost  doubled")
        for sb, r in results.items():
            label = "standby replicas 1" if sb else "standby replicas 0 (replays the changelog)"
            value = f"{r.seconds:.1f}s" if r.seconds is not None else "not recovered"
            print(
                f"[bench]   {label:<44} {value:>8} {r.worst:>10.1f}s {r.sent:>12} "
                f"{r.lost:>5} {r.doubled:>8}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
