"""One registration (`dlr.sends.v1`, type `registration`) as one row of `<db>.sends`.

`SCHEMA` is the insert's columns in DDL order (a unit test keeps it equal to
`ddl/0008_sends.sql`). Phone numbers are stored exactly like the events'
(`rows.stored_numbers`: the API protects a registration's numbers as `DLR_PII_MODE` says
and marks its `pii_mode`; a record in clear is protected here). `version` is 2^63 minus
the record's Kafka offset, so the table keeps the first registration of a message id, as
the worker does. Records of the other types (part
links, forwarded parts: the worker's business) are skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from schemas.phone import protect, protect_sender
from schemas.sends import REGISTRATION
from sinks.clickhouse.rows import _millis, stored_numbers

TABLE = "sends"

SCHEMA: tuple[tuple[str, str], ...] = (
    ("message_id", "String"),
    ("provider", "LowCardinality(String)"),
    ("provider_message_id", "String"),
    ("pii_mode", "LowCardinality(String)"),
    ("recipient", "Nullable(String)"),
    ("recipient_clear", "Nullable(String)"),
    ("sender", "Nullable(String)"),
    ("sender_clear", "Nullable(String)"),
    ("campaign", "LowCardinality(Nullable(String))"),
    ("tenant", "LowCardinality(Nullable(String))"),
    ("client_ref", "Nullable(String)"),
    ("submitted_at", "DateTime64(3, 'UTC')"),
    ("consent_source", "LowCardinality(String)"),
    ("consent_at", "DateTime64(3, 'UTC')"),
    ("consent_reference", "Nullable(String)"),
    ("parts", "Array(String)"),
    ("country", "LowCardinality(Nullable(String))"),
    ("region", "LowCardinality(Nullable(String))"),
    ("registered_at", "DateTime64(3, 'UTC')"),
    ("key_id", "LowCardinality(String)"),
    ("digest", "String"),
    ("version", "UInt64"),
)
COLUMNS: tuple[str, ...] = tuple(name for name, _ in SCHEMA)
TYPES: tuple[str, ...] = tuple(kind for _, kind in SCHEMA)

_FIRST = 2**63


def parse(value: bytes, offset: int) -> dict[str, Any] | None:
    """A registration as its JSON object (with `version`), None for the other record types;
    ValueError when the value is not a JSON object."""
    record = orjson.loads(value)
    if not isinstance(record, dict):
        raise ValueError(f"a sends record is a JSON object, not {type(record).__name__}")
    if record.get("type") != REGISTRATION:
        return None
    record["version"] = _FIRST - offset
    return record


def _time(value: str) -> int:
    millis = _millis(datetime.fromisoformat(value))
    assert millis is not None
    return millis


def to_columns(
    records: Sequence[Mapping[str, Any]], *, pii_mode: str, salt: str
) -> list[list[Any]]:
    """The `<db>.sends` columns (`COLUMNS` order) of a batch of registrations (`parse`)."""
    columns: list[list[Any]] = [[] for _ in COLUMNS]
    for r in records:
        given = r.get("pii_mode")
        row_mode, recipient, recipient_clear = stored_numbers(
            r["recipient"], given, protect, pii_mode=pii_mode, salt=salt
        )
        _, sender, sender_clear = stored_numbers(
            r.get("sender"), given, protect_sender, pii_mode=pii_mode, salt=salt
        )
        consent = r["consent"]
        row = (
            r["message_id"],
            r["provider"],
            r["provider_message_id"],
            row_mode,
            recipient,
            recipient_clear,
            sender,
            sender_clear,
            r.get("campaign"),
            r.get("tenant"),
            r.get("client_ref"),
            _time(r["submitted_at"]),
            consent["source"],
            _time(consent["obtained_at"]),
            consent.get("reference"),
            list(r.get("parts") or ()),
            r.get("country"),
            r.get("region"),
            _time(r["registered_at"]),
            r.get("key_id") or "",
            r["digest"],
            int(r["version"]),
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns
