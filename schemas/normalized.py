"""What a provider's mapping module returns for one raw record.

`schemas/providers/<name>.py` turns the record payload the ingress extracted into a
`Normalized`; the stream worker adds identity, time and state-machine fields to make the
canonical event. Original provider values are always kept next to the canonical ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas.lifecycle import FailureReason, State


@dataclass(frozen=True, slots=True)
class Normalized:
    """A provider status report expressed in canonical terms, raw values kept."""

    state: State
    failure_reason: FailureReason | None
    provider_status: str
    provider_error_code: str | None = None
    provider_error_text: str | None = None
    #: False when the status or the error code was not in the provider's table
    #: (state is then `unknown` or the status-only mapping; a metric counts it).
    mapped: bool = True
    recipient: str | None = None
    sender: str | None = None
    carrier: str | None = None
    mcc: str | None = None
    mnc: str | None = None
    #: ISO 3166-1 alpha-2, only when the provider states it; otherwise derived later.
    country: str | None = None
    segments: int | None = None
    price: float | None = None
    currency: str | None = None
    provider_timestamp: datetime | None = None
    #: Provider ordering hint (Plivo `Sequence`); higher means later.
    sequence: int | None = None
    #: Provider's own finality flag where it has one (AWS `isFinal`).
    provider_final: bool | None = None
    campaign: str | None = None
    tenant: str | None = None
    #: Our own reference the sender attached (client_ref, callbackData, tag ...).
    client_ref: str | None = None
