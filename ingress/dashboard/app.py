"""`dlr dashboard`: one page for the user without Grafana, and the JSON behind it.

Read-only. `GET /` is the page (`static/index.html`, `static/dashboard.js`, Chart.js
vendored under `static/vendor/` with its licence: no CDN, it works offline); it calls the
JSON endpoints below and refreshes them without reloading. Every endpoint takes
`window` (seconds, default 3600) and answers `503 store_unavailable` when ClickHouse does
not answer within `DLR_DASHBOARD_QUERY_TIMEOUT_S`, `422 invalid_query` for a bad
parameter. `/openapi.json` documents them.

Routes (all GET): `/api/v1/summary` (messages, attempts, delivered, delivery rate and the
previous window's, p50/p95 time to deliver, the snapshot's time), `/api/v1/trend?by=`
(delivery rate per time bucket of the 8 largest groups), `/api/v1/volume` (per bucket:
messages, attempts, delivered, failed, time to deliver), `/api/v1/reasons` (failure-reason
mix), `/api/v1/worst?by=` (lowest delivery rates and their change against the previous
window), `/api/v1/alerts` (active alerts of `dlr alerts` and the window's state changes),
`/api/v1/health` (each service of `DLR_METRICS_TARGETS`: up, lag, requests, 5xx, dead
letters since it started), `/api/v1/compare?by=` (providers side by side per destination:
attempts, delivery rate with its 95 % Wilson interval, p50/p95 time to deliver, cost per
delivered message, the best provider only where the intervals do not overlap) and
`/api/v1/cost?by=` (spend per group and currency, never summed across currencies).

The last two are the reports of `sinks/clickhouse/insights.py` (the same SQL and numbers as
`dlr report --report compare|cost`). A service never imports another, so `dlr dashboard`
hands them over as `Reports`; the dashboard runs them on its own client, bounded like
its other queries, over the snapshot as it is (`as_of`), with `DLR_PRICE_CURRENCIES`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Protocol

import httpx
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ingress.dashboard.openapi import openapi_document
from ingress.dashboard.queries import GROUPS, SQL
from ingress.dashboard.settings import DashboardSettings

__all__ = ["COMPARE_BY", "Report", "Reports", "bucket_seconds", "create_app"]

#: Windows the page offers (seconds); the API takes any in [MIN, MAX].
MIN_WINDOW_S, MAX_WINDOW_S = 60, 30 * 86400
#: Nice bucket sizes; the trend has about 40 buckets per window.
BUCKETS_S = (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)
SERIES = 8
#: The destinations providers are compared over (a pair is `country,carrier`).
COMPARE_BY = ("country", "carrier", "region", "country,carrier", "country,region")


class Report(Protocol):
    """One report of `sinks/clickhouse/insights.py` (`compare`, `cost`): rows of a window."""

    def __call__(
        self,
        client: Any,
        database: str,
        by: str,
        since_s: int,
        now: datetime | None = None,
        *,
        currencies: Mapping[str, str] | None = None,
        exact: bool = True,
    ) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Reports:
    """The insight reports `dlr dashboard` hands over (services never import each other)."""

    compare: Report
    cost: Report


class BadQuery(ValueError):
    """A parameter the API does not accept (422 invalid_query)."""


def bucket_seconds(window_s: int, buckets: int = 40) -> int:
    """The smallest nice bucket that gives at most `buckets` buckets over the window."""
    for size in BUCKETS_S:
        if window_s / size <= buckets:
            return size
    return BUCKETS_S[-1]


def _window(request: Request) -> int:
    try:
        window = int(request.query_params.get("window", "3600"))
    except ValueError as exc:
        raise BadQuery("window must be a number of seconds") from exc
    if not MIN_WINDOW_S <= window <= MAX_WINDOW_S:
        raise BadQuery(f"window must be between {MIN_WINDOW_S} and {MAX_WINDOW_S} seconds")
    return window


def _by(request: Request, default: str = "carrier", allowed: tuple[str, ...] = GROUPS) -> str:
    by = request.query_params.get("by", default)
    if by not in allowed:
        raise BadQuery(f"by must be one of {', '.join(allowed)}")
    return by


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _rate(delivered: int, attempts: int) -> float | None:
    return delivered / attempts if attempts else None


def _ms(value: Any) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp() * 1000)
    return int(value)


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return str(value.isoformat()).replace("+00:00", "Z")
    return str(value)


class Store:
    """ClickHouse reads of the dashboard (clickhouse-connect in a thread, bounded)."""

    def __init__(self, settings: DashboardSettings) -> None:
        self.settings = settings
        self._client: Any = None

    def _connected(self) -> Any:
        if self._client is None:
            from clickhouse_connect import get_client

            from schemas.settings import parse_url

            options: dict[str, Any] = dict(parse_url(self.settings.clickhouse).client_options())
            options["send_receive_timeout"] = self.settings.dashboard_query_timeout_s
            self._client = get_client(**options)
        return self._client

    def _query(self, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        parameters = {"db": self.settings.clickhouse_database, **params}
        try:
            result = self._connected().query(SQL[name], parameters=parameters)
        except Exception:
            self._client = None
            raise
        return [dict(zip(result.column_names, r, strict=True)) for r in result.result_rows]

    def _report(self, report: Report, by: str, window: int) -> list[dict[str, Any]]:
        try:
            return report(
                self._connected(),
                self.settings.clickhouse_database,
                by,
                window,
                currencies=self.settings.price_currencies,
                exact=False,
            )
        except Exception:
            self._client = None
            raise

    async def query(self, name: str, **params: Any) -> list[dict[str, Any]]:
        """Rows of one named query."""
        return await asyncio.wait_for(
            asyncio.to_thread(self._query, name, params),
            self.settings.dashboard_query_timeout_s,
        )

    async def report(self, report: Report, by: str, window: int) -> list[dict[str, Any]]:
        """Rows of one insight report over the window ending now (the snapshot as it is)."""
        return await asyncio.wait_for(
            asyncio.to_thread(self._report, report, by, window),
            self.settings.dashboard_query_timeout_s,
        )


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


async def summary(store: Store, window: int) -> dict[str, Any]:
    """The headline numbers of the window."""
    rows = await store.query("summary", now=_now(), window=window)
    row = rows[0]
    try:
        as_of = _iso((await store.query("as_of"))[0].get("max(last_success_time)"))
    except Exception:  # system.view_refreshes is not there on every server
        as_of = None
    attempts, delivered = int(row["attempts"]), int(row["delivered"])
    samples = int(row["ttd_samples"])
    ttd = row["ttd"] or [None, None]
    return {
        "window_s": window,
        "messages": int(row["messages"]),
        "attempts": attempts,
        "delivered": delivered,
        "failed": attempts - delivered,
        "pending": int(row["pending"]),
        "delivery_rate": _rate(delivered, attempts),
        "previous_delivery_rate": _rate(
            int(row["previous_delivered"]), int(row["previous_attempts"])
        ),
        "ttd_p50_s": _number(ttd[0]) if samples else None,
        "ttd_p95_s": _number(ttd[1]) if samples else None,
        "as_of": as_of,
    }


async def trend(store: Store, window: int, by: str) -> dict[str, Any]:
    """Delivery rate per bucket of the largest groups."""
    bucket = bucket_seconds(window)
    rows = await store.query("trend", now=_now(), window=window, bucket=bucket, by=by)
    totals: dict[str, int] = {}
    for row in rows:
        totals[row["grp"]] = totals.get(row["grp"], 0) + int(row["attempts"])
    top = sorted(totals, key=lambda g: (-totals[g], g))[:SERIES]
    series = {g: [] for g in top}  # type: dict[str, list[list[Any]]]
    for row in rows:
        if row["grp"] in series and int(row["attempts"]):
            series[row["grp"]].append(
                [_ms(row["t"]), int(row["delivered"]) / int(row["attempts"]), int(row["attempts"])]
            )
    return {
        "window_s": window,
        "by": by,
        "bucket_s": bucket,
        "series": [{"group": g, "attempts": totals[g], "points": series[g]} for g in top],
    }


async def volume(store: Store, window: int) -> dict[str, Any]:
    """Messages, attempts, delivered, failed and time to deliver per bucket."""
    bucket = bucket_seconds(window)
    rows = await store.query("volume", now=_now(), window=window, bucket=bucket)
    points = []
    for row in rows:
        ttd = row["ttd"] or [None, None]
        points.append(
            {
                "t": _ms(row["t"]),
                "messages": int(row["messages"]),
                "attempts": int(row["attempts"]),
                "delivered": int(row["delivered"]),
                "failed": int(row["failed"]),
                "ttd_p50_s": _number(ttd[0]) if len(ttd) else None,
                "ttd_p95_s": _number(ttd[1]) if len(ttd) > 1 else None,
            }
        )
    return {"window_s": window, "bucket_s": bucket, "points": points}


async def reasons(store: Store, window: int) -> dict[str, Any]:
    """The failure-reason mix."""
    rows = await store.query("reasons", now=_now(), window=window)
    total = sum(int(r["messages"]) for r in rows)
    return {
        "window_s": window,
        "failed": total,
        "reasons": [
            {
                "reason": str(r["reason"]),
                "messages": int(r["messages"]),
                "share": int(r["messages"]) / total,
            }
            for r in rows
        ],
    }


async def worst(store: Store, window: int, by: str, limit: int = 10) -> dict[str, Any]:
    """The groups with the lowest delivery rate, and their change."""
    rows = await store.query("worst", now=_now(), window=window, by=by)
    out = []
    for row in rows:
        rate = _rate(int(row["delivered"]), int(row["attempts"]))
        before = _rate(int(row["previous_delivered"]), int(row["previous_attempts"]))
        out.append(
            {
                "group": row["grp"],
                "attempts": int(row["attempts"]),
                "delivered": int(row["delivered"]),
                "delivery_rate": rate,
                "previous_attempts": int(row["previous_attempts"]),
                "previous_delivery_rate": before,
                "change": (rate - before) / before if rate is not None and before else None,
            }
        )
    out.sort(key=lambda r: (r["delivery_rate"], -r["attempts"], r["group"]))
    return {"window_s": window, "by": by, "groups": out[:limit]}


async def alerts(store: Store, window: int) -> dict[str, Any]:
    """Active alerts and the window's state changes."""
    active, recent = await asyncio.gather(
        store.query("alerts_active"), store.query("alerts_recent", now=_now(), window=window)
    )
    return {
        "window_s": window,
        "active": [
            {**r, "labels": dict(r["labels"]), "starts_at": _iso(r["starts_at"]),
             "updated_at": _iso(r["updated_at"])}
            for r in active
        ],
        "recent": [
            {**r, "labels": dict(r["labels"]), "starts_at": _iso(r["starts_at"]),
             "ends_at": _iso(r["ends_at"]), "at": _iso(r["at"])}
            for r in recent
        ],
    }  # fmt: skip


async def compare(store: Store, reports: Reports, window: int, by: str) -> dict[str, Any]:
    """Providers side by side per destination (`insights.compare`)."""
    rows = await store.report(reports.compare, by, window)
    return {"window_s": window, "by": by.split(","), "rows": rows}


async def cost(store: Store, reports: Reports, window: int, by: str) -> dict[str, Any]:
    """Spend per group and currency (`insights.cost`); `currency` null: not priced."""
    rows = await store.report(reports.cost, by, window)
    return {"window_s": window, "by": by, "rows": rows}


def _metric_totals(text: str) -> dict[str, float]:
    """The few numbers the health view shows, summed over labels."""
    out = {"requests": 0.0, "errors_5xx": 0.0, "lag": 0.0, "dead_letters": 0.0}
    ends: dict[Any, float] = {}
    commits: dict[Any, float] = {}
    lag_seen = False
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in ("dlr_ingress_requests_total", "dlr_api_requests_total"):
                out["requests"] += s.value
                if str(s.labels.get("status", "")).startswith("5"):
                    out["errors_5xx"] += s.value
            elif s.name in ("dlr_sink_lag", "dlr_sink_sends_lag", "dlr_dispatch_lag"):
                out["lag"] += s.value
                lag_seen = True
            elif s.name == "dlr_faust_topic_partition_end_offset":
                ends[tuple(sorted(s.labels.items()))] = s.value
            elif s.name == "dlr_faust_topic_partition_offset_commited":
                commits[tuple(sorted(s.labels.items()))] = s.value
            elif s.name.endswith("deadletters_total") or s.name.endswith(
                ("_rejected_total", "_invalid_total")
            ):
                out["dead_letters"] += s.value
    if ends:
        out["lag"] += sum(max(0.0, v - commits.get(k, 0.0)) for k, v in ends.items())
        lag_seen = True
    if not lag_seen:
        del out["lag"]
    return out


async def health(settings: DashboardSettings) -> dict[str, Any]:
    """Each service's /metrics: up or not, and its headline numbers."""
    targets = settings.targets

    async def one(client: httpx.AsyncClient, job: str, url: str) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            response = await client.get(url, timeout=settings.dashboard_scrape_timeout_s)
            if response.status_code != 200:
                return {"job": job, "up": False, "error": f"HTTP {response.status_code}"}
            numbers = _metric_totals(response.text)
        except (httpx.HTTPError, ValueError) as exc:
            return {"job": job, "up": False, "error": type(exc).__name__}
        ms = round((time.perf_counter() - started) * 1000, 1)
        return {"job": job, "up": True, "scrape_ms": ms, **numbers}

    async with httpx.AsyncClient() as client:
        services = await asyncio.gather(*(one(client, j, u) for j, u in sorted(targets.items())))
    return {"services": list(services)}


def _error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


def _static(name: str) -> bytes:
    return (resources.files("ingress.dashboard") / "static" / name).read_bytes()


class DashboardMetrics:
    """Requests by route and outcome, and their time (one registry per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "dlr_dashboard_requests",
            "JSON requests by route and outcome (ok, invalid_query, store_unavailable)",
            ["route", "outcome"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "dlr_dashboard_request_seconds",
            "Time of one JSON request (ClickHouse queries or scrapes)",
            ["route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )


def create_app(settings: DashboardSettings | None = None, *, reports: Reports) -> Starlette:
    """The dashboard app (settings from the environment when none are given) with the
    insight reports `dlr dashboard` hands over."""
    s = settings or DashboardSettings()
    store = Store(s)
    page = _static("index.html")
    metrics = DashboardMetrics()

    def endpoint(
        handler: Callable[[Request], Awaitable[dict[str, Any]]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            route = request.url.path
            started = time.perf_counter()
            try:
                body = await handler(request)
            except BadQuery as exc:
                metrics.requests.labels(route, "invalid_query").inc()
                return _error(422, "invalid_query", str(exc))
            except Exception as exc:  # ClickHouse unreachable, slow or refusing
                metrics.requests.labels(route, "store_unavailable").inc()
                return _error(503, "store_unavailable", f"{type(exc).__name__}: {exc}"[:300])
            finally:
                metrics.seconds.labels(route).observe(time.perf_counter() - started)
            metrics.requests.labels(route, "ok").inc()
            return JSONResponse(body, headers={"cache-control": "no-store"})

        return run

    async def index(request: Request) -> Response:
        return HTMLResponse(page)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document())

    async def prometheus(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type="text/plain; version=0.0.4")

    routes = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/openapi.json", openapi),
        Route("/metrics", prometheus),
        Route("/api/v1/summary", endpoint(lambda r: summary(store, _window(r)))),
        Route("/api/v1/trend", endpoint(lambda r: trend(store, _window(r), _by(r)))),
        Route("/api/v1/volume", endpoint(lambda r: volume(store, _window(r)))),
        Route("/api/v1/reasons", endpoint(lambda r: reasons(store, _window(r)))),
        Route("/api/v1/worst", endpoint(lambda r: worst(store, _window(r), _by(r)))),
        Route("/api/v1/alerts", endpoint(lambda r: alerts(store, _window(r)))),
        Route("/api/v1/health", endpoint(lambda r: health(s))),
        Route(
            "/api/v1/compare",
            endpoint(lambda r: compare(store, reports, _window(r), _by(r, "country", COMPARE_BY))),
        ),
        Route(
            "/api/v1/cost",
            endpoint(lambda r: cost(store, reports, _window(r), _by(r, "provider"))),
        ),
        Mount(
            "/static",
            StaticFiles(directory=str(resources.files("ingress.dashboard") / "static")),
        ),
    ]
    return Starlette(routes=routes)
