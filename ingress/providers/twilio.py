"""Twilio status callbacks and Event Streams webhooks, signed with X-Twilio-Signature.

    X-Twilio-Signature: base64(HMAC-SHA1(auth token, full URL + name1 + value1 + ...))

Form callbacks (POST `application/x-www-form-urlencoded`, or GET) sign the full URL as
requested, query included, followed by the POST parameters sorted by name; a repeated
name contributes each of its values, sorted (as the SDK's `compute_signature`). Twilio
signs the URL inconsistently with and without the default port, so, like the SDK, both
the URL with the port added (443/80) and with any port removed are tried.

JSON bodies (Event Streams webhook sinks: a JSON array of CloudEvents) carry
`?bodySHA256=<hex SHA-256 of the body>` in the URL; the body hash is checked first, then
the signature over the URL alone. A JSON body without `bodySHA256` is refused: nothing
would cover it.

Webhook Settings (public beta) may sign with a customer SharedKey instead of the auth
token; Twilio then adds `X-Twilio-Webhooks-Signature-Settings: key=<id>,algorithm=
HMAC_SHA256` and only the hash function changes. Auth tokens (primary and secondary)
and SharedKey secrets all go in `Credentials.secrets`; any of them may match.

There is no timestamp or event id in a form callback, so the replay key is the signature
itself. Event Streams items keep their CloudEvent `id` as the record's event id.

An inbound message (`SmsStatus=received`, the incoming-message webhook) is no receipt:
it becomes an `Inbound` record (From, To, Body, and `OptOutType` when Twilio's Advanced
Opt-Out classified it as STOP / START / HELP), which the ingress keeps only when it is
an opt-out keyword.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import secrets as _secrets
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from ingress.errors import BadSignature, InvalidPayload, MalformedPayload, NoCredentials
from ingress.providers._common import equal, hmac_digest, key_id, require
from ingress.providers._contract import (
    Credentials,
    Inbound,
    InboundRequest,
    Record,
    Verified,
    VerifyContext,
    query_pairs,
)
from schemas.providers.twilio import INBOUND  # statuses of inbound messages: no receipt

NAME = "twilio"
METHODS = frozenset({"POST", "GET"})
CONTENT_TYPES = frozenset({"application/x-www-form-urlencoded", "application/json"})

SIGNATURE_HEADER = "x-twilio-signature"
SETTINGS_HEADER = "x-twilio-webhooks-signature-settings"
BODY_HASH_PARAM = "bodySHA256"

#: Hash functions (hashlib names) a Webhook Setting may name; SHA-1 without the header.
ALGORITHMS: dict[str, str] = {
    "HMAC_SHA1": "sha1",
    "HMAC_SHA256": "sha256",
}

_MESSAGE_EVENT_PREFIX = "com.twilio.messaging.message."
_MAX_ID = 200


def signature(key: str, url: str, params: Iterable[tuple[str, str]], algorithm: str) -> str:
    """Twilio's signature of a URL and its POST parameters (public for tests and tools)."""
    grouped: dict[str, list[str]] = {}
    for name, value in params:
        grouped.setdefault(name, []).append(value)
    signed = url + "".join(
        name + value for name in sorted(grouped) for value in sorted(grouped[name])
    )
    digest = hmac_digest(key, signed.encode(), ALGORITHMS[algorithm])
    return base64.b64encode(digest).decode()


@functools.lru_cache(maxsize=1024)
def _url_variants(url: str) -> tuple[str, ...]:
    """The URL with its default port added and with any port removed (SDK behaviour)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return (url,)
    netloc = parts.netloc
    if port is None:
        default = 443 if parts.scheme == "https" else 80
        other = urlunsplit(parts._replace(netloc=f"{netloc}:{default}"))
    else:
        other = urlunsplit(parts._replace(netloc=netloc.rsplit(":", 1)[0]))
    return (url, other)


def _algorithm(headers: Mapping[str, str]) -> str:
    """SHA-1 by default; the Webhook Settings header names another algorithm."""
    settings = headers.get(SETTINGS_HEADER)
    if settings is None:
        return "HMAC_SHA1"
    algorithm = ""
    for part in settings.split(","):
        name, _, value = part.partition("=")
        if name.strip().lower() == "algorithm":
            algorithm = value.strip().upper()
    if algorithm not in ALGORITHMS:
        raise BadSignature(f"unsupported signature algorithm {algorithm[:20]!r}")
    return algorithm


def _body_hash(url: str) -> str | None:
    return next((value for name, value in query_pairs(url) if name == BODY_HASH_PARAM), None)


def _signed_params(request: InboundRequest) -> list[tuple[str, str]]:
    """The POST parameters the signature covers (none for GET or a hashed JSON body)."""
    if request.method != "POST" or _body_hash(request.url) is not None:
        return []
    if request.content_type == "application/json":
        raise BadSignature("JSON body without bodySHA256 is not covered by the signature")
    return request.form()


async def verify(
    request: InboundRequest, credentials: Credentials, context: VerifyContext
) -> Verified:
    """Body hash (JSON variant), then the signature over URL + sorted params, any secret."""
    if not credentials.secrets:
        raise NoCredentials("no auth token or shared key configured for provider twilio")
    received = require(request.headers, SIGNATURE_HEADER).strip()
    algorithm = _algorithm(request.headers)
    body_hash = _body_hash(request.url)
    if body_hash is not None and not equal(
        hashlib.sha256(request.body).hexdigest(), body_hash.strip().lower()
    ):
        raise BadSignature("bodySHA256 does not match the body")
    params = _signed_params(request)
    urls = _url_variants(request.url)
    for secret in credentials.secrets:
        for url in urls:
            if equal(signature(secret, url, params, algorithm), received):
                return Verified(key_id=key_id(secret), replay_key=received)
    raise BadSignature("X-Twilio-Signature does not match an active auth token or shared key")


def _text_id(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidPayload(f"{name} is required and must be a non-empty string")
    if len(value) > _MAX_ID:
        raise InvalidPayload(f"{name} longer than 200 characters")
    return value


def _form_records(request: InboundRequest) -> list[Record]:
    pairs = list(request.query)
    if request.method == "POST":
        pairs += request.form()
    params: dict[str, str] = {}
    for name, value in pairs:
        params[name] = value  # body after query: the body wins
    sid = _text_id(params.get("MessageSid") or params.get("SmsSid"), "MessageSid")
    status = params.get("MessageStatus") or params.get("SmsStatus")
    if not status:
        raise InvalidPayload("MessageStatus is required")
    if status.lower() in INBOUND:  # a person's message, not a receipt: only its keyword counts
        number = params.get("From")
        if not number:
            return []
        inbound = Inbound(
            number=number,
            to=params.get("To"),
            text=params.get("Body"),
            hint=params.get("OptOutType") or None,
        )
        return [Record(provider_message_id=sid, message_key=sid, payload={}, inbound=inbound)]
    return [Record(provider_message_id=sid, message_key=sid, payload=params)]


def _event_record(event: Any, split: bool) -> Record | None:
    if not isinstance(event, dict):
        raise InvalidPayload("Event Streams items must be objects")
    kind = event.get("type")
    if not isinstance(kind, str) or not kind.startswith(_MESSAGE_EVENT_PREFIX):
        return None  # another product's event, or the sink test event
    data = event.get("data")
    if not isinstance(data, dict):
        raise InvalidPayload("Event Streams item has no data object")
    sid = _text_id(data.get("messageSid"), "data.messageSid")
    payload = {**data, "eventType": kind}
    if not payload.get("messageStatus"):
        payload["messageStatus"] = kind[len(_MESSAGE_EVENT_PREFIX) :].upper()
    event_id = event.get("id")
    return Record(
        provider_message_id=sid,
        message_key=sid,
        payload=payload,
        event_id=event_id if isinstance(event_id, str) and event_id else None,
        body=orjson.dumps(event) if split else None,
    )


def _json_records(request: InboundRequest) -> list[Record]:
    try:
        document: Any = request.json()
    except orjson.JSONDecodeError as exc:
        raise MalformedPayload("body is not valid JSON") from exc
    if isinstance(document, list):
        records = [_event_record(event, split=True) for event in document]
        return [r for r in records if r is not None]
    if isinstance(document, dict) and "data" in document:
        record = _event_record(document, split=False)
        return [record] if record is not None else []
    raise MalformedPayload("body must be a CloudEvent or an array of CloudEvents")


def extract(request: InboundRequest) -> list[Record]:
    """A form callback is one record; an Event Streams array one per message event."""
    if request.method == "POST" and request.content_type == "application/json":
        return _json_records(request)
    return _form_records(request)


def _with_body_hash(url: str, body: bytes) -> str:
    parts = urlsplit(url)
    if _body_hash(url) is not None:
        return url
    extra = f"{BODY_HASH_PARAM}={hashlib.sha256(body).hexdigest()}"
    return urlunsplit(parts._replace(query=f"{parts.query}&{extra}" if parts.query else extra))


def sign(request: InboundRequest, key: str, now: int) -> InboundRequest:
    """Sign as Twilio does; JSON bodies get `bodySHA256` in the URL first."""
    if request.method == "POST" and request.content_type == "application/json":
        request = request.with_(url=_with_body_hash(request.url, request.body))
    algorithm = _algorithm(request.headers)
    params = _signed_params(request)
    headers = dict(request.headers)
    headers[SIGNATURE_HEADER] = signature(key, request.url, params, algorithm)
    return request.with_(headers=headers)


def dev_credentials() -> tuple[Credentials, str]:
    """A fresh local-development auth token (32 hex digits, like Twilio's)."""
    token = _secrets.token_hex(16)
    return Credentials(secrets=(token,)), token
