"""Infobip SMS report statuses and error codes, as data.

The status `name` decides the state (`id` is used when a report carries no name). Many
REJECTED_* statuses already say why, so `STATUS_REASONS` gives their reason whenever the
error code does not refine it. Error ids are keyed as strings; 0 (NO_ERROR) is not an
error. Ids 1 and 2 are confirmed in Infobip's error-code reference; the other handset
ids are the standard GSM MAP error values (3GPP TS 29.002) that Infobip's EC_* handset
errors carry (verify against the live reference before trusting their reasons).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from schemas.lifecycle import FailureReason, State
from schemas.normalized import Normalized
from schemas.providers._common import ErrorRow, parse_time, resolve, text

STATUSES: Mapping[str, State] = {
    "PENDING_ACCEPTED": State.ACCEPTED,
    "PENDING_ENROUTE": State.SENT,
    "PENDING_WAITING_DELIVERY": State.SENT,
    "DELIVERED_TO_OPERATOR": State.SENT,  # intermediate: a handset DLR may follow
    "DELIVERED_TO_HANDSET": State.DELIVERED,
    "UNDELIVERABLE_REJECTED_OPERATOR": State.REJECTED,
    "UNDELIVERABLE_NOT_DELIVERED": State.UNDELIVERED,
    "EXPIRED_EXPIRED": State.EXPIRED,
    "EXPIRED_DLR_UNKNOWN": State.EXPIRED,
    "REJECTED_NETWORK": State.REJECTED,
    "REJECTED_PREFIX_MISSING": State.REJECTED,
    "REJECTED_DND": State.REJECTED,
    "REJECTED_SOURCE": State.REJECTED,
    "REJECTED_NOT_ENOUGH_CREDITS": State.FAILED,
    "REJECTED_SENDER": State.REJECTED,
    "REJECTED_DESTINATION": State.REJECTED,
    "REJECTED_PREPAID_PACKAGE_EXPIRED": State.FAILED,
    "REJECTED_DESTINATION_NOT_REGISTERED": State.REJECTED,
    "REJECTED_ROUTE_NOT_AVAILABLE": State.REJECTED,
    "REJECTED_FLOODING_FILTER": State.REJECTED,
    "REJECTED_SYSTEM_ERROR": State.FAILED,
    "REJECTED_DUPLICATE_MESSAGE_ID": State.REJECTED,
    "REJECTED_INVALID_UDH": State.REJECTED,
    "REJECTED_MESSAGE_TOO_LONG": State.REJECTED,
    "MISSING_TO": State.REJECTED,
    "REJECTED_INVALID_DESTINATION": State.REJECTED,
}

#: Status ids of Infobip's table, for reports that carry only `status.id`.
STATUS_IDS: Mapping[int, str] = {
    26: "PENDING_ACCEPTED",
    7: "PENDING_ENROUTE",
    3: "PENDING_WAITING_DELIVERY",
    2: "DELIVERED_TO_OPERATOR",
    5: "DELIVERED_TO_HANDSET",
    4: "UNDELIVERABLE_REJECTED_OPERATOR",
    9: "UNDELIVERABLE_NOT_DELIVERED",
    15: "EXPIRED_EXPIRED",
    29: "EXPIRED_DLR_UNKNOWN",
    6: "REJECTED_NETWORK",
    8: "REJECTED_PREFIX_MISSING",
    10: "REJECTED_DND",
    11: "REJECTED_SOURCE",
    12: "REJECTED_NOT_ENOUGH_CREDITS",
    13: "REJECTED_SENDER",
    14: "REJECTED_DESTINATION",
    17: "REJECTED_PREPAID_PACKAGE_EXPIRED",
    18: "REJECTED_DESTINATION_NOT_REGISTERED",
    19: "REJECTED_ROUTE_NOT_AVAILABLE",
    20: "REJECTED_FLOODING_FILTER",
    21: "REJECTED_SYSTEM_ERROR",
    23: "REJECTED_DUPLICATE_MESSAGE_ID",
    24: "REJECTED_INVALID_UDH",
    25: "REJECTED_MESSAGE_TOO_LONG",
    51: "MISSING_TO",
    52: "REJECTED_INVALID_DESTINATION",
}

#: Reasons the status itself states (used unless the error code gives one).
STATUS_REASONS: Mapping[str, FailureReason] = {
    "UNDELIVERABLE_REJECTED_OPERATOR": FailureReason.CARRIER_FILTERED,
    "REJECTED_NETWORK": FailureReason.CARRIER_FILTERED,
    "REJECTED_PREFIX_MISSING": FailureReason.INVALID_NUMBER,
    "REJECTED_DND": FailureReason.OPTED_OUT,
    "REJECTED_SOURCE": FailureReason.CARRIER_FILTERED,
    "REJECTED_NOT_ENOUGH_CREDITS": FailureReason.INSUFFICIENT_FUNDS,
    "REJECTED_SENDER": FailureReason.CARRIER_FILTERED,
    "REJECTED_DESTINATION": FailureReason.CARRIER_FILTERED,
    "REJECTED_PREPAID_PACKAGE_EXPIRED": FailureReason.INSUFFICIENT_FUNDS,
    "REJECTED_DESTINATION_NOT_REGISTERED": FailureReason.PROVIDER_ERROR,
    "REJECTED_ROUTE_NOT_AVAILABLE": FailureReason.UNREACHABLE,
    "REJECTED_FLOODING_FILTER": FailureReason.CARRIER_FILTERED,
    "REJECTED_SYSTEM_ERROR": FailureReason.PROVIDER_ERROR,
    "REJECTED_DUPLICATE_MESSAGE_ID": FailureReason.PROVIDER_ERROR,
    "REJECTED_INVALID_UDH": FailureReason.PROVIDER_ERROR,
    "REJECTED_MESSAGE_TOO_LONG": FailureReason.BLOCKED_CONTENT,
    "MISSING_TO": FailureReason.INVALID_NUMBER,
    "REJECTED_INVALID_DESTINATION": FailureReason.INVALID_NUMBER,
    "EXPIRED_DLR_UNKNOWN": FailureReason.EXPIRED,
}

#: Error ids (group 1 = handset errors). None keeps the status's state.
ERRORS: Mapping[str, ErrorRow] = {
    "1": (None, FailureReason.INVALID_NUMBER),  # EC_UNKNOWN_SUBSCRIBER (permanent)
    "2": (None, FailureReason.UNREACHABLE),  # EC_UNKNOWN_BASE_STATION (temporary)
    "3": (None, FailureReason.UNREACHABLE),  # EC_UNKNOWN_MSC
    "5": (None, FailureReason.INVALID_NUMBER),  # EC_UNIDENTIFIED_SUBSCRIBER
    "6": (None, FailureReason.UNREACHABLE),  # EC_ABSENT_SUBSCRIBER_SM
    "7": (None, FailureReason.UNREACHABLE),  # EC_UNKNOWN_EQUIPMENT
    "8": (None, FailureReason.UNREACHABLE),  # EC_ROAMING_NOT_ALLOWED
    "9": (None, FailureReason.INVALID_NUMBER),  # EC_ILLEGAL_SUBSCRIBER
    "11": (None, FailureReason.UNREACHABLE),  # EC_TELESERVICE_NOT_PROVISIONED
    "12": (None, FailureReason.UNREACHABLE),  # EC_ILLEGAL_EQUIPMENT
    "13": (None, FailureReason.CARRIER_FILTERED),  # EC_CALL_BARRED
    "21": (None, FailureReason.UNREACHABLE),  # EC_FACILITY_NOT_SUPPORTED
    "27": (None, FailureReason.UNREACHABLE),  # EC_ABSENT_SUBSCRIBER
    "31": (None, FailureReason.UNREACHABLE),  # EC_SUBSCRIBER_BUSY_FOR_MT_SMS
    "32": (None, FailureReason.UNREACHABLE),  # EC_SM_DELIVERY_FAILURE
    "33": (None, FailureReason.UNREACHABLE),  # EC_MESSAGE_WAITING_LIST_FULL
    "34": (None, FailureReason.PROVIDER_ERROR),  # EC_SYSTEM_FAILURE
    "35": (None, FailureReason.PROVIDER_ERROR),  # EC_DATA_MISSING
    "36": (None, FailureReason.PROVIDER_ERROR),  # EC_UNEXPECTED_DATA_VALUE
}

OK_CODES = frozenset({"0"})


def _status_name(status: Mapping[str, Any]) -> str:
    name = status.get("name")
    if isinstance(name, str) and name.strip():
        return name.strip().upper()
    status_id = status.get("id")
    if isinstance(status_id, int) and not isinstance(status_id, bool):
        return STATUS_IDS.get(status_id, str(status_id))
    return ""


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _price(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _mcc_mnc(value: object) -> tuple[str | None, str | None]:
    raw = text(value)
    if raw is None or not raw.isdigit() or len(raw) not in (5, 6):
        return None, None
    return raw[:3], raw[3:]


def to_canonical(payload: Mapping[str, Any]) -> Normalized:
    """Map one Infobip result; unknown statuses become `unknown`, raw values kept."""
    status = _mapping(payload.get("status"))
    error = _mapping(payload.get("error"))
    name = _status_name(status)
    code = text(error.get("id"))
    state, reason, mapped = resolve(name, code, STATUSES, ERRORS, ok_codes=OK_CODES)
    if reason is not None and name in STATUS_REASONS and (code is None or code not in ERRORS):
        reason = STATUS_REASONS[name]
    price = _mapping(payload.get("price"))
    mcc, mnc = _mcc_mnc(payload.get("mccMnc"))
    segments = _int(payload.get("smsCount"))
    if segments is None:
        segments = _int(payload.get("messageCount"))
    raw_status = status.get("name")
    return Normalized(
        state=state,
        failure_reason=reason,
        provider_status=raw_status if isinstance(raw_status, str) else name,
        provider_error_code=code,
        provider_error_text=text(error.get("name")) or text(error.get("description")),
        mapped=mapped,
        recipient=text(payload.get("to")),
        sender=text(payload.get("from")) or text(payload.get("sender")),
        mcc=mcc,
        mnc=mnc,
        segments=segments,
        price=_price(price.get("pricePerMessage")),
        currency=text(price.get("currency")),
        provider_timestamp=parse_time(payload.get("doneAt")) or parse_time(payload.get("sentAt")),
        campaign=text(payload.get("campaignReferenceId")),
        client_ref=text(payload.get("callbackData")),
    )
