"""Sinch mapping tables and fixtures: extract -> to_canonical gives what each fixture expects."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from deploy.tools.samples import Fixture, load
from ingress.providers import sinch as ingress
from schemas.lifecycle import FailureReason, State
from schemas.providers import sinch

#: Sinch SMS REST API delivery-report statuses (docs, "Delivery reports").
DOCUMENTED_STATUSES = {
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

#: Sinch delivery-report `code` values (0, 400 and 401 are not errors).
DOCUMENTED_CODES = ["0", "400", "401", *[str(c) for c in range(402, 419) if c != 409]]


def test_every_documented_status_maps_as_documented() -> None:
    assert dict(sinch.STATUSES) == DOCUMENTED_STATUSES


@pytest.mark.parametrize("code", DOCUMENTED_CODES)
def test_every_documented_code_is_in_a_table(code: str) -> None:
    assert (code in sinch.ERRORS) != (code in sinch.OK_CODES)
    assert code in sinch.CODE_TEXT or code == "0"


def _cases() -> list[tuple[Fixture, int, dict[str, object]]]:
    return [(f, i, e) for f in load("sinch") for i, e in enumerate(f.expect)]


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
    normalized = sinch.to_canonical(record.payload)
    assert f"sinch:{record.message_key}" == expect["message_id"]
    for name, value in expect.items():
        if name != "message_id":
            assert str(getattr(normalized, name) or "") == str(value or ""), name
    assert normalized.mapped


def test_delivered_fills_every_field_sinch_gives() -> None:
    n = sinch.to_canonical(
        {
            "type": "recipient_delivery_report_sms",
            "batch_id": "B",
            "recipient": "12017777777",
            "code": 0,
            "status": "Delivered",
            "at": "2024-06-06T08:17:19.210Z",
            "operator_status_at": "2024-06-06T08:17:00Z",
            "client_reference": "client-ref",
            "applied_originator": "ACME",
            "number_of_message_parts": 2,
            "operator": "Telia",
        }
    )
    assert (n.state, n.failure_reason, n.mapped) == (State.DELIVERED, None, True)
    assert n.recipient == "12017777777"
    assert n.sender == "ACME"
    assert n.carrier == "Telia"
    assert n.segments == 2
    assert n.client_ref == "client-ref"
    assert n.provider_timestamp == datetime(2024, 6, 6, 8, 17, 19, 210000, tzinfo=UTC)
    assert n.provider_error_code == "0"
    assert n.provider_error_text is None


def test_aborted_keeps_code_and_documented_meaning() -> None:
    n = sinch.to_canonical({"status": "Aborted", "code": 412})
    assert (n.state, n.failure_reason) == (State.FAILED, FailureReason.PROVIDER_ERROR)
    assert (n.provider_error_code, n.provider_error_text) == ("412", "Unprovisioned region")


def test_internal_expiry_forces_expired() -> None:
    n = sinch.to_canonical({"status": "Failed", "code": 406})
    assert (n.state, n.failure_reason) == (State.EXPIRED, FailureReason.EXPIRED)


def test_status_case_is_normalised_but_raw_value_kept() -> None:
    n = sinch.to_canonical({"status": "DELIVERED", "code": 0})
    assert n.state is State.DELIVERED
    assert n.provider_status == "DELIVERED"


def test_unknown_is_a_mapped_final_answer() -> None:
    n = sinch.to_canonical({"status": "Unknown", "code": 0})
    assert (n.state, n.mapped) == (State.UNKNOWN, True)


def test_unknown_status_is_unknown_and_unmapped() -> None:
    n = sinch.to_canonical({"status": "Teleported", "code": 0})
    assert n.state is State.UNKNOWN
    assert n.mapped is False
    assert n.provider_status == "Teleported"


def test_smpp_passthrough_code_keeps_status_mapping_but_is_unmapped() -> None:
    n = sinch.to_canonical({"status": "Failed", "code": 34})
    assert (n.state, n.failure_reason, n.mapped) == (
        State.UNDELIVERED,
        FailureReason.UNREACHABLE,
        False,
    )


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({}, id="empty"),
        pytest.param({"status": 1, "code": {"x": 1}, "number_of_message_parts": "2"}, id="junk"),
        pytest.param({"status": None, "code": None, "at": "yesterday"}, id="nulls"),
    ],
)
def test_odd_payloads_never_raise(payload: dict[str, object]) -> None:
    n = sinch.to_canonical(payload)
    assert n.state is State.UNKNOWN
    assert n.segments is None and n.provider_timestamp is None
