"""Writes batches of canonical events into ClickHouse, idempotently.

A batch is written with an insert deduplication token derived from its event ids, so an
identical retry is dropped by the server; rows re-emitted in another batch are absorbed
by the tables themselves (keyed by event_id, see ddl/). clickhouse-connect errors are
mapped to `SinkUnavailable` (retry) or `SinkRejected` (dead letter).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from clickhouse_connect.driver.exceptions import (
    DatabaseError,
    OperationalError,
)

from schemas.events import CanonicalEvent
from sinks.clickhouse import rows
from sinks.errors import SinkRejected, SinkUnavailable


class EventWriter:
    """Turns canonical events into rows of `<db>.events` and inserts them."""

    def __init__(self, client: Any, database: str, *, pii_mode: str, salt: str) -> None:
        self.client = client
        self.database = database
        self.pii_mode = pii_mode
        self.salt = salt

    def write(self, events: Sequence[CanonicalEvent]) -> int:
        """Insert one batch; returns rows sent. Raises SinkUnavailable / SinkRejected."""
        if not events:
            return 0
        # column-oriented: built a column at a time and encoded without transposing rows
        data = rows.to_columns(events, pii_mode=self.pii_mode, salt=self.salt)
        token = hashlib.sha256("".join(e.event_id for e in events).encode()).hexdigest()
        try:
            self.client.insert(
                rows.TABLE,
                data,
                database=self.database,
                column_names=list(rows.COLUMNS),
                column_type_names=list(rows.TYPES),
                column_oriented=True,
                settings={"insert_deduplication_token": token},
            )
        except OperationalError as exc:
            raise SinkUnavailable(f"ClickHouse unavailable: {exc}"[:300]) from exc
        except DatabaseError as exc:
            message = str(exc)
            if _looks_transient(message):
                raise SinkUnavailable(f"ClickHouse unavailable: {message}"[:300]) from exc
            raise SinkRejected(f"ClickHouse refused the batch: {message}"[:500]) from exc
        except OSError as exc:
            raise SinkUnavailable(f"ClickHouse unreachable: {exc}"[:300]) from exc
        return len(events)


def _looks_transient(message: str) -> bool:
    lowered = message.lower()
    return any(
        word in lowered
        for word in ("timeout", "connection", "too many", "memory_limit", "unavailable", "refused")
    )
