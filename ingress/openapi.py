"""OpenAPI 3.1 description of the ingress, including every error code it can answer."""

from __future__ import annotations

from typing import Any

from ingress import errors

_ERRORS: list[type[errors.IngressError]] = [
    errors.MalformedPayload,
    errors.InvalidPayload,
    errors.MissingHeader,
    errors.StaleTimestamp,
    errors.BadSignature,
    errors.NoCredentials,
    errors.ForbiddenSource,
    errors.InsecureTransport,
    errors.ForbiddenClientCertificate,
    errors.UnknownProvider,
    errors.UnknownToken,
    errors.MethodNotAllowed,
    errors.PayloadTooLarge,
    errors.UnsupportedMediaType,
    errors.RateLimited,
    errors.BrokerUnavailable,
    errors.UpstreamUnavailable,
]


def error_responses(
    classes: list[type[errors.IngressError]], statuses: tuple[int, ...] | None = None
) -> dict[str, Any]:
    """OpenAPI responses of these error classes, one per status (only `statuses` if given),
    each listing its codes; 429 and 503 carry `Retry-After`. The sender's API uses it too."""
    by_status: dict[int, list[str]] = {}
    for cls in classes:
        if statuses is None or cls.status in statuses:
            line = f"`{cls.code}`: {(cls.__doc__ or '').strip()}"
            by_status.setdefault(cls.status, []).append(line)
    out: dict[str, Any] = {}
    for status, lines in sorted(by_status.items()):
        entry: dict[str, Any] = {
            "description": "; ".join(lines),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        if status in (429, 503):
            entry["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
        out[str(status)] = entry
    return out


def openapi_document(providers: list[str]) -> dict[str, Any]:
    """The document served at /openapi.json."""
    provider_param = {
        "name": "provider",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": providers},
        "description": "Provider slug; unknown slugs answer 404 unknown_provider.",
    }
    token_param = {
        "name": "token",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "HMAC-signed per-message callback token (tenant, campaign, ref).",
    }
    body = {
        "required": False,
        "content": {
            media: {"schema": {"type": "string"}}
            for media in (
                "application/json",
                "application/x-www-form-urlencoded",
                "text/plain",
            )
        },
        "description": "The provider's raw webhook body, verified byte for byte.",
    }
    ok = {
        "description": "Verified and acknowledged by Kafka (or a replay already acknowledged).",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}},
    }
    webhook_op = {
        "summary": "Receive a delivery receipt",
        "parameters": [provider_param],
        "requestBody": body,
        "responses": {"200": ok, **error_responses(_ERRORS)},
    }
    get_op = {k: v for k, v in webhook_op.items() if k != "requestBody"}
    token_op = {**webhook_op, "parameters": [provider_param, token_param]}
    plain = {"responses": {"200": {"description": "OK"}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "DLR ingress", "version": "1.0.0"},
        "paths": {
            "/webhooks/{provider}": {
                "post": webhook_op,
                "get": get_op,
            },
            "/webhooks/{provider}/{token}": {"post": token_op},
            "/healthz": {"get": plain},
            "/readyz": {
                "get": {
                    "responses": {
                        "200": {"description": "Kafka reachable"},
                        "503": {"description": "Kafka unreachable"},
                    }
                }
            },
            "/metrics": {"get": {"responses": {"200": {"description": "Prometheus text"}}}},
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "detail"],
                    "properties": {
                        "error": {"type": "string", "enum": sorted({c.code for c in _ERRORS})},
                        "detail": {"type": "string"},
                    },
                },
                "Accepted": {
                    "type": "object",
                    "properties": {
                        "status": {"type": "string", "enum": ["accepted", "duplicate"]},
                        "records": {"type": "integer"},
                    },
                },
            }
        },
    }
