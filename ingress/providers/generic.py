"""Generic JSON webhooks: one flat JSON object per report, HMAC-SHA256 signed.

    X-Webhook-Timestamp: <unix seconds>
    X-Webhook-Signature: v1=<hex HMAC-SHA256(secret, "{timestamp}.{raw body}")>[,v1=<hex> ...]

Several `v1=` values (comma or space separated) allow the sender to rotate secrets.
Body: {"message_id", "to", "from", "status", "provider_status_code", "error", "timestamp"}
plus optional `carrier`, `mcc`, `mnc`, `country`, `campaign`, `tenant`, `segments`,
`price`, `currency`, `sequence`, `event_id`.

An inbound message (a person wrote to us) is `{"type": "inbound", "message_id", "from"
(the person), "to" (our number), "text", "timestamp"}` (optional `opt_out_type`: STOP,
START or HELP when the sender classified it already); the ingress keeps it only when it
is an opt-out keyword.
"""

from __future__ import annotations

from typing import Any

import orjson

from ingress.errors import BadSignature, InvalidPayload, MalformedPayload, NoCredentials
from ingress.providers._common import (
    check_window,
    equal,
    hmac_digest,
    key_id,
    random_secret,
    require,
)
from ingress.providers._contract import (
    Credentials,
    Inbound,
    InboundRequest,
    Record,
    Verified,
    VerifyContext,
)

NAME = "generic"
METHODS = frozenset({"POST"})
CONTENT_TYPES = frozenset({"application/json"})


def _digest(secret: str, timestamp: str, body: bytes) -> str:
    return hmac_digest(secret, timestamp.encode() + b"." + body).hex()


async def verify(
    request: InboundRequest, credentials: Credentials, context: VerifyContext
) -> Verified:
    """Check the timestamp window, then any `v1=` signature against any active secret."""
    if not credentials.secrets:
        raise NoCredentials("no secret configured for provider generic")
    timestamp = require(request.headers, "x-webhook-timestamp")
    header = require(request.headers, "x-webhook-signature")
    signed_at = check_window(timestamp, context.now, context.window)
    # str methods, not a regex: this runs once per webhook.
    candidates = [c[3:] for c in header.replace(",", " ").split() if c.startswith("v1=")]
    for secret in credentials.secrets:
        expected = _digest(secret, timestamp, request.body)
        for candidate in candidates:
            if equal(expected, candidate.lower()):
                return Verified(key_id=key_id(secret), replay_key=expected, signed_at=signed_at)
    raise BadSignature("no v1 signature matches an active secret")


def extract(request: InboundRequest) -> list[Record]:
    """One record per request, keyed by `message_id`."""
    try:
        payload: Any = request.json()
    except orjson.JSONDecodeError as exc:
        raise MalformedPayload("body is not valid JSON") from exc
    if not isinstance(payload, dict):
        raise MalformedPayload("body must be a JSON object")
    message_id = payload.get("message_id")
    status = payload.get("status")
    if not isinstance(message_id, str) or not message_id.strip():
        raise InvalidPayload("message_id is required and must be a non-empty string")
    if payload.get("type") == "inbound":
        return _inbound(message_id, payload)
    if not isinstance(status, str) or not status:
        raise InvalidPayload("status is required and must be a string")
    if len(message_id) > 200:
        raise InvalidPayload("message_id longer than 200 characters")
    event_id = payload.get("event_id")
    return [
        Record(
            provider_message_id=message_id,
            message_key=message_id,
            payload=payload,
            event_id=event_id if isinstance(event_id, str) and event_id else None,
        )
    ]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _inbound(message_id: str, payload: dict[str, Any]) -> list[Record]:
    number = _text(payload.get("from"))
    if number is None:
        raise InvalidPayload("from is required in an inbound message")
    if len(message_id) > 200:
        raise InvalidPayload("message_id longer than 200 characters")
    inbound = Inbound(
        number=number,
        to=_text(payload.get("to")),
        text=_text(payload.get("text")),
        hint=_text(payload.get("opt_out_type")),
        timestamp=_text(payload.get("timestamp")),
    )
    event_id = _text(payload.get("event_id"))
    return [
        Record(
            provider_message_id=message_id,
            message_key=message_id,
            payload={},
            event_id=event_id,
            inbound=inbound,
        )
    ]


def sign(request: InboundRequest, key: str, now: int) -> InboundRequest:
    """Sign as a generic sender would (tests, `dlr demo`, the README's curl)."""
    timestamp = str(now)
    headers = dict(request.headers)
    headers["x-webhook-timestamp"] = timestamp
    headers["x-webhook-signature"] = "v1=" + _digest(key, timestamp, request.body)
    return request.with_(headers=headers)


def dev_credentials() -> tuple[Credentials, str]:
    """A fresh local-development secret: (credentials to verify with, key to sign with)."""
    secret = random_secret()
    return Credentials(secrets=(secret,)), secret
