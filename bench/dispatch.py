"""Action dispatch benchmark (not a test): actions/s of one `dlr dispatch` process and the
latency from the canonical event (the action's `at`) to the POST at the receiver.

1. Backlog: N `fallback` actions (one per message) are pre-loaded into a fresh actions
   topic; ONE `dlr dispatch` process (a separate process, the real service: signing,
   retry machinery, per-endpoint limit and breaker, per-message order, commits after
   delivery) delivers them to a local receiver that answers 200 at once. Measured from
   the first POST to the last, with the process's CPU time per action.
2. Baseline, on the same backlog in another topic: what a team would write without our
   layers, also as its own process: aiokafka consume + a plain aiohttp POST per action
   (same concurrency, no signature, no retries, commit per batch).
3. Latency: actions produced at a steady rate with `at` = now; the receiver records
   arrival - `at` (p50/p99). The worker writes a fallback with grace 0 in the same
   produce batch as its canonical event, so this is the added latency event -> POST.

    .venv/bin/python -m bench.dispatch [--actions 20000] [--rate 500] [--seconds 10]

Uses the local broker (`DLR_KAFKA_*`, started when none answers) and free ports.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench._broker import local_broker
from bench.ingress import serve, stop, wait_http
from bench.streams import cpu_s
from deploy.local.ports import free_port
from deploy.settings import Settings
from deploy.topics import ensure_topics

ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec_YmVuY2gtZGlzcGF0Y2gtc2VjcmV0LTAxMjM0NTY3ODk="
CONCURRENCY = 16


# -- the receiver (its own process) -------------------------------------------------------


def receiver_main(port: int) -> None:
    """Answer every POST with 200 at once; count, and time arrivals against `at`."""
    stats: dict[str, Any] = {"count": 0, "first": None, "last": None, "latencies": []}
    measure = {"on": False}

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        now = time.time()
        stats["count"] += 1
        stats["first"] = stats["first"] or now
        stats["last"] = now
        if measure["on"]:
            at = orjson.loads(body)["data"]["sent_at"]
            stats["latencies"].append(now - at)
        return web.Response(text="ok")

    async def get_stats(request: web.Request) -> web.Response:
        return web.json_response(stats)

    async def reset(request: web.Request) -> web.Response:
        stats.update(count=0, first=None, last=None, latencies=[])
        measure["on"] = request.query.get("latency") == "1"
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/_stats", get_stats)
    app.router.add_post("/_reset", reset)
    app.router.add_post("/{tail:.*}", hook)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# -- the baseline (its own process) -------------------------------------------------------


async def baseline_main(bootstrap: str, topic: str, url: str, total: int) -> None:
    """aiokafka + plain aiohttp POSTs, CONCURRENCY at a time, commit per batch."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"baseline-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=500,
    )
    await consumer.start()
    limit = asyncio.Semaphore(CONCURRENCY)
    done = 0
    async with aiohttp.ClientSession() as session:

        async def post(value: bytes) -> None:
            async with limit, session.post(url, data=value) as response:
                await response.read()

        try:
            while done < total:
                batch = await consumer.getmany(timeout_ms=500)
                records = [r for rs in batch.values() for r in rs]
                await asyncio.gather(*(post(r.value or b"") for r in records))
                await consumer.commit()
                done += len(records)
        finally:
            await consumer.stop()


# -- the run ---------------------------------------------------------------------------------


def action(n: int, run: str, at: float) -> tuple[bytes, bytes]:
    mid = f"generic:bench-{run}-{n}"
    value = {
        "type": "fallback",
        "action_id": f"act_fallback_{run}{n:010d}",
        "message_id": mid,
        "provider": "generic",
        "state": "undelivered",
        "failure_reason": "unreachable",
        "campaign": "order-confirmation",
        "recipient": "+447700900123",
        "channel": "email",
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)),
        "sent_at": at,
    }
    return mid.encode(), orjson.dumps(value)


async def preload(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    await producer.start()
    try:
        sent = [await producer.send(topic, v, key=k) for k, v in records]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def steady(bootstrap: str, topic: str, run: str, rate: float, seconds: float) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    n = 0
    try:
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            due = started + n / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            key, value = action(10**8 + n, run, time.time())
            await producer.send(topic, value, key=key)
            n += 1
        await producer.flush()
    finally:
        await producer.stop()
    return n


def wait_count(
    stats_url: str, total: int, proc: subprocess.Popen[bytes], label: str
) -> tuple[dict[str, Any], float, int]:
    """Poll the receiver until `total` arrived; also (CPU s of `proc`, count) at the first
    arrival, so start-up costs stay out of the CPU per action."""
    last_print = 0.0
    deadline = time.monotonic() + 600
    first: tuple[float, int] | None = None
    while time.monotonic() < deadline:
        stats: dict[str, Any] = orjson.loads(http_get(stats_url))
        if first is None and stats["count"] > 0:
            first = (cpu_s(proc.pid)[0], stats["count"])
        if stats["count"] >= total:
            assert first is not None
            return stats, first[0], first[1]
        if proc.poll() is not None:
            raise RuntimeError(f"{label} exited with {proc.returncode}")
        if time.monotonic() - last_print > 2:
            print(f"[bench] {label}: {stats['count']}/{total} delivered", flush=True)
            last_print = time.monotonic()
        time.sleep(0.02)
    raise RuntimeError(f"{label}: timed out")


def http_get(url: str) -> bytes:
    return httpx.get(url, timeout=10).content


def reset(base: str, latency: bool = False) -> None:
    httpx.post(f"{base}/_reset", params={"latency": int(latency)}, timeout=10)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--actions", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--baseline", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        receiver_main(args.receiver)
        return 0
    if args.baseline:
        bootstrap, topic, url, total = args.baseline
        asyncio.run(baseline_main(bootstrap, topic, url, int(total)))
        return 0

    with local_broker() as base:
        return run_bench(base, args)


def run_bench(base: Settings, args: argparse.Namespace) -> int:
    """The three phases against the broker of `base`."""
    run = uuid.uuid4().hex[:8]
    data = ROOT / ".data" / "bench" / f"dispatch-{run}"
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    receiver_url = f"http://127.0.0.1:{port}"
    env_vars = {
        "DLR_KAFKA_BOOTSTRAP": base.bootstrap,
        "DLR_ACTIONS_TOPIC": f"bench.actions.{run}",
        "DLR_ACTIONS_DEADLETTER_TOPIC": f"bench.actions-dead.{run}",
        "DLR_DISPATCH_GROUP": f"bench-dispatch-{run}",
        "DLR_DISPATCH_METRICS_PORT": str(free_port()),
        "DLR_ACTION_ENDPOINTS": orjson.dumps({"fallback": [f"{receiver_url}/hook"]}).decode(),
        "DLR_ACTION_SIGNING_SECRETS": SECRET,
        "DLR_DISPATCH_CONCURRENCY": str(CONCURRENCY),
        "DLR_DATA_DIR": str(data),
        "DLR_LOG_LEVEL": "WARNING",
    }
    settings = Settings.from_vars(env_vars)
    asyncio.run(ensure_topics(settings))
    baseline_topic = f"bench.baseline.{run}"
    asyncio.run(
        ensure_topics(Settings.from_vars({**env_vars, "DLR_ACTIONS_TOPIC": baseline_topic}))
    )
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DLR_")}, **env_vars}
    py = sys.executable
    receiver = serve([py, "-m", "bench.dispatch", "--receiver", str(port)], env, data / "rx.log")
    procs = [receiver]
    try:
        wait_http(f"{receiver_url}/_stats")
        now = time.time()
        records = [action(n, run, now) for n in range(args.actions)]
        print(f"[bench] pre-loading {len(records)} actions twice ...", flush=True)
        asyncio.run(preload(settings.bootstrap, settings.actions_topic, records))
        asyncio.run(preload(settings.bootstrap, baseline_topic, records))

        results = {}
        for label in ("dlr dispatch", "baseline"):
            reset(receiver_url)
            if label == "dlr dispatch":
                cmd = [py, "-m", "deploy.cli", "dispatch"]
            else:
                cmd = [
                    py,
                    "-m",
                    "bench.dispatch",
                    "--baseline",
                    settings.bootstrap,
                    baseline_topic,
                    f"{receiver_url}/hook",
                    str(args.actions),
                ]
            proc = serve(cmd, env, data / f"{label.split()[-1]}.log")
            procs.append(proc)
            stats, cpu_first, count_first = wait_count(
                f"{receiver_url}/_stats", args.actions, proc, label
            )
            cpu_us = (cpu_s(proc.pid)[0] - cpu_first) / (args.actions - count_first) * 1e6
            seconds = stats["last"] - stats["first"]
            results[label] = (args.actions / seconds, cpu_us, proc)
            print(
                f"[bench] {label}: {args.actions} actions in {seconds:.2f} s (first to last "
                f"POST) = {args.actions / seconds:,.0f} actions/s; CPU {cpu_us:.0f} us/action",
                flush=True,
            )
            if label == "baseline":
                stop(proc)
                procs.remove(proc)

        ours, theirs = results["dlr dispatch"], results["baseline"]
        print(
            f"[bench] dlr dispatch / baseline: {ours[0] / theirs[0]:.2f}x actions/s, "
            f"{ours[1] / theirs[1]:.2f}x CPU per action"
        )
        if args.seconds > 0:
            reset(receiver_url, latency=True)
            print(
                f"[bench] latency phase: {args.rate:.0f} actions/s for {args.seconds:.0f} s",
                flush=True,
            )
            n = asyncio.run(
                steady(settings.bootstrap, settings.actions_topic, run, args.rate, args.seconds)
            )
            stats, _, _ = wait_count(f"{receiver_url}/_stats", n, ours[2], "latency")
            lat = [x * 1000 for x in stats["latencies"]]
            print(
                f"[bench] action `at` -> POST received: p50 {pct(lat, 0.5):.1f} ms, "
                f"p99 {pct(lat, 0.99):.1f} ms, max {max(lat):.1f} ms ({len(lat)} actions)"
            )
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                stop(proc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
