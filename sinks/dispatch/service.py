"""`dlr dispatch`: deliver every action of dlr.actions.v1 to its endpoints, or dead-letter it.

Per record: the endpoints configured for its type (`DLR_ACTION_ENDPOINTS`, plus `"*"`),
one delivery each through `sinks.webhooks` (Standard Webhooks signature with the first
of `DLR_ACTION_SIGNING_SECRETS`, `webhook-id` = `action_id`, retries with backoff and
full jitter within the budget, per-endpoint limit and circuit breaker). The body is the
Standard Webhooks envelope `{"type", "timestamp", "data": <the action>}`.

- **Never lost**: a partition's offset is committed only up to its first record that is
  not finished, and a record is finished when each of its deliveries was either
  accepted (2xx) or written to `DLR_ACTIONS_DEADLETTER_TOPIC` (acknowledged by Kafka)
  with the last status and error. A crash (or a rebalance, which cancels the deliveries
  of the partitions that leave) re-delivers the unfinished ones with the same
  `webhook-id`, which receivers dedupe on.
- **In order per message and endpoint**: deliveries are queued per (endpoint, message
  id) in offset order (`KeyedOrder`), so `delivered_after_fallback` never overtakes its
  `fallback`; everything else runs concurrently, up to `DLR_DISPATCH_MAX_IN_FLIGHT`
  actions, after which no more are fetched.
- **One dead endpoint does not hold back the others**: its circuit opens and its
  deliveries wait inside their time budget without connections, while the others'
  flow; after `DLR_DISPATCH_RETRY_TOTAL_S` they are dead-lettered and their offsets move
  on. (Until then they occupy in-flight slots: with a budget of 300 s, an endpoint would
  have to receive `DLR_DISPATCH_MAX_IN_FLIGHT` actions within 300 s to stall the rest.)
- An action type without an endpoint is counted (`dlr_dispatch_unrouted_total`) and
  passed; a record that is not an action is dead-lettered as `invalid_action`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from tenacity import AsyncRetrying, retry_if_exception_type, wait_random_exponential

from sinks._http import serve_metrics
from sinks.dispatch.settings import DispatchSettings
from sinks.webhooks import (
    BreakerPolicy,
    Endpoint,
    KeyedOrder,
    Outcome,
    RetryPolicy,
    WebhookClient,
    WebhookMetrics,
)
from sinks.webhooks.order import Turn

__all__ = [
    "DispatchMetrics",
    "Dispatcher",
    "dead_letter",
    "envelope",
    "main_async",
    "now_iso",
    "retry_policy",
    "routes_of",
]

log = logging.getLogger("dlr.dispatch")

#: Seconds a stopping dispatcher lets in-flight deliveries finish before it cancels them.
SHUTDOWN_GRACE_S = 10.0
COMMIT_EVERY_S = 0.5


@dataclass
class DispatchMetrics:
    """The dispatcher's counters plus the webhook client's, in one registry."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.webhooks = WebhookMetrics(r)
        self.actions = Counter("dlr_dispatch_actions", "Action records read", ["type"], registry=r)
        self.delivered = Counter(
            "dlr_dispatch_delivered",
            "Deliveries accepted (2xx), by action type",
            ["type"],
            registry=r,
        )
        self.deadletters = Counter(
            "dlr_dispatch_deadletters",
            "Deliveries dead-lettered: refused, exhausted, invalid_action",
            ["reason"],
            registry=r,
        )
        self.unrouted = Counter(
            "dlr_dispatch_unrouted", "Actions of a type no endpoint takes", ["type"], registry=r
        )
        self.in_flight = Gauge("dlr_dispatch_in_flight", "Actions being delivered", registry=r)
        self.lag = Gauge("dlr_dispatch_lag", "Records behind the end of dlr.actions.v1", registry=r)
        self.latency = Histogram(
            "dlr_dispatch_action_to_delivery_seconds",
            "From the action's time (`at`: the canonical event or the due time) to the 2xx",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )


def routes_of(settings: DispatchSettings) -> dict[str, tuple[Endpoint, ...]]:
    """Action type (or "*") -> endpoints, each signed with the configured secrets.

    ValueError when endpoints are configured without a valid signing secret.
    """
    routes = settings.action_routes
    if any(routes.values()) and not settings.signing_secrets:
        raise ValueError("DLR_ACTION_ENDPOINTS is set but DLR_ACTION_SIGNING_SECRETS is empty")
    made: dict[str, Endpoint] = {}
    out: dict[str, tuple[Endpoint, ...]] = {}
    for kind, urls in routes.items():
        for url in urls:
            if url not in made:
                made[url] = Endpoint(url, settings.signing_secrets, settings.dispatch_timeout_s)
        out[kind] = tuple(made[url] for url in urls)
    return out


def envelope(action: dict[str, Any]) -> bytes:
    """The Standard Webhooks body of an action: {"type", "timestamp", "data"}."""
    return orjson.dumps(
        {
            "type": action["type"],
            "timestamp": action.get("at") or now_iso(),
            "data": action,
        }
    )


def now_iso() -> str:
    """The current UTC time as RFC 3339 with a Z."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _at(action: dict[str, Any]) -> float | None:
    at = action.get("at")
    if not isinstance(at, str):
        return None
    try:
        return datetime.fromisoformat(at).timestamp()
    except ValueError:
        return None


@dataclass(slots=True)
class _Record:
    """One consumed record until all its deliveries finished."""

    offset: int
    remaining: int = 0


class Dispatcher:
    """The consume -> deliver -> dead-letter -> commit loop (see the module docstring)."""

    def __init__(self, settings: DispatchSettings, metrics: DispatchMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or DispatchMetrics()
        self.routes = routes_of(settings)
        self._by_type: dict[str, tuple[Endpoint, ...]] = {}
        self._by_kind: dict[str, tuple[Any, Any]] = {}
        self.client = WebhookClient(
            retry_policy(settings),
            breaker=BreakerPolicy(
                settings.dispatch_breaker_failures, settings.dispatch_breaker_cooldown_s
            ),
            concurrency=settings.dispatch_concurrency,
            metrics=self.metrics.webhooks,
            user_agent="dlr-dispatch/1",
        )
        self.order = KeyedOrder()
        self._stop = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._records: defaultdict[TopicPartition, deque[_Record]] = defaultdict(deque)
        self._tasks: defaultdict[TopicPartition, set[asyncio.Task[None]]] = defaultdict(set)
        self._in_flight = 0
        self._fetched: dict[TopicPartition, int] = {}
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None

    def stop(self) -> None:
        """Stop fetching; in-flight deliveries get `SHUTDOWN_GRACE_S` to finish."""
        self._stop.set()

    def _counters(self, kind: str) -> tuple[Any, Any]:
        """(actions read, delivered) counters of a type, resolved once per type."""
        found = self._by_kind.get(kind)
        if found is None:
            metrics = self.metrics
            found = self._by_kind[kind] = (
                metrics.actions.labels(kind),
                metrics.delivered.labels(kind),
            )
        return found

    def endpoints(self, kind: str) -> tuple[Endpoint, ...]:
        """Endpoints of an action type: its own, then the "*" ones (each URL once)."""
        found = self._by_type.get(kind)
        if found is None:
            seen: dict[str, Endpoint] = {}
            for endpoint in (*self.routes.get(kind, ()), *self.routes.get("*", ())):
                seen.setdefault(endpoint.url, endpoint)
            found = self._by_type[kind] = tuple(seen.values())
        return found

    async def run(self) -> None:
        """Run until stop(); commits only finished records."""
        s = self.settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap,
            group_id=s.dispatch_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=500,
            fetch_max_wait_ms=50,
        )
        consumer.subscribe([s.actions_topic], listener=_Revoke(self))
        # Not idempotent, as in the sink: aiokafka cannot reset a producer id after a
        # broker restart; a dead letter written twice is harmless (same action_id).
        producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap, acks="all", enable_idempotence=False, linger_ms=5
        )
        self._consumer, self._producer = consumer, producer
        await self.client.start()
        await producer.start()
        await consumer.start()
        try:
            await self._loop(consumer)
            await self._drain(consumer)
        finally:
            await consumer.stop()
            await producer.stop()
            await self.client.close()

    async def _loop(self, consumer: AIOKafkaConsumer) -> None:
        max_in_flight = self.settings.dispatch_max_in_flight
        committed = time.monotonic()
        while not self._stop.is_set():
            if self._in_flight >= max_in_flight:
                self._room.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._room.wait(), COMMIT_EVERY_S)
            else:
                fetched = await consumer.getmany(
                    timeout_ms=200, max_records=max(1, min(500, max_in_flight - self._in_flight))
                )
                for tp, records in fetched.items():
                    for record in records:
                        self._start(tp, record)
                    self._fetched[tp] = records[-1].offset + 1
                self._update_lag(consumer)
            if time.monotonic() - committed >= COMMIT_EVERY_S:
                await self._commit(consumer)
                committed = time.monotonic()

    async def _drain(self, consumer: AIOKafkaConsumer) -> None:
        """On stop: let deliveries in flight finish (bounded), commit, cancel the rest."""
        tasks = [t for group in self._tasks.values() for t in group]
        if tasks:
            await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_S)
        await self._commit(consumer)
        for tp in list(self._tasks):
            await self._forget(tp)

    def _start(self, tp: TopicPartition, record: ConsumerRecord[bytes, bytes]) -> None:
        entry = _Record(record.offset)
        self._records[tp].append(entry)
        try:
            action = orjson.loads(record.value or b"")
            kind = action["type"]
            action_id = action["action_id"]
            if not (isinstance(kind, str) and isinstance(action_id, str) and action_id):
                raise TypeError("type and action_id must be strings")
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            self.metrics.deadletters.labels("invalid_action").inc()
            dead = {
                "kind": "dead",
                "reason": "invalid_action",
                "error": f"{type(exc).__name__}: {exc}"[:300],
                "at": now_iso(),
                "raw": (record.value or b"").decode("utf-8", "replace"),
            }
            self._spawn(tp, entry, self._dead_letter(record.key, dead))
            return
        read, _ = self._counters(kind)
        read.inc()
        endpoints = self.endpoints(kind)
        if not endpoints:
            self.metrics.unrouted.labels(kind).inc()
            return
        payload = envelope(action)
        for endpoint in endpoints:
            turn = self.order.turn((endpoint.url, record.key))
            self._spawn(
                tp,
                entry,
                self._deliver(turn, endpoint, action_id, kind, payload, action, record.key),
                turn,
            )

    def _spawn(
        self, tp: TopicPartition, entry: _Record, work: Any, turn: Turn | None = None
    ) -> None:
        entry.remaining += 1
        self._in_flight += 1
        self.metrics.in_flight.set(self._in_flight)
        task: asyncio.Task[None] = asyncio.create_task(work)
        tasks = self._tasks[tp]
        tasks.add(task)

        def finished(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            if turn is not None:
                turn.close()  # also when cancelled before it ran
            self._in_flight -= 1
            self.metrics.in_flight.set(self._in_flight)
            if self._in_flight < self.settings.dispatch_max_in_flight:
                self._room.set()
            if task.cancelled():
                return
            failure = task.exception()
            if failure is not None:  # a bug: keep the record unfinished (re-delivered)
                log.error("delivery task failed", exc_info=failure)
                return
            entry.remaining -= 1

        task.add_done_callback(finished)

    async def _deliver(
        self,
        turn: Turn,
        endpoint: Endpoint,
        action_id: str,
        kind: str,
        payload: bytes,
        action: dict[str, Any],
        key: bytes | None,
    ) -> None:
        async with turn:
            outcome = await self.client.deliver(endpoint, action_id, payload, kind)
        if outcome.delivered:
            self._counters(kind)[1].inc()
            at = _at(action)
            if at is not None:
                self.metrics.latency.observe(max(0.0, time.time() - at))
            return
        self.metrics.deadletters.labels(outcome.outcome).inc()
        log.warning(
            "action dead-lettered",
            extra={
                "action_id": action_id,
                "type": kind,
                "endpoint": endpoint.name,
                "status": outcome.status,
                "error": outcome.error,
            },
        )
        await self._dead_letter(key, dead_letter(action, endpoint, outcome))

    async def _dead_letter(self, key: bytes | None, record: dict[str, Any]) -> None:
        """Write to the actions' dead-letter topic, retrying until Kafka acknowledges."""
        assert self._producer is not None
        producer = self._producer
        value = orjson.dumps(record)
        retrying = AsyncRetrying(
            wait=wait_random_exponential(multiplier=0.2, max=10),
            retry=retry_if_exception_type(KafkaError),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await producer.send_and_wait(
                    self.settings.actions_deadletter_topic, value=value, key=key
                )

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        """Commit, per partition, up to the first record not finished."""
        offsets = {}
        for tp, records in self._records.items():
            last = None
            while records and records[0].remaining == 0:
                last = records.popleft().offset
            if last is not None:
                offsets[tp] = last + 1
        if offsets:
            try:
                await consumer.commit(offsets)
            except KafkaError as exc:  # e.g. a rebalance: the records come again
                log.warning("commit failed", extra={"error": str(exc)[:200]})

    async def _forget(self, tp: TopicPartition) -> None:
        """Cancel a partition's deliveries and drop its records (they will come again)."""
        tasks = list(self._tasks.pop(tp, ()))
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._records.pop(tp, None)

    def _update_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Records behind the end of each assigned partition (from the last fetch)."""
        lag = 0
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is not None and tp in self._fetched:
                lag += max(0, high - self._fetched[tp])
        self.metrics.lag.set(lag)


def dead_letter(action: dict[str, Any], endpoint: Endpoint, outcome: Outcome) -> dict[str, Any]:
    """The dead-letter record of one failed delivery (what `dlr dispatch retry` reads)."""
    return {
        "kind": "dead",
        "reason": outcome.outcome,
        "action_id": action["action_id"],
        "type": action["type"],
        "endpoint": endpoint.name,
        "at": now_iso(),
        **outcome.to_dict(),
        "action": action,
    }


def retry_policy(settings: DispatchSettings) -> RetryPolicy:
    """The retry budget from the settings."""
    return RetryPolicy(
        attempts=settings.dispatch_attempts,
        total_s=settings.dispatch_retry_total_s,
        initial_s=settings.dispatch_retry_initial_s,
        max_wait_s=settings.dispatch_retry_max_s,
    )


class _Revoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """On a rebalance: commit what is finished, cancel the rest of the leaving partitions."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        consumer = self.dispatcher._consumer
        if consumer is not None:
            await self.dispatcher._commit(consumer)
        for tp in revoked:
            await self.dispatcher._forget(tp)
            self.dispatcher._fetched.pop(tp, None)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        """Nothing to do: committed offsets say where to start."""


async def main_async(settings: DispatchSettings) -> None:
    """Run the dispatcher with its HTTP endpoints until SIGINT/SIGTERM."""
    dispatcher = Dispatcher(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, dispatcher.stop)
    runner = await serve_metrics(
        dispatcher.metrics.registry, settings.dispatch_metrics_host, settings.dispatch_metrics_port
    )
    routed = {kind: [e.name for e in endpoints] for kind, endpoints in dispatcher.routes.items()}
    log.info("dispatching", extra={"routes": routed or "none (actions are counted, not sent)"})
    try:
        await dispatcher.run()
    finally:
        await runner.cleanup()
