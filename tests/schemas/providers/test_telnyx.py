"""Telnyx mapping tables and fixtures: extract -> to_canonical gives what each fixture expects."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from deploy.tools.samples import Fixture, load
from ingress.providers import telnyx as ingress
from schemas.lifecycle import FailureReason, State
from schemas.providers import telnyx

#: Every `to[].status` value (the telnyx-python SDK's Literal type).
DOCUMENTED_STATUSES = {
    "queued": State.QUEUED,
    "sending": State.QUEUED,
    "sent": State.SENT,
    "delivered": State.DELIVERED,
    "delivery_unconfirmed": State.SENT,
    "delivery_failed": State.UNDELIVERED,
    "sending_failed": State.FAILED,
    "expired": State.EXPIRED,
}

#: Telnyx messaging delivery error codes (and 40300, confirmed in Telnyx's opt-out guide).
DOCUMENTED_ERRORS = [
    "40001",
    "40002",
    "40003",
    "40004",
    "40005",
    "40006",
    "40008",
    "40009",
    "40011",
    "40300",
]


def test_every_documented_status_maps_as_documented() -> None:
    assert dict(telnyx.STATUSES) == DOCUMENTED_STATUSES


@pytest.mark.parametrize("code", DOCUMENTED_ERRORS)
def test_every_documented_error_code_is_in_the_table(code: str) -> None:
    assert code in telnyx.ERRORS


@pytest.mark.parametrize(
    ("code", "state", "reason"),
    [
        pytest.param("40001", State.UNDELIVERED, FailureReason.INVALID_NUMBER, id="not-routable"),
        pytest.param("40002", State.REJECTED, FailureReason.CARRIER_FILTERED, id="spam-temp"),
        pytest.param("40003", State.REJECTED, FailureReason.CARRIER_FILTERED, id="spam-perm"),
        pytest.param("40005", State.EXPIRED, FailureReason.EXPIRED, id="ttl"),
        pytest.param("40300", State.REJECTED, FailureReason.OPTED_OUT, id="stop"),
    ],
)
def test_documented_mapping(code: str, state: State, reason: FailureReason) -> None:
    assert telnyx.ERRORS[code] == (state, reason)


def _cases() -> list[tuple[Fixture, int, dict[str, object]]]:
    return [(f, i, e) for f in load("telnyx") for i, e in enumerate(f.expect)]


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
    normalized = telnyx.to_canonical(record.payload)
    assert f"telnyx:{record.message_key}" == expect["message_id"]
    for name, value in expect.items():
        if name != "message_id":
            assert str(getattr(normalized, name) or "") == str(value or ""), name
    assert normalized.mapped


def test_delivered_fills_every_field_telnyx_gives() -> None:
    fixture = next(f for f in load("telnyx") if f.name == "delivered")
    (record,) = ingress.extract(fixture.request())
    n = telnyx.to_canonical(record.payload)
    assert n.recipient == "+18665550001"
    assert n.sender == "+18445550001"
    assert n.carrier == "T-MOBILE USA, INC."
    assert n.segments == 1
    assert n.price == pytest.approx(0.0051)
    assert n.currency == "USD"
    assert n.provider_timestamp == datetime(2019, 12, 9, 21, 32, 14, 148000, tzinfo=UTC)
    assert n.provider_final is True
    assert n.provider_error_code is None


def test_sent_event_is_not_final_and_keeps_error_text() -> None:
    sent = telnyx.to_canonical({"status": "sent", "event_type": "message.sent"})
    assert sent.provider_final is False
    failed = telnyx.to_canonical(
        {
            "status": "delivery_failed",
            "errors": [{"code": "40002", "title": "Blocked as spam (temporary)"}],
        }
    )
    assert failed.provider_error_text == "Blocked as spam (temporary)"


def test_unknown_status_is_unknown_and_unmapped() -> None:
    n = telnyx.to_canonical({"status": "teleported", "to": "+1"})
    assert n.state is State.UNKNOWN
    assert n.mapped is False
    assert n.provider_status == "teleported"


def test_unknown_error_code_on_failure_keeps_state_and_flags_unmapped() -> None:
    n = telnyx.to_canonical({"status": "delivery_failed", "errors": [{"code": "40999"}]})
    assert (n.state, n.failure_reason, n.mapped) == (
        State.UNDELIVERED,
        FailureReason.UNREACHABLE,
        False,
    )
    assert n.provider_error_code == "40999"


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({}, id="empty"),
        pytest.param({"status": 3, "errors": "x", "cost_amount": "nan", "parts": True}, id="junk"),
        pytest.param({"status": None, "errors": [None, {"code": None}]}, id="nulls"),
    ],
)
def test_odd_payloads_never_raise(payload: dict[str, object]) -> None:
    n = telnyx.to_canonical(payload)
    assert n.state is State.UNKNOWN
    assert n.price is None and n.segments is None
