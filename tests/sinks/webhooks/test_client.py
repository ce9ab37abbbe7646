"""The outbound webhook path against a real receiver process that fails on purpose.

The receiver (tests/webhook_receiver.py) verifies every request with the
`standardwebhooks` library and counts deliveries per webhook-id, so each test checks
what a real endpoint saw: signatures, attempts, the gaps between them, exactly once.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
import uuid
from typing import Any

import orjson
import pytest

from deploy.local.ports import free_port
from sinks.webhooks import (
    BreakerPolicy,
    CircuitBreaker,
    Endpoint,
    KeyedOrder,
    RetryPolicy,
    WebhookClient,
    WebhookMetrics,
)
from sinks.webhooks.client import retry_after_seconds
from tests.conftest import WEBHOOK_SECRET

FAST = RetryPolicy(attempts=6, total_s=20, initial_s=0.05, max_wait_s=2)


def endpoint(receiver: Any, path: str, timeout_s: float = 10.0) -> Endpoint:
    return Endpoint(f"{receiver.base_url}{path}", (WEBHOOK_SECRET,), timeout_s=timeout_s)


def body(n: int = 0) -> bytes:
    return orjson.dumps({"type": "fallback", "data": {"n": n}})


def new_id() -> str:
    return f"act_test_{uuid.uuid4().hex}"


def metric(metrics: WebhookMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return value or 0.0


async def test_retryable_failures_are_retried_until_delivered_once(receiver: Any) -> None:
    run = uuid.uuid4().hex[:8]
    cases = {
        f"/fail/3?{run}": 4,  # 500, 500, 500, 200
        f"/timeout/1?{run}": 2,  # hangs past the client timeout, then 200
        f"/ok?{run}": 1,
    }
    metrics = WebhookMetrics()
    async with WebhookClient(FAST, metrics=metrics) as client:
        ids = {path: new_id() for path in cases}
        outcomes = await asyncio.gather(
            *(
                client.deliver(endpoint(receiver, path, timeout_s=1.0), ids[path], body(), "t")
                for path in cases
            )
        )
    for (path, attempts), outcome in zip(cases.items(), outcomes, strict=True):
        assert outcome.delivered and outcome.status == 200, (path, outcome)
        assert outcome.attempts == attempts, (path, outcome)
        seen = receiver.stats(path.split("?")[0])[ids[path]]
        assert seen["delivered"] == 1 and seen["duplicates"] == 0
        assert seen["body"] == {"type": "fallback", "data": {"n": 0}}
    timeouts = outcomes[1]
    assert timeouts.delays and timeouts.seconds >= 1.0
    name = endpoint(receiver, f"/fail/3?{run}").name
    assert metric(metrics, "dlr_webhook_attempts_total", endpoint=name, result="5xx") == 3
    assert metric(metrics, "dlr_webhook_retries_total", endpoint=name) == 3
    assert metric(metrics, "dlr_webhook_deliveries_total", endpoint=name, outcome="delivered") == 1


async def test_429_waits_at_least_retry_after(receiver: Any) -> None:
    msg_id = new_id()
    async with WebhookClient(FAST) as client:
        outcome = await client.deliver(endpoint(receiver, "/429/1/1"), msg_id, body(), "t")
    assert outcome.delivered and outcome.attempts == 2
    times = receiver.stats("/429/1/1")[msg_id]["times"]
    assert times[1] - times[0] >= 0.95  # Retry-After: 1 (the jittered backoff is ~0.05 s)
    assert outcome.delays[0] >= 1.0


async def test_a_retry_after_beyond_the_budget_gives_up_at_once(receiver: Any) -> None:
    policy = RetryPolicy(attempts=5, total_s=5, initial_s=0.05, max_wait_s=1)
    async with WebhookClient(policy) as client:
        outcome = await client.deliver(endpoint(receiver, "/429/9/60"), new_id(), body(), "t")
    assert outcome.outcome == "exhausted" and outcome.status == 429
    assert outcome.attempts == 1 and outcome.seconds < 2


async def test_a_permanent_refusal_is_not_retried(receiver: Any) -> None:
    msg_id = new_id()
    metrics = WebhookMetrics()
    async with WebhookClient(FAST, metrics=metrics) as client:
        outcome = await client.deliver(endpoint(receiver, "/gone/unit"), msg_id, body(), "fallback")
    assert outcome.outcome == "refused" and outcome.status == 410 and outcome.attempts == 1
    assert outcome.error == "fallback refused with HTTP 410"
    assert len(receiver.stats("/gone/unit")[msg_id]["times"]) == 1
    name = endpoint(receiver, "/gone/unit").name
    assert metric(metrics, "dlr_webhook_attempts_total", endpoint=name, result="4xx") == 1


async def test_the_budget_ends_in_exhausted_with_the_last_status(receiver: Any) -> None:
    policy = RetryPolicy(attempts=3, total_s=10, initial_s=0.01, max_wait_s=0.05)
    async with WebhookClient(policy) as client:
        outcome = await client.deliver(endpoint(receiver, "/fail/99"), new_id(), body(), "t")
    assert outcome.outcome == "exhausted" and outcome.status == 500 and outcome.attempts == 3
    assert outcome.error is not None and outcome.error.startswith("HTTP 500")
    assert len(outcome.delays) == 2


async def test_retry_delays_grow_exponentially_and_are_jittered(receiver: Any) -> None:
    """Full jitter: retry k waits uniformly in [0, 0.05 * 2**k]; the receiver saw the gaps."""
    policy = RetryPolicy(attempts=6, total_s=30, initial_s=0.05, max_wait_s=10)
    ids = [new_id() for _ in range(30)]
    no_breaker = BreakerPolicy(failures=10_000)  # 30 x 5 failures on purpose
    async with WebhookClient(policy, concurrency=64, breaker=no_breaker) as client:
        outcomes = await asyncio.gather(
            *(client.deliver(endpoint(receiver, "/fail/5"), i, body(), "t") for i in ids)
        )
    assert all(o.delivered and o.attempts == 6 and len(o.delays) == 5 for o in outcomes)
    means = []
    for k in range(5):
        window = 0.05 * 2**k
        column = [o.delays[k] for o in outcomes]
        means.append(statistics.fmean(column))
        assert max(column) <= window, (k, column)
        assert window * 0.3 <= means[k] <= window * 0.7, (k, means[k])
        assert statistics.stdev(column) >= window * 0.15, (k, column)  # spread, not fixed
    assert means == sorted(means) and means[4] > 4 * means[1], means
    # The receiver saw those waits between the attempts of each id.
    stats = receiver.stats("/fail/5")
    gaps = []
    for msg_id, outcome in zip(ids, outcomes, strict=True):
        times = stats[msg_id]["times"]
        assert len(times) == 6 and stats[msg_id]["delivered"] == 1
        gap = [b - a for a, b in itertools.pairwise(times)]
        assert all(g >= d - 0.005 for g, d in zip(gap, outcome.delays, strict=True))
        gaps.append(gap)
    # Windows 0.1 s and 0.8 s: mean waits 0.05 and 0.4 s (+ the same request time in both).
    grew = statistics.fmean(g[4] for g in gaps) - statistics.fmean(g[1] for g in gaps)
    assert grew > 0.2, grew


async def test_a_dead_endpoint_opens_its_circuit_and_does_not_hold_back_others(
    receiver: Any,
) -> None:
    dead = Endpoint(f"http://127.0.0.1:{free_port()}/hook", (WEBHOOK_SECRET,), timeout_s=1)
    metrics = WebhookMetrics()
    policy = RetryPolicy(attempts=50, total_s=3, initial_s=0.05, max_wait_s=0.2)
    client = WebhookClient(
        policy, breaker=BreakerPolicy(failures=3, cooldown_s=1.0), concurrency=4, metrics=metrics
    )
    await client.start()
    try:
        started = time.monotonic()
        dying = [
            asyncio.create_task(client.deliver(dead, new_id(), body(), "t")) for _ in range(20)
        ]
        ok_ids = [new_id() for _ in range(20)]
        healthy = await asyncio.gather(
            *(client.deliver(endpoint(receiver, "/ok"), i, body(), "t") for i in ok_ids)
        )
        healthy_done = time.monotonic() - started
        assert all(o.delivered for o in healthy) and healthy_done < 1.5
        assert client.circuit(dead).state != "closed"
        given_up = await asyncio.gather(*dying)
    finally:
        await client.close()
    assert all(o.outcome == "exhausted" for o in given_up)
    assert {o.error for o in given_up} >= {f"circuit open for {dead.name}"}
    errors = metric(metrics, "dlr_webhook_attempts_total", endpoint=dead.name, result="error")
    # Without the breaker: 20 deliveries x up to 50 attempts; with it: a few per cooldown.
    assert 3 <= errors <= 20 + 10, errors
    assert metric(metrics, "dlr_webhook_circuit_opened_total", endpoint=dead.name) >= 1


def state(breaker: CircuitBreaker) -> str:
    """The state as a plain string (mypy narrows the attribute across calls otherwise)."""
    return breaker.state


def test_the_breaker_opens_probes_once_and_closes() -> None:
    now = [0.0]
    breaker = CircuitBreaker(BreakerPolicy(failures=2, cooldown_s=10), clock=lambda: now[0])
    assert breaker.acquire() == 0
    breaker.failure()
    assert state(breaker) == "closed"
    breaker.failure()
    assert state(breaker) == "open" and breaker.acquire() == 10
    now[0] = 10.0
    assert breaker.acquire() == 0 and state(breaker) == "half_open"  # the probe
    assert breaker.acquire() > 0  # everyone else waits for it
    breaker.failure()
    assert state(breaker) == "open" and breaker.acquire() == 10
    now[0] = 20.0
    assert breaker.acquire() == 0
    breaker.success()
    assert state(breaker) == "closed" and breaker.acquire() == 0


async def test_keyed_order_runs_one_key_in_order_and_keys_in_parallel() -> None:
    order = KeyedOrder()
    log: list[tuple[str, int]] = []

    async def work(key: str, n: int, delay: float) -> None:
        async with turn_of[(key, n)]:
            log.append((key, n))
            await asyncio.sleep(delay)

    turn_of = {(k, n): order.turn(k) for n in range(4) for k in ("a", "b")}
    started = time.monotonic()
    # Later turns are scheduled first and sleep less: order must still hold per key.
    await asyncio.gather(
        *(work(k, n, 0.05 * (4 - n)) for n in reversed(range(4)) for k in ("a", "b"))
    )
    assert [n for k, n in log if k == "a"] == [0, 1, 2, 3]
    assert [n for k, n in log if k == "b"] == [0, 1, 2, 3]
    assert time.monotonic() - started < 0.5 + 0.2  # a and b overlapped (0.5 s each alone)
    assert len(order) == 0


@pytest.mark.parametrize(
    ("url", "secrets", "message"),
    [
        pytest.param("ftp://x/y", (WEBHOOK_SECRET,), "not an http", id="scheme"),
        pytest.param("https://x/y", (), "no signing secret", id="no-secret"),
        pytest.param("https://x/y", ("whsec_!!",), "whsec_", id="bad-secret"),
    ],
)
def test_a_bad_endpoint_is_refused_at_configuration(
    url: str, secrets: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Endpoint(url, secrets)


def test_endpoint_names_hide_path_and_query() -> None:
    name = Endpoint("https://hooks.example.com:8443/s/T0/B0/XXXX?token=abc", (WEBHOOK_SECRET,)).name
    assert name.startswith("hooks.example.com:8443#") and "XXXX" not in name and "abc" not in name


def test_retry_after_takes_seconds_or_an_http_date() -> None:
    assert retry_after_seconds("120", 0.0) == 120.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470.0) == 10.0
    assert retry_after_seconds("soon", 0.0) is None and retry_after_seconds(None, 0.0) is None
