"""Vonage SMS API delivery receipts, signed with the `sig` parameter.

Receipts arrive as GET (query parameters) or POST (form, or JSON with the same field
names), as chosen in the dashboard. With signing enabled (Vonage support switches it on)
every receipt also carries `timestamp` (unix seconds), `nonce` and `sig`:

    signed = "&k1=v1&k2=v2..."   every parameter but `sig`, sorted by name, with `&` and
                                 `=` inside values replaced by `_`
    md5hash:               sig = hex MD5(signed + secret)       (dashboard default)
    md5/sha1/sha256/sha512: sig = hex HMAC-<hash>(secret, signed)

The method comes from `credentials.options["signature_method"]` (default `md5hash`);
several secrets allow a rotation. The SDK does not check the timestamp's age; we refuse
one outside the replay window (both directions). No event id exists, so the replay key
is the signature. A POST uses its body only: Vonage does not support mixing a query
string into a POST, so anything there is neither signed nor read.

JSON values that are not strings are signed as their JSON text (`1`, `true`, `null`);
Vonage documents every receipt field as a string, so this does not arise in practice.

The inbound-SMS webhook (same signing) has no `status` but `msisdn` (the person), `to`,
`messageId`, `text` and `keyword`: it becomes an `Inbound` record, which the ingress keeps
only when it is an opt-out keyword.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as _secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import orjson

from ingress.errors import (
    BadSignature,
    InvalidPayload,
    MalformedPayload,
    MissingHeader,
    NoCredentials,
)
from ingress.providers._common import check_window, equal, key_id, random_secret
from ingress.providers._contract import (
    Credentials,
    Inbound,
    InboundRequest,
    Record,
    Verified,
    VerifyContext,
)

NAME = "vonage"
METHODS = frozenset({"GET", "POST"})
CONTENT_TYPES = frozenset({"application/x-www-form-urlencoded", "application/json"})

DEFAULT_METHOD = "md5hash"
#: HMAC variants by the name Vonage's SDK and our settings use.
HMACS: Mapping[str, str] = {"md5": "md5", "sha1": "sha1", "sha256": "sha256", "sha512": "sha512"}
METHOD_NAMES = frozenset({DEFAULT_METHOD, *HMACS})

_MAX_ID = 200


def _value(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def signed_string(params: Mapping[str, Any]) -> str:
    """`&k=v...` over every parameter but `sig`, sorted, `&`/`=` in values made `_`."""
    return "".join(
        f"&{name}=" + _value(params[name]).replace("&", "_").replace("=", "_")
        for name in sorted(params)
        if name != "sig"
    )


def signature(params: Mapping[str, Any], secret: str, method: str = DEFAULT_METHOD) -> str:
    """Lower-case hex signature of the parameters (public for tests and tools)."""
    signed = signed_string(params).encode()
    if method == DEFAULT_METHOD:
        return hashlib.md5(signed + secret.encode()).hexdigest()
    return hmac.new(secret.encode(), signed, HMACS[method]).hexdigest()


def _params(request: InboundRequest) -> dict[str, Any]:
    """The receipt's parameters: query for GET, else the form or JSON body."""
    if request.method == "GET":
        return dict(request.query)
    if request.content_type == "application/json":
        try:
            document: Any = request.json()
        except orjson.JSONDecodeError as exc:
            raise MalformedPayload("body is not valid JSON") from exc
        if not isinstance(document, dict):
            raise MalformedPayload("body must be a JSON object")
        return document
    return dict(request.form())


async def verify(
    request: InboundRequest, credentials: Credentials, context: VerifyContext
) -> Verified:
    """Check `timestamp` against the window, then `sig` against any active secret."""
    if not credentials.secrets:
        raise NoCredentials("no signature secret configured for provider vonage")
    method = credentials.options.get("signature_method", DEFAULT_METHOD) or DEFAULT_METHOD
    if method not in METHOD_NAMES:
        raise NoCredentials(f"unsupported vonage signature_method {method[:20]!r}")
    params = _params(request)
    sig = params.get("sig")
    if not isinstance(sig, str) or not sig:
        raise MissingHeader("missing sig parameter")
    timestamp = params.get("timestamp")
    if timestamp is None or timestamp == "":
        raise MissingHeader("missing timestamp parameter")
    if isinstance(timestamp, bool) or not isinstance(timestamp, str | int):
        raise MalformedPayload("timestamp parameter must be unix seconds")
    signed_at = check_window(str(timestamp), context.now, context.window)
    received = sig.strip().lower()
    for secret in credentials.secrets:
        expected = signature(params, secret, method)
        if equal(expected, received):
            return Verified(key_id=key_id(secret), replay_key=expected, signed_at=signed_at)
    raise BadSignature("sig does not match an active signature secret")


def extract(request: InboundRequest) -> list[Record]:
    """One receipt per request, keyed by `messageId` (one per part of a long message)."""
    params = _params(request)
    message_id = params.get("messageId")
    if not isinstance(message_id, str) or not message_id.strip():
        raise InvalidPayload("messageId is required and must be a non-empty string")
    if len(message_id) > _MAX_ID:
        raise InvalidPayload("messageId longer than 200 characters")
    status = params.get("status")
    if status is None and "text" in params:  # an inbound SMS: a person wrote to us
        return _inbound(message_id, params)
    if not isinstance(status, str) or not status:
        raise InvalidPayload("status is required and must be a string")
    return [Record(provider_message_id=message_id, message_key=message_id, payload=params)]


def _inbound(message_id: str, params: dict[str, Any]) -> list[Record]:
    number, text = params.get("msisdn"), params.get("text")
    if not isinstance(number, str) or not number:
        raise InvalidPayload("msisdn is required in an inbound message")
    to = params.get("to")
    when = params.get("message-timestamp")
    inbound = Inbound(
        number=number,
        to=to if isinstance(to, str) else None,
        text=text if isinstance(text, str) else None,
        timestamp=when if isinstance(when, str) else None,
    )
    return [
        Record(provider_message_id=message_id, message_key=message_id, payload={}, inbound=inbound)
    ]


def sign(request: InboundRequest, key: str, now: int) -> InboundRequest:
    """Add `timestamp`, `nonce` and an md5hash `sig` where the receipt carries them."""
    params = {k: v for k, v in _params(request).items() if k != "sig"}
    params["timestamp"] = str(now)
    params["nonce"] = _secrets.token_hex(16)
    params["sig"] = signature(params, key)
    if request.method == "GET":
        parts = urlsplit(request.url)
        query = urlencode([(k, _value(v)) for k, v in params.items()])
        return request.with_(url=urlunsplit(parts._replace(query=query)))
    if request.content_type == "application/json":
        return request.with_(body=orjson.dumps(params))
    return request.with_(body=urlencode([(k, _value(v)) for k, v in params.items()]).encode())


def dev_credentials() -> tuple[Credentials, str]:
    """A fresh local-development signature secret, verified with the md5hash method."""
    secret = random_secret()
    return Credentials(secrets=(secret,), options={"signature_method": DEFAULT_METHOD}), secret
