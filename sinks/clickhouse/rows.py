"""One canonical event as one row of `<db>.events`, with phone numbers protected.

`COLUMNS` / `TYPES` are the insert's column names and ClickHouse type names in order, so
the writer can build its insert context without a `DESCRIBE` per batch; a unit test keeps
them equal to `ddl/0001_events.sql` and the columns `ddl/0007_enrichment.sql` and
`ddl/0008_sends.sql` add. Columns with a DEFAULT in the DDL (`inserted_at`) are not sent.

The sink reads wire records, never event objects: `parse` (a record of `dlr.status.v1` as
its JSON object) and `to_columns` (a batch's columns straight from those objects, its hot
path). `to_row` is the same mapping for one `CanonicalEvent`, the readable reference the
tests hold `to_columns` to.

Phone numbers (PII) are stored as `pii_mode` says:
- `hash` (default): `recipient` is the salted SHA-256 hex digest, the same formula as the
  worker's suppression key (`streams.transforms.recipient_hash`), so the two join;
- `mask`: `recipient` keeps only the last two digits (`*********00`);
- `clear`: `recipient` holds the hash and `recipient_clear` the number itself; that column
  has its own, shorter TTL (`clear_pii_days`), after which only the hash remains.
The sender gets the same treatment when it looks like a phone number; alphanumeric sender
IDs and short codes identify the business, not a person, and are kept as sent.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any, Literal, get_args

import orjson

from schemas.events import SCHEMA_VERSION, CanonicalEvent, CarrierSource, LineType, Transition
from schemas.lifecycle import FailureReason, State

PiiMode = Literal["hash", "mask", "clear"]

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

_NON_DIGIT = re.compile(r"\D")
#: Separators a provider may leave in a number; anything else (letters) means a sender ID.
_PHONE_CHARS = re.compile(r"^\+?[\d\s().-]+$")
#: Shorter all-digit senders are short codes (business identifiers, not personal data).
_MIN_PHONE_DIGITS = 7
_UINT16_MAX = 65535


def hash_phone(number: str, salt: str) -> str:
    """Salted SHA-256 hex; same input and salt as the suppression key, so they join."""
    return hashlib.sha256(f"{salt}|{number}".encode()).hexdigest()


def mask_phone(number: str) -> str:
    """'+14155550100' -> '*********00': digits only, all but the last two starred."""
    digits = _NON_DIGIT.sub("", number)
    if len(digits) <= 2:
        return "*" * len(digits)
    return "*" * (len(digits) - 2) + digits[-2:]


def looks_like_phone(value: str) -> bool:
    """True for a phone number; False for alphanumeric sender IDs and short codes."""
    return bool(_PHONE_CHARS.match(value)) and len(_NON_DIGIT.sub("", value)) >= _MIN_PHONE_DIGITS


def protect(
    number: str | None, *, pii_mode: PiiMode | str, salt: str
) -> tuple[str | None, str | None]:
    """(stored form, clear copy) of a phone number under `pii_mode`."""
    if number is None or number == "":
        return None, None
    if pii_mode == "hash":
        return hash_phone(number, salt), None
    if pii_mode == "mask":
        return mask_phone(number), None
    if pii_mode == "clear":
        return hash_phone(number, salt), number
    raise ValueError(f"unknown pii_mode {pii_mode!r}")


def protect_sender(
    sender: str | None, *, pii_mode: PiiMode | str, salt: str
) -> tuple[str | None, str | None]:
    """Like `protect`, but sender IDs and short codes are kept as they are."""
    if sender is None or sender == "":
        return None, None
    if not looks_like_phone(sender):
        if pii_mode not in ("hash", "mask", "clear"):
            raise ValueError(f"unknown pii_mode {pii_mode!r}")
        return sender, None
    return protect(sender, pii_mode=pii_mode, salt=salt)


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
    recipient, recipient_clear = protect(event.recipient, pii_mode=pii_mode, salt=salt)
    sender, sender_clear = protect_sender(event.sender, pii_mode=pii_mode, salt=salt)
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
        pii_mode,
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
    if pii_mode not in ("hash", "mask", "clear"):
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
    recipient_stored, recipient_clear = _protect_all(recipient, protect, pii_mode, salt, recipients)
    sender_stored, sender_clear = _protect_all(sender, protect_sender, pii_mode, salt, senders)
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
        [pii_mode] * len(records),
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
    how: Callable[..., tuple[str | None, str | None]],
    pii_mode: str,
    salt: str,
    seen: _Seen,
) -> tuple[list[str | None], list[str | None]]:
    """(stored, clear) columns of a column of phone numbers, each number protected once."""
    pairs = []
    for number in numbers:
        got = seen.get(number)
        if got is None:
            got = seen[number] = how(number, pii_mode=pii_mode, salt=salt)
        pairs.append(got)
    return [p[0] for p in pairs], [p[1] for p in pairs]
