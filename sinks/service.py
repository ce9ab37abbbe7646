"""`dlr sink`: consume dlr.status.v1, insert into ClickHouse in batches, then commit.

The same loop, with its own consumer group (`<DLR_SINK_GROUP>-sends`) and metrics
(`dlr_sink_sends_*`), runs a second time in the process for the registrations of
`dlr.sends.v1` into the `sends` table (`Source`, `SENDS`).

Batches close by size (`DLR_SINK_BATCH_ROWS`) or age (`DLR_SINK_BATCH_MS`). Offsets are
committed only after ClickHouse accepted the batch; while ClickHouse is down the same batch
is retried with exponential backoff and full jitter and nothing more is fetched, so memory
stays bounded by two batches (that one and the next, parsed). A record that is not a JSON
object goes to the dead-letter topic at once; a batch ClickHouse refuses as data (not as
availability), or with a record that breaks the canonical contract, is split to isolate
the bad events, which go there too: one bad record never stops the sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import random
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from sinks._http import serve_metrics
from sinks.clickhouse import rows, sends
from sinks.clickhouse.client import connect
from sinks.clickhouse.cluster import ClusterSpec
from sinks.clickhouse.migrate import migrate
from sinks.clickhouse.writer import EVENTS, SENDS, EventWriter, TableSpec
from sinks.errors import SinkInvalid, SinkRejected, SinkUnavailable
from sinks.settings import SinkSettings

log = logging.getLogger("dlr.sink")


@dataclass(frozen=True, slots=True)
class Source:
    """What one sink loop consumes and where it writes."""

    #: The topic, from the settings.
    topic: Any
    #: Consumer group suffix (appended to DLR_SINK_GROUP).
    group_suffix: str
    #: Metric name prefix.
    prefix: str
    #: A record's value (and offset) as the writer's input; None skips it.
    parse: Any
    spec: TableSpec


STATUS = Source(
    lambda s: s.status_topic, "", "dlr_sink", lambda value, offset: rows.parse(value), EVENTS
)
SEND_RECORDS = Source(lambda s: s.sends_topic, "-sends", "dlr_sink_sends", sends.parse, SENDS)


@dataclass
class SinkMetrics:
    """Rows written, batch latency, retries, lag."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    prefix: str = "dlr_sink"

    def __post_init__(self) -> None:
        r, p = self.registry, self.prefix
        self.rows = Counter(f"{p}_rows", "Rows inserted into ClickHouse", registry=r)
        self.batches = Counter(f"{p}_batches", "Batches inserted", registry=r)
        self.retries = Counter(f"{p}_retries", "Batch insert retries", registry=r)
        self.rejected = Counter(f"{p}_rejected", "Records ClickHouse refused", registry=r)
        self.invalid = Counter(
            f"{p}_invalid", "Records that break the contract of their topic", registry=r
        )
        self.batch_seconds = Histogram(
            f"{p}_batch_seconds",
            "Insert time per batch",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.lag = Gauge(f"{p}_lag", "Records behind the end of the topic", registry=r)
        self.up = Gauge(f"{p}_clickhouse_up", "1 when the last insert succeeded", registry=r)


def backoff(attempt: int, base: float = 0.2, cap: float = 10.0) -> float:
    """Exponential backoff with full jitter (AWS architecture blog's 'Full Jitter')."""
    return random.uniform(0, min(cap, base * (2**attempt)))


class Sink:
    """The consume -> batch -> insert -> commit loop."""

    def __init__(
        self, settings: SinkSettings, database: str | None = None, source: Source = STATUS
    ) -> None:
        self.settings = settings
        self.source = source
        self.database = database or settings.clickhouse_database
        self.metrics = SinkMetrics(prefix=source.prefix)
        self._stop = asyncio.Event()
        #: Set once ClickHouse is connected and migrated (or the sink stopped before).
        self.connected = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self.writer: EventWriter | None = None

    def stop(self) -> None:
        """Ask the loop to finish its current batch and exit."""
        self._stop.set()
        self.connected.set()

    @property
    def stopped(self) -> bool:
        """Whether stop() was called."""
        return self._stop.is_set()

    async def _connect_clickhouse(self) -> EventWriter:
        attempt = 0
        while True:
            try:
                client = await asyncio.to_thread(connect, self.settings)
                applied = await asyncio.to_thread(
                    migrate,
                    client,
                    self.database,
                    retention_days=self.settings.retention_days,
                    clear_pii_days=self.settings.clear_pii_days,
                    cluster=ClusterSpec.from_settings(self.settings),
                    audit_retention_days=self.settings.erasure_audit_days,
                )
                if applied:
                    log.info("migrations applied", extra={"applied": applied})
                return EventWriter(
                    client,
                    self.database,
                    pii_mode=self.settings.pii_mode,
                    salt=self.settings.pii_salt,
                    spec=self.source.spec,
                )
            except Exception as exc:
                delay = backoff(attempt)
                attempt += 1
                log.warning(
                    "clickhouse not ready",
                    extra={"error": str(exc)[:200], "retry_in": round(delay, 2)},
                )
                if await self._sleep(delay):
                    raise
                continue

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopped; True when stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
        return self._stop.is_set()

    async def run(self) -> None:
        """Run until stop(); commits only what ClickHouse accepted."""
        self.writer = await self._connect_clickhouse()
        self.connected.set()
        s = self.settings
        consumer = AIOKafkaConsumer(
            self.source.topic(s),
            bootstrap_servers=s.bootstrap,
            group_id=s.sink_group + self.source.group_suffix,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=s.sink_batch_rows,
            max_poll_interval_ms=3_600_000,
            fetch_max_wait_ms=50,
        )
        # Not idempotent: aiokafka cannot reset its producer id, so after a broker restart
        # with a batch in flight an idempotent producer is refused forever (see
        # ingress/producer.py); a dead letter written twice is harmless.
        producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap, acks="all", enable_idempotence=False
        )
        self._consumer, self._producer = consumer, producer
        await consumer.start()
        await producer.start()
        try:
            await self._loop(consumer)
        finally:
            await consumer.stop()
            await producer.stop()

    async def _loop(self, consumer: AIOKafkaConsumer) -> None:
        """Fetch and parse the next batch while the previous one is being inserted.

        At most one insert is in flight, and the next one starts only after it and its
        commit are done: offsets are committed in order, and while ClickHouse is down the
        sink holds two batches at most (the one being retried and the next, parsed).
        Overlapping the parse with the server's share of the insert took `dlr sink` from
        45-47 k to 52-55 k rows/s (bench.sink, 2 M events, two runs).
        """
        s = self.settings
        batch: list[ConsumerRecord[bytes, bytes]] = []
        fetched_up_to: dict[TopicPartition, int] = {}
        in_flight: asyncio.Task[None] | None = None
        opened = time.monotonic()
        try:
            while not self._stop.is_set():
                if in_flight is not None and in_flight.done():
                    in_flight.result()  # what the insert or its commit raised, at once
                    in_flight = None
                timeout = max(0.0, s.sink_batch_ms / 1000 - (time.monotonic() - opened))
                fetched = await consumer.getmany(
                    timeout_ms=int(timeout * 1000) if batch else 200,
                    max_records=s.sink_batch_rows - len(batch),
                )
                if not batch:
                    opened = time.monotonic()
                for tp, records in fetched.items():
                    batch.extend(records)
                    fetched_up_to[tp] = records[-1].offset + 1
                age = time.monotonic() - opened
                if batch and (len(batch) >= s.sink_batch_rows or age * 1000 >= s.sink_batch_ms):
                    parsed = await self._parse(batch)
                    if in_flight is not None:
                        await in_flight
                    in_flight = asyncio.create_task(self._store(consumer, *parsed))
                    batch = []
                    opened = time.monotonic()
                self._update_lag(consumer, fetched_up_to)
            if in_flight is not None:
                await in_flight
                in_flight = None
            if batch:
                await self._store(consumer, *await self._parse(batch))
        finally:
            if in_flight is not None and not in_flight.done():
                in_flight.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await in_flight

    def _update_lag(
        self, consumer: AIOKafkaConsumer, fetched_up_to: dict[TopicPartition, int]
    ) -> None:
        """Records behind the end of each assigned partition (from the last fetch response)."""
        lag = 0
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is not None and tp in fetched_up_to:
                lag += max(0, high - fetched_up_to[tp])
        self.metrics.lag.set(lag)

    async def _parse(
        self, batch: list[ConsumerRecord[bytes, bytes]]
    ) -> tuple[list[dict[str, Any]], dict[TopicPartition, int]]:
        """The batch's records as JSON objects (others to the dead letter), and its offsets."""
        records: list[dict[str, Any]] = []
        offsets: dict[TopicPartition, int] = {}
        for record in batch:
            tp = TopicPartition(record.topic, record.partition)
            offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
            try:
                parsed = self.source.parse(record.value or b"", record.offset)
            except ValueError as exc:
                self.metrics.invalid.inc()
                raw = (record.value or b"").decode("utf-8", "replace")
                await self._dead_letter(
                    record.key, "sink_unparseable", f"unparseable record: {exc}", raw=raw
                )
                continue
            if parsed is not None:
                records.append(parsed)
        return records, offsets

    async def _store(
        self,
        consumer: AIOKafkaConsumer,
        records: list[dict[str, Any]],
        offsets: dict[TopicPartition, int],
    ) -> None:
        """Insert a parsed batch (retrying until ClickHouse takes it), then commit it.

        When a rebalance took a partition away while the batch was inserted, the commit is
        refused: the batch's new owner reads it again from the last commit (the tables keep
        one row per event id, so nothing counts twice); the partitions this sink kept are
        committed with its next batch of them (a restart before that re-reads them, counted
        once as well). Crashing instead would take the sink down on every rebalance.
        """
        await self._write(records)
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning(
                "batch inserted, its commit lost to a rebalance; the new owner re-reads it",
                extra={"error": str(exc)},
            )

    async def _write(self, records: list[dict[str, Any]]) -> None:
        assert self.writer is not None
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                written = await asyncio.to_thread(self.writer.write, records)
            except SinkUnavailable as exc:
                self.metrics.up.set(0)
                self.metrics.retries.inc()
                delay = backoff(attempt)
                attempt += 1
                log.warning(
                    "clickhouse insert failed, retrying",
                    extra={
                        "error": str(exc)[:200],
                        "attempt": attempt,
                        "retry_in": round(delay, 2),
                        "rows": len(records),
                    },
                )
                if await self._sleep(delay):  # keep the batch: never commit past it
                    raise
                continue
            except SinkRejected as exc:
                await self._isolate(records, exc)
                return
            self.metrics.up.set(1)
            self.metrics.rows.inc(written)
            self.metrics.batches.inc()
            self.metrics.batch_seconds.observe(time.perf_counter() - started)
            return

    async def _isolate(self, records: list[dict[str, Any]], error: SinkRejected) -> None:
        """Bisect a refused batch so that only the bad events are dead-lettered."""
        if len(records) == 1:
            invalid = isinstance(error, SinkInvalid)
            (self.metrics.invalid if invalid else self.metrics.rejected).inc()
            message_id = records[0].get("message_id")
            await self._dead_letter(
                message_id.encode() if isinstance(message_id, str) else None,
                "sink_invalid" if invalid else "sink_rejected",
                str(error),
                event=records[0],
            )
            return
        middle = len(records) // 2
        for part in (records[:middle], records[middle:]):
            await self._write(part)

    async def _dead_letter(self, key: bytes | None, reason: str, detail: str, **what: Any) -> None:
        """One record to the dead-letter topic: why, and the record (raw text or event)."""
        assert self._producer is not None
        await self._producer.send_and_wait(
            self.settings.deadletter_topic,
            key=key,
            value=orjson.dumps({"reason": reason, "detail": detail[:500], **what}),
        )


async def serve_http(sink: Sink, host: str, port: int, *more: Sink) -> web.AppRunner:
    """/healthz and /metrics of the sink process (every loop's metrics)."""
    return await serve_metrics(
        sink.metrics.registry, host, port, *(s.metrics.registry for s in more)
    )


def tune_gc() -> None:
    """Garbage collection for a process that turns batches of records into objects.

    A batch allocates tens of thousands of dicts that live until its insert; with the
    default thresholds (700 allocations) the collector runs over them again and again:
    sink path 53.6 k -> 59.0 k rows/s (1 M events, 20,000-row batches). Startup objects
    are frozen out of every collection. The price: a full collection is rare, so anything
    the batch path leaves in a reference cycle stays for a long time (EventWriter reuses
    one insert context for that reason; tests/integration/test_event_writer.py).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)


async def main_async(settings: SinkSettings) -> None:
    """Run the sink with its HTTP endpoints until SIGINT/SIGTERM."""
    tune_gc()
    sink = Sink(settings)
    registrations = Sink(settings, source=SEND_RECORDS)
    loop = asyncio.get_running_loop()

    def stop() -> None:
        sink.stop()
        registrations.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    runner = await serve_http(
        sink, settings.sink_metrics_host, settings.sink_metrics_port, registrations
    )
    try:
        # the events' loop migrates first; the other waits for its tables
        await asyncio.gather(sink.run(), _after_migration(sink, registrations))
    finally:
        await runner.cleanup()


async def _after_migration(first: Sink, then: Sink) -> None:
    """Run `then` once `first` has migrated the database (both need its tables)."""
    await first.connected.wait()
    if not first.stopped:
        await then.run()
