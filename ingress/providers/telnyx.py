"""Telnyx Messaging API v2 webhooks: Ed25519-signed JSON events.

    telnyx-timestamp: <unix seconds>
    telnyx-signature-ed25519: base64(Ed25519(private key, "{timestamp}|{raw body}"))

The public key (base64, 32 bytes) comes from the Telnyx portal; several configured keys
allow a rotation. The timestamp must be within the replay window in both directions
(Telnyx's own SDK uses 300 s). Body: `{"data": {"event_type", "id", "occurred_at",
"payload": {"id", "to": [{"phone_number", "status", ...}], "errors": [...], ...}},
"meta": {"attempt", "delivered_to"}}`. `data.id` identifies the event across Telnyx's
retries, so it is both the replay key and the record's event id. An inbound message
(`message.received`, `direction: inbound`) carries no delivery status: it becomes an
`Inbound` record (`from.phone_number`, `to[0].phone_number`, `text`, `received_at`) that
the ingress keeps only when it is an opt-out keyword.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import SigningKey, VerifyKey

from ingress.errors import BadSignature, InvalidPayload, MalformedPayload, NoCredentials
from ingress.providers._common import check_window, key_id, require
from ingress.providers._contract import (
    Credentials,
    Inbound,
    InboundRequest,
    Record,
    Verified,
    VerifyContext,
)

NAME = "telnyx"
METHODS = frozenset({"POST"})
CONTENT_TYPES = frozenset({"application/json"})

SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"

#: Events that report on a message we sent; anything inbound is not a receipt.
_INBOUND_EVENTS = frozenset({"message.received"})
_MAX_ID = 200


def _b64(value: str) -> bytes | None:
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def _signed_bytes(timestamp: str, body: bytes) -> bytes:
    return timestamp.encode() + b"|" + body


def _event_id(request: InboundRequest) -> str | None:
    """`data.id` when the (already verified) body has one; verification never needs it."""
    try:
        parsed: Any = request.json()
    except orjson.JSONDecodeError:
        return None
    data = parsed.get("data") if isinstance(parsed, dict) else None
    event_id = data.get("id") if isinstance(data, dict) else None
    if isinstance(event_id, str) and event_id and len(event_id) <= _MAX_ID:
        return event_id
    return None


async def verify(
    request: InboundRequest, credentials: Credentials, context: VerifyContext
) -> Verified:
    """Check the timestamp window, then the Ed25519 signature against any active key."""
    if not credentials.public_keys:
        raise NoCredentials("no public key configured for provider telnyx")
    signature_b64 = require(request.headers, SIGNATURE_HEADER)
    timestamp = require(request.headers, TIMESTAMP_HEADER).strip()
    signed_at = check_window(timestamp, context.now, context.window)
    signature = _b64(signature_b64)
    if signature is None or len(signature) != 64:
        raise BadSignature("signature is not base64 of 64 bytes")
    message = _signed_bytes(timestamp, request.body)
    for public_key in credentials.public_keys:
        raw = _b64(public_key)
        if raw is None or len(raw) != 32:
            continue  # a misconfigured key can never verify anything
        try:
            VerifyKey(raw).verify(message, signature)
        except (BadSignatureError, CryptoError, ValueError):
            continue
        replay_key = _event_id(request) or signature_b64.strip()
        return Verified(key_id=key_id(public_key), replay_key=replay_key, signed_at=signed_at)
    raise BadSignature("no active public key verifies the signature")


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _errors(payload: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    errors = payload.get("errors")
    if isinstance(errors, list):
        for error in errors:
            if isinstance(error, dict):
                out.append(
                    {
                        "code": error.get("code"),
                        "title": error.get("title"),
                        "detail": error.get("detail"),
                    }
                )
    return out


def _inbound(data: dict[str, Any], payload: dict[str, Any]) -> list[Record]:
    """A person's message to one of our numbers (only its opt-out keyword matters)."""
    sender = payload.get("from")
    number = _text(sender.get("phone_number")) if isinstance(sender, dict) else None
    message_id = _text(payload.get("id"))
    if number is None or message_id is None or len(message_id) > _MAX_ID:
        return []  # nothing to act on (no person, or no id to deduplicate by)
    recipients = payload.get("to")
    first = recipients[0] if isinstance(recipients, list) and recipients else None
    text = payload.get("text")
    inbound = Inbound(
        number=number,
        to=_text(first.get("phone_number")) if isinstance(first, dict) else None,
        text=text if isinstance(text, str) else None,
        timestamp=_text(payload.get("received_at")) or _text(data.get("occurred_at")),
    )
    event_id = _text(data.get("id"))
    return [
        Record(
            provider_message_id=message_id,
            message_key=message_id,
            payload={},
            event_id=event_id if event_id and len(event_id) <= _MAX_ID else None,
            inbound=inbound,
        )
    ]


def extract(request: InboundRequest) -> list[Record]:
    """One record per `to[]` entry; the key gains `:<phone>` only for group messages."""
    try:
        parsed: Any = request.json()
    except orjson.JSONDecodeError as exc:
        raise MalformedPayload("body is not valid JSON") from exc
    if not isinstance(parsed, dict):
        raise MalformedPayload("body must be a JSON object")
    data = parsed.get("data")
    if not isinstance(data, dict):
        raise InvalidPayload("data is required and must be an object")
    event_type = _text(data.get("event_type"))
    payload = data.get("payload")
    if not isinstance(payload, dict):
        raise InvalidPayload("data.payload is required and must be an object")
    if event_type in _INBOUND_EVENTS or payload.get("direction") == "inbound":
        return _inbound(data, payload)
    message_id = payload.get("id")
    if not isinstance(message_id, str) or not message_id.strip():
        raise InvalidPayload("data.payload.id is required and must be a non-empty string")
    if len(message_id) > _MAX_ID:
        raise InvalidPayload("data.payload.id longer than 200 characters")
    recipients = payload.get("to")
    if not isinstance(recipients, list) or not recipients:
        raise InvalidPayload("data.payload.to must be a non-empty list")
    event_id = _text(data.get("id"))
    if event_id is not None and len(event_id) > _MAX_ID:
        raise InvalidPayload("data.id longer than 200 characters")
    meta = parsed.get("meta")
    sender = payload.get("from")
    cost = payload.get("cost")
    tags = payload.get("tags")
    common: dict[str, Any] = {
        "event_type": event_type,
        "event_id": event_id,
        "occurred_at": data.get("occurred_at"),
        "attempt": meta.get("attempt") if isinstance(meta, dict) else None,
        "message_id": message_id,
        "type": payload.get("type"),
        "direction": payload.get("direction"),
        "from": sender.get("phone_number") if isinstance(sender, dict) else None,
        "from_carrier": sender.get("carrier") if isinstance(sender, dict) else None,
        "parts": payload.get("parts"),
        "cost_amount": cost.get("amount") if isinstance(cost, dict) else None,
        "cost_currency": cost.get("currency") if isinstance(cost, dict) else None,
        "errors": _errors(payload),
        "sent_at": payload.get("sent_at"),
        "completed_at": payload.get("completed_at"),
        "valid_until": payload.get("valid_until"),
        "messaging_profile_id": payload.get("messaging_profile_id"),
        "tcr_campaign_id": payload.get("tcr_campaign_id"),
        "tags": [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else [],
        "recipients": len(recipients),
    }
    group = len(recipients) > 1
    records = []
    for entry in recipients:
        if not isinstance(entry, dict):
            raise InvalidPayload("data.payload.to[] entries must be objects")
        status = entry.get("status")
        if not isinstance(status, str) or not status:
            raise InvalidPayload("data.payload.to[].status is required")
        phone = _text(entry.get("phone_number"))
        if group and phone is None:
            raise InvalidPayload("data.payload.to[].phone_number is required for groups")
        item = dict(common)
        item.update(
            {
                "to": phone,
                "status": status,
                "carrier": entry.get("carrier"),
                "line_type": entry.get("line_type"),
            }
        )
        records.append(
            Record(
                provider_message_id=message_id,
                message_key=f"{message_id}:{phone}" if group else message_id,
                payload=item,
                event_id=event_id,
            )
        )
    return records


def sign(request: InboundRequest, key: str, now: int) -> InboundRequest:
    """Sign as Telnyx does; `key` is the base64 32-byte Ed25519 seed (private key)."""
    seed = _b64(key)
    if seed is None or len(seed) != 32:
        raise ValueError("telnyx signing key must be base64 of a 32-byte Ed25519 seed")
    timestamp = str(now)
    signed = SigningKey(seed).sign(_signed_bytes(timestamp, request.body))
    headers = dict(request.headers)
    headers[TIMESTAMP_HEADER] = timestamp
    headers[SIGNATURE_HEADER] = base64.b64encode(bytes(signed.signature)).decode()
    return request.with_(headers=headers)


def dev_credentials() -> tuple[Credentials, str]:
    """A fresh local key pair: (public key to verify with, base64 seed to sign with)."""
    signing = SigningKey.generate()
    public = base64.b64encode(bytes(signing.verify_key)).decode()
    seed = base64.b64encode(bytes(signing)).decode()
    return Credentials(public_keys=(public,)), seed
