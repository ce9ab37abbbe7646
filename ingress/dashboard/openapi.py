"""OpenAPI 3.1 description of the dashboard's JSON endpoints (served at /openapi.json)."""

from __future__ import annotations

from typing import Any

from ingress.dashboard.queries import GROUPS

__all__ = ["openapi_document"]

_WINDOW = {
    "name": "window",
    "in": "query",
    "schema": {"type": "integer", "minimum": 60, "maximum": 2592000, "default": 3600},
    "description": "Window length in seconds: [now - window, now); the previous window of "
    "the same length is the comparison. A message belongs to a window by its first event.",
}
_BY = {
    "name": "by",
    "in": "query",
    "schema": {"type": "string", "enum": list(GROUPS), "default": "carrier"},
    "description": "The dimension to group by.",
}
_COMPARE_BY = {
    "name": "by",
    "in": "query",
    "schema": {
        "type": "string",
        "enum": ["country", "carrier", "region", "country,carrier", "country,region"],
        "default": "country",
    },
    "description": "The destination providers are compared over (one dimension or a pair).",
}
_COST_BY = {
    **_BY,
    "schema": {"type": "string", "enum": list(GROUPS), "default": "provider"},
}
_RATE = {"type": ["number", "null"], "description": "delivered / attempts (null: no attempts)"}


def _op(summary: str, properties: dict[str, Any], *params: dict[str, Any]) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": list(params),
            "responses": {
                "200": {
                    "description": summary,
                    "content": {
                        "application/json": {"schema": {"type": "object", "properties": properties}}
                    },
                },
                "422": {"description": "`invalid_query`: a bad window or group", **_ERROR},
                "503": {"description": "`store_unavailable`: ClickHouse did not answer", **_ERROR},
            },
        }
    }


_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_POINTS = {"type": "array", "items": {"type": "object"}}


def openapi_document() -> dict[str, Any]:
    """The document served at /openapi.json."""
    number = {"type": "integer"}
    seconds = {"type": ["number", "null"]}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "DLR dashboard",
            "version": "1",
            "description": "Read-only numbers behind the built-in dashboard page (`dlr "
            "dashboard`), from ClickHouse's status snapshot (refreshed every minute; "
            "`as_of` in the summary) and the services' /metrics.",
        },
        "paths": {
            "/api/v1/summary": _op(
                "Headline numbers of the window",
                {
                    "messages": number,
                    "attempts": number,
                    "delivered": number,
                    "failed": number,
                    "pending": {**number, "description": "receipts but no final state yet"},
                    "delivery_rate": _RATE,
                    "previous_delivery_rate": _RATE,
                    "ttd_p50_s": seconds,
                    "ttd_p95_s": seconds,
                    "as_of": {"type": ["string", "null"], "format": "date-time"},
                },
                _WINDOW,
            ),
            "/api/v1/trend": _op(
                "Delivery rate per time bucket of the 8 largest groups",
                {
                    "by": {"type": "string"},
                    "bucket_s": number,
                    "series": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "group": {"type": "string"},
                                "attempts": number,
                                "points": {
                                    "type": "array",
                                    "description": "[epoch ms, delivery rate, attempts]",
                                    "items": {"type": "array"},
                                },
                            },
                        },
                    },
                },
                _WINDOW,
                _BY,
            ),
            "/api/v1/volume": _op(
                "Messages, attempts, delivered, failed and time to deliver per bucket",
                {"bucket_s": number, "points": _POINTS},
                _WINDOW,
            ),
            "/api/v1/reasons": _op(
                "Failure-reason mix of the attempts not delivered",
                {"failed": number, "reasons": _POINTS},
                _WINDOW,
            ),
            "/api/v1/worst": _op(
                "Lowest delivery rates and their change against the previous window",
                {"by": {"type": "string"}, "groups": _POINTS},
                _WINDOW,
                _BY,
            ),
            "/api/v1/alerts": _op(
                "Active alerts and the window's state changes (dlr alerts)",
                {"active": _POINTS, "recent": _POINTS},
                _WINDOW,
            ),
            "/api/v1/health": _op(
                "Each service of DLR_METRICS_TARGETS: up, lag, requests, 5xx, dead letters",
                {"services": _POINTS},
            ),
            "/api/v1/compare": _op(
                "Providers side by side per destination (dlr report --report compare)",
                {
                    "by": {"type": "array", "items": {"type": "string"}},
                    "rows": {
                        "type": "array",
                        "description": "per destination and provider: attempts, delivered, "
                        "delivery_rate, rate_low / rate_high (95 % Wilson interval), "
                        "ttd_p50_s / ttd_p95_s, price_share, spend and cost_per_delivered "
                        "(currency -> amount), best (only where the best provider's "
                        "interval lies above every other's)",
                        "items": {"type": "object"},
                    },
                },
                _WINDOW,
                _COMPARE_BY,
            ),
            "/api/v1/cost": _op(
                "Spend per group and currency (dlr report --report cost)",
                {
                    "by": {"type": "string"},
                    "rows": {
                        "type": "array",
                        "description": "per group and currency (null: messages without a "
                        "price): messages, delivered, segments, spend, spend_not_delivered, "
                        "cost_per_delivered, price_share; never summed across currencies",
                        "items": {"type": "object"},
                    },
                },
                _WINDOW,
                _COST_BY,
            ),
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "detail"],
                    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
                }
            }
        },
    }
