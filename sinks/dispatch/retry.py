"""`dlr dispatch retry`: re-send dead-lettered actions, selected by time, type, endpoint.

Reads `DLR_ACTIONS_DEADLETTER_TOPIC` from its start to the end it has when the command
starts. The topic holds two kinds of records per (action_id, endpoint): `dead` (written
by `dlr dispatch` or by a retry that failed again) and `redelivered` (written by a retry
that got a 2xx). The latest one decides, so a retry never re-sends what an earlier
retry delivered, and running the same command twice is harmless. Each selected action
goes to the endpoint it failed on (as configured now: `DLR_ACTION_ENDPOINTS`) through the
same `sinks.webhooks` path, with the same `webhook-id`, signature and retry budget as
`dlr dispatch`; one message's actions for one endpoint go in their original order.
Progress bars show the scan and the re-sends.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from tqdm import tqdm

from sinks.dispatch.service import (
    DispatchMetrics,
    dead_letter,
    envelope,
    now_iso,
    retry_policy,
    routes_of,
)
from sinks.dispatch.settings import DispatchSettings
from sinks.webhooks import BreakerPolicy, Endpoint, KeyedOrder, WebhookClient

__all__ = ["Selection", "Summary", "retry_dead_letters", "select"]


@dataclass(frozen=True, slots=True)
class Selection:
    """Which dead letters to re-send (None: any)."""

    since: float | None = None
    until: float | None = None
    kind: str | None = None
    #: An endpoint name (`host#hash`, as in metrics and dead letters) or its URL.
    endpoint: str | None = None

    def matches(self, record: dict[str, Any]) -> bool:
        """Whether a dead record is selected."""
        if self.kind is not None and record.get("type") != self.kind:
            return False
        if self.endpoint is not None:
            wanted = self.endpoint
            if wanted.startswith(("http://", "https://")):
                wanted = Endpoint.label(wanted)
            if record.get("endpoint") != wanted:
                return False
        if self.since is not None or self.until is not None:
            try:
                at = datetime.fromisoformat(str(record.get("at"))).timestamp()
            except ValueError:
                return False
            if self.since is not None and at < self.since:
                return False
            if self.until is not None and at >= self.until:
                return False
        return True


@dataclass(slots=True)
class Summary:
    """What a retry run did."""

    scanned: int = 0
    selected: int = 0
    delivered: int = 0
    failed: int = 0
    #: Endpoint names no longer configured (their actions were not re-sent).
    unknown_endpoints: dict[str, int] = field(default_factory=dict)


async def _dead_letters(
    settings: DispatchSettings, producer: AIOKafkaProducer, progress: bool, out: TextIO
) -> list[tuple[bytes | None, dict[str, Any]]]:
    """Every record of the dead-letter topic up to its current end, in offset order."""
    topic = settings.actions_deadletter_topic
    try:
        partitions = await producer.partitions_for(topic)
    except KafkaError:  # no such topic: nothing was ever dead-lettered
        return []
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        # explicit offsets: seek_to_beginning() races with the position the fetcher may
        # already have reset an assigned partition to (as in sinks/alerts read_latest)
        for tp, first in starts.items():
            consumer.seek(tp, first)
        total = sum(ends[tp] - starts[tp] for tp in tps)
        found: list[tuple[bytes | None, dict[str, Any]]] = []
        remaining = {tp for tp in tps if ends[tp] > starts[tp]}
        with tqdm(
            total=total, desc="scan dead letters", unit="rec", disable=not progress, file=out
        ) as bar:
            while remaining:
                fetched = await consumer.getmany(*remaining, timeout_ms=1000)
                for tp, records in fetched.items():
                    for record in records:
                        if record.offset >= ends[tp]:
                            continue
                        try:
                            value = orjson.loads(record.value or b"")
                        except orjson.JSONDecodeError:
                            value = None
                        if isinstance(value, dict):
                            found.append((record.key, value))
                    bar.update(len(records))
                    if records and records[-1].offset + 1 >= ends[tp]:
                        remaining.discard(tp)
        return found
    finally:
        await consumer.stop()


def select(
    records: Iterable[tuple[bytes | None, dict[str, Any]]], selection: Selection
) -> list[tuple[bytes | None, dict[str, Any]]]:
    """The dead records still dead (no later `redelivered`) that the selection matches,
    in their original order."""
    latest: dict[tuple[str, str], tuple[int, bytes | None, dict[str, Any]]] = {}
    for n, (key, record) in enumerate(records):
        action_id, endpoint = record.get("action_id"), record.get("endpoint")
        if isinstance(action_id, str) and isinstance(endpoint, str):
            latest[action_id, endpoint] = (n, key, record)
    chosen = sorted(
        (n, key, record)
        for n, key, record in latest.values()
        if record.get("kind") == "dead" and "action" in record and selection.matches(record)
    )
    return [(key, record) for _, key, record in chosen]


async def retry_dead_letters(
    settings: DispatchSettings,
    selection: Selection,
    *,
    dry_run: bool = False,
    concurrency: int = 64,
    progress: bool = True,
    out: TextIO = sys.stderr,
) -> Summary:
    """Re-send the selected dead letters; write `redelivered` or a new `dead` record each."""
    summary = Summary()
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all")
    await producer.start()
    try:
        await _retry(settings, selection, producer, summary, dry_run, concurrency, progress, out)
    finally:
        await producer.stop()
    return summary


async def _retry(
    settings: DispatchSettings,
    selection: Selection,
    producer: AIOKafkaProducer,
    summary: Summary,
    dry_run: bool,
    concurrency: int,
    progress: bool,
    out: TextIO,
) -> None:
    scanned = await _dead_letters(settings, producer, progress, out)
    summary.scanned = len(scanned)
    chosen = select(scanned, selection)
    by_name = {e.name: e for endpoints in routes_of(settings).values() for e in endpoints}
    todo: list[tuple[bytes | None, dict[str, Any], Endpoint]] = []
    for key, record in chosen:
        endpoint = by_name.get(record["endpoint"])
        if endpoint is None:
            name = record["endpoint"]
            summary.unknown_endpoints[name] = summary.unknown_endpoints.get(name, 0) + 1
        else:
            todo.append((key, record, endpoint))
    summary.selected = len(todo)
    if dry_run or not todo:
        return
    client = WebhookClient(
        retry_policy(settings),
        breaker=BreakerPolicy(
            settings.dispatch_breaker_failures, settings.dispatch_breaker_cooldown_s
        ),
        concurrency=settings.dispatch_concurrency,
        metrics=DispatchMetrics().webhooks,
        user_agent="dlr-dispatch-retry/1",
    )
    order = KeyedOrder()
    limit = asyncio.Semaphore(concurrency)
    await client.start()
    try:
        with tqdm(
            total=len(todo), desc="re-send", unit="action", disable=not progress, file=out
        ) as bar:

            async def resend(key: bytes | None, record: dict[str, Any], endpoint: Endpoint) -> None:
                action = record["action"]
                async with limit, order.turn((endpoint.url, key)):
                    outcome = await client.deliver(
                        endpoint, action["action_id"], envelope(action), action["type"]
                    )
                if outcome.delivered:
                    summary.delivered += 1
                    note = {
                        "kind": "redelivered",
                        "action_id": action["action_id"],
                        "type": action["type"],
                        "endpoint": endpoint.name,
                        "at": now_iso(),
                        "attempts": outcome.attempts,
                    }
                else:
                    summary.failed += 1
                    note = dead_letter(action, endpoint, outcome)
                await producer.send_and_wait(
                    settings.actions_deadletter_topic, orjson.dumps(note), key=key
                )
                bar.update(1)
                bar.set_postfix(delivered=summary.delivered, failed=summary.failed)

            await asyncio.gather(*(resend(k, r, e) for k, r, e in todo))
    finally:
        await client.close()
