"""The broker a benchmark runs against: the configured one, else the local one (started
for the run when it is not up, and stopped afterwards)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from deploy.local import kafka
from deploy.settings import Settings


@contextmanager
def local_broker() -> Iterator[Settings]:
    """Settings from the environment, with a broker answering at `settings.bootstrap`."""
    base = Settings()
    start = not base.kafka_bootstrap and not kafka.status(base)
    if start:
        kafka.start(base)
    try:
        yield base
    finally:
        if start:
            kafka.stop(base)
