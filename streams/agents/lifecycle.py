"""The lifecycle agent: dedupe, map, apply the state machine, emit (one per partition).

Thin on purpose: `streams.transforms.process` decides (through `streams.sends`, which
joins the sender's registrations from `dlr.sends.v1` and folds messages sent in parts);
`Lifecycle.handle` produces the outputs first and then writes the table (see that module
for why this order is crash safe). `concurrency=1` because faust can commit past
in-flight events with more (#606 in faust's tracker).

Per record `handle` talks to aiokafka's producer and to the table's RocksDB directly,
doing what faust's Producer.send and `Table.__setitem__` do without their layers
(FutureMessage, producer buffer task, per-record callbacks, sensors): ~65 us of CPU per
record (measured: 148 vs 81 us for the whole worker). The private names this needs are
all in `streams/_faust.py`.

- Outputs and the changelog record go through faust's own aiokafka producer, so faust's
  offset commit still flushes them first (faust's consumer awaits `app.producer.flush()`,
  which awaits `AIOKafkaProducer.flush()`, before committing; `send()` has put the
  record into the accumulator by the time it returns, and the record is acked, i.e.
  committable, only when the loop asks for the next one).
- The table write is what faust's Table does: the value in the partition's RocksDB,
  the same key and value bytes (raw serializers) on the changelog partition of the
  source record, and, once a changelog record is acknowledged, its offset as the
  store's persisted offset. faust stores that offset after every record; here it is
  stored about once a second (the offset of the latest acknowledged record per
  partition). Recovery replays the changelog from the persisted offset, so an older
  one only means a longer replay, never a missing key.
- An output keyed by the source record's key (status, dead letters, actions: the
  message id) goes to the source partition when the topic has the source topic's
  partitions: what aiokafka's murmur2 partitioner computes for that key anyway, as the
  table's co-partitioning already requires of the raw topic, without hashing in Python.

Pending fallbacks (`streams/actions.py`, `DLR_FALLBACK_GRACE_S`) are found by a due index
kept in the same table: one key `DUE_PREFIX + due (ms, big-endian) + message key` per
pending decision, written to RocksDB and the changelog like any record, so it survives a
crash and moves with its partition on a rebalance (faust restores it with the rest). The
keys sort by due time, so the timer (`fire_due`, twice a second, on every worker for the
partitions it owns actively) reads one short range per partition, never the whole
table. Entry added before the message record is written, removed after it: a crash can
leave a stale entry (the timer drops it), never a pending decision without one. The key
holds the due time rounded down to the millisecond, so a tick may find an entry whose
message is due later in that millisecond: the entry stays for the next tick. The
timer produces a due fallback and waits for the broker's ack before it writes the
record, because no source offset protects it; and it first waits for the partition's
changelog writes in flight, so a fallback never goes out for a decision that could
still be lost. Timer and agent never interleave on the table (`_firing` / `_busy`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import faust
import orjson

from streams import _faust, actions, metrics, sends
from streams.settings import WorkerSettings
from streams.tables import NO_WAL
from streams.topics import Topics
from streams.transforms import Config, Outcome

__all__ = ["DUE_PREFIX", "Lifecycle", "PartitionStore", "RocksPartitions", "due_key", "register"]

log = logging.getLogger(__name__)

#: Keys of the due index: no message id starts with NUL (they are `provider:id`).
DUE_PREFIX = b"\x00dlr-due\x00"
#: How often the timer looks for pending fallbacks that fell due (seconds).
FIRE_INTERVAL_S = 0.5


def due_key(due: float, key: bytes) -> bytes:
    """The due-index key of a message's pending fallback (sorts by due time)."""
    return DUE_PREFIX + int(due * 1000).to_bytes(8, "big") + key


class PartitionStore(Protocol):
    """The table as the agent uses it: bytes per (partition, key), plus stored offsets."""

    def get(self, partition: int, key: bytes) -> bytes | None:
        """The stored value of a key, or None."""

    def put(self, partition: int, key: bytes, value: bytes) -> None:
        """Store a value (the changelog record is the caller's)."""

    def store_offset(self, partition: int, offset: int) -> None:
        """Remember the changelog offset up to which this partition's data is stored."""

    def delete(self, partition: int, key: bytes) -> None:
        """Remove a key (the changelog tombstone is the caller's)."""

    def scan(self, partition: int, start: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Keys and values in key order from `start` (the caller stops)."""


class RocksPartitions:
    """A faust RocksDB table's partition databases, written without the WAL."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.offset_key: bytes = table.data.offset_key

    def get(self, partition: int, key: bytes) -> bytes | None:
        """Read from the partition's database."""
        value: bytes | None = _faust.partition_db(self.table, partition).get(key)
        return value

    def put(self, partition: int, key: bytes, value: bytes) -> None:
        """Write to the partition's database, skipping the write-ahead log."""
        _faust.partition_db(self.table, partition).put(key, value, NO_WAL)

    def delete(self, partition: int, key: bytes) -> None:
        """Delete from the partition's database, skipping the write-ahead log."""
        _faust.partition_db(self.table, partition).delete(key, NO_WAL)

    def scan(self, partition: int, start: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Iterate the partition's database from `start` (RocksDB keeps keys sorted)."""
        items: Iterator[tuple[bytes, bytes]] = iter(
            _faust.partition_db(self.table, partition).items(from_key=start)
        )
        return items

    def store_offset(self, partition: int, offset: int) -> None:
        """What faust's `Store.set_persisted_offset` writes, also without the WAL.

        A partition revoked meanwhile (its database closed) is left alone rather than
        opened again.
        """
        if _faust.is_assigned(self.table, partition):
            db = _faust.partition_db(self.table, partition)
            db.put(self.offset_key, str(offset).encode(), NO_WAL)


class Lifecycle:
    """One raw record at a time: decide with `process`, produce, then store.

    `producer` is an aiokafka producer (`send`, `partitions_for`); `store` the table's
    partitions. Sends in flight are tracked: `check()` (every second, by the worker's
    timer) logs failures, forgets finished sends and stores, per changelog partition,
    the offset of the latest acknowledged record (aiokafka completes a partition's
    records in order).
    """

    def __init__(
        self,
        settings: WorkerSettings,
        producer: Any,
        store: PartitionStore,
        changelog: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.producer = producer
        #: Processing time (seconds since the epoch); tests pass their own.
        self.clock = clock
        self.store = store
        self.changelog = changelog
        self.config = Config(
            fallback_campaigns=settings.fallback_campaign_set,
            fallback_grace_s=settings.fallback_grace_s,
            salt=settings.pii_salt,
            pii_mode=settings.pii_mode,
        )
        self.actions_topic = settings.actions_topic
        self.outputs_of = (
            settings.status_topic,
            settings.deadletter_topic,
            settings.actions_topic,
            settings.suppressions_topic,
            settings.sends_topic,
        )
        self.sends_topic = settings.sends_topic
        self.tally = metrics.Tally()
        self.outputs: list[Any] = []
        self.changelog_sent: defaultdict[int, deque[Any]] = defaultdict(deque)
        self._same: dict[tuple[str, str], bool] = {}
        self._verified: set[str] = set()
        self.source_topic = settings.raw_topic
        #: Set while `fire_due` works: `handle` waits for it. `_busy`: a record in progress,
        #: whose end resolves `_record_done` when the timer waits for it.
        self._firing: asyncio.Future[None] | None = None
        self._busy = False
        self._record_done: asyncio.Future[None] | None = None

    async def handle(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes
    ) -> Outcome:
        """Process one record of `dlr.raw.v1` (or `dlr.sends.v1`: `streams/sends.py`):
        outputs first, then the table (see the module doc)."""
        while self._firing is not None:  # the timer may go on to another partition
            await self._firing
        self._busy = True
        try:
            return await self._handle(topic, partition, offset, key, value)
        finally:
            self._busy = False
            if self._record_done is not None:
                self._record_done.set_result(None)
                self._record_done = None

    async def _handle(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes
    ) -> Outcome:
        if topic not in self._verified:
            await self._verify_source(topic)
        now = self.clock()
        stored = self.store.get(partition, key) if key else None
        decide = sends.send if topic == self.sends_topic else sends.receipt
        out = decide(
            value,
            key,
            orjson.loads(stored) if stored else None,
            partition,
            offset,
            now,
            self.config,
        )
        send = self.producer.send
        append = self.outputs.append
        status, deadletter, actions, suppressions, forward = self.outputs_of
        for out_topic, pairs in (
            (status, out.status),
            (deadletter, out.deadletter),
            (actions, out.actions),
            (suppressions, out.suppressions),
            (forward, out.forward),
        ):
            for k, v in pairs:
                same = self._same.get((out_topic, topic))
                if same is None:  # once per output topic
                    same = await self._same_partitions(out_topic, topic)
                to = partition if same and k == key else None
                append(await send(out_topic, v, key=k, partition=to))
        if out.store is not None and key:
            if out.due_added is not None:
                await self._write(partition, due_key(out.due_added, key), b"1")
            await self._write(partition, key, orjson.dumps(out.store))
            if out.due_removed is not None:
                await self._write(partition, due_key(out.due_removed, key), None)
        self.tally.count(out, now)
        return out

    async def _write(self, partition: int, key: bytes, value: bytes | None) -> None:
        """The table write: RocksDB, then the same bytes on the changelog (None deletes)."""
        if value is None:
            self.store.delete(partition, key)
        else:
            self.store.put(partition, key, value)
        self.changelog_sent[partition].append(
            await self.producer.send(self.changelog, value, key=key, partition=partition)
        )

    def due(self, partition: int, now: float) -> list[tuple[float, bytes]]:
        """Pending fallbacks of a partition due at `now`: (due, message key), oldest first."""
        found = []
        limit = int(now * 1000)
        start = len(DUE_PREFIX)
        for index_key, _ in self.store.scan(partition, DUE_PREFIX):
            if not index_key.startswith(DUE_PREFIX):
                break
            due_ms = int.from_bytes(index_key[start : start + 8], "big")
            if due_ms > limit:
                break
            found.append((due_ms / 1000, index_key[start + 8 :]))
        return found

    async def fire_due(self, partitions: Iterable[int], now: float) -> int:
        """Emit the pending fallbacks that fell due on these partitions; returns how many.

        Per partition: wait for its changelog writes in flight, produce every due
        fallback and wait for the broker's acks, then store each message's decision and
        drop its index entry. A failed send leaves everything as it was for the next tick.
        """
        fired = 0
        for partition in partitions:
            found = self.due(partition, now)
            if not found:
                continue
            loop = asyncio.get_running_loop()
            self._firing = loop.create_future()
            try:
                if self._busy:  # let the record in progress finish first
                    self._record_done = loop.create_future()
                    await self._record_done
                fired += await self._fire(partition, found, now)
            finally:
                firing, self._firing = self._firing, None
                firing.set_result(None)
        return fired

    async def _fire(self, partition: int, found: list[tuple[float, bytes]], now: float) -> int:
        in_flight = [s for s in self.changelog_sent[partition] if not s.done()]
        if in_flight:
            await asyncio.wait(in_flight)
        same = self._same.get((self.actions_topic, self.source_topic))
        if same is None:
            same = await self._same_partitions(self.actions_topic, self.source_topic)
        decided = []
        sends = []
        for due, key in found:
            stored = self.store.get(partition, key)
            record = orjson.loads(stored) if stored else None
            acts = actions.fire(record.get("a") if record else None, now)
            if not acts.emit:
                if actions.pending(acts.state):  # due later in this millisecond (module doc)
                    continue  # dropping its entry would lose the fallback: the next tick
                log.info("dropping a stale due-index entry of %r (no pending fallback)", key)
            for body in acts.emit:
                sends.append(
                    await self.producer.send(
                        self.actions_topic,
                        orjson.dumps(body),
                        key=key,
                        partition=partition if same else None,
                    )
                )
            decided.append((due, key, record, acts))
        if sends:
            await asyncio.wait(sends)
            if any(_log_failure(s) for s in sends):
                return 0
        for due, key, record, acts in decided:
            if record is not None and acts.emit:
                record["a"] = acts.state
                await self._write(partition, key, orjson.dumps(record))
            await self._write(partition, due_key(due, key), None)
        self.tally.actions += len(sends)
        return len(sends)

    async def _verify_source(self, topic: str) -> None:
        """What faust's Table checks before its first write: the changelog has the
        source topic's partitions (else keys would land on the wrong partition)."""
        source = await self.producer.partitions_for(topic)
        changelog = await self.producer.partitions_for(self.changelog)
        if source != changelog:
            raise RuntimeError(
                f"{topic} has {len(source)} partitions but the table's changelog "
                f"{self.changelog} has {len(changelog)}: the table must be co-partitioned"
            )
        self._verified.add(topic)

    async def _same_partitions(self, topic: str, source: str) -> bool:
        """Whether `topic` has the partitions of `source` (then a key maps to the same one)."""
        ours = await self.producer.partitions_for(topic)
        same = bool(ours) and ours == await self.producer.partitions_for(source)
        self._same[topic, source] = same
        return same

    def check(self) -> None:
        """Log failed sends, forget finished ones, store acknowledged changelog offsets."""
        unfinished = []
        for sent in self.outputs:
            if not sent.done():
                unfinished.append(sent)
            else:
                _log_failure(sent)
        self.outputs[:] = unfinished
        for partition, in_order in self.changelog_sent.items():
            offset = None
            while in_order and in_order[0].done():
                sent = in_order.popleft()
                if not _log_failure(sent):
                    offset = sent.result().offset
            if offset is not None:
                self.store.store_offset(partition, offset)


def _log_failure(sent: Any) -> bool:
    """Whether a finished send failed (then logged, as faust logs its own failed sends)."""
    if sent.cancelled() or sent.exception() is not None:
        log.warning("send failed: %r", "cancelled" if sent.cancelled() else sent.exception())
        return True
    return False


def owned_partitions(app: faust.App, topic: str, table: Any) -> list[int]:
    """Partitions of `topic` this worker processes now (active, recovered), else none.

    Standby partitions are not ours to act on, and during a rebalance or a table
    recovery the state may be behind: the timer waits for both to end.
    """
    if app.rebalancing or app.in_recovery or not app.flow_control.is_active():
        return []
    return sorted(
        tp.partition
        for tp in app.assignor.assigned_actives()
        if tp.topic == topic and _faust.is_assigned(table, tp.partition)
    )


def register(app: faust.App, topics: Topics, table: Any, settings: WorkerSettings) -> Any:
    """Add the lifecycle agent and its timers to `app`; returns the agent."""
    running: list[Lifecycle] = []

    @app.timer(FIRE_INTERVAL_S, traced=False)  # type: ignore[untyped-decorator]
    async def fire_fallbacks() -> None:
        """Emit the pending fallbacks that fell due on the partitions this worker owns."""
        for lifecycle in running:
            try:
                owned = owned_partitions(app, settings.raw_topic, table)
                await lifecycle.fire_due(owned, time.time())
            except Exception:  # e.g. the producer's buffer full: the next tick tries again
                log.exception("firing due fallbacks failed")

    @app.timer(1.0, traced=False)  # type: ignore[untyped-decorator]
    async def flush_metrics() -> None:
        """Move the agent's counts to Prometheus; check its sends (also while idle)."""
        for lifecycle in running:
            lifecycle.tally.flush()
            lifecycle.check()

    # One agent over both co-partitioned sources: faust's assignor gives the same partition
    # numbers of topics with equal partition counts and subscribers to one worker, so a
    # message's reports and its registration meet in the same table partition.
    @app.agent(topics.sources, concurrency=1)
    async def lifecycle(stream: Any) -> None:
        """Consume dlr.raw.v1 and dlr.sends.v1; produce dlr.status.v1 (+ dead letters,
        actions, suppressions, forwarded parts)."""
        loop = Lifecycle(
            settings, _faust.raw_producer(app), RocksPartitions(table), table.changelog_topic_name
        )
        running[:] = [loop]
        handle = loop.handle
        async for event in stream.events():
            message = event.message
            await handle(message.topic, message.partition, message.offset, event.key, event.value)

    return lifecycle
