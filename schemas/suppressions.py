"""The records of `dlr.suppressions.v1`: the canonical suppression list, one key per number.

The topic is compacted and keyed by the number's salted hash (`schemas.phone.number_hash`
of its E.164 form), so Kafka keeps the latest record of every number: that record IS the
list. Whoever changes an entry writes a new record for the key; readers apply records in
offset order (one key is always on one partition, so that order is the writing order):

- the stream worker: an opt-out receipt (`source: receipt`) and the inbound keywords
  STOP / START (`source: inbound`, with the keyword and its language);
- the sender's API and `dlr suppressions add|remove` (`source: api` / `cli`, with the
  reason and the actor);
- an erasure (`dlr erase`, `DELETE /v1/subjects/{number}`): a number that is suppressed
  keeps its entry without the number itself (`number: null`, `erased: true`; the hash is
  what lets us keep honouring the opt-out, which is the legal basis for keeping it), any
  other entry gets a tombstone (a null value), which compaction removes after
  `delete.retention.ms`.

A record carries the clear number (`number`) because syncing a provider's own
suppression list needs it (`GET /v1/suppressions?since=`); it is the one place besides
the raw requests (`dlr.raw.v1`, with its retention) where a number stays clear in Kafka,
and an erasure removes it. Records written before this format (`recipient_hash`, no
`suppressed`) were opt-out receipts: they read as suppressed, number unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final, Literal

import orjson

__all__ = [
    "SOURCES",
    "Source",
    "SuppressionEntry",
    "parse",
]

Source = Literal["receipt", "inbound", "api", "cli", "erasure"]
SOURCES: Final[tuple[str, ...]] = ("receipt", "inbound", "api", "cli", "erasure")
VERSION: Final = 2


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class SuppressionEntry:
    """The state of one number on the list after one change."""

    #: Salted SHA-256 hex of the E.164 number: the record's key.
    number_hash: str
    #: The number in E.164, or None once erased (or for records of the first format).
    number: str | None
    #: True: do not send to this number; False: allowed again (START, removed by a person).
    suppressed: bool
    #: Why: `opted_out` (receipt or STOP), `opted_in` (START), or the reason a person gave.
    reason: str
    source: Source
    #: When this change was made (RFC 3339 UTC).
    since: str
    #: Who: an API key id (`key:<id>`), `cli:<user>`, or the provider that reported it.
    actor: str | None = None
    provider: str | None = None
    message_id: str | None = None
    #: The inbound keyword (as listed in `schemas.optout`) and its language.
    keyword: str | None = None
    language: str | None = None
    #: The number itself was erased; the hash stays so the opt-out is still honoured.
    erased: bool = False

    def to_json(self) -> bytes:
        """The wire form (`v` = 2)."""
        data: dict[str, Any] = {"v": VERSION}
        for name in self.__slots__:
            data[name] = getattr(self, name)
        return orjson.dumps(data)

    def key(self) -> bytes:
        """The Kafka key: the number's hash (ASCII hex)."""
        return self.number_hash.encode()

    def erased_copy(self, at: datetime, actor: str | None) -> SuppressionEntry:
        """This entry without the number (what an erasure writes for a suppressed number)."""
        return replace(self, number=None, erased=True, since=_time(at), actor=actor)

    @classmethod
    def now(cls, **fields: Any) -> SuppressionEntry:
        """An entry made now (`since` filled in)."""
        return cls(since=_time(datetime.now(UTC)), **fields)

    def public(self) -> dict[str, Any]:
        """What the API and the export show (everything but the format version)."""
        return {name: getattr(self, name) for name in self.__slots__}


def parse(key: bytes | None, value: bytes | None) -> SuppressionEntry | None:
    """The entry of one record; None for a tombstone. ValueError/KeyError/TypeError for a
    record that is neither format."""
    if value is None:
        return None
    data = orjson.loads(value)
    if not isinstance(data, dict):
        raise ValueError("a suppression record is a JSON object")
    if "suppressed" not in data:  # the first format: opt-out receipts only
        return SuppressionEntry(
            number_hash=str(data["recipient_hash"]),
            number=None,
            suppressed=True,
            reason=str(data.get("reason") or "opted_out"),
            source="receipt",
            since=str(data["since"]),
            provider=data.get("provider"),
            message_id=data.get("message_id"),
        )
    source = data["source"]
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")
    number_hash = str(data["number_hash"])
    if key is not None and key.decode("ascii", "replace") != number_hash:
        raise ValueError("the record's key is not its number_hash")
    return SuppressionEntry(
        number_hash=number_hash,
        number=data.get("number"),
        suppressed=bool(data["suppressed"]),
        reason=str(data["reason"]),
        source=source,
        since=str(data["since"]),
        actor=data.get("actor"),
        provider=data.get("provider"),
        message_id=data.get("message_id"),
        keyword=data.get("keyword"),
        language=data.get("language"),
        erased=bool(data.get("erased", False)),
    )
