"""Bandwidth Messaging v2: callback types and `errorCode` values as data.

`message-failed` alone does not say why; the error code decides between undelivered,
rejected, expired and failed. 4xxx = Bandwidth or the carrier found a problem with the
message, 5xxx = system/carrier service errors (temporary), 9xxx = unknown. Codes of a
documented class that are not listed one by one (e.g. 5100-5231) fall back to the class
row (`5xxx`). For MMS and group messages `message-delivered` means "handed to the carrier"
unless Bandwidth's MMS/group DLRs are enabled: it is still mapped to delivered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.lifecycle import FailureReason, State
from schemas.normalized import Normalized
from schemas.providers._common import ErrorRow, parse_time, resolve, text

STATUSES: Mapping[str, State] = {
    "message-sending": State.SENT,
    "message-delivered": State.DELIVERED,
    "message-failed": State.UNDELIVERED,
}

_R, _U, _F, _E = State.REJECTED, State.UNDELIVERED, State.FAILED, State.EXPIRED
_CF, _INV, _UNR, _PE = (
    FailureReason.CARRIER_FILTERED,
    FailureReason.INVALID_NUMBER,
    FailureReason.UNREACHABLE,
    FailureReason.PROVIDER_ERROR,
)

ERRORS: Mapping[str, ErrorRow] = {
    "4001": (_F, _PE),  # service-not-allowed
    "4301": (_F, _PE),  # malformed-invalid-encoding
    "4302": (_F, _PE),  # malformed-invalid-from-number
    "4303": (_U, _INV),  # malformed-invalid-to-number
    "4360": (_E, FailureReason.EXPIRED),  # message-not-sent-expiration-date-passed
    "4404": (_R, _CF),  # rejected-forbidden-to-number
    "4406": (_U, _INV),  # rejected-unallocated-to-number
    "4432": (_R, _CF),  # rejected-forbidden-country
    "4470": (_R, _CF),  # rejected-spam-detected (by Bandwidth)
    "4481": (_R, _CF),  # rejected-from-number-in-blacklist
    "4482": (_R, _CF),  # rejected-to-number-in-blacklist
    "4700": (_U, _INV),  # invalid-service-type
    "4701": (_U, _UNR),  # destination-service-unavailable
    "4702": (_U, _UNR),  # destination-subscriber-unavailable
    "4720": (_U, _INV),  # invalid-destination-address
    "4721": (_U, _INV),  # destination-tn-deactivated
    "4730": (_U, _UNR),  # no-route-to-destination-carrier
    "4750": (_R, _CF),  # destination-rejected-message
    "4770": (_R, _CF),  # destination-spam-detected (carrier SPAM)
    "4771": (_R, FailureReason.BLOCKED_CONTENT),  # rejected-shortened-url
    "4772": (_R, _CF),  # rejected-tn-blocked
    "4773": (_R, _CF),  # inactive-campaign
    "4775": (_R, FailureReason.OPTED_OUT),  # destination-rejected-due-to-user-opt-out
    "4780": (_R, _CF),  # volumetric violation (T-Mobile)
    "4781": (_R, _CF),  # volumetric violation (AT&T)
    "4785": (_R, _CF),  # volumetric violation
    "4795": (_R, _CF),  # tfn-not-verified
    "5500": (_F, _PE),  # message-send-failed
    "5501": (_F, _PE),  # message-send-failed
    "5600": (_F, _PE),  # destination-carrier-queue-full
    "5610": (_F, _PE),  # carrier service failure
    "5620": (_F, _PE),  # carrier service failure
    "5630": (_F, _PE),  # carrier service failure
    "5650": (_F, _PE),  # carrier service failure
    "9902": (State.UNKNOWN, FailureReason.UNKNOWN),  # delivery-receipt-expired: no DLR came
    "9999": (None, FailureReason.UNKNOWN),  # unknown-error
    # class row: 5xxx are documented as temporary failures (5100-5231 app errors ...)
    "5xxx": (_F, _PE),
}

OK_CODES = frozenset({"0"})


def lookup_key(code: str | None) -> str | None:
    """The code itself when listed, else its class row (`5xxx`) when it has one."""
    if code is None or code in ERRORS or code in OK_CODES:
        return code
    if len(code) == 4 and code.isdigit() and f"{code[0]}xxx" in ERRORS:
        return f"{code[0]}xxx"
    return code


def to_canonical(payload: Mapping[str, Any]) -> Normalized:
    """Map one Bandwidth callback element; unknown types become `unknown`."""
    raw_type = str(payload.get("type", ""))
    code = text(payload.get("error_code"))
    state, reason, mapped = resolve(
        raw_type.strip().lower(), lookup_key(code), STATUSES, ERRORS, ok_codes=OK_CODES
    )
    segments = payload.get("segment_count")
    return Normalized(
        state=state,
        failure_reason=reason,
        provider_status=raw_type,
        provider_error_code=code,
        provider_error_text=text(payload.get("description")),
        mapped=mapped,
        recipient=text(payload.get("to")),
        sender=text(payload.get("from")),
        segments=segments if isinstance(segments, int) and not isinstance(segments, bool) else None,
        provider_timestamp=parse_time(payload.get("time")),
        client_ref=text(payload.get("tag")),
    )
