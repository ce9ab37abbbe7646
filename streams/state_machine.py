"""The per-message state machine: only advancing transitions change the current state.

Rules (documented in README, tested in tests/streams/test_state_machine.py):
- Non-final states advance by rank: accepted < queued < sent; a lower or equal rank
  report is `stale` (kept in history, changes nothing).
- A final state is never replaced by a non-final one (late `sent` after `delivered` is stale).
- `unknown` is a soft final: any other final replaces it.
- Two different finals: `delivered` wins (carriers do send delivered after undelivered; a
  handset confirmation cannot be undone). Between two failure finals the later report wins
  by provider sequence, else provider timestamp; without either, the higher precedence
  (rejected > undelivered > expired > failed) wins. This is a total order, so the final
  state does not depend on arrival order.
- A report of the current state that adds information (carrier, price ...) is `enriched`;
  one that adds nothing emits nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemas.events import Transition
from schemas.lifecycle import RANK, State, is_final

#: Tie-break between two different finals when no ordering key decides.
PRECEDENCE: dict[State, int] = {
    State.UNKNOWN: 0,
    State.FAILED: 1,
    State.EXPIRED: 2,
    State.UNDELIVERED: 3,
    State.REJECTED: 4,
    State.DELIVERED: 5,
}

#: Fields a report can add to what we know about a message.
INFO_FIELDS: tuple[str, ...] = (
    "carrier",
    "carrier_source",
    "line_type",
    "area",
    "mcc",
    "mnc",
    "country",
    "region",
    "campaign",
    "tenant",
    "client_ref",
    "segments",
    "price",
    "currency",
    # from the sender's registration (streams/sends.py), never from a provider report
    "submitted_at",
    "consent_source",
    "consent_at",
)


@dataclass(slots=True)
class MessageState:
    """What the worker remembers about one message between events."""

    state: State
    ts: float | None = None
    seq: int | None = None
    final_hint: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Compact JSON-ready form for the table."""
        return {
            "s": str(self.state),
            "t": self.ts,
            "q": self.seq,
            "f": self.final_hint,
            "i": self.info,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MessageState:
        """Inverse of to_dict."""
        return cls(
            State(data["s"]),
            data.get("t"),
            data.get("q"),
            bool(data.get("f")),
            dict(data.get("i") or {}),
        )


@dataclass(frozen=True, slots=True)
class Report:
    """The parts of one normalized report the state machine looks at."""

    state: State
    ts: float | None
    seq: int | None
    final_hint: bool
    info: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Decision:
    """What a report does to a message: None transition means emit nothing."""

    transition: Transition | None
    previous: State | None
    current: State
    after: MessageState


def final_key(state: State, ts: float | None, seq: int | None) -> tuple[int, int, float, int]:
    """Total order of final reports: the greatest one is the message's final state.

    delivered > any failure > unknown; then provider sequence, then provider timestamp,
    then precedence. Being a total order, the outcome does not depend on arrival order.
    """
    tier = 2 if state is State.DELIVERED else 0 if state is State.UNKNOWN else 1
    if seq is not None:
        kind, value = 2, float(seq)
    elif ts is not None:
        kind, value = 1, ts
    else:
        kind, value = 0, 0.0
    return (tier, kind, value, PRECEDENCE[state])


def _new_info(report: Report, known: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in report.info.items()
        if v is not None and k in INFO_FIELDS and known.get(k) != v
    }


def decide(prior: MessageState | None, report: Report) -> Decision:
    """Apply one (deduplicated) report to the message's state."""
    if prior is None:
        info = {k: v for k, v in report.info.items() if v is not None and k in INFO_FIELDS}
        after = MessageState(report.state, report.ts, report.seq, report.final_hint, info)
        return Decision("advanced", None, report.state, after)
    added = _new_info(report, prior.info)
    merged = {**prior.info, **added}
    cur = prior.state
    if report.state == cur:
        ts, seq = prior.ts, prior.seq
        if is_final(cur) and final_key(cur, report.ts, report.seq) > final_key(cur, ts, seq):
            ts, seq = report.ts, report.seq  # remember the latest report of this final
        after = MessageState(cur, ts, seq, prior.final_hint or report.final_hint, merged)
        if not added and not (report.final_hint and not prior.final_hint):
            return Decision(None, cur, cur, after)
        return Decision("enriched", cur, cur, after)
    if is_final(cur):
        advance = is_final(report.state) and final_key(
            report.state, report.ts, report.seq
        ) > final_key(cur, prior.ts, prior.seq)
    else:
        advance = RANK[report.state] > RANK[cur]
    if not advance:
        after = MessageState(cur, prior.ts, prior.seq, prior.final_hint, merged)
        return Decision("stale", cur, cur, after)
    after = MessageState(
        report.state, report.ts, report.seq, prior.final_hint or report.final_hint, merged
    )
    return Decision("advanced", cur, report.state, after)
