"""Plivo mapping tables and fixtures: extract -> to_canonical gives what each fixture expects."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from deploy.tools.samples import Fixture, load
from ingress.providers import plivo as ingress
from schemas.lifecycle import FailureReason, State
from schemas.providers import plivo

#: Plivo's message states (docs, "Message status callbacks"; `received` is inbound).
DOCUMENTED_STATUSES = {
    "queued": State.QUEUED,
    "sent": State.SENT,
    "delivered": State.DELIVERED,
    "read": State.DELIVERED,
    "undelivered": State.UNDELIVERED,
    "failed": State.FAILED,
    "rejected": State.REJECTED,
}

DOCUMENTED_INBOUND = {"received"}

#: Plivo's SMS error codes, including those only newer copies of the list carry.
DOCUMENTED_ERRORS = [
    "000", "10", "20", "30", "40", "50", "60", "70", "80", "90", "100", "110", "200", "201",
    "900", "1000", "300", "420", "450", "910", "950",
]  # fmt: skip


def test_every_documented_status_maps_as_documented() -> None:
    assert dict(plivo.STATUSES) == DOCUMENTED_STATUSES
    assert plivo.INBOUND == DOCUMENTED_INBOUND


@pytest.mark.parametrize("code", DOCUMENTED_ERRORS)
def test_every_documented_error_is_in_exactly_one_table(code: str) -> None:
    assert (code in plivo.ERRORS) != (code in plivo.OK_CODES)
    assert code in plivo.CODE_TEXT


@pytest.mark.parametrize(
    ("status", "code", "state", "reason"),
    [
        ("undelivered", "30", State.REJECTED, FailureReason.CARRIER_FILTERED),
        ("undelivered", "100", State.REJECTED, FailureReason.CARRIER_FILTERED),
        ("failed", "200", State.REJECTED, FailureReason.OPTED_OUT),
        ("undelivered", "50", State.UNDELIVERED, FailureReason.INVALID_NUMBER),
        ("undelivered", "70", State.UNDELIVERED, FailureReason.INVALID_NUMBER),
        ("undelivered", "20", State.UNDELIVERED, FailureReason.UNREACHABLE),
        ("undelivered", "80", State.UNDELIVERED, FailureReason.UNREACHABLE),
        ("undelivered", "420", State.EXPIRED, FailureReason.EXPIRED),
        ("failed", "900", State.FAILED, FailureReason.INSUFFICIENT_FUNDS),
    ],
)
def test_mapping_suggestions_of_the_reference(
    status: str, code: str, state: State, reason: FailureReason
) -> None:
    n = plivo.to_canonical({"Status": status, "ErrorCode": code})
    assert (n.state, n.failure_reason, n.mapped) == (state, reason, True)


def _cases() -> list[tuple[Fixture, int, dict[str, object]]]:
    return [(f, i, e) for f in load("plivo") for i, e in enumerate(f.expect)]


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
    normalized = plivo.to_canonical(record.payload)
    assert f"plivo:{record.message_key}" == expect["message_id"]
    for name, value in expect.items():
        if name != "message_id":
            assert str(getattr(normalized, name) or "") == str(value or ""), name
    assert normalized.mapped


def test_delivered_fills_every_field_plivo_gives() -> None:
    fixture = next(f for f in load("plivo") if f.name == "delivered")
    (record,) = ingress.extract(fixture.request())
    n = plivo.to_canonical(record.payload)
    assert (n.recipient, n.sender) == ("14155551212", "14155550000")
    assert (n.mcc, n.mnc) == ("310", "260")
    assert n.segments == 1
    assert n.price == pytest.approx(0.005)
    assert n.currency == "USD"
    assert n.sequence == 3
    assert n.provider_timestamp == datetime(2024, 1, 1, 10, 0, 5, tzinfo=UTC)
    assert (n.provider_error_code, n.provider_error_text) == ("000", "Success")


def test_timestamp_falls_back_to_the_latest_milestone_present() -> None:
    fixture = next(f for f in load("plivo") if f.name == "sent")
    (record,) = ingress.extract(fixture.request())
    n = plivo.to_canonical(record.payload)
    assert n.provider_timestamp == datetime(2024, 1, 1, 10, 0, 1, tzinfo=UTC)
    assert n.sequence == 2
    assert n.provider_error_code is None  # ErrorCode= is blank on success


def test_unknown_status_is_unknown_and_unmapped() -> None:
    n = plivo.to_canonical({"Status": "teleported", "ErrorCode": ""})
    assert (n.state, n.mapped, n.provider_status) == (State.UNKNOWN, False, "teleported")


def test_unknown_error_keeps_status_but_flags_unmapped() -> None:
    n = plivo.to_canonical({"Status": "undelivered", "ErrorCode": "2001"})
    assert (n.state, n.failure_reason, n.mapped) == (
        State.UNDELIVERED,
        FailureReason.UNREACHABLE,
        False,
    )


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({}, id="empty"),
        pytest.param(
            {"Status": 3, "Units": "x", "TotalAmount": "free", "Sequence": "-1"}, id="junk"
        ),
        pytest.param(
            {"Status": {}, "Units": True, "TotalAmount": "inf", "MessageTime": "soon"},
            id="odd-types",
        ),
    ],
)
def test_odd_payloads_never_raise(payload: dict[str, object]) -> None:
    n = plivo.to_canonical(payload)
    assert n.state is State.UNKNOWN
    assert n.price is None and n.currency is None and n.segments is None and n.sequence is None
    assert n.provider_timestamp is None
