"""`dlr demo`: simulate N message lifecycles through the real HTTP ingress and check them.

`--providers generic` (the default): generic JSON callbacks; each message walks accepted
-> queued -> sent -> a final state (or stays at sent, like carriers that never report
delivery; a few get `undelivered` and later `delivered`), with the carrier and country
written into the payload.

`--providers all`: every provider's own wire format (deploy/wire.py), each signed with
that provider's scheme and the development secrets, to real number ranges of carriers in
8 countries on 6 continents with per-carrier time-to-deliver, per-country failure mixes,
per-provider prices and delivery differences per destination, and one campaign filtered
on two carriers (deploy/traffic.py); network data and prices only where the provider
sends them, so the worker has to derive carrier, country and region itself.

Either way 30 % of the callbacks are delivered again (re-signed later, as a provider retry
would be) and all callbacks are shuffled. After the pipeline drained, every message in
ClickHouse must have the simulated final state, carrier (and its evidence), country and
region, the price, currency and segments its receipts stated, and no event may be
counted twice. The truth file (`--truth`) has one JSON line per message with those and
what the reports must add up to: `failure_reason`, `sent_at` and `ttd_s` (the send time
and the time to deliver as the provider's receipts state them; null when they state no
time), and the provider's own price and currency (`billed_price`, `billed_currency`),
whether or not its receipts report them. A ClickHouse that is briefly away is waited for,
saying so (deploy/weather.py, `DLR_TOOLS_WAIT_S`).
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import httpx
import orjson

from deploy import traffic, weather, wire
from deploy.settings import Settings
from deploy.tools.keys import signing_keys
from ingress.providers._contract import InboundRequest
from schemas.geo import region_of
from schemas.lifecycle import State

T = TypeVar("T")

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
    """The simulated outcome of one message, as the pipeline must derive it."""

    message_id: str
    provider: str
    final_state: str
    carrier: str | None
    country: str
    #: As the receipts carry it (`--providers all`: only some formats do, wire.campaign).
    campaign: str | None
    region: str | None = None
    carrier_source: str = "provider"
    #: What the receipts state (None: nothing).
    segments: int | None = None
    price: float | None = None
    currency: str | None = None
    failure_reason: str | None = None
    #: Send time and time to deliver as the receipts state them (None: they state no time).
    sent_at: float | None = None
    ttd_s: float | None = None
    #: What the provider charges, whether or not its receipts say so.
    billed_price: float | None = None
    billed_currency: str | None = None

    def checked(self) -> tuple[Any, ...]:
        """What ClickHouse must say (`CHECKED`): state, carrier, country, region, carrier
        evidence, campaign, and the segments, price and currency the receipts stated."""
        return (
            self.final_state,
            self.carrier,
            self.country,
            self.region,
            self.carrier_source,
            self.campaign,
            self.segments,
            self.price,
            self.currency,
        )


#: The fields of `Truth.checked()`, in order.
CHECKED = (
    "state",
    "carrier",
    "country",
    "region",
    "carrier_source",
    "campaign",
    "segments",
    "price",
    "currency",
)


#: One callback to send: (provider, the unsigned request).
Callback = tuple[str, InboundRequest]


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
            Truth(
                f"generic:{mid}",
                "generic",
                str(final or State.SENT),
                carrier,
                country,
                campaign,
                region_of(country),
            )
        )
    unique = len(bodies)
    duplicates = [rng.choice(bodies) for _ in range(int(unique * 0.3))]
    all_bodies = bodies + duplicates
    rng.shuffle(all_bodies)
    return all_bodies, truths, unique


@dataclass(frozen=True)
class Live:
    """A live run: messages at `rate` per second from now, each report sent at its own
    time (report delays divided by `speed`), with incidents."""

    rate: float
    incidents: tuple[traffic.Incident, ...] = ()
    speed: float = 1.0


def simulate_providers(
    n: int,
    seed: int,
    run: str,
    base_url: str,
    live: Live | None = None,
    *,
    countries: frozenset[str] = frozenset(),
    providers: frozenset[str] = frozenset(),
) -> tuple[list[Callback], list[Truth], int, list[float]]:
    """The traffic model's messages in each provider's format: (callbacks including
    duplicates, truth per message, unique callbacks, when to send each: all 0.0 unless
    `live`, then seconds from the start, in order)."""
    rng = random.Random(seed)
    if live is None:
        msgs = traffic.messages(
            n, rng, time.time() - 600, CAMPAIGNS, countries=countries, providers=providers
        )
        start = 0.0
    else:
        start = time.time()
        msgs = traffic.messages(
            n,
            rng,
            start,
            CAMPAIGNS,
            rate=live.rate,
            incidents=live.incidents,
            countries=countries,
            providers=providers,
            speed=live.speed,
        )
    timed: list[tuple[float, Callback]] = []
    truths: list[Truth] = []
    for message in msgs:
        for step, at in wire.steps(message):
            request = wire.request(base_url, run, message, step, at)
            timed.append((at - start if live else 0.0, (message.provider, request)))
        want = traffic.expected(message)
        segments, price, currency = wire.reported(message)
        sent = wire.stated_time(message.provider, message.sent_at)
        final = wire.final_state(message)
        done = (
            wire.stated_time(message.provider, message.final_at)
            if message.final_at is not None and final == "delivered"
            else None
        )
        truths.append(
            Truth(
                wire.message_id(run, message),
                message.provider,
                final,
                want.carrier,
                want.country,
                wire.campaign(message),
                want.region,
                want.carrier_source,
                segments=segments,
                price=price,
                currency=currency,
                failure_reason=wire.failure_reason(message),
                sent_at=sent,
                ttd_s=round(done - sent, 3) if done is not None and sent is not None else None,
                billed_price=message.price,
                billed_currency=message.currency,
            )
        )
    unique = len(timed)
    duplicates = [rng.choice(timed) for _ in range(int(unique * 0.3))]
    if live is None:
        everything = timed + duplicates
        rng.shuffle(everything)
    else:  # a provider's retry comes a little later, and the order is the clock's
        everything = sorted(
            timed + [(at + rng.uniform(0.2, 3.0), cb) for at, cb in duplicates],
            key=lambda pair: pair[0],
        )
    return [cb for _, cb in everything], truths, unique, [at for at, _ in everything]


def _generic_callbacks(base: str, bodies: list[bytes]) -> list[Callback]:
    url = f"{base}/webhooks/generic"
    headers = {"content-type": "application/json"}
    return [("generic", InboundRequest("POST", url, headers, body)) for body in bodies]


async def _send(
    keys: dict[str, str],
    callbacks: list[Callback],
    concurrency: int,
    due: list[float] | None = None,
    incidents: tuple[traffic.Incident, ...] = (),
) -> dict[str, int]:
    """Sign each callback with its provider's scheme when it is sent, and post it; with
    `due` (seconds from now per callback, ascending) no callback goes before its time."""
    from ingress.providers import PROVIDERS

    outcome: Counter[str] = Counter()
    queue: asyncio.Queue[tuple[float, Callback]] = asyncio.Queue()
    for i, callback in enumerate(callbacks):
        queue.put_nowait((due[i] if due else 0.0, callback))
    started = time.monotonic()
    total = len(callbacks)

    async def worker(client: aiohttp.ClientSession) -> None:
        while True:
            try:
                at, (provider, unsigned) = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            wait = started + at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            for attempt in range(20):
                request = PROVIDERS[provider].sign(unsigned, keys[provider], int(time.time()))
                try:
                    async with client.request(
                        request.method,
                        request.url,
                        data=request.body,
                        headers=dict(request.headers),
                    ) as r:
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
            await asyncio.sleep(1.0 if not due else 5.0)
            done = total - queue.qsize()
            elapsed = time.monotonic() - started
            rate = done / max(1e-9, elapsed)
            active = [x.label for x in incidents if x.matches_time(elapsed)]
            note = f"; incident: {'; '.join(active)}" if active else ""
            print(
                f"[demo] {elapsed:.0f}s: sent {done}/{total} callbacks ({rate:.0f}/s){note}",
                flush=True,
            )

    # aiohttp: httpx's async pool tops out at a few hundred requests/s here.
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
        reporter = asyncio.create_task(progress())
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        reporter.cancel()
    outcome["seconds_x1000"] = int((time.monotonic() - started) * 1000)
    return dict(outcome)


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
    providers: str = "generic",
    countries: str = "",
    live: Live | None = None,
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
            providers=providers,
            countries=countries,
            live=live,
        )
    finally:
        if stack is not None:
            stack.send_signal(2)
            stack.wait(60)


#: Message ids per ClickHouse query (an IN list of that many is a few hundred kB).
_CHUNK = 5000

_VIEW = (
    "SELECT message_id, current_state, carrier, country, region, carrier_source, campaign,"
    " segments, price, currency FROM {db}.message_status WHERE message_id IN %(ids)s"
)


def _chunks(ids: list[str]) -> list[list[str]]:
    return [ids[i : i + _CHUNK] for i in range(0, len(ids), _CHUNK)]


def _event_count(client: Any, db: str, ids: list[str], exact: bool) -> int:
    """Distinct event ids (exact=False) or rows after dedupe (FINAL) of the run."""
    query = (
        f"SELECT count() FROM {db}.events FINAL WHERE message_id IN %(ids)s"
        if exact
        else f"SELECT uniqExact(event_id) FROM {db}.events WHERE message_id IN %(ids)s"
    )
    return sum(int(client.command(query, parameters={"ids": chunk})) for chunk in _chunks(ids))


def _clickhouse_view(client: Any, db: str, ids: list[str]) -> tuple[dict[str, Any], int]:
    """What analysts see of the run: each message's state, carrier, country, region,
    carrier evidence, campaign, segments, price and currency, and the events after dedupe."""
    # one exact row per message (sinks/clickhouse/ddl/0003, 0007, 0010: message_status)
    got: dict[str, Any] = {}
    for chunk in _chunks(ids):
        rows = client.query(_VIEW.format(db=db), parameters={"ids": chunk}).result_rows
        got.update({r[0]: (str(r[1]), *r[2:]) for r in rows})
    return got, _event_count(client, db, ids, exact=True)


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
    providers: str = "generic",
    countries: str = "",
    live: Live | None = None,
) -> int:
    chosen = frozenset(p.strip() for p in providers.split(",") if p.strip()) - {"all"}
    wanted = frozenset(c.strip().upper() for c in countries.split(",") if c.strip())
    unknown = sorted(chosen - set(traffic.PROVIDERS) - {"generic"}) + sorted(
        wanted - set(traffic.COUNTRIES)
    )
    if unknown or (providers == "generic" and (live or wanted)):
        print(
            f"[demo] unknown provider or country {unknown}; --rate, --incident and "
            "--countries need the traffic model (--providers all or a list)"
            if unknown
            else "[demo] --rate, --incident and --countries need --providers all (or a list)"
        )
        return 2
    seed = seed if seed is not None else random.randrange(2**31)
    run = uuid.UUID(int=random.Random(seed).getrandbits(128)).hex[:8]
    due: list[float] | None = None
    if providers != "generic":
        callbacks, truths, unique, times = simulate_providers(
            messages, seed, run, base, live, countries=wanted, providers=chosen
        )
        due = times if live is not None else None
    else:
        bodies, truths, unique = simulate(messages, seed, run)
        callbacks = _generic_callbacks(base, bodies)
    if truth is not None:
        with truth.open("w") as out:
            for t in truths:
                out.write(json.dumps(t.__dict__) + "\n")
    used = sorted({t.provider for t in truths})
    order = (
        f"live: {live.rate:g} messages/s for {messages / live.rate:.0f}s"
        if live is not None
        else "shuffled"
    )
    print(
        f"[demo] run {run} seed {seed}: {messages} messages via {', '.join(used)}, "
        f"{unique} callbacks + {len(callbacks) - unique} duplicates, {order}",
        flush=True,
    )
    for incident in live.incidents if live is not None else ():
        print(f"[demo] incident: {incident.label}", flush=True)
    keys = signing_keys(settings, used)
    sent_at = time.monotonic()
    incidents = live.incidents if live is not None else ()
    outcome = asyncio.run(_send(keys, callbacks, concurrency, due, incidents))
    send_s = outcome.pop("seconds_x1000") / 1000
    print(
        f"[demo] sent {len(callbacks)} callbacks in {send_s:.1f}s "
        f"({len(callbacks) / max(send_s, 1e-9):.0f}/s): {outcome}",
        flush=True,
    )
    where, wait_s = weather.clickhouse_name(settings), settings.tools_wait_s

    def patiently(call: Callable[[], T]) -> T:
        return weather.wait_for(where, call, patience=wait_s, label="demo")

    client = patiently(lambda: connect(settings))
    db = settings.clickhouse_database
    ids = [t.message_id for t in truths]
    deadline = time.monotonic() + timeout
    events = 0
    while time.monotonic() < deadline:
        events = patiently(lambda: _event_count(client, db, ids, exact=False))
        print(
            f"[demo] waiting for the pipeline: {events}/{unique} canonical events in ClickHouse",
            flush=True,
        )
        if events >= unique:
            break
        time.sleep(1.0)
    drain_s = time.monotonic() - sent_at
    expected = {t.message_id: t.checked() for t in truths}
    # An insert's materialized-view parts can become visible a moment after its `events`
    # part: compare again for a few seconds before calling a difference a mismatch.
    settle_until = time.monotonic() + 10
    while True:
        got, total_rows = patiently(lambda: _clickhouse_view(client, db, ids))
        wrong = {m: (want, got.get(m)) for m, want in expected.items() if got.get(m) != want}
        if (not wrong and total_rows == events) or time.monotonic() >= settle_until:
            break
        time.sleep(0.5)
    _print_counts("state", 0, expected, got)
    _print_counts("carrier evidence", 4, expected, got)
    _print_counts("currency", CHECKED.index("currency"), expected, got)
    print(
        f"\nmessages {messages}  callbacks {len(callbacks)}  canonical events {events} "
        f"(rows after dedupe {total_rows})  drain {drain_s:.1f}s  "
        f"throughput {len(callbacks) / max(drain_s, 1e-9):.0f} callbacks/s end to end"
    )
    ok = not wrong and events == unique and total_rows == events
    if wrong:
        kinds = Counter(
            name
            for want, have in wrong.values()
            for i, name in enumerate(CHECKED)
            if have is None or want[i] != have[i]
        )
        sample = list(wrong.items())[:5]
        print(
            f"[demo] MISMATCH: {len(wrong)} messages differ from the truth "
            f"({dict(kinds)}), e.g. (truth, clickhouse): {sample}"
        )
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
                    "callbacks": len(callbacks),
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


def _print_counts(title: str, field: int, expected: dict[str, Any], got: dict[str, Any]) -> None:
    """Truth against ClickHouse, counted by one of the checked fields."""
    truth = Counter(str(want[field]) for want in expected.values())
    seen = Counter(str(got[m][field]) if m in got else "missing" for m in expected)
    print(f"\n{title:<18}{'truth':>8}{'clickhouse':>12}")
    for name in sorted(set(truth) | set(seen)):
        print(f"{name:<18}{truth[name]:>8}{seen[name]:>12}")
