"""The privacy routes of the sender's API: the suppression list and erasure.

    GET    /v1/suppressions/{number}     suppressions:read   may I send to this number?
    POST   /v1/suppressions:check        suppressions:read   the same for a batch
    PUT    /v1/suppressions/{number}     suppressions:write  suppress it (reason, actor)
    DELETE /v1/suppressions/{number}     suppressions:write  allow it again (reason, actor)
    GET    /v1/suppressions?since=...    suppressions:read   changes since, JSON lines or CSV
    DELETE /v1/subjects/{number}         subjects:erase      erase every trace of the number

A number may be written any way that keeps its country code (`+1 (415) 555-0100`,
`14155550100`, `tel:+1-415-555-0100`): it is normalised to E.164 first
(`schemas.phone.e164`), so every form is one entry. The list is the deployment's, not a
tenant's: a key confined to a tenant may check numbers, but writing entries, exporting
the list (other tenants' numbers) and erasing (every tenant's rows) need a key without a
tenant (`403 tenant_mismatch` otherwise).

Checks read this process's copy of the list (`ingress/api/suppressions.py`): no I/O, so
they stay in microseconds; `503 suppressions_loading` until the copy is complete.
Changes are written to `dlr.suppressions.v1` and answered once Kafka acknowledged them.
Logs never carry a number, only its hash's first characters.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka.errors import KafkaError
from clickhouse_connect.driver.exceptions import ClickHouseError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ingress.api import erasure
from ingress.api.errors import (
    BatchTooLarge,
    InvalidNumber,
    InvalidQuery,
    InvalidSuppression,
    MalformedJson,
    StoreUnavailable,
    SuppressionsLoading,
    TenantMismatch,
)
from ingress.api.keys import ApiKey
from ingress.api.state import ApiState, requires, state_of
from ingress.api.suppressions import export, read_entry
from ingress.app import JSONResponse
from ingress.body import read_limited
from ingress.errors import BrokerUnavailable, UnsupportedMediaType
from schemas.phone import e164, number_hash
from schemas.suppressions import SuppressionEntry

__all__ = [
    "EXPORT_FIELDS",
    "add",
    "check_many",
    "check_one",
    "csv_header",
    "csv_line",
    "erase_subject",
    "export_changes",
    "export_row",
    "parse_since",
    "remove",
]

log = logging.getLogger("dlr.api")

#: Columns of the export (CSV header order; JSON lines carry the same keys).
EXPORT_FIELDS: tuple[str, ...] = (
    "number", "number_hash", "suppressed", "reason", "source", "since", "actor", "provider",
    "message_id", "keyword", "language", "erased",
)  # fmt: skip
_TEXT_LIMIT = 128


def _number(text: str) -> str:
    number = e164(text)
    if number is None:
        raise InvalidNumber("not a phone number with its country code (E.164, e.g. +14155550100)")
    return number


def _deployment_key(key: ApiKey, what: str) -> None:
    if key.tenant is not None:
        raise TenantMismatch(f"{what} is deployment-wide: use a key without a tenant")


def _answer(state: ApiState, number: str) -> dict[str, Any]:
    hit = state.suppressions.lookup(number_hash(number, state.settings.pii_salt))
    if hit is None:
        state.metrics.checks.labels("allowed").inc()
        return {"number": number, "suppressed": False}
    state.metrics.checks.labels("suppressed").inc()
    return {
        "number": number,
        "suppressed": True,
        "reason": hit.reason,
        "source": hit.source,
        "since": hit.since,
    }


def _loaded(state: ApiState) -> None:
    if not state.feed.loaded.is_set():
        raise SuppressionsLoading("the suppression list is still being read from Kafka")


@requires("suppressions:read", "suppression_check")
async def check_one(request: Request) -> Response:
    """GET /v1/suppressions/{number}: whether it may be sent to."""
    state = state_of(request)
    number = _number(request.path_params["number"])
    _loaded(state)
    return JSONResponse(_answer(state, number))


async def _json_body(request: Request, limit: int) -> Any:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise UnsupportedMediaType(f"send application/json, not {content_type or 'nothing'!r}")
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.scope["headers"]}
    body = await read_limited(request.receive, headers, limit)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedJson(f"body is not JSON: {exc}") from exc


@requires("suppressions:read", "suppression_check_batch")
async def check_many(request: Request) -> Response:
    """POST /v1/suppressions:check `{"numbers": [...]}` (or a bare list): one answer per
    number, in order; a number that is not one gets `error` instead of failing the rest."""
    state = state_of(request)
    data = await _json_body(request, state.settings.api_max_body_bytes)
    numbers = data.get("numbers") if isinstance(data, dict) else data
    if not isinstance(numbers, list) or not all(isinstance(n, str) for n in numbers):
        raise InvalidQuery('send {"numbers": ["+14155550100", ...]}')
    if len(numbers) > state.settings.api_max_check:
        raise BatchTooLarge(f"{len(numbers)} numbers; at most {state.settings.api_max_check}")
    _loaded(state)
    results: list[dict[str, Any]] = []
    for text in numbers:
        number = e164(text)
        if number is None:
            state.metrics.checks.labels("invalid").inc()
            results.append(
                {"input": text[:64], "number": None, "suppressed": None, "error": "invalid_number"}
            )
        else:
            results.append(_answer(state, number))
    return JSONResponse({"results": results, "count": len(results)})


def _text(data: dict[str, Any], name: str, default: str | None) -> str | None:
    value = data.get(name, default)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > _TEXT_LIMIT:
        raise InvalidSuppression(f"{name} must be a string of 1-{_TEXT_LIMIT} characters")
    return value.strip()


async def _change(request: Request, suppressed: bool) -> Response:
    state = state_of(request)
    key: ApiKey = request.state.key
    _deployment_key(key, "the suppression list")
    number = _number(request.path_params["number"])
    data: dict[str, Any] = {}
    if request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers:
        body = await _json_body(request, state.settings.api_max_body_bytes)
        if body is not None and not isinstance(body, dict):
            raise InvalidSuppression('send {"reason": "...", "actor": "..."} or nothing')
        data = body or {}
    unknown = sorted(set(data) - {"reason", "actor"})
    if unknown:
        raise InvalidSuppression(f"unknown fields {unknown}")
    reason = _text(data, "reason", "manual" if suppressed else "removed") or "manual"
    given = _text(data, "actor", None)
    entry = SuppressionEntry.now(
        number_hash=number_hash(number, state.settings.pii_salt),
        number=number,
        suppressed=suppressed,
        reason=reason,
        source="api",
        actor=f"key:{key.id}/{given}" if given else f"key:{key.id}",
    )
    await state.suppression_producer.send_all([(entry.key(), entry.to_json())])
    state.suppressions.apply(entry.number_hash, entry)  # read your own write at once
    state.metrics.suppression_changes.labels("add" if suppressed else "remove").inc()
    log.info(
        "suppression changed",
        extra={"key": key.id, "hash": entry.number_hash[:12], "suppressed": suppressed},
    )
    return JSONResponse(entry.public())


@requires("suppressions:write", "suppression_add")
async def add(request: Request) -> Response:
    """PUT /v1/suppressions/{number}: do not send to it (body: optional reason, actor)."""
    return await _change(request, True)


@requires("suppressions:write", "suppression_remove")
async def remove(request: Request) -> Response:
    """DELETE /v1/suppressions/{number}: allow it again (body: optional reason, actor)."""
    return await _change(request, False)


def parse_since(value: str | None) -> datetime | None:
    """`since` of an export: RFC 3339 or unix seconds; None for everything."""
    if value is None or value == "":
        return None
    try:
        if value.replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(value), UTC)
        when = datetime.fromisoformat(value)
    except (ValueError, OverflowError) as exc:
        raise InvalidQuery("since is an RFC 3339 time or unix seconds") from exc
    if when.tzinfo is None:
        raise InvalidQuery("since needs a time zone (e.g. 2025-08-12T10:00:00Z)")
    return when


def export_row(hashed: str, entry: SuppressionEntry | None) -> dict[str, Any]:
    """One line of the export (a tombstone is an erased entry that held no opt-out)."""
    if entry is None:
        return {name: None for name in EXPORT_FIELDS} | {
            "number_hash": hashed,
            "suppressed": False,
            "reason": "erased",
            "source": "erasure",
            "erased": True,
        }
    return entry.public()


def csv_header() -> str:
    """The export's CSV header line."""
    return ",".join(EXPORT_FIELDS) + "\r\n"


def csv_line(row: dict[str, Any]) -> str:
    """One export row as a CSV line (booleans as true/false, nulls empty)."""
    out = io.StringIO()
    values = [
        ("true" if v else "false") if isinstance(v, bool) else ("" if v is None else v)
        for v in (row.get(name) for name in EXPORT_FIELDS)
    ]
    csv.writer(out).writerow(values)
    return out.getvalue()


async def _lines(
    rows: AsyncIterator[tuple[str, SuppressionEntry | None]], fmt: str
) -> AsyncIterator[bytes]:
    if fmt == "csv":
        yield csv_header().encode()
    async for hashed, entry in rows:
        row = export_row(hashed, entry)
        yield csv_line(row).encode() if fmt == "csv" else orjson.dumps(row) + b"\n"


@requires("suppressions:read", "suppression_export")
async def export_changes(request: Request) -> Response:
    """GET /v1/suppressions?since=<time>&format=jsonl|csv: the latest entry of every
    number changed since then (everything without `since`), for syncing a provider's
    own suppression list. `X-Export-Until` is the `since` of the next export."""
    state = state_of(request)
    key: ApiKey = request.state.key
    _deployment_key(key, "exporting the suppression list")
    unknown = sorted(set(request.query_params) - {"since", "format"})
    if unknown:
        raise InvalidQuery(f"unknown parameters {unknown}; give since and/or format")
    since = parse_since(request.query_params.get("since"))
    fmt = request.query_params.get("format", "jsonl")
    if fmt not in ("jsonl", "csv"):
        raise InvalidQuery("format is jsonl or csv")
    until = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    rows = export(state.settings, since)
    try:  # the first record proves Kafka answers before the 200 is sent
        first = await anext(rows, None)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise BrokerUnavailable(f"Kafka did not answer: {type(exc).__name__}") from exc

    async def body() -> AsyncIterator[tuple[str, SuppressionEntry | None]]:
        if first is not None:
            yield first
            async for item in rows:
                yield item

    media = "text/csv" if fmt == "csv" else "application/x-ndjson"
    return StreamingResponse(
        _lines(body(), fmt), media_type=media, headers={"X-Export-Until": until}
    )


@requires("subjects:erase", "erase")
async def erase_subject(request: Request) -> Response:
    """DELETE /v1/subjects/{number}[?actor=name]: erase every trace of the number
    (ingress/api/erasure.py); the report of what was done and what stays."""
    state = state_of(request)
    key: ApiKey = request.state.key
    _deployment_key(key, "erasure")
    number = _number(request.path_params["number"])
    given = request.query_params.get("actor")
    if given is not None and (not given.strip() or len(given) > _TEXT_LIMIT):
        raise InvalidQuery(f"actor must be 1-{_TEXT_LIMIT} characters")
    actor = f"key:{key.id}/{given.strip()}" if given else f"key:{key.id}"
    settings = state.settings
    try:
        report = await erasure.erase(
            settings,
            number,
            actor=actor,
            source="api",
            current=lambda hashed: read_entry(settings, hashed),
            timeout_s=settings.api_erase_timeout_s,
        )
    except ClickHouseError as exc:
        state.metrics.erasures.labels("store_unavailable").inc()
        raise StoreUnavailable(f"ClickHouse failed during the erasure: {type(exc).__name__}; "
                               "run it again") from exc  # fmt: skip
    except (KafkaError, OSError, TimeoutError) as exc:
        state.metrics.erasures.labels("broker_unavailable").inc()
        raise BrokerUnavailable(f"Kafka failed during the erasure: {type(exc).__name__}; "
                                "run it again") from exc  # fmt: skip
    state.metrics.erasures.labels("done" if report.remaining == 0 else "partial").inc()
    log.info(
        "erased",
        extra={"key": key.id, "hash": report.number_hash[:12], "cleared": report.total},
    )
    return JSONResponse(report.to_dict())
