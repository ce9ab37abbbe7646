"""Every private name of faust and aiokafka that the worker uses, and nothing else.

The worker's hot path does per record only what it needs; faust's public path costs
about three times the CPU. Each use below is listed with why and what it saves, measured
with `bench.streams` as the worker's CPU per raw record (81 us with all of them). The
versions they were checked against are pinned exactly in `pyproject.toml`, and
`tests/streams/test_faust_boundary.py` fails with a clear message when an upgrade
removes or changes any of them.

Each private name, why, and what it saves:

1. `faust.transport.consumer.Consumer._drain_messages`, overridden by a copy of 0.15.3's
   loop (`FastConsumer`), which reads the consumer's `_read_offset`, `_add_gap`,
   `_n_acked`, `_commit_every`, `_stopped` and the conductor's `_tp_to_callback_lock`
   and `_tp_index`: a record reaches the conductor without `wait_first`'s four tasks
   when nothing can block. Saves ~55 us.
2. `App.sensors` (set in `App.__init__`) replaced by `LeanSensors`: no per-message,
   per-event and per-send sensor hooks. Saves ~28 us.
3. `faust.transport.drivers.aiokafka.Producer._ensure_producer`: outputs and changelog
   records go straight to aiokafka, without faust's buffer, FutureMessage and
   callbacks; and
4. `faust.stores.rocksdb.Store._db_for_partition`: the table's RocksDB of a partition
   is read and written directly, without `Table.__getitem__`/`__setitem__`. 3 and 4
   together save ~65 us.
5. `faust.stores.rocksdb.Store._dbs`: whether a partition's database is still assigned
   before its changelog offset is stored (faust drops revoked ones from it). Needed
   for correctness by 4, saves nothing itself.
6. `faust.transport.consumer.Consumer._getmany`, wrapped by `FastConsumer` (with the
   public `perform_seek`, `seek_to_committed`, `seek`, `seek_wait` and
   `on_partitions_revoked`) to know, for each fetched batch, whether a partition was
   sought back since: needed for correctness by 1 (see `FastConsumer`), saves nothing
   itself.

Public alternatives in use where they cost less than 10 %: the source/changelog and
output partition checks use `AIOKafkaProducer.partitions_for` (once per topic); the
RocksDB write-ahead log is skipped with rocksdict's public per-write `WriteOptions`; the
consumer-lag gauge is a `PrometheusMonitor` subclass built from public `FaustMetrics`;
the worker starts with `faust.Worker(...).execute_from_commandline()`; and topic declaration
waits out a broker outage through the public `Producer.create_topic` (`PatientProducer`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import faust
from aiokafka.errors import KafkaError
from faust.exceptions import NotReady
from faust.sensors import SensorDelegate
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as aiokafka_driver
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_random_exponential,
)

__all__ = [
    "FastConsumer",
    "FastTransport",
    "LeanSensors",
    "PatientProducer",
    "install",
    "is_assigned",
    "partition_db",
    "raw_producer",
]

log = logging.getLogger(__name__)


class LeanSensors(SensorDelegate):
    """faust's sensor delegate without the per-message and per-event hooks.

    faust calls these for every record (message in/out, stream event in/out, table
    get/set, every changelog send); the default Monitor and the Prometheus monitor then
    update several dicts, deques and labelled metrics each time: ~28 us of CPU per
    record. Our own counters (streams/metrics.py) cover what we watch per record.
    Commit, rebalance, assignment and web-request hooks still reach the sensors, and
    faust keeps calling the monitor directly for committed and end offsets (lag).
    """

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        """Not recorded."""

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        """Not recorded."""

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        """Not recorded."""

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        """Not recorded."""

    def on_table_get(self, table: Any, key: Any) -> None:
        """Not recorded."""

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        """Not recorded."""

    def on_table_del(self, table: Any, key: Any) -> None:
        """Not recorded."""

    def on_send_initiated(
        self, producer: Any, topic: str, message: Any, keysize: int, valsize: int
    ) -> None:
        """Not recorded."""

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        """Not recorded."""

    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None:
        """Not recorded here: faust logs a warning for every failed send."""


class FastConsumer(aiokafka_driver.Consumer):
    """faust's aiokafka consumer, handing a record to the conductor without 4 tasks.

    faust's fetch loop delivers every record as
    `await self.wait_first(callback(message), self.suspend_flow.wait())`, which creates
    four tasks (callback, suspend, stopped, crashed), waits, then cancels three: with the
    extra event loop rounds that costs ~55 us per record. `wait_first` is there so that
    a rebalance (suspend_flow) can abandon a callback that is blocked. When the callback
    cannot block, awaiting it directly is the same: flow control active, no suspend
    pending, the conductor's callback map not being rebuilt, faust's producer buffer
    within its limit and no queue of the partition's channels full are exactly the
    conditions under which faust's ConductorHandler runs to the end without suspending
    (decoding is synchronous). Otherwise the record takes faust's path unchanged.

    The loop is `faust.transport.consumer.Consumer._drain_messages` of faust 0.15.3 with
    that call changed, and one guard added. The loop awaits between taking a record from
    a fetched batch and delivering it (a sleep every 100 records, a commit, a gap, a
    blocked callback); meanwhile faust may seek the partition back to its committed
    offset (`perform_seek` after a rebalance's recovery, or when flow stops). faust's
    loop then delivered the rest of the old batch anyway and set the partition's read
    offset past the records the seek brings back, which it dropped as already read and
    never acknowledged; a later commit could skip them (the three-worker test lost a
    few hundred records on about half of its runs; the faster direct call made the
    window wide). So every position reset bumps a serial, each fetch records the serial
    it ran at (fetches and resets never overlap: `_positions`), and a record whose
    partition was reset after its batch was fetched is neither delivered nor counted as
    read: it comes again from the new position (a partition with no committed offset is
    moved back to 0 for that: `seek_to_committed`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Fetches and position resets, one at a time.
        self._positions = asyncio.Lock()
        self._serial = 0  # bumped by every position reset
        self._reset_all = 0  # serial of the latest reset of every partition
        self._reset_tp: dict[Any, int] = {}  # serial of the latest reset of one partition
        self._fetched_at = 0  # serial at which the batch being drained was fetched

    def _reset(self, partitions: Any = None) -> None:
        self._serial += 1
        if partitions is None:
            self._reset_all = self._serial
        else:
            for tp in partitions:
                self._reset_tp[tp] = self._serial

    def _stale(self, tp: Any, fetched_at: int) -> bool:
        """Whether `tp` was sought (or revoked) after the batch fetched at that serial."""
        return max(self._reset_all, self._reset_tp.get(tp, 0)) > fetched_at

    async def _getmany(self, active_partitions: Any, timeout: float) -> Any:  # noqa: ASYNC109
        async with self._positions:
            records = await super()._getmany(active_partitions, timeout)
            self._fetched_at = self._serial
        return records

    async def perform_seek(self) -> None:
        """faust's seek of every partition to its committed offset, recorded."""
        async with self._positions:
            self._reset()
            await super().perform_seek()

    async def seek_to_committed(self) -> Any:
        """faust's seek to the committed offsets (inside `perform_seek`), which also moves
        back the partitions with no committed offset yet.

        aiokafka's `seek_to_committed` seeks only partitions committed past offset 0 and
        leaves the others where their fetcher is. The records of a batch fetched before
        the seek are stale here and never delivered: on such a partition they never came
        again (a worker starting on a backlog lost the first batch of a partition when
        recovery's seek followed its first fetch). Offset 0 is where a partition without a
        committed offset starts (`auto_offset_reset="earliest"`; past the log's start,
        aiokafka resets to it); what was delivered since comes again, as after any seek
        back, and the table's dedupe drops it.
        """
        committed = await super().seek_to_committed()
        for tp, offset in committed.items():
            if offset is None or offset <= 0:
                await super().seek(tp, 0)  # faust's seek: the positions lock is held
        return committed

    async def seek(self, partition: Any, offset: int) -> None:
        """faust's seek of one partition, recorded."""
        async with self._positions:
            self._reset([partition])
            await super().seek(partition, offset)

    async def seek_wait(self, partitions: Any) -> None:
        """faust's seek of several partitions (recovery), recorded."""
        async with self._positions:
            self._reset(list(partitions))
            await super().seek_wait(partitions)

    async def on_partitions_revoked(self, revoked: Any) -> None:
        """faust's revocation; every fetched record from before it is stale."""
        self._reset()
        await super().on_partitions_revoked(revoked)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set

        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        flag_consumer_fetching = CONSUMER_FETCHING
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for

        # What may make faust's ConductorHandler suspend (see the class docstring).
        app = cast(Any, self.app)
        flow_active = app.flow_control.is_active
        suspended = self.suspend_flow.is_set
        conductor = app.topics
        callbacks_locked = conductor._tp_to_callback_lock.locked
        channels_of = conductor._tp_index.get
        producer_buffer = app.producer.buffer
        # ProducerBuffer.size reads a setting per call; this is the same count.
        buffered = (
            (lambda: producer_buffer.size)
            if app.conf.producer_threaded
            else producer_buffer.pending.qsize
        )
        max_buffered = producer_buffer.max_messages
        no_channels: tuple[Any, ...] = ()

        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep
        stale = self._stale

        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(flag_consumer_fetching)
                ait = cast(Any, getmany(timeout=1.0))

                # Sleeping because sometimes getmany is called in a loop
                # never releasing to the event loop
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0

                        fetched_at = self._fetched_at
                        if stale(tp, fetched_at):  # sought back since: it comes again
                            continue
                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            # We have a gap in income messages
                            if gap > 1 and r_offset:
                                acks_enabled = acks_enabled_for(message.topic)
                                if acks_enabled:
                                    await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None and self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                            if stale(tp, fetched_at):  # sought back while we awaited
                                continue
                            if (
                                flow_active()
                                and not suspended()
                                and not callbacks_locked()
                                and buffered() <= max_buffered
                                and not any(c.queue.full() for c in channels_of(tp, no_channels))
                            ):
                                await callback(message)
                            else:
                                await self.wait_first(callback(message), self.suspend_flow.wait())
                            if not stale(tp, fetched_at):
                                set_read_offset(tp, offset)
                        else:
                            self.log.dev(
                                "DROPPED MESSAGE ROFF %r: k=%r v=%r",
                                offset,
                                message.key,
                                message.value,
                            )
                    unset_flag(flag_consumer_fetching)

        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                # we're already stopping so ignore
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                # we're already stopping so ignore
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(flag_consumer_fetching)


#: How long a worker's start waits for the brokers to answer a topic declaration.
DECLARE_WAIT_S = 300.0


def _transient(exc: BaseException) -> bool:
    """A broker that is down, restarting or electing: worth asking again."""
    return isinstance(exc, NotReady) or (isinstance(exc, KafkaError) and exc.retriable)


class PatientProducer(aiokafka_driver.Producer):
    """faust's aiokafka producer whose topic declaration waits out a broker outage.

    A worker declares its source, output and changelog topics while it starts; faust
    gives up on the first NodeNotReadyError, so brokers that restart during a start
    (a rolling restart, a lost node) used to stop the worker. Transient errors are now
    retried with backoff for up to `DECLARE_WAIT_S`; anything else still fails the start.
    """

    #: Declarations retried since the start (read by the tests).
    retries = 0

    async def create_topic(
        self, topic: str, partitions: int, replication: int, **kwargs: Any
    ) -> None:
        def counted(state: RetryCallState) -> None:
            self.retries += 1
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "declaring topic %s: Kafka not ready (%s: %s); retry %d, for up to %.0f s",
                topic,
                type(exc).__name__,
                exc,
                state.attempt_number,
                DECLARE_WAIT_S,
            )

        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_transient),
            wait=wait_random_exponential(multiplier=0.5, max=5.0),
            stop=stop_after_delay(DECLARE_WAIT_S),
            before_sleep=counted,
            reraise=True,
        ):
            with attempt:
                await super().create_topic(topic, partitions, replication, **kwargs)


class FastTransport(aiokafka_driver.Transport):
    """faust's aiokafka transport with the consumer and producer above."""

    Consumer = FastConsumer
    Producer = PatientProducer


def install(app: faust.App) -> None:
    """Give a new app the fast consumer and the lean sensors.

    Both before anything is created from the defaults: the conductor and the consumer
    take the transport; streams, tables and the consumer bind the sensor hooks.
    """
    app.transport = FastTransport(app.conf.broker_consumer, app)
    app.sensors = LeanSensors(app)


def raw_producer(app: faust.App) -> Any:
    """The started aiokafka producer inside faust's producer (the one faust flushes)."""
    return cast(Any, app.producer)._ensure_producer()


def partition_db(table: Any, partition: int) -> Any:
    """The rocksdict database of one partition of a RocksDB-backed table."""
    return table.data._db_for_partition(partition)


def is_assigned(table: Any, partition: int) -> bool:
    """Whether the table's database of this partition is open (not revoked since)."""
    return partition in table.data._dbs
