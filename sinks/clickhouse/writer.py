"""Writes batches of canonical events into ClickHouse, idempotently.

A batch is a list of wire records (`rows.parse` of each `dlr.status.v1` value). It is
written with an insert deduplication token derived from its event ids, so an identical
retry is dropped by the server; rows re-emitted in another batch are absorbed by the
tables themselves (keyed by event_id, see ddl/). Errors are mapped to `SinkUnavailable`
(retry), `SinkInvalid` (a record breaks the contract, found before or while encoding) or
`SinkRejected` (the server refused the data); the last two go to the dead letter.

Insert settings (`INSERT_SETTINGS`), both about server CPU per batch, neither about what
is stored in the end:

- `parallel_view_processing=1`: the two materialized views of `events` (`messages_mv`,
  `hourly_v2_mv`) run concurrently instead of one after the other. Their results do not
  depend on the order: `hourly_v2_mv` reads `messages` only for the start time of
  messages delivered in the batch without a sent report in it, i.e. what earlier batches
  wrote (`min`, so seeing this batch's rows as well changes nothing).
- `optimize_on_insert=0`: the server does not run a merge (Replacing / Aggregating) over
  each new block before writing it. Every reader is already exact whether or not parts
  are merged (`events`: `FINAL` or `uniqExact(event_id)`; `messages`: grouped by
  message_id; `hourly_v2`: merged states), and the view outputs already hold one row per
  key per block, so this only drops work: a copy of an event repeated inside one batch
  is collapsed by the background merge instead of at insert.
- `distributed_foreground_insert=1` (only matters on a sharded cluster, where `events` is
  a Distributed table): the insert returns once every shard has its rows, so the sink
  commits its offsets only for rows the shards hold, not for rows queued on one node to
  be forwarded later.
"""

from __future__ import annotations

import hashlib
import logging
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clickhouse_connect.driver.exceptions import (
    DatabaseError,
    DataError,
    OperationalError,
)

from sinks.clickhouse import rows, sends
from sinks.errors import SinkInvalid, SinkRejected, SinkUnavailable

#: Settings of every batch insert (see the module docstring), besides the dedup token.
INSERT_SETTINGS: dict[str, int] = {
    "parallel_view_processing": 1,
    "optimize_on_insert": 0,
    "distributed_foreground_insert": 1,
}

# clickhouse-connect logs every encoding failure at ERROR with a traceback quoting the
# value; the writer reports it itself as SinkInvalid (dead letter + dlr_sink_invalid), and
# an isolated bad record fails once per bisection step, so the library's lines are noise.
logging.getLogger("clickhouse_connect.driver.transform").setLevel(logging.CRITICAL)

#: What a record that breaks the contract raises in `rows.to_columns` or while
#: clickhouse-connect encodes its values (a string where a number goes, a list, ...).
_DATA_ERRORS = (KeyError, ValueError, TypeError, AttributeError, ArithmeticError, struct.error)


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A table the writer fills: its columns, and how a batch of records becomes them."""

    name: str
    columns: tuple[str, ...]
    types: tuple[str, ...]
    to_columns: Callable[..., list[list[Any]]]
    #: Columns whose values make the batch's insert deduplication token.
    token_columns: tuple[int, ...] = (0,)


EVENTS = TableSpec(rows.TABLE, rows.COLUMNS, rows.TYPES, rows.to_columns)
SENDS = TableSpec(
    sends.TABLE,
    sends.COLUMNS,
    sends.TYPES,
    sends.to_columns,
    token_columns=(0, sends.COLUMNS.index("digest")),
)


class EventWriter:
    """Turns canonical events (or, with `spec=SENDS`, registrations) into rows and inserts
    them.

    One insert context serves every batch. A context clickhouse-connect makes per insert
    holds the batch's columns in a reference cycle (it keeps a bound method of itself), so
    each batch stayed in memory until a full garbage collection: with the sink's GC
    tuning that was never, and `bench.analytics` grew to 17 GB. The reused context holds
    at most the last batch.
    """

    def __init__(
        self, client: Any, database: str, *, pii_mode: str, salt: str, spec: TableSpec = EVENTS
    ) -> None:
        self.spec = spec
        self.client = client
        self.database = database
        self.pii_mode = pii_mode
        self.salt = salt
        self._context: Any = None

    def _insert_context(self) -> Any:
        if self._context is None:
            self._context = self.client.create_insert_context(
                self.spec.name,
                column_names=list(self.spec.columns),
                database=self.database,
                column_type_names=list(self.spec.types),
                column_oriented=True,
                settings=dict(INSERT_SETTINGS),
            )
        return self._context

    def write(self, records: Sequence[Mapping[str, Any]]) -> int:
        """Insert one batch; returns rows sent. Raises SinkUnavailable / SinkRejected."""
        if not records:
            return 0
        try:
            # column-oriented: built a column at a time and encoded without transposing rows
            data = self.spec.to_columns(records, pii_mode=self.pii_mode, salt=self.salt)
            basis = "".join("".join(data[i]) for i in self.spec.token_columns)
            token = hashlib.sha256(basis.encode()).hexdigest()
        except _DATA_ERRORS as exc:
            raise SinkInvalid(f"breaks the canonical contract: {_describe(exc)}") from exc
        try:
            context = self._insert_context()
            context.settings["insert_deduplication_token"] = token
            self.client.insert(data=data, context=context)
        except OperationalError as exc:
            raise SinkUnavailable(f"ClickHouse unavailable: {exc}"[:300]) from exc
        except (DataError, *_DATA_ERRORS) as exc:  # raised by the client's encoder
            raise SinkInvalid(f"a value cannot be encoded: {_describe(exc)}") from exc
        except DatabaseError as exc:
            message = str(exc)
            if _looks_transient(message):
                raise SinkUnavailable(f"ClickHouse unavailable: {message}"[:300]) from exc
            raise SinkRejected(f"ClickHouse refused the batch: {message}"[:500]) from exc
        except OSError as exc:
            raise SinkUnavailable(f"ClickHouse unreachable: {exc}"[:300]) from exc
        finally:
            # clickhouse-connect empties the context after a failed insert, but not when
            # sizing the batch fails (it samples values while taking the data): a context
            # left holding data would refuse every later batch.
            if self._context is not None and not self._context.empty:
                self._context.data = None
        return len(records)


def _describe(exc: BaseException) -> str:
    """The error's type and text, short."""
    return f"{type(exc).__name__}: {exc}"[:300]


def _looks_transient(message: str) -> bool:
    lowered = message.lower()
    return any(
        word in lowered
        for word in ("timeout", "connection", "too many", "memory_limit", "unavailable", "refused")
    )
