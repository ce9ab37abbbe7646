"""Telnyx `to[].status` and 40xxx delivery errors, as data.

`delivery_unconfirmed` is terminal at Telnyx (no DLR will come) but says nothing about
the handset, so it stays `sent`. The error code is the first entry of the message's
`errors[]`; Telnyx reports errors per message, not per recipient.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from schemas.lifecycle import FailureReason, State
from schemas.normalized import Normalized
from schemas.providers._common import ErrorRow, parse_time, resolve, text

STATUSES: Mapping[str, State] = {
    "queued": State.QUEUED,
    "sending": State.QUEUED,
    "sent": State.SENT,
    "delivered": State.DELIVERED,
    "delivery_unconfirmed": State.SENT,
    "delivery_failed": State.UNDELIVERED,
    "sending_failed": State.FAILED,
    "expired": State.EXPIRED,
}

#: Delivery errors (developers.telnyx.com messaging error codes; 40300 from the
#: advanced opt-in/out guide).
ERRORS: Mapping[str, ErrorRow] = {
    "40001": (State.UNDELIVERED, FailureReason.INVALID_NUMBER),  # not routable / landline
    "40002": (State.REJECTED, FailureReason.CARRIER_FILTERED),  # blocked as spam (temporary)
    "40003": (State.REJECTED, FailureReason.CARRIER_FILTERED),  # blocked as spam (permanent)
    "40004": (State.REJECTED, FailureReason.CARRIER_FILTERED),  # rejected by destination
    "40005": (State.EXPIRED, FailureReason.EXPIRED),  # message expired (TTL)
    "40006": (State.UNDELIVERED, FailureReason.UNREACHABLE),  # recipient carrier down
    "40008": (State.UNDELIVERED, FailureReason.UNREACHABLE),  # undeliverable
    "40009": (State.REJECTED, FailureReason.BLOCKED_CONTENT),  # invalid message body
    "40011": (State.FAILED, FailureReason.PROVIDER_ERROR),  # rate limit
    "40300": (State.REJECTED, FailureReason.OPTED_OUT),  # blocked due to STOP message
}

FINAL_EVENT = "message.finalized"


def _first_error(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    errors = payload.get("errors")
    if isinstance(errors, list):
        for error in errors:
            if isinstance(error, Mapping):
                return error
    return {}


def _price(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value) if isinstance(value, int | float | str) else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


def to_canonical(payload: Mapping[str, Any]) -> Normalized:
    """Map one Telnyx recipient status; unknown statuses become `unknown`, raw kept."""
    raw_status = payload.get("status")
    status = raw_status.strip().lower() if isinstance(raw_status, str) else ""
    error = _first_error(payload)
    code = text(error.get("code"))
    state, reason, mapped = resolve(status, code, STATUSES, ERRORS)
    parts = payload.get("parts")
    event_type = payload.get("event_type")
    timestamp = (
        parse_time(payload.get("occurred_at"))
        or parse_time(payload.get("completed_at"))
        or parse_time(payload.get("sent_at"))
    )
    return Normalized(
        state=state,
        failure_reason=reason,
        provider_status=str(raw_status) if raw_status is not None else "",
        provider_error_code=code,
        provider_error_text=text(error.get("title")) or text(error.get("detail")),
        mapped=mapped,
        recipient=text(payload.get("to")),
        sender=text(payload.get("from")),
        carrier=text(payload.get("carrier")),
        segments=parts if isinstance(parts, int) and not isinstance(parts, bool) else None,
        price=_price(payload.get("cost_amount")),
        currency=text(payload.get("cost_currency")),
        provider_timestamp=timestamp,
        provider_final=(event_type == FINAL_EVENT) if isinstance(event_type, str) else None,
        campaign=text(payload.get("tcr_campaign_id")),
    )
