"""The ingress producer against the real broker: batching never loses, reorders or misroutes.

Records must land where Kafka's default partitioner (murmur2, here aiokafka's) puts their
key: the worker's tables are co-partitioned with the raw topic, whoever produced to it.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from pathlib import Path

import pytest
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from deploy.settings import Settings
from ingress.errors import BrokerUnavailable
from ingress.producer import BUSY_AT, RawProducer
from tests.kafka_helpers import create_topics, read_all


@pytest.fixture
def settings(kafka_bootstrap: str, unique: str, tmp_path: Path) -> Settings:
    s = Settings(kafka_bootstrap=kafka_bootstrap, raw_topic=f"raw.{unique}", data_dir=tmp_path)
    create_topics(s)
    return s


@pytest.mark.integration
def test_concurrent_requests_are_all_acknowledged_in_order_on_the_key_partition(
    settings: Settings,
) -> None:
    """2,000 requests from 200 concurrent senders, some of them batches of 3 records."""
    messages = [f"generic:m{i % 150}".encode() for i in range(2000)]

    async def main() -> None:
        producer = RawProducer(settings.bootstrap, settings.raw_topic, 10.0)
        await producer.start()
        try:

            async def sender(worker: int) -> None:
                for i in range(worker, len(messages), 200):
                    key = messages[i]
                    if i % 7 == 0:  # a batch request: three records, acknowledged together
                        items = [(key, f"{i}.{part}".encode()) for part in range(3)]
                    else:
                        items = [(key, f"{i}.0".encode())]
                    await producer.send_all(items)

            await asyncio.gather(*(sender(w) for w in range(200)))
        finally:
            await producer.stop()

    asyncio.run(main())
    expected = sum(3 if i % 7 == 0 else 1 for i in range(2000))
    records = read_all(settings.bootstrap, settings.raw_topic, expect=expected, timeout=30)
    assert len(records) == expected
    partitions = settings.topic_partitions
    seen: dict[bytes, list[tuple[int, int]]] = defaultdict(list)
    for record in records:
        assert record.key is not None and record.value is not None
        assert record.partition == (aiokafka_murmur2(record.key) & 0x7FFFFFFF) % partitions
        i, part = map(int, record.value.decode().split("."))
        seen[record.key].append((i, part))
    for key, order in seen.items():
        # One sender per key position sends in increasing i, and a message's records were
        # produced in send order: the partition keeps that order.
        by_sender: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for i, part in order:
            by_sender[i % 200].append((i, part))
        for sent in by_sender.values():
            assert sent == sorted(sent), key


@pytest.mark.integration
def test_unreachable_broker_refuses_within_the_timeout(tmp_path: Path) -> None:
    async def main() -> float:
        producer = RawProducer("127.0.0.1:1", "raw.nowhere", 1.0)
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable):
            await producer.send_all([(b"k", b"v")])
        await producer.stop()
        return time.monotonic() - started

    assert asyncio.run(main()) < 5.0


@pytest.mark.integration
def test_acknowledgements_are_awaited_on_a_timer_at_low_load_and_every_turn_near_the_limit(
    settings: Settings,
) -> None:
    """Polled (DLR_PRODUCE_REPORTS=poll): one waiting record must not spin the loop (a core
    burnt at 1,000 callbacks/s); with `BUSY_AT` waiting the loop looks on every turn (a 1 ms
    timer idled the core at the limit)."""

    async def main() -> tuple[float, float, bool, bool]:
        # The linger keeps the records waiting long enough to watch how the loop waits.
        producer = RawProducer(
            settings.bootstrap, settings.raw_topic, 10.0, linger_ms=400, wakeups=False
        )
        await producer.start()
        try:
            wall, cpu = time.monotonic(), time.process_time()
            one = asyncio.ensure_future(producer.send_all([(b"generic:one", b"1")]))
            await asyncio.sleep(0.2)  # the interval observed, not a synchronisation
            wall, cpu = time.monotonic() - wall, time.process_time() - cpu
            on_timer = isinstance(producer._poller, asyncio.TimerHandle)
            more = [
                asyncio.ensure_future(producer.send_all([(f"generic:{i}".encode(), b"1")]))
                for i in range(BUSY_AT)
            ]
            deadline = time.monotonic() + 5
            while isinstance(producer._poller, asyncio.TimerHandle):
                assert time.monotonic() < deadline, "the loop never polled on every turn"
                await asyncio.sleep(0)
            every_turn = producer._poller is not None and not one.done()
            await asyncio.gather(one, *more)
            return wall, cpu, on_timer, every_turn
        finally:
            await producer.stop()

    wall, cpu, on_timer, every_turn = asyncio.run(main())
    assert on_timer
    assert cpu < wall / 2, f"{cpu:.3f} s of CPU over {wall:.3f} s with one record waiting"
    assert every_turn


@pytest.mark.integration
def test_acknowledgements_wake_the_loop_which_never_polls_in_vain(settings: Settings) -> None:
    """With librdkafka's wake-ups (the default) the loop sleeps while records wait, however
    many (polling spun it near the limit), and every acknowledgement still arrives."""

    async def main() -> tuple[float, float, bool, int]:
        producer = RawProducer(settings.bootstrap, settings.raw_topic, 10.0, linger_ms=400)
        await producer.start()
        try:
            watched = producer._pipe is not None
            wall, cpu = time.monotonic(), time.process_time()
            waiting = [
                asyncio.ensure_future(producer.send_all([(f"generic:{i}".encode(), b"1")]))
                for i in range(BUSY_AT * 4)
            ]
            await asyncio.sleep(0.2)  # the interval observed, not a synchronisation
            wall, cpu = time.monotonic() - wall, time.process_time() - cpu
            pending = sum(not w.done() for w in waiting)
            await asyncio.wait_for(asyncio.gather(*waiting), 10)
            assert producer._poller is None  # nothing was ever polled on a timer or a turn
            return wall, cpu, watched, pending
        finally:
            await producer.stop()

    wall, cpu, watched, pending = asyncio.run(main())
    assert watched, "ingress/_rdkafka.py did not vouch for this confluent-kafka"
    assert pending == BUSY_AT * 4  # the linger held them all: the loop slept with them waiting
    assert cpu < wall / 2, f"{cpu:.3f} s of CPU over {wall:.3f} s with records waiting"


@pytest.mark.integration
def test_a_report_callback_that_raises_leaves_no_report_behind(settings: Settings) -> None:
    """librdkafka writes only when its queue was empty: reports a failed `poll(0)` left
    must still be served, or every later request would wait until its timeout. (One key:
    the failing and the later records share a batch, so one report holds them all.)"""

    def broken(error: object, message: object) -> None:
        raise RuntimeError("a callback that fails")

    async def main() -> None:
        producer = RawProducer(settings.bootstrap, settings.raw_topic, 10.0, linger_ms=50)
        await producer.start()
        try:
            client = producer._client()
            for _ in range(3):
                client.produce(settings.raw_topic, b"x", b"generic:same", on_delivery=broken)
            after = [producer.send_all([(b"generic:same", b"1")]) for _ in range(5)]
            await asyncio.wait_for(asyncio.gather(*after), 5)
        finally:
            await producer.stop()

    asyncio.run(main())
