"""Ingress benchmark (not a test): verified + Kafka-acknowledged vs a bare Starlette endpoint.

Drives `/webhooks/generic` and `/webhooks/twilio` of one uvicorn worker against a real
broker, and a bare endpoint that only reads the body, with the same load generator
(bench/loadgen, Go, 64 keep-alive connections, unique signed requests) for 20 s each.
Prints req/s, p50/p99 and the ratio to the bare endpoint, and checks that every
acknowledged request is in Kafka.

    .venv/bin/python -m bench.ingress [--seconds 20] [--connections 64]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.streams import cpu_s
from deploy.local import kafka
from deploy.settings import Settings
from deploy.topics import ensure_topics

ROOT = Path(__file__).resolve().parent.parent
GENERIC_SECRET = "bench-generic-secret"
TWILIO_TOKEN = "bench-twilio-token"


def build_loadgen() -> Path:
    """Compile the Go load generator (stdlib only: builds offline)."""
    if shutil.which("go") is None:
        raise SystemExit("the load generator needs Go (go build)")
    out = ROOT / ".cache" / "loadgen"
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["go", "build", "-o", str(out), "."], cwd=ROOT / "bench" / "loadgen", check=True)
    return out


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def serve(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args,
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_load(
    loadgen: Path, url: str, mode: str, secret: str, seconds: int, connections: int, pid: int
) -> dict[str, Any]:
    print(f"[bench] {mode}: {connections} connections for {seconds}s -> {url}", flush=True)
    cpu_before = cpu_s(pid)[0]
    out = subprocess.run(
        [
            str(loadgen),
            "-url",
            url,
            "-mode",
            mode,
            "-secret",
            secret,
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    cpu = cpu_s(pid)[0] - cpu_before
    result["cpu_share"] = cpu / result["seconds"]
    result["cpu_us_per_request"] = cpu / max(result["requests"], 1) * 1e6
    print(
        f"[bench]   {result['rps']:.0f} req/s  p50 {result['p50_ms']:.2f} ms  "
        f"p99 {result['p99_ms']:.2f} ms  status {result['status']}  server CPU "
        f"{result['cpu_share']:.0%} of a core, {result['cpu_us_per_request']:.0f} us/request",
        flush=True,
    )
    return result


def stack() -> str:
    """Which event loop and HTTP parser uvicorn picks here ("auto" prefers the C ones)."""
    found = [
        module if importlib.util.find_spec(module) else f"{fallback} ({module} not installed)"
        for module, fallback in (("uvloop", "asyncio loop"), ("httptools", "h11 parser"))
    ]
    return ", ".join(found)


async def count_records(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        cluster = await consumer._client.fetch_all_metadata()  # the consumer tracks no topic
        partitions = cluster.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        ends = await consumer.end_offsets(tps)
        return sum(ends.values())
    finally:
        with contextlib.suppress(asyncio.CancelledError):  # aiokafka: group-less consumer close
            await consumer.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--port", type=int, default=18080)
    args = parser.parse_args()

    base = Settings()
    started_kafka = False
    if not base.kafka_bootstrap and not kafka.status(base):
        kafka.start(base)
        started_kafka = True
    run = uuid.uuid4().hex[:8]
    settings = base.model_copy(update={"raw_topic": f"bench.raw.{run}"})
    asyncio.run(ensure_topics(settings))
    loadgen = build_loadgen()
    logs = ROOT / ".data" / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DLR_")},
        "DLR_KAFKA_BOOTSTRAP": settings.bootstrap,
        "DLR_RAW_TOPIC": settings.raw_topic,
        "DLR_GENERIC_SECRETS": GENERIC_SECRET,
        "DLR_TWILIO_SECRETS": TWILIO_TOKEN,
        "DLR_INGRESS_PORT": str(args.port),
        "DLR_LOG_LEVEL": "WARNING",
        "DLR_REPLAY_WINDOW_S": "300",
        "DLR_REQUIRE_HTTPS": "false",  # plain HTTP on loopback, as the baseline
    }
    results: dict[str, dict[str, Any]] = {}
    ingress = serve([sys.executable, "-m", "deploy.cli", "ingress"], env, logs / "ingress.log")
    try:
        wait_http(f"http://127.0.0.1:{args.port}/readyz")
        for mode in ("generic", "twilio"):
            url = f"http://127.0.0.1:{args.port}/webhooks/{mode}"
            secret = GENERIC_SECRET if mode == "generic" else TWILIO_TOKEN
            run_load(loadgen, url, mode, secret, 3, args.connections, ingress.pid)  # warm-up
            results[mode] = run_load(
                loadgen, url, mode, secret, args.seconds, args.connections, ingress.pid
            )
    finally:
        stop(ingress)
    bare_port = args.port + 1
    bare = serve(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.bare_app:app",
            "--port",
            str(bare_port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env,
        logs / "bare.log",
    )
    try:
        wait_http(f"http://127.0.0.1:{bare_port}/bare")
        bare_url = f"http://127.0.0.1:{bare_port}/bare"
        run_load(loadgen, bare_url, "bare", "", 3, args.connections, bare.pid)
        results["bare"] = run_load(
            loadgen, bare_url, "bare", "", args.seconds, args.connections, bare.pid
        )
    finally:
        stop(bare)
    produced = asyncio.run(count_records(settings.bootstrap, settings.raw_topic))
    accepted = sum(r["status"].get("200", 0) for m, r in results.items() if m != "bare")
    print(f"\nuvicorn: {stack()}")
    print("endpoint          req/s    p50 ms   p99 ms   vs bare   CPU us/request")
    for mode, r in results.items():
        ratio = r["rps"] / results["bare"]["rps"]
        print(
            f"{mode:<14}{r['rps']:>9.0f}{r['p50_ms']:>10.2f}{r['p99_ms']:>9.2f}{ratio:>9.0%}"
            f"{r['cpu_us_per_request']:>12.0f}"
        )
    print(
        f"\nacknowledged in the measured runs {accepted}; records in Kafka (incl. warm-up) "
        f"{produced}"
    )
    if produced < accepted:
        print("ERROR: fewer records in Kafka than acknowledged requests")
    if started_kafka:
        kafka.stop(base)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
