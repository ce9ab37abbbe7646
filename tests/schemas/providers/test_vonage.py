"""Vonage mapping tables and fixtures: extract -> to_canonical gives what each fixture expects."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from deploy.tools.samples import Fixture, load
from ingress.providers import vonage as ingress
from schemas.lifecycle import FailureReason, State
from schemas.providers import vonage

#: Vonage SMS API delivery-receipt statuses.
DOCUMENTED_STATUSES = {
    "accepted": State.SENT,
    "buffered": State.SENT,
    "delivered": State.DELIVERED,
    "expired": State.EXPIRED,
    "failed": State.UNDELIVERED,
    "rejected": State.REJECTED,
    "unknown": State.UNKNOWN,
}

#: Vonage SMS API delivery-receipt err-code list (0 = delivered).
DOCUMENTED_ERRORS = [str(c) for c in (*range(16), 99)]


def test_every_documented_status_maps_as_documented() -> None:
    assert dict(vonage.STATUSES) == DOCUMENTED_STATUSES


@pytest.mark.parametrize("code", DOCUMENTED_ERRORS)
def test_every_documented_error_is_in_exactly_one_table(code: str) -> None:
    assert (code in vonage.ERRORS) != (code in vonage.OK_CODES)
    assert code in vonage.CODE_TEXT


@pytest.mark.parametrize(
    ("code", "state", "reason"),
    [
        ("3", State.UNDELIVERED, FailureReason.INVALID_NUMBER),
        ("12", State.UNDELIVERED, FailureReason.INVALID_NUMBER),
        ("9", State.REJECTED, FailureReason.OPTED_OUT),
        ("6", State.REJECTED, FailureReason.CARRIER_FILTERED),
        ("14", State.REJECTED, FailureReason.CARRIER_FILTERED),
        ("2", State.UNDELIVERED, FailureReason.UNREACHABLE),
        ("7", State.UNDELIVERED, FailureReason.UNREACHABLE),
        ("8", State.UNDELIVERED, FailureReason.UNREACHABLE),
        ("1", State.UNDELIVERED, FailureReason.UNKNOWN),
        ("99", State.UNDELIVERED, FailureReason.PROVIDER_ERROR),
    ],
)
def test_mapping_suggestions_of_the_reference(
    code: str, state: State, reason: FailureReason
) -> None:
    n = vonage.to_canonical({"status": "failed", "err-code": code})
    assert (n.state, n.failure_reason, n.mapped) == (state, reason, True)


def _cases() -> list[tuple[Fixture, int, dict[str, object]]]:
    return [(f, i, e) for f in load("vonage") for i, e in enumerate(f.expect)]


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
    normalized = vonage.to_canonical(record.payload)
    assert f"vonage:{record.message_key}" == expect["message_id"]
    for name, value in expect.items():
        if name != "message_id":
            assert str(getattr(normalized, name) or "") == str(value or ""), name
    assert normalized.mapped


def test_doc_example_fills_every_field_vonage_gives() -> None:
    fixture = next(f for f in load("vonage") if f.name == "delivered")
    (record,) = ingress.extract(fixture.request())
    n = vonage.to_canonical(record.payload)
    assert (n.recipient, n.sender) == ("447547232824", "Nexmo CLI")
    assert (n.mcc, n.mnc) == ("234", "10")
    assert n.price == pytest.approx(0.0333)
    # message-timestamp is UTC; scts (1810251310) is the carrier's local clock.
    assert n.provider_timestamp == datetime(2018, 10, 25, 12, 10, 29, tzinfo=UTC)
    assert n.provider_error_text == "Delivered"
    assert n.failure_reason is None


def test_client_ref_is_kept() -> None:
    fixture = next(f for f in load("vonage") if f.name == "sent")
    (record,) = ingress.extract(fixture.request())
    assert vonage.to_canonical(record.payload).client_ref == "order-42"


def test_three_digit_mnc_is_split_after_the_mcc() -> None:
    n = vonage.to_canonical({"status": "delivered", "network-code": "310260"})
    assert (n.mcc, n.mnc) == ("310", "260")


def test_unknown_status_is_unknown_and_unmapped() -> None:
    n = vonage.to_canonical({"status": "teleported", "err-code": "0"})
    assert (n.state, n.mapped, n.provider_status) == (State.UNKNOWN, False, "teleported")


def test_unknown_error_keeps_status_but_flags_unmapped() -> None:
    n = vonage.to_canonical({"status": "failed", "err-code": "42"})
    assert (n.state, n.failure_reason, n.mapped) == (
        State.UNDELIVERED,
        FailureReason.UNREACHABLE,
        False,
    )


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({}, id="empty"),
        pytest.param({"status": 5, "price": "free", "network-code": "ab"}, id="junk"),
        pytest.param(
            {"status": [], "price": "nan", "network-code": 23410, "message-timestamp": "x"},
            id="odd-types",
        ),
        pytest.param({"price": True, "network-code": "1234567"}, id="bool-price"),
    ],
)
def test_odd_payloads_never_raise(payload: dict[str, object]) -> None:
    n = vonage.to_canonical(payload)
    assert n.state is State.UNKNOWN
    assert n.price is None and n.provider_timestamp is None
    assert n.mnc is None or n.mcc == "234"
