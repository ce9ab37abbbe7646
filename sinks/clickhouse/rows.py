"""One canonical event as one row of `<db>.events`, with phone numbers protected.

`COLUMNS` / `TYPES` are the insert's column names and ClickHouse type names in order, so
the writer can build its insert context without a `DESCRIBE` per batch; a unit test keeps
them equal to `ddl/0001_events.sql` and the columns `ddl/0007_enrichment.sql` and
`ddl/0008_sends.sql` add. Columns with a DEFAULT in the DDL (`inserted_at`) are not sent.

The sink reads wire records, never event objects: `parse` (a record of `dlr.status.v1` as
its JSON object) and `to_columns` (a batch's columns straight from those objects, its hot
path). `to_row` is the same mapping for one `CanonicalEvent`, the readable reference the
tests hold `to_columns` to.

Phone numbers (PII) are stored as `pii_mode` says (`schemas/phone.py`):
- `hash` (default): `recipient` is the salted SHA-256 hex digest of the E.164 number, the
  same formula as the suppression list's key (`schemas.phone.number_hash`), so they join;
- `mask`: `recipient` keeps only the last two digits (`*********00`);
- `clear`: `recipient` holds the hash and `recipient_clear` the number itself; that column
  has its own, shorter TTL (`clear_pii_days`), after which only the hash remains.
The sender gets the same treatment when it looks like a phone number; alphanumeric sender
IDs and short codes identify the business, not a person, and are kept as sent.

The worker protects the numbers of every canonical event already (`DLR_PII_MODE`, the
event's `pii_mode`): an event in `hash` or `mask` form is stored as it is, and the row's
`pii_mode` is the event's. Only an event in clear (`pii_mode` clear or absent: written by
a worker in `clear` mode, or before the worker protected numbers) is protected here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any, get_args

import orjson

from schemas.events import SCHEMA_VERSION, CanonicalEvent, CarrierSource, LineType, Transition
from schemas.lifecycle import FailureReason, State
from schemas.phone import (
    MODES,
    PiiMode,
    protect,
    protect_sender,
)

#: Target table (in the sink's database).
TABLE = "events"

#: (name, ClickHouse type) of every column the sink inserts, in DDL order.
SCHEMA: tuple[tuple[str, str], ...] = (
    ("event_id", "String"),
    ("message_id", "String"),
    ("provider", "LowCardinality(String)"),
    ("provider_message_id", "String"),
    ("state", "LowCardinality(String)"),
    ("current_state", "LowCardinality(String)"),
    ("previous_state", "LowCardinality(Nullable(String))"),
    ("transition", "LowCardinality(String)"),
    ("is_final", "Bool"),
    ("failure_reason", "LowCardinality(Nullable(String))"),
    ("provider_status", "LowCardinality(String)"),
    ("provider_error_code", "LowCardinality(Nullable(String))"),
    ("provider_error_text", "Nullable(String)"),
    ("mapped", "Bool"),
    ("pii_mode", "LowCardinality(String)"),
    ("recipient", "Nullable(String)"),
    ("recipient_clear", "Nullable(String)"),
    ("sender", "Nullable(String)"),
    ("sender_clear", "Nullable(String)"),
    ("carrier", "LowCardinality(Nullable(String))"),
    ("mcc", "LowCardinality(Nullable(String))"),
    ("mnc", "LowCardinality(Nullable(String))"),
    ("country", "LowCardinality(Nullable(String))"),
    ("region", "LowCardinality(Nullable(String))"),
    ("carrier_source", "LowCardinality(Nullable(String))"),
    ("line_type", "LowCardinality(Nullable(String))"),
    ("area", "LowCardinality(Nullable(String))"),
    ("campaign", "LowCardinality(Nullable(String))"),
    ("tenant", "LowCardinality(Nullable(String))"),
    ("client_ref", "Nullable(String)"),
    ("segments", "Nullable(UInt16)"),
    ("price", "Nullable(Float64)"),
    ("currency", "LowCardinality(Nullable(String))"),
    ("sequence", "Nullable(Int64)"),
    ("provider_timestamp", "Nullable(DateTime64(3, 'UTC'))"),
    ("received_at", "DateTime64(3, 'UTC')"),
    ("emitted_at", "DateTime64(3, 'UTC')"),
    ("raw_sha256", "String"),
    ("schema_version", "UInt16"),
    # ddl/0008_sends.sql
    ("submitted_at", "Nullable(DateTime64(3, 'UTC'))"),
    ("consent_source", "LowCardinality(Nullable(String))"),
    ("consent_at", "Nullable(DateTime64(3, 'UTC'))"),
)

COLUMNS: tuple[str, ...] = tuple(name for name, _ in SCHEMA)
TYPES: tuple[str, ...] = tuple(kind for _, kind in SCHEMA)

_UINT16_MAX = 65535
#: A record's `pii_mode` that says its numbers are protected already (by the worker or the
#: API): they are stored as they are, never hashed a second time.
PROTECTED = frozenset({"hash", "mask"})


def stored_numbers(
    number: str | None,
    given: str | None,
    how: Callable[..., tuple[str | None, str | None]],
    *,
    pii_mode: PiiMode | str,
    salt: str,
) -> tuple[str, str | None, str | None]:
    """(row pii_mode, stored form, clear copy) of a number a record gives in form `given`
    (its `pii_mode`: None means clear, records written before the worker protected)."""
    if given in PROTECTED:
        return given, number, None
    stored, clear = how(number, pii_mode=pii_mode, salt=salt)
    return str(pii_mode), stored, clear


def _segments(value: int | None) -> int | None:
    if value is None:
        return None
    return min(max(int(value), 0), _UINT16_MAX)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _millis(value: datetime | None) -> int | None:
    """A time as what a DateTime64(3) column stores: whole milliseconds since the epoch
    (truncated, as clickhouse-connect does). A naive time is UTC (the contract's times are)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MS


def to_row(event: CanonicalEvent, *, pii_mode: PiiMode | str, salt: str) -> tuple[Any, ...]:
    """The `<db>.events` row of one canonical event, in `COLUMNS` order."""
    if pii_mode not in MODES:
        raise ValueError(f"unknown pii_mode {pii_mode!r}")
    given = event.pii_mode
    row_mode, recipient, recipient_clear = stored_numbers(
        event.recipient, given, protect, pii_mode=pii_mode, salt=salt
    )
    _, sender, sender_clear = stored_numbers(
        event.sender, given, protect_sender, pii_mode=pii_mode, salt=salt
    )
    return (
        event.event_id,
        event.message_id,
        event.provider,
        event.provider_message_id,
        str(event.state),
        str(event.current_state),
        None if event.previous_state is None else str(event.previous_state),
        event.transition,
        bool(event.is_final),
        None if event.failure_reason is None else str(event.failure_reason),
        event.provider_status,
        event.provider_error_code,
        event.provider_error_text,
        bool(event.mapped),
        row_mode,
        recipient,
        recipient_clear,
        sender,
        sender_clear,
        event.carrier,
        event.mcc,
        event.mnc,
        event.country,
        event.region,
        event.carrier_source,
        event.line_type,
        event.area,
        event.campaign,
        event.tenant,
        event.client_ref,
        _segments(event.segments),
        event.price,
        event.currency,
        event.sequence,
        _millis(event.provider_timestamp),
        _millis(event.received_at),
        _millis(event.emitted_at),
        event.raw_sha256,
        int(event.schema_version),
        _millis(event.submitted_at),
        event.consent_source,
        _millis(event.consent_at),
    )


def parse(value: bytes) -> dict[str, Any]:
    """One record of `dlr.status.v1` as its JSON object (ValueError when it is not one)."""
    record = orjson.loads(value)
    if not isinstance(record, dict):
        raise ValueError(f"a canonical event is a JSON object, not {type(record).__name__}")
    return record


#: The contract's required fields, in the order `to_columns` unpacks them (null where the
#: schema allows it); `schema_version`, `carrier_source`, `line_type` and `area` may be
#: absent (events written before them).
_WIRE = itemgetter(
    "event_id", "message_id", "provider", "provider_message_id", "state", "current_state",
    "previous_state", "transition", "is_final", "failure_reason", "provider_status",
    "provider_error_code", "provider_error_text", "mapped", "recipient", "sender", "carrier",
    "mcc", "mnc", "country", "region", "campaign", "tenant", "client_ref", "segments", "price",
    "currency", "sequence", "provider_timestamp", "received_at", "emitted_at", "raw_sha256",
)  # fmt: skip
_STATES = frozenset(s.value for s in State)
_REASONS = frozenset(r.value for r in FailureReason)
_STATES_OR_NULL = _STATES | {None}
_REASONS_OR_NULL = _REASONS | {None}
_TRANSITIONS = frozenset(get_args(Transition))
_SOURCES_OR_NULL = frozenset(get_args(CarrierSource)) | {None}
_LINE_TYPES_OR_NULL = frozenset(get_args(LineType)) | {None}


def _known(column: Sequence[Any], allowed: frozenset[Any], name: str) -> None:
    if not allowed.issuperset(column):
        bad = next(v for v in column if v not in allowed)
        raise ValueError(f"{name} {bad!r} is not in the contract")


#: Records per pass of `to_columns`: small enough that a chunk's dicts stay in the CPU
#: cache while every column is taken from them (100,000 records at once: 4.7 us per
#: record; in chunks of 1,000: 2.0 us).
_CHUNK = 1024

#: A batch's protected phone numbers, so each distinct number is hashed once.
_Seen = dict[str | None, tuple[str | None, str | None]]


def to_columns(
    records: Sequence[Mapping[str, Any]], *, pii_mode: PiiMode | str, salt: str
) -> list[list[Any]]:
    """The `<db>.events` columns (`COLUMNS` order) of a batch of wire records (`parse`).

    The sink's hot path: columns come straight from the parsed JSON, with no event
    object per record (building those took more time than the insert). The values equal
    `to_row` of the same events (a unit test checks it). A record that breaks the
    contract (a missing field, an unknown state, a bad time) raises KeyError /
    ValueError / TypeError; a value of the wrong JSON type fails when clickhouse-connect
    encodes it.
    """
    if pii_mode not in MODES:
        raise ValueError(f"unknown pii_mode {pii_mode!r}")
    columns: list[list[Any]] = [[] for _ in COLUMNS]
    recipients: _Seen = {}
    senders: _Seen = {}
    for start in range(0, len(records), _CHUNK):
        chunk = records[start : start + _CHUNK]
        for column, part in zip(
            columns, _chunk_columns(chunk, pii_mode, salt, recipients, senders), strict=True
        ):
            column.extend(part)
    return columns


def _chunk_columns(
    records: Sequence[Mapping[str, Any]],
    pii_mode: str,
    salt: str,
    recipients: _Seen,
    senders: _Seen,
) -> list[Sequence[Any]]:
    (event_id, message_id, provider, provider_message_id, state, current_state,
     previous_state, transition, is_final, failure_reason, provider_status,
     provider_error_code, provider_error_text, mapped, recipient, sender, carrier,
     mcc, mnc, country, region, campaign, tenant, client_ref, segments, price,
     currency, sequence, provider_timestamp, received_at, emitted_at,
     raw_sha256) = zip(*map(_WIRE, records), strict=True)  # fmt: skip
    _known(state, _STATES, "state")
    _known(current_state, _STATES, "current_state")
    _known(previous_state, _STATES_OR_NULL, "previous_state")
    _known(failure_reason, _REASONS_OR_NULL, "failure_reason")
    _known(transition, _TRANSITIONS, "transition")
    carrier_source = [r.get("carrier_source") for r in records]
    line_type = [r.get("line_type") for r in records]
    _known(carrier_source, _SOURCES_OR_NULL, "carrier_source")
    _known(line_type, _LINE_TYPES_OR_NULL, "line_type")
    given = [r.get("pii_mode") for r in records]
    modes, recipient_stored, recipient_clear = _protect_all(
        recipient, given, protect, pii_mode, salt, recipients
    )
    _, sender_stored, sender_clear = _protect_all(
        sender, given, protect_sender, pii_mode, salt, senders
    )
    millis, iso = _millis, datetime.fromisoformat
    return [
        event_id,
        message_id,
        provider,
        provider_message_id,
        state,
        current_state,
        previous_state,
        transition,
        [bool(v) for v in is_final],
        failure_reason,
        provider_status,
        provider_error_code,
        provider_error_text,
        [bool(v) for v in mapped],
        modes,
        recipient_stored,
        recipient_clear,
        sender_stored,
        sender_clear,
        carrier,
        mcc,
        mnc,
        country,
        region,
        carrier_source,
        line_type,
        [r.get("area") for r in records],
        campaign,
        tenant,
        client_ref,
        [
            v if v is None or (type(v) is int and 0 <= v <= _UINT16_MAX) else _segments(v)
            for v in segments
        ],
        price,
        currency,
        sequence,
        [None if v is None else millis(iso(v)) for v in provider_timestamp],
        [millis(iso(v)) for v in received_at],
        [millis(iso(v)) for v in emitted_at],
        raw_sha256,
        [r.get("schema_version", SCHEMA_VERSION) for r in records],
        # optional: events written before ddl/0008 lack them
        [_optional_millis(r.get("submitted_at")) for r in records],
        [r.get("consent_source") for r in records],
        [_optional_millis(r.get("consent_at")) for r in records],
    ]


def _optional_millis(value: str | None) -> int | None:
    return None if value is None else _millis(datetime.fromisoformat(value))


def _protect_all(
    numbers: Sequence[str | None],
    given: Sequence[str | None],
    how: Callable[..., tuple[str | None, str | None]],
    pii_mode: str,
    salt: str,
    seen: _Seen,
) -> tuple[list[str], list[str | None], list[str | None]]:
    """(row modes, stored, clear) columns of a column of phone numbers in the forms the
    records give (`given`): protected ones as they are, clear ones protected here, each
    distinct clear number once."""
    if all(g in PROTECTED for g in given):  # the worker protected them all (the usual case)
        return list(given), list(numbers), [None] * len(numbers)  # type: ignore[arg-type]
    modes: list[str] = []
    stored: list[str | None] = []
    clear: list[str | None] = []
    for number, form in zip(numbers, given, strict=True):
        if form is not None and form in PROTECTED:
            modes.append(form)
            stored.append(number)
            clear.append(None)
            continue
        got = seen.get(number)
        if got is None:
            got = seen[number] = how(number, pii_mode=pii_mode, salt=salt)
        modes.append(pii_mode)
        stored.append(got[0])
        clear.append(got[1])
    return modes, stored, clear
