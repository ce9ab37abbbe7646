"""The lifecycle agent: dedupe, map, apply the state machine, emit (one per partition).

Thin on purpose: `streams.transforms.process` decides; this loop produces the outputs
first and then writes the table (see that module for why this order is crash safe).
`concurrency=1` because faust can commit past in-flight events with more (faust #606).

Per record the loop talks to aiokafka's producer and to the table's RocksDB directly,
doing what faust's Producer.send and `Table.__setitem__` do without their layers
(FutureMessage, producer buffer task, per-record callbacks, sensors): ~65 us of CPU
per record (measured: 148 vs 81 us for the whole worker).

- Outputs and the changelog record go through faust's own aiokafka producer, so faust's
  offset commit still flushes them first (`Consumer._commit_offsets` awaits
  `app.producer.flush()`, which awaits `AIOKafkaProducer.flush()`, before committing;
  `aiokafka.send()` has put the record into the accumulator by the time it returns, and
  the record is acked, i.e. committable, only when the loop asks for the next one).
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
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from typing import Any

import orjson
from faust.stores.rocksdb import Store as RocksStore
from faust.types import TP

from streams import metrics
from streams.app import app, settings
from streams.tables import messages
from streams.topics import raw
from streams.transforms import Config, Outcome, process

STATUS = settings.status_topic
DEADLETTER = settings.deadletter_topic
ACTIONS = settings.actions_topic
SUPPRESSIONS = settings.suppressions_topic
CONFIG = Config(
    fallback_campaigns=frozenset(c for c in settings.fallback_campaigns.split(",") if c),
    salt=settings.pii_salt,
)
log = logging.getLogger(__name__)
tally = metrics.Tally()


class Sends:
    """The agent's sends in flight: failures are logged, changelog offsets stored.

    `check()` (every second, by the timer below) drops what is done. For each changelog
    partition it stores the offset of the latest acknowledged record as the store's
    persisted offset, as faust's Table does after every record (aiokafka completes a
    partition's records in order). A partition revoked meanwhile (its database closed)
    is left alone rather than opened again.
    """

    def __init__(self, store: Any, changelog: str) -> None:
        self.store = store  # None: faust's Table API stores the offsets itself
        self.changelog_topic = changelog
        self.outputs: list[Any] = []
        self.changelog: defaultdict[int, deque[Any]] = defaultdict(deque)

    def check(self) -> None:
        """Log failed sends, forget finished ones, store acknowledged changelog offsets."""
        unfinished = []
        for sent in self.outputs:
            if not sent.done():
                unfinished.append(sent)
            else:
                _log_failure(sent)
        self.outputs[:] = unfinished
        for partition, in_order in self.changelog.items():
            offset = None
            while in_order and in_order[0].done():
                sent = in_order.popleft()
                if not _log_failure(sent):
                    offset = sent.result().offset
            if offset is not None and self.store is not None and partition in self.store._dbs:
                self.store.set_persisted_offset(TP(self.changelog_topic, partition), offset)


def _log_failure(sent: Any) -> bool:
    """Whether a finished send failed (then logged, as faust logs its own failed sends)."""
    if sent.cancelled() or sent.exception() is not None:
        log.warning("send failed: %r", "cancelled" if sent.cancelled() else sent.exception())
        return True
    return False


sends: Sends | None = None


@app.timer(1.0, traced=False)  # type: ignore[untyped-decorator]
async def flush_metrics() -> None:
    """Move the agent's counts to Prometheus; check its sends (also while idle)."""
    tally.flush()
    if sends is not None:
        sends.check()


@app.agent(raw, concurrency=1)
async def lifecycle(stream: Any) -> None:
    """Consume dlr.raw.v1; produce dlr.status.v1 (+ dead letters, actions, suppressions)."""
    producer = app.producer._ensure_producer()  # type: ignore[attr-defined]
    send = producer.send
    store: Any = messages.data
    rocks = isinstance(store, RocksStore)
    changelog = messages.changelog_topic_name
    same_partitions: dict[str, bool] = {}
    verified: set[str] = set()
    global sends
    sends = tracker = Sends(store if rocks else None, changelog)
    outputs = tracker.outputs
    async for event in stream.events():
        message = event.message
        key: bytes | None = event.key
        partition: int = message.partition
        if message.topic not in verified:
            # What the Table checks before its first write: the changelog has the
            # source topic's partitions.
            messages._verify_source_topic_partitions(message.topic)
            verified.add(message.topic)
        now = time.time()
        if not key:
            stored = None
        elif rocks:
            stored = store._db_for_partition(partition).get(key)
        else:
            stored = messages.get(key)
        out = process(
            event.value,
            key,
            orjson.loads(stored) if stored else None,
            partition,
            message.offset,
            now,
            CONFIG,
        )
        for topic, pairs in (
            (STATUS, out.status),
            (DEADLETTER, out.deadletter),
            (ACTIONS, out.actions),
            (SUPPRESSIONS, out.suppressions),
        ):
            for k, v in pairs:
                same = same_partitions.get(topic)
                if same is None:  # once per output topic
                    same = await _same_partitions(producer, topic, message.topic)
                    same_partitions[topic] = same
                to = partition if same and k == key else None
                outputs.append(await send(topic, v, key=k, partition=to))
        if out.store is not None and key:
            value = orjson.dumps(out.store)
            if rocks:
                store._db_for_partition(partition).put(key, value)
                tracker.changelog[partition].append(
                    await send(changelog, value, key=key, partition=partition)
                )
            else:
                messages[key] = value
        _count(out, now)


async def _same_partitions(producer: Any, topic: str, source: str) -> bool:
    """Whether `topic` has the partitions of `source` (then a key maps to the same one)."""
    await producer.client._wait_on_metadata(topic)
    await producer.client._wait_on_metadata(source)
    ours = producer._metadata.partitions_for_topic(topic)
    return bool(ours) and ours == producer._metadata.partitions_for_topic(source)


def _count(out: Outcome, now: float) -> None:
    """Count one record into the tally (moved to Prometheus once a second by the timer)."""
    tally.records[out.kind] += 1
    event = out.event
    if event is not None:
        tally.transitions[event.transition, event.provider] += 1
        tally.latencies.append(max(0.0, now - event.received_at.timestamp()))
        if not event.mapped:
            tally.unmapped[event.provider] += 1
    if out.deadletter:
        tally.deadletters += len(out.deadletter)
    if out.actions:
        tally.actions += len(out.actions)
