"""The Kafka side of the ingress: acks=all, bounded wait, errors -> 503.

Requests do not call `AIOKafkaProducer.send()` one record at a time: its per-record path
(metadata wait, partitioner, accumulator coroutine, one future and one RecordMetadata per
record) was the largest share of a webhook's CPU. Records are appended to an open record
batch per partition (aiokafka's public `create_batch`/`send_batch` API, C record builder)
and one flusher task hands the open batches to aiokafka. aiokafka keeps one produce
request in flight per broker, and `send_batch` waits while the previous batch of a
partition is queued, so batches grow by themselves under load and stay one record long
when the ingress is idle: no linger is added to the acknowledgement.

Keys are partitioned exactly like Kafka's default partitioner (murmur2 of the key), so
every report of a message lands on one partition, whichever client produced it.

Not idempotent on purpose: aiokafka cannot reset its producer id, so after a broker restart
an idempotent producer whose in-flight batch timed out is refused with
OutOfOrderSequenceNumber forever (tests/integration/test_ingress_outage.py found it). With
one request in flight per broker a retry cannot reorder records, and a record written twice
by a retry is a duplicate the worker's dedupe drops like any provider retry.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Sequence
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.producer.message_accumulator import BatchBuilder

from ingress.errors import BrokerUnavailable

log = logging.getLogger("dlr.ingress")

_FAILURES = (KafkaError, OSError, TimeoutError)


def murmur2(key: bytes) -> int:
    """Kafka's murmur2 (Java `Utils.murmur2`), word-wise: aiokafka's reads byte by byte."""
    m = 0x5BD1E995
    length = len(key)
    h = 0x9747B28C ^ length
    words = length >> 2
    for k in struct.unpack_from(f"<{words}I", key):
        k = (k * m) & 0xFFFFFFFF
        k = ((k ^ (k >> 24)) * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = length & 3
    if tail:
        rest = key[words << 2 :]
        if tail == 3:
            h ^= rest[2] << 16
        if tail >= 2:
            h ^= rest[1] << 8
        h = ((h ^ rest[0]) * m) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * m) & 0xFFFFFFFF
    return h ^ (h >> 15)


class Producer(Protocol):
    """What the ingress app needs from a producer: `RawProducer`, or a test's in-process double."""

    async def start(self) -> None:
        """Connect (raise `BrokerUnavailable` when the broker cannot be reached)."""

    async def stop(self) -> None:
        """Flush what is in flight and disconnect."""

    async def ready(self) -> bool:
        """True when the broker answers."""

    async def send_all(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Return only once every (key, value) is acknowledged; else `BrokerUnavailable`."""


class _OpenBatch:
    """Records for one partition that are not yet handed to aiokafka, and who waits on them.

    Its timer fails the waiters once the acknowledgement is overdue (503), one timer per
    batch instead of one per request.
    """

    __slots__ = ("builder", "partition", "timer", "waiters")

    def __init__(self, builder: BatchBuilder, partition: int, timeout_s: float) -> None:
        self.builder = builder
        self.partition = partition
        self.waiters: list[asyncio.Future[None]] = []
        self.timer = asyncio.get_running_loop().call_later(timeout_s, self.expire)

    def expire(self) -> None:
        self.settle(TimeoutError("Kafka acknowledgement overdue"))

    def delivered(self, delivery: asyncio.Future[object]) -> None:
        """aiokafka's callback once the broker acknowledged (or finally refused) the batch."""
        if delivery.cancelled():
            self.settle(TimeoutError("delivery cancelled"))
        else:
            self.settle(delivery.exception())

    def settle(self, error: BaseException | None) -> None:
        self.timer.cancel()
        for waiter in self.waiters:
            if not waiter.done():
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(error)


class RawProducer:
    """Produces raw envelopes keyed by message id and waits for the broker's acknowledgement."""

    def __init__(self, bootstrap: str, topic: str, timeout_s: float) -> None:
        self.topic = topic
        self.timeout_s = timeout_s
        self.bootstrap = bootstrap
        self._producer: AIOKafkaProducer | None = None  # None until started
        self._lock = asyncio.Lock()
        self._partitions: list[int] = []
        self._open: dict[int, _OpenBatch] = {}
        self._sealed: list[_OpenBatch] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._flusher: asyncio.Task[None] | None = None

    def _new(self) -> AIOKafkaProducer:
        # Created inside the running loop (aiokafka binds to it at construction).
        return AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=False,
            linger_ms=0,
            max_batch_size=256 * 1024,
            request_timeout_ms=int(max(self.timeout_s, 1) * 1000),
            retry_backoff_ms=50,
        )

    async def start(self) -> None:
        """Connect; failures here are retried lazily on the next request."""
        async with self._lock:
            if self._producer is not None:
                return
            producer = self._new()
            try:
                await asyncio.wait_for(producer.start(), self.timeout_s)
                partitions = await asyncio.wait_for(
                    producer.partitions_for(self.topic), self.timeout_s
                )
            except _FAILURES as exc:
                await producer.stop()
                raise BrokerUnavailable(f"Kafka not reachable: {type(exc).__name__}") from exc
            self._partitions = sorted(partitions)
            self._producer = producer
            self._closing = False
            self._flusher = asyncio.create_task(self._flush_forever(producer))

    async def stop(self) -> None:
        """Hand over what is open, flush what is in flight and disconnect."""
        if self._flusher is not None:
            self._closing = True
            self._wake.set()
            await asyncio.gather(self._flusher, return_exceptions=True)
            self._flusher = None
        if self._producer is not None:
            await self._flush_once(self._producer)
            await self._producer.stop()
        self._producer = None

    async def ready(self) -> bool:
        """True when the broker answers a metadata request."""
        if self._producer is None:
            try:
                await self.start()
            except BrokerUnavailable:
                return False
        assert self._producer is not None
        try:
            await asyncio.wait_for(self._producer.client.force_metadata_update(), 2.0)
        except _FAILURES:
            return False
        return bool(self._producer.client.cluster.brokers())

    async def send_all(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Produce (key, value) pairs; return only once every one is acknowledged."""
        if self._producer is None:
            await self.start()
        producer = self._producer
        assert producer is not None
        partitions = self._partitions
        touched: list[_OpenBatch] = []
        for key, value in items:
            partition = partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]
            batch = self._open.get(partition)
            if batch is None or batch.builder.append(timestamp=None, key=key, value=value) is None:
                if batch is not None:  # full: hand it over as it is
                    self._sealed.append(batch)
                batch = self._open[partition] = _OpenBatch(
                    producer.create_batch(), partition, self.timeout_s
                )
                if batch.builder.append(timestamp=None, key=key, value=value) is None:
                    raise BrokerUnavailable("record larger than the producer's batch size")
            if batch not in touched:
                touched.append(batch)
        loop = asyncio.get_running_loop()
        waiters = []
        for batch in touched:
            waiter: asyncio.Future[None] = loop.create_future()
            batch.waiters.append(waiter)
            waiters.append(waiter)
        self._wake.set()
        try:
            for waiter in waiters:
                await waiter
        except _FAILURES as exc:
            raise BrokerUnavailable(
                f"Kafka did not acknowledge within {self.timeout_s:.1f}s: {type(exc).__name__}"
            ) from exc

    async def _flush_forever(self, producer: AIOKafkaProducer) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._flush_once(producer)
            except Exception:  # never let the flusher die: every request would hang
                log.exception("ingress flusher failed; its requests answer 503")

    async def _flush_once(self, producer: AIOKafkaProducer) -> None:
        """Hand every open batch to aiokafka; settle its waiters when the broker answers."""
        batches = self._sealed + list(self._open.values())
        self._sealed = []
        self._open = {}
        handed = 0
        try:
            async with asyncio.timeout(self.timeout_s):
                for batch in batches:
                    # Waits while this partition's previous batch is queued: that is the batching.
                    delivery = await producer.send_batch(
                        batch.builder, self.topic, partition=batch.partition
                    )
                    delivery.add_done_callback(batch.delivered)
                    handed += 1
        except BaseException as exc:
            error = exc if isinstance(exc, _FAILURES) else KafkaError(repr(exc))
            for batch in batches[handed:]:
                batch.settle(error)  # never sent: the requests answer 503, the providers retry
            if not isinstance(exc, _FAILURES):
                raise
