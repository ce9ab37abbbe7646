"""Bandwidth Messaging v2 callbacks: HTTP Basic auth, a JSON array of events.

    Authorization: Basic base64("<user>:<password>")

Bandwidth signs nothing: the Application's callback credentials (`OutboundCallbackCreds`)
are sent as Basic auth, compared here in constant time against every configured pair
(several pairs allow a rotation). Body: `[{"type", "time", "description", "to",
"errorCode", "message": {"id", "owner", "applicationId", "time", "segmentCount",
"direction", "to": [...], "from", "text", "media", "tag", "priority"}}, ...]`, one element
per recipient. Bandwidth has no event id and retries the same callback for 24 hours, so
the replay key is the SHA-256 of the body (the credential is the same on every request
and must never be one). An inbound `message-received` event (`message.from` the person,
`message.text`) is no receipt: an `Inbound` record, kept by the ingress only when it is an
opt-out keyword.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

import orjson

from ingress.errors import BadSignature, InvalidPayload, MalformedPayload, NoCredentials
from ingress.providers._common import equal, key_id, random_secret, require
from ingress.providers._contract import (
    Credentials,
    Inbound,
    InboundRequest,
    Record,
    Verified,
    VerifyContext,
)

NAME = "bandwidth"
METHODS = frozenset({"POST"})
CONTENT_TYPES = frozenset({"application/json"})

AUTH_HEADER = "authorization"
#: Event types that are not delivery receipts.
_INBOUND_TYPES = frozenset({"message-received"})
_MAX_ID = 200


def _basic(header: str) -> tuple[bytes, bytes]:
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        raise BadSignature("authorization is not HTTP Basic")
    try:
        decoded = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadSignature("basic credentials are not base64") from exc
    user, sep, password = decoded.partition(b":")
    if not sep:
        raise BadSignature("basic credentials have no ':'")
    return user, password


async def verify(
    request: InboundRequest, credentials: Credentials, context: VerifyContext
) -> Verified:
    """Compare the Basic credentials with every configured (user, password) pair."""
    if not credentials.basic:
        raise NoCredentials("no callback credentials configured for provider bandwidth")
    user, password = _basic(require(request.headers, AUTH_HEADER))
    for expected_user, expected_password in credentials.basic:
        # Both halves are always compared: no early exit on a matching user name.
        user_ok = equal(user, expected_user.encode())
        password_ok = equal(password, expected_password.encode())
        if user_ok and password_ok:
            replay_key = "sha256:" + hashlib.sha256(request.body).hexdigest()
            return Verified(
                key_id=key_id(f"{expected_user}:{expected_password}"), replay_key=replay_key
            )
    raise BadSignature("basic credentials do not match any configured pair")


def _text(value: object) -> str | None:
    if value is None or isinstance(value, dict | list | bool):
        return None
    result = str(value).strip()
    return result or None


def _record(item: Any) -> Record | None:
    if not isinstance(item, dict):
        raise InvalidPayload("every array element must be an object")
    event_type = _text(item.get("type"))
    if event_type is None:
        raise InvalidPayload("type is required")
    message = item.get("message")
    if not isinstance(message, dict):
        raise InvalidPayload("message is required and must be an object")
    if event_type in _INBOUND_TYPES or message.get("direction") == "in":
        return _inbound(item, message)
    message_id = message.get("id")
    if not isinstance(message_id, str) or not message_id.strip():
        raise InvalidPayload("message.id is required and must be a non-empty string")
    if len(message_id) > _MAX_ID:
        raise InvalidPayload(f"message.id longer than {_MAX_ID} characters")
    recipients = message.get("to")
    count = len(recipients) if isinstance(recipients, list) else 1
    to = _text(item.get("to"))
    if to is None and isinstance(recipients, list) and count == 1:
        to = _text(recipients[0])
    if count > 1 and to is None:
        raise InvalidPayload("to is required for a group message")
    media = message.get("media")
    payload: dict[str, Any] = {
        "type": event_type,
        "time": item.get("time"),
        "description": _text(item.get("description")),
        "to": to,
        "error_code": _text(item.get("errorCode")),
        "message_id": message_id,
        "from": _text(message.get("from")),
        "owner": _text(message.get("owner")),
        "application_id": _text(message.get("applicationId")),
        "message_time": message.get("time"),
        "segment_count": message.get("segmentCount"),
        "direction": _text(message.get("direction")),
        "tag": _text(message.get("tag")),
        "priority": _text(message.get("priority")),
        "recipients": count,
        "media": len(media) if isinstance(media, list) else 0,
    }
    return Record(
        provider_message_id=message_id,
        message_key=f"{message_id}:{to}" if count > 1 else message_id,
        payload=payload,
        body=orjson.dumps(item),
    )


def _inbound(item: dict[str, Any], message: dict[str, Any]) -> Record | None:
    number, message_id = _text(message.get("from")), _text(message.get("id"))
    if number is None or message_id is None or len(message_id) > _MAX_ID:
        return None
    text = message.get("text")
    inbound = Inbound(
        number=number,
        to=_text(item.get("to")),
        text=text if isinstance(text, str) else None,
        timestamp=_text(item.get("time")),
    )
    return Record(
        provider_message_id=message_id,
        message_key=message_id,
        payload={},
        body=orjson.dumps(item),
        inbound=inbound,
    )


def extract(request: InboundRequest) -> list[Record]:
    """One record per array element; group messages are keyed `<id>:<recipient>`."""
    try:
        parsed: Any = orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        raise MalformedPayload("body is not valid JSON") from exc
    if not isinstance(parsed, list):
        raise MalformedPayload("body must be a JSON array")
    if not parsed:
        raise InvalidPayload("body is an empty array")
    return [record for record in map(_record, parsed) if record is not None]


def sign(request: InboundRequest, key: str, now: int) -> InboundRequest:
    """Add the Basic auth header Bandwidth sends; `key` is "user:password"."""
    if ":" not in key:
        raise ValueError("bandwidth key must be 'user:password'")
    headers = dict(request.headers)
    headers[AUTH_HEADER] = "Basic " + base64.b64encode(key.encode()).decode()
    return request.with_(headers=headers)


def dev_credentials() -> tuple[Credentials, str]:
    """A fresh local user/password pair: (credentials, "user:password" to sign with)."""
    user, password = "dlr-dev", random_secret()
    return Credentials(basic=((user, password),)), f"{user}:{password}"
