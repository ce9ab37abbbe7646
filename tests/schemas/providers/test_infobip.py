"""Infobip mapping tables and fixtures: extract -> to_canonical gives what each fixture expects."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from deploy.tools.samples import Fixture, load
from ingress.providers import infobip as ingress
from schemas.lifecycle import FailureReason, State
from schemas.providers import infobip

#: Infobip's status table (docs, "Response status and error codes"): (id, name) -> state.
DOCUMENTED_STATUSES = {
    (26, "PENDING_ACCEPTED"): State.ACCEPTED,
    (7, "PENDING_ENROUTE"): State.SENT,
    (3, "PENDING_WAITING_DELIVERY"): State.SENT,
    (2, "DELIVERED_TO_OPERATOR"): State.SENT,
    (5, "DELIVERED_TO_HANDSET"): State.DELIVERED,
    (4, "UNDELIVERABLE_REJECTED_OPERATOR"): State.REJECTED,
    (9, "UNDELIVERABLE_NOT_DELIVERED"): State.UNDELIVERED,
    (15, "EXPIRED_EXPIRED"): State.EXPIRED,
    (29, "EXPIRED_DLR_UNKNOWN"): State.EXPIRED,
    (6, "REJECTED_NETWORK"): State.REJECTED,
    (8, "REJECTED_PREFIX_MISSING"): State.REJECTED,
    (10, "REJECTED_DND"): State.REJECTED,
    (11, "REJECTED_SOURCE"): State.REJECTED,
    (12, "REJECTED_NOT_ENOUGH_CREDITS"): State.FAILED,
    (13, "REJECTED_SENDER"): State.REJECTED,
    (14, "REJECTED_DESTINATION"): State.REJECTED,
    (17, "REJECTED_PREPAID_PACKAGE_EXPIRED"): State.FAILED,
    (18, "REJECTED_DESTINATION_NOT_REGISTERED"): State.REJECTED,
    (19, "REJECTED_ROUTE_NOT_AVAILABLE"): State.REJECTED,
    (20, "REJECTED_FLOODING_FILTER"): State.REJECTED,
    (21, "REJECTED_SYSTEM_ERROR"): State.FAILED,
    (23, "REJECTED_DUPLICATE_MESSAGE_ID"): State.REJECTED,
    (24, "REJECTED_INVALID_UDH"): State.REJECTED,
    (25, "REJECTED_MESSAGE_TOO_LONG"): State.REJECTED,
    (51, "MISSING_TO"): State.REJECTED,
    (52, "REJECTED_INVALID_DESTINATION"): State.REJECTED,
}

#: Infobip error examples: 0 NO_ERROR, 1 EC_UNKNOWN_SUBSCRIBER, 2 EC_UNKNOWN_BASE_STATION.
DOCUMENTED_ERRORS = ["0", "1", "2"]


def test_every_documented_status_maps_as_documented() -> None:
    assert {name: state for (_, name), state in DOCUMENTED_STATUSES.items()} == dict(
        infobip.STATUSES
    )
    assert {i: name for (i, name) in DOCUMENTED_STATUSES} == dict(infobip.STATUS_IDS)


@pytest.mark.parametrize("code", DOCUMENTED_ERRORS)
def test_every_documented_error_is_in_a_table(code: str) -> None:
    assert (code in infobip.ERRORS) != (code in infobip.OK_CODES)


def test_status_reasons_only_for_failure_statuses() -> None:
    failures = {State.UNDELIVERED, State.FAILED, State.REJECTED, State.EXPIRED}
    assert all(infobip.STATUSES[name] in failures for name in infobip.STATUS_REASONS)


def _cases() -> list[tuple[Fixture, int, dict[str, object]]]:
    return [(f, i, e) for f in load("infobip") for i, e in enumerate(f.expect)]


@pytest.mark.parametrize(
    ("fixture", "index", "expect"),
    [pytest.param(f, i, e, id=f"{f.name}-{i}") for f, i, e in _cases()],
)
def test_fixture_maps_to_expectation(
    fixture: Fixture, index: int, expect: dict[str, object]
) -> None:
    records = ingress.extract(fixture.request())
    assert len(records) == len(fixture.expect)
    record = records[index]
    normalized = infobip.to_canonical(record.payload)
    assert f"infobip:{record.message_key}" == expect["message_id"]
    for name, value in expect.items():
        if name != "message_id":
            assert str(getattr(normalized, name) or "") == str(value or ""), name
    assert normalized.mapped


def test_delivered_fills_every_field_infobip_gives() -> None:
    fixture = next(f for f in load("infobip") if f.name == "delivered")
    (record,) = ingress.extract(fixture.request())
    n = infobip.to_canonical({**record.payload, "from": "InfoSMS", "mccMnc": "22801"})
    assert n.recipient == "41793026727"
    assert n.sender == "InfoSMS"
    assert (n.mcc, n.mnc) == ("228", "01")
    assert n.segments == 1
    assert n.price == pytest.approx(0.01)
    assert n.currency == "EUR"
    assert n.client_ref == "callbackData"
    assert n.provider_timestamp == datetime(2019, 11, 9, 16, 0, tzinfo=UTC)
    assert n.provider_error_text == "NO_ERROR"


def test_status_id_is_used_when_the_name_is_missing() -> None:
    n = infobip.to_canonical({"status": {"id": 10}, "error": {"id": 0}})
    assert (n.state, n.failure_reason) == (State.REJECTED, FailureReason.OPTED_OUT)
    assert n.provider_status == "REJECTED_DND"


def test_error_code_refines_before_the_status_reason() -> None:
    n = infobip.to_canonical(
        {"status": {"name": "REJECTED_ROUTE_NOT_AVAILABLE"}, "error": {"id": 1}}
    )
    assert n.failure_reason is FailureReason.INVALID_NUMBER
    n = infobip.to_canonical(
        {"status": {"name": "REJECTED_ROUTE_NOT_AVAILABLE"}, "error": {"id": 0}}
    )
    assert n.failure_reason is FailureReason.UNREACHABLE


def test_error_on_a_delivered_status_is_ignored() -> None:
    n = infobip.to_canonical({"status": {"name": "DELIVERED_TO_HANDSET"}, "error": {"id": 1}})
    assert (n.state, n.failure_reason, n.mapped) == (State.DELIVERED, None, True)


def test_unknown_status_is_unknown_and_unmapped() -> None:
    n = infobip.to_canonical({"status": {"name": "TELEPORTED", "id": 999}, "error": {"id": 0}})
    assert n.state is State.UNKNOWN
    assert n.mapped is False
    assert n.provider_status == "TELEPORTED"


def test_unknown_error_keeps_status_reason_but_flags_unmapped() -> None:
    n = infobip.to_canonical({"status": {"name": "REJECTED_DND"}, "error": {"id": 4242}})
    assert (n.state, n.failure_reason, n.mapped) == (
        State.REJECTED,
        FailureReason.OPTED_OUT,
        False,
    )


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({}, id="empty"),
        pytest.param({"status": "x", "error": [], "price": 3, "mccMnc": "abc"}, id="junk"),
        pytest.param(
            {"status": {"id": True}, "smsCount": True, "price": {"pricePerMessage": "inf"}},
            id="odd-types",
        ),
    ],
)
def test_odd_payloads_never_raise(payload: dict[str, object]) -> None:
    n = infobip.to_canonical(payload)
    assert n.state is State.UNKNOWN
    assert n.price is None and n.segments is None and n.mcc is None
