"""The suppression list as the sender's API serves it: an in-process copy of the topic.

Store: a dictionary in each API process, fed by a Kafka consumer of the compacted
`dlr.suppressions.v1` (no consumer group: every process reads every partition from the
beginning at start, then follows the topic). Why this store:

- a check is a dictionary lookup (under a microsecond), so `GET /v1/suppressions/{n}`
  stays far below 5 ms at p99 whatever the list's size; a ClickHouse primary-key lookup
  costs a network round trip and a query (milliseconds, `bench.suppressions` prints both);
- the topic is the record (compaction keeps the latest entry per number), so nothing else
  has to be kept consistent with it: a restart rebuilds the copy by reading the topic,
  and any number of API processes hold the same copy;
- only suppressed numbers are held, as 16 bytes of their hash and one packed integer
  (when, and an index into the few distinct (reason, source) pairs): about 125 bytes per
  entry, ~125 MB per million suppressed numbers. The clear numbers stay in Kafka.

Until the copy has read up to the end offsets the topic had at start, the API answers
checks `503 store_unavailable` (and `/readyz` says so): answering "not suppressed" from
a half-read list would be wrong. Afterwards a change reaches this process as fast as the
consumer fetches it (well under a second); a change made through this process is applied
locally as soon as Kafka acknowledged it.

`export` reads changes straight from the topic (the broker stamps append times on it, so
`offsets_for_times` finds where `since` begins), one partition at a time, and yields the
latest record of every number changed since then. `read_entry` reads one number's entry
from its partition only (what `dlr suppressions check` and `dlr erase` do without a
running API).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2  # Kafka's default partitioner, as every producer here

from schemas.settings import CommonSettings
from schemas.suppressions import SuppressionEntry, parse

__all__ = [
    "Hit",
    "SuppressionFeed",
    "SuppressionList",
    "export",
    "produce_entries",
    "read_entry",
]

log = logging.getLogger("dlr.api")

_KEY_BYTES = 16
_META_BITS = 20
_META_MASK = (1 << _META_BITS) - 1
_FAILURES = (KafkaError, OSError, TimeoutError)


def _ms(since: str) -> int:
    return int(datetime.fromisoformat(since).timestamp() * 1000)


def _iso(ms: int) -> str:
    when = datetime.fromtimestamp(ms / 1000, UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Hit:
    """A suppressed number's entry as the list holds it."""

    reason: str
    source: str
    since: str
    erased: bool


class SuppressionList:
    """Suppressed numbers only: 16-byte hash prefix -> since (ms) << 20 | meta index."""

    def __init__(self) -> None:
        self._entries: dict[bytes, int] = {}
        #: distinct (reason, source, erased) of the entries, and their indexes
        self._meta: list[tuple[str, str, bool]] = []
        self._meta_index: dict[tuple[str, str, bool], int] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _key(number_hash: str) -> bytes:
        return bytes.fromhex(number_hash)[:_KEY_BYTES]

    def apply(self, number_hash: str, entry: SuppressionEntry | None) -> None:
        """One record of the topic, in offset order (None: a tombstone)."""
        key = self._key(number_hash)
        if entry is None or not entry.suppressed:
            self._entries.pop(key, None)
            return
        meta = (entry.reason, entry.source, entry.erased)
        index = self._meta_index.get(meta)
        if index is None:
            index = self._meta_index[meta] = len(self._meta)
            if index > _META_MASK:
                raise ValueError("too many distinct suppression reasons")
            self._meta.append(meta)
        self._entries[key] = _ms(entry.since) << _META_BITS | index

    def lookup(self, number_hash: str) -> Hit | None:
        """The entry of a suppressed number, None when it may be sent to."""
        packed = self._entries.get(self._key(number_hash))
        if packed is None:
            return None
        reason, source, erased = self._meta[packed & _META_MASK]
        return Hit(reason, source, _iso(packed >> _META_BITS), erased)


def _consumer(settings: CommonSettings, **options: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=10000,
        **options,
    )


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of `topic`, for a consumer about to assign them itself: a brief
    subscription makes the consumer fetch the topic's metadata (public API only)."""
    consumer.subscribe([topic])
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10.0
        while not (partitions := consumer.partitions_for_topic(topic)):
            if loop.time() > deadline:
                raise KafkaError(f"topic {topic} has no partitions (does it exist?)")
            await asyncio.sleep(0.05)
    finally:
        consumer.unsubscribe()
    return [TopicPartition(topic, p) for p in sorted(partitions)]


class SuppressionFeed:
    """Keeps a `SuppressionList` equal to the topic: rebuild at start, then follow.

    `loaded` turns true once every partition was read up to the end offset it had when
    this feed (re)started; a broker outage afterwards keeps the list as it is (it only
    ever lags) and the consumer resumes where it stopped.
    """

    def __init__(
        self,
        settings: CommonSettings,
        entries: SuppressionList,
        on_record: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.entries = entries
        self.loaded = asyncio.Event()
        #: called with "applied" or "invalid" per record (metrics)
        self.on_record = on_record or (lambda outcome: None)
        self._task: asyncio.Task[None] | None = None
        #: next offset to read per partition (kept across reconnections)
        self._positions: dict[TopicPartition, int] = {}

    def start(self) -> None:
        """Run in the background until `stop`."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="suppression-feed")

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Stop following the topic, within about `timeout_s`: the consumer's own `stop()`
        once waited forever in CI (the API's shutdown hung), and a process that is told to
        stop must stop. A consumer that has not closed by then is abandoned, with a warning."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        _, pending = await asyncio.wait({task}, timeout=timeout_s)
        if pending:
            log.warning(
                "suppression list: the Kafka consumer did not close in time; abandoned",
                extra={"timeout_s": timeout_s},
            )
            task.cancel()  # interrupts the consumer's stop() in the task's `finally`
            await asyncio.wait({task}, timeout=1.0)

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            consumer = _consumer(self.settings, fetch_max_wait_ms=200)
            try:
                await consumer.start()
                partitions = await _partitions(consumer, self.settings.suppressions_topic)
                consumer.assign(partitions)
                for tp in partitions:  # after an outage: resume where this copy stopped
                    if tp in self._positions:
                        consumer.seek(tp, self._positions[tp])
                    else:
                        await consumer.seek_to_beginning(tp)
                end = await consumer.end_offsets(partitions)
                backoff = 0.5
                await self._follow(consumer, partitions, end)
            except asyncio.CancelledError:
                raise
            except _FAILURES as exc:
                log.warning(
                    "suppression list: Kafka failed, retrying",
                    extra={"error": type(exc).__name__, "entries": len(self.entries)},
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                await consumer.stop()

    async def _follow(
        self,
        consumer: AIOKafkaConsumer,
        partitions: list[TopicPartition],
        end: dict[TopicPartition, int],
    ) -> None:
        pending = {tp for tp in partitions if self._positions.get(tp, 0) < end[tp]}
        while True:
            if pending:
                for tp in list(pending):
                    if await consumer.position(tp) >= end[tp]:
                        pending.discard(tp)
            if not pending and not self.loaded.is_set():
                self._loaded()
            batches = await consumer.getmany(timeout_ms=500, max_records=10000)
            for tp, records in batches.items():
                for record in records:
                    self._apply(record.key, record.value)
                if records:
                    self._positions[tp] = records[-1].offset + 1

    def _loaded(self) -> None:
        self.loaded.set()
        log.info("suppression list loaded", extra={"entries": len(self.entries)})

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        try:
            entry = parse(key, value)
            number_hash = entry.number_hash if entry is not None else (key or b"").decode()
            self.entries.apply(number_hash, entry)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("suppression record skipped", extra={"error": type(exc).__name__})
            self.on_record("invalid")
            return
        self.on_record("applied")


async def produce_entries(
    settings: CommonSettings, records: list[tuple[bytes, bytes | None]], timeout_s: float = 10.0
) -> None:
    """Write records to the suppressions topic and wait for Kafka (the CLI's path; the API
    uses its long-lived producer)."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all")
    await asyncio.wait_for(producer.start(), timeout_s)
    try:
        for key, value in records:
            await asyncio.wait_for(
                producer.send_and_wait(settings.suppressions_topic, value, key=key), timeout_s
            )
    finally:
        await producer.stop()


async def read_entry(settings: CommonSettings, number_hash: str) -> SuppressionEntry | None:
    """The number's current entry, read from its partition of the topic only (None when
    it has none, or its latest record is a tombstone)."""
    consumer = _consumer(settings)
    await consumer.start()
    try:
        partitions = await _partitions(consumer, settings.suppressions_topic)
        key = number_hash.encode()
        tp = partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        latest: SuppressionEntry | None = None
        while end and await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=10000)
            for record in batch.get(tp, []):
                if record.key == key and record.offset < end:
                    latest = parse(record.key, record.value)
        return latest
    finally:
        await consumer.stop()


async def export(
    settings: CommonSettings, since: datetime | None
) -> AsyncIterator[tuple[str, SuppressionEntry | None]]:
    """(number hash, latest entry or None for a tombstone) of every number whose entry
    changed at or after `since` (everything when None), as of when the export started.
    One partition at a time, so memory holds one partition's changes at most."""
    consumer = _consumer(settings)
    await consumer.start()
    try:
        partitions = await _partitions(consumer, settings.suppressions_topic)
        end = await consumer.end_offsets(partitions)
        start: dict[TopicPartition, int] = {}
        if since is None:
            start = await consumer.beginning_offsets(partitions)
        else:
            found = await consumer.offsets_for_times(
                {tp: int(since.timestamp() * 1000) for tp in partitions}
            )
            start = {tp: at.offset for tp, at in found.items() if at is not None}
        for tp in partitions:
            if tp not in start or start[tp] >= end[tp]:
                continue
            consumer.assign([tp])
            consumer.seek(tp, start[tp])
            latest: dict[bytes, bytes | None] = {}
            while await consumer.position(tp) < end[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000, max_records=10000)
                for record in batch.get(tp, []):
                    if record.offset < end[tp] and record.key is not None:
                        latest.pop(record.key, None)  # keep the order of the last change
                        latest[record.key] = record.value
            for key, value in latest.items():
                try:
                    entry = parse(key, value)
                except (ValueError, KeyError, TypeError):
                    continue
                yield (entry.number_hash if entry else key.decode("ascii", "replace")), entry
    finally:
        await consumer.stop()
