"""Twilio message statuses and delivery error codes, as data.

Two payload shapes reach `to_canonical`: the status callback's form parameters
(`MessageStatus`, `ErrorCode`, `To`, `From`, ...) and the `data` of an Event Streams
CloudEvent (`messageStatus` in upper case, `errorCode`, `to`, `from`, `numberOfSegments`,
`timestamp`). Both are read here so that the ingress can pass either through untouched.

Left out on purpose: `RawDlrDoneDate` (carrier local time with an unknown offset, so any
datetime made from it could be hours off; it stays in the raw payload) and the Event
Streams `mcc`/`mnc` (they describe the sender's number, not the recipient's network).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.lifecycle import FailureReason, State
from schemas.normalized import Normalized
from schemas.providers._common import ErrorRow, parse_time, resolve, text

#: The Message resource's status enum (Twilio docs, "Track the message status of outbound
#: messages"), lower case.
STATUSES: Mapping[str, State] = {
    "accepted": State.ACCEPTED,
    "scheduled": State.ACCEPTED,
    "queued": State.QUEUED,
    "sending": State.QUEUED,
    "sent": State.SENT,
    "delivered": State.DELIVERED,
    # WhatsApp/RCS read receipt: delivered and more.
    "read": State.DELIVERED,
    # Some but not all of the content arrived; the handset got the message, so it counts
    # as delivered (the raw status is kept for anyone who needs the distinction).
    "partially_delivered": State.DELIVERED,
    "undelivered": State.UNDELIVERED,
    "failed": State.FAILED,
    # A scheduled message canceled before sending: it never left Twilio.
    "canceled": State.FAILED,
}

#: Statuses of inbound messages: never a delivery receipt. The ingress imports this set and
#: extracts an inbound record (opt-out keywords only) instead (ingress/providers/twilio.py).
INBOUND: frozenset[str] = frozenset({"receiving", "received"})

#: Delivery error codes of Twilio's error dictionary (https://www.twilio.com/docs/api/errors):
#: the 300xx delivery codes plus well-known 21xxx ones.
ERRORS: Mapping[str, ErrorRow] = {
    "30001": (None, FailureReason.PROVIDER_ERROR),  # queue overflow
    "30002": (State.FAILED, FailureReason.PROVIDER_ERROR),  # account suspended
    "30003": (State.UNDELIVERED, FailureReason.UNREACHABLE),  # unreachable handset
    "30004": (State.REJECTED, FailureReason.CARRIER_FILTERED),  # message blocked
    "30005": (State.UNDELIVERED, FailureReason.INVALID_NUMBER),  # unknown handset
    "30006": (State.UNDELIVERED, FailureReason.INVALID_NUMBER),  # landline/unreachable carrier
    "30007": (State.REJECTED, FailureReason.CARRIER_FILTERED),  # filtered (spam)
    "30008": (None, FailureReason.UNKNOWN),  # unknown error
    "30009": (None, FailureReason.PROVIDER_ERROR),  # missing segment
    "30010": (State.FAILED, FailureReason.PROVIDER_ERROR),  # price exceeds max price
    "30011": (None, FailureReason.UNREACHABLE),  # MMS not supported by the destination
    "30012": (None, FailureReason.EXPIRED),  # TTL too small
    "30032": (State.REJECTED, FailureReason.CARRIER_FILTERED),  # toll-free not verified
    "30034": (State.REJECTED, FailureReason.CARRIER_FILTERED),  # unregistered 10DLC sender
    "21211": (State.FAILED, FailureReason.INVALID_NUMBER),  # invalid 'To' number
    "21408": (State.FAILED, FailureReason.PROVIDER_ERROR),  # region not enabled
    "21610": (State.REJECTED, FailureReason.OPTED_OUT),  # recipient replied STOP
    "21612": (State.FAILED, FailureReason.UNREACHABLE),  # 'To' not reachable via SMS
    "21614": (State.FAILED, FailureReason.INVALID_NUMBER),  # 'To' is not a mobile number
}

#: Twilio's short description of each code (the callback carries only the number).
CODE_TEXT: Mapping[str, str] = {
    "30001": "Queue overflow",
    "30002": "Account suspended",
    "30003": "Unreachable destination handset",
    "30004": "Message blocked",
    "30005": "Unknown destination handset",
    "30006": "Landline or unreachable carrier",
    "30007": "Message filtered",
    "30008": "Unknown error",
    "30009": "Missing segment",
    "30010": "Message price exceeds max price",
    "30011": "MMS not supported",
    "30012": "TTL too small",
    "30032": "Toll-free number has not been verified",
    "30034": "Message from an unregistered number",
    "21211": "Invalid 'To' phone number",
    "21408": "Permission to send to this region is not enabled",
    "21610": "Recipient unsubscribed",
    "21612": "'To' phone number is not reachable via SMS",
    "21614": "'To' number is not a valid mobile number",
}

#: `ErrorCode=0` would mean "no error" if Twilio ever sent it.
OK_CODES = frozenset({"0"})


def _first(payload: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        value = payload.get(name)
        if value is not None and value != "":
            return value
    return None


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def to_canonical(payload: Mapping[str, Any]) -> Normalized:
    """Map one Twilio status report (form callback or Event Streams data)."""
    raw_status = _first(payload, "MessageStatus", "SmsStatus", "messageStatus")
    raw = text(raw_status) or ""
    code = text(_first(payload, "ErrorCode", "errorCode"))
    state, reason, mapped = resolve(raw.lower(), code, STATUSES, ERRORS, ok_codes=OK_CODES)
    return Normalized(
        state=state,
        failure_reason=reason,
        provider_status=raw,
        provider_error_code=code,
        provider_error_text=text(_first(payload, "ErrorMessage"))
        or (CODE_TEXT.get(code) if code else None),
        mapped=mapped,
        recipient=text(_first(payload, "To", "to")),
        sender=text(_first(payload, "From", "from")),
        segments=_int(_first(payload, "NumSegments", "numberOfSegments")),
        provider_timestamp=parse_time(_first(payload, "timestamp")),
    )
