"""The lifecycle agent: dedupe, map, apply the state machine, emit (one per partition).

Thin on purpose: `streams.transforms.process` decides; this loop produces the outputs
first and then writes the table (see that module for why this order is crash safe).
`concurrency=1` because faust can commit past in-flight events with more (faust #606).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from streams import metrics
from streams.app import app, settings
from streams.tables import messages
from streams.topics import raw
from streams.transforms import Config, process

STATUS = settings.status_topic
DEADLETTER = settings.deadletter_topic
ACTIONS = settings.actions_topic
SUPPRESSIONS = settings.suppressions_topic
CONFIG = Config(
    fallback_campaigns=frozenset(c for c in settings.fallback_campaigns.split(",") if c),
    salt=settings.pii_salt,
)


@app.agent(raw, concurrency=1)
async def lifecycle(stream: Any) -> None:
    """Consume dlr.raw.v1; produce dlr.status.v1 (+ dead letters, actions, suppressions)."""
    producer = app.producer
    async for event in stream.events():
        message = event.message
        key: bytes | None = event.key
        table_key = key or b""
        now = time.time()
        stored = messages.get(table_key) if key else None
        out = process(
            event.value,
            key,
            orjson.loads(stored) if stored else None,
            message.partition,
            message.offset,
            now,
            CONFIG,
        )
        # Straight to faust's producer: it is flushed before every offset commit, and
        # skipping the Topic/FutureMessage layers roughly halves the per-output cost.
        for topic, pairs in (
            (STATUS, out.status),
            (DEADLETTER, out.deadletter),
            (ACTIONS, out.actions),
            (SUPPRESSIONS, out.suppressions),
        ):
            for k, v in pairs:
                await producer.send(topic, k, v, None, None, None)
        if out.store is not None and key:
            messages[table_key] = orjson.dumps(out.store)
        metrics.records.labels(out.kind).inc()
        if out.event is not None:
            metrics.transitions.labels(out.transition or "", out.event.provider).inc()
            metrics.latency.observe(max(0.0, now - out.event.received_at.timestamp()))
            if out.unmapped:
                metrics.unmapped.labels(out.event.provider).inc()
        if out.deadletter:
            metrics.deadletters.inc(len(out.deadletter))
        if out.actions:
            metrics.actions.inc(len(out.actions))
