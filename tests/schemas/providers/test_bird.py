"""Bird / MessageBird mapping tables and fixtures: extract -> to_canonical gives what each
fixture expects."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from deploy.tools.samples import Fixture, load
from ingress.providers import bird as ingress
from schemas.lifecycle import FailureReason, State
from schemas.providers import bird

#: Legacy MessageBird SMS status reports and Bird Channels API statuses (the confirmed ones).
DOCUMENTED_STATUSES = {
    "scheduled": State.ACCEPTED,
    "sent": State.SENT,
    "buffered": State.SENT,
    "delivered": State.DELIVERED,
    "expired": State.EXPIRED,
    "delivery_failed": State.UNDELIVERED,
    "accepted": State.ACCEPTED,
    "processing": State.QUEUED,
    "sending_failed": State.FAILED,
}

#: Status reasons and codes named in MessageBird's and Bird's docs (example codes 1, 34, 15001).
DOCUMENTED_ERRORS = ["unknown_subscriber", "received_network_error", "1", "34", "15001"]


def test_every_documented_status_maps_as_documented() -> None:
    assert dict(bird.STATUSES) == DOCUMENTED_STATUSES


@pytest.mark.parametrize("code", DOCUMENTED_ERRORS)
def test_every_documented_error_code_is_in_the_table(code: str) -> None:
    assert code in bird.ERRORS


def _cases() -> list[tuple[Fixture, int, dict[str, object]]]:
    return [(f, i, e) for f in load("bird") for i, e in enumerate(f.expect)]


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
    normalized = bird.to_canonical(record.payload)
    assert f"bird:{record.message_key}" == expect["message_id"]
    got = {
        "state": str(normalized.state),
        "failure_reason": normalized.failure_reason and str(normalized.failure_reason),
        "provider_status": normalized.provider_status,
        "provider_error_code": normalized.provider_error_code,
    }
    assert {k: got[k] for k in expect if k != "message_id"} == {
        k: v for k, v in expect.items() if k != "message_id"
    }
    assert normalized.mapped


def _fixture(name: str) -> Fixture:
    return next(f for f in load("bird") if f.name == name)


def test_legacy_fields_are_filled() -> None:
    (record,) = ingress.extract(_fixture("invalid_number").request())
    normalized = bird.to_canonical(record.payload)
    assert normalized.recipient == "31612345679"
    assert (normalized.mcc, normalized.mnc) == ("204", "08")
    assert normalized.segments == 1
    assert (normalized.price, normalized.currency) == (0.07, "EUR")
    assert normalized.client_ref == "YouReference124"
    assert normalized.provider_error_text == "unknown subscriber"
    assert normalized.provider_timestamp == datetime(2016, 5, 3, 8, 58, 12, tzinfo=UTC)


def test_platform_fields_are_filled() -> None:
    (record,) = ingress.extract(_fixture("undelivered").request())
    normalized = bird.to_canonical(record.payload)
    assert normalized.recipient == "+31612345678"
    assert normalized.sender == "+31970102030"
    assert normalized.client_ref == "order-42"
    assert normalized.segments == 1
    assert normalized.provider_error_text is not None
    assert "received_network_error" in normalized.provider_error_text


@pytest.mark.parametrize(
    ("payload", "state", "reason"),
    [
        pytest.param(
            {"status": "delivery_failed", "error_code": "13"},
            State.REJECTED,
            FailureReason.CARRIER_FILTERED,
            id="gsm-call-barred",
        ),
        pytest.param(
            {"status": "delivery_failed", "reason_code": "nonsense", "source_code": "1"},
            State.UNDELIVERED,
            FailureReason.INVALID_NUMBER,
            id="unknown-reason-falls-back-to-gsm-code",
        ),
        pytest.param(
            {"status": "delivered", "reason_code": "successfully_delivered"},
            State.DELIVERED,
            None,
            id="success-reason",
        ),
        pytest.param(
            {"status": "sent", "reason_code": "pending_dlr"}, State.SENT, None, id="pending-dlr"
        ),
    ],
)
def test_lookup_order(payload: dict[str, str], state: State, reason: FailureReason | None) -> None:
    normalized = bird.to_canonical(payload)
    assert (normalized.state, normalized.failure_reason, normalized.mapped) == (state, reason, True)


def test_unknown_status_is_unknown_and_unmapped() -> None:
    normalized = bird.to_canonical({"status": "skipped", "to": "+31600000000"})
    assert normalized.state is State.UNKNOWN
    assert normalized.mapped is False
    assert normalized.provider_status == "skipped"


def test_unknown_reason_on_a_failure_keeps_the_status_but_is_unmapped() -> None:
    normalized = bird.to_canonical({"status": "delivery_failed", "reason_code": "martian"})
    assert normalized.state is State.UNDELIVERED
    assert normalized.failure_reason is FailureReason.UNREACHABLE
    assert normalized.mapped is False


def test_empty_payload_does_not_raise() -> None:
    assert bird.to_canonical({}).state is State.UNKNOWN
