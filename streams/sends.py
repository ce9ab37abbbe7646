"""The join of sends and receipts, as pure functions (the lifecycle agent does the I/O).

The worker's table holds one record per message id (`streams/transforms.py` for the
fields of a report-only message). The sender's registrations (`dlr.sends.v1`,
`schemas/sends.py`) reach the same partition as the message's reports, so whichever comes
first, the other finds it there. Keys this module adds to the record:

    j  what the registration adds to the events (`schemas.sends.joined_info`)
    g  the registration's digest: the same one again is a duplicate, another a conflict
    r  status fields of the latest report of the current state (failure reason, provider
       status, error code, error text, mapped): what an event made from stored state
       (a late registration, a folded part) says about that state
    m  a message sent in parts: {"n": parts, "own": index of the message's own id or -1,
       "p": {index: {"st": the part's state, "r": its status fields}}}
    l  on a part's own key: [message id, index, parts, own] (its reports are forwarded)

Order does not matter:
- registration first: stored; the first report's event carries its fields (`joined`);
- reports first: the registration emits one `enriched` event with what it adds (nothing
  when it adds nothing), so ClickHouse catches up;
- duplicates and crashes as for reports: the registration's event key is
  `event_key("reg", message id)` with the (partition, offset) that first carried it;
  offsets of `dlr.sends.v1` are stored as `-1 - offset` so they never equal a raw one.

Messages in parts (the registration lists `parts`): each part keeps its own state
(the state machine of `streams/state_machine.py`) and the message takes the state of its
least advanced part in the state machine's order (`part_order`); a part not reported yet
counts as `accepted`. So the message is delivered when every part is, final only when
every part is final, and then `unknown` when a part is unknown, else failed with the
first failure by the state machine's order (provider sequence, timestamp, precedence).
Every part only moves up that order, so the message does too: whatever the arrival
order, it ends in the same state, and an event carries it (`current_state`). Every part's
report is emitted under the message id (`provider_message_id` = the part's id); when the
message's state changes to that of another part, an `advanced` event with that part's
status fields is emitted too. A part's reports are forwarded to the message's partition
through `dlr.sends.v1` once its `part` link is known; what a part reported before (then
emitted under the part's own id, which analytics leave out as a part) is forwarded as its
state when the link arrives. One order is not exact: a final report of the message's own
id processed before both its registration and any forwarded part was emitted as the
message's state; a fold below it cannot take that back (the sender registers right after
the send and a part's report takes seconds at least, so this needs a late registration).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.envelope import INBOUND_KEY_PREFIX, RawEnvelope
from schemas.events import CanonicalEvent
from schemas.lifecycle import RANK, FailureReason, State, is_final
from schemas.sends import PART, PART_RECEIPT, PART_STATE, REGISTRATION, joined_info
from streams import inbound
from streams.dedupe import event_id, event_key
from streams.state_machine import Decision, MessageState, Report, decide, final_key
from streams.transforms import (
    Config,
    Outcome,
    _event,
    _info,
    _outputs,
    _report,
    process,
    raw_reference,
    read,
    scrub,
)

__all__ = ["part_order", "receipt", "send"]

#: Record keys this module keeps across a report's processing (transforms keeps st/seen/at).
_KEPT = ("j", "g", "r")
#: Event key of a message's registration.
_REG = "reg"


def _sends_offset(offset: int) -> int:
    """How a `dlr.sends.v1` offset is stored next to raw ones (never equal to one)."""
    return -1 - offset


def _status_fields(event: CanonicalEvent) -> list[Any]:
    return [
        None if event.failure_reason is None else str(event.failure_reason),
        event.provider_status,
        event.provider_error_code,
        event.provider_error_text,
        event.mapped,
    ]


def receipt(
    raw: bytes,
    key: bytes | None,
    stored: Mapping[str, Any] | None,
    partition: int,
    offset: int,
    now: float,
    config: Config,
) -> Outcome:
    """One record of `dlr.raw.v1`: joined with its registration, or forwarded / folded as
    a part. A message nobody registered takes `transforms.process` unchanged; an inbound
    opt-out keyword (key `inbound:<hash>`) goes to `streams.inbound`."""
    if key is not None and key.startswith(INBOUND_KEY_PREFIX):
        return inbound.process(raw, key, stored, partition, offset, now, config)
    if not stored:
        out = process(raw, key, stored, partition, offset, now, config)
        _keep(out, stored)
        return out
    link = stored.get("l")
    if link is not None:
        return _forward(raw, key, link, partition, offset)
    multipart = stored.get("m")
    if multipart is not None and multipart["own"] >= 0:
        got = read(raw, key, partition, offset, config)
        if isinstance(got, Outcome):
            return got
        env, norm = got
        message_id = (key or b"").decode()
        own = multipart["own"]
        return _part(message_id, env, norm, raw, own, stored, partition, offset, now, config)
    out = process(raw, key, stored, partition, offset, now, config, stored.get("j"))
    _keep(out, stored)
    return out


def _keep(out: Outcome, stored: Mapping[str, Any] | None) -> None:
    """Carry this module's keys over and note the status fields of the current state."""
    if out.store is None:
        return
    if stored:
        for name in _KEPT:
            if name in stored:
                out.store[name] = stored[name]
    event = out.event
    if event is not None and event.state == event.current_state:
        out.store["r"] = _status_fields(event)


def _forward(
    raw: bytes, key: bytes | None, link: list[Any], partition: int, offset: int
) -> Outcome:
    """A report of a linked part goes to its message's partition (deduplicated there)."""
    message_id, index, parts, own = link
    value = {
        "type": PART_RECEIPT,
        "v": 1,
        "message_id": message_id,
        "part_id": (key or b"").decode(),
        "index": index,
        "parts": parts,
        "own": own,
        "envelope": raw.decode("utf-8", "replace"),
    }
    return Outcome("new", forward=[(message_id.encode(), orjson.dumps(value))])


# -- dlr.sends.v1 ---------------------------------------------------------------------------


def send(
    value: bytes,
    key: bytes | None,
    stored: Mapping[str, Any] | None,
    partition: int,
    offset: int,
    now: float,
    config: Config,
) -> Outcome:
    """One record of `dlr.sends.v1` (see `schemas/sends.py` for the types)."""
    try:
        record = orjson.loads(value)
        kind = record["type"]
        if kind == REGISTRATION:
            return _registration(record, value, key, stored, partition, offset, now, config)
        if kind == PART:
            return _link(record, key, stored)
        if kind == PART_RECEIPT:
            return _part_receipt(record, key, stored, partition, offset, now, config)
        if kind == PART_STATE:
            return _part_state(record, key, stored, partition, offset, now, config)
        raise ValueError(f"unknown record type {kind!r}")
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        detail = f"{type(exc).__name__}: {exc}"
        return _dead_send("unparseable_send", detail, value, key, partition, offset, config)


def _dead_send(
    reason: str,
    detail: str,
    value: bytes,
    key: bytes | None,
    partition: int,
    offset: int,
    config: Config,
) -> Outcome:
    """A sends record the worker refuses: with the record itself in `clear` mode, else
    with where it is in `dlr.sends.v1` (a record may hold a number or a raw report)."""
    letter: dict[str, Any] = {"reason": reason}
    if config.pii_mode == "clear":
        letter |= {"detail": detail[:500], "record": value.decode("utf-8", "replace")}
    else:
        letter |= {"detail": scrub(detail[:500]), "sends": raw_reference(value, partition, offset)}
    return Outcome("invalid", deadletter=[(key or b"", orjson.dumps(letter))])


def _seen_before(
    stored: Mapping[str, Any] | None, ekey: str, partition: int, offset: int
) -> tuple[bool, Any]:
    """(already seen, prior state dict when this is a redelivery of that same record)."""
    seen = stored.get("seen") if stored else None
    if not seen or ekey not in seen:
        return False, None
    p, o, prior = seen[ekey][:3]
    return True, (prior if (p, o) == (partition, offset) else _DUPLICATE)


_DUPLICATE = object()


def _remember(
    store: dict[str, Any], ekey: str, partition: int, offset: int, prior: Any, config: Config
) -> None:
    seen = dict(store.get("seen") or {})
    seen[ekey] = [partition, offset, prior]
    if len(seen) > config.max_seen:
        for old in list(seen)[: len(seen) - config.max_seen]:
            del seen[old]
    store["seen"] = seen


def _synthetic(provider: str, message_id: str, provider_id: str, at: float, sha: str) -> Any:
    """The envelope an event made from stored state is built with (no raw report)."""
    return RawEnvelope(
        provider=provider,
        message_id=message_id,
        provider_message_id=provider_id,
        received_at=at,
        method="",
        url="",
        headers={},
        content_type="",
        body="",
        body_encoding="utf-8",
        body_sha256=sha,
        payload={},
        key_id="",
    )


def _state_event(
    env: RawEnvelope,
    eid: str,
    decision: Decision,
    state: State,
    fields: list[Any] | None,
    now: float,
    *,
    ts: float | None = None,
    seq: int | None = None,
) -> CanonicalEvent:
    """A canonical event that says `state` with stored status fields (no report object)."""
    reason, status, code, text, mapped = fields or [None, "", None, None, True]
    norm_like = _Said(
        state=state,
        failure_reason=None if reason is None else FailureReason(reason),
        provider_status=status,
        provider_error_code=code,
        provider_error_text=text,
        mapped=bool(mapped),
        provider_timestamp=None if ts is None else datetime.fromtimestamp(ts, UTC),
        sequence=seq,
    )
    return _event(env, norm_like, eid, decision, now)  # type: ignore[arg-type]


class _Said:
    """The attributes of a `Normalized` that `transforms._event` reads."""

    __slots__ = (
        "failure_reason",
        "mapped",
        "provider_error_code",
        "provider_error_text",
        "provider_status",
        "provider_timestamp",
        "recipient",
        "sender",
        "sequence",
        "state",
    )

    def __init__(self, **values: Any) -> None:
        self.recipient = None
        self.sender = None
        for name, value in values.items():
            setattr(self, name, value)


def _registration(
    record: dict[str, Any],
    value: bytes,
    key: bytes | None,
    stored: Mapping[str, Any] | None,
    partition: int,
    offset: int,
    now: float,
    config: Config,
) -> Outcome:
    message_id = record["message_id"]
    digest = record["digest"]
    where = _sends_offset(offset)
    ekey = event_key_of(_REG, message_id)
    if stored and stored.get("g") is not None:
        if stored["g"] != digest:
            return _dead_send(
                "registration_conflict",
                f"{message_id} is already registered with other content; the first stays",
                value,
                key,
                partition,
                offset,
                config,
            )
        seen, prior = _seen_before(stored, ekey, partition, where)
        if not seen or prior is _DUPLICATE:
            return Outcome("duplicate")
        out = Outcome("redelivery")
        _registration_event(out, record, prior or {}, now)
        return out
    store: dict[str, Any] = dict(stored or {})
    before = {"st": store.get("st"), "r": store.get("r")}
    store["j"], store["g"], store["at"] = joined_info(record), digest, now
    _remember(store, ekey, partition, where, before, config)
    parts = record.get("parts")
    if parts:
        provider_id = message_id.partition(":")[2]
        own = parts.index(provider_id) if provider_id in parts else -1
        multipart = dict(store.get("m") or {"p": {}})
        multipart["n"], multipart["own"] = len(parts), own
        known = dict(multipart["p"])
        if before["st"] is not None and own >= 0 and str(own) not in known:
            # what the message's own id reported so far was its part `own`
            known[str(own)] = {"st": before["st"], "r": before["r"], "id": provider_id}
        multipart["p"] = known
        multipart["ids"] = list(parts)
        store["m"] = multipart
    out = Outcome("new", store=store)
    decision = _registration_event(out, record, before, now)
    if decision is not None:
        store["st"] = decision.after.to_dict()
    return out


def event_key_of(kind: str, *parts: str) -> str:
    """An event key for what is not a provider report (same form as `dedupe.event_key`)."""
    basis = "|".join((kind, *parts))
    return hashlib.blake2b(basis.encode(), digest_size=12).hexdigest()


def _registration_event(
    out: Outcome, record: Mapping[str, Any], before: Mapping[str, Any], now: float
) -> Decision | None:
    """After reports: one `enriched` event with what the registration adds (if anything)."""
    prior_dict = before.get("st")
    if prior_dict is None:
        return None
    prior = MessageState.from_dict(prior_dict)
    decision = decide(prior, Report(prior.state, None, None, False, joined_info(record)))
    if decision.transition is None:
        return None
    decision = Decision("enriched", decision.previous, decision.current, decision.after)
    message_id = record["message_id"]
    provider, _, provider_id = message_id.partition(":")
    at = datetime.fromisoformat(record["registered_at"]).timestamp()
    env = _synthetic(provider, message_id, provider_id, at, record["digest"])
    eid = event_id(message_id, event_key_of(_REG, message_id))
    event = _state_event(env, eid, decision, prior.state, before.get("r"), now)
    out.event = event
    out.status.append((message_id.encode(), event.to_json()))
    return decision


def _link(record: dict[str, Any], key: bytes | None, stored: Mapping[str, Any] | None) -> Outcome:
    """A part learns its message; what it reported so far is forwarded as its state."""
    link = [record["message_id"], record["index"], record["parts"], record["own"]]
    if stored and stored.get("l") == link:
        return Outcome("duplicate")
    store = dict(stored or {})
    store["l"] = link
    out = Outcome("new", store=store)
    if stored and stored.get("st") is not None:
        value = {
            "type": PART_STATE,
            "v": 1,
            "message_id": link[0],
            "part_id": (key or b"").decode(),
            "index": link[1],
            "parts": link[2],
            "own": link[3],
            "st": stored["st"],
            "r": stored.get("r"),
            "seen": sorted(stored.get("seen") or ()),
            "at": stored.get("at"),
        }
        out.forward.append((link[0].encode(), orjson.dumps(value)))
    return out


# -- folding parts --------------------------------------------------------------------------


def part_order(state: State, ts: float | None, seq: int | None) -> tuple[Any, ...]:
    """The state machine's order of a state: a report advances a message only to a greater
    one (rank; among finals `final_key`). An unreported part counts as `accepted`."""
    if is_final(state):
        return (RANK[state], *final_key(state, ts, seq))
    return (RANK[state], 0, 0, 0.0, 0)


_UNREPORTED = part_order(State.ACCEPTED, None, None)


def _fold(multipart: Mapping[str, Any]) -> tuple[MessageState, Mapping[str, Any] | None]:
    """The least advanced part: (its state, its stored entry or None when unreported)."""
    parts = multipart["p"]
    lowest: tuple[Any, ...] | None = None
    found: tuple[MessageState, Mapping[str, Any] | None] = (MessageState(State.ACCEPTED), None)
    for index in range(multipart["n"]):
        part = parts.get(str(index))
        if part is None:
            order, candidate = _UNREPORTED, (MessageState(State.ACCEPTED), None)
        else:
            st = MessageState.from_dict(part["st"])
            order, candidate = part_order(st.state, st.ts, st.seq), (st, part)
        if lowest is None or order < lowest:
            lowest, found = order, candidate
    return found


def _part_receipt(
    record: dict[str, Any],
    key: bytes | None,
    stored: Mapping[str, Any] | None,
    partition: int,
    offset: int,
    now: float,
    config: Config,
) -> Outcome:
    raw = record["envelope"].encode()
    got = read(raw, key, partition, offset, config)
    if isinstance(got, Outcome):
        return got
    env, norm = got
    store = _with_parts(stored, record)
    where = _sends_offset(offset)
    return _part(
        record["message_id"], env, norm, raw, record["index"], store, partition, where, now, config
    )


def _with_parts(stored: Mapping[str, Any] | None, record: Mapping[str, Any]) -> dict[str, Any]:
    """The message's record with its parts known (a forwarded part may come first)."""
    store = dict(stored or {})
    if "m" not in store:
        store["m"] = {"n": record["parts"], "own": record["own"], "p": {}}
    return store


def _part(
    message_id: str,
    env: RawEnvelope,
    norm: Any,
    raw: bytes,
    index: int,
    stored: Mapping[str, Any],
    partition: int,
    offset: int,
    now: float,
    config: Config,
) -> Outcome:
    """A report of part `index`: the part's state machine, then the message's fold."""
    ekey = event_key(env, norm)
    seen, prior = _seen_before(stored, ekey, partition, offset)
    if seen and prior is _DUPLICATE:
        return Outcome("duplicate")
    base: Mapping[str, Any] = prior if seen else stored
    fields = [
        None if norm.failure_reason is None else str(norm.failure_reason),
        norm.provider_status,
        norm.provider_error_code,
        norm.provider_error_text,
        norm.mapped,
    ]
    return _apply_part(
        message_id,
        base,
        stored,
        index,
        _report(norm, _info(env, norm, base.get("j"))),
        _From(env, norm, raw, fields),
        ekey,
        seen,
        partition,
        offset,
        now,
        config,
    )


class _From:
    """Where a part's new state came from: a report (`norm`) or a forwarded state."""

    __slots__ = ("env", "fields", "norm", "raw")

    def __init__(self, env: RawEnvelope, norm: Any, raw: bytes, fields: list[Any] | None) -> None:
        self.env, self.norm, self.raw, self.fields = env, norm, raw, fields


def _part_state(
    record: dict[str, Any],
    key: bytes | None,
    stored: Mapping[str, Any] | None,
    partition: int,
    offset: int,
    now: float,
    config: Config,
) -> Outcome:
    """What a part reported before its link, as one state folded into its message."""
    where = _sends_offset(offset)
    state_json = orjson.dumps(record["st"], option=orjson.OPT_SORT_KEYS).decode()
    ekey = event_key_of(PART_STATE, record["part_id"], state_json)
    seen, prior = _seen_before(stored, ekey, partition, where)
    if seen and prior is _DUPLICATE:
        return Outcome("duplicate")
    store = _with_parts(stored, record)
    message_id = record["message_id"]
    provider, _, provider_id = record["part_id"].partition(":")
    st = MessageState.from_dict(record["st"])
    at = float(record.get("at") or now)
    sha = hashlib.sha256(state_json.encode()).hexdigest()
    env = _synthetic(provider, message_id, provider_id, at, sha)
    base: Mapping[str, Any] = prior if seen else store
    out = _apply_part(
        message_id,
        base,
        store,
        record["index"],
        Report(st.state, st.ts, st.seq, st.final_hint, st.info),
        _From(env, None, b"", record.get("r")),
        ekey,
        seen,
        partition,
        where,
        now,
        config,
    )
    if out.store is not None:
        # the part's own event keys: a provider retry of those, forwarded now, is a duplicate
        keys = dict(out.store.get("seen") or {})
        for part_key in record.get("seen") or ():
            keys.setdefault(part_key, [partition, where, None])
        out.store["seen"] = keys
    return out


def _apply_part(
    message_id: str,
    base: Mapping[str, Any],
    stored: Mapping[str, Any],
    index: int,
    report: Report,
    source: _From,
    ekey: str,
    redelivery: bool,
    partition: int,
    offset: int,
    now: float,
    config: Config,
) -> Outcome:
    """Part `index` gets `report`; the message takes its least advanced part's state.

    `base` is the record the decision starts from: the stored one, or on a redelivery
    the one stored before this record was first processed (so the same events come out).
    """
    multipart = dict(base.get("m") or stored["m"])
    parts = dict(multipart["p"])
    prior_part = parts.get(str(index))
    part_state = MessageState.from_dict(prior_part["st"]) if prior_part else None
    part_decision = decide(part_state, report)
    env = source.env
    own_report = report.state == part_decision.current
    parts[str(index)] = {
        "st": part_decision.after.to_dict(),
        "r": source.fields if own_report else (prior_part or {}).get("r"),
        "id": env.provider_message_id,
    }
    multipart["p"] = parts
    message_prior_dict = base.get("st")
    message_prior = MessageState.from_dict(message_prior_dict) if message_prior_dict else None
    lowest, lowest_entry = _fold(multipart)
    decision = decide(
        message_prior, Report(lowest.state, lowest.ts, lowest.seq, False, dict(report.info))
    )
    out = Outcome("redelivery" if redelivery else "new")
    if not redelivery:
        store = dict(stored)
        store["m"] = multipart
        store["st"] = decision.after.to_dict()
        store["at"] = now
        if lowest_entry is not None and decision.current == lowest.state:
            store["r"] = lowest_entry.get("r")
        _remember(store, ekey, partition, offset, _snapshot(base), config)
        out.store = store
    if part_decision.transition is None and decision.transition is None:
        return out
    advanced = decision.transition == "advanced"
    said_here = report.state == decision.current
    if advanced and said_here:
        transition = "advanced"
    elif part_decision.transition in ("advanced", "enriched") or decision.transition:
        transition = "enriched"
    else:
        transition = "stale"
    shown = Decision(transition, decision.previous, decision.current, decision.after)  # type: ignore[arg-type]
    moved = replace(env, message_id=message_id)
    eid = event_id(message_id, ekey)
    act = base.get("a")  # the message's action decision before this record
    if source.norm is not None:
        event = _event(moved, source.norm, eid, shown, now)
        act = _outputs(out, moved, event, source.raw, config, act, now) or act
    else:
        said = _state_event(
            moved, eid, shown, report.state, source.fields, now, ts=report.ts, seq=report.seq
        )
        out.event = said
        out.status.append((message_id.encode(), said.to_json()))
    if advanced and not said_here:
        fold_id = (lowest_entry or {}).get("id") or message_id.partition(":")[2]
        fold_env = replace(moved, provider_message_id=fold_id)
        order = part_order(lowest.state, lowest.ts, lowest.seq)
        fold_eid = event_id(message_id, event_key_of("fold", repr(order)))
        fields = (lowest_entry or {}).get("r")
        fold = _state_event(
            fold_env, fold_eid, decision, lowest.state, fields, now, ts=lowest.ts, seq=lowest.seq
        )
        if source.norm is not None:  # every part goes to the same person
            fold = replace(fold, recipient=source.norm.recipient, sender=source.norm.sender)
        _outputs(out, fold_env, fold, source.raw, config, act, now)
    return out


def _snapshot(record: Mapping[str, Any]) -> dict[str, Any]:
    """What a redelivery needs to decide again: the record before (without `seen`)."""
    return {k: v for k, v in record.items() if k != "seen"}
