"""Vonage SMS API delivery-receipt statuses and `err-code` values, as data.

`accepted` and `buffered` mean the carrier has the message but the handset has not
confirmed: `sent`. `err-code` 0 accompanies success; any other code refines a failure.

Times: `message-timestamp` (UTC, when Vonage started pushing the receipt) is the
provider timestamp. `scts` is the carrier's own clock in its local zone (the docs'
example is an hour ahead of `message-timestamp` in UK summer time), so it is kept raw
only. `network-code` is the recipient network's MCC+MNC.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.lifecycle import FailureReason, State
from schemas.normalized import Normalized
from schemas.providers._common import ErrorRow, parse_time, resolve, text

#: DeliveryReceipt `status` values (Vonage SMS API docs, "Delivery receipts").
STATUSES: Mapping[str, State] = {
    "accepted": State.SENT,
    "buffered": State.SENT,
    "delivered": State.DELIVERED,
    "expired": State.EXPIRED,
    "failed": State.UNDELIVERED,
    "rejected": State.REJECTED,
    "unknown": State.UNKNOWN,
}

#: `err-code` values (Vonage SMS API docs, "Delivery receipts"); 0 is success, in OK_CODES.
ERRORS: Mapping[str, ErrorRow] = {
    "1": (None, FailureReason.UNKNOWN),  # unknown
    "2": (State.UNDELIVERED, FailureReason.UNREACHABLE),  # absent subscriber, temporary
    "3": (State.UNDELIVERED, FailureReason.INVALID_NUMBER),  # absent subscriber, permanent
    # The subscriber barred incoming messages: a refusal on the recipient's side.
    "4": (State.REJECTED, FailureReason.OPTED_OUT),  # call barred by user
    "5": (None, FailureReason.UNREACHABLE),  # portability error
    "6": (State.REJECTED, FailureReason.CARRIER_FILTERED),  # anti-spam rejection
    "7": (State.UNDELIVERED, FailureReason.UNREACHABLE),  # handset busy
    "8": (State.UNDELIVERED, FailureReason.UNREACHABLE),  # network error
    "9": (State.REJECTED, FailureReason.OPTED_OUT),  # illegal number (opted out)
    "10": (State.REJECTED, FailureReason.BLOCKED_CONTENT),  # illegal message
    "11": (None, FailureReason.UNREACHABLE),  # unroutable
    "12": (State.UNDELIVERED, FailureReason.INVALID_NUMBER),  # destination unreachable
    "13": (State.REJECTED, FailureReason.BLOCKED_CONTENT),  # subscriber age restriction
    "14": (State.REJECTED, FailureReason.CARRIER_FILTERED),  # number blocked by carrier
    "15": (None, FailureReason.INSUFFICIENT_FUNDS),  # prepaid insufficient funds
    "99": (None, FailureReason.PROVIDER_ERROR),  # general error
}

OK_CODES = frozenset({"0"})

#: Vonage's meaning of each `err-code` (the receipt carries only the number).
CODE_TEXT: Mapping[str, str] = {
    "0": "Delivered",
    "1": "Unknown",
    "2": "Absent Subscriber - Temporary",
    "3": "Absent Subscriber - Permanent",
    "4": "Call Barred by User",
    "5": "Portability Error",
    "6": "Anti-Spam Rejection",
    "7": "Handset Busy",
    "8": "Network Error",
    "9": "Illegal Number",
    "10": "Illegal Message",
    "11": "Unroutable",
    "12": "Destination Unreachable",
    "13": "Subscriber Age Restriction",
    "14": "Number Blocked by Carrier",
    "15": "Prepaid Insufficient Funds",
    "99": "General Error",
}


def _price(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        price = float(value)
    except ValueError:
        return None
    return price if price == price and abs(price) != float("inf") else None


def _network(value: object) -> tuple[str | None, str | None]:
    code = text(value)
    if code is None or not code.isdigit() or not 5 <= len(code) <= 6:
        return None, None
    return code[:3], code[3:]


def to_canonical(payload: Mapping[str, Any]) -> Normalized:
    """Map one Vonage delivery receipt; unknown statuses become `unknown`, raw kept."""
    raw = text(payload.get("status")) or ""
    code = text(payload.get("err-code"))
    state, reason, mapped = resolve(raw.lower(), code, STATUSES, ERRORS, ok_codes=OK_CODES)
    mcc, mnc = _network(payload.get("network-code"))
    return Normalized(
        state=state,
        failure_reason=reason,
        provider_status=raw,
        provider_error_code=code,
        provider_error_text=CODE_TEXT.get(code) if code is not None else None,
        mapped=mapped,
        recipient=text(payload.get("msisdn")),
        sender=text(payload.get("to")),
        mcc=mcc,
        mnc=mnc,
        price=_price(payload.get("price")),
        provider_timestamp=parse_time(payload.get("message-timestamp")),
        client_ref=text(payload.get("client-ref")),
    )
