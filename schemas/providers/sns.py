"""AWS End User Messaging SMS events (via SNS): event types and message statuses as data.

The `eventType` (TEXT_*) gives the state; `messageStatus` (the same vocabulary without the
`TEXT_` prefix, plus legacy Pinpoint values such as OPTED_OUT and MAX_PRICE_EXCEEDED)
refines the failure reason. When an event has no `messageStatus`, the event type without
its prefix is used instead, so TEXT_INVALID alone still means an invalid number.

TEXT_SUCCESSFUL ("accepted by the recipient's carrier") is `sent`; in countries without
handset receipts it may be the last event (`isFinal`), which `provider_final` carries so
the state machine can decide. After 72 h without a carrier answer AWS sends TEXT_UNKNOWN.
TEXT_ALL is a subscription filter, never an event, and is not in the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.lifecycle import FailureReason, State
from schemas.normalized import Normalized
from schemas.providers._common import ErrorRow, parse_time, resolve, text

STATUSES: Mapping[str, State] = {
    "TEXT_QUEUED": State.QUEUED,
    "TEXT_PENDING": State.QUEUED,
    "TEXT_SENT": State.SENT,
    "TEXT_SUCCESSFUL": State.SENT,
    "TEXT_DELIVERED": State.DELIVERED,
    "TEXT_INVALID": State.FAILED,
    "TEXT_INVALID_MESSAGE": State.FAILED,
    "TEXT_UNREACHABLE": State.UNDELIVERED,
    "TEXT_CARRIER_UNREACHABLE": State.UNDELIVERED,
    "TEXT_BLOCKED": State.REJECTED,
    "TEXT_CARRIER_BLOCKED": State.REJECTED,
    "TEXT_SPAM": State.REJECTED,
    "TEXT_PROTECT_BLOCKED": State.REJECTED,
    "TEXT_TTL_EXPIRED": State.EXPIRED,
    "TEXT_UNKNOWN": State.UNKNOWN,
}

#: `messageStatus` values that explain a failure.
ERRORS: Mapping[str, ErrorRow] = {
    "INVALID": (None, FailureReason.INVALID_NUMBER),
    "INVALID_MESSAGE": (None, FailureReason.PROVIDER_ERROR),
    "UNREACHABLE": (None, FailureReason.UNREACHABLE),
    "CARRIER_UNREACHABLE": (None, FailureReason.UNREACHABLE),
    "BLOCKED": (State.REJECTED, FailureReason.OPTED_OUT),
    "OPTED_OUT": (State.REJECTED, FailureReason.OPTED_OUT),
    "CARRIER_BLOCKED": (State.REJECTED, FailureReason.CARRIER_FILTERED),
    "SPAM": (State.REJECTED, FailureReason.CARRIER_FILTERED),
    "PROTECT_BLOCKED": (State.REJECTED, FailureReason.BLOCKED_CONTENT),
    "TTL_EXPIRED": (State.EXPIRED, FailureReason.EXPIRED),
    "MAX_PRICE_EXCEEDED": (State.FAILED, FailureReason.PROVIDER_ERROR),
    "UNKNOWN": (State.UNKNOWN, FailureReason.UNKNOWN),
}

#: `messageStatus` values of successful or intermediate events.
OK_CODES = frozenset({"QUEUED", "PENDING", "SENT", "SUCCESSFUL", "DELIVERED"})


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _context(payload: Mapping[str, Any], name: str) -> str | None:
    """Our own keys the sender put in the send request's `Context`."""
    context = payload.get("context")
    return text(context.get(name)) if isinstance(context, dict) else None


def to_canonical(payload: Mapping[str, Any]) -> Normalized:
    """Map one SMS event; unknown event types become `unknown` with mapped=False."""
    event_type = str(payload.get("eventType", ""))
    status = event_type.strip().upper()
    message_status = text(payload.get("messageStatus"))
    code = message_status.upper() if message_status else status.removeprefix("TEXT_") or None
    state, reason, mapped = resolve(status, code, STATUSES, ERRORS, ok_codes=OK_CODES)
    segments = _number(payload.get("totalMessageParts"))
    price = _number(payload.get("totalMessagePrice"))
    is_final = payload.get("isFinal")
    return Normalized(
        state=state,
        failure_reason=reason,
        provider_status=event_type,
        provider_error_code=message_status,
        provider_error_text=text(payload.get("messageStatusDescription")),
        mapped=mapped,
        recipient=text(payload.get("destinationPhoneNumber")),
        sender=text(payload.get("originationPhoneNumber")),
        # `phoneCarrier` in the older SNS SMS delivery logs.
        carrier=text(payload.get("carrierName")) or text(payload.get("phoneCarrier")),
        mcc=text(payload.get("mcc")),
        mnc=text(payload.get("mnc")),
        country=text(payload.get("isoCountryCode")),
        segments=int(segments) if segments is not None else None,
        price=price,
        # AWS bills SMS in USD; the event has no currency field.
        currency="USD" if price is not None else None,
        provider_timestamp=parse_time(payload.get("eventTimestamp")),
        provider_final=is_final if isinstance(is_final, bool) else None,
        campaign=_context(payload, "campaign"),
        tenant=_context(payload, "tenant"),
        client_ref=_context(payload, "client_ref"),
    )
