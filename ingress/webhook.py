"""One webhook request, check by check: the ingress's hot path.

Order per request (never changed): route -> transport (HTTPS, client certificate:
`ingress/transport.py`) -> method -> source IP -> rate limit -> callback token -> body
(bounded) -> content type -> verify -> replay check -> extract -> produce (acks=all) -> 200.
Everything that is refused raises an `ingress.errors` class; `webhook()` turns it into
`{"error": code, "detail": text}` and counts it. Nothing unverified is produced to the raw
topic; nothing is acknowledged before Kafka acknowledged it. With `DLR_CAPTURE_REFUSED=1`
the refusal path alone also hands the request, stripped of secrets, to the refused topic
(`ingress/refused.py`, fire-and-forget).

`IngressApp` (`ingress/app.py`) calls `webhook()` straight from the ASGI scope.

This module, the providers and the helpers it calls on every request are compiled with
mypyc when `dlr compile` has built them (`deploy/compiled.py`): it holds no async generator
and nothing Starlette must recognise as a Python function, which mypyc cannot compile.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from ingress import tokens
from ingress.body import read_limited
from ingress.errors import (
    ForbiddenSource,
    IngressError,
    MethodNotAllowed,
    RateLimited,
    UnknownProvider,
    UnsupportedMediaType,
    VerificationError,
)
from ingress.metrics import IngressMetrics
from ingress.producer import Producer
from ingress.providers import (
    PROVIDERS,
    Credentials,
    Inbound,
    InboundRequest,
    Record,
    VerifyContext,
    value_type,
)
from ingress.ratelimit import RateLimiter
from ingress.refused import RefusedCapture, record_of
from ingress.replay import ReplayCache
from ingress.settings import IngressSettings
from ingress.transport import TransportPolicy
from ingress.url import Network, client_ip, external_url, in_networks
from schemas.envelope import ENVELOPE_VERSION, INBOUND_KEY_PREFIX
from schemas.optout import classify
from schemas.phone import e164, number_hash

log = logging.getLogger("dlr.ingress")

#: True when this module runs compiled (`dlr compile`): /healthz and /metrics say which.
COMPILED = not __file__.endswith(".py")

_SHA256 = hashlib.sha256()
#: Headers never copied into the envelope: they carry credentials.
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})


@dataclass
class IngressState:
    """Everything the endpoints share, built once per app from the settings."""

    settings: IngressSettings
    producer: Producer
    credentials: dict[str, Credentials]
    transport: TransportPolicy
    metrics: IngressMetrics = field(default_factory=IngressMetrics)
    trusted: tuple[Network, ...] = ()
    allow: dict[str, tuple[Network, ...]] = field(default_factory=dict)
    token_secrets: tuple[str, ...] = ()
    replay: ReplayCache = field(default_factory=lambda: ReplayCache(300))
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(0, 1))
    certs: dict[str, bytes] = field(default_factory=dict)
    http: httpx.AsyncClient | None = None
    #: Where refused requests are kept (DLR_CAPTURE_REFUSED); None: not kept.
    refused: RefusedCapture | None = None

    def client(self) -> httpx.AsyncClient:
        """The outbound HTTP client, created on first use (most deployments never need it)."""
        if self.http is None:
            self.http = httpx.AsyncClient(timeout=5.0, follow_redirects=False)
        return self.http

    async def fetch(self, url: str) -> bytes:
        """HTTPS GET with a per-process cache (SNS signing certificates)."""
        if url in self.certs:
            return self.certs[url]
        if not url.startswith("https://"):
            raise ValueError("only https URLs are fetched")
        response = await self.client().get(url)
        response.raise_for_status()
        self.certs[url] = response.content
        return response.content


#: Methods the webhook routes take (Starlette adds HEAD to a route that has GET).
WEBHOOK_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
_JSON = (b"content-type", b"application/json")
_ACCEPTED_ONE = orjson.dumps({"status": "accepted", "records": 1})
_DUPLICATE = orjson.dumps({"status": "duplicate"})


@value_type
class Reply:
    """What a webhook request is answered: status, JSON body, extra headers."""

    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()
    #: GET after the answer went out (SNS SubscriptionConfirmation handshake).
    confirm_url: str | None = None


_DISCONNECTED = Reply(400, b"")


def webhook_target(scope: Scope) -> tuple[str, str | None] | None:
    """(provider, token) when the request is for `/webhooks/{provider}[/{token}]`, else None.

    Matches exactly what the two Starlette routes match (non-empty segments, their methods),
    so the shortcut in `IngressApp` never changes which requests reach `webhook()`.
    """
    path: str = scope["path"]
    if not path.startswith("/webhooks/") or scope.get("root_path"):
        return None
    parts = path[10:].split("/")
    if len(parts) > 2 or not all(parts) or scope["method"] not in WEBHOOK_METHODS:
        return None
    return parts[0], parts[1] if len(parts) == 2 else None


async def webhook(
    state: IngressState, scope: Scope, receive: Receive, send: Send, name: str, token: str | None
) -> None:
    """POST/GET /webhooks/{provider}[/{token}]: verify, produce, acknowledge (or refuse)."""
    metrics = state.metrics
    label = name if name in PROVIDERS else "unknown"
    started = time.perf_counter()
    secure = state.transport.secure(scope)  # once for both the HTTPS check and HSTS
    metrics.in_flight += 1
    try:
        reply = await _accept(state, scope, receive, name, token, secure)
    except IngressError as exc:
        reply = _refusal(state, label, exc)
        if state.refused is not None:
            _keep_refused(state, state.refused, scope, label, token, exc)
    except ClientDisconnect:  # the provider hung up mid-body: nothing produced; it retries
        metrics.outcome(label, "disconnect", "499")
        reply = _DISCONNECTED
    except Exception:
        metrics.outcome(label, "internal_error", "500")
        raise  # uvicorn logs it and answers 500
    finally:
        metrics.in_flight -= 1
        metrics.handled(label, time.perf_counter() - started)
    content_type = (_JSON,) if reply.body else ()
    hsts = state.transport.hsts(secure)
    await send(
        {
            "type": "http.response.start",
            "status": reply.status,
            "headers": [
                (b"content-length", str(len(reply.body)).encode()),
                *content_type,
                *reply.headers,
                *((hsts,) if hsts else ()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": reply.body})
    if reply.confirm_url:
        await _confirm_subscription(state, name, reply.confirm_url)


async def _accept(
    state: IngressState,
    scope: Scope,
    receive: Receive,
    name: str,
    token: str | None,
    secure: bool,
) -> Reply:
    """Every check in the documented order, then produce; raises what is refused."""
    provider = PROVIDERS.get(name)
    if provider is None:
        raise UnknownProvider(f"unknown provider {name[:40]!r}")
    state.transport.check(scope, name, secure)
    method: str = scope["method"]
    if method not in provider.METHODS:
        raise MethodNotAllowed(f"{name} webhooks never use {method}")
    ip = client_ip(scope, state.trusted)
    allow = state.allow.get(name)
    if allow and not in_networks(ip, allow):
        raise ForbiddenSource(f"source address not allowed for {name}")
    if not state.limiter.allow(name):
        raise RateLimited(f"over the rate limit for {name}")
    fields = tokens.verify(token, state.token_secrets) if token is not None else {}
    headers = _scope_headers(scope)
    settings = state.settings
    body = await read_limited(receive, headers, settings.max_body_bytes)
    url = external_url(scope, settings.public_base_url, state.trusted)
    inbound = InboundRequest(method=method, url=url, headers=headers, body=body, client_ip=ip)
    try:  # zero-cost unless raised (3.11): the refused-request capture wants the body
        types = provider.CONTENT_TYPES
        if method != "GET" and types and inbound.content_type not in types:
            allowed = ", ".join(sorted(types))
            raise UnsupportedMediaType(f"{name} sends {allowed}, not {inbound.content_type!r}")
        now = time.time()
        context = VerifyContext(now=now, window=settings.replay_window_s, fetch=state.fetch)
        verified = await provider.verify(inbound, state.credentials[name], context)
        if state.replay.seen(name, verified.replay_key, now):
            state.metrics.outcome(name, "replay", "200")
            return Reply(200, _DUPLICATE)
        records = provider.extract(inbound)
        items = _envelopes(
            name, inbound, records, verified.key_id, fields, now, state.metrics, settings.pii_salt
        )
        if items:
            produce_started = time.perf_counter()
            await state.producer.send_all(items)
            state.metrics.produced(name, len(items), time.perf_counter() - produce_started)
        state.replay.add(name, verified.replay_key, now)
        state.metrics.outcome(name, "accepted", "200")
        answer = _ACCEPTED_ONE if len(items) == 1 else _accepted(len(items))
        return Reply(200, answer, confirm_url=verified.confirm_url)
    except IngressError as exc:
        exc.request = inbound
        raise


def _accepted(records: int) -> bytes:
    return orjson.dumps({"status": "accepted", "records": records})


def _refusal(state: IngressState, provider: str, exc: IngressError) -> Reply:
    """One place that turns refusals into JSON errors, metrics and a log line."""
    state.metrics.outcome(provider, exc.code, str(exc.status))
    if isinstance(exc, VerificationError):
        state.metrics.verification_failed(provider, type(exc).__name__)
    level = logging.ERROR if exc.status >= 500 else logging.WARNING
    log.log(
        level,
        "webhook refused",
        extra={
            "provider": provider,
            "status": exc.status,
            "error": exc.code,
            "detail": exc.detail,
        },
    )
    headers: tuple[tuple[bytes, bytes], ...] = ()
    if exc.status in (429, 503):
        headers = ((b"retry-after", b"1" if exc.status == 429 else b"5"),)
    if exc.status == 405:
        allow = ", ".join(sorted(PROVIDERS[provider].METHODS)) if provider in PROVIDERS else "POST"
        headers = ((b"allow", allow.encode()),)
    return Reply(exc.status, orjson.dumps({"error": exc.code, "detail": exc.detail}), headers)


def _keep_refused(
    state: IngressState,
    capture: RefusedCapture,
    scope: Scope,
    provider: str,
    token: str | None,
    exc: IngressError,
) -> None:
    """Hand a refused request to the refused topic (only on the refusal path, never waits);
    a failure here is logged, never the request's answer."""
    try:
        capture.keep(provider, _refused_record(state, scope, provider, token, exc))
    except Exception:
        log.exception("refused request not kept", extra={"provider": provider})


def _refused_record(
    state: IngressState, scope: Scope, provider: str, token: str | None, exc: IngressError
) -> dict[str, Any]:
    """What is kept of a refused request: the request as read, else what the scope says."""
    inbound = exc.request
    if inbound is not None:
        method, url, headers, body, ip = (
            inbound.method,
            inbound.url,
            inbound.headers,
            inbound.body,
            inbound.client_ip,
        )
    else:  # refused before its body was read
        method, body = scope["method"], None
        headers = _scope_headers(scope)
        url = external_url(scope, state.settings.public_base_url, state.trusted)
        ip = client_ip(scope, state.trusted)
    return record_of(
        provider,
        exc,
        method,
        url,
        token,
        headers,
        body,
        ip,
        state.settings.refused_body_bytes,
        time.time(),
    )


def _keyword(
    metrics: IngressMetrics, salt: str, name: str, message: Inbound
) -> tuple[bytes, dict[str, Any]] | None:
    """(Kafka key, payload) of an inbound message that is an opt-out keyword; None (not
    produced, counted) for anything else: a conversation is none of our business."""
    number = e164(message.number)
    if number is None:
        metrics.inbound_message(name, "no_number")
        return None
    match = classify(message.text, message.hint)
    metrics.inbound_message(name, match.kind if match else "none")
    if match is None:
        return None
    key = INBOUND_KEY_PREFIX + number_hash(number, salt).encode()
    payload = {
        "number": number,
        "to": message.to,
        "keyword": match.kind,
        "word": match.word,
        "language": match.language,
        "timestamp": message.timestamp,
    }
    return key, payload


def _envelopes(
    name: str,
    inbound: InboundRequest,
    records: list[Record],
    key_id: str,
    token: dict[str, str],
    received_at: float,
    metrics: IngressMetrics,
    salt: str,
) -> list[tuple[bytes, bytes]]:
    """(key, raw envelope) per record: what the worker maps, and what audit needs later.
    An inbound message is kept only when it is an opt-out keyword (`_keyword`): keyed by
    the person's number hash (`salt`), its payload what the keyword says, `kind` inbound.

    The bytes are `RawEnvelope(...).to_json()` (tests/ingress/test_parts.py holds them
    equal), written from a dict: building the dataclass and letting orjson walk its slots
    cost a webhook more than its signature check.
    """
    sha = _SHA256.copy()  # a copy skips OpenSSL 3's per-object digest lookup
    sha.update(inbound.body)
    body_sha = sha.hexdigest()
    headers = inbound.headers
    # Most providers send no credential header: the request's dict is written as it is.
    if type(headers) is not dict or not _SECRET_HEADERS.isdisjoint(headers):
        headers = {k: v for k, v in headers.items() if k not in _SECRET_HEADERS}
    content_type = inbound.content_type
    items = []
    whole: tuple[str, str] | None = None
    for index, record in enumerate(records):
        key: bytes | None = None
        payload: Mapping[str, Any] = record.payload
        if record.inbound is not None:
            keyword = _keyword(metrics, salt, name, record.inbound)
            if keyword is None:
                continue
            key, payload = keyword
        if record.body is None:  # the whole request: decoded once for all its records
            if whole is None:
                whole = _text(inbound.body)
            body, encoding = whole
        else:
            body, encoding = _text(record.body)
        message_id = f"{name}:{record.message_key}"
        envelope = {
            "provider": name,
            "message_id": message_id,
            "provider_message_id": record.provider_message_id,
            "received_at": received_at,
            "method": inbound.method,
            "url": inbound.url,
            "headers": headers,
            "content_type": content_type,
            "body": body,
            "body_encoding": encoding,
            "body_sha256": body_sha,
            "payload": payload if type(payload) is dict else dict(payload),
            "key_id": key_id,
            "event_id": record.event_id,
            "part": index,
            "parts": len(records),
            "token": token,
            "kind": "receipt" if key is None else "inbound",
            "v": ENVELOPE_VERSION,
        }
        items.append((key or message_id.encode(), orjson.dumps(envelope)))
    return items


def _text(raw: bytes) -> tuple[str, str]:
    """(body, encoding) as the envelope carries it: UTF-8 text, else hex."""
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return raw.hex(), "hex"


def _scope_headers(scope: Scope) -> dict[str, str]:
    """The request's headers by name (ASGI names are lower-case already)."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


async def _confirm_subscription(state: IngressState, name: str, url: str) -> None:
    """SNS handshake: GET the SubscribeURL once the confirmation was verified."""
    try:
        response = await state.client().get(url)
        log.info("subscription confirmed", extra={"provider": name, "status": response.status_code})
    except httpx.HTTPError as exc:
        log.warning("subscription confirmation failed", extra={"provider": name, "error": str(exc)})
