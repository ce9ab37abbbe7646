"""How the sender's API refuses a request (the ingress's `{"error", "detail"}` shape).

    IngressError (ingress/errors.py)
    ├── PayloadTooLarge            413   body over DLR_API_MAX_BODY_BYTES (reused)
    ├── UnsupportedMediaType       415   not application/json (reused)
    ├── RateLimited                429   over the key's rate (reused)
    ├── BrokerUnavailable          503   Kafka did not acknowledge in time (reused)
    └── ApiError
        ├── MissingApiKey          401   no `Authorization: Bearer <key>`
        ├── InvalidApiKey          401   no configured key has that SHA-256
        ├── InsufficientScope      403   the key lacks the route's scope
        ├── TenantMismatch         403   a key confined to a tenant writes another tenant
        ├── MessageNotFound        404   unknown message id (or another tenant's)
        ├── BatchTooLarge          413   more messages than DLR_API_MAX_BATCH
        ├── MalformedJson          400   the body is not JSON
        ├── InvalidRegistration    422   a message breaks the schema (`errors` lists where)
        ├── InvalidQuery           422   a lookup's parameters are wrong
        ├── InvalidNumber          422   not a phone number with its country code
        ├── InvalidSuppression     422   a suppression change's body is wrong
        ├── StoreUnavailable       503   ClickHouse did not answer in time
        └── SuppressionsLoading    503   the suppression list is still being read

Handlers in `ingress/api/app.py` turn these into JSON and metrics; endpoints never catch.
"""

from __future__ import annotations

from typing import Any

from ingress.errors import IngressError

__all__ = [
    "ApiError",
    "BatchTooLarge",
    "InsufficientScope",
    "InvalidApiKey",
    "InvalidNumber",
    "InvalidQuery",
    "InvalidRegistration",
    "InvalidSuppression",
    "MalformedJson",
    "MessageNotFound",
    "MissingApiKey",
    "StoreUnavailable",
    "SuppressionsLoading",
    "TenantMismatch",
]


class ApiError(IngressError):
    """Base of the API's own refusals; `errors` (a list) goes into the body when set."""

    def __init__(self, detail: str = "", errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.errors = errors


class MissingApiKey(ApiError):
    """No `Authorization: Bearer <key>` header."""

    status = 401
    code = "missing_api_key"


class InvalidApiKey(ApiError):
    """The bearer token is not a configured key."""

    status = 401
    code = "invalid_api_key"


class InsufficientScope(ApiError):
    """The key lacks the scope the route needs."""

    status = 403
    code = "insufficient_scope"


class TenantMismatch(ApiError):
    """A key confined to one tenant tried to write another tenant's message."""

    status = 403
    code = "tenant_mismatch"


class MessageNotFound(ApiError):
    """No such message (or it belongs to a tenant the key cannot see)."""

    status = 404
    code = "message_not_found"


class BatchTooLarge(ApiError):
    """More messages in one request than the configured batch limit."""

    status = 413
    code = "batch_too_large"


class MalformedJson(ApiError):
    """The body is not JSON."""

    status = 400
    code = "malformed_json"


class InvalidRegistration(ApiError):
    """A registration breaks the schema; `errors` says which message and field."""

    status = 422
    code = "invalid_registration"


class InvalidQuery(ApiError):
    """The lookup's parameters are missing or wrong."""

    status = 422
    code = "invalid_query"


class StoreUnavailable(ApiError):
    """ClickHouse did not answer in time; retry later."""

    status = 503
    code = "store_unavailable"


class InvalidNumber(ApiError):
    """Not a phone number written with its country code (E.164 or a written form of it)."""

    status = 422
    code = "invalid_number"


class InvalidSuppression(ApiError):
    """A suppression change's body is wrong (reason or actor)."""

    status = 422
    code = "invalid_suppression"


class SuppressionsLoading(ApiError):
    """The suppression list is still being read from Kafka; retry shortly."""

    status = 503
    code = "suppressions_loading"
