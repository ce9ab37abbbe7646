"""The broker a benchmark runs against: the configured one, else the local one (started
for the run when it is not up, and stopped afterwards). The `bench.*` topics a run creates
are dropped when it ends: every run writes hundreds of thousands of records under fresh
names, and a local broker kept them all until its disk was full."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from deploy.local import kafka
from deploy.settings import Settings

#: Names of the topics benchmarks create (each with a per-run suffix).
PREFIX = "bench."


@contextmanager
def local_broker() -> Iterator[Settings]:
    """Settings from the environment, with a broker answering at `settings.bootstrap`."""
    base = Settings()
    start = not base.kafka_bootstrap and not kafka.status(base)
    if start:
        kafka.start(base)
    try:
        before = set(asyncio.run(_topics(base.bootstrap)))
        try:
            yield base
        finally:
            asyncio.run(_drop(base.bootstrap, before))
    finally:
        if start:
            kafka.stop(base)


async def _topics(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names: list[str] = await admin.list_topics()
        return names
    finally:
        await admin.close()


async def _drop(bootstrap: str, before: set[str]) -> None:
    """Delete the `bench.*` topics created since `before`; a failure leaves them and says
    so (the run's figures stand, whatever happens to its topics)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        names: list[str] = await admin.list_topics()
        made = sorted(t for t in names if t.startswith(PREFIX) and t not in before)
        if made:
            await admin.delete_topics(made)
            print(f"[bench] dropped this run's {len(made)} topics", flush=True)
    except KafkaError as exc:
        print(f"[bench] this run's topics were not dropped: {exc!r}", flush=True)
    finally:
        await admin.close()
