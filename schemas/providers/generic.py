"""Generic sender (the flat JSON of ingress/providers/generic.py): canonical names plus common
synonyms, as data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.lifecycle import FailureReason, State
from schemas.normalized import Normalized
from schemas.providers._common import ErrorRow, parse_time, resolve, text

STATUSES: Mapping[str, State] = {
    "accepted": State.ACCEPTED,
    "scheduled": State.ACCEPTED,
    "queued": State.QUEUED,
    "processing": State.QUEUED,
    "sending": State.QUEUED,
    "sent": State.SENT,
    "delivered": State.DELIVERED,
    "undelivered": State.UNDELIVERED,
    "failed": State.FAILED,
    "rejected": State.REJECTED,
    "blocked": State.REJECTED,
    "expired": State.EXPIRED,
    "unknown": State.UNKNOWN,
}

#: `provider_status_code` values the generic contract defines (senders may send others).
ERRORS: Mapping[str, ErrorRow] = {
    "invalid_number": (State.UNDELIVERED, FailureReason.INVALID_NUMBER),
    "unreachable": (State.UNDELIVERED, FailureReason.UNREACHABLE),
    "carrier_filtered": (State.REJECTED, FailureReason.CARRIER_FILTERED),
    "opted_out": (State.REJECTED, FailureReason.OPTED_OUT),
    "blocked_content": (State.REJECTED, FailureReason.BLOCKED_CONTENT),
    "expired": (State.EXPIRED, FailureReason.EXPIRED),
    "insufficient_funds": (State.FAILED, FailureReason.INSUFFICIENT_FUNDS),
    "provider_error": (State.FAILED, FailureReason.PROVIDER_ERROR),
}

OK_CODES = frozenset({"0", "000"})


def to_canonical(payload: Mapping[str, Any]) -> Normalized:
    """Map one generic report; unknown statuses become `unknown` with the raw value kept."""
    status = str(payload.get("status", "")).strip().lower()
    code = text(payload.get("provider_status_code"))
    state, reason, mapped = resolve(status, code, STATUSES, ERRORS, ok_codes=OK_CODES)
    segments = payload.get("segments")
    price = payload.get("price")
    sequence = payload.get("sequence")
    return Normalized(
        state=state,
        failure_reason=reason,
        provider_status=str(payload.get("status", "")),
        provider_error_code=code,
        provider_error_text=text(payload.get("error")),
        mapped=mapped,
        recipient=text(payload.get("to")),
        sender=text(payload.get("from")),
        carrier=text(payload.get("carrier")),
        mcc=text(payload.get("mcc")),
        mnc=text(payload.get("mnc")),
        country=text(payload.get("country")),
        segments=segments if isinstance(segments, int) else None,
        price=float(price) if isinstance(price, int | float) else None,
        currency=text(payload.get("currency")),
        provider_timestamp=parse_time(payload.get("timestamp")),
        sequence=sequence if isinstance(sequence, int) else None,
        campaign=text(payload.get("campaign")),
        tenant=text(payload.get("tenant")),
        client_ref=text(payload.get("client_ref")),
    )
