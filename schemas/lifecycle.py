"""The canonical message lifecycle every provider is mapped onto.

Providers name their states differently; analytics, the state machine and downstream
services only ever see these. `unknown` is explicit: some providers (Vonage `unknown`,
Sinch `Unknown`, AWS `TEXT_UNKNOWN` after 72 h) report it as a final answer, and an
unmapped provider status lands there too so that nothing is dropped. It ranks above
`sent` (we no longer expect progress) but any other final state replaces it.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    """Canonical delivery state of one message (to one recipient)."""

    ACCEPTED = "accepted"
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


class FailureReason(StrEnum):
    """Why a message did not arrive, grouped so analysts can compare providers."""

    INVALID_NUMBER = "invalid_number"
    UNREACHABLE = "unreachable"
    CARRIER_FILTERED = "carrier_filtered"
    OPTED_OUT = "opted_out"
    BLOCKED_CONTENT = "blocked_content"
    EXPIRED = "expired"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    PROVIDER_ERROR = "provider_error"
    UNKNOWN = "unknown"


#: Progress order. Transitions only move to a higher rank; finals share the top rank.
RANK: dict[State, int] = {
    State.ACCEPTED: 1,
    State.QUEUED: 2,
    State.SENT: 3,
    State.UNKNOWN: 4,
    State.DELIVERED: 5,
    State.UNDELIVERED: 5,
    State.FAILED: 5,
    State.REJECTED: 5,
    State.EXPIRED: 5,
}

#: States after which no further progress is expected.
FINAL: frozenset[State] = frozenset(
    {
        State.DELIVERED,
        State.UNDELIVERED,
        State.FAILED,
        State.REJECTED,
        State.EXPIRED,
        State.UNKNOWN,
    }
)

#: Final states that mean the message did not reach the handset.
FAILURES: frozenset[State] = frozenset(
    {State.UNDELIVERED, State.FAILED, State.REJECTED, State.EXPIRED}
)

#: States that count as a delivery attempt in the delivery rate (delivered / attempts):
#: everything the provider handed (or tried to hand) to a carrier and got an answer for.
ATTEMPTS: frozenset[State] = frozenset(
    {State.DELIVERED, State.UNDELIVERED, State.FAILED, State.REJECTED, State.EXPIRED, State.UNKNOWN}
)

#: Default failure reason when a provider gives a failure state but no (known) error code.
DEFAULT_REASON: dict[State, FailureReason] = {
    State.UNDELIVERED: FailureReason.UNREACHABLE,
    State.FAILED: FailureReason.PROVIDER_ERROR,
    State.REJECTED: FailureReason.CARRIER_FILTERED,
    State.EXPIRED: FailureReason.EXPIRED,
    State.UNKNOWN: FailureReason.UNKNOWN,
}


def is_final(state: State) -> bool:
    """True when no further progress is expected for a message in `state`."""
    return state in FINAL
