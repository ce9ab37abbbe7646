"""Bandwidth mapping tables and fixtures: extract -> to_canonical gives what each fixture
expects."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from deploy.tools.samples import Fixture, load
from ingress.providers import bandwidth as ingress
from schemas.lifecycle import FailureReason, State
from schemas.providers import bandwidth

#: Bandwidth messaging webhook types (Bandwidth docs, "Messaging webhooks"); message-received
#: is inbound, not a receipt.
DOCUMENTED_STATUSES = {
    "message-sending": State.SENT,
    "message-delivered": State.DELIVERED,
    "message-failed": State.UNDELIVERED,
}

#: Every error code Bandwidth's messaging error-code table lists one by one.
DOCUMENTED_ERRORS = [
    "4001", "4301", "4302", "4303", "4360", "4404", "4406", "4432", "4470", "4481", "4482",
    "4700", "4701", "4702", "4720", "4721", "4730", "4750", "4770", "4771", "4772", "4773",
    "4775", "4780", "4781", "4785", "4795", "5500", "5501", "5600", "5610", "5620", "5630",
    "5650", "9902", "9999",
]  # fmt: skip


def test_every_documented_status_maps_as_documented() -> None:
    assert dict(bandwidth.STATUSES) == DOCUMENTED_STATUSES


@pytest.mark.parametrize("code", DOCUMENTED_ERRORS)
def test_every_documented_error_code_is_in_the_table(code: str) -> None:
    assert code in bandwidth.ERRORS


@pytest.mark.parametrize("code", ["5100", "5150", "5231"])
def test_documented_5100_5231_range_maps_through_its_class(code: str) -> None:
    normalized = bandwidth.to_canonical({"type": "message-failed", "error_code": code})
    assert (normalized.state, normalized.failure_reason) == (
        State.FAILED,
        FailureReason.PROVIDER_ERROR,
    )
    assert normalized.mapped and normalized.provider_error_code == code


@pytest.mark.parametrize(
    ("code", "state", "reason"),
    [
        pytest.param("4470", State.REJECTED, FailureReason.CARRIER_FILTERED, id="spam-bandwidth"),
        pytest.param("4770", State.REJECTED, FailureReason.CARRIER_FILTERED, id="spam-carrier"),
        pytest.param("4775", State.REJECTED, FailureReason.OPTED_OUT, id="opt-out"),
        pytest.param("4720", State.UNDELIVERED, FailureReason.INVALID_NUMBER, id="invalid"),
        pytest.param("4721", State.UNDELIVERED, FailureReason.INVALID_NUMBER, id="deactivated"),
        pytest.param("4406", State.UNDELIVERED, FailureReason.INVALID_NUMBER, id="unallocated"),
        pytest.param("4303", State.UNDELIVERED, FailureReason.INVALID_NUMBER, id="malformed-to"),
        pytest.param("4360", State.EXPIRED, FailureReason.EXPIRED, id="expired"),
        pytest.param("9902", State.UNKNOWN, FailureReason.UNKNOWN, id="dlr-expired"),
        pytest.param("5600", State.FAILED, FailureReason.PROVIDER_ERROR, id="temporary"),
    ],
)
def test_documented_mapping(code: str, state: State, reason: FailureReason) -> None:
    normalized = bandwidth.to_canonical({"type": "message-failed", "error_code": code})
    assert (normalized.state, normalized.failure_reason) == (state, reason)


def _cases() -> list[tuple[Fixture, int, dict[str, object]]]:
    return [(f, i, e) for f in load("bandwidth") for i, e in enumerate(f.expect)]


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
    normalized = bandwidth.to_canonical(record.payload)
    got = {
        "message_id": f"bandwidth:{record.message_key}",
        "state": str(normalized.state),
        "failure_reason": normalized.failure_reason and str(normalized.failure_reason),
        "provider_status": normalized.provider_status,
        "provider_error_code": normalized.provider_error_code,
    }
    assert {k: got[k] for k in expect} == expect
    assert normalized.mapped


def test_fields_are_filled() -> None:
    fixture = next(f for f in load("bandwidth") if f.name == "rejected")
    (record,) = ingress.extract(fixture.request())
    normalized = bandwidth.to_canonical(record.payload)
    assert normalized.recipient == "+52345678903"
    assert normalized.sender == "+12345678901"
    assert normalized.segments == 1
    assert normalized.provider_error_text == "forbidden to country"
    assert normalized.provider_timestamp == datetime(2016, 9, 14, 18, 20, 16, tzinfo=UTC)
    sent = next(f for f in load("bandwidth") if f.name == "sent")
    (record,) = ingress.extract(sent.request())
    assert bandwidth.to_canonical(record.payload).client_ref == "order-1"


def test_unknown_type_is_unknown_and_unmapped() -> None:
    normalized = bandwidth.to_canonical({"type": "message-teleported"})
    assert normalized.state is State.UNKNOWN
    assert normalized.mapped is False


def test_unlisted_4xxx_code_keeps_the_failure_but_is_unmapped() -> None:
    normalized = bandwidth.to_canonical({"type": "message-failed", "error_code": "4999"})
    assert normalized.state is State.UNDELIVERED
    assert normalized.mapped is False


def test_empty_payload_does_not_raise() -> None:
    assert bandwidth.to_canonical({}).state is State.UNKNOWN
