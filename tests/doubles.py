"""In-process doubles for unit tests (integration tests use the real broker and server).

`RecordingProducer` stands in for the ingress's `RawProducer`: `create_app(settings,
producer=RecordingProducer())` runs the real app, and the test reads what the app handed
over for acknowledgement, in order, without a broker. Setting `available = False` makes it
behave like a broker that does not answer (start, send and /readyz fail).
"""

from __future__ import annotations

from collections.abc import Sequence

from ingress.errors import BrokerUnavailable
from schemas.envelope import RawEnvelope


class RecordingProducer:
    """Acknowledges every record at once and keeps it; or refuses like an absent broker."""

    def __init__(self, *, available: bool = True) -> None:
        self.available = available
        self.records: list[tuple[bytes, bytes]] = []
        self.started = 0
        self.stopped = 0

    async def start(self) -> None:
        self.started += 1
        if not self.available:
            raise BrokerUnavailable("Kafka not reachable: RecordingProducer(available=False)")

    async def stop(self) -> None:
        self.stopped += 1

    async def ready(self) -> bool:
        return self.available

    async def send_all(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        if not self.available:
            raise BrokerUnavailable("Kafka did not acknowledge: RecordingProducer(available=False)")
        self.records.extend(items)

    def envelopes(self) -> list[tuple[bytes, RawEnvelope]]:
        """Every acknowledged record as (key, envelope)."""
        return [(key, RawEnvelope.from_json(value)) for key, value in self.records]
