"""Inbound opt-out keywords (STOP / START / HELP) as suppression entries, as a pure function.

The ingress keeps an inbound message only when it is a keyword (`schemas/optout.py`) and
writes it to `dlr.raw.v1` keyed `inbound:<number hash>` (`schemas/envelope.py`), so one
person's keywords reach one partition, in the order the ingress received them. Here:

- STOP -> a suppression entry (`suppressed`, reason `opted_out`, source `inbound`, the
  keyword and its language) and a `suppress` action;
- START -> an entry that allows the number again (reason `opted_in`) and an
  `unsuppress` action: a START after a STOP re-allows;
- HELP -> a `help` action only (the sender answers who it is and how to stop).

The table record under the key remembers the keywords seen (provider message id ->
the (partition, offset) that first carried it, and the time applied before it) and the
time of the latest keyword applied (the provider's time when it gives one, else ours):
- a provider retry of a keyword already processed (other offset) is dropped, so a STOP
  retried after a START cannot re-suppress;
- the same record again (a redelivery after a crash) emits the same outputs again;
- a keyword older than the latest one applied changes nothing (a late retry of an older
  message).
Actions carry the person's number as `DLR_PII_MODE` says; the suppression entry carries
it in clear (`schemas/suppressions.py` says why), keyed by its hash.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.envelope import RawEnvelope
from schemas.phone import number_hash, protect, protect_sender
from schemas.suppressions import SuppressionEntry
from streams import actions
from streams.transforms import Config, Outcome, _dead

__all__ = ["ACTIONS", "process"]

#: Action type of each keyword.
ACTIONS = {"stop": actions.SUPPRESS, "start": "unsuppress", "help": "help"}
_MAX_SEEN = 64


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _when(value: Any, fallback: float) -> float:
    """The provider's time of the message (ISO 8601 or unix seconds), else ours."""
    if isinstance(value, str) and value:
        try:
            return float(value) if value.replace(".", "", 1).isdigit() else _parse(value)
        except ValueError:
            return fallback
    return fallback


def _parse(value: str) -> float:
    when = datetime.fromisoformat(value.replace(" ", "T", 1) if "T" not in value else value)
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _outputs(out: Outcome, env: RawEnvelope, key: bytes, at: float, config: Config) -> None:
    payload = env.payload
    kind = payload["keyword"]
    number = payload["number"]
    hashed = number_hash(number, config.salt)
    if kind in ("stop", "start"):
        entry = SuppressionEntry(
            number_hash=hashed,
            number=number,
            suppressed=kind == "stop",
            reason="opted_out" if kind == "stop" else "opted_in",
            source="inbound",
            since=_iso(at),
            actor=env.provider,
            provider=env.provider,
            message_id=env.message_id,
            keyword=payload.get("word"),
            language=payload.get("language"),
        )
        out.suppressions.append((entry.key(), entry.to_json()))
    recipient, _ = protect(number, pii_mode=config.pii_mode, salt=config.salt)
    to = payload.get("to")
    if config.pii_mode != "clear":
        to, _ = protect_sender(to, pii_mode=config.pii_mode, salt=config.salt)
    action = ACTIONS[kind]
    body = {
        "type": action,
        "action_id": actions.action_id(env.message_id, action),
        "provider": env.provider,
        "inbound_message_id": env.message_id,
        "keyword": payload.get("word"),
        "language": payload.get("language"),
        "recipient": recipient,
        "to": to,
        "pii_mode": config.pii_mode,
        "at": _iso(at),
    }
    out.actions.append((key, orjson.dumps(body)))


def process(
    raw: bytes,
    key: bytes,
    stored: Mapping[str, Any] | None,
    partition: int,
    offset: int,
    now: float,
    config: Config,
) -> Outcome:
    """One inbound keyword record of `dlr.raw.v1` (see the module doc)."""
    try:
        env = RawEnvelope.from_json(raw)
        if env.payload["keyword"] not in ACTIONS or not env.payload["number"]:
            raise ValueError("not an inbound keyword record")
    except (ValueError, TypeError, KeyError) as exc:
        return _dead(
            "unparseable", f"{type(exc).__name__}: {exc}", raw, key, partition, offset, config
        )
    ekey = env.event_id or env.message_id
    seen: dict[str, Any] = dict((stored or {}).get("seen") or {})
    last = (stored or {}).get("last")
    at = _when(env.payload.get("timestamp"), env.received_at)
    if ekey in seen:
        p, o, last_before = seen[ekey]
        if (p, o) != (partition, offset):
            return Outcome("duplicate")
        out = Outcome("redelivery")
        if last_before is None or at >= last_before:
            _outputs(out, env, key, at, config)
        return out
    seen[ekey] = [partition, offset, last]
    for old in list(seen)[: max(0, len(seen) - _MAX_SEEN)]:
        del seen[old]
    applies = last is None or at >= last
    out = Outcome("new", store={"seen": seen, "last": at if applies else last, "at": now})
    if applies:
        _outputs(out, env, key, at, config)
    return out
