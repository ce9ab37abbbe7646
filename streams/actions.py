"""One decision per message: which actions a message's reports demand, and when.

Pure, like `streams/transforms.py`, which calls `decide` for every canonical event it
emits; the worker's timer (`streams/agents/lifecycle.py`) calls `fire` for pending
decisions that fell due. The decision state lives in the message record under `"a"` (so
in the worker's table and its changelog, never only in memory):

    {"fb": "p" | "s" | "c",   # fallback pending / sent / cancelled by a delivery
     "due": 1723456789.5,     # when pending: emit at or after this time
     "body": {...},           # when pending: the action to emit (the latest failure's facts)
     "sp": true,              # a suppress action went out
     "da": true}              # a delivered_after_fallback action went out

Rules (README "Actions"):
- A message that reaches a failure state (undelivered / failed / rejected / expired) and
  is eligible (its campaign is in `DLR_FALLBACK_CAMPAIGNS` or its callback token names a
  fallback channel) gets at most one `fallback`. With a grace of 0 it goes out with the
  failure event; otherwise it is pending until `due` = first failure + grace, and a
  `delivered` before that cancels it. A report processed at or after `due` first lets the
  pending fallback out (the timer may simply not have run yet): the message did stay
  failed for the whole grace, so the outcome does not depend on the timer's phase.
- A `delivered` after a fallback went out emits `delivered_after_fallback` (once), so
  downstream can count double contacts.
- An opt-out emits one `suppress` per message.
- Every action id is message-scoped and deterministic (`action_id`): a crash and
  re-delivery re-emit the same id, never a second one. Dispatch sends it as `webhook-id`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeGuard

from schemas.events import CanonicalEvent
from schemas.lifecycle import FAILURES, FailureReason, State

__all__ = [
    "DELIVERED_AFTER_FALLBACK",
    "FALLBACK",
    "SUPPRESS",
    "Acts",
    "action_id",
    "decide",
    "fire",
    "pending",
]

FALLBACK = "fallback"
SUPPRESS = "suppress"
DELIVERED_AFTER_FALLBACK = "delivered_after_fallback"


def action_id(message_id: str, kind: str) -> str:
    """The one id an action of this kind can have for this message (readable prefix + hash)."""
    digest = hashlib.sha256(f"{message_id}|{kind}".encode()).hexdigest()[:32]
    return f"act_{kind}_{digest}"


@dataclass(slots=True)
class Acts:
    """What one report (or the timer) does to a message's decision state."""

    #: The new decision state to store (None: nothing to remember).
    state: dict[str, Any] | None
    #: Action bodies to produce now, in order.
    emit: list[dict[str, Any]] = field(default_factory=list)
    #: A pending fallback was created: add this due time to the partition's index.
    due_added: float | None = None
    #: A pending fallback ended (sent or cancelled): remove this due time from the index.
    due_removed: float | None = None


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


def _fallback_body(event: CanonicalEvent, channel: str) -> dict[str, Any]:
    return {
        "type": FALLBACK,
        "action_id": action_id(event.message_id, FALLBACK),
        "message_id": event.message_id,
        "provider": event.provider,
        "event_id": event.event_id,
        "state": str(event.current_state),
        "failure_reason": str(event.failure_reason) if event.failure_reason else None,
        "campaign": event.campaign,
        "tenant": event.tenant,
        "client_ref": event.client_ref,
        "recipient": event.recipient,
        "channel": channel,
        "failed_at": _iso(event.emitted_at.timestamp()),
    }


def _send_fallback(state: dict[str, Any], body: dict[str, Any], now: float) -> dict[str, Any]:
    state["fb"] = "s"
    state.pop("due", None)
    state.pop("body", None)
    return {**body, "at": _iso(now)}


def decide(
    prior: dict[str, Any] | None,
    event: CanonicalEvent,
    channel: str | None,
    grace_s: float,
    now: float,
) -> Acts:
    """Apply one emitted canonical event to the message's decision state.

    `channel` is the fallback channel when the message is eligible for a fallback, else
    None. `now` is the processing time (due times are processing times).
    """
    state: dict[str, Any] = dict(prior) if prior else {}
    out = Acts(None)
    fb = state.get("fb")
    if fb == "p" and state["due"] <= now:  # fell due before this report: it goes first
        out.due_removed = state["due"]
        out.emit.append(_send_fallback(state, state["body"], now))
        fb = "s"
    current = event.current_state
    if event.transition == "advanced" and current in FAILURES:
        if fb is None and channel:
            body = _fallback_body(event, channel)
            if grace_s <= 0:
                out.emit.append(_send_fallback(state, body, now))
            else:
                due = now + grace_s
                state.update(fb="p", due=due, body=body)
                out.due_added = due
        elif fb == "p":  # still failed: the fallback will carry the latest failure's facts
            pending = state["body"]
            state["body"] = {
                **_fallback_body(event, pending["channel"]),
                "failed_at": pending["failed_at"],  # when the message first failed
            }
        if (
            event.failure_reason is FailureReason.OPTED_OUT
            and event.recipient
            and not state.get("sp")
        ):
            state["sp"] = True
            out.emit.append(
                {
                    "type": SUPPRESS,
                    "action_id": action_id(event.message_id, SUPPRESS),
                    "message_id": event.message_id,
                    "provider": event.provider,
                    "event_id": event.event_id,
                    "state": str(current),
                    "failure_reason": str(event.failure_reason),
                    "campaign": event.campaign,
                    "tenant": event.tenant,
                    "client_ref": event.client_ref,
                    "recipient": event.recipient,
                    "at": _iso(now),
                }
            )
    elif event.transition == "advanced" and current is State.DELIVERED:
        if fb == "p":
            out.due_removed = state.pop("due")
            state.pop("body", None)
            state["fb"] = "c"
        elif fb == "s" and not state.get("da"):
            state["da"] = True
            out.emit.append(
                {
                    "type": DELIVERED_AFTER_FALLBACK,
                    "action_id": action_id(event.message_id, DELIVERED_AFTER_FALLBACK),
                    "fallback_action_id": action_id(event.message_id, FALLBACK),
                    "message_id": event.message_id,
                    "provider": event.provider,
                    "event_id": event.event_id,
                    "state": str(current),
                    "campaign": event.campaign,
                    "tenant": event.tenant,
                    "client_ref": event.client_ref,
                    "at": _iso(now),
                }
            )
    out.state = state or None
    return out


def pending(state: dict[str, Any] | None) -> TypeGuard[dict[str, Any]]:
    """Whether a decision state holds a fallback waiting for its due time."""
    return state is not None and state.get("fb") == "p"


def fire(prior: dict[str, Any] | None, now: float) -> Acts:
    """The timer's decision for a message found in the due index.

    Emits the pending fallback when it is due; a message whose fallback is no longer
    pending (sent, cancelled, or never stored) emits nothing: the index entry was stale.
    """
    if not pending(prior) or prior["due"] > now:
        return Acts(prior)
    state = dict(prior)
    out = Acts(state, due_removed=prior["due"])
    out.emit.append(_send_fallback(state, prior["body"], now))
    return out
