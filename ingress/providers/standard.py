"""Standard Webhooks (also Svix) senders posting delivery receipts.

    webhook-id:        <message id, stable across retries; no '.'>
    webhook-timestamp: <unix seconds>
    webhook-signature: v1,<base64 HMAC-SHA256> [v1a,<base64 Ed25519> ...]   (space-delimited)

Both sign "{webhook-id}.{webhook-timestamp}.{raw body}". `v1` uses a symmetric secret
(`whsec_` + base64 of the key bytes; a bare base64 secret is accepted too), `v1a` an
Ed25519 key pair (public key `whpk_` + base64, or bare base64). Svix sends the same headers
as `svix-id`, `svix-timestamp`, `svix-signature`; they are used when `webhook-id` is absent.
Several signatures in one header and several configured secrets/keys allow rotation.
`webhook-id` is both the replay key and the records' event id.

The delivery-receipt body a Standard Webhooks sender posts (our contract):

    {"type": "message.status",
     "timestamp": "<ISO-8601 time of the event>",
     "data": {"message_id": "...", "to": "+1…", "from": "+1…|ACME",
              "status": "<generic vocabulary: accepted|queued|sent|delivered|undelivered|
                          failed|rejected|expired|unknown …>",
              "error_code": "<generic code: invalid_number|unreachable|carrier_filtered|
                              opted_out|blocked_content|expired|insufficient_funds|
                              provider_error>" | null,
              "error": "<text>" | null,
              "timestamp": "<ISO-8601 provider status time>",
              optional: carrier, mcc, mnc, country, segments, price, currency, sequence,
                        campaign, tenant, client_ref}}

Other event types are acknowledged and yield no record.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets as _secrets
from collections.abc import Mapping
from typing import Any

import orjson
from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import SigningKey, VerifyKey

from ingress.errors import (
    BadSignature,
    InvalidPayload,
    MalformedPayload,
    MissingHeader,
    NoCredentials,
    StaleTimestamp,
)
from ingress.providers._common import check_window, equal, key_id
from ingress.providers._contract import (
    Credentials,
    InboundRequest,
    Record,
    Verified,
    VerifyContext,
)

NAME = "standard"
METHODS = frozenset({"POST"})
CONTENT_TYPES = frozenset({"application/json"})

EVENT_TYPE = "message.status"
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
PUBLIC_PREFIX = "whpk_"
PRIVATE_PREFIX = "whsk_"
#: Header families in the order they are looked for.
_FAMILIES = ("webhook", "svix")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_MAX_ID = 200


def _b64(value: str) -> bytes | None:
    raw = value.strip()
    try:
        return base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _key(value: str, prefix: str) -> bytes | None:
    """Key bytes of a `whsec_`/`whpk_`/`whsk_` value, or of a bare base64 one."""
    raw = value.strip()
    return _b64(raw.removeprefix(prefix))


def _signed(msg_id: str, timestamp: str, body: bytes) -> bytes:
    return msg_id.encode() + b"." + timestamp.encode() + b"." + body


def _headers(headers: Mapping[str, str]) -> tuple[str, str, str]:
    """(id, timestamp, signature) from the first header family that has an id."""
    family = next((f for f in _FAMILIES if headers.get(f"{f}-id")), _FAMILIES[0])
    values = []
    for name in ("id", "timestamp", "signature"):
        value = headers.get(f"{family}-{name}", "").strip()
        if not value:
            raise MissingHeader(f"missing header {family}-{name}")
        values.append(value)
    return values[0], values[1], values[2]


def _candidates(header: str) -> list[tuple[str, bytes]]:
    out = []
    for item in header.split():
        version, sep, value = item.partition(",")
        raw = _b64(value) if sep else None
        if raw is not None:
            out.append((version, raw))
    return out


async def verify(
    request: InboundRequest, credentials: Credentials, context: VerifyContext
) -> Verified:
    """Timestamp window, then any v1 (HMAC) or v1a (Ed25519) signature with any key."""
    if not (credentials.secrets or credentials.public_keys):
        raise NoCredentials("no secret or public key configured for provider standard")
    msg_id, timestamp, header = _headers(request.headers)
    if not _TIMESTAMP.fullmatch(timestamp):
        raise StaleTimestamp("webhook-timestamp is not integer unix seconds")
    signed_at = check_window(timestamp, context.now, context.window)
    if "." in msg_id or len(msg_id) > _MAX_ID:
        raise BadSignature("webhook-id must not contain '.' (at most 200 characters)")
    candidates = _candidates(header)
    message = _signed(msg_id, timestamp, request.body)
    v1 = [sig for version, sig in candidates if version == "v1"]
    v1a = [sig for version, sig in candidates if version == "v1a" and len(sig) == 64]
    if v1:
        for secret in credentials.secrets:
            key = _key(secret, SECRET_PREFIX)
            if not key:
                continue  # a misconfigured secret can never verify anything
            expected = hmac.new(key, message, hashlib.sha256).digest()
            if any(equal(expected, candidate) for candidate in v1):
                return Verified(key_id=key_id(secret), replay_key=msg_id, signed_at=signed_at)
    for public_key in credentials.public_keys if v1a else ():
        raw = _key(public_key, PUBLIC_PREFIX)
        if raw is None or len(raw) != 32:
            continue
        for candidate in v1a:
            try:
                VerifyKey(raw).verify(message, candidate)
            except (BadSignatureError, CryptoError, ValueError):
                continue
            return Verified(key_id=key_id(public_key), replay_key=msg_id, signed_at=signed_at)
    raise BadSignature("no v1/v1a signature matches an active secret or key")


def extract(request: InboundRequest) -> list[Record]:
    """One record per `message.status` event, keyed by `data.message_id`."""
    try:
        parsed: Any = orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        raise MalformedPayload("body is not valid JSON") from exc
    if not isinstance(parsed, dict):
        raise MalformedPayload("body must be a JSON object")
    event_type = parsed.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise InvalidPayload("type is required")
    if event_type != EVENT_TYPE:
        return []
    data = parsed.get("data")
    if not isinstance(data, dict):
        raise InvalidPayload("data is required and must be an object")
    message_id = data.get("message_id")
    status = data.get("status")
    if not isinstance(message_id, str) or not message_id.strip():
        raise InvalidPayload("data.message_id is required and must be a non-empty string")
    if len(message_id) > _MAX_ID:
        raise InvalidPayload(f"data.message_id longer than {_MAX_ID} characters")
    if not isinstance(status, str) or not status:
        raise InvalidPayload("data.status is required and must be a string")
    event_id = next(
        (request.headers[f"{f}-id"].strip() for f in _FAMILIES if request.headers.get(f"{f}-id")),
        None,
    )
    payload = {**data, "type": event_type, "event_timestamp": parsed.get("timestamp")}
    return [
        Record(
            provider_message_id=message_id,
            message_key=message_id,
            payload=payload,
            event_id=event_id,
        )
    ]


def _ed25519_seed(key: str) -> bytes | None:
    raw = _key(key, PRIVATE_PREFIX)
    if raw is None or len(raw) not in (32, 64):
        return None
    return raw[:32]


def signature(key: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """`v1,<b64>` for a `whsec_` secret, `v1a,<b64>` for a `whsk_` private key."""
    message = _signed(msg_id, timestamp, body)
    if key.startswith(PRIVATE_PREFIX):
        seed = _ed25519_seed(key)
        if seed is None:
            raise ValueError("whsk_ key must be base64 of a 32-byte Ed25519 seed")
        signed = SigningKey(seed).sign(message).signature
        return "v1a," + base64.b64encode(bytes(signed)).decode()
    secret = _key(key, SECRET_PREFIX)
    if not secret:
        raise ValueError("secret must be whsec_ + base64 (or bare base64)")
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign(request: InboundRequest, key: str, now: int) -> InboundRequest:
    """Sign as a Standard Webhooks sender would; keeps a `webhook-id` already present."""
    headers = dict(request.headers)
    msg_id = headers.get("webhook-id") or "msg_" + hashlib.sha256(request.body).hexdigest()[:27]
    timestamp = str(now)
    headers["webhook-id"] = msg_id
    headers["webhook-timestamp"] = timestamp
    headers["webhook-signature"] = signature(key, msg_id, timestamp, request.body)
    return request.with_(headers=headers)


def dev_credentials() -> tuple[Credentials, str]:
    """A fresh `whsec_` secret (32 random bytes): (credentials, the same secret to sign)."""
    secret = SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(32)).decode()
    return Credentials(secrets=(secret,)), secret
