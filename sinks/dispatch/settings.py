"""`dlr dispatch` settings: where actions go, how they are signed, the retry budget.

Extends the shared `CommonSettings` (Kafka, topics); a field `x` is `DLR_X`. `dlr
dispatch` builds it once and passes it to `sinks.dispatch.service.main_async`.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import Field, field_validator

from schemas.settings import CommonSettings, split_list

__all__ = ["DispatchSettings"]


class DispatchSettings(CommonSettings):
    """Everything `dlr dispatch` reads. Field name `x` is environment variable `DLR_X`."""

    dispatch_group: str = Field("dlr-dispatch", description="Consumer group of dlr.actions.v1.")
    action_endpoints: str = Field(
        "{}",
        description='JSON object: action type -> list of URLs, "*" for every type, e.g. '
        '{"fallback": ["https://mail.internal/hooks/sms-failed"], "*": ["https://audit/x"]}.',
    )
    action_signing_secrets: str = Field(
        "", description="Comma-separated whsec_<base64> secrets; the first signs (a secret)."
    )
    dispatch_attempts: int = Field(8, ge=1, description="Attempts per action and endpoint.")
    dispatch_retry_total_s: float = Field(
        300.0, gt=0, description="No attempt starts later than this after the first one."
    )
    dispatch_retry_initial_s: float = Field(
        0.5, gt=0, description="Backoff window of the first retry (doubles, full jitter)."
    )
    dispatch_retry_max_s: float = Field(60.0, gt=0, description="Largest backoff window.")
    dispatch_timeout_s: float = Field(10.0, gt=0, description="Timeout of one HTTP attempt.")
    dispatch_concurrency: int = Field(16, ge=1, description="Requests in flight per endpoint.")
    dispatch_max_in_flight: int = Field(
        5000,
        ge=1,
        description="Actions being delivered at once; beyond it no more are fetched.",
    )
    dispatch_breaker_failures: int = Field(
        5, ge=1, description="Consecutive retryable failures that open an endpoint's circuit."
    )
    dispatch_breaker_cooldown_s: float = Field(
        30.0, gt=0, description="Seconds an open circuit waits before one probe."
    )
    dispatch_metrics_host: str = Field("127.0.0.1", description="0.0.0.0 in containers.")
    dispatch_metrics_port: int = 9110

    @field_validator("action_endpoints")
    @classmethod
    def _routes_are_json(cls, value: str) -> str:
        parse_routes(value)
        return value

    @property
    def action_routes(self) -> dict[str, tuple[str, ...]]:
        """`action_endpoints` parsed: type (or "*") -> URLs."""
        return parse_routes(self.action_endpoints)

    @property
    def signing_secrets(self) -> tuple[str, ...]:
        """`action_signing_secrets` as a tuple, the signing one first."""
        return split_list(self.action_signing_secrets)


def parse_routes(text: str) -> dict[str, tuple[str, ...]]:
    """The JSON of DLR_ACTION_ENDPOINTS, checked: {type: [url, ...]}."""
    try:
        data: Any = orjson.loads(text or "{}")
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"DLR_ACTION_ENDPOINTS is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError("DLR_ACTION_ENDPOINTS must be a JSON object {type: [url, ...]}")
    routes: dict[str, tuple[str, ...]] = {}
    for kind, urls in data.items():
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise ValueError(f"DLR_ACTION_ENDPOINTS[{kind!r}] must be a list of URLs")
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"DLR_ACTION_ENDPOINTS[{kind!r}]: not an http(s) URL")
        routes[kind] = tuple(urls)
    return routes
