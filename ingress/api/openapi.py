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
    api_errors.MessageNotFound,
    errors.PayloadTooLarge,
    api_errors.BatchTooLarge,
    errors.UnsupportedMediaType,
    api_errors.InvalidRegistration,
    api_errors.InvalidQuery,
    api_errors.InvalidNumber,
    api_errors.InvalidSuppression,
    errors.RateLimited,
    errors.BrokerUnavailable,
    api_errors.StoreUnavailable,
    api_errors.SuppressionsLoading,
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


def _privacy_paths(auth: list[dict[str, list[str]]]) -> dict[str, Any]:
    """The suppression list and erasure routes (ingress/api/privacy.py)."""
    number = {
        "name": "number",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "a phone number with its country code, any written form "
        "(+1 (415) 555-0100, 14155550100): normalised to E.164",
    }
    change = {
        "required": False,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "reason": {"type": "string", "maxLength": 128},
                        "actor": {"type": "string", "maxLength": 128},
                    },
                }
            }
        },
    }
    entry = {
        "200": {
            "description": "the entry written (SuppressionEntry)",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/SuppressionEntry"}}
            },
        }
    }
    check = {
        "200": {
            "description": "{number, suppressed[, reason, source, since]}",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Check"}}},
        }
    }
    return {
        "/v1/suppressions/{number}": {
            "get": {"summary": "May this number be sent to? (suppressions:read)",
                    "security": auth, "parameters": [number],
                    "responses": {**check, **_responses(401, 403, 422, 429, 503)}},
            "put": {"summary": "Suppress the number (suppressions:write, no tenant)",
                    "security": auth, "parameters": [number], "requestBody": change,
                    "responses": {**entry, **_responses(400, 401, 403, 415, 422, 429, 503)}},
            "delete": {"summary": "Allow the number again (suppressions:write, no tenant)",
                       "security": auth, "parameters": [number], "requestBody": change,
                       "responses": {**entry, **_responses(400, 401, 403, 415, 422, 429, 503)}},
        },
        "/v1/suppressions:check": {
            "post": {
                "summary": "Check a batch of numbers (suppressions:read)",
                "security": auth,
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["numbers"],
                    "properties": {"numbers": {"type": "array", "items": {"type": "string"},
                                               "maxItems": 1000}}}}}},
                "responses": {"200": {"description": "{results: [Check or {input, error}], count}"},
                              **_responses(400, 401, 403, 413, 415, 422, 429, 503)},
            }
        },
        "/v1/suppressions": {
            "get": {
                "summary": "Entries changed since a time, for syncing a provider's list "
                "(suppressions:read, no tenant)",
                "security": auth,
                "parameters": [
                    {"name": "since", "in": "query", "required": False,
                     "schema": {"type": "string"},
                     "description": "RFC 3339 time or unix seconds; everything when absent"},
                    {"name": "format", "in": "query", "required": False,
                     "schema": {"type": "string", "enum": ["jsonl", "csv"]}},
                ],
                "responses": {
                    "200": {"description": "one SuppressionEntry per line (or a CSV row); "
                            "X-Export-Until is the since of the next export",
                            "headers": {"X-Export-Until": {"schema": {"type": "string"}}}},
                    **_responses(401, 403, 422, 429, 503),
                },
            }
        },
        "/v1/subjects/{number}": {
            "delete": {
                "summary": "Erase every trace of a phone number (subjects:erase, no tenant)",
                "security": auth,
                "parameters": [number, {"name": "actor", "in": "query", "required": False,
                                        "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "what was done (ClickHouse values cleared, the "
                            "suppression entry, Kafka records) and what stays until when"},
                    **_responses(401, 403, 422, 429, 503),
                },
            }
        },
    }  # fmt: skip


def _suppression_schemas() -> dict[str, Any]:
    text = {"type": ["string", "null"]}
    return {
        "SuppressionEntry": {
            "type": "object",
            "properties": {
                "number_hash": {"type": "string"}, "number": text,
                "suppressed": {"type": "boolean"}, "reason": {"type": "string"},
                "source": {"type": "string", "enum": ["receipt", "inbound", "api", "cli"]},
                "since": {"type": "string", "format": "date-time"}, "actor": text,
                "provider": text, "message_id": text, "keyword": text, "language": text,
                "erased": {"type": "boolean"},
            },
        },
        "Check": {
            "type": "object",
            "required": ["number", "suppressed"],
            "properties": {
                "number": {"type": "string", "description": "E.164"},
                "suppressed": {"type": "boolean"}, "reason": {"type": "string"},
                "source": {"type": "string"}, "since": {"type": "string", "format": "date-time"},
            },
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
                **_suppression_schemas(),
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
            **_privacy_paths(auth),
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
