"""Generic mapping table: the canonical names and their synonyms, codes, unknown values kept."""

from __future__ import annotations

import pytest

from schemas.lifecycle import FailureReason, State
from schemas.providers import generic


@pytest.mark.parametrize("state", [s for s in State])
def test_every_canonical_state_name_maps_to_itself(state: State) -> None:
    assert generic.to_canonical({"status": state.value}).state == state


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("scheduled", State.ACCEPTED),
        ("processing", State.QUEUED),
        ("sending", State.QUEUED),
        ("blocked", State.REJECTED),
        ("DELIVERED", State.DELIVERED),
    ],
)
def test_synonyms(status: str, state: State) -> None:
    n = generic.to_canonical({"status": status})
    assert (n.state, n.mapped, n.provider_status) == (state, True, status)


@pytest.mark.parametrize("reason", [r for r in FailureReason if r is not FailureReason.UNKNOWN])
def test_every_failure_reason_is_a_code(reason: FailureReason) -> None:
    n = generic.to_canonical({"status": "failed", "provider_status_code": reason.value})
    assert n.failure_reason == reason and n.mapped


def test_success_codes_are_no_failure() -> None:
    for code in generic.OK_CODES:
        n = generic.to_canonical({"status": "delivered", "provider_status_code": code})
        assert (n.state, n.failure_reason, n.mapped) == (State.DELIVERED, None, True)


def test_an_unknown_status_is_kept_raw_and_flagged() -> None:
    n = generic.to_canonical({"status": "teleported", "to": "+14155550100", "from": "ACME"})
    assert (n.state, n.mapped, n.provider_status) == (State.UNKNOWN, False, "teleported")
    assert (n.recipient, n.sender) == ("+14155550100", "ACME")
