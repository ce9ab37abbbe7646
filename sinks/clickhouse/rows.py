"""One canonical event as one row of `<db>.events`, with phone numbers protected.

`COLUMNS` / `TYPES` are the insert's column names and ClickHouse type names in order, so
the writer can build its insert context without a `DESCRIBE` per batch; a unit test keeps
them equal to `ddl/0001_events.sql`. Columns with a DEFAULT in the DDL (`inserted_at`) are
not sent.

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
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from schemas.events import CanonicalEvent

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


def _utc(value: datetime | None) -> datetime | None:
    """Aware UTC; a naive time is taken as UTC (the contract's times are UTC)."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


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
        event.campaign,
        event.tenant,
        event.client_ref,
        _segments(event.segments),
        event.price,
        event.currency,
        event.sequence,
        _utc(event.provider_timestamp),
        _utc(event.received_at),
        _utc(event.emitted_at),
        event.raw_sha256,
        int(event.schema_version),
    )


#: The plain `str` of a str-enum member (C speed; `str(member)` runs Python code).
_text = str.__str__


def _utc_fast(value: datetime) -> datetime:
    return value if value.tzinfo is UTC else _utc(value)  # type: ignore[return-value]


def to_columns(
    events: Sequence[CanonicalEvent], *, pii_mode: PiiMode | str, salt: str
) -> list[list[Any]]:
    """The `<db>.events` rows of a batch as columns (`COLUMNS` order), for a
    column-oriented insert: the same values as `to_row` (a unit test checks it), built a
    column at a time, with each phone number protected once per batch.
    """
    if pii_mode not in ("hash", "mask", "clear"):
        raise ValueError(f"unknown pii_mode {pii_mode!r}")
    recipients: dict[str | None, tuple[str | None, str | None]] = {}
    senders: dict[str | None, tuple[str | None, str | None]] = {}
    protected_recipients = []
    protected_senders = []
    for e in events:
        number = e.recipient
        got = recipients.get(number)
        if got is None:
            got = recipients[number] = protect(number, pii_mode=pii_mode, salt=salt)
        protected_recipients.append(got)
        sender = e.sender
        got = senders.get(sender)
        if got is None:
            got = senders[sender] = protect_sender(sender, pii_mode=pii_mode, salt=salt)
        protected_senders.append(got)
    text = _text
    return [
        [e.event_id for e in events],
        [e.message_id for e in events],
        [e.provider for e in events],
        [e.provider_message_id for e in events],
        [text(e.state) for e in events],
        [text(e.current_state) for e in events],
        [None if e.previous_state is None else text(e.previous_state) for e in events],
        [e.transition for e in events],
        [bool(e.is_final) for e in events],
        [None if e.failure_reason is None else text(e.failure_reason) for e in events],
        [e.provider_status for e in events],
        [e.provider_error_code for e in events],
        [e.provider_error_text for e in events],
        [bool(e.mapped) for e in events],
        [pii_mode] * len(events),
        [r[0] for r in protected_recipients],
        [r[1] for r in protected_recipients],
        [r[0] for r in protected_senders],
        [r[1] for r in protected_senders],
        [e.carrier for e in events],
        [e.mcc for e in events],
        [e.mnc for e in events],
        [e.country for e in events],
        [e.region for e in events],
        [e.campaign for e in events],
        [e.tenant for e in events],
        [e.client_ref for e in events],
        [None if e.segments is None else _segments(e.segments) for e in events],
        [e.price for e in events],
        [e.currency for e in events],
        [e.sequence for e in events],
        [None if e.provider_timestamp is None else _utc_fast(e.provider_timestamp) for e in events],
        [_utc_fast(e.received_at) for e in events],
        [_utc_fast(e.emitted_at) for e in events],
        [e.raw_sha256 for e in events],
        [int(e.schema_version) for e in events],
    ]
