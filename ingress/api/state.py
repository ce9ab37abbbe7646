"""What every endpoint of the sender's API shares, and the key check in front of each.

`ApiState` is built once per app from the settings (`app.build_state`); `requires(scope,
route)` wraps an endpoint: key, scope, per-key rate limit, then the endpoint, counted by
route and outcome. Endpoints live in `app.py` (messages) and `privacy.py` (suppressions,
erasure); both import this module, never each other.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from ingress.api.keys import Keys
from ingress.api.lookup import Store
from ingress.api.metrics import ApiMetrics
from ingress.api.settings import ApiSettings
from ingress.api.suppressions import SuppressionFeed, SuppressionList
from ingress.errors import RateLimited
from ingress.producer import RawProducer
from ingress.ratelimit import RateLimiter

__all__ = ["ApiState", "Endpoint", "requires", "state_of"]

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass
class ApiState:
    """Everything the endpoints share, built once per app from the settings."""

    settings: ApiSettings
    keys: Keys
    producer: RawProducer
    store: Store
    limiter: RateLimiter
    metrics: ApiMetrics
    #: The suppression list (this process's copy of dlr.suppressions.v1) and its feed.
    suppressions: SuppressionList
    feed: SuppressionFeed
    #: Writes suppression entries (PUT/DELETE /v1/suppressions/...).
    suppression_producer: RawProducer


def state_of(request: Request) -> ApiState:
    """The app's shared state."""
    state: ApiState = request.app.state.api
    return state


def requires(scope: str, route: str) -> Callable[[Endpoint], Endpoint]:
    """An endpoint that needs a key with `scope` (the key lands in `request.state.key`);
    `route` names it in metrics and logs."""

    def wrap(endpoint: Endpoint) -> Endpoint:
        async def guarded(request: Request) -> Response:
            state = state_of(request)
            request.state.route = route
            started = time.perf_counter()
            state.metrics.in_flight.inc()
            try:
                key = state.keys.authenticate(request.headers.get("authorization"))
                request.state.key = key
                key.require(scope)
                if not state.limiter.allow(key.id):
                    raise RateLimited(f"over the rate limit of key {key.id!r}")
                response = await endpoint(request)
                state.metrics.requests.labels(route, "ok", str(response.status_code)).inc()
                return response
            finally:
                state.metrics.in_flight.dec()
                if route.startswith("lookup"):
                    state.metrics.lookup_seconds.observe(time.perf_counter() - started)

        guarded.__name__ = endpoint.__name__
        guarded.__doc__ = endpoint.__doc__
        return guarded

    return wrap
