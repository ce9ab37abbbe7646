"""Sinch SMS REST API delivery reports, HMAC-SHA256 signed (service-plan level HMAC).

    x-sinch-webhook-signature-timestamp: <unix seconds>
    x-sinch-webhook-signature-nonce: <opaque nonce>
    x-sinch-webhook-signature: base64(HMAC-SHA256(secret, "{raw body}.{nonce}.{timestamp}"))

This is the scheme of Sinch's SDK (`validate_sinch_event_signature_with_nonce`). The SDK
does not check the timestamp's age; we do (both directions), because otherwise a captured
request could be replayed forever. Several active secrets allow a rotation.

Bodies: a recipient report (`type: recipient_delivery_report_sms|_mms`, one recipient)
or a batch report (`type: delivery_report_sms|_mms`, `statuses[].recipients[]`). Sinch
identifies a batch, not a message, so the key is always `<batch_id>:<recipient>`. A
summary batch report (no `recipients` lists) names no recipient and yields no records;
inbound messages (`mo_text`, `from` the person, `to` our number, `body`) are not
receipts: an `Inbound` record each, kept by the ingress only when it is an opt-out keyword
(other `mo_*` kinds carry no text and yield nothing).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets as _secrets
from typing import Any

import orjson

from ingress.errors import BadSignature, InvalidPayload, MalformedPayload, NoCredentials
from ingress.providers._common import check_window, equal, key_id, random_secret, require
from ingress.providers._contract import (
    Credentials,
    Inbound,
    InboundRequest,
    Record,
    Verified,
    VerifyContext,
)

NAME = "sinch"
METHODS = frozenset({"POST"})
CONTENT_TYPES = frozenset({"application/json"})

SIGNATURE_HEADER = "x-sinch-webhook-signature"
NONCE_HEADER = "x-sinch-webhook-signature-nonce"
TIMESTAMP_HEADER = "x-sinch-webhook-signature-timestamp"

_RECIPIENT_TYPES = frozenset({"recipient_delivery_report_sms", "recipient_delivery_report_mms"})
_BATCH_TYPES = frozenset({"delivery_report_sms", "delivery_report_mms"})
_MAX_ID = 200


def _digest(secret: str, body: bytes, nonce: str, timestamp: str) -> str:
    signed = body + b"." + nonce.encode() + b"." + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()


async def verify(
    request: InboundRequest, credentials: Credentials, context: VerifyContext
) -> Verified:
    """Check the timestamp window, then the HMAC against any active secret."""
    if not credentials.secrets:
        raise NoCredentials("no secret configured for provider sinch")
    signature = require(request.headers, SIGNATURE_HEADER).strip()
    nonce = require(request.headers, NONCE_HEADER)
    timestamp = require(request.headers, TIMESTAMP_HEADER)
    signed_at = check_window(timestamp, context.now, context.window)
    for secret in credentials.secrets:
        expected = _digest(secret, request.body, nonce, timestamp)
        if equal(expected, signature):
            return Verified(key_id=key_id(secret), replay_key=expected, signed_at=signed_at)
    raise BadSignature("signature does not match an active secret")


def _required_text(item: dict[str, Any], name: str) -> str:
    value = item.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidPayload(f"{name} is required and must be a non-empty string")
    if len(value) > _MAX_ID:
        raise InvalidPayload(f"{name} longer than 200 characters")
    return value


def _status(item: dict[str, Any], where: str) -> str:
    status = item.get("status")
    if not isinstance(status, str) or not status:
        raise InvalidPayload(f"{where}status is required and must be a string")
    return status


def _recipient_report(report: dict[str, Any]) -> list[Record]:
    batch_id = _required_text(report, "batch_id")
    recipient = _required_text(report, "recipient")
    _status(report, "")
    return [
        Record(
            provider_message_id=batch_id,
            message_key=f"{batch_id}:{recipient}",
            payload=report,
        )
    ]


def _batch_report(report: dict[str, Any]) -> list[Record]:
    batch_id = _required_text(report, "batch_id")
    statuses = report.get("statuses")
    if not isinstance(statuses, list):
        raise InvalidPayload("statuses is required and must be a list")
    records = []
    for entry in statuses:
        if not isinstance(entry, dict):
            raise InvalidPayload("statuses[] entries must be objects")
        status = _status(entry, "statuses[].")
        recipients = entry.get("recipients")
        if recipients is None:
            continue  # summary report: counts only, no recipient to key by
        if not isinstance(recipients, list):
            raise InvalidPayload("statuses[].recipients must be a list")
        for recipient in recipients:
            if not isinstance(recipient, str) or not recipient.strip():
                raise InvalidPayload("statuses[].recipients[] must be non-empty strings")
            if len(recipient) > _MAX_ID:
                raise InvalidPayload("recipient longer than 200 characters")
            item = {
                "type": report.get("type"),
                "batch_id": batch_id,
                "client_reference": report.get("client_reference"),
                "recipient": recipient,
                "code": entry.get("code"),
                "status": status,
            }
            records.append(
                Record(
                    provider_message_id=batch_id,
                    message_key=f"{batch_id}:{recipient}",
                    payload=item,
                    body=orjson.dumps(item),
                )
            )
    return records


def _inbound(report: dict[str, Any]) -> list[Record]:
    number, message_id, body = report.get("from"), report.get("id"), report.get("body")
    if not isinstance(number, str) or not number or not isinstance(message_id, str):
        return []
    if not message_id or len(message_id) > 200:
        raise InvalidPayload("id of an inbound message must be 1-200 characters")
    to, when = report.get("to"), report.get("received_at")
    inbound = Inbound(
        number=number,
        to=to if isinstance(to, str) else None,
        text=body if isinstance(body, str) else None,
        timestamp=when if isinstance(when, str) else None,
    )
    return [
        Record(provider_message_id=message_id, message_key=message_id, payload={}, inbound=inbound)
    ]


def extract(request: InboundRequest) -> list[Record]:
    """A recipient report gives one record; a batch report one per listed recipient."""
    try:
        report: Any = orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        raise MalformedPayload("body is not valid JSON") from exc
    if not isinstance(report, dict):
        raise MalformedPayload("body must be a JSON object")
    kind = report.get("type")
    if not isinstance(kind, str) or not kind:
        raise InvalidPayload("type is required and must be a string")
    if kind in _RECIPIENT_TYPES:
        return _recipient_report(report)
    if kind in _BATCH_TYPES:
        return _batch_report(report)
    if kind == "mo_text":
        return _inbound(report)
    if kind.startswith("mo_"):
        return []
    raise InvalidPayload(f"type {kind[:40]!r} is not a Sinch delivery report")


def sign(request: InboundRequest, key: str, now: int) -> InboundRequest:
    """Sign as Sinch does, with a fresh nonce."""
    timestamp = str(now)
    nonce = _secrets.token_hex(13)
    headers = dict(request.headers)
    headers[TIMESTAMP_HEADER] = timestamp
    headers[NONCE_HEADER] = nonce
    headers[SIGNATURE_HEADER] = _digest(key, request.body, nonce, timestamp)
    return request.with_(headers=headers)


def dev_credentials() -> tuple[Credentials, str]:
    """A fresh local-development secret: (credentials to verify with, key to sign with)."""
    secret = random_secret()
    return Credentials(secrets=(secret,)), secret
