"""The ingress app: Starlette for the small routes, `ingress/webhook.py` for webhooks.

`IngressApp` hands `/webhooks/...` straight from the ASGI scope to `webhook()`, without
Starlette's middleware, router, Request and Response objects (they cost about a third of a
webhook's CPU). The other routes (health, readiness, metrics, OpenAPI, 404/405) are plain
Starlette; answers over HTTPS carry `Strict-Transport-Security` on both paths.

This module is never compiled (`deploy/compiled.py`): the lifespan is an async generator,
and Starlette recognises an endpoint by `inspect`, which a compiled function fails.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from ingress import tls
from ingress.credentials import active_credentials, weaknesses
from ingress.errors import IngressError
from ingress.openapi import openapi_document
from ingress.producer import Producer, RawProducer
from ingress.providers import PROVIDERS
from ingress.ratelimit import RateLimiter
from ingress.refused import RefusedCapture
from ingress.replay import ReplayCache
from ingress.settings import IngressSettings
from ingress.transport import SubjectPatterns, TransportPolicy
from ingress.url import parse_networks
from ingress.webhook import COMPILED, WEBHOOK_METHODS, IngressState, webhook, webhook_target

log = logging.getLogger("dlr.ingress")

#: Allocations between two young-generation collections while serving (Python's default: 700).
GC_YOUNG_THRESHOLD = 10_000


class JSONResponse(Response):
    """orjson-rendered JSON response."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _state(request: Request) -> IngressState:
    state: IngressState = request.app.state.ingress
    return state


class _WebhookRoute:
    """The webhook routes as Starlette sees them (reached when `IngressApp` does not take the
    shortcut, e.g. under a root path): the same `webhook()` with the router's path params."""

    def __init__(self, state: IngressState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = scope["path_params"]
        await webhook(self.state, scope, receive, send, params["provider"], params.get("token"))


class IngressApp(Starlette):
    """Starlette, except that webhooks go straight to `webhook()` from the ASGI scope.

    Starlette's middleware, router, Request and Response objects cost about a third of a
    webhook's CPU; the small routes (health, metrics, OpenAPI) and everything that does not
    match a webhook route (404, 405) still go through Starlette.
    """

    ingress: IngressState

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            target = webhook_target(scope)
            if target is not None:
                await webhook(self.ingress, scope, receive, send, *target)
                return
            hsts = self.ingress.transport.hsts(self.ingress.transport.secure(scope))
            if hsts is not None:
                send = _with_header(send, hsts)
        await super().__call__(scope, receive, send)


def _with_header(send: Send, header: tuple[bytes, bytes]) -> Send:
    """`send` that adds `header` to the response start unless the app set it already
    (`webhook()` adds HSTS itself when the router, not the shortcut, reached it)."""

    async def sender(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            if all(key != header[0] for key, _ in headers):
                message = {**message, "headers": [*headers, header]}
        await send(message)

    return sender


async def healthz(request: Request) -> Response:
    """Process is up; `compiled`: whether the webhook path runs as mypyc built it."""
    return JSONResponse({"status": "ok", "compiled": COMPILED})


async def readyz(request: Request) -> Response:
    """Kafka answers: the ingress can acknowledge webhooks."""
    ok = await _state(request).producer.ready()
    return JSONResponse({"status": "ready" if ok else "kafka unavailable"}, 200 if ok else 503)


async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    data = generate_latest(_state(request).metrics.registry)
    return Response(data, media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> Response:
    """The OpenAPI 3.1 description of every route and error."""
    return JSONResponse(openapi_document(sorted(PROVIDERS)))


async def on_http_error(request: Request, exc: Exception) -> Response:
    """Routing errors (no such path, wrong method) as JSON too."""
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    state = _state(request)
    state.metrics.outcome("none", code, str(exc.status_code))
    return JSONResponse({"error": code, "detail": exc.detail}, exc.status_code, headers=exc.headers)


def build_state(settings: IngressSettings, producer: Producer | None = None) -> IngressState:
    """Everything the app needs, from settings (no I/O besides reading dev secrets)."""
    allow = {
        name: parse_networks(settings.provider_setting(name, "allow_ips")) for name in PROVIDERS
    }
    subjects = {n: SubjectPatterns.parse(settings.client_cert_subjects(n)) for n in PROVIDERS}
    return IngressState(
        settings=settings,
        producer=producer
        or RawProducer(
            settings.bootstrap,
            settings.raw_topic,
            settings.produce_timeout_s,
            poll_interval_s=settings.produce_poll_ms / 1000,
            linger_ms=settings.produce_linger_ms,
            wakeups=settings.produce_reports == "wakeup",
        ),
        credentials=active_credentials(settings),
        trusted=parse_networks(settings.trusted_proxies.split(",")),
        allow={k: v for k, v in allow.items() if v},
        token_secrets=tuple(s for s in settings.callback_token_secrets.split(",") if s),
        replay=ReplayCache(settings.replay_window_s),
        limiter=RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst),
        transport=TransportPolicy(settings, subjects),
    )


def create_app(
    settings: IngressSettings | None = None, producer: Producer | None = None
) -> IngressApp:
    """The ASGI app. Kafka being down at start is not fatal: /readyz says so, webhooks get 503."""
    settings = settings or IngressSettings()
    state = build_state(settings, producer)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        missing = sorted(n for n, c in state.credentials.items() if c.empty and n != "sns")
        if missing:
            log.warning(
                "providers without credentials refuse every request", extra={"providers": missing}
            )
        for name, weakness in weaknesses(settings, state.allow).items():
            log.warning("weak provider authentication", extra={"provider": name, "why": weakness})
        if settings.capture_refused:
            state.refused = RefusedCapture(
                settings.bootstrap, settings.refused_topic, state.metrics
            )
        try:
            await state.producer.start()
        except IngressError as exc:
            log.error(
                "kafka not reachable at start; answering 503 until it is",
                extra={"detail": exc.detail},
            )
        # Startup objects (modules, classes, settings) go to the permanent generation: a
        # full collection then walks only what requests created (p99 58 -> 11 ms at 10k/s).
        # A webhook allocates a few dozen containers that reference counting frees; at the
        # default 700 allocations a young collection ran every few requests and walked the
        # in-flight requests' objects each time (README, "Performance and sizing").
        gc.collect()
        gc.freeze()
        threshold = gc.get_threshold()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *threshold[1:])
        try:
            yield
        finally:
            gc.set_threshold(*threshold)
            gc.unfreeze()
            await state.producer.stop()
            if state.refused is not None:
                state.refused.close()
                state.refused = None
            if state.http is not None:
                await state.http.aclose()

    webhooks = _WebhookRoute(state)
    methods = sorted(WEBHOOK_METHODS - {"HEAD"})
    routes = [
        Route("/webhooks/{provider}", webhooks, methods=methods),
        Route("/webhooks/{provider}/{token}", webhooks, methods=methods),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    app = IngressApp(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: on_http_error}
    )
    app.ingress = app.state.ingress = state
    state.metrics.registry.register(tls.Collector())
    state.metrics.compiled = COMPILED
    return app
