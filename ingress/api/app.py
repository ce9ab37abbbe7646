"""The sender's API app: register sent messages, ask what became of them.

    POST /v1/messages                       messages:write  one registration or a batch -> 202
    GET  /v1/messages/{message_id}          messages:read   state, history, consent -> 200/404
    GET  /v1/messages?client_ref=...        messages:read   every message with that ref
    /v1/suppressions..., /v1/subjects/...                   the privacy routes: privacy.py
    GET  /healthz /readyz /metrics /openapi.json           no key

A registration request, in order: key, scope, rate limit (per key), content type, body
(read incrementally, never past DLR_API_MAX_BODY_BYTES), JSON, batch size, every message
validated, tenant of every message; only then produced to `dlr.sends.v1` (keyed by
message id, acks=all) and answered `202` once Kafka acknowledged all of it. Nothing is
produced for a refused request; a `503` (`Retry-After`) means retry the same body:
registering the same message again changes nothing (`schemas/sends.py` digest).

Logs carry the key id, route, outcome and counts, never a phone number (and
`deploy.logs` masks anything that looks like one).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.exceptions import ClickHouseError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from ingress.api import privacy
from ingress.api.errors import (
    InvalidQuery,
    InvalidRegistration,
    MessageNotFound,
    StoreUnavailable,
)
from ingress.api.keys import ApiKey, Keys, load_keys
from ingress.api.lookup import Store
from ingress.api.metrics import ApiMetrics
from ingress.api.models import parse_batch, records
from ingress.api.openapi import openapi_document
from ingress.api.settings import ApiSettings
from ingress.api.state import ApiState, requires, state_of
from ingress.api.suppressions import SuppressionFeed, SuppressionList
from ingress.app import JSONResponse
from ingress.body import read_limited
from ingress.errors import IngressError, UnsupportedMediaType
from ingress.producer import RawProducer
from ingress.ratelimit import RateLimiter

__all__ = ["ApiState", "create_app", "requires"]

log = logging.getLogger("dlr.api")

Endpoint = Callable[[Request], Awaitable[Response]]


@requires("messages:write", "register")
async def register(request: Request) -> Response:
    """POST /v1/messages: validate everything, produce, wait for Kafka, 202."""
    state = state_of(request)
    settings = state.settings
    key: ApiKey = request.state.key
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise UnsupportedMediaType(f"send application/json, not {content_type or 'nothing'!r}")
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.scope["headers"]}
    body = await read_limited(request.receive, headers, settings.api_max_body_bytes)
    registrations, batch = parse_batch(body, settings.api_max_batch)
    now = datetime.now(UTC)
    by_id: dict[str, Any] = {}
    items: list[tuple[bytes, bytes]] = []
    for index, registration in enumerate(registrations):
        tenant = key.tenant_for(registration.tenant)
        previous = by_id.get(registration.message_id)
        if previous is not None:
            if previous != registration:
                raise InvalidRegistration(
                    "a message id appears twice with different content",
                    [{"index": index, "field": "message_id", "message": "repeated"}],
                )
            continue
        by_id[registration.message_id] = registration
        items += records(
            registration, tenant, key.id, now, pii_mode=settings.pii_mode, salt=settings.pii_salt
        )
    started = time.perf_counter()
    await state.producer.send_all(items)
    state.metrics.produce_seconds.observe(time.perf_counter() - started)
    state.metrics.registered.inc(len(by_id))
    log.info("registered", extra={"key": key.id, "messages": len(by_id), "records": len(items)})
    accepted = [{"message_id": mid, "status": "accepted"} for mid in by_id]
    if batch:
        return JSONResponse({"accepted": len(accepted), "messages": accepted}, 202)
    return JSONResponse(accepted[0], 202)


async def _lookup(state: ApiState, call: Callable[[], Awaitable[Any]]) -> Any:
    try:
        return await call()
    except (ClickHouseError, OSError) as exc:
        raise StoreUnavailable(f"ClickHouse did not answer: {type(exc).__name__}") from exc


def _visible(key: ApiKey, answer: dict[str, Any] | None) -> bool:
    return answer is not None and key.sees(answer.get("tenant"))


@requires("messages:read", "lookup")
async def message(request: Request) -> Response:
    """GET /v1/messages/{message_id}: the message, or 404 (also for another tenant's)."""
    state = state_of(request)
    key: ApiKey = request.state.key
    message_id = request.path_params["message_id"]
    after = state.settings.unreported_after_s
    answer = await _lookup(state, lambda: state.store.amessage(message_id, after))
    if not _visible(key, answer):
        raise MessageNotFound(f"no message {message_id[:200]!r}")
    return JSONResponse(answer)


@requires("messages:read", "lookup_ref")
async def by_client_ref(request: Request) -> Response:
    """GET /v1/messages?client_ref=...: every message with that reference (the key's
    tenant only), newest lookups capped at DLR_API_MAX_LOOKUP."""
    state = state_of(request)
    key: ApiKey = request.state.key
    ref = request.query_params.get("client_ref")
    unknown = sorted(set(request.query_params) - {"client_ref"})
    if not ref or unknown or len(ref) > 128:
        raise InvalidQuery("give exactly one client_ref (1-128 characters)")
    limit = state.settings.api_max_lookup
    after = state.settings.unreported_after_s

    def read() -> list[dict[str, Any]]:
        ids = state.store.by_client_ref(ref, key.tenant, limit)
        return state.store.messages(ids, after) if ids else []

    answers = await _lookup(state, lambda: asyncio.to_thread(read))
    visible = [a for a in answers if _visible(key, a)]
    return JSONResponse({"client_ref": ref, "messages": visible, "count": len(visible)})


async def healthz(request: Request) -> Response:
    """Process is up."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Kafka answers (registrations can be acknowledged) and the suppression list is read
    (checks can be answered)."""
    state = state_of(request)
    ok = await state.producer.ready()
    loaded = state.feed.loaded.is_set()
    state.metrics.suppressions_loaded.set(1 if loaded else 0)
    if not ok:
        return JSONResponse({"status": "kafka unavailable"}, 503)
    if not loaded:
        return JSONResponse({"status": "suppression list loading"}, 503)
    return JSONResponse({"status": "ready"})


async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    return Response(
        generate_latest(state_of(request).metrics.registry), media_type=CONTENT_TYPE_LATEST
    )


async def openapi(request: Request) -> Response:
    """The OpenAPI 3.1 description of every route and error."""
    return JSONResponse(openapi_document())


async def on_api_error(request: Request, exc: Exception) -> Response:
    """Refusals as `{"error", "detail"[, "errors"]}`, counted and logged (no payloads)."""
    assert isinstance(exc, IngressError)
    state = state_of(request)
    route = getattr(request.state, "route", "none")
    state.metrics.requests.labels(route, exc.code, str(exc.status)).inc()
    key = getattr(request.state, "key", None)
    log.log(
        logging.ERROR if exc.status >= 500 else logging.WARNING,
        "api refused",
        extra={
            "route": route,
            "key": key.id if key else None,
            "status": exc.status,
            "error": exc.code,
            "detail": exc.detail[:200],
        },
    )
    body: dict[str, Any] = {"error": exc.code, "detail": exc.detail}
    errors = getattr(exc, "errors", None)
    if errors is not None:
        body["errors"] = errors
    headers = {}
    if exc.status in (429, 503):
        headers["Retry-After"] = "1" if exc.status == 429 else "5"
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="dlr"'
    return JSONResponse(body, exc.status, headers=headers)


async def on_http_error(request: Request, exc: Exception) -> Response:
    """Routing errors (no such path, wrong method) as JSON too."""
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    state_of(request).metrics.requests.labels("none", code, str(exc.status_code)).inc()
    return JSONResponse({"error": code, "detail": exc.detail}, exc.status_code, headers=exc.headers)


async def on_disconnect(request: Request, exc: Exception) -> Response:
    """The client hung up mid-body: nothing was produced."""
    return Response(status_code=400)


def build_state(
    settings: ApiSettings,
    producer: RawProducer | None = None,
    store: Store | None = None,
    suppression_producer: RawProducer | None = None,
) -> ApiState:
    """Everything the app needs, from settings (no I/O besides the dev key file)."""
    metrics = ApiMetrics()
    suppressions = SuppressionList()

    def counted(outcome: str) -> None:
        metrics.suppression_records.labels(outcome).inc()
        metrics.suppressed_numbers.set(len(suppressions))

    return ApiState(
        settings=settings,
        keys=Keys(load_keys(settings)),
        producer=producer
        or RawProducer(settings.bootstrap, settings.sends_topic, settings.api_produce_timeout_s),
        store=store or Store(settings, settings.api_query_timeout_s),
        limiter=RateLimiter(settings.api_rate_limit_per_s, settings.api_rate_limit_burst),
        metrics=metrics,
        suppressions=suppressions,
        feed=SuppressionFeed(settings, suppressions, counted),
        suppression_producer=suppression_producer
        or RawProducer(
            settings.bootstrap, settings.suppressions_topic, settings.api_produce_timeout_s
        ),
    )


def create_app(
    settings: ApiSettings | None = None,
    producer: RawProducer | None = None,
    store: Store | None = None,
    suppression_producer: RawProducer | None = None,
) -> Starlette:
    """The ASGI app. Kafka or ClickHouse down at start is not fatal: /readyz says so,
    registrations get 503 until Kafka answers, lookups 503 until ClickHouse does, checks
    503 until the suppression list is read."""
    settings = settings or ApiSettings()
    state = build_state(settings, producer, store, suppression_producer)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not state.keys.by_hash:
            log.warning("no API keys configured: every request is refused (DLR_API_KEYS)")
        state.feed.start()
        for started in (state.producer, state.suppression_producer):
            try:
                await started.start()
            except IngressError as exc:
                log.error(
                    "kafka not reachable at start; 503 until it is", extra={"detail": exc.detail}
                )
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            await state.feed.stop()
            await state.producer.stop()
            await state.suppression_producer.stop()
            state.store.close()

    routes = [
        Route("/v1/messages", register, methods=["POST"]),
        Route("/v1/messages", by_client_ref, methods=["GET"]),
        Route("/v1/messages/{message_id:path}", message, methods=["GET"]),
        Route("/v1/suppressions", privacy.export_changes, methods=["GET"]),
        Route("/v1/suppressions:check", privacy.check_many, methods=["POST"]),
        Route("/v1/suppressions/{number}", privacy.check_one, methods=["GET"]),
        Route("/v1/suppressions/{number}", privacy.add, methods=["PUT"]),
        Route("/v1/suppressions/{number}", privacy.remove, methods=["DELETE"]),
        Route("/v1/subjects/{number}", privacy.erase_subject, methods=["DELETE"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            IngressError: on_api_error,
            HTTPException: on_http_error,
            ClientDisconnect: on_disconnect,
        },
    )
    app.state.api = state
    return app
