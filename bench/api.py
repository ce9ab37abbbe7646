"""Sender's API benchmark (not a test): registrations/s with broker acks, lookups at scale.

1. Registrations: one `dlr api` process (uvicorn, one worker) against a real broker,
   driven by the Go load generator (bench/loadgen, `-mode api`: one registration per
   request, unique message ids, 64 keep-alive connections) for `--seconds`; then the
   baseline, a bare Starlette endpoint that parses the body and produces it with
   aiokafka's `send_and_wait` (bench/bare_app.py `produce_app`), with the same load.
   Prints req/s, p50/p99 and the server's CPU per request.
2. Lookups: `--messages` registered messages (default 10 M), each with one canonical
   event, generated inside ClickHouse (`INSERT ... SELECT FROM numbers()`: the
   materialized views fill `messages`, `client_refs`), then `--lookups` random ids looked
   up the way `GET /v1/messages/{id}` does (`ingress.api.lookup.Store.message`: sends,
   messages, events by primary key) and, as baselines, the events of the same ids by a
   non-key column (`raw_sha256`, what a lookup without the sorting key costs) and one raw
   clickhouse-connect query by key. p50/p99 of each.

   The refreshable views (`status_snapshot`'s and those refreshed after it), which the
   lookups do not read, are paused with `SYSTEM STOP VIEW` for the run, and the output
   says so: each snapshot refresh recomputes
   every message, and from about 4 M messages on, one refresh needs more memory than the
   local engine's limit (`MEMORY_LIMIT_EXCEEDED ... While executing AggregatingTransform`,
   9 GiB at 5 M messages), which also fails the loading inserts that run beside it.

    .venv/bin/python -m bench.api [--seconds 20] [--messages 10000000] [--lookups 300]

Uses the configured Kafka / ClickHouse (`DLR_KAFKA_BOOTSTRAP`, `DLR_CLICKHOUSE_URL`) or
starts local ones on free ports (data in `.data/bench/`); `--skip-http` / `--skip-lookups`
run one half.
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

from bench.analytics import server_settings
from bench.ingress import ROOT, build_loadgen, run_load, serve, stop, wait_http
from deploy.local import kafka
from deploy.local.ports import free_port
from deploy.settings import Settings
from deploy.topics import ensure_topics
from ingress.api.keys import token_hash
from ingress.api.lookup import Store
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrate import migrate

TOKEN = "bench-api-token"


def registrations(args: argparse.Namespace) -> None:
    base = Settings()
    started = False
    if not base.kafka_bootstrap:
        base = base.model_copy(
            update={
                "data_dir": ROOT / ".data" / "bench" / "api-kafka",
                "kafka_port": free_port(),
                "kafka_controller_port": free_port(),
            }
        )
        kafka.start(base)
        started = True
    run = uuid.uuid4().hex[:8]
    settings = base.model_copy(update={"sends_topic": f"bench.sends.{run}"})
    asyncio.run(ensure_topics(settings))
    loadgen = build_loadgen()
    logs = ROOT / ".data" / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DLR_")},
        "DLR_KAFKA_BOOTSTRAP": settings.bootstrap,
        "DLR_SENDS_TOPIC": settings.sends_topic,
        "DLR_API_PORT": str(port),
        "DLR_API_KEYS": f'[{{"id": "bench", "sha256": "{token_hash(TOKEN)}", '
        '"scopes": ["messages:write", "messages:read"]}]',
        "DLR_API_RATE_LIMIT_PER_S": "0",
        "DLR_REQUIRE_HTTPS": "false",  # plain HTTP on loopback, as the baseline
        "DLR_LOG_LEVEL": "WARNING",
        "BENCH_BOOTSTRAP": settings.bootstrap,
        "BENCH_TOPIC": settings.sends_topic,
    }
    results: dict[str, dict[str, Any]] = {}
    try:
        api = serve([sys.executable, "-m", "deploy.cli", "api"], env, logs / "api.log")
        try:
            wait_http(f"http://127.0.0.1:{port}/readyz")
            url = f"http://127.0.0.1:{port}/v1/messages"
            run_load(loadgen, url, "api", TOKEN, 3, args.connections, api.pid)
            results["dlr api"] = run_load(
                loadgen, url, "api", TOKEN, args.seconds, args.connections, api.pid
            )
        finally:
            stop(api)
        bare_port = free_port()
        bare = serve(
            [sys.executable, "-m", "uvicorn", "bench.bare_app:produce_app", "--port",
             str(bare_port), "--no-access-log", "--log-level", "warning"],
            env,
            logs / "bare-produce.log",
        )  # fmt: skip
        try:
            wait_http(f"http://127.0.0.1:{bare_port}/v1/messages")
            url = f"http://127.0.0.1:{bare_port}/v1/messages"
            run_load(loadgen, url, "api", TOKEN, 3, args.connections, bare.pid)
            results["bare produce"] = run_load(
                loadgen, url, "api", TOKEN, args.seconds, args.connections, bare.pid
            )
        finally:
            stop(bare)
    finally:
        if started:
            kafka.stop(base)
    print("\nregistrations (one per request, Kafka acks=all before 202)")
    print("endpoint          req/s    p50 ms   p99 ms   vs bare   CPU us/request")
    for name, r in results.items():
        ratio = r["rps"] / results["bare produce"]["rps"]
        print(
            f"{name:<14}{r['rps']:>9.0f}{r['p50_ms']:>10.2f}{r['p99_ms']:>9.2f}{ratio:>9.0%}"
            f"{r['cpu_us_per_request']:>12.0f}   status {r['status']}"
        )


_LOAD_SENDS = """
INSERT INTO {db}.sends (message_id, provider, provider_message_id, pii_mode, recipient,
    campaign, tenant, client_ref, submitted_at, consent_source, consent_at, parts, country,
    registered_at, key_id, digest, version)
SELECT concat('generic:m', toString(number)), 'generic', concat('m', toString(number)), 'hash',
    hex(SHA256(toString(number % 1000000))),
    ['otp', 'order-confirmation', 'shipping'][number % 3 + 1],
    concat('tenant-', toString(number % 12)), concat('order-', toString(number)),
    now64(3) - toIntervalSecond(number % 86400), 'checkout', now64(3) - toIntervalDay(3), [],
    'GB', now64(3) - toIntervalSecond(number % 86400), 'bench', hex(SHA256(toString(number))),
    9223372036854775808
FROM numbers({start}, {count})
"""

_LOAD_EVENTS = """
INSERT INTO {db}.events (event_id, message_id, provider, provider_message_id, state,
    current_state, previous_state, transition, is_final, failure_reason, provider_status,
    provider_error_code, provider_error_text, mapped, pii_mode, recipient, carrier, country,
    region, campaign, tenant, client_ref, provider_timestamp, received_at, emitted_at,
    raw_sha256, schema_version)
SELECT lower(hex(MD5(toString(number)))), concat('generic:m', toString(number)), 'generic',
    concat('m', toString(number)), 'delivered', 'delivered', NULL, 'advanced', true, NULL,
    'delivered', '0', NULL, true, 'hash', hex(SHA256(toString(number % 1000000))),
    ['EE', 'Vodafone', 'O2', 'Three'][number % 4 + 1], 'GB', 'Northern Europe',
    ['otp', 'order-confirmation', 'shipping'][number % 3 + 1],
    concat('tenant-', toString(number % 12)), concat('order-', toString(number)),
    now64(3) - toIntervalSecond(number % 86400), now64(3) - toIntervalSecond(number % 86400),
    now64(3), hex(SHA256(toString(number))), 1
FROM numbers({start}, {count})
"""


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def lookups(args: argparse.Namespace) -> None:
    settings, own = server_settings("api-lookups")
    from deploy.local import clickhouse

    if own:
        clickhouse.start(settings)
    db = f"bench_api_{uuid.uuid4().hex[:6]}"
    settings = settings.model_copy(update={"clickhouse_database": db})
    try:
        client = connect(settings, send_receive_timeout=3600)
        migrate(client, db)
        # The lookups never read `status_snapshot` (nor what is refreshed from it); its view
        # recomputes the whole snapshot every minute, which at millions of messages takes
        # more memory than the local engine allows (module docstring). Paused for this run.
        views = client.query(
            "SELECT view FROM system.view_refreshes WHERE database = {d:String}",
            parameters={"d": db},
        ).result_rows
        for (view,) in views:
            client.command(f"SYSTEM STOP VIEW {db}.{view}")
        limit = client.command(
            "SELECT formatReadableSize(toUInt64(value)) FROM system.server_settings "
            "WHERE name = 'max_server_memory_usage'"
        )
        print(
            f"[bench] paused the refreshable view(s) {', '.join(v for (v,) in views)} for this "
            f"benchmark (the lookups do not read them); server memory limit {limit}",
            flush=True,
        )
        chunk = 1_000_000
        started = time.monotonic()
        for start in range(0, args.messages, chunk):
            count = min(chunk, args.messages - start)
            client.command(_LOAD_SENDS.format(db=db, start=start, count=count))
            client.command(_LOAD_EVENTS.format(db=db, start=start, count=count))
            print(
                f"[bench] loaded {start + count:,} messages ({time.monotonic() - started:.0f}s)",
                flush=True,
            )
        client.command(f"OPTIMIZE TABLE {db}.messages")  # as a running system would be, merged
        store = Store(settings)
        rng = random.Random(7)
        ids = [f"generic:m{rng.randrange(args.messages)}" for _ in range(args.lookups)]
        for mid in ids[:20]:  # warm-up: connections, marks cache
            store.message(mid, 3600)
        timings: dict[str, list[float]] = {
            "API lookup (3 key reads)": [],
            "raw key query (events)": [],
            "non-key column (events)": [],
        }

        async def api_lookups() -> None:
            for mid in ids:  # one at a time, the three reads in parallel as the API does
                t0 = time.perf_counter()
                answer = await store.amessage(mid, 3600)
                timings["API lookup (3 key reads)"].append(time.perf_counter() - t0)
                assert answer is not None and answer["state"] == "delivered", mid

        asyncio.run(api_lookups())
        for mid in ids:
            t0 = time.perf_counter()
            client.query(
                f"SELECT * FROM {db}.events WHERE message_id = {{m:String}}",
                parameters={"m": mid},
            )
            timings["raw key query (events)"].append(time.perf_counter() - t0)
        sha_ids = [int(mid.rsplit("m", 1)[1]) for mid in ids[: max(5, args.lookups // 20)]]
        for number in sha_ids:
            sha = client.command(f"SELECT hex(SHA256(toString({number})))")
            t0 = time.perf_counter()
            client.query(
                f"SELECT * FROM {db}.events WHERE raw_sha256 = {{s:String}}",
                parameters={"s": sha},
            )
            timings["non-key column (events)"].append(time.perf_counter() - t0)
        store.close()
        print(f"\nstatus lookups at {args.messages:,} registered messages (1 event each)")
        print("lookup                        n    p50 ms   p99 ms   mean ms")
        for name, values in timings.items():
            print(
                f"{name:<27}{len(values):>5}{_p(values, 0.5) * 1000:>10.2f}"
                f"{_p(values, 0.99) * 1000:>9.2f}{statistics.mean(values) * 1000:>10.2f}"
            )
        client.command(f"DROP DATABASE {db}")
        client.close()
    finally:
        if own:
            clickhouse.stop(settings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--messages", type=int, default=10_000_000)
    parser.add_argument("--lookups", type=int, default=300)
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-lookups", action="store_true")
    args = parser.parse_args()
    if not args.skip_http:
        registrations(args)
    if not args.skip_lookups:
        lookups(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
