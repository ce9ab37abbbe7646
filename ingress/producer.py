"""The Kafka side of the ingress: acks=all, idempotent, bounded wait, errors -> 503."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from ingress.errors import BrokerUnavailable


class RawProducer:
    """Produces raw envelopes keyed by message id and waits for the broker's acknowledgement."""

    def __init__(self, bootstrap: str, topic: str, timeout_s: float) -> None:
        self.topic = topic
        self.timeout_s = timeout_s
        self.bootstrap = bootstrap
        self._producer: AIOKafkaProducer | None = None
        self._started = False
        self._lock = asyncio.Lock()

    def _new(self) -> AIOKafkaProducer:
        # Created inside the running loop (aiokafka binds to it at construction).
        return AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            max_batch_size=256 * 1024,
            request_timeout_ms=int(max(self.timeout_s, 1) * 1000),
            retry_backoff_ms=50,
        )

    async def start(self) -> None:
        """Connect; failures here are retried lazily on the next request."""
        async with self._lock:
            if self._started:
                return
            producer = self._new()
            try:
                await asyncio.wait_for(producer.start(), self.timeout_s)
            except (KafkaError, OSError, TimeoutError) as exc:
                await producer.stop()
                raise BrokerUnavailable(f"Kafka not reachable: {type(exc).__name__}") from exc
            self._producer = producer
            self._started = True

    async def stop(self) -> None:
        """Flush what is in flight and disconnect."""
        if self._started and self._producer is not None:
            await self._producer.stop()
        self._started = False
        self._producer = None

    async def ready(self) -> bool:
        """True when the broker answers a metadata request."""
        if not self._started:
            try:
                await self.start()
            except BrokerUnavailable:
                return False
        assert self._producer is not None
        try:
            await asyncio.wait_for(self._producer.client.force_metadata_update(), 2.0)
        except (KafkaError, OSError, TimeoutError):
            return False
        return bool(self._producer.client.cluster.brokers())

    async def send_all(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Produce (key, value) pairs; return only once every one is acknowledged."""
        if not self._started:
            await self.start()
        assert self._producer is not None
        try:
            async with asyncio.timeout(self.timeout_s):
                futures = [
                    await self._producer.send(self.topic, value=value, key=key)
                    for key, value in items
                ]
                await asyncio.gather(*futures)
        except (KafkaError, OSError, TimeoutError) as exc:
            raise BrokerUnavailable(
                f"Kafka did not acknowledge within {self.timeout_s:.1f}s: {type(exc).__name__}"
            ) from exc
