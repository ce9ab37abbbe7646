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
from deploy.topics import topic_names

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
        before = asyncio.run(topic_names(base.bootstrap))
        try:
            yield base
        finally:
            asyncio.run(_drop(base.bootstrap, before))
    finally:
        if start:
            kafka.stop(base)


async def _drop(bootstrap: str, before: set[str]) -> None:
    """Delete the `bench.*` topics created since `before`; a failure leaves them and says
    so (the run's figures stand, whatever happens to its topics)."""
    try:
        made = sorted(t for t in await topic_names(bootstrap) - before if t.startswith(PREFIX))
        if not made:
            return
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.delete_topics(made)
        finally:
            await admin.close()
        print(f"[bench] dropped this run's {len(made)} topics", flush=True)
    except KafkaError as exc:
        print(f"[bench] this run's topics were not dropped: {exc!r}", flush=True)
