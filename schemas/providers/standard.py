"""Standard Webhooks senders: the generic status vocabulary inside `data` (see the ingress
module for the body contract), so the tables are the generic ones."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.lifecycle import State
from schemas.normalized import Normalized
from schemas.providers import generic
from schemas.providers._common import ErrorRow, parse_time, resolve, text

#: `data.status` values: exactly the generic contract's.
STATUSES: Mapping[str, State] = generic.STATUSES
#: `data.error_code` values: exactly the generic contract's.
ERRORS: Mapping[str, ErrorRow] = generic.ERRORS
OK_CODES = generic.OK_CODES


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def to_canonical(payload: Mapping[str, Any]) -> Normalized:
    """Map one `message.status` event's data; unknown statuses become `unknown`."""
    raw_status = str(payload.get("status", ""))
    code = text(payload.get("error_code"))
    state, reason, mapped = resolve(
        raw_status.strip().lower(), code, STATUSES, ERRORS, ok_codes=OK_CODES
    )
    price = payload.get("price")
    return Normalized(
        state=state,
        failure_reason=reason,
        provider_status=raw_status,
        provider_error_code=code,
        provider_error_text=text(payload.get("error")),
        mapped=mapped,
        recipient=text(payload.get("to")),
        sender=text(payload.get("from")),
        carrier=text(payload.get("carrier")),
        mcc=text(payload.get("mcc")),
        mnc=text(payload.get("mnc")),
        country=text(payload.get("country")),
        segments=_int(payload.get("segments")),
        price=float(price)
        if isinstance(price, int | float) and not isinstance(price, bool)
        else None,
        currency=text(payload.get("currency")),
        provider_timestamp=parse_time(payload.get("timestamp"))
        or parse_time(payload.get("event_timestamp")),
        sequence=_int(payload.get("sequence")),
        campaign=text(payload.get("campaign")),
        tenant=text(payload.get("tenant")),
        client_ref=text(payload.get("client_ref")),
    )
