"""Infobip SMS delivery reports: batched JSON, HMAC or HTTP Basic authenticated.

Infobip attaches "security settings" to a Subscriptions-Management notification profile:
type `HMAC` (`secretKey` + algorithm HMAC_MD5, HMAC_SHA_1, HMAC_SHA_224, HMAC_SHA_256,
HMAC_SHA_384 or HMAC_SHA_512) or `BASIC` (username/password). That much is documented.

ASSUMED, NOT CONFIRMED (neither Infobip's docs nor its SDKs, as far as we could read,
name the header or the signed bytes; check against a real request before relying on it):

* the HMAC is computed over the raw request body only (no timestamp, nonce or URL: the
  security settings have no such field), with the UTF-8 `secretKey` as key;
* it arrives in `X-Hub-Signature` (also accepted: `X-Infobip-Signature`,
  `X-Signature`; the first one present is used; `options["signature_header"]` names a
  different one), hex or base64 encoded, optionally prefixed `<algorithm>=`
  (`sha256=...`);
* the algorithm is inferred from the digest length (16/20/28/32/48/64 bytes), or pinned
  with `options["hmac_algorithm"]` using Infobip's names (`HMAC_SHA_256`).

Because nothing time-dependent is signed there is no window to enforce: the replay key
is the signature value (for Basic auth, the SHA-256 of the body), so exact re-sends are
caught by the replay cache only. Basic auth (`credentials.basic`) is the documented
alternative and is checked whenever no signature header is present. Every comparison
is constant-time. The legacy XML notify format is not supported.

Body: `{"results": [{"bulkId", "messageId", "to", "from", "sentAt", "doneAt",
"smsCount", "mccMnc", "price": {...}, "status": {...}, "error": {...},
"callbackData", ...}, ...]}`, up to `maxBucketSize` (default 100) reports per request:
one record per result, keyed by `messageId`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable
from typing import Any

import orjson

from ingress.errors import (
    BadSignature,
    InvalidPayload,
    MalformedPayload,
    MissingHeader,
    NoCredentials,
)
from ingress.providers._common import equal, key_id, random_secret
from ingress.providers._contract import (
    Credentials,
    InboundRequest,
    Record,
    Verified,
    VerifyContext,
)

NAME = "infobip"
METHODS = frozenset({"POST"})
CONTENT_TYPES = frozenset({"application/json"})

#: Header `sign` writes, and the first one `verify` looks for.
SIGNATURE_HEADER = "x-hub-signature"
SIGNATURE_HEADERS = (SIGNATURE_HEADER, "x-infobip-signature", "x-signature")

_Hash = Callable[[], Any]

#: Infobip's algorithm names -> (digest size, hash constructor).
ALGORITHMS: dict[str, tuple[int, _Hash]] = {
    "HMAC_MD5": (16, hashlib.md5),
    "HMAC_SHA_1": (20, hashlib.sha1),
    "HMAC_SHA_224": (28, hashlib.sha224),
    "HMAC_SHA_256": (32, hashlib.sha256),
    "HMAC_SHA_384": (48, hashlib.sha384),
    "HMAC_SHA_512": (64, hashlib.sha512),
}
_BY_SIZE = {size: name for name, (size, _) in ALGORITHMS.items()}
_PREFIXES = {
    "md5": "HMAC_MD5",
    "sha1": "HMAC_SHA_1",
    "sha224": "HMAC_SHA_224",
    "sha256": "HMAC_SHA_256",
    "sha384": "HMAC_SHA_384",
    "sha512": "HMAC_SHA_512",
}
_HEX = re.compile(r"[0-9a-fA-F]+")
_MAX_ID = 200


def _decode_signature(value: str) -> tuple[str | None, bytes]:
    """(algorithm named by a prefix or None, raw digest bytes) or BadSignature."""
    value = value.strip()
    named = None
    prefix, sep, rest = value.partition("=")
    if sep and prefix.lower().replace("-", "").replace("hmac", "") in _PREFIXES:
        named = _PREFIXES[prefix.lower().replace("-", "").replace("hmac", "")]
        value = rest.strip()
    if _HEX.fullmatch(value) and len(value) % 2 == 0 and len(value) // 2 in _BY_SIZE:
        return named, bytes.fromhex(value)
    try:
        raw = base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadSignature("signature is neither hex nor base64") from exc
    return named, raw


def _algorithm(credentials: Credentials, named: str | None, size: int) -> str:
    by_size = _BY_SIZE.get(size)
    if by_size is None:
        raise BadSignature("signature length matches no HMAC algorithm")
    pinned = credentials.options.get("hmac_algorithm", "").strip().upper()
    if pinned and pinned != by_size:
        raise BadSignature("signature does not use the configured HMAC algorithm")
    if named is not None and named != by_size:
        raise BadSignature("signature prefix and length disagree")
    return by_size


def _digest(secret: str, body: bytes, algorithm: str = "HMAC_SHA_256") -> bytes:
    return hmac.new(secret.encode(), body, ALGORITHMS[algorithm][1]).digest()


def _signature_header(request: InboundRequest, credentials: Credentials) -> str | None:
    configured = credentials.options.get("signature_header", "").strip().lower()
    for name in (configured,) if configured else SIGNATURE_HEADERS:
        value = request.headers.get(name)
        if value:
            return value
    return None


def _verify_hmac(request: InboundRequest, credentials: Credentials, header: str) -> Verified:
    named, provided = _decode_signature(header)
    algorithm = _algorithm(credentials, named, len(provided))
    for secret in credentials.secrets:
        expected = _digest(secret, request.body, algorithm)
        if equal(expected, provided):
            return Verified(key_id=key_id(secret), replay_key=expected.hex())
    raise BadSignature("signature does not match an active secret")


def _verify_basic(credentials: Credentials, authorization: str) -> str:
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        raise BadSignature("authorization is not HTTP Basic")
    try:
        presented = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadSignature("basic credentials are not base64") from exc
    matched = None
    for user, password in credentials.basic:
        pair = f"{user}:{password}"
        if equal(pair, presented) and matched is None:
            matched = pair
    if matched is None:
        raise BadSignature("basic credentials do not match")
    return key_id(matched)


async def verify(
    request: InboundRequest, credentials: Credentials, context: VerifyContext
) -> Verified:
    """HMAC when a signature header is present and secrets exist, else HTTP Basic."""
    if not (credentials.secrets or credentials.basic):
        raise NoCredentials("no secret or basic credentials configured for provider infobip")
    header = _signature_header(request, credentials) if credentials.secrets else None
    if header is not None:
        return _verify_hmac(request, credentials, header)
    authorization = request.headers.get("authorization")
    if credentials.basic and authorization:
        matched = _verify_basic(credentials, authorization)
        return Verified(key_id=matched, replay_key=hashlib.sha256(request.body).hexdigest())
    expected = []
    if credentials.secrets:
        expected.append(SIGNATURE_HEADER)
    if credentials.basic:
        expected.append("authorization")
    raise MissingHeader("missing header " + " or ".join(expected))


def _result(item: object) -> Record:
    if not isinstance(item, dict):
        raise InvalidPayload("results[] entries must be objects")
    message_id = item.get("messageId")
    if not isinstance(message_id, str) or not message_id.strip():
        raise InvalidPayload("results[].messageId is required and must be a non-empty string")
    if len(message_id) > _MAX_ID:
        raise InvalidPayload("results[].messageId longer than 200 characters")
    status = item.get("status")
    if not isinstance(status, dict) or not (
        isinstance(status.get("name"), str) or isinstance(status.get("id"), int)
    ):
        raise InvalidPayload("results[].status with a name or id is required")
    return Record(
        provider_message_id=message_id,
        message_key=message_id,
        payload=item,
        body=orjson.dumps(item),
    )


def extract(request: InboundRequest) -> list[Record]:
    """One record per `results[]` entry, keyed by `messageId`."""
    try:
        parsed: Any = orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        raise MalformedPayload("body is not valid JSON") from exc
    if not isinstance(parsed, dict):
        raise MalformedPayload("body must be a JSON object")
    results = parsed.get("results")
    if not isinstance(results, list):
        raise InvalidPayload("results is required and must be a list")
    return [_result(item) for item in results]


def sign(request: InboundRequest, key: str, now: int) -> InboundRequest:
    """Sign the assumed Infobip way: hex HMAC-SHA256 of the body (`now` is not signed)."""
    headers = dict(request.headers)
    headers[SIGNATURE_HEADER] = _digest(key, request.body).hex()
    return request.with_(headers=headers)


def dev_credentials() -> tuple[Credentials, str]:
    """A fresh local-development HMAC secret: (credentials, key to sign with)."""
    secret = random_secret()
    return Credentials(secrets=(secret,)), secret
