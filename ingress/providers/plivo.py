"""Plivo message status callbacks, signed with Plivo's V3 signature.

    X-Plivo-Signature-V3-Nonce: <nonce>
    X-Plivo-Signature-V3: base64(HMAC-SHA256(auth token, "{signed URL}.{nonce}"))[,<more>]

The signed URL is built as the SDK's `construct_get_url`/`construct_post_url` do, from
decoded (not percent-encoded) names and values:

    GET:  scheme://host[:port]/path?k1=v1&k2=v2...   every query parameter, sorted by
          name, a repeated name once per value, values sorted
    POST: scheme://host[:port]/path?{sorted query}.k1v1k2v2...   the body parameters
          sorted by name and concatenated; without a query it is `path?k1v1...`, and
          without body parameters just `path?{sorted query}` (or the bare path)

The header may list several comma-separated signatures (one per auth token while Plivo
rotates); we accept when any of them matches any active token. V2 (`X-Plivo-Signature-
V2`) signs only the URL and nonce, not the parameters, so it is not accepted. There is no
timestamp: the replay key is the nonce plus the matching signature.

An inbound message (the Message URL of a Plivo number: `From`, `To`, `Text`, `Type`,
`MessageUUID`, no `Status`; or a status callback with `Status=received`) becomes an
`Inbound` record, which the ingress keeps only when it is an opt-out keyword.
"""

from __future__ import annotations

import base64
import secrets as _secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

from ingress.errors import BadSignature, InvalidPayload, NoCredentials
from ingress.providers._common import equal, hmac_digest, key_id, random_secret, require
from ingress.providers._contract import (
    Credentials,
    Inbound,
    InboundRequest,
    Record,
    Verified,
    VerifyContext,
)
from schemas.providers.plivo import INBOUND  # statuses of inbound messages: no receipt

NAME = "plivo"
METHODS = frozenset({"GET", "POST"})
CONTENT_TYPES = frozenset({"application/x-www-form-urlencoded"})

SIGNATURE_HEADER = "x-plivo-signature-v3"
NONCE_HEADER = "x-plivo-signature-v3-nonce"

_MAX_ID = 200


def _grouped(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        out.setdefault(name, []).append(value)
    return out


def _sorted_query(params: dict[str, list[str]]) -> str:
    return "&".join(f"{name}={value}" for name in sorted(params) for value in sorted(params[name]))


def signed_url(request: InboundRequest) -> str:
    """The string Plivo signs before `.{nonce}` is appended (public for tests)."""
    parts = urlsplit(request.url)
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    query = _sorted_query(_grouped(request.query))
    if request.method == "GET":
        return f"{base}?{query}" if query else base
    body = _grouped(request.form())
    if not body:
        return f"{base}?{query}" if query else base
    params = "".join(name + value for name in sorted(body) for value in sorted(body[name]))
    return f"{base}?{query}.{params}" if query else f"{base}?{params}"


def signature(token: str, url: str, nonce: str) -> str:
    """base64 HMAC-SHA256 of `{url}.{nonce}` under one auth token."""
    digest = hmac_digest(token, f"{url}.{nonce}".encode())
    return base64.b64encode(digest).decode()


async def verify(
    request: InboundRequest, credentials: Credentials, context: VerifyContext
) -> Verified:
    """Any listed V3 signature against any active auth token."""
    if not credentials.secrets:
        raise NoCredentials("no auth token configured for provider plivo")
    header = require(request.headers, SIGNATURE_HEADER)
    nonce = require(request.headers, NONCE_HEADER)
    candidates = [c.strip() for c in header.split(",") if c.strip()]
    url = signed_url(request)
    for secret in credentials.secrets:
        expected = signature(secret, url, nonce)
        for candidate in candidates:
            if equal(expected, candidate):
                return Verified(key_id=key_id(secret), replay_key=f"{nonce}:{expected}")
    raise BadSignature("no X-Plivo-Signature-V3 value matches an active auth token")


def extract(request: InboundRequest) -> list[Record]:
    """One record per callback, keyed by `MessageUUID`: form body for POST, query for GET."""
    pairs = request.query if request.method == "GET" else request.form()
    params: dict[str, str] = {}
    for name, value in pairs:
        params.setdefault(name, value)
    message_id = params.get("MessageUUID", "")
    if not message_id.strip():
        raise InvalidPayload("MessageUUID is required")
    if len(message_id) > _MAX_ID:
        raise InvalidPayload("MessageUUID longer than 200 characters")
    status = params.get("Status", "")
    if (not status and "Text" in params) or status.lower() in INBOUND:
        number = params.get("From")
        if not number:
            return []  # an inbound message nobody can be suppressed for
        inbound = Inbound(
            number=number,
            to=params.get("To"),
            text=params.get("Text"),
            timestamp=params.get("MessageTime") or None,
        )
        return [
            Record(
                provider_message_id=message_id, message_key=message_id, payload={}, inbound=inbound
            )
        ]
    if not status:
        raise InvalidPayload("Status is required")
    return [Record(provider_message_id=message_id, message_key=message_id, payload=params)]


def sign(request: InboundRequest, key: str, now: int) -> InboundRequest:
    """Sign as Plivo does, with a fresh 20-digit nonce."""
    nonce = "".join(_secrets.choice("0123456789") for _ in range(20))
    headers = dict(request.headers)
    headers[NONCE_HEADER] = nonce
    headers[SIGNATURE_HEADER] = signature(key, signed_url(request), nonce)
    return request.with_(headers=headers)


def dev_credentials() -> tuple[Credentials, str]:
    """A fresh local-development auth token."""
    token = random_secret()
    return Credentials(secrets=(token,)), token
