"""Sinch SMS delivery-report statuses and status codes, as data.

The status is authoritative; the numeric `code` only refines the reason (406 also forces
`expired`). Codes 0, 400 (Queued) and 401 (Dispatched) are not errors. Any other value
is an SMPP status-report error passed through from the operator: kept raw, mapped=False.
`Deleted` (removed at the remote SMSC: invalid MSISDN or opted-out subscriber) cannot be
told apart further from the report, so it is `undelivered` with the default reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.lifecycle import FailureReason, State
from schemas.normalized import Normalized
from schemas.providers._common import ErrorRow, parse_time, resolve, text

STATUSES: Mapping[str, State] = {
    "Queued": State.QUEUED,
    "Dispatched": State.SENT,
    "Aborted": State.FAILED,
    "Cancelled": State.FAILED,
    "Rejected": State.REJECTED,
    "Deleted": State.UNDELIVERED,
    "Delivered": State.DELIVERED,
    "Failed": State.UNDELIVERED,
    "Expired": State.EXPIRED,
    "Unknown": State.UNKNOWN,
}

#: Sinch's own delivery-receipt status codes (DeliveryReceiptStatusCode).
ERRORS: Mapping[str, ErrorRow] = {
    "402": (None, FailureReason.INVALID_NUMBER),  # message unroutable
    "403": (None, FailureReason.PROVIDER_ERROR),  # internal error
    "404": (None, FailureReason.UNREACHABLE),  # temporary delivery failure
    "405": (None, FailureReason.PROVIDER_ERROR),  # unmatched parameter
    "406": (State.EXPIRED, FailureReason.EXPIRED),  # internal expiry
    "407": (None, FailureReason.PROVIDER_ERROR),  # cancelled
    "408": (None, FailureReason.CARRIER_FILTERED),  # internal reject
    "410": (None, FailureReason.PROVIDER_ERROR),  # unmatched default originator
    "411": (None, FailureReason.PROVIDER_ERROR),  # exceeded parts limit
    "412": (None, FailureReason.PROVIDER_ERROR),  # unprovisioned region
    "413": (None, FailureReason.INSUFFICIENT_FUNDS),  # blocked account (e.g. no credit)
    "414": (None, FailureReason.PROVIDER_ERROR),  # bad media (MMS)
    "415": (None, FailureReason.CARRIER_FILTERED),  # MMS delivery report rejected
    "416": (None, FailureReason.PROVIDER_ERROR),  # MMS delivery report not supported
    "417": (None, FailureReason.UNREACHABLE),  # MMS delivery report unreachable
    "418": (None, FailureReason.PROVIDER_ERROR),  # MMS delivery report unrecognized
}

#: Codes that accompany success or progress, never a failure.
OK_CODES = frozenset({"0", "400", "401"})

#: Sinch's documented meaning of its own codes (the report carries only the number).
CODE_TEXT: Mapping[str, str] = {
    "400": "Queued",
    "401": "Dispatched",
    "402": "Message unroutable",
    "403": "Internal error",
    "404": "Temporary delivery failure",
    "405": "Unmatched parameter",
    "406": "Internal expiry",
    "407": "Cancelled",
    "408": "Internal reject",
    "410": "Unmatched default originator",
    "411": "Exceeded parts limit",
    "412": "Unprovisioned region",
    "413": "Blocked",
    "414": "Bad media",
    "415": "Delivery report rejected",
    "416": "Delivery report not supported",
    "417": "Delivery report unreachable",
    "418": "Delivery report unrecognized",
}


def to_canonical(payload: Mapping[str, Any]) -> Normalized:
    """Map one Sinch recipient status; unknown statuses become `unknown`, raw kept."""
    raw_status = payload.get("status")
    status = raw_status.strip().capitalize() if isinstance(raw_status, str) else ""
    code = text(payload.get("code"))
    state, reason, mapped = resolve(status, code, STATUSES, ERRORS, ok_codes=OK_CODES)
    parts = payload.get("number_of_message_parts")
    return Normalized(
        state=state,
        failure_reason=reason,
        provider_status=str(raw_status) if raw_status is not None else "",
        provider_error_code=code,
        provider_error_text=CODE_TEXT.get(code) if code is not None else None,
        mapped=mapped,
        recipient=text(payload.get("recipient")),
        sender=text(payload.get("applied_originator")),
        carrier=text(payload.get("operator")),
        segments=parts if isinstance(parts, int) and not isinstance(parts, bool) else None,
        provider_timestamp=parse_time(payload.get("at"))
        or parse_time(payload.get("operator_status_at")),
        client_ref=text(payload.get("client_reference")),
    )
