"""Standard Webhooks mapping (the generic vocabulary) and fixtures: extract -> to_canonical
gives what each fixture expects."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from deploy.tools.samples import Fixture, load
from ingress.providers import standard as ingress
from schemas.lifecycle import State
from schemas.providers import generic, standard


def test_tables_are_the_generic_vocabulary() -> None:
    assert dict(standard.STATUSES) == dict(generic.STATUSES)
    assert dict(standard.ERRORS) == dict(generic.ERRORS)


def _cases() -> list[tuple[Fixture, int, dict[str, object]]]:
    return [(f, i, e) for f in load("standard") for i, e in enumerate(f.expect)]


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
    normalized = standard.to_canonical(record.payload)
    got = {
        "message_id": f"standard:{record.message_key}",
        "state": str(normalized.state),
        "failure_reason": normalized.failure_reason and str(normalized.failure_reason),
        "provider_status": normalized.provider_status,
        "provider_error_code": normalized.provider_error_code,
    }
    assert {k: got[k] for k in expect} == expect
    assert normalized.mapped


def test_every_generic_error_code_has_a_fixture_or_mapping() -> None:
    codes = {e["provider_error_code"] for f in load("standard") for e in f.expect}
    assert codes - {None} <= set(standard.ERRORS)


def test_fields_are_filled() -> None:
    fixture = next(f for f in load("standard") if f.name == "delivered")
    (record,) = ingress.extract(fixture.request())
    normalized = standard.to_canonical(record.payload)
    assert (normalized.recipient, normalized.sender) == ("+14155550100", "+12065550123")
    assert (normalized.carrier, normalized.mcc, normalized.mnc) == ("T-Mobile", "310", "260")
    assert normalized.country == "US" and normalized.segments == 1
    assert (normalized.price, normalized.currency) == (0.0079, "USD")
    assert normalized.client_ref == "order-1001"
    assert normalized.provider_timestamp == datetime(2025, 8, 12, 10, 15, tzinfo=UTC)
    sent = next(f for f in load("standard") if f.name == "sent")
    (record,) = ingress.extract(sent.request())
    assert standard.to_canonical(record.payload).sequence == 2


def test_unknown_status_is_unknown_and_unmapped() -> None:
    normalized = standard.to_canonical({"status": "teleported", "message_id": "m"})
    assert normalized.state is State.UNKNOWN
    assert normalized.mapped is False


def test_empty_payload_does_not_raise() -> None:
    assert standard.to_canonical({}).state is State.UNKNOWN
