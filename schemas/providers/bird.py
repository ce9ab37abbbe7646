"""Bird / legacy MessageBird: statuses and failure reasons as data.

`ingress/providers/bird.py` flattens both body shapes into one payload: `status`,
`reason_code` (the status reason as a slug: legacy `statusReason` "unknown subscriber" and
Bird's `reason: unknown_subscriber` are the same key), `error_code` (legacy
`statusErrorCode`, Bird `failure.code`), `source_code` (Bird `failure.source.code`, the
downstream GSM code) and the other fields. The reason slug is the most specific
explanation, so it is looked up first, then the downstream GSM code, then Bird's own code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.lifecycle import FailureReason, State
from schemas.normalized import Normalized
from schemas.providers._common import ErrorRow, parse_time, resolve, text

#: Legacy SMS API statuses and Bird Channels message statuses. Bird also names
#: `deleted`/`skipped` (unconfirmed): left out on purpose, so they surface as unmapped.
STATUSES: Mapping[str, State] = {
    # legacy MessageBird SMS API
    "scheduled": State.ACCEPTED,
    "sent": State.SENT,
    "buffered": State.SENT,
    "delivered": State.DELIVERED,
    "expired": State.EXPIRED,
    "delivery_failed": State.UNDELIVERED,
    # Bird Channels API (shares sent / delivered / delivery_failed / scheduled)
    "accepted": State.ACCEPTED,
    "processing": State.QUEUED,
    "sending_failed": State.FAILED,
}

_I, _U, _C, _O = (
    FailureReason.INVALID_NUMBER,
    FailureReason.UNREACHABLE,
    FailureReason.CARRIER_FILTERED,
    FailureReason.OPTED_OUT,
)

#: Status reasons (both platforms, as slugs), downstream GSM MAP error codes
#: (3GPP TS 29.002, as MessageBird reports them in `statusErrorCode`/`source.code`) and
#: Bird failure codes seen in its docs.
ERRORS: Mapping[str, ErrorRow] = {
    # status reasons
    "dlr_not_received": (None, FailureReason.EXPIRED),
    "unknown_subscriber": (State.UNDELIVERED, _I),
    "unavailable_subscriber": (State.UNDELIVERED, _U),
    "invalid_destination": (State.UNDELIVERED, _I),
    "expired": (State.EXPIRED, FailureReason.EXPIRED),
    "opted_out": (State.REJECTED, _O),
    "received_network_error": (None, _U),
    "generic_delivery_failure": (None, _U),
    "carrier_rejected": (State.REJECTED, _C),
    "insufficient_balance": (State.FAILED, FailureReason.INSUFFICIENT_FUNDS),
    "capacity_limit_reached": (State.FAILED, FailureReason.PROVIDER_ERROR),
    "unknown_error": (None, FailureReason.UNKNOWN),
    # GSM MAP error codes
    "1": (State.UNDELIVERED, _I),  # unknown subscriber
    "5": (State.UNDELIVERED, _I),  # unidentified subscriber
    "6": (State.UNDELIVERED, _U),  # absent subscriber (SM)
    "9": (State.UNDELIVERED, _I),  # illegal subscriber
    "11": (State.UNDELIVERED, _I),  # teleservice not provisioned
    "12": (State.UNDELIVERED, _U),  # illegal equipment
    "13": (State.REJECTED, _C),  # call barred
    "21": (State.UNDELIVERED, _U),  # facility not supported
    "27": (State.UNDELIVERED, _U),  # absent subscriber
    "31": (State.UNDELIVERED, _U),  # subscriber busy for MT SMS
    "32": (State.UNDELIVERED, _U),  # SM delivery failure
    "33": (State.UNDELIVERED, _U),  # message waiting list full
    "34": (None, _U),  # system failure
    "35": (None, FailureReason.PROVIDER_ERROR),  # data missing
    "36": (None, FailureReason.PROVIDER_ERROR),  # unexpected data value
    # Bird failure codes (15xxx = platform)
    "15001": (None, FailureReason.PROVIDER_ERROR),
}

#: Reasons that accompany a successful or pending report.
OK_CODES = frozenset({"successfully_delivered", "pending_dlr", "0"})


def _lookup_key(payload: Mapping[str, Any]) -> str | None:
    """The most specific code we know: reason slug, then GSM code, then Bird's code."""
    candidates = [
        text(payload.get("reason_code")),
        text(payload.get("source_code")),
        text(payload.get("error_code")),
    ]
    for candidate in candidates:
        if candidate is not None and (candidate in ERRORS or candidate in OK_CODES):
            return candidate
    return next((c for c in candidates if c is not None), None)


def _int(value: object) -> int | None:
    raw = text(value)
    return int(raw) if raw is not None and raw.isdigit() else None


def _price(value: object) -> float | None:
    raw = text(value)
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def to_canonical(payload: Mapping[str, Any]) -> Normalized:
    """Map one flattened Bird/MessageBird report; unknown statuses become `unknown`."""
    raw_status = str(payload.get("status", ""))
    state, reason, mapped = resolve(
        raw_status.strip().lower(), _lookup_key(payload), STATUSES, ERRORS, ok_codes=OK_CODES
    )
    mccmnc = text(payload.get("mccmnc"))
    mcc = mccmnc[:3] if mccmnc and mccmnc.isdigit() and len(mccmnc) >= 5 else None
    mnc = mccmnc[3:] if mcc and mccmnc else None
    error_code = (
        text(payload.get("error_code"))
        or text(payload.get("source_code"))
        or text(payload.get("reason_code"))
    )
    return Normalized(
        state=state,
        failure_reason=reason,
        provider_status=raw_status,
        provider_error_code=error_code,
        provider_error_text=text(payload.get("reason_text")),
        mapped=mapped,
        recipient=text(payload.get("to")),
        sender=text(payload.get("from")),
        mcc=mcc,
        mnc=mnc,
        segments=_int(payload.get("parts")),
        price=_price(payload.get("price_amount")),
        currency=text(payload.get("price_currency")),
        provider_timestamp=parse_time(payload.get("status_at")),
        client_ref=text(payload.get("reference")),
    )
