"""Bird (and legacy MessageBird) SMS status reports: two signing schemes, two body shapes.

Legacy MessageBird SMS API: status reports arrive as GET with query parameters
(`id, reference, recipient, status, statusDatetime, statusReason, statusErrorCode,
price[amount], price[currency], mccmnc, ported, messageLength, messagePartCount`), signed

    MessageBird-Signature-JWT: <JWT, HS256/HS384/HS512 with the account signing key>

with claims `iss` = "MessageBird", `nbf`, `exp` (1 s leeway), `jti`, `url_hash` = hex
SHA-256 of the full raw URL including the query, and `payload_hash` = hex SHA-256 of the
raw body, present if and only if the body is not empty. `alg: none` is refused.

Bird platform (Channels API `sms.outbound` webhooks): POST JSON
`{"service": "channels", "event": "sms.outbound", "payload": {<message>}}`, signed

    messagebird-request-timestamp: <unix seconds>
    messagebird-signature: base64(HMAC-SHA256(signing key,
                                  timestamp "\\n" url "\\n" SHA-256(raw body) as raw bytes))

Both schemes use the same `credentials.secrets` (several allow a rotation). Neither body
carries an event id: the replay key is the JWT `jti` (else its signature) or the HMAC
signature. A legacy message id can cover several recipients, so legacy records are keyed
`<id>:<recipient>`; a platform message is keyed by its id (plus `:<receiver>` only when it
lists several). Both shapes become the same flat record payload (see `_legacy`, `_platform`).

A platform `sms.inbound` event (`direction: incoming`: `sender.contact.identifierValue`
the person, `body.text.text`) is no receipt: an `Inbound` record, kept by the ingress
only when it is an opt-out keyword.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from typing import Any

import jwt
import orjson

from ingress.errors import (
    BadSignature,
    InvalidPayload,
    MalformedPayload,
    MissingHeader,
    NoCredentials,
    StaleTimestamp,
)
from ingress.providers._common import check_window, equal, key_id, random_secret, require
from ingress.providers._contract import (
    Credentials,
    Inbound,
    InboundRequest,
    Record,
    Verified,
    VerifyContext,
)

NAME = "bird"
METHODS = frozenset({"GET", "POST"})
CONTENT_TYPES = frozenset({"application/json"})

JWT_HEADER = "messagebird-signature-jwt"
SIGNATURE_HEADER = "messagebird-signature"
TIMESTAMP_HEADER = "messagebird-request-timestamp"

_ALGORITHMS = ["HS256", "HS384", "HS512"]
_ISSUER = "MessageBird"
#: Clock leeway on `nbf`/`exp`, as MessageBird's own validator.
JWT_LEEWAY = 1.0
#: Lifetime `sign` gives a JWT (what MessageBird issues).
JWT_LIFETIME = 60
_MAX_ID = 200


# -- verification ----------------------------------------------------------------------


def _b64(value: str) -> bytes | None:
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac_digest(secret: str, timestamp: str, url: str, body: bytes) -> bytes:
    message = timestamp.encode() + b"\n" + url.encode() + b"\n" + hashlib.sha256(body).digest()
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def _decode_jwt(token: str, secrets: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    """(matching secret, claims); time claims are checked by the caller against `now`."""
    for secret in secrets:
        try:
            claims = jwt.decode(
                token,
                secret,
                algorithms=_ALGORITHMS,
                issuer=_ISSUER,
                options={
                    "require": ["iss", "nbf", "exp", "url_hash"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidSignatureError:
            continue  # another active secret may have signed it
        except jwt.InvalidTokenError as exc:
            raise BadSignature(f"invalid jwt ({type(exc).__name__})") from exc
        return secret, claims
    raise BadSignature("no active signing key verifies the jwt")


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _verify_jwt(
    token: str, request: InboundRequest, secrets: tuple[str, ...], context: VerifyContext
) -> Verified:
    secret, claims = _decode_jwt(token, secrets)
    nbf, exp = _number(claims.get("nbf")), _number(claims.get("exp"))
    if nbf is None or exp is None:
        raise BadSignature("jwt nbf/exp are not numbers")
    if context.now + JWT_LEEWAY < nbf:
        raise StaleTimestamp("jwt is not valid yet (nbf in the future)")
    if context.now - JWT_LEEWAY > exp:
        raise StaleTimestamp("jwt has expired")
    signed_at = check_window(nbf, context.now, context.window)
    url_hash = claims.get("url_hash")
    if not isinstance(url_hash, str) or not equal(_sha256_hex(request.url.encode()), url_hash):
        raise BadSignature("jwt url_hash does not match the request URL")
    payload_hash = claims.get("payload_hash")
    if request.body:
        if not isinstance(payload_hash, str) or not payload_hash:
            raise BadSignature("jwt has no payload_hash but the request has a body")
        if not equal(_sha256_hex(request.body), payload_hash):
            raise BadSignature("jwt payload_hash does not match the body")
    elif payload_hash:
        raise BadSignature("jwt has a payload_hash but the request has no body")
    jti = claims.get("jti")
    replay_key = jti if isinstance(jti, str) and jti else token.rsplit(".", 1)[-1]
    return Verified(key_id=key_id(secret), replay_key=replay_key, signed_at=signed_at)


def _verify_hmac(
    request: InboundRequest, secrets: tuple[str, ...], context: VerifyContext
) -> Verified:
    signature_b64 = require(request.headers, SIGNATURE_HEADER).strip()
    timestamp = require(request.headers, TIMESTAMP_HEADER).strip()
    signed_at = check_window(timestamp, context.now, context.window)
    signature = _b64(signature_b64)
    if signature is None:
        raise BadSignature("messagebird-signature is not base64")
    for secret in secrets:
        if equal(_hmac_digest(secret, timestamp, request.url, request.body), signature):
            return Verified(key_id=key_id(secret), replay_key=signature_b64, signed_at=signed_at)
    raise BadSignature("no active signing key produced this signature")


async def verify(
    request: InboundRequest, credentials: Credentials, context: VerifyContext
) -> Verified:
    """The JWT scheme when its header is present, else the Bird HMAC scheme."""
    if not credentials.secrets:
        raise NoCredentials("no signing key configured for provider bird")
    token = request.headers.get(JWT_HEADER, "").strip()
    if token:
        return _verify_jwt(token, request, credentials.secrets, context)
    if request.headers.get(SIGNATURE_HEADER) or request.headers.get(TIMESTAMP_HEADER):
        return _verify_hmac(request, credentials.secrets, context)
    raise MissingHeader(f"missing header {JWT_HEADER} or {SIGNATURE_HEADER}")


# -- extraction ------------------------------------------------------------------------


def _text(value: object) -> str | None:
    if value is None or isinstance(value, dict | list | bool):
        return None
    result = str(value).strip()
    return result or None


def _slug(value: str | None) -> str | None:
    """'unknown subscriber' and 'unknown_subscriber' name the same reason on both platforms."""
    if not value:
        return None
    return "_".join(value.strip().lower().replace("_", " ").split()) or None


def _message_id(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidPayload(f"{field} is required and must be a non-empty string")
    if len(value) > _MAX_ID:
        raise InvalidPayload(f"{field} longer than {_MAX_ID} characters")
    return value


def _legacy(params: dict[str, str]) -> list[Record]:
    """One record for a legacy GET status report (per message and recipient)."""
    message_id = _message_id(params.get("id"), "id")
    status = _text(params.get("status"))
    recipient = _text(params.get("recipient"))
    if status is None:
        raise InvalidPayload("status is required")
    if recipient is None:
        raise InvalidPayload("recipient is required")
    reason = _text(params.get("statusReason"))
    payload: dict[str, Any] = {
        "scheme": "legacy",
        "message_id": message_id,
        "status": status,
        "reason_text": reason,
        "reason_code": _slug(reason),
        "error_code": _text(params.get("statusErrorCode")),
        "source_code": None,
        "to": recipient,
        "from": _text(params.get("originator")),
        "reference": _text(params.get("reference")),
        "status_at": _text(params.get("statusDatetime")),
        "price_amount": _text(params.get("price[amount]")),
        "price_currency": _text(params.get("price[currency]")),
        "mccmnc": _text(params.get("mccmnc")),
        "ported": _text(params.get("ported")),
        "message_length": _text(params.get("messageLength")),
        "parts": _text(params.get("messagePartCount")),
    }
    return [
        Record(
            provider_message_id=message_id,
            message_key=f"{message_id}:{recipient}",
            payload=payload,
        )
    ]


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _reason_code(reason: str | None, details: str | None) -> str | None:
    """The `reason:` part of Bird's 'details: …; reason: …; code: …' text, else `details`."""
    for part in (reason or "").split(";"):
        name, sep, value = part.partition(":")
        if sep and name.strip().lower() == "reason" and value.strip():
            return _slug(value)
    return _slug(details)


def _contacts(message: dict[str, Any]) -> list[str | None]:
    receiver = message.get("receiver")
    contacts = receiver.get("contacts") if isinstance(receiver, dict) else None
    if not isinstance(contacts, list) or not contacts:
        return [None]
    out: list[str | None] = []
    for contact in contacts:
        if not isinstance(contact, dict):
            raise InvalidPayload("payload.receiver.contacts[] entries must be objects")
        out.append(_text(contact.get("identifierValue")))
    return out


def _inbound(message: dict[str, Any]) -> list[Record]:
    """A person's message to one of our numbers (only its opt-out keyword matters)."""
    number = _text(_object(_object(message.get("sender")).get("contact")).get("identifierValue"))
    message_id = _text(message.get("id"))
    if number is None or message_id is None or len(message_id) > _MAX_ID:
        return []
    connector = _object(_object(message.get("receiver")).get("connector"))
    text = _object(_object(message.get("body")).get("text")).get("text")
    inbound = Inbound(
        number=number,
        to=_text(connector.get("identifierValue")),
        text=text if isinstance(text, str) else None,
        timestamp=_text(message.get("createdAt")),
    )
    return [
        Record(provider_message_id=message_id, message_key=message_id, payload={}, inbound=inbound)
    ]


def _platform(body: bytes) -> list[Record]:
    """One record per receiver of a Bird Channels `sms.outbound` message event."""
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedPayload("body is not valid JSON") from exc
    if not isinstance(parsed, dict):
        raise MalformedPayload("body must be a JSON object")
    event = _text(parsed.get("event"))
    message = parsed.get("payload")
    if not isinstance(message, dict):
        raise InvalidPayload("payload is required and must be an object")
    if (event or "").endswith(".inbound") or message.get("direction") == "incoming":
        return _inbound(message)
    message_id = _message_id(message.get("id"), "payload.id")
    status = _text(message.get("status"))
    if status is None:
        raise InvalidPayload("payload.status is required")
    failure = _object(message.get("failure"))
    source = _object(failure.get("source"))
    connector = _object(_object(message.get("sender")).get("connector"))
    parts = message.get("parts")
    reason = _text(message.get("reason"))
    details = _text(message.get("details"))
    recipients = _contacts(message)
    common: dict[str, Any] = {
        "scheme": "bird",
        "event": event,
        "message_id": message_id,
        "status": status,
        "reason_text": reason,
        "reason_code": _reason_code(reason, details),
        "details": details,
        "error_code": _text(failure.get("code")),
        "source_code": _text(source.get("code")),
        "source_name": _text(source.get("name")),
        "from": _text(connector.get("identifierValue")),
        "channel_id": _text(message.get("channelId")),
        "reference": _text(message.get("reference")),
        "status_at": _text(message.get("lastStatusAt"))
        or _text(message.get("updatedAt"))
        or _text(message.get("createdAt")),
        "parts": len(parts) if isinstance(parts, list) and parts else None,
        "recipients": len(recipients),
    }
    group = len(recipients) > 1
    records = []
    for recipient in recipients:
        if group and recipient is None:
            raise InvalidPayload("receiver.contacts[].identifierValue is required for groups")
        payload = {**common, "to": recipient}
        records.append(
            Record(
                provider_message_id=message_id,
                message_key=f"{message_id}:{recipient}" if group else message_id,
                payload=payload,
            )
        )
    return records


def extract(request: InboundRequest) -> list[Record]:
    """Legacy GET query reports or Bird platform JSON events, flattened to one shape."""
    if request.method == "GET":
        return _legacy(dict(request.query))
    return _platform(request.body)


# -- signing ---------------------------------------------------------------------------


def sign_jwt(request: InboundRequest, key: str, now: int) -> InboundRequest:
    """Sign with the legacy MessageBird JWT scheme (HS256, 60 s lifetime)."""
    claims: dict[str, Any] = {
        "iss": _ISSUER,
        "nbf": now,
        "exp": now + JWT_LIFETIME,
        "jti": str(
            uuid.uuid5(uuid.NAMESPACE_URL, f"{now}|{request.url}|{_sha256_hex(request.body)}")
        ),
        "url_hash": _sha256_hex(request.url.encode()),
    }
    if request.body:
        claims["payload_hash"] = _sha256_hex(request.body)
    headers = dict(request.headers)
    headers[JWT_HEADER] = jwt.encode(claims, key, algorithm="HS256")
    return request.with_(headers=headers)


def sign_hmac(request: InboundRequest, key: str, now: int) -> InboundRequest:
    """Sign with the Bird platform HMAC scheme."""
    timestamp = str(now)
    digest = _hmac_digest(key, timestamp, request.url, request.body)
    headers = dict(request.headers)
    headers[TIMESTAMP_HEADER] = timestamp
    headers[SIGNATURE_HEADER] = base64.b64encode(digest).decode()
    return request.with_(headers=headers)


def sign(request: InboundRequest, key: str, now: int) -> InboundRequest:
    """Sign as Bird would: GET status reports with the JWT scheme, POSTs with HMAC."""
    if request.method == "GET":
        return sign_jwt(request, key, now)
    return sign_hmac(request, key, now)


def dev_credentials() -> tuple[Credentials, str]:
    """A fresh local signing key (both schemes use it): (credentials, key to sign with)."""
    secret = random_secret()
    return Credentials(secrets=(secret,)), secret
