"""The Kafka side of the ingress: acks=all, bounded wait, errors -> 503.

Records go through librdkafka (confluent-kafka): `produce()` partitions (murmur2, as
Kafka's Java client and aiokafka do), batches and sends in C on librdkafka's own threads,
which costs a webhook a third of what aiokafka's Python producer did (`bench/produce.py`).
Delivery reports come back through `poll()`, called on the event loop's own thread, so the
report callbacks resolve asyncio futures directly, without a thread handing them over.
When they are there to be served, librdkafka says so: it writes to a pipe the loop watches
whenever its report queue stops being empty (`ingress/_rdkafka.py`), and the loop serves
them all at once. The loop never polls in vain and sleeps while nothing is due; near the
ingress's limit one write serves the reports of many requests.

Where `ingress/_rdkafka.py` cannot vouch for the client (another confluent-kafka version)
or with `wakeups=False` (`DLR_PRODUCE_REPORTS=poll`), the loop polls instead: at the start
of every `send_all` and, while records are outstanding, again
- on the loop's next turn while `BUSY_AT` (8) or more wait: near the ingress's limit a
  1 ms timer left the core idle 10-15 % of the time with 64 connections waiting on it;
  the loop spun instead, most turns finding nothing;
- else after `poll_interval_s` (`DLR_PRODUCE_POLL_MS`, 1 ms). Polling on every turn
  whatever the load spun the loop while any record waited: a whole core at 1,000
  callbacks/s that the worker and the broker needed (`bench.e2e`). uvloop counts timers in
  whole milliseconds and runs a shorter one on the next turn, so no shorter timer exists.

Every record gets a delivery report within `message.timeout.ms` (the produce timeout): an
acknowledgement, or a failure that becomes a 503, so a request waits on no timer of its
own. A record librdkafka gave up on may still have been written by the broker (the
request was in flight): the provider retries, and the worker's dedupe drops the copy.

Records wait up to `linger_ms` before librdkafka sends them: the ingress's
`DLR_PRODUCE_LINGER_MS` (2 ms), else 5 ms (the sender API's producers). librdkafka puts
one partition in a produce request (librdkafka issue #1700; the Java client and aiokafka
send all of a broker's partitions in one), so with no linger each request carried a record
or two to the broker, and every `produce()` woke librdkafka's broker thread (a `write()`
and, on a busy core, a context switch per record). While the loop polled for reports, 5 ms
cost more than it saved (a provider's 64 connections waited on the linger more than on the
ingress's core); since librdkafka wakes the loop it measures cheaper, but is not the
default until a worker test that failed with it in CI is understood (README, "Performance
and sizing").

Not idempotent, one request in flight per broker: a retry cannot reorder records, and the
producer never enters librdkafka's fatal idempotence states, which would need a new
producer (aiokafka could not even reset its producer id after a broker restart:
tests/integration/test_ingress_outage.py found it). A record written twice by a retry is a
duplicate the worker drops like any provider retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections.abc import Sequence
from typing import Any, Final, Protocol

import confluent_kafka
from confluent_kafka import KafkaError, KafkaException, Message

from ingress import _rdkafka
from ingress.errors import BrokerUnavailable

log = logging.getLogger("dlr.ingress")


#: The `client.id` of every producer this module makes (librdkafka names it
#: "dlr-ingress#producer-N"; `ingress/_rdkafka.py` checks the handle by that name).
CLIENT_ID: Final = "dlr-ingress"

#: Records waiting from which the loop polls on every turn instead of every poll interval.
#: Measured with 64 connections: 45-64 wait at the ingress's limit; at 1,000 callbacks/s 3
#: on average, 8 or more at 1 % of the polls.
BUSY_AT: Final = 8


class _Request:
    """The records of one `send_all` call: its future resolves when all are acknowledged."""

    __slots__ = ("future", "left")

    def __init__(self, future: asyncio.Future[None], left: int) -> None:
        self.future = future
        self.left = left

    def delivered(self, error: KafkaError | None, message: Message) -> None:
        """librdkafka's delivery report for one record (called from `poll()`, on the loop)."""
        future = self.future
        if future.done():
            return
        if error is not None:
            future.set_exception(KafkaException(error))
            return
        self.left -= 1
        if not self.left:
            future.set_result(None)


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


class RawProducer:
    """Produces raw envelopes keyed by message id and waits for the broker's acknowledgement."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        timeout_s: float,
        poll_interval_s: float = 0.001,
        linger_ms: float = 5.0,
        wakeups: bool = True,
    ) -> None:
        self.topic = topic
        self.linger_ms = linger_ms
        self.timeout_s = timeout_s
        self.bootstrap = bootstrap
        self.poll_interval_s = poll_interval_s
        self._producer: confluent_kafka.Producer | None = None  # None until started
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poller: asyncio.Handle | None = None
        #: Whether librdkafka wakes the loop when reports wait (else the loop polls).
        self.wakeups = wakeups
        #: (read end, write end) of the descriptor librdkafka writes to; None: polled.
        self._pipe: tuple[int, int] | None = None

    def _config(self) -> dict[str, object]:
        timeout_ms = int(max(self.timeout_s, 0.1) * 1000)
        return {
            "bootstrap.servers": self.bootstrap,
            "client.id": CLIENT_ID,
            "acks": "all",
            "enable.idempotence": False,
            "max.in.flight.requests.per.connection": 1,
            # Kafka's default partitioner: every client puts a message's reports on one partition.
            "partitioner": "murmur2_random",
            "linger.ms": self.linger_ms,
            "message.timeout.ms": timeout_ms,
            "request.timeout.ms": max(timeout_ms, 1000),
            "retry.backoff.ms": 50,
            "reconnect.backoff.max.ms": 1000,
            "socket.connection.setup.timeout.ms": max(timeout_ms, 1000),
            "logger": logging.getLogger("dlr.ingress.kafka"),
            "error_cb": self._error,
        }

    @staticmethod
    def _error(error: KafkaError) -> None:
        log.warning("kafka client error", extra={"error": error.str(), "code": error.name()})

    async def start(self) -> None:
        """Create the client and wait until the broker answers (BrokerUnavailable if not).

        Failing here is not final: `send_all` produces anyway and librdkafka keeps
        reconnecting, so the ingress answers 503 only while the broker is away.
        """
        self._client()
        # A topic created a moment ago answers "leader not available" for a while:
        # asked again until the timeout, not refused at the first answer.
        deadline = time.monotonic() + self.timeout_s
        while not await self._broker_answers(max(0.1, deadline - time.monotonic())):
            if time.monotonic() >= deadline:
                raise BrokerUnavailable(f"Kafka not reachable within {self.timeout_s:.1f}s")
            await asyncio.sleep(0.2)

    def _client(self) -> confluent_kafka.Producer:
        """The librdkafka producer, created on first use inside the running loop."""
        if self._producer is None:
            self._loop = asyncio.get_running_loop()
            self._producer = confluent_kafka.Producer(self._config())
            if self.wakeups:
                self._watch(self._loop, self._producer)
        return self._producer

    def _watch(self, loop: asyncio.AbstractEventLoop, producer: confluent_kafka.Producer) -> None:
        """Serve reports when librdkafka writes to a pipe the loop watches (no polling)."""
        read, write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        if _rdkafka.enable_wakeups(producer, CLIENT_ID, write):
            self._pipe = (read, write)
            loop.add_reader(read, self._reports)
            producer.poll(0)  # what was queued before: a write comes only for an empty queue
        else:
            os.close(read)
            os.close(write)

    def _reports(self) -> None:
        """librdkafka wrote: reports wait. Read what it wrote, then serve every report
        (a write comes only when the queue was empty; `poll(0)` empties it)."""
        assert self._pipe is not None
        with contextlib.suppress(BlockingIOError):  # a previous wake-up read it
            os.read(self._pipe[0], 4096)
        producer = self._producer
        if producer is None:
            return
        try:
            producer.poll(0)
        except Exception:  # a callback raised: what it left is served on the next turn
            log.exception("kafka delivery reports: a callback failed; serving the rest")
            assert self._loop is not None
            self._loop.call_soon(self._reports_left)

    def _reports_left(self) -> None:
        """What a failed `poll(0)` left in the queue. librdkafka 2.16 puts it back and writes
        again itself (`tests/ingress/test_producer.py`); this does not rely on that."""
        if self._producer is not None and self._pipe is not None:
            os.write(self._pipe[1], b"r")

    def _unwatch(self, producer: confluent_kafka.Producer) -> None:
        pipe, self._pipe = self._pipe, None
        if pipe is None:
            return
        _rdkafka.disable_wakeups(producer, CLIENT_ID)
        loop: Any = self._loop  # typeshed says remove_reader returns bool, uvloop's None: a
        # compiled (mypyc) call checks the declared type and would raise TypeError
        if loop is not None and not loop.is_closed():
            loop.remove_reader(pipe[0])
        for fd in pipe:
            os.close(fd)

    async def _broker_answers(self, timeout_s: float) -> bool:
        """True when the broker answered a metadata request for the topic (in a thread:
        `list_topics` blocks)."""
        producer = self._producer
        assert producer is not None
        call = functools.partial(producer.list_topics, self.topic, timeout_s)
        try:
            cluster = await asyncio.get_running_loop().run_in_executor(None, call)
        except KafkaException:
            return False
        topic = cluster.topics.get(self.topic)
        return bool(cluster.brokers) and topic is not None and topic.error is None

    async def stop(self) -> None:
        """Wait up to the produce timeout for what is in flight, then disconnect."""
        producer = self._producer
        if producer is None:
            return
        deadline = time.monotonic() + self.timeout_s
        while len(producer) and time.monotonic() < deadline:
            producer.poll(0)
            await asyncio.sleep(0.01)
        producer.purge()  # what is left fails: its requests answer 503
        producer.poll(0)
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
        self._unwatch(producer)
        producer.close()
        self._producer = None

    async def ready(self) -> bool:
        """True when the broker answers a metadata request."""
        if self._producer is None:
            try:
                await self.start()
            except BrokerUnavailable:
                return False
            return True
        return await self._broker_answers(2.0)

    async def send_all(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Produce (key, value) pairs; return only once every one is acknowledged."""
        # Without start(), or with the broker away: produce anyway, the delivery report
        # says whether the broker answered within the timeout.
        producer = self._client()
        loop = self._loop
        assert loop is not None
        request = _Request(loop.create_future(), len(items))
        topic, delivered = self.topic, request.delivered
        polled = self._pipe is None
        if polled:
            producer.poll(0)  # earlier requests' acknowledgements, if any came
        try:
            for key, value in items:
                producer.produce(topic, value, key, on_delivery=delivered)
        except (BufferError, KafkaException) as exc:
            # Queue full (the broker has been away for a while) or a record it can never take.
            raise BrokerUnavailable(f"Kafka refused the record: {exc}") from exc
        finally:
            if polled and self._poller is None:
                self._poller = loop.call_later(self.poll_interval_s, self._poll)
        try:
            await request.future
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            name = error.name() if isinstance(error, KafkaError) else type(exc).__name__
            raise BrokerUnavailable(f"Kafka did not acknowledge: {name}") from exc

    def _poll(self) -> None:
        """Deliver the reports librdkafka has (their callbacks run here); again while any wait."""
        self._poller = None
        producer = self._producer
        if producer is None:
            return
        producer.poll(0)
        waiting = len(producer)  # records in flight or reports not yet served
        if waiting:
            assert self._loop is not None
            if waiting >= BUSY_AT:  # near the ingress's limit: look again on the loop's next turn
                self._poller = self._loop.call_soon(self._poll)
            else:
                self._poller = self._loop.call_later(self.poll_interval_s, self._poll)
