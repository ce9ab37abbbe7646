"""The canonical event contract: Python model, wire form and published JSON Schema agree."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import jsonschema
import pytest

from schemas import jsonschema as published
from schemas.events import CanonicalEvent
from schemas.lifecycle import FailureReason, State


def sample(**changes: object) -> CanonicalEvent:
    base = dict(
        event_id="a" * 32,
        message_id="twilio:SM1",
        provider="twilio",
        provider_message_id="SM1",
        state=State.UNDELIVERED,
        current_state=State.UNDELIVERED,
        previous_state=State.SENT,
        transition="advanced",
        is_final=True,
        failure_reason=FailureReason.INVALID_NUMBER,
        provider_status="undelivered",
        provider_error_code="30005",
        provider_error_text=None,
        mapped=True,
        recipient="+15558675310",
        sender="+15017122661",
        carrier=None,
        mcc=None,
        mnc=None,
        country="US",
        region="Northern America",
        campaign="otp",
        tenant=None,
        client_ref=None,
        segments=1,
        price=0.0079,
        currency="USD",
        sequence=None,
        provider_timestamp=datetime(2025, 1, 1, tzinfo=UTC),
        received_at=datetime(2025, 1, 1, 0, 0, 1, tzinfo=UTC),
        emitted_at=datetime(2025, 1, 1, 0, 0, 2, tzinfo=UTC),
        raw_sha256="0" * 64,
    )
    base.update(changes)
    return CanonicalEvent(**base)  # type: ignore[arg-type]


def test_committed_json_schema_is_generated_from_the_model() -> None:
    assert published.PATH.read_text() == published.render(), "run python -m schemas.jsonschema"


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(sample(), id="failure"),
        pytest.param(
            sample(
                previous_state=None,
                failure_reason=None,
                state=State.SENT,
                current_state=State.SENT,
                is_final=False,
                provider_timestamp=None,
            ),
            id="first-report",
        ),
    ],
)
def test_wire_form_validates_and_round_trips(event: CanonicalEvent) -> None:
    wire = json.loads(event.to_json())
    jsonschema.validate(wire, published.build())
    assert CanonicalEvent.from_json(event.to_json()) == event
    assert wire["received_at"].endswith("Z")


def test_schema_rejects_an_unknown_state() -> None:
    wire = json.loads(sample().to_json())
    wire["state"] = "teleported"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wire, published.build())


def test_readers_ignore_unknown_fields() -> None:
    wire = json.loads(sample().to_json())
    wire["added_in_v1_1"] = True
    assert CanonicalEvent.from_dict(wire) == sample()


@pytest.mark.parametrize(
    "change",
    [
        {"state": "teleported"},
        {"current_state": None},
        {"previous_state": "nope"},
        {"failure_reason": "bad_luck"},
        {"failure_reason": ["unreachable"]},
        {"received_at": "yesterday"},
        {"message_id": None, "event_id": None, "drop": "provider"},
    ],
)
def test_malformed_wire_events_raise(change: dict[str, object]) -> None:
    wire = sample().to_dict()
    drop = change.pop("drop", None)
    wire.update(change)
    if drop:
        del wire[str(drop)]
    with pytest.raises((ValueError, TypeError, KeyError)):
        CanonicalEvent.from_dict(wire)


def test_previous_state_and_reason_may_be_absent() -> None:
    wire = sample(previous_state=None, failure_reason=None).to_dict()
    del wire["schema_version"]
    event = CanonicalEvent.from_dict(wire)
    assert event.previous_state is None and event.failure_reason is None
    assert event == sample(previous_state=None, failure_reason=None)
