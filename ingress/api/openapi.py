"""OpenAPI 3.1 description of the sender's API, every error code included.

The registration schema is the pydantic model's own JSON Schema, so the document cannot
drift from what the API validates.
"""

from __future__ import annotations

from typing import Any

from ingress import errors
from ingress.api import errors as api_errors
from ingress.api.keys import SCOPES
from ingress.api.models import Registration
from ingress.openapi import error_responses

_ERRORS: list[type[errors.IngressError]] = [
    api_errors.MalformedJson,
    api_errors.MissingApiKey,
    api_errors.InvalidApiKey,
    api_errors.InsufficientScope,
    api_errors.TenantMismatch,
    errors.InsecureTransport,
    errors.ForbiddenClientCertificate,
    api_errors.MessageNotFound,
    errors.PayloadTooLarge,
    api_errors.BatchTooLarge,
    errors.UnsupportedMediaType,
    api_errors.InvalidRegistration,
    api_errors.InvalidQuery,
    errors.RateLimited,
    errors.BrokerUnavailable,
    api_errors.StoreUnavailable,
]

_STATES = [
    "registered", "accepted", "queued", "sent", "delivered", "undelivered", "failed",
    "rejected", "expired", "unknown",
]  # fmt: skip


def _responses(*statuses: int) -> dict[str, Any]:
    return error_responses(_ERRORS, statuses)


def _message_schema() -> dict[str, Any]:
    nullable_text = {"type": ["string", "null"]}
    when = {"type": ["string", "null"], "format": "date-time"}
    return {
        "type": "object",
        "properties": {
            "message_id": {"type": "string"},
            "requested_id": {"type": "string", "description": "the part id that was asked"},
            "provider": {"type": "string"},
            "provider_message_id": {"type": "string"},
            "state": {"type": "string", "enum": _STATES},
            "is_final": {"type": "boolean"},
            "failure_reason": nullable_text,
            "provider_status": nullable_text,
            "provider_error_code": nullable_text,
            "provider_error_text": nullable_text,
            **{name: nullable_text for name in (
                "carrier", "mcc", "mnc", "country", "region", "campaign", "tenant",
                "client_ref", "sender")},
            "times": {"type": "object", "properties": {name: when for name in (
                "submitted_at", "sent_at", "delivered_at", "first_event_at", "last_event_at")}},
            "registered": {"type": "boolean"},
            "unreported": {
                "type": "boolean",
                "description": "registered, no receipt DLR_UNREPORTED_AFTER_S after submission",
            },
            "consent": {"type": ["object", "null"]},
            "parts": {"type": ["array", "null"], "items": {"type": "object"}},
            "events": {"type": "array", "items": {"type": "object"},
                       "description": "canonical events, in the worker's order"},
            "freshness": {"type": "object", "properties": {"as_of": when, "updated_at": when}},
        },
    }  # fmt: skip


def openapi_document() -> dict[str, Any]:
    """The document served at /openapi.json."""
    registration = Registration.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions = registration.pop("$defs", {})
    message_id = {
        "name": "message_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "'<provider>:<provider message id>'; a part's id finds its message",
    }
    auth: list[dict[str, list[str]]] = [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "DLR sender API",
            "version": "1",
            "description": "Register each sent message with its consent; ask what became of it.",
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "scopes: "
                    + "; ".join(f"{name}: {what}" for name, what in SCOPES.items()),
                }
            },
            "schemas": {
                "Registration": registration,
                **definitions,
                "Message": _message_schema(),
                "Error": {
                    "type": "object",
                    "required": ["error", "detail"],
                    "properties": {
                        "error": {"type": "string"},
                        "detail": {"type": "string"},
                        "errors": {"type": "array", "items": {"type": "object"}},
                    },
                },
            },
        },
        "paths": {
            "/v1/messages": {
                "post": {
                    "summary": "Register sent messages (messages:write), one or a batch",
                    "security": auth,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/Registration"},
                                        {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/Registration"},
                                        },
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "202": {"description": "Kafka acknowledged every registration"},
                        **_responses(400, 401, 403, 413, 415, 422, 429, 503),
                    },
                },
                "get": {
                    "summary": "Messages with a client_ref (messages:read)",
                    "security": auth,
                    "parameters": [
                        {
                            "name": "client_ref",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": {"description": "{client_ref, count, messages: [Message]}"},
                        **_responses(401, 403, 422, 429, 503),
                    },
                },
            },
            "/v1/messages/{message_id}": {
                "get": {
                    "summary": "What became of a message (messages:read)",
                    "security": auth,
                    "parameters": [message_id],
                    "responses": {
                        "200": {
                            "description": "the message",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Message"}
                                }
                            },
                        },
                        **_responses(401, 403, 404, 429, 503),
                    },
                }
            },
            "/healthz": {
                "get": {"summary": "Process up", "responses": {"200": {"description": "ok"}}}
            },
            "/readyz": {
                "get": {
                    "summary": "Kafka reachable",
                    "responses": {"200": {"description": "ready"}, "503": {"description": "not"}},
                }
            },
            "/metrics": {
                "get": {"summary": "Prometheus", "responses": {"200": {"description": "text"}}}
            },
        },
    }
