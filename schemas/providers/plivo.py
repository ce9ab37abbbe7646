"""Plivo message statuses and `ErrorCode` values, as data.

`failed` means Plivo could not hand the message to a carrier; `undelivered` means the
carrier failed after `sent`. The error code refines both. `Sequence` orders the
callbacks of one message and becomes `sequence`. Amounts are Plivo's, in US dollars.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.lifecycle import FailureReason, State
from schemas.normalized import Normalized
from schemas.providers._common import ErrorRow, parse_time, resolve, text

#: Outbound `Status` values (Plivo docs, "Message status callbacks"), lower case.
STATUSES: Mapping[str, State] = {
    "queued": State.QUEUED,
    "sent": State.SENT,
    "delivered": State.DELIVERED,
    "read": State.DELIVERED,  # WhatsApp read receipt
    "undelivered": State.UNDELIVERED,
    "failed": State.FAILED,
    "rejected": State.REJECTED,  # older docs
}

#: Status of inbound messages: never a delivery receipt. The ingress imports this set and
#: extracts an inbound record (opt-out keywords only) instead (ingress/providers/plivo.py).
INBOUND: frozenset[str] = frozenset({"received"})

#: `ErrorCode` values (Plivo docs, "SMS error codes"). The 300/420/450/910/950 rows appear
#: only in newer copies of that list; they are kept because each is unambiguous.
ERRORS: Mapping[str, ErrorRow] = {
    "10": (None, FailureReason.PROVIDER_ERROR),  # invalid message
    "20": (State.UNDELIVERED, FailureReason.UNREACHABLE),  # network error (temporary)
    "30": (State.REJECTED, FailureReason.CARRIER_FILTERED),  # spam detected
    "40": (None, FailureReason.PROVIDER_ERROR),  # invalid source number
    "50": (State.UNDELIVERED, FailureReason.INVALID_NUMBER),  # invalid destination number
    "60": (None, FailureReason.PROVIDER_ERROR),  # loop detected
    "70": (State.UNDELIVERED, FailureReason.INVALID_NUMBER),  # destination permanently unavailable
    "80": (State.UNDELIVERED, FailureReason.UNREACHABLE),  # destination temporarily unavailable
    "90": (None, FailureReason.UNREACHABLE),  # no route available
    "100": (State.REJECTED, FailureReason.CARRIER_FILTERED),  # prohibited by carrier
    "110": (None, FailureReason.PROVIDER_ERROR),  # message too long
    "200": (State.REJECTED, FailureReason.OPTED_OUT),  # source blocked by STOP
    "201": (State.REJECTED, FailureReason.CARRIER_FILTERED),  # US toll-free to Canada blocked
    "300": (State.FAILED, FailureReason.PROVIDER_ERROR),  # failed to dispatch
    "420": (State.EXPIRED, FailureReason.EXPIRED),  # message expired
    "450": (State.FAILED, FailureReason.PROVIDER_ERROR),  # destination country disabled
    "900": (State.FAILED, FailureReason.INSUFFICIENT_FUNDS),  # insufficient credit
    "910": (State.FAILED, FailureReason.PROVIDER_ERROR),  # account disabled
    "950": (State.FAILED, FailureReason.PROVIDER_ERROR),  # daily limit reached
    "1000": (None, FailureReason.UNKNOWN),  # unknown error
}

#: "000" is success in Plivo's records; senders also use "0".
OK_CODES = frozenset({"000", "0"})

#: Plivo's meaning of each code (the callback carries only the number).
CODE_TEXT: Mapping[str, str] = {
    "000": "Success",
    "10": "Invalid message",
    "20": "Network error",
    "30": "Spam detected",
    "40": "Invalid source number",
    "50": "Invalid destination number",
    "60": "Loop detected",
    "70": "Destination permanently unavailable",
    "80": "Destination temporarily unavailable",
    "90": "No route available",
    "100": "Prohibited by carrier",
    "110": "Message too long",
    "200": "Source number blocked by STOP from destination number",
    "201": "US toll-free number to Canadian destination blocked",
    "300": "Failed to dispatch message",
    "420": "Message expired",
    "450": "Destination country disabled",
    "900": "Insufficient credit",
    "910": "Account disabled",
    "950": "Daily messaging limit reached",
    "1000": "Unknown error",
}

#: Time fields, most specific first: the report's own time, then earlier milestones.
_TIMES = ("DeliveryReportTime", "SentTime", "QueuedTime", "MessageTime")


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None


def _int(value: object) -> int | None:
    raw = text(value)
    return int(raw) if raw is not None and raw.isdigit() and len(raw) < 19 else None


def to_canonical(payload: Mapping[str, Any]) -> Normalized:
    """Map one Plivo status callback; unknown statuses become `unknown`, raw kept."""
    raw = text(payload.get("Status")) or ""
    code = text(payload.get("ErrorCode"))
    state, reason, mapped = resolve(raw.lower(), code, STATUSES, ERRORS, ok_codes=OK_CODES)
    price = _number(payload.get("TotalAmount"))
    timestamp = None
    for name in _TIMES:
        timestamp = parse_time(payload.get(name))
        if timestamp is not None:
            break
    return Normalized(
        state=state,
        failure_reason=reason,
        provider_status=raw,
        provider_error_code=code,
        provider_error_text=CODE_TEXT.get(code) if code is not None else None,
        mapped=mapped,
        recipient=text(payload.get("To")),
        sender=text(payload.get("From")),
        mcc=text(payload.get("MCC")),
        mnc=text(payload.get("MNC")),
        segments=_int(payload.get("Units")),
        price=price,
        currency="USD" if price is not None else None,
        provider_timestamp=timestamp,
        sequence=_int(payload.get("Sequence")),
    )
