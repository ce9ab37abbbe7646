"""Twilio mapping tables and fixtures: extract -> to_canonical gives what each fixture expects."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from deploy.tools.samples import Fixture, load
from ingress.providers import twilio as ingress
from schemas.lifecycle import FailureReason, State
from schemas.providers import twilio

#: Twilio's Message status enum -> canonical state (receiving/received are inbound).
DOCUMENTED_STATUSES = {
    "accepted": State.ACCEPTED,
    "scheduled": State.ACCEPTED,
    "queued": State.QUEUED,
    "sending": State.QUEUED,
    "sent": State.SENT,
    "delivered": State.DELIVERED,
    "read": State.DELIVERED,
    "partially_delivered": State.DELIVERED,
    "undelivered": State.UNDELIVERED,
    "failed": State.FAILED,
    "canceled": State.FAILED,
}
DOCUMENTED_INBOUND = {"receiving", "received"}

#: Key codes of Twilio's error dictionary and their canonical reading.
DOCUMENTED_ERRORS = {
    "30001": FailureReason.PROVIDER_ERROR,
    "30002": FailureReason.PROVIDER_ERROR,
    "30003": FailureReason.UNREACHABLE,
    "30004": FailureReason.CARRIER_FILTERED,
    "30005": FailureReason.INVALID_NUMBER,
    "30006": FailureReason.INVALID_NUMBER,
    "30007": FailureReason.CARRIER_FILTERED,
    "30008": FailureReason.UNKNOWN,
    "30009": FailureReason.PROVIDER_ERROR,
    "30010": FailureReason.PROVIDER_ERROR,
    "30011": FailureReason.UNREACHABLE,
    "30012": FailureReason.EXPIRED,
    "21610": FailureReason.OPTED_OUT,
}


def test_every_documented_status_maps_as_documented() -> None:
    assert dict(twilio.STATUSES) == DOCUMENTED_STATUSES
    assert twilio.INBOUND == DOCUMENTED_INBOUND


@pytest.mark.parametrize(("code", "reason"), sorted(DOCUMENTED_ERRORS.items()))
def test_every_documented_error_is_in_the_table(code: str, reason: FailureReason) -> None:
    assert twilio.ERRORS[code][1] is reason
    assert code in twilio.CODE_TEXT


def test_every_error_has_a_text() -> None:
    assert set(twilio.ERRORS) == set(twilio.CODE_TEXT)


def _cases() -> list[tuple[Fixture, int, dict[str, object]]]:
    return [(f, i, e) for f in load("twilio") for i, e in enumerate(f.expect)]


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
    normalized = twilio.to_canonical(record.payload)
    assert f"twilio:{record.message_key}" == expect["message_id"]
    for name, value in expect.items():
        if name != "message_id":
            assert str(getattr(normalized, name) or "") == str(value or ""), name
    assert normalized.mapped


def test_form_callback_fills_what_twilio_gives() -> None:
    fixture = next(f for f in load("twilio") if f.name == "invalid_number")
    (record,) = ingress.extract(fixture.request())
    n = twilio.to_canonical(record.payload)
    assert (n.recipient, n.sender) == ("+15558675310", "+15017122661")
    assert n.provider_error_text == "Unknown destination handset"
    # No carrier, price or time in a status callback.
    assert (n.carrier, n.mcc, n.price, n.provider_timestamp, n.segments) == (None,) * 5


def test_raw_dlr_done_date_is_not_guessed_into_a_timestamp() -> None:
    fixture = next(f for f in load("twilio") if f.name == "delivered")
    (record,) = ingress.extract(fixture.request())
    assert record.payload["RawDlrDoneDate"] == "2301151230"
    assert twilio.to_canonical(record.payload).provider_timestamp is None


def test_event_streams_data_fills_time_and_segments_not_sender_mcc() -> None:
    fixture = next(f for f in load("twilio") if f.name == "batch")
    second = ingress.extract(fixture.request())[1]
    n = twilio.to_canonical(second.payload)
    assert n.provider_timestamp == datetime(2025, 1, 1, tzinfo=UTC)
    assert n.segments == 2
    assert (n.recipient, n.sender) == ("+12345678901", "+11234567890")
    assert n.mcc is None and n.mnc is None  # Event Streams mcc/mnc are the sender's
    assert n.provider_error_code == "30005"


def test_error_code_on_a_delivered_status_is_ignored() -> None:
    n = twilio.to_canonical({"MessageStatus": "delivered", "ErrorCode": "30003"})
    assert (n.state, n.failure_reason, n.mapped) == (State.DELIVERED, None, True)


def test_failure_without_code_gets_the_default_reason() -> None:
    n = twilio.to_canonical({"MessageStatus": "undelivered"})
    assert (n.state, n.failure_reason, n.mapped) == (
        State.UNDELIVERED,
        FailureReason.UNREACHABLE,
        True,
    )


def test_unknown_status_is_unknown_and_unmapped() -> None:
    n = twilio.to_canonical({"MessageStatus": "teleported", "MessageSid": "SM1"})
    assert (n.state, n.mapped, n.provider_status) == (State.UNKNOWN, False, "teleported")


def test_unknown_error_keeps_status_but_flags_unmapped() -> None:
    n = twilio.to_canonical({"MessageStatus": "undelivered", "ErrorCode": "39999"})
    assert (n.state, n.failure_reason, n.mapped) == (
        State.UNDELIVERED,
        FailureReason.UNREACHABLE,
        False,
    )
    assert n.provider_error_code == "39999"
    assert n.provider_error_text is None


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({}, id="empty"),
        pytest.param({"messageStatus": ["x"], "errorCode": {}, "numberOfSegments": "x"}, id="junk"),
        pytest.param(
            {"MessageStatus": True, "NumSegments": True, "timestamp": "yesterday"}, id="odd"
        ),
    ],
)
def test_odd_payloads_never_raise(payload: dict[str, object]) -> None:
    n = twilio.to_canonical(payload)
    assert n.state is State.UNKNOWN
    assert n.segments is None and n.provider_timestamp is None
