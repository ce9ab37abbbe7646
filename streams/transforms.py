"""The worker's whole decision for one raw record, as a pure function.

`process()` takes the raw record, where it came from (partition, offset) and the stored
message record, and returns what to produce and what to store. The agent only does I/O,
so everything here is unit-tested without Kafka.

Crash safety (at-least-once, concurrency 1): the agent produces the outputs, then writes
the new message record. Faust flushes outputs and the table changelog before it commits
the source offset, so after a crash a record may come again. Each seen event key keeps the
(partition, offset) that first carried it and the state before it:
- same key, same offset  -> a redelivery of the same Kafka record: the decision is
  recomputed from the stored prior state and the same outputs (same event ids) are produced
  again; consumers drop the copies by event id. Nothing is lost even if the table write
  reached Kafka (or the local RocksDB) before the outputs did.
- same key, other offset -> a real duplicate from the provider: counted, dropped.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from schemas.envelope import RawEnvelope
from schemas.events import CanonicalEvent
from schemas.lifecycle import FAILURES, is_final
from schemas.normalized import Normalized
from schemas.phone import PiiMode, e164, number_hash, protect, protect_sender
from schemas.providers import MAPPERS
from schemas.suppressions import SuppressionEntry
from streams import actions
from streams.dedupe import event_id, event_key
from streams.enrich import RANK, enrich
from streams.state_machine import Decision, MessageState, Report, decide

Kind = Literal["new", "duplicate", "redelivery", "invalid"]
Pair = tuple[bytes, bytes]


@dataclass(frozen=True, slots=True)
class Config:
    """Processing options from settings."""

    fallback_campaigns: frozenset[str] = frozenset()
    #: Seconds a message must stay failed before its fallback goes out (0: at once).
    fallback_grace_s: float = 0.0
    salt: str = ""
    #: How phone numbers leave the worker (schemas/phone.py): hash, mask or clear.
    pii_mode: PiiMode = "hash"
    #: Event keys remembered per message (a message has a handful of reports).
    max_seen: int = 64


@dataclass(slots=True)
class Outcome:
    """What to produce and store for one raw record."""

    kind: Kind
    store: dict[str, Any] | None = None
    status: list[Pair] = field(default_factory=list)
    deadletter: list[Pair] = field(default_factory=list)
    actions: list[Pair] = field(default_factory=list)
    suppressions: list[Pair] = field(default_factory=list)
    #: Records for `dlr.sends.v1` (a part's reports forwarded to its message: streams/sends.py).
    forward: list[Pair] = field(default_factory=list)
    #: The canonical event emitted, if any (its transition and `mapped` say the rest).
    event: CanonicalEvent | None = None
    #: A pending fallback was decided / ended: the agent adds / removes its due-index entry.
    due_added: float | None = None
    due_removed: float | None = None


def protected(event: CanonicalEvent, config: Config) -> CanonicalEvent:
    """The event as it leaves the worker: recipient and a phone-number sender as
    `config.pii_mode` says (`schemas.phone.protect`), `pii_mode` saying which."""
    if config.pii_mode == "clear":
        return replace(event, pii_mode="clear")
    recipient, _ = protect(event.recipient, pii_mode=config.pii_mode, salt=config.salt)
    sender, _ = protect_sender(event.sender, pii_mode=config.pii_mode, salt=config.salt)
    return replace(event, recipient=recipient, sender=sender, pii_mode=config.pii_mode)


_NUMBER_LIKE = re.compile(r"\+?\d[\d\s().\-]{5,}\d")


def scrub(text: str) -> str:
    """Text for a dead letter with anything that looks like a phone number replaced (an
    exception's message may quote the value it failed on)."""
    return _NUMBER_LIKE.sub("<number>", text)


def raw_reference(raw: bytes, partition: int, offset: int) -> dict[str, Any]:
    """Where a dead letter's raw record is (the record itself stays in `dlr.raw.v1`, which
    alone keeps raw requests, for its retention): partition, offset, size, SHA-256."""
    return {
        "partition": partition,
        "offset": offset,
        "bytes": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
    }


def _dead(
    reason: str,
    detail: str,
    raw: bytes,
    key: bytes | None,
    partition: int,
    offset: int,
    config: Config,
) -> Outcome:
    """A record the worker cannot process. It carries the envelope only in `clear` mode;
    otherwise a reference to it in the raw topic (an envelope holds clear numbers)."""
    letter: dict[str, Any] = {
        "reason": reason,
        "detail": detail[:500] if config.pii_mode == "clear" else scrub(detail[:500]),
        "partition": partition,
        "offset": offset,
    }
    if config.pii_mode == "clear":
        letter["envelope"] = raw.decode("utf-8", "replace")
    else:
        letter["raw"] = raw_reference(raw, partition, offset)
    return Outcome("invalid", deadletter=[(key or b"", orjson.dumps(letter))])


def _report(norm: Normalized, info: dict[str, Any]) -> Report:
    ts = norm.provider_timestamp.timestamp() if norm.provider_timestamp else None
    return Report(norm.state, ts, norm.sequence, bool(norm.provider_final), info)


def _info(
    env: RawEnvelope,
    norm: Normalized,
    joined: Mapping[str, Any] | None = None,
    *,
    prior: MessageState | None = None,
) -> dict[str, Any]:
    """What the report says about the message; `joined` (the registration's
    `schemas.sends.joined_info`) fills what it does not say; `prior` (the message's state)
    keeps a carrier found on stronger evidence than this report's."""
    found = enrich(
        norm.recipient, mcc=norm.mcc, mnc=norm.mnc, carrier=norm.carrier, country=norm.country
    )
    carrier: str | None = found.carrier
    source: str | None = found.carrier_source
    # A carrier found on stronger evidence by an earlier report of the message stays.
    known = prior.info.get("carrier_source", "") if prior is not None else ""
    if RANK.get(known, 0) > RANK[found.carrier_source]:
        carrier = source = None
    token = env.token
    info = {
        "carrier": carrier,
        "carrier_source": source,
        "line_type": found.line_type,
        "area": found.area,
        "mcc": norm.mcc,
        "mnc": norm.mnc,
        "country": found.country,
        "region": found.region,
        "campaign": norm.campaign or token.get("campaign"),
        "tenant": norm.tenant or token.get("tenant"),
        "client_ref": norm.client_ref or token.get("ref"),
        "segments": norm.segments,
        "price": norm.price,
        "currency": norm.currency,
    }
    if joined:
        for name, value in joined.items():
            if info.get(name) is None:
                info[name] = value
    return info


def _wire_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _event(
    env: RawEnvelope, norm: Normalized, eid: str, decision: Decision, now: float
) -> CanonicalEvent:
    info = decision.after.info
    transition = decision.transition or "stale"
    current = decision.current
    return CanonicalEvent(
        event_id=eid,
        message_id=env.message_id,
        provider=env.provider,
        provider_message_id=env.provider_message_id,
        state=norm.state,
        current_state=current,
        previous_state=decision.previous,
        transition=transition,
        is_final=is_final(current) or decision.after.final_hint,
        failure_reason=norm.failure_reason,
        provider_status=norm.provider_status,
        provider_error_code=norm.provider_error_code,
        provider_error_text=norm.provider_error_text,
        mapped=norm.mapped,
        recipient=norm.recipient,
        sender=norm.sender,
        carrier=info.get("carrier"),
        mcc=info.get("mcc"),
        mnc=info.get("mnc"),
        country=info.get("country"),
        region=info.get("region"),
        carrier_source=info.get("carrier_source"),
        line_type=info.get("line_type"),
        area=info.get("area"),
        campaign=info.get("campaign"),
        tenant=info.get("tenant"),
        client_ref=info.get("client_ref"),
        segments=info.get("segments"),
        price=info.get("price"),
        currency=info.get("currency"),
        sequence=norm.sequence,
        provider_timestamp=norm.provider_timestamp,
        received_at=datetime.fromtimestamp(env.received_at, UTC),
        emitted_at=datetime.fromtimestamp(now, UTC),
        raw_sha256=env.body_sha256,
        submitted_at=_time(info.get("submitted_at")),
        consent_source=info.get("consent_source"),
        consent_at=_time(info.get("consent_at")),
    )


def _outputs(
    out: Outcome,
    env: RawEnvelope,
    event: CanonicalEvent,
    raw: bytes,
    config: Config,
    prior_act: dict[str, Any] | None,
    now: float,
) -> dict[str, Any] | None:
    """The event and what comes with it; returns the message's action state after it.

    The event leaves protected (`protected`); the clear recipient is used here only for
    the suppression list's entry, whose key is its hash."""
    clear_recipient = event.recipient
    event = protected(event, config)
    key = env.message_id.encode()
    out.event = event
    out.status.append((key, event.to_json()))
    if not event.mapped:
        letter: dict[str, Any] = {
            "reason": "unmapped",
            "detail": f"status {event.provider_status!r} "
            f"code {event.provider_error_code!r} not in the {env.provider} tables",
            "event_id": event.event_id,
        }
        if config.pii_mode == "clear":
            letter["envelope"] = raw.decode("utf-8", "replace")
        else:  # the raw record is in dlr.raw.v1 under the same key
            letter["event"] = event.to_dict()
        out.deadletter.append((key, orjson.dumps(letter)))
    if prior_act is None and (
        event.transition != "advanced" or event.current_state not in FAILURES
    ):
        return None
    return _actions(out, env, event, config, prior_act, now, clear_recipient)


def _actions(
    out: Outcome,
    env: RawEnvelope,
    event: CanonicalEvent,
    config: Config,
    prior_act: dict[str, Any] | None,
    now: float,
    clear_recipient: str | None,
) -> dict[str, Any] | None:
    """The message's decision (streams/actions.py): actions, suppressions, due index;
    returns the action state after it (None: nothing decided yet)."""
    channel = env.token.get("fallback") or (
        "email" if event.campaign and event.campaign in config.fallback_campaigns else None
    )
    acts = actions.decide(prior_act, event, channel, config.fallback_grace_s, now)
    key = env.message_id.encode()
    for body in acts.emit:
        out.actions.append((key, orjson.dumps(body)))
        if body["type"] == actions.SUPPRESS and clear_recipient:
            entry = SuppressionEntry(
                number_hash=number_hash(clear_recipient, config.salt),
                number=e164(clear_recipient),
                suppressed=True,
                reason="opted_out",
                source="receipt",
                since=_wire_time(event.emitted_at),
                actor=event.provider,
                provider=event.provider,
                message_id=event.message_id,
            )
            out.suppressions.append((entry.key(), entry.to_json()))
    if out.store is not None:  # a redelivery stores nothing: the first run did
        if acts.state:
            out.store["a"] = acts.state
        else:
            out.store.pop("a", None)
        # Two decisions of one record (a message sent in parts: streams/sends.py) add to
        # the due index in order; the agent writes additions before removals.
        if acts.due_added is not None:
            out.due_added = acts.due_added
        if acts.due_removed is not None:
            out.due_removed = acts.due_removed
    return acts.state or None


def read(
    raw: bytes, key: bytes | None, partition: int, offset: int, config: Config
) -> tuple[RawEnvelope, Normalized] | Outcome:
    """The envelope and its mapped report, or the dead-letter outcome of a bad record."""
    try:
        env = RawEnvelope.from_json(raw)
    except (ValueError, TypeError, KeyError) as exc:
        detail = f"{type(exc).__name__}: {exc}"
        return _dead("unparseable", detail, raw, key, partition, offset, config)
    mapper = MAPPERS.get(env.provider)
    if mapper is None:
        return _dead("unknown_provider", env.provider, raw, key, partition, offset, config)
    try:
        norm = mapper(env.payload)
    except Exception as exc:  # a mapper bug must not stop the partition
        detail = f"{type(exc).__name__}: {exc}"
        return _dead("mapping_error", detail, raw, key, partition, offset, config)
    return env, norm


def process(
    raw: bytes,
    key: bytes | None,
    stored: Mapping[str, Any] | None,
    partition: int,
    offset: int,
    now: float,
    config: Config,
    joined: Mapping[str, Any] | None = None,
) -> Outcome:
    """Decide everything about one raw record (see module docstring). `joined`: what the
    message's registration says (streams/sends.py), for what the report does not say."""
    got = read(raw, key, partition, offset, config)
    if isinstance(got, Outcome):
        return got
    env, norm = got
    ekey = event_key(env, norm)
    # A duplicate needs nothing else (~30 % of the records): check before the copies,
    # the event id and the geo lookup of the report.
    stored_seen = stored.get("seen") if stored else None
    if stored_seen and ekey in stored_seen:
        entry = stored_seen[ekey]
        if (entry[0], entry[1]) != (partition, offset):
            return Outcome("duplicate")
        prior_dict = entry[2]
        prior = MessageState.from_dict(prior_dict) if prior_dict else None
        decision = decide(prior, _report(norm, _info(env, norm, joined, prior=prior)))
        out = Outcome("redelivery")
        if decision.transition is not None:
            eid = event_id(env.message_id, ekey)
            prior_act = entry[3] if len(entry) > 3 else None
            _outputs(out, env, _event(env, norm, eid, decision, now), raw, config, prior_act, now)
        return out
    seen: dict[str, Any] = dict(stored_seen or {})
    prior_dict = stored.get("st") if stored else None
    prior = MessageState.from_dict(prior_dict) if prior_dict else None
    decision = decide(prior, _report(norm, _info(env, norm, joined, prior=prior)))
    # The action decision before this record too, so a redelivery re-decides the same.
    prior_act = stored.get("a") if stored else None
    entry = [partition, offset, prior_dict]
    if prior_act:
        entry.append(prior_act)
    seen[ekey] = entry
    if len(seen) > config.max_seen:
        for old in list(seen)[: len(seen) - config.max_seen]:
            del seen[old]
    store = {"st": decision.after.to_dict(), "seen": seen, "at": now}
    if prior_act:
        store["a"] = prior_act
    out = Outcome("new", store=store)
    if decision.transition is not None:
        eid = event_id(env.message_id, ekey)
        _outputs(out, env, _event(env, norm, eid, decision, now), raw, config, prior_act, now)
    return out
