"""The lifecycle agent's per-record I/O, in process: a real faust RocksDB table, a fake producer.

`Lifecycle.handle` is the agent's whole loop body; here it runs against the same
`RocksPartitions` (faust's RocksDB store, written without the WAL) as in production, with
an in-memory producer in place of aiokafka's, so the order of outputs and table writes,
partitions, dedupe and stored changelog offsets are checked without a broker.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from faust.types import TP

from schemas.events import CanonicalEvent
from streams import _faust
from streams.agents.lifecycle import Lifecycle, RocksPartitions, due_key, owned_partitions
from streams.app import create_app
from streams.settings import WorkerSettings
from streams.tables import messages_table
from tests.streams.test_transforms import raw

PARTITIONS = 4
GRACE = 30.0


class FakeProducer:
    """aiokafka's `send` and `partitions_for`, answered in memory (sends complete at once)."""

    def __init__(self, partitions: dict[str, int], fail: set[str] | None = None) -> None:
        self.partitions = partitions
        self.fail = fail or set()
        #: Topics whose sends stay unacknowledged until `release()`.
        self.hold: set[str] = set()
        self.held: list[tuple[asyncio.Future[Any], Any]] = []
        self.sent: list[tuple[str, bytes | None, bytes, int | None]] = []
        self.offsets: defaultdict[tuple[str, int | None], int] = defaultdict(int)

    def release(self) -> None:
        for future, result in self.held:
            future.set_result(result)
        self.held.clear()

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions[topic]))

    async def send(
        self, topic: str, value: bytes, key: bytes | None = None, partition: int | None = None
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if topic in self.fail:
            future.set_exception(RuntimeError(f"{topic} refused"))
            return future
        self.sent.append((topic, key, value, partition))
        offset = self.offsets[topic, partition]
        self.offsets[topic, partition] += 1
        if topic in self.hold:
            self.held.append((future, SimpleNamespace(offset=offset)))
        else:
            self.acknowledge(future, SimpleNamespace(offset=offset))
        return future

    def acknowledge(self, future: asyncio.Future[Any], result: Any) -> None:
        """The broker's ack of a send not held: at once here."""
        future.set_result(result)

    def to(self, topic: str) -> list[tuple[bytes | None, bytes, int | None]]:
        return [(k, v, p) for t, k, v, p in self.sent if t == topic]


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> WorkerSettings:
    """The worker's settings; a test parametrizes it indirectly for another grace."""
    return WorkerSettings(
        data_dir=tmp_path,
        topic_partitions=PARTITIONS,
        worker_id="lifecycle-test",
        fallback_campaigns="order-confirmation",
        fallback_grace_s=getattr(request, "param", GRACE),
    )


@pytest.fixture
def table(settings: WorkerSettings) -> Iterator[Any]:
    app = create_app(settings)
    table = messages_table(app, settings)
    yield table
    for partition in list(table.data._dbs):
        table.data.revoke_partitions(table, {TP(table.changelog_topic_name, partition)})


def producer_for(settings: WorkerSettings, table: Any, **sizes: int) -> FakeProducer:
    names = {
        settings.raw_topic: PARTITIONS,
        settings.status_topic: PARTITIONS,
        settings.deadletter_topic: PARTITIONS,
        settings.actions_topic: PARTITIONS,
        settings.suppressions_topic: PARTITIONS,
        table.changelog_topic_name: PARTITIONS,
    }
    for attr, n in sizes.items():
        names[getattr(settings, attr)] = n
    return FakeProducer(names)


async def test_a_new_report_is_emitted_then_stored_on_its_partition(
    settings: WorkerSettings, table: Any
) -> None:
    producer = producer_for(settings, table)
    lifecycle = Lifecycle(settings, producer, RocksPartitions(table), table.changelog_topic_name)
    key = b"generic:m1"
    out = await lifecycle.handle(
        settings.raw_topic, 2, 17, key, raw("m1", "sent", "2025-01-01T00:00:00Z")
    )
    assert out.kind == "new"
    ((k, value, partition),) = producer.to(settings.status_topic)
    assert (k, partition) == (key, 2)
    assert str(CanonicalEvent.from_json(value).current_state) == "sent"
    # The table: RocksDB of partition 2 (and no other), and the changelog record after the
    # output, on the source partition, with the same bytes.
    stored = RocksPartitions(table).get(2, key)
    assert stored is not None and orjson.loads(stored)["st"]["s"] == "sent"
    assert all(RocksPartitions(table).get(p, key) is None for p in (0, 1, 3))
    topics = [t for t, *_ in producer.sent]
    assert topics == [settings.status_topic, table.changelog_topic_name]
    assert producer.to(table.changelog_topic_name) == [(key, stored, 2)]


async def test_duplicates_are_dropped_and_redeliveries_re_emit_the_same_event(
    settings: WorkerSettings, table: Any
) -> None:
    producer = producer_for(settings, table)
    lifecycle = Lifecycle(settings, producer, RocksPartitions(table), table.changelog_topic_name)
    record = raw("m2", "delivered", "2025-01-01T00:00:00Z")
    first = await lifecycle.handle(settings.raw_topic, 1, 5, b"generic:m2", record)
    duplicate = await lifecycle.handle(settings.raw_topic, 1, 9, b"generic:m2", record)
    redelivery = await lifecycle.handle(settings.raw_topic, 1, 5, b"generic:m2", record)
    assert (first.kind, duplicate.kind, redelivery.kind) == ("new", "duplicate", "redelivery")
    ids = [CanonicalEvent.from_json(v).event_id for _, v, _ in producer.to(settings.status_topic)]
    assert len(ids) == 2 and ids[0] == ids[1]
    # Neither the duplicate nor the redelivery writes the table again.
    assert len(producer.to(table.changelog_topic_name)) == 1


async def test_check_stores_the_latest_acknowledged_changelog_offset_as_faust_reads_it(
    settings: WorkerSettings, table: Any
) -> None:
    producer = producer_for(settings, table)
    lifecycle = Lifecycle(settings, producer, RocksPartitions(table), table.changelog_topic_name)
    for n in range(3):
        mid = f"m{n}"
        await lifecycle.handle(
            settings.raw_topic, 3, n, mid.encode(), raw(mid, "sent", "2025-01-01T00:00:00Z")
        )
    changelog = TP(table.changelog_topic_name, 3)
    assert table.data.persisted_offset(changelog) is None
    lifecycle.check()
    # faust's own reader finds what the agent stored (same key, same encoding).
    assert table.data.persisted_offset(changelog) == 2
    assert lifecycle.outputs == [] and not lifecycle.changelog_sent[3]


async def test_a_revoked_partition_is_not_opened_again_to_store_its_offset(
    settings: WorkerSettings, table: Any
) -> None:
    producer = producer_for(settings, table)
    lifecycle = Lifecycle(settings, producer, RocksPartitions(table), table.changelog_topic_name)
    await lifecycle.handle(settings.raw_topic, 0, 0, b"m", raw("m", "sent", "2025-01-01T00:00:00Z"))
    assert _faust.is_assigned(table, 0)
    table.data.revoke_partitions(table, {TP(table.changelog_topic_name, 0)})
    lifecycle.check()
    assert not _faust.is_assigned(table, 0)


async def test_a_failed_send_is_logged_and_its_offset_not_stored(
    settings: WorkerSettings, table: Any, caplog: pytest.LogCaptureFixture
) -> None:
    producer = producer_for(settings, table)
    producer.fail.add(table.changelog_topic_name)
    lifecycle = Lifecycle(settings, producer, RocksPartitions(table), table.changelog_topic_name)
    await lifecycle.handle(settings.raw_topic, 1, 0, b"m", raw("m", "sent", "2025-01-01T00:00:00Z"))
    lifecycle.check()
    assert "send failed" in caplog.text
    assert table.data.persisted_offset(TP(table.changelog_topic_name, 1)) is None


async def test_a_source_topic_not_co_partitioned_with_the_table_is_refused(
    settings: WorkerSettings, table: Any
) -> None:
    producer = producer_for(settings, table, raw_topic=PARTITIONS * 2)
    lifecycle = Lifecycle(settings, producer, RocksPartitions(table), table.changelog_topic_name)
    with pytest.raises(RuntimeError, match="co-partitioned"):
        await lifecycle.handle(
            settings.raw_topic, 0, 0, b"m", raw("m", "sent", "2025-01-01T00:00:00Z")
        )
    assert producer.sent == []


async def test_outputs_of_a_topic_with_other_partitions_are_left_to_the_partitioner(
    settings: WorkerSettings, table: Any
) -> None:
    producer = producer_for(settings, table, status_topic=PARTITIONS + 1)
    lifecycle = Lifecycle(settings, producer, RocksPartitions(table), table.changelog_topic_name)
    await lifecycle.handle(
        settings.raw_topic, 2, 0, b"generic:m", raw("m", "sent", "2025-01-01T00:00:00Z")
    )
    ((_, _, partition),) = producer.to(settings.status_topic)
    assert partition is None
    assert producer.to(table.changelog_topic_name)[0][2] == 2


async def test_the_table_survives_a_reopen_of_its_partition(
    settings: WorkerSettings, table: Any
) -> None:
    """Writes without the WAL reach the database files when faust closes it cleanly."""
    producer = producer_for(settings, table)
    lifecycle = Lifecycle(settings, producer, RocksPartitions(table), table.changelog_topic_name)
    await lifecycle.handle(
        settings.raw_topic, 1, 0, b"generic:m", raw("m", "sent", "2025-01-01T00:00:00Z")
    )
    _faust.partition_db(table, 1).close()
    table.data.revoke_partitions(table, {TP(table.changelog_topic_name, 1)})
    stored = RocksPartitions(table).get(1, b"generic:m")
    assert stored is not None and orjson.loads(stored)["st"]["s"] == "sent"


# -- pending fallbacks: the due index and the timer -----------------------------------------


def failure(mid: str, status: str = "undelivered") -> bytes:
    return raw(mid, status, "2025-01-01T00:00:01Z", campaign="order-confirmation")


def types_sent(producer: FakeProducer, topic: str) -> list[str]:
    return [orjson.loads(v)["type"] for _, v, _ in producer.to(topic)]


def clocked(settings: WorkerSettings, table: Any) -> tuple[Lifecycle, FakeProducer, list[float]]:
    """A lifecycle on a clock the test sets (`clock[0]`, 1000 s to begin with)."""
    producer = producer_for(settings, table)
    clock = [1000.0]
    lifecycle = Lifecycle(
        settings,
        producer,
        RocksPartitions(table),
        table.changelog_topic_name,
        clock=lambda: clock[0],
    )
    return lifecycle, producer, clock


async def failed_at_1000(
    settings: WorkerSettings, table: Any, partition: int, mid: str
) -> tuple[Lifecycle, FakeProducer, RocksPartitions]:
    """A lifecycle whose clock says 1000 s, after a failure of `mid` on `partition`."""
    producer = producer_for(settings, table)
    store = RocksPartitions(table)
    lifecycle = Lifecycle(
        settings, producer, store, table.changelog_topic_name, clock=lambda: 1000.0
    )
    key = f"generic:{mid}".encode()
    await lifecycle.handle(settings.raw_topic, partition, 0, key, failure(mid))
    return lifecycle, producer, store


async def test_a_pending_fallback_is_indexed_before_its_record_and_fired_when_due(
    settings: WorkerSettings, table: Any
) -> None:
    lifecycle, producer, clock = clocked(settings, table)
    store = lifecycle.store
    await lifecycle.handle(settings.raw_topic, 2, 0, b"generic:m", failure("m"))
    assert producer.to(settings.actions_topic) == []
    index = due_key(1000.0 + GRACE, b"generic:m")
    changelog = [k for k, _, _ in producer.to(table.changelog_topic_name)]
    assert changelog == [index, b"generic:m"]  # index first: never a decision without one
    assert lifecycle.due(2, 1000.0 + GRACE - 0.01) == []
    assert lifecycle.due(2, 1000.0 + GRACE) == [(1000.0 + GRACE, b"generic:m")]

    assert await lifecycle.fire_due(range(PARTITIONS), 1000.0 + GRACE - 0.01) == 0
    assert await lifecycle.fire_due(range(PARTITIONS), 1000.0 + GRACE + 0.4) == 1
    ((key, value, partition),) = producer.to(settings.actions_topic)
    assert (key, partition) == (b"generic:m", 2)
    assert orjson.loads(value)["type"] == "fallback"
    # The record says "sent", then the index entry is deleted (a tombstone on the changelog).
    record = store.get(2, b"generic:m")
    assert record is not None and orjson.loads(record)["a"] == {"fb": "s"}
    assert store.get(2, index) is None
    tombstone: tuple[bytes | None, bytes | None, int | None] = (index, None, 2)
    assert producer.to(table.changelog_topic_name)[-1] == tombstone
    assert await lifecycle.fire_due(range(PARTITIONS), 1000.0 + 2 * GRACE) == 0

    # A delivered afterwards: delivered_after_fallback, once.
    clock[0] = 1100.0
    await lifecycle.handle(
        settings.raw_topic, 2, 1, b"generic:m", raw("m", "delivered", "2025-01-01T00:00:05Z")
    )
    assert types_sent(producer, settings.actions_topic) == ["fallback", "delivered_after_fallback"]


async def test_a_delivered_inside_the_grace_cancels_and_unindexes_the_fallback(
    settings: WorkerSettings, table: Any
) -> None:
    lifecycle, producer, clock = clocked(settings, table)
    await lifecycle.handle(settings.raw_topic, 1, 0, b"generic:m", failure("m"))
    clock[0] = 1000.0 + GRACE / 2
    await lifecycle.handle(
        settings.raw_topic, 1, 1, b"generic:m", raw("m", "delivered", "2025-01-01T00:00:05Z")
    )
    assert lifecycle.due(1, 5000.0) == []
    assert await lifecycle.fire_due(range(PARTITIONS), 5000.0) == 0
    assert producer.to(settings.actions_topic) == []


async def test_the_due_index_survives_a_reopen_and_a_stale_entry_is_dropped(
    settings: WorkerSettings, table: Any
) -> None:
    _, _, store = await failed_at_1000(settings, table, 3, "a")
    # A stale entry: an index key whose record has no pending fallback (record lost).
    stale = due_key(1001.0, b"generic:gone")
    store.put(3, stale, b"1")
    _faust.partition_db(table, 3).close()
    table.data.revoke_partitions(table, {TP(table.changelog_topic_name, 3)})

    reopened = Lifecycle(settings, producer_for(settings, table), store, table.changelog_topic_name)
    assert [key for _, key in reopened.due(3, 5000.0)] == [b"generic:gone", b"generic:a"]
    assert await reopened.fire_due([3], 5000.0) == 1
    assert store.get(3, stale) is None and reopened.due(3, 5000.0) == []


async def test_the_timer_writes_nothing_before_the_broker_acknowledged_the_fallback(
    settings: WorkerSettings, table: Any
) -> None:
    lifecycle, producer, store = await failed_at_1000(settings, table, 0, "m")
    producer.hold.add(settings.actions_topic)
    firing = asyncio.create_task(lifecycle.fire_due([0], 5000.0))
    deadline = asyncio.get_running_loop().time() + 5
    while not producer.held and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    assert len(producer.held) == 1 and not firing.done()
    record = store.get(0, b"generic:m")
    assert record is not None and orjson.loads(record)["a"]["fb"] == "p"
    # The agent waits for the timer instead of interleaving with it.
    handled = asyncio.create_task(
        lifecycle.handle(
            settings.raw_topic, 0, 1, b"generic:m", raw("m", "delivered", "2025-01-01T00:00:05Z")
        )
    )
    await asyncio.sleep(0.05)
    assert not handled.done()
    producer.release()
    assert await firing == 1
    await handled
    assert types_sent(producer, settings.actions_topic) == ["fallback", "delivered_after_fallback"]


async def test_a_record_waits_for_the_timer_across_partitions(
    settings: WorkerSettings, table: Any
) -> None:
    """The timer fires partition 0, then at once partition 1: a record of partition 1 that
    waited for partition 0's firing must wait for partition 1's too (it went ahead and
    emitted the same fallback a second time)."""
    lifecycle, producer, clock = clocked(settings, table)
    for partition, mid in ((0, "a"), (1, "b")):
        await lifecycle.handle(
            settings.raw_topic, partition, 0, f"generic:{mid}".encode(), failure(mid)
        )
    clock[0] = 5000.0
    producer.hold.add(settings.actions_topic)
    firing = asyncio.create_task(lifecycle.fire_due([0, 1], 5000.0))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not producer.held and loop.time() < deadline:
        await asyncio.sleep(0.01)
    handled = asyncio.create_task(
        lifecycle.handle(
            settings.raw_topic, 1, 1, b"generic:b", raw("b", "delivered", "2025-01-01T00:00:05Z")
        )
    )
    producer.release()  # partition 0's fallback acknowledged: the timer goes on to 1
    while len(producer.to(settings.actions_topic)) < 2 and loop.time() < deadline:
        await asyncio.sleep(0.01)
    producer.release()
    assert await firing == 2
    await handled
    sent = [(k, orjson.loads(v)["type"]) for k, v, _ in producer.to(settings.actions_topic)]
    assert sent == [
        (b"generic:a", "fallback"),
        (b"generic:b", "fallback"),
        (b"generic:b", "delivered_after_fallback"),
    ]


def test_owned_partitions_are_the_active_assigned_ones_outside_rebalances(
    settings: WorkerSettings, table: Any
) -> None:
    """faust's public state the timer reads (a faust upgrade that changes it fails here)."""
    from faust.assignor.client_assignment import ClientAssignment

    app = table.app
    app.assignor._assignment = ClientAssignment(
        actives={settings.raw_topic: [1, 2]}, standbys={settings.raw_topic: [3]}
    )
    _faust.partition_db(table, 1)  # partition 1 open, 2 not (yet)
    assert owned_partitions(app, settings.raw_topic, table) == []  # flow not resumed
    app.flow_control.resume()
    assert owned_partitions(app, settings.raw_topic, table) == [1]
    app.rebalancing = True
    assert owned_partitions(app, settings.raw_topic, table) == []
    app.rebalancing, app.in_recovery = False, True
    assert owned_partitions(app, settings.raw_topic, table) == []


async def test_a_fallback_due_later_in_the_same_millisecond_is_kept_for_the_next_tick(
    settings: WorkerSettings, table: Any
) -> None:
    """The index rounds due times down to the millisecond: a tick inside that millisecond
    but before the due time finds the entry and must leave it (it used to be dropped, and
    the fallback with it)."""
    producer = producer_for(settings, table)
    lifecycle = Lifecycle(
        settings,
        producer,
        RocksPartitions(table),
        table.changelog_topic_name,
        clock=lambda: 1000.0007,
    )
    await lifecycle.handle(settings.raw_topic, 1, 0, b"generic:m", failure("m"))
    due = 1000.0007 + GRACE
    early = due - 0.0004  # the same millisecond, still before `due`
    assert int(early * 1000) == int(due * 1000) and early < due
    assert [key for _, key in lifecycle.due(1, early)] == [b"generic:m"]
    assert await lifecycle.fire_due([1], early) == 0
    assert [key for _, key in lifecycle.due(1, early)] == [b"generic:m"]
    assert await lifecycle.fire_due([1], due + 0.5) == 1
    assert types_sent(producer, settings.actions_topic) == ["fallback"]
    assert lifecycle.due(1, due + 1.0) == []


class LateAcks(FakeProducer):
    """Sends acknowledged 0-10 ms later, as a broker with a linger does; `send` itself
    sometimes yields to the loop, as aiokafka's does when its buffer waits."""

    def __init__(self, partitions: dict[str, int], rng: random.Random) -> None:
        super().__init__(partitions)
        self.rng = rng

    def acknowledge(self, future: asyncio.Future[Any], result: Any) -> None:
        asyncio.get_running_loop().call_later(self.rng.random() * 0.01, future.set_result, result)

    async def send(
        self, topic: str, value: bytes, key: bytes | None = None, partition: int | None = None
    ) -> asyncio.Future[Any]:
        future = await super().send(topic, value, key, partition)
        if self.rng.random() < 0.3:
            await asyncio.sleep(0)
        return future


TICKING_GRACE = 0.3


@pytest.mark.parametrize("settings", [TICKING_GRACE], indirect=True)
async def test_every_failed_message_gets_one_fallback_with_the_timer_ticking_alongside(
    settings: WorkerSettings, table: Any
) -> None:
    """The agent and the timer on one loop, on the real clock, acks arriving late: 150
    failed messages (a third of them failing twice), each must get exactly one fallback.
    Ticks every 0-10 ms make the rare interleavings common (this found the
    same-millisecond drop above: 1 to 4 of 150 lost per run)."""
    rng = random.Random(7)
    producer = LateAcks(producer_for(settings, table).partitions, rng)
    lifecycle = Lifecycle(settings, producer, RocksPartitions(table), table.changelog_topic_name)
    ticking = True

    async def timer() -> None:
        while ticking:
            await lifecycle.fire_due(range(PARTITIONS), time.time())
            await asyncio.sleep(rng.random() * 0.01)

    def fallbacks() -> Counter[bytes | None]:
        return Counter(
            k
            for k, v, _ in producer.to(settings.actions_topic)
            if orjson.loads(v)["type"] == "fallback"
        )

    ticks = asyncio.create_task(timer())
    failed: set[bytes | None] = set()
    offsets: Counter[int] = Counter()
    try:
        for i in range(150):
            key, partition = f"generic:m{i}".encode(), i % PARTITIONS
            for second, status in enumerate(["undelivered", "rejected"][: 2 if i % 3 else 1]):
                value = raw(
                    f"m{i}",
                    status,
                    f"2025-01-01T00:00:0{second + 1}Z",
                    campaign="order-confirmation",
                )
                await lifecycle.handle(
                    settings.raw_topic, partition, offsets[partition], key, value
                )
                offsets[partition] += 1
                await asyncio.sleep(rng.random() * 0.004)  # the next record's arrival
            failed.add(key)
        deadline = time.monotonic() + TICKING_GRACE + 5.0
        while set(fallbacks()) != failed and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        ticking = False
        await ticks
    sent = fallbacks()
    assert failed - set(sent) == set(), "failed messages without a fallback"
    assert {k: n for k, n in sent.items() if n > 1} == {}, "more than one fallback"
