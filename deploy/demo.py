"""`dlr demo`: simulate N message lifecycles through the real HTTP ingress and check them.

Each message walks accepted -> queued -> sent -> a final state (or stays at sent, like
carriers that never report delivery; a few get `undelivered` and later `delivered`). 30 %
of the callbacks are delivered again (re-signed later, as a provider retry would be) and
all callbacks are shuffled. After the pipeline drained, the final state of every message
in ClickHouse must equal the simulated truth and no event may be counted twice.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson

from deploy.settings import Settings
from schemas.lifecycle import State

CARRIERS = {
    "US": ["T-Mobile USA", "Verizon Wireless", "AT&T Mobility"],
    "GB": ["EE", "Vodafone UK", "O2 UK"],
    "DE": ["Telekom DE", "Vodafone DE"],
    "BR": ["Vivo", "Claro BR"],
    "IN": ["Jio", "Airtel"],
}
PREFIX = {"US": "+1415555", "GB": "+4477009", "DE": "+4915112", "BR": "+5511987", "IN": "+9198765"}
CAMPAIGNS = ["order-confirmation", "otp", "promo-spring", "reminder"]
#: (final state, generic provider_status_code, weight); None = stays at `sent`.
OUTCOMES: list[tuple[State | None, str | None, float]] = [
    (State.DELIVERED, "0", 0.78),
    (State.UNDELIVERED, "unreachable", 0.05),
    (State.UNDELIVERED, "invalid_number", 0.03),
    (State.FAILED, "provider_error", 0.02),
    (State.REJECTED, "carrier_filtered", 0.03),
    (State.REJECTED, "opted_out", 0.02),
    (State.EXPIRED, "expired", 0.03),
    (None, None, 0.02),
    (State.DELIVERED, "late", 0.02),  # undelivered first, delivered later
]


@dataclass(frozen=True)
class Truth:
    """The simulated outcome of one message."""

    message_id: str
    provider: str
    final_state: str
    carrier: str
    country: str
    campaign: str


def simulate(n: int, seed: int, run: str) -> tuple[list[bytes], list[Truth], int]:
    """(callback bodies including duplicates, truth per message, unique callbacks)."""
    rng = random.Random(seed)
    bodies: list[bytes] = []
    truths: list[Truth] = []
    base = time.time() - 600
    for i in range(n):
        country = rng.choice(list(CARRIERS))
        carrier = rng.choice(CARRIERS[country])
        campaign = rng.choice(CAMPAIGNS)
        mid = f"demo-{run}-{i:06d}"
        to = PREFIX[country] + f"{rng.randrange(10**4):04d}"
        final, code, _ = rng.choices(OUTCOMES, weights=[w for *_, w in OUTCOMES])[0]
        steps: list[tuple[str, str | None]] = [("accepted", None), ("queued", None), ("sent", None)]
        if final is not None and code == "late":
            steps += [("undelivered", "unreachable"), ("delivered", "0")]
        elif final is not None:
            steps.append((str(final), code))
        t0 = base + rng.random() * 300
        for k, (status, status_code) in enumerate(steps):
            payload: dict[str, Any] = {
                "message_id": mid,
                "to": to,
                "from": "ACME",
                "status": status,
                "provider_status_code": status_code,
                "error": None,
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0 + 5 * k))
                + f".{k:03d}Z",
                "carrier": carrier,
                "country": country,
                "campaign": campaign,
            }
            bodies.append(orjson.dumps(payload))
        truths.append(
            Truth(f"generic:{mid}", "generic", str(final or State.SENT), carrier, country, campaign)
        )
    unique = len(bodies)
    duplicates = [rng.choice(bodies) for _ in range(int(unique * 0.3))]
    all_bodies = bodies + duplicates
    rng.shuffle(all_bodies)
    return all_bodies, truths, unique


async def _send(base: str, key: str, bodies: list[bytes], concurrency: int) -> dict[str, int]:
    from ingress.providers import generic
    from ingress.providers._contract import InboundRequest

    url = f"{base}/webhooks/generic"
    outcome: Counter[str] = Counter()
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    started = time.monotonic()
    total = len(bodies)

    async def worker(client: aiohttp.ClientSession) -> None:
        while True:
            try:
                body = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            for attempt in range(20):
                request = generic.sign(
                    InboundRequest("POST", url, {"content-type": "application/json"}, body),
                    key,
                    int(time.time()),
                )
                try:
                    async with client.post(url, data=body, headers=dict(request.headers)) as r:
                        await r.read()
                        status = r.status
                except (aiohttp.ClientError, TimeoutError):
                    await asyncio.sleep(0.2 * (attempt + 1))
                    continue
                if status == 200:
                    outcome["ok"] += 1
                    break
                if status in (429, 503):  # a provider retries these
                    outcome["retried"] += 1
                    outcome[f"http_{status}"] += 1
                    if not r.headers.get("Retry-After"):
                        outcome[f"http_{status}_without_retry_after"] += 1
                    await asyncio.sleep(0.2 * (attempt + 1))
                    continue
                outcome[f"http_{status}"] += 1
                break

    async def progress() -> None:
        while True:
            await asyncio.sleep(1.0)
            done = total - queue.qsize()
            rate = done / max(1e-9, time.monotonic() - started)
            print(f"[demo] sent {done}/{total} callbacks ({rate:.0f}/s)", flush=True)

    # aiohttp: httpx's async pool tops out at a few hundred requests/s here.
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
        reporter = asyncio.create_task(progress())
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        reporter.cancel()
    outcome["seconds_x1000"] = int((time.monotonic() - started) * 1000)
    return dict(outcome)


def _signing_key(settings: Settings) -> str:
    from deploy.settings import split_list
    from ingress.credentials import dev_secrets_path

    configured = split_list(settings.generic_secrets)
    if configured:
        return configured[0]
    path = dev_secrets_path(settings)
    if not path.exists():
        raise SystemExit("no generic secret: set DLR_GENERIC_SECRETS or run `make run` first")
    return str(json.loads(path.read_text())["generic"]["key"])


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def run_demo(
    settings: Settings,
    *,
    messages: int,
    seed: int | None,
    truth: Path | None,
    concurrency: int,
    timeout: float,
    summary: Path | None = None,
) -> int:
    """Send, wait for the drain, compare with ClickHouse; exit code 0 only when exact."""
    from sinks.clickhouse.client import connect

    base = f"http://{settings.ingress_host}:{settings.ingress_port}"
    stack: subprocess.Popen[bytes] | None = None
    if not _ready(base):
        print("[demo] no running stack; starting `dlr up` ...", flush=True)
        stack = subprocess.Popen([sys.executable, "-m", "deploy.cli", "up"])
        deadline = time.monotonic() + 180
        while not _ready(base) and time.monotonic() < deadline and stack.poll() is None:
            time.sleep(1)
        if not _ready(base):
            print("[demo] the stack did not come up")
            return 1
    try:
        return _run(
            settings,
            base,
            messages=messages,
            seed=seed,
            truth=truth,
            concurrency=concurrency,
            timeout=timeout,
            connect=connect,
            summary=summary,
        )
    finally:
        if stack is not None:
            stack.send_signal(2)
            stack.wait(60)


def _clickhouse_view(client: Any, db: str, pattern: str) -> tuple[dict[str, str], int]:
    """What analysts see of the run: each message's state, and the events after dedupe."""
    # one exact row per message (sinks/clickhouse/ddl/0003_message_status.sql)
    rows = client.query(
        f"SELECT message_id, current_state FROM {db}.message_status WHERE message_id LIKE %(p)s",
        parameters={"p": pattern},
    ).result_rows
    total_rows = int(
        client.command(
            f"SELECT count() FROM {db}.events FINAL WHERE message_id LIKE %(p)s",
            parameters={"p": pattern},
        )
    )
    return {r[0]: str(r[1]) for r in rows}, total_rows


def _run(
    settings: Settings,
    base: str,
    *,
    messages: int,
    seed: int | None,
    truth: Path | None,
    concurrency: int,
    timeout: float,
    connect: Any,
    summary: Path | None = None,
) -> int:
    seed = seed if seed is not None else random.randrange(2**31)
    run = uuid.UUID(int=random.Random(seed).getrandbits(128)).hex[:8]
    bodies, truths, unique = simulate(messages, seed, run)
    if truth is not None:
        with truth.open("w") as out:
            for t in truths:
                out.write(json.dumps(t.__dict__) + "\n")
    print(
        f"[demo] run {run} seed {seed}: {messages} messages, {unique} callbacks "
        f"+ {len(bodies) - unique} duplicates, shuffled",
        flush=True,
    )
    key = _signing_key(settings)
    sent_at = time.monotonic()
    outcome = asyncio.run(_send(base, key, bodies, concurrency))
    send_s = outcome.pop("seconds_x1000") / 1000
    print(
        f"[demo] sent {len(bodies)} callbacks in {send_s:.1f}s "
        f"({len(bodies) / max(send_s, 1e-9):.0f}/s): {outcome}",
        flush=True,
    )
    client = connect(settings)
    db = settings.clickhouse_database
    pattern = f"generic:demo-{run}-%"
    deadline = time.monotonic() + timeout
    events = 0
    while time.monotonic() < deadline:
        events = int(
            client.command(
                f"SELECT uniqExact(event_id) FROM {db}.events WHERE message_id LIKE %(p)s",
                parameters={"p": pattern},
            )
        )
        print(
            f"[demo] waiting for the pipeline: {events}/{unique} canonical events in ClickHouse",
            flush=True,
        )
        if events >= unique:
            break
        time.sleep(1.0)
    drain_s = time.monotonic() - sent_at
    expected = {t.message_id: t.final_state for t in truths}
    # An insert's materialized-view parts can become visible a moment after its `events`
    # part: compare again for a few seconds before calling a difference a mismatch.
    settle_until = time.monotonic() + 10
    while True:
        got, total_rows = _clickhouse_view(client, db, pattern)
        wrong = {m: (expected[m], got.get(m)) for m in expected if got.get(m) != expected[m]}
        if (not wrong and total_rows == events) or time.monotonic() >= settle_until:
            break
        time.sleep(0.5)
    counts_truth = Counter(expected.values())
    counts_got = Counter(got.get(m, "missing") for m in expected)
    print(f"\n{'state':<12}{'truth':>8}{'clickhouse':>12}")
    for state in sorted(set(counts_truth) | set(counts_got)):
        print(f"{state:<12}{counts_truth[state]:>8}{counts_got[state]:>12}")
    print(
        f"\nmessages {messages}  callbacks {len(bodies)}  canonical events {events} "
        f"(rows after dedupe {total_rows})  drain {drain_s:.1f}s  "
        f"throughput {len(bodies) / max(drain_s, 1e-9):.0f} callbacks/s end to end"
    )
    ok = not wrong and events == unique and total_rows == events
    if wrong:
        sample = list(wrong.items())[:5]
        print(f"[demo] MISMATCH: {len(wrong)} messages differ from the truth, e.g. {sample}")
    if events != unique:
        print(f"[demo] MISMATCH: {events} canonical events, expected {unique}")
    if total_rows != events:
        print(f"[demo] MISMATCH: {total_rows} rows but {events} distinct event ids")
    print("[demo] OK: ClickHouse equals the simulated truth" if ok else "[demo] FAILED")
    if summary is not None:
        summary.write_text(
            json.dumps(
                {
                    "run": run,
                    "seed": seed,
                    "messages": messages,
                    "callbacks": len(bodies),
                    "unique_callbacks": unique,
                    "responses": outcome,
                    "canonical_events": events,
                    "rows_after_dedupe": total_rows,
                    "mismatched_messages": len(wrong),
                    "ok": ok,
                }
            )
        )
    return 0 if ok else 1
