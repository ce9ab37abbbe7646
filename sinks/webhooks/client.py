"""`WebhookClient.deliver`: one payload to one endpoint, signed, retried, limited.

See the package docstring for the rules; this module is their implementation on aiohttp
(already a dependency: the sink's HTTP server) and tenacity (backoff with full jitter,
stop conditions).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import urlsplit

import aiohttp
from standardwebhooks import Webhook
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from sinks.webhooks.breaker import STATE_VALUE, BreakerPolicy, CircuitBreaker, State
from sinks.webhooks.metrics import WebhookMetrics

__all__ = ["Endpoint", "Outcome", "RetryPolicy", "WebhookClient", "retry_after_seconds"]

#: Statuses that mean "try again later" (besides every 5xx).
RETRYABLE_STATUSES = frozenset({408, 429})
#: How much of a refusal's response body is kept for the dead letter.
ERROR_BODY_BYTES = 300


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where to POST and how to sign. `secrets`: `whsec_...` values, the first signs.

    `signed=False` is for APIs that are not webhook receivers and authenticate otherwise
    (the Alertmanager v2 API): no secret, no `webhook-*` headers; everything else (retries,
    limits, breaker, metrics) is the same.
    """

    url: str
    secrets: tuple[str, ...]
    timeout_s: float = 10.0
    signed: bool = True
    signer: Webhook | None = field(init=False, repr=False, compare=False)
    name: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"endpoint is not an http(s) URL: {self.label(self.url)}")
        signer = None
        if self.signed:
            if not self.secrets:
                raise ValueError(f"endpoint {self.label(self.url)} has no signing secret")
            try:
                signer = Webhook(self.secrets[0])
            except Exception as exc:  # binascii.Error, EmptyWebhookSecretError
                raise ValueError(f"signing secret is not whsec_<base64>: {exc}") from exc
        object.__setattr__(self, "signer", signer)
        object.__setattr__(self, "name", self.label(self.url))

    @staticmethod
    def label(url: str) -> str:
        """Host[:port] and a short hash of the URL: a metric label and a log name that
        never shows the path or query (they may carry tokens)."""
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
        return f"{host}{port}#{hashlib.sha256(url.encode()).hexdigest()[:8]}"

    def headers(self, msg_id: str, payload: str, now: float) -> dict[str, str]:
        """The Standard Webhooks headers of one attempt (only the content type unsigned)."""
        if self.signer is None:
            return {"content-type": "application/json"}
        stamp = int(now)
        signature = self.signer.sign(msg_id, datetime.fromtimestamp(stamp, UTC), payload)
        return {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": signature,
        }


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The retry budget of one delivery and its backoff."""

    #: Attempts in all (the first included).
    attempts: int = 8
    #: No attempt starts later than this after the first one (seconds).
    total_s: float = 300.0
    #: Backoff window of the first retry; doubles per retry (full jitter inside it).
    initial_s: float = 0.5
    #: Largest backoff window (a Retry-After may ask for more).
    max_wait_s: float = 60.0


OutcomeKind = Literal["delivered", "refused", "exhausted"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a delivery ended. `refused`: a permanent status; `exhausted`: the budget ran out."""

    outcome: OutcomeKind
    #: The last HTTP status, None when the last attempt got none (timeout, connection).
    status: int | None
    #: Why the last attempt failed (None when delivered).
    error: str | None
    attempts: int
    #: Seconds from the first attempt to the end.
    seconds: float
    #: The waits between attempts, in order.
    delays: tuple[float, ...] = ()

    @property
    def delivered(self) -> bool:
        """True when the endpoint answered 2xx."""
        return self.outcome == "delivered"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for a dead letter."""
        return {
            "outcome": self.outcome,
            "status": self.status,
            "error": self.error,
            "attempts": self.attempts,
            "seconds": round(self.seconds, 3),
            "delays": [round(d, 3) for d in self.delays],
        }


class _Retryable(Exception):
    """An attempt that may succeed later."""

    def __init__(self, status: int | None, error: str, retry_after: float | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.retry_after = retry_after


class _GiveUp(Exception):
    """The budget cannot cover the wait the endpoint needs (open circuit, Retry-After)."""

    def __init__(self, status: int | None, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


class _Deadline(stop_base):
    """Stop when the next attempt would start after the delivery's deadline."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return time.monotonic() + retry_state.upcoming_sleep >= self.deadline


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """A Retry-After header (seconds or an HTTP date) as seconds from now, if valid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


class _EndpointState:
    """Per endpoint: the concurrency limit, the breaker, the metrics' labelled children."""

    def __init__(
        self, endpoint: Endpoint, concurrency: int, policy: BreakerPolicy, metrics: WebhookMetrics
    ) -> None:
        name = endpoint.name
        self.limit = asyncio.Semaphore(concurrency)
        self.timeout = aiohttp.ClientTimeout(total=endpoint.timeout_s)
        self.metrics = metrics
        self.name = name
        self.seconds = metrics.attempt_seconds.labels(name)
        self.retries = metrics.retries.labels(name)
        self.in_flight = metrics.in_flight.labels(name)
        self.results = {
            r: metrics.attempts.labels(name, r)
            for r in ("2xx", "3xx", "4xx", "5xx", "timeout", "error")
        }
        self.outcomes = {
            o: metrics.deliveries.labels(name, o) for o in ("delivered", "refused", "exhausted")
        }
        gauge = metrics.circuit_state.labels(name)
        gauge.set(0)
        opened = metrics.circuit_opened.labels(name)

        def on_change(state: State) -> None:
            gauge.set(STATE_VALUE[state])
            if state == "open":
                opened.inc()

        self.breaker = CircuitBreaker(policy, on_change=on_change)


@dataclass(slots=True)
class _Delivery:
    """One `deliver` call: what goes where, and how it went so far."""

    state: _EndpointState
    endpoint: Endpoint
    msg_id: str
    payload: bytes
    #: The payload as text (what the signature covers).
    text: str
    event_type: str
    started: float
    #: No attempt starts after this (monotonic seconds).
    deadline: float
    attempts: int = 1
    delays: list[float] = field(default_factory=list)


class WebhookClient:
    """Delivers payloads to endpoints (see the package docstring). Use as
    `async with WebhookClient(...) as client:` or call `start()` / `close()`."""

    def __init__(
        self,
        retry: RetryPolicy | None = None,
        *,
        breaker: BreakerPolicy | None = None,
        concurrency: int = 16,
        metrics: WebhookMetrics | None = None,
        user_agent: str = "dlr-webhooks/1",
    ) -> None:
        self.retry = retry or RetryPolicy()
        self.breaker = breaker or BreakerPolicy()
        self.concurrency = concurrency
        self.metrics = metrics or WebhookMetrics()
        self.user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None
        self._endpoints: dict[str, _EndpointState] = {}
        self._jitter = wait_random_exponential(
            multiplier=self.retry.initial_s, max=self.retry.max_wait_s
        )
        self._retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry.attempts),  # and the deadline, per delivery
            wait=self._wait,
            retry=retry_if_exception_type(_Retryable),
            reraise=True,
        )

    async def start(self) -> None:
        """Open the connection pool (limits are per endpoint, not per pool)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
                headers={"user-agent": self.user_agent},
                auto_decompress=False,
            )

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def circuit(self, endpoint: Endpoint) -> CircuitBreaker:
        """The endpoint's circuit breaker (for status pages and tests)."""
        return self._state(endpoint).breaker

    def _state(self, endpoint: Endpoint) -> _EndpointState:
        state = self._endpoints.get(endpoint.url)
        if state is None:
            state = self._endpoints[endpoint.url] = _EndpointState(
                endpoint, self.concurrency, self.breaker, self.metrics
            )
        return state

    def _wait(self, retry_state: RetryCallState) -> float:
        """Full-jitter backoff, but never less than the Retry-After the endpoint asked."""
        wait: float = self._jitter(retry_state)
        outcome = retry_state.outcome
        failure = outcome.exception() if outcome is not None else None
        if isinstance(failure, _Retryable) and failure.retry_after is not None:
            wait = max(wait, failure.retry_after)
        return wait

    async def deliver(
        self, endpoint: Endpoint, msg_id: str, payload: bytes, event_type: str
    ) -> Outcome:
        """POST `payload` (JSON bytes) with `webhook-id: msg_id`; never raises for HTTP
        or network failures: the Outcome says how it ended. `event_type` names what is
        delivered in logs and errors."""
        started = time.monotonic()
        d = _Delivery(
            self._state(endpoint),
            endpoint,
            msg_id,
            payload,
            payload.decode(),
            event_type,
            started,
            started + self.retry.total_s,
        )
        try:  # the first attempt without the retry machinery: most succeed
            status = await self._attempt(d)
        except _Retryable as failure:
            return await self._retry(d, failure)
        except _GiveUp as exc:
            return self._end(d, "exhausted", exc.status, exc.error)
        return self._verdict(d, status)

    async def _retry(self, d: _Delivery, first: _Retryable) -> Outcome:
        """The retries after a retryable first attempt, in tenacity's loop (whose first
        attempt re-raises that failure, so waits and stops count from the real first)."""
        failure: _Retryable | None = first

        def slept(retry_state: RetryCallState) -> None:
            d.delays.append(retry_state.upcoming_sleep)

        retrying = self._retrying.copy(
            before_sleep=slept,
            stop=stop_after_attempt(self.retry.attempts) | _Deadline(d.deadline),
        )
        status: int | None = None
        try:
            async for attempt in retrying:
                with attempt:
                    if failure is not None:
                        replayed, failure = failure, None
                        raise replayed
                    d.attempts += 1
                    d.state.retries.inc()
                    status = await self._attempt(d)
        except (_Retryable, _GiveUp) as exc:
            return self._end(d, "exhausted", exc.status, exc.error)
        return self._verdict(d, status)

    def _verdict(self, d: _Delivery, status: int | None) -> Outcome:
        if status is not None and 200 <= status < 300:
            return self._end(d, "delivered", status, None)
        return self._end(d, "refused", status, f"{d.event_type} refused with HTTP {status}")

    def _end(
        self, d: _Delivery, kind: OutcomeKind, status: int | None, error: str | None
    ) -> Outcome:
        d.state.outcomes[kind].inc()
        seconds = time.monotonic() - d.started
        return Outcome(kind, status, error, d.attempts, seconds, tuple(d.delays))

    async def _attempt(self, d: _Delivery) -> int:
        """One request: the status when final (2xx or permanent), else _Retryable."""
        state = d.state
        breaker = state.breaker
        while (wait := breaker.acquire()) > 0:  # open circuit: wait for the probe
            if time.monotonic() + wait > d.deadline:
                raise _GiveUp(None, f"circuit open for {state.name}")
            await asyncio.sleep(wait)
        verdict = False
        try:
            async with state.limit:
                status, retry_after, body = await self._post(d)
            if status is None:
                breaker.failure()
                verdict = True
                raise _Retryable(None, body)
            if status >= 500 or status == 408:
                breaker.failure()
                verdict = True
                raise _Retryable(status, f"HTTP {status}: {body}", retry_after)
            breaker.success()  # the endpoint answered (2xx, 4xx, 429 alike)
            verdict = True
            if status == 429:
                if retry_after is not None and time.monotonic() + retry_after > d.deadline:
                    raise _GiveUp(status, f"HTTP 429, Retry-After {retry_after:.0f}s beyond budget")
                raise _Retryable(status, f"HTTP 429: {body}", retry_after)
            return status
        finally:
            if not verdict:
                breaker.release()

    async def _post(self, d: _Delivery) -> tuple[int | None, float | None, str]:
        """(status or None, Retry-After seconds, error text) of one POST."""
        if self._session is None:
            raise RuntimeError("WebhookClient not started")
        state, endpoint = d.state, d.endpoint
        now = time.time()
        headers = endpoint.headers(d.msg_id, d.text, now)
        state.in_flight.inc()
        started = time.perf_counter()
        try:
            async with self._session.post(
                endpoint.url,
                data=d.payload,
                headers=headers,
                timeout=state.timeout,
                allow_redirects=False,
            ) as response:
                status = response.status
                if 200 <= status < 300:
                    await response.read()
                    body, retry_after = "", None
                else:
                    body = (await response.content.read(ERROR_BODY_BYTES)).decode(
                        "utf-8", "replace"
                    )
                    retry_after = retry_after_seconds(response.headers.get("retry-after"), now)
        except TimeoutError:
            state.results["timeout"].inc()
            return None, None, f"timeout after {endpoint.timeout_s:g}s"
        except aiohttp.ClientError as exc:
            state.results["error"].inc()
            return None, None, f"{type(exc).__name__}: {exc}"[:ERROR_BODY_BYTES]
        finally:
            state.in_flight.dec()
            state.seconds.observe(time.perf_counter() - started)
        state.results[f"{min(status // 100, 5)}xx" if status >= 200 else "error"].inc()
        return status, retry_after, body
