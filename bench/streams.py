"""Stream worker benchmark (not a test): backlog throughput and raw->canonical latency.

1. Pre-loads N raw envelopes (default 200,000, 30 % of them duplicates, shuffled) into a
   fresh raw topic, starts ONE worker (`dlr worker`, a separate process) and measures how
   fast it turns the backlog into canonical events (first to last output).
2. Then produces at a steady rate below that capacity and measures the latency from the
   envelope's `received_at` to the canonical event's `emitted_at` (p50/p99).
3. Baseline, in the same run: the same backlog through `bench.naive_worker` (the same
   decision in a faust agent written with faust's public API only), so the ratio says what
   the worker's own I/O path (`streams/_faust.py`) buys on whatever this machine is doing.

    .venv/bin/python -m bench.streams [--events 200000] [--rate 3000] [--seconds 20]
                                      [--no-baseline] [--recipients ranges|one]

`--seconds 0` skips the latency phase. The worker's CPU time per raw event is printed too:
unlike events/s it hardly depends on what else the machine is running. With the local
broker(s), so is the brokers' CPU time per raw event (the worker's fetches and writes,
their idle CPU subtracted; `DLR_KAFKA_BROKERS=3` for a replicated cluster).

Recipients (`--recipients`): `ranges` (default) gives every message its own number in
one of 16 real mobile ranges of 8 countries, so the worker's number enrichment meets a
new number range for nearly every message (its worst case; real traffic repeats
ranges); `one` sends everything to a single number with the carrier named (the
enrichment always cached). Run the same command on two checkouts to compare them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench._broker import local_broker
from deploy.local import kafka
from deploy.local.ports import free_port
from deploy.settings import Settings
from deploy.topics import ensure_topics
from schemas.envelope import RawEnvelope

ROOT = Path(__file__).resolve().parent.parent
STATUSES = ["accepted", "queued", "sent", "delivered"]
#: (E.164 prefix, digits) of real mobile ranges: GB, DE, BR, IN, NG, ZA, AU, US.
RANGES = [
    ("44794", 12), ("44776", 12), ("44751", 12), ("49151", 13), ("49176", 13),
    ("5511971", 13), ("5511988", 13), ("91900", 12), ("91630", 12), ("234803", 13),
    ("234805", 13), ("2782", 11), ("2783", 11), ("61400", 11), ("1206", 11), ("1415", 11),
]  # fmt: skip
RECIPIENTS = {"mode": "ranges"}


def recipient(mid: str) -> str:
    """The message's number: fixed, or random in one of RANGES (seeded by the message id)."""
    if RECIPIENTS["mode"] == "one":
        return "+447700900123"
    rng = random.Random(mid)
    prefix, digits = rng.choice(RANGES)
    rest = digits - len(prefix)
    first = str(rng.randrange(2, 10)) if prefix.startswith("1") else ""
    tail = f"{rng.randrange(10**rest):0{rest}d}"
    return f"+{prefix}{first}{tail[len(first) :]}"


def envelope(mid: str, status: str, k: int, received_at: float) -> tuple[bytes, bytes]:
    payload = {
        "message_id": mid,
        "to": recipient(mid),
        "from": "ACME",
        "status": status,
        "provider_status_code": "0",
        "error": None,
        "timestamp": f"2025-08-12T10:15:0{k}Z",
        "campaign": "bench",
    }
    if RECIPIENTS["mode"] == "one":
        payload["carrier"] = "EE"  # the carrier is named: no range lookup at all
    body = orjson.dumps(payload).decode()
    env = RawEnvelope(
        provider="generic",
        message_id=f"generic:{mid}",
        provider_message_id=mid,
        received_at=received_at,
        method="POST",
        url="http://127.0.0.1:8080/webhooks/generic",
        headers={"content-type": "application/json"},
        content_type="application/json",
        body=body,
        body_encoding="utf-8",
        body_sha256="0" * 64,
        payload=payload,
        key_id="k_bench",
    )
    return env.message_id.encode(), env.to_json()


def backlog(n: int, seed: int) -> list[tuple[bytes, bytes]]:
    rng = random.Random(seed)
    unique_target = int(n / 1.3)
    records: list[tuple[bytes, bytes]] = []
    i = 0
    now = time.time()
    while len(records) < unique_target:
        mid = f"bench-{seed}-{i}"
        for k, status in enumerate(STATUSES):
            records.append(envelope(mid, status, k, now))
        i += 1
    records = records[:unique_target]
    records += [rng.choice(records) for _ in range(n - len(records))]
    rng.shuffle(records)
    return records


async def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes, bytes]],
    rate: float | None = None,
    total: int | None = None,
) -> None:
    """Produce the records (a backlog, or at `rate` per second restamped now); a generator
    with its `total` keeps a large backlog out of memory."""
    total = total if total is not None else len(records) if isinstance(records, Sized) else 0
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=512 * 1024
    )
    await producer.start()
    try:
        started = time.monotonic()
        pending = []
        for i, (key, value) in enumerate(records):
            if rate:
                delay = started + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                key, value = envelope(
                    orjson.loads(value)["provider_message_id"],
                    orjson.loads(value)["payload"]["status"],
                    0,
                    time.time(),
                )
            pending.append(await producer.send(topic, value=value, key=key))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
                if not rate:
                    print(f"[bench] pre-loaded {i + 1}/{total}", flush=True)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def watch(
    bootstrap: str,
    topic: str,
    partitions: int,
    unique: int,
    worker: subprocess.Popen[bytes],
    peak: list[float],
    cpu: list[tuple[float, float, int]],
) -> tuple[float, float, int]:
    """Poll the output topic's end offsets until the backlog is done: (first, last, count).

    `cpu` gets the worker's (process, main thread) CPU seconds and the output count at the
    first output and at the last change, so the CPU cost per event can be told apart from a
    busy machine.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    try:
        first: float | None = None
        last_count, last_change = 0, time.monotonic()
        while True:
            count = sum((await consumer.end_offsets(tps)).values())
            now = time.monotonic()
            peak[0] = max(peak[0], rss_mb(worker.pid))
            if count and first is None:
                first = now
                cpu[:] = [(*cpu_s(worker.pid), count)] * 2
            if count != last_count:
                last_count, last_change = count, now
                if cpu:
                    cpu[1] = (*cpu_s(worker.pid), count)
                print(f"[bench] canonical events {count}/{unique}", flush=True)
            if count >= unique or now - last_change > 60 or worker.poll() is not None:
                break
            await asyncio.sleep(0.5)
        if first is None:
            raise SystemExit("the worker produced nothing; see its log")
        return first, last_change, last_count
    finally:
        await consumer.stop()


async def canonical_events(
    bootstrap: str, topic: str
) -> list[tuple[int, float, float, dict[str, Any]]]:
    """(partition, received_at, emitted_at, event) of every canonical event in `topic`."""
    from datetime import datetime

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    out: list[tuple[int, float, float, dict[str, Any]]] = []
    try:
        idle = 0
        while idle < 3:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10000)
            got = [r for rs in batch.values() for r in rs]
            idle = 0 if got else idle + 1
            for record in got:
                event = orjson.loads(record.value or b"{}")
                received = datetime.fromisoformat(event["received_at"]).timestamp()
                emitted = datetime.fromisoformat(event["emitted_at"]).timestamp()
                out.append((record.partition, received, emitted, event))
    finally:
        await consumer.stop()
    return out


async def canonical_times(bootstrap: str, topic: str) -> list[tuple[int, float, float]]:
    """(partition, received_at, emitted_at) of every canonical event in `topic`."""
    return [(p, r, e) for p, r, e, _ in await canonical_events(bootstrap, topic)]


async def latencies(bootstrap: str, topic: str, since: float) -> list[float]:
    """emitted_at - received_at of the canonical events of records received after `since`."""
    times = await canonical_times(bootstrap, topic)
    return [emitted - received for _, received, emitted in times if received >= since]


def broker_cpu(base: Settings) -> tuple[list[int], float]:
    """The local brokers' pids and their idle CPU (cores) over 10 s: heartbeats, replica
    fetchers, what they burn with no traffic."""
    brokers = [] if base.kafka_bootstrap else kafka.running_pids(base)
    if not brokers:
        return [], 0.0
    before = sum(cpu_s(pid)[0] for pid in brokers)
    time.sleep(10)
    return brokers, (sum(cpu_s(pid)[0] for pid in brokers) - before) / 10


def rss_mb(pid: int) -> float:
    total = 0
    for child in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{child}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def cpu_s(pid: int) -> tuple[float, float]:
    """(whole process, main thread) user+system CPU seconds of a running process."""

    def ticks(path: str) -> float:
        try:
            fields = Path(path).read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    return ticks(f"/proc/{pid}/stat"), ticks(f"/proc/{pid}/task/{pid}/stat")


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def run_backlog(
    label: str,
    command: list[str],
    base: Settings,
    records: list[tuple[bytes, bytes]],
    unique: int,
) -> tuple[dict[str, str], subprocess.Popen[bytes], Result]:
    """Fresh topics, the backlog pre-loaded, one worker process: how fast it drains it."""
    run = uuid.uuid4().hex[:8]
    data = ROOT / ".data" / "bench" / f"streams-{run}"
    env_vars = {
        "DLR_KAFKA_BOOTSTRAP": base.bootstrap,
        "DLR_RAW_TOPIC": f"bench.raw.{run}",
        "DLR_STATUS_TOPIC": f"bench.status.{run}",
        "DLR_DEADLETTER_TOPIC": f"bench.dl.{run}",
        "DLR_ACTIONS_TOPIC": f"bench.actions.{run}",
        "DLR_SUPPRESSIONS_TOPIC": f"bench.supp.{run}",
        "DLR_WORKER_ID": f"bench-{run}",
        "DLR_DATA_DIR": str(data),
        "DLR_LOG_LEVEL": "WARNING",
        "DLR_WORKER_WEB_PORT": str(free_port()),
    }
    settings = Settings.from_vars(env_vars)
    asyncio.run(ensure_topics(settings))
    print(f"[bench] {label}: pre-loading {len(records)} raw records ({unique} unique) ...")
    asyncio.run(produce(settings.bootstrap, settings.raw_topic, records))
    brokers, idle_cpu = broker_cpu(base)
    broker_before, broker_started = sum(cpu_s(pid)[0] for pid in brokers), time.monotonic()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DLR_")}, **env_vars}
    data.mkdir(parents=True, exist_ok=True)
    worker = subprocess.Popen(
        [sys.executable, "-m", *command],
        cwd=ROOT,
        env=env,
        stdout=(data / "worker.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    peak = [0.0]
    cpu: list[tuple[float, float, int]] = []
    try:
        first, last_change, last_count = asyncio.run(
            watch(
                settings.bootstrap,
                settings.status_topic,
                settings.topic_partitions,
                unique,
                worker,
                peak,
                cpu,
            )
        )
    except BaseException:
        stop(worker)
        raise
    elapsed = max(last_change - first, 1e-9)
    cpu_us = 0.0
    if len(cpu) == 2 and cpu[1][2] > cpu[0][2]:
        # Raw records behind the outputs seen between the two samples (same ratio).
        done = (cpu[1][2] - cpu[0][2]) * len(records) / max(unique, 1)
        cpu_us = (cpu[1][0] - cpu[0][0]) / done * 1e6
    result = Result(label, len(records) / elapsed, cpu_us, peak[0], last_count == unique)
    print(
        f"[bench] {label}: {len(records)} raw records -> {last_count} canonical events in "
        f"{elapsed:.1f}s = {result.rate:.0f} raw events/s, {cpu_us:.0f} us CPU per raw event",
        flush=True,
    )
    if brokers:
        # From the worker's start to the end of the backlog: every fetch of the raw records
        # and every write of the outputs and the changelog (replication too), less what the
        # brokers burn idle in that time.
        spent = sum(cpu_s(pid)[0] for pid in brokers) - broker_before
        idle = idle_cpu * (time.monotonic() - broker_started)
        print(
            f"[bench] {label}: local brokers ({len(brokers)}) CPU per raw event, the worker's "
            f"reads and writes: {(spent - idle) / len(records) * 1e6:.0f} us "
            f"(+{idle / len(records) * 1e6:.0f} us idle: {idle_cpu:.0%} of a core)",
            flush=True,
        )
    return env_vars, worker, result


@dataclass(frozen=True, slots=True)
class Result:
    """One worker's backlog run."""

    label: str
    rate: float
    cpu_us: float
    peak_mb: float
    complete: bool


def stop(worker: subprocess.Popen[bytes]) -> None:
    """SIGTERM the worker's process group and wait for it."""
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=3000.0)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the naive faust worker baseline"
    )
    parser.add_argument("--recipients", choices=["ranges", "one"], default="ranges")
    args = parser.parse_args()
    RECIPIENTS["mode"] = args.recipients
    print(f"[bench] recipients: {args.recipients}", flush=True)

    with local_broker() as base:
        records = backlog(args.events, seed=1)
        unique = len({(k, orjson.loads(v)["payload"]["status"]) for k, v in records})
        results: list[Result] = []
        env_vars, worker, ours = run_backlog(
            "dlr worker", ["deploy.cli", "worker"], base, records, unique
        )
        results.append(ours)
        try:
            if args.seconds > 0:
                settings = Settings.from_vars(env_vars)
                since = time.time()
                n = int(args.rate * args.seconds)
                paced = backlog(n, seed=2)
                print(f"[bench] latency phase: {n} records at {args.rate:.0f}/s ...", flush=True)
                asyncio.run(produce(settings.bootstrap, settings.raw_topic, paced, rate=args.rate))
                lat = sorted(
                    asyncio.run(latencies(settings.bootstrap, settings.status_topic, since))
                )
                if lat:
                    p50 = lat[len(lat) // 2] * 1000
                    p99 = lat[int(len(lat) * 0.99)] * 1000
                    print(
                        f"[bench] raw->canonical latency at {args.rate:.0f}/s: p50 {p50:.1f} ms, "
                        f"p99 {p99:.1f} ms over {len(lat)} events"
                    )
        finally:
            stop(worker)
        if not args.no_baseline:
            _, naive, theirs = run_backlog(
                "naive faust worker", ["bench.naive_worker"], base, records, unique
            )
            stop(naive)
            results.append(theirs)
    header = f"{'worker':<20} {'raw events/s':>13} {'CPU us/event':>13} {'peak RSS MB':>12}"
    print(f"\n{header} {'vs naive':>9}")
    naive_rate = results[-1].rate if len(results) > 1 else 0.0
    for r in results:
        ratio = f"{r.rate / naive_rate:.2f}x" if naive_rate else "-"
        print(f"{r.label:<20} {r.rate:>13.0f} {r.cpu_us:>13.0f} {r.peak_mb:>12.0f} {ratio:>9}")
    return 0 if all(r.complete for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
