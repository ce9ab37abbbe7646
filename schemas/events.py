"""The canonical status event (contract v1) that `dlr.status.v1` carries.

Downstream services in any language read `schemas/canonical_event.v1.json`; this is the
same contract in Python. Serialization is explicit (`to_json` / `from_json`, orjson,
UTC ISO-8601 timestamps) so nothing depends on a framework's record format.

`state` is what this report says; `current_state` is the message's state after it was
applied by the state machine; `transition` says what the report did:
`advanced` (current state moved forward), `enriched` (same state, new information such as
carrier or price), `stale` (recorded for history, changes nothing: e.g. `sent` after
`delivered`).

`submitted_at`, `consent_source` and `consent_at` come from the sender's registration of
the message (`dlr.sends.v1`, see `schemas/sends.py`); they are optional on the wire (events
written before they existed lack them) and null when the message was never registered.
A registration that arrives after the message's reports is emitted as an `enriched` event
whose `raw_sha256` is the registration's digest.

`carrier_source`, `line_type` and `area` (streams/enrich.py) came later too: optional, so
an event written before them reads with None.

`recipient` and `sender` (a phone-number sender) are protected by the worker as
`DLR_PII_MODE` says, and `pii_mode` says how (`schemas/phone.py`): the salted hash of the
E.164 number by default, so no clear number travels on `dlr.status.v1`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Literal

import orjson

from schemas.lifecycle import FailureReason, State
from schemas.phone import PiiMode

SCHEMA_VERSION = 1

Transition = Literal["advanced", "enriched", "stale"]
#: The evidence `carrier` comes from, strongest first (streams/enrich.py).
CarrierSource = Literal["provider", "mcc_mnc", "number_range", "none"]
#: libphonenumber's type of the recipient number, as the worker names it.
LineType = Literal[
    "mobile",
    "fixed",
    "fixed_or_mobile",
    "voip",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "other",
    "unknown",
]


@dataclass(frozen=True, slots=True)
class CanonicalEvent:
    """One provider status report, normalized and placed in the message's lifecycle."""

    event_id: str
    message_id: str
    provider: str
    provider_message_id: str
    state: State
    current_state: State
    previous_state: State | None
    transition: Transition
    is_final: bool
    failure_reason: FailureReason | None
    provider_status: str
    provider_error_code: str | None
    provider_error_text: str | None
    mapped: bool
    recipient: str | None
    sender: str | None
    carrier: str | None
    mcc: str | None
    mnc: str | None
    country: str | None
    region: str | None
    campaign: str | None
    tenant: str | None
    client_ref: str | None
    segments: int | None
    price: float | None
    currency: str | None
    sequence: int | None
    provider_timestamp: datetime | None
    received_at: datetime
    emitted_at: datetime
    raw_sha256: str
    #: From the sender's registration (dlr.sends.v1) when the report lacks them.
    submitted_at: datetime | None = None
    consent_source: str | None = None
    consent_at: datetime | None = None
    #: How `recipient` and `sender` are given: hash / mask / clear (None: clear, written
    #: before the worker protected them; `schemas.phone.protect`).
    pii_mode: PiiMode | None = None
    schema_version: int = SCHEMA_VERSION
    carrier_source: CarrierSource | None = None
    line_type: LineType | None = None
    area: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (enums as strings, datetimes as UTC ISO-8601)."""
        return orjson.loads(self.to_json())  # type: ignore[no-any-return]

    def to_json(self) -> bytes:
        """The wire form on `dlr.status.v1` (orjson: dataclass, enums, RFC 3339 'Z' times)."""
        return orjson.dumps(self, option=orjson.OPT_UTC_Z)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CanonicalEvent:
        """Parse the wire form; unknown extra keys are ignored (forward compatible).

        KeyError / ValueError / TypeError on a malformed event.
        """
        values = {k: v for k, v in data.items() if k in _FIELDS}
        for name in (
            "provider_timestamp",
            "received_at",
            "emitted_at",
            "submitted_at",
            "consent_at",
        ):
            if values.get(name) is not None:
                values[name] = datetime.fromisoformat(values[name])
        for name in ("state", "current_state"):
            values[name] = State(values[name])
        if values.get("previous_state") is not None:
            values["previous_state"] = State(values["previous_state"])
        if values.get("failure_reason") is not None:
            values["failure_reason"] = FailureReason(values["failure_reason"])
        return cls(**values)

    @classmethod
    def from_json(cls, raw: bytes) -> CanonicalEvent:
        """Parse bytes from `dlr.status.v1`."""
        return cls.from_dict(orjson.loads(raw))


_FIELDS = frozenset(f.name for f in fields(CanonicalEvent))
#: Fields added to v1 later: optional on the wire (older events lack them).
OPTIONAL: frozenset[str] = frozenset(
    {
        "submitted_at",
        "consent_source",
        "consent_at",
        "pii_mode",
        "carrier_source",
        "line_type",
        "area",
    }
)
