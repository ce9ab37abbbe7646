"""AWS SMS event (via SNS) mapping tables and fixtures: extract -> to_canonical gives what
each fixture expects."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from deploy.tools.samples import Fixture, load
from ingress.providers import sns as ingress
from schemas.lifecycle import FailureReason, State
from schemas.providers import sns

#: AWS End User Messaging SMS event types (TEXT_ALL is a subscription filter, not an event).
DOCUMENTED_STATUSES = {
    "TEXT_QUEUED": State.QUEUED,
    "TEXT_PENDING": State.QUEUED,
    "TEXT_SENT": State.SENT,
    "TEXT_SUCCESSFUL": State.SENT,
    "TEXT_DELIVERED": State.DELIVERED,
    "TEXT_INVALID": State.FAILED,
    "TEXT_INVALID_MESSAGE": State.FAILED,
    "TEXT_UNREACHABLE": State.UNDELIVERED,
    "TEXT_CARRIER_UNREACHABLE": State.UNDELIVERED,
    "TEXT_BLOCKED": State.REJECTED,
    "TEXT_CARRIER_BLOCKED": State.REJECTED,
    "TEXT_SPAM": State.REJECTED,
    "TEXT_PROTECT_BLOCKED": State.REJECTED,
    "TEXT_TTL_EXPIRED": State.EXPIRED,
    "TEXT_UNKNOWN": State.UNKNOWN,
}

#: Failure `messageStatus` values of AWS's SMS events (incl. the legacy record_status list).
DOCUMENTED_ERRORS = [
    "INVALID",
    "INVALID_MESSAGE",
    "UNREACHABLE",
    "CARRIER_UNREACHABLE",
    "BLOCKED",
    "CARRIER_BLOCKED",
    "SPAM",
    "PROTECT_BLOCKED",
    "TTL_EXPIRED",
    "UNKNOWN",
    "MAX_PRICE_EXCEEDED",
    "OPTED_OUT",
]
SUCCESS_STATUSES = ["DELIVERED", "SUCCESSFUL", "PENDING"]


def test_every_documented_event_type_maps_as_documented() -> None:
    assert dict(sns.STATUSES) == DOCUMENTED_STATUSES


@pytest.mark.parametrize("code", DOCUMENTED_ERRORS)
def test_every_documented_failure_status_is_in_the_table(code: str) -> None:
    assert code in sns.ERRORS


@pytest.mark.parametrize("code", SUCCESS_STATUSES)
def test_success_statuses_are_ok_codes(code: str) -> None:
    assert code in sns.OK_CODES


@pytest.mark.parametrize(
    ("event_type", "state", "reason"),
    [
        ("TEXT_INVALID", State.FAILED, FailureReason.INVALID_NUMBER),
        ("TEXT_BLOCKED", State.REJECTED, FailureReason.OPTED_OUT),
        ("TEXT_SPAM", State.REJECTED, FailureReason.CARRIER_FILTERED),
        ("TEXT_CARRIER_UNREACHABLE", State.UNDELIVERED, FailureReason.UNREACHABLE),
        ("TEXT_TTL_EXPIRED", State.EXPIRED, FailureReason.EXPIRED),
        ("TEXT_UNKNOWN", State.UNKNOWN, FailureReason.UNKNOWN),
    ],
)
def test_event_type_alone_gives_the_reason(
    event_type: str, state: State, reason: FailureReason
) -> None:
    normalized = sns.to_canonical({"eventType": event_type})
    assert (normalized.state, normalized.failure_reason, normalized.mapped) == (
        state,
        reason,
        True,
    )


def _cases() -> list[tuple[Fixture, int, dict[str, object]]]:
    return [(f, i, e) for f in load("sns") for i, e in enumerate(f.expect)]


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
    normalized = sns.to_canonical(record.payload)
    got = {
        "message_id": f"sns:{record.message_key}",
        "state": str(normalized.state),
        "failure_reason": normalized.failure_reason and str(normalized.failure_reason),
        "provider_status": normalized.provider_status,
        "provider_error_code": normalized.provider_error_code,
    }
    assert {k: got[k] for k in expect} == expect
    assert normalized.mapped


def test_subscription_confirmation_fixture_has_no_records() -> None:
    fixture = next(f for f in load("sns") if f.name == "subscription_confirmation")
    assert fixture.expect == [] and ingress.extract(fixture.request()) == []


def test_delivered_fields_are_filled() -> None:
    fixture = next(f for f in load("sns") if f.name == "delivered")
    (record,) = ingress.extract(fixture.request())
    normalized = sns.to_canonical(record.payload)
    assert normalized.sender == "+18445550123"
    assert normalized.carrier == "T-mobile USA Inc."
    assert (normalized.mcc, normalized.mnc, normalized.country) == ("310", "800", "US")
    assert normalized.segments == 1
    assert (normalized.price, normalized.currency) == (0.00581, "USD")
    assert normalized.provider_final is True
    assert normalized.provider_error_text == "Message has been accepted by phone"
    assert normalized.provider_timestamp == datetime.fromtimestamp(1729099299.998, UTC)


def test_successful_not_final_keeps_sent_and_reports_finality() -> None:
    fixture = next(f for f in load("sns") if f.name == "sent")
    (record,) = ingress.extract(fixture.request())
    normalized = sns.to_canonical(record.payload)
    assert normalized.state is State.SENT and normalized.provider_final is False
    assert normalized.recipient == "+12065550199"


def test_context_keys_become_campaign_tenant_and_client_ref() -> None:
    fixture = next(f for f in load("sns") if f.name == "delivered")
    event = orjson.loads(orjson.loads(fixture.body)["Message"])
    event["context"] = {"campaign": "spring", "tenant": "acme", "client_ref": "order-9"}
    normalized = sns.to_canonical(event)
    assert (normalized.campaign, normalized.tenant, normalized.client_ref) == (
        "spring",
        "acme",
        "order-9",
    )


def test_unknown_event_type_is_unknown_and_unmapped() -> None:
    normalized = sns.to_canonical({"eventType": "TEXT_TELEPORTED", "messageStatus": "X"})
    assert normalized.state is State.UNKNOWN
    assert normalized.mapped is False
    assert normalized.provider_status == "TEXT_TELEPORTED"


def test_empty_payload_does_not_raise() -> None:
    assert sns.to_canonical({}).state is State.UNKNOWN
